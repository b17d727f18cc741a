"""A 100k-item store: Chroma (embedded and a `chroma run` server) against numpy brute force,
then `prism search` and `prism recommend` on it. Prints one JSON object.

The store is grown from a real one (``--source``, a PRISM_HOME: its items, every vector space
and its current fusion checkpoint): its items are copied as they are, and the rest up to
``--items`` are **synthetic**: each takes a random real item's metadata (year, genres), so
filters pass the same share of items as on the real catalog, and in every space (text,
multilingual, image, fused) a vector made from real ones. ``--synthesis mixtures`` (default):
the real item's vector mixed with another random real item's vector of the same field (a
share of 0.5-1 for the first, on unit vectors), plus Gaussian noise (``--noise`` × the
vector's norm / √d). ``--synthesis copies``: the real item's vector plus that noise only,
which makes islands of ~60 near-duplicates around each real item; HNSW (16 neighbours a node)
cannot link such islands, and its recall@20 on them was 0.32-0.68, a property of the data
rather than of the store (docs/scale.md). The synthetic items have no ratings: the ranker scores them by
their content, as it does a new item.

Measured, in the same run, per space, on the same vectors and the same queries (a stored
entry's vector plus the same noise):

* add rate (vectors/s) when filling the store, for the embedded store and the server;
* top-20 query latency p50/p95 through ``Store.query`` (what Prism runs; also through a
  ``Store`` that keeps no filter's passing entries, ``prism_unkept``), through Chroma's
  own filter (``collection.query(where=...)``, Prism's path before it filtered broad filters
  itself), and numpy brute force over the whole matrix; without a filter, with a broad filter
  (year ≥ 1980) and with a selective one (year < 1950); recall@20 against the exact answer;
* ``PrismService.search`` (a text query) and ``PrismService.recommend`` (users of the
  checkpoint's ratings) latency p50/p95.

``--search-ef N`` queries at HNSW ef_search N (the ``store_search_ef`` setting). Chroma
applies a changed ef_search only in a process that loads the collection afterwards
(docs/scale.md), so each value is its own run: ``--home DIR`` keeps the filled embedded store
in DIR, and a later run with the same DIR and the same growth arguments reuses it (the same
vectors, regenerated from the seed) instead of filling again. ``--spaces text-,fused-``
keeps only those spaces.

Usage: python bench/store_bench.py --source PRISM_HOME [--items 100000] [--queries 200] [--users 20]
       [--synthesis mixtures|copies] [--search-ef 100] [--spaces PREFIXES] [--home DIR] [--no-server]
       [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_output import emit, latency_summary, machine

from prism.chroma_server import chroma_server
from prism.fusion.checkpoints import current, fusion_dir
from prism.history import read_ratings_rows
from prism.service import PrismService
from prism.settings import Settings
from prism.store import ITEMS, Store
from prism.where import matches

K = 20
FILTERS = {"none": None, "broad": {"year": {"$gte": 1980}}, "selective": {"year": {"$lt": 1950}}}
SEARCHES = ["a calm film about space", "a funny animated film for a family evening", "a dark crime thriller",
            "a romance in Paris", "a war film about soldiers", "一部关于太空的电影", "a detective at the harbour",
            "a musical with songs and dancing", "a western with horses", "a scary film in a haunted house"]


@dataclass
class Space:
    ids: list[str]
    item_ids: list[str]
    vectors: np.ndarray  # float32 [n, d]
    metadatas: list[dict]
    documents: list[str]


def read_all(collection, batch: int, include: list[str]) -> dict[str, list]:
    """Every entry of ``collection`` in pages."""
    out: dict[str, list] = {"ids": [], **{key: [] for key in include}}
    while True:
        got = collection.get(include=include, limit=batch, offset=len(out["ids"]))
        if not len(got["ids"]):
            return out
        out["ids"] += list(got["ids"])
        for key in include:
            out[key] += list(got[key])


def read_source(store: Store, only: set[str] | None = None) -> tuple[dict, dict[str, Space]]:
    items = read_all(store.collection(ITEMS), store.max_batch, ["metadatas", "documents"])
    spaces = {}
    for name in store.spaces():
        if name == ITEMS or (only and not any(name.startswith(prefix) for prefix in only)):
            continue
        got = read_all(store.collection(name), store.max_batch, ["embeddings", "metadatas", "documents"])
        spaces[name] = Space(got["ids"], [m["item_id"] for m in got["metadatas"]],
                             np.asarray(got["embeddings"], dtype=np.float32), got["metadatas"], got["documents"])
    return items, spaces


def grow(items: dict, spaces: dict[str, Space], n_items: int, noise: float, seed: int,
         synthesis: str = "mixtures") -> tuple[dict, dict[str, Space]]:
    """The real items plus synthetic ones up to ``n_items`` (module docstring)."""
    rng = np.random.default_rng(seed)
    real = items["ids"]
    bases = rng.integers(0, len(real), max(0, n_items - len(real)))
    partners = rng.integers(0, len(real), len(bases))
    shares = rng.uniform(0.5, 1.0, len(bases))
    new_ids = [f"synthetic-{j}" for j in range(len(bases))]
    grown_items = {"ids": real + new_ids, "documents": items["documents"] + [items["documents"][b] for b in bases],
                   "metadatas": items["metadatas"] + [
                       {**items["metadatas"][b], "title": f"{items['metadatas'][b].get('title', '')} #{j}",
                        "content_hash": "synthetic"} for j, b in enumerate(bases)]}
    grown = {}
    for name, space in spaces.items():
        rows_of: dict[str, list[int]] = {}
        for row, item_id in enumerate(space.item_ids):
            rows_of.setdefault(item_id, []).append(row)
        row_of = {space.ids[row]: row for row in range(len(space.ids))}
        rows, owners, mates = [], [], []
        for j, b in enumerate(bases):
            for row in rows_of.get(real[b], []):
                rows.append(row)
                owners.append(j)
                # the partner's entry of the same field, else the base's own
                mates.append(row_of.get(f"{real[partners[j]]}|{space.ids[row].split('|', 1)[1]}", row))
        base = space.vectors[rows]
        norms = np.linalg.norm(base, axis=1, keepdims=True)
        if synthesis == "mixtures":
            mate = space.vectors[mates]
            share = shares[owners][:, None]
            mixed = share * base / norms + (1 - share) * mate / np.linalg.norm(mate, axis=1, keepdims=True)
            base = norms * mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
        scale = noise * norms / np.sqrt(base.shape[1])
        synthetic = (base + scale * rng.standard_normal(base.shape)).astype(np.float32)
        grown[name] = Space(
            space.ids + [f"{new_ids[j]}|{space.ids[r].split('|', 1)[1]}" for r, j in zip(rows, owners)],
            space.item_ids + [new_ids[j] for j in owners],
            np.concatenate([space.vectors, synthetic]),
            space.metadatas + [{**space.metadatas[r], "item_id": new_ids[j],
                                "title": grown_items["metadatas"][len(real) + j]["title"]} for r, j in zip(rows, owners)],
            space.documents + [space.documents[r] for r in rows])
    return grown_items, grown


def fill(store: Store, items: dict, spaces: dict[str, Space]) -> dict:
    """Write every space, then the item records (as ingest does); the rates."""
    rates = {}
    for name, space in spaces.items():
        started = time.perf_counter()
        for start in range(0, len(space.ids), store.max_batch):
            end = start + store.max_batch
            store.collection(name).upsert(ids=space.ids[start:end], embeddings=space.vectors[start:end],
                                          metadatas=space.metadatas[start:end], documents=space.documents[start:end])
        seconds = time.perf_counter() - started
        rates[name] = {"vectors": len(space.ids), "dim": int(space.vectors.shape[1]), "seconds": round(seconds, 1),
                       "vectors_per_s": round(len(space.ids) / seconds)}
    started = time.perf_counter()
    store.put_items([{"id": i, "document": d, "metadata": m}
                     for i, d, m in zip(items["ids"], items["documents"], items["metadatas"])])
    rates["items"] = {"records": len(items["ids"]), "seconds": round(time.perf_counter() - started, 1)}
    rates["total_seconds"] = round(sum(r["seconds"] for r in rates.values()), 1)
    rates["items_per_s"] = round(len(items["ids"]) / rates["total_seconds"], 1)
    return rates


def queries(store: Store, spaces: dict[str, Space], n_queries: int, noise: float, seed: int) -> dict:
    """Per space and filter: latency of Prism's query, Chroma's filter and numpy; recall@20."""
    rng = np.random.default_rng(seed + 1)
    # the same store keeping no filter's passing entries: what each query costs on its own
    unkept = Store(store.settings.model_copy(update={"store_filter_cache_seconds": 0}))
    for each in (store, unkept):  # as in a running server, which has read the catalog's ids
        each.all_item_ids()
    out = {}
    for name, space in spaces.items():
        unit = space.vectors / np.linalg.norm(space.vectors, axis=1, keepdims=True)
        picks = rng.integers(0, len(space.ids), n_queries)
        scale = noise / np.sqrt(unit.shape[1])
        probes = (unit[picks] + scale * rng.standard_normal((n_queries, unit.shape[1]))).astype(np.float32)
        collection = store.collection(name)
        for q in probes:  # the index loaded and its pages read before any clock starts
            collection.query(query_embeddings=[q], n_results=K, include=["distances"])
        out[name] = {}
        for label, where in FILTERS.items():
            passing = np.array([where is None or matches(m, where) for m in space.metadatas])
            if not passing.any():
                out[name][label] = "no entry of this space carries the filtered key: not measured"
                continue
            seconds: dict[str, list[float]] = {"prism": [], "prism_unkept": [], "chroma_filter": [], "numpy": []}
            recall = []

            def numpy_top(q: np.ndarray) -> set[str]:
                scores = unit @ (q / np.linalg.norm(q))
                if where is not None:
                    scores = np.where(passing, scores, -np.inf)
                top = np.argpartition(-scores, K)[:K]
                return {space.ids[i] for i in top[np.argsort(-scores[top])] if np.isfinite(scores[i])}

            paths = {"prism": lambda q: store.query(name, q, n=K, where=where),
                     "prism_unkept": lambda q: unkept.query(name, q, n=K, where=where),
                     "chroma_filter": lambda q: collection.query(query_embeddings=[q], n_results=K, where=where,
                                                                 include=["metadatas", "documents", "distances"])}
            exact = []
            for q in probes:  # numpy apart: its scan of the whole matrix leaves the caches cold for what follows
                started = time.perf_counter()
                exact.append(numpy_top(q))
                seconds["numpy"].append(time.perf_counter() - started)
            order = np.random.default_rng(seed + 2)
            for q, truth in zip(probes, exact):
                results = {}
                for path in order.permutation(list(paths)):  # each path first, second, third as often
                    started = time.perf_counter()
                    results[path] = paths[path](q)
                    seconds[path].append(time.perf_counter() - started)
                got = results["prism"]
                found = {f"{m.item_id}|{m.field}" for m in got}
                recall.append(len(found & truth) / max(1, min(K, len(truth))))
            ms = {path: latency_summary([1000 * s for s in values]) for path, values in seconds.items()}
            out[name][label] = {"passing_share": round(float(passing.mean()), 3), "latency_ms": ms,
                                "prism_over_numpy_p50": round(ms["prism"]["p50"] / ms["numpy"]["p50"], 2),
                                "recall_at_20": round(float(np.mean(recall)), 4)}
    return out


def service_latency(settings: Settings, n_users: int, seed: int) -> dict:
    """``search`` (texts) and ``recommend`` (users with a history) p50/p95 in seconds."""
    service = PrismService(settings)
    service.search(text=SEARCHES[0], k=10)  # loads the encoders
    searches = []
    for text in SEARCHES * 2:
        started = time.perf_counter()
        service.search(text=text, k=10)
        searches.append(time.perf_counter() - started)
    out = {"search_s": latency_summary(searches, 3)}
    pointer = current(settings)
    if pointer is None:
        out["recommend"] = "no fusion checkpoint is current in the source home: not measured"
        return out
    users = sorted({str(u) for u in read_ratings_rows(Path(pointer.ratings))[:, 0]})
    chosen = np.random.default_rng(seed).choice(users, size=min(n_users, len(users)), replace=False)
    service.recommend(str(chosen[0]), k=10)  # loads the checkpoint
    recommends = []
    for user in chosen:
        started = time.perf_counter()
        service.recommend(str(user), k=10)
        recommends.append(time.perf_counter() - started)
    out["recommend_s"] = latency_summary(recommends, 3)
    return out


def measure(settings: Settings, items: dict, spaces: dict[str, Space], args, report: dict,
            save: Callable[[], None], filled: dict | None = None) -> None:
    """Fill (unless ``filled`` is the report of a fill already done), then service latency, then
    per-space queries into ``report``; ``save`` after each."""
    report["fill"] = filled or fill(Store(settings), items, spaces)
    save()
    report["service"] = service_latency(settings, args.users, args.seed)
    save()
    report["query"] = {f"ef_search={settings.store_search_ef}": queries(Store(settings), spaces, args.queries, args.noise,
                                                              args.seed)}
    save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="a PRISM_HOME with an ingested catalog")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-server", action="store_true", help="measure the embedded store only")
    parser.add_argument("--synthesis", choices=["mixtures", "copies"], default="mixtures",
                        help="synthetic vectors: a mix of two real items plus noise, or a real item plus noise")
    parser.add_argument("--spaces", help="comma-separated prefixes of the spaces to copy and measure (default: all)")
    parser.add_argument("--search-ef", type=int, default=Settings.model_fields["store_search_ef"].default,
                        help="the HNSW ef_search to query with (default: the setting's default)")
    parser.add_argument("--home", type=Path, help="keep the filled embedded store here; reuse it when it "
                        "was filled with the same growth arguments")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    source = Settings(home=args.source)
    started = time.perf_counter()
    only = set(args.spaces.split(",")) if args.spaces else None
    items, spaces = grow(*read_source(Store(source), only), args.items, args.noise, args.seed, args.synthesis)
    report = {"machine": machine(), "source": str(args.source), "items": len(items["ids"]),
              "real_items": sum(not i.startswith("synthetic-") for i in items["ids"]),
              "vectors": "synthetic beyond the real items: " + (
                  "a mix of a real item's vectors (share 0.5-1) and another real item's (same field)"
                  if args.synthesis == "mixtures" else "a real item's vectors") +
                  f" plus Gaussian noise ({args.noise} × norm / √d), the first item's metadata kept", "k": K, "filters": FILTERS,
              "spaces": {name: {"entries": len(s.ids), "dim": int(s.vectors.shape[1])} for name, s in spaces.items()}}
    growth = {"source": str(args.source.resolve()), "items": args.items, "noise": args.noise, "seed": args.seed,
              "synthesis": args.synthesis, "spaces": args.spaces}
    with tempfile.TemporaryDirectory(dir=args.out.parent if args.out else None) as tmp:
        home = args.home or Path(tmp) / "home"
        marker = home / "store_bench_filled.json"
        filled = json.loads(marker.read_text()) if marker.is_file() else None
        if filled and filled["growth"] != growth:
            sys.exit(f"store_bench: {home} holds a store grown with other arguments: {filled['growth']}")
        if not filled and home.exists() and any(home.iterdir()):
            sys.exit(f"store_bench: {home} is not empty and holds no store of this benchmark")
        if not filled and fusion_dir(source).is_dir():  # the checkpoint in service, for recommend
            shutil.copytree(fusion_dir(source), fusion_dir(source.model_copy(update={"home": home})))
        settings = source.model_copy(update={"home": home, "model_cache_dir": source.model_cache,
                                             "store_search_ef": args.search_ef})
        def save() -> None:  # a long run keeps what it measured so far
            report["wall_seconds"] = round(time.perf_counter() - started, 1)
            if args.out:
                args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
            print(f"store_bench: {report['wall_seconds']} s", file=sys.stderr, flush=True)

        if filled:
            filled = {"reused from an earlier run": filled["fill"]}
        elif args.home:  # filled now, and marked at once: a run stopped later can still reuse it
            filled = fill(Store(settings), items, spaces)
            marker.write_text(json.dumps({"growth": growth, "fill": filled}))
        report["embedded"] = {}
        measure(settings, items, spaces, args, report["embedded"], save, filled)
        if not args.no_server:
            report["server"] = {}
            with chroma_server(Path(tmp) / "server") as server:
                measure(settings.model_copy(update={"chroma_host": server.host, "chroma_port": server.port}),
                        items, spaces, args, report["server"], save)
    report["complete"] = True
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    emit(report, args.out)


if __name__ == "__main__":
    main()
