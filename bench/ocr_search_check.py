"""Search before and after the OCR change (issue 16): prints one JSON object.

Ingests the same MovieLens poster items twice, into two fresh stores: once with the OCR
settings before the change (text detection at RapidOCR's default shorter side of 736 px, the
angle classifier on) and once with the current defaults. Then, on both stores:

* whether the inputs of the ranking suites are unchanged: every item's document vector and
  poster feature, compared entry by entry (the ``small`` suite reads only these and the
  ratings, so equal inputs give it equal numbers);
* how many poster captions changed;
* ``PrismService.search`` with each item's title as the query: hit@1 and hit@10 of that item;
* the same for a fixed set of descriptive queries: how many of each top 10 the two stores share.

Usage: python bench/ocr_search_check.py [--items N] [--out FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_output import emit, machine
from ingest_bench import catalog_rows
from store_bench import SEARCHES

from prism import spaces
from prism.ingest import Ingestor
from prism.service import PrismService
from prism.settings import Settings

BEFORE = {"ocr_detect_side": 736, "ocr_angle_classifier": True}


def ingest(home: Path, rows: list, update: dict) -> tuple[PrismService, float]:
    """A fresh store at ``home`` holding ``rows``, ingested with the settings ``update``."""
    settings = Settings(home=home, model_cache_dir=Settings().model_cache).model_copy(update=update)
    service = PrismService(settings)
    started = time.perf_counter()
    Ingestor(settings, service.store).run(rows)
    return service, time.perf_counter() - started


def vector_difference(a: PrismService, b: PrismService, space: str, entries: list[str]) -> dict:
    got_a, got_b = a.store.get_vectors(space, entries), b.store.get_vectors(space, entries)
    shared = sorted(set(got_a) & set(got_b))
    diff = max((float(np.abs(got_a[e] - got_b[e]).max()) for e in shared), default=0.0)
    return {"entries": len(shared), "only_one_store": len(set(got_a) ^ set(got_b)), "max_abs_difference": diff}


def captions(service: PrismService, item_ids: list[str]) -> dict[str, str]:
    records = service.store.get_items(item_ids)
    return {i: " | ".join(d["text"] for d in r["derived"] if d.get("kind") == "caption") for i, r in records.items()}


def title_hits(service: PrismService, titles: dict[str, str]) -> dict:
    ranks = []
    for item_id, title in titles.items():
        found = [h.item_id for h in service.search(text=title, k=10).hits]
        ranks.append(found.index(item_id) if item_id in found else 10)
    ranks = np.array(ranks)
    return {"queries": len(ranks), "hit@1": round(float((ranks == 0).mean()), 4),
            "hit@10": round(float((ranks < 10).mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--out")
    args = parser.parse_args()
    source, rows = catalog_rows(args.items, with_posters=True)
    item_ids = [row.item.item_id for row in rows]
    titles = {row.item.item_id: row.item.title for row in rows}
    report = {"machine": machine(), "source": source, "items": len(rows), "before": BEFORE,
              "after": {name: Settings.model_fields[name].default for name in BEFORE}}
    with tempfile.TemporaryDirectory() as tmp:
        before, before_s = ingest(Path(tmp) / "before", rows, BEFORE)
        after, after_s = ingest(Path(tmp) / "after", rows, {})
        report["ingest_seconds"] = {"before": round(before_s, 1), "after": round(after_s, 1)}
        text = spaces.text_space(after.settings).name
        image = spaces.image_space(after.settings).name
        report["document_vectors"] = vector_difference(before, after, text, [f"{i}|document" for i in item_ids])
        report["poster_features"] = vector_difference(before, after, image, [f"{i}|image:0" for i in item_ids])
        old, new = captions(before, item_ids), captions(after, item_ids)
        report["captions_changed"] = sum(old.get(i) != new.get(i) for i in item_ids)
        report["title_search"] = {"before": title_hits(before, titles), "after": title_hits(after, titles)}
        overlaps = []
        for query in SEARCHES:
            top_before = {h.item_id for h in before.search(text=query, k=10).hits}
            top_after = {h.item_id for h in after.search(text=query, k=10).hits}
            overlaps.append(len(top_before & top_after) / max(1, len(top_before)))
        report["descriptive_search_top10_shared"] = {"queries": SEARCHES, "per_query": [round(o, 2) for o in overlaps],
                                                     "mean": round(float(np.mean(overlaps)), 3)}
    emit(report, args.out)


if __name__ == "__main__":
    main()
