"""Where a filtered query's time goes in Chroma, on a store kept by ``store_bench.py --home``.
Prints one JSON object.

Per filter (the store benchmark's broad and selective ones, and one passing almost every
entry), on the same queries (stored entries of the space plus noise, as the store benchmark):
Chroma's filtered query; its first step alone, the SQLite lookup of the passing entry ids
(``get(where=...)``); its second alone, a query among those ids given in advance
(``query(ids=...)``); Prism's unfiltered probes of 3 × n and 40 × n nearest entries, with the
share of queries for which they keep n passing entries; and ``Store.query`` with and without
keeping the passing ids; recall@20 of Chroma's filtered query, of the query among given ids
and of ``Store.query`` against the exact answer among the passing entries. This is why ``Store`` looks a selective filter up once and keeps
the ids (docs/scale.md).

Usage: python bench/filter_paths.py --home DIR [--space text-minilm] [--queries 40] [--out FILE]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_output import emit, latency_summary, machine

from prism.settings import Settings
from prism.store import FILTER_PROBE, FILTER_PROBE_MAX, Store
from prism.where import matches

K = 20
FILTERS = {"almost all": {"year": {"$gte": 1950}}, "broad": {"year": {"$gte": 1980}},
           "selective": {"year": {"$lt": 1950}}}
FIELDS = ["metadatas", "documents", "distances"]


def timed(queries: np.ndarray, run: Callable[[np.ndarray], object]) -> tuple[dict, list]:
    """Latency summary (ms) of ``run`` over ``queries``, and what it returned for each."""
    seconds, results = [], []
    for q in queries:
        started = time.perf_counter()
        results.append(run(q))
        seconds.append(1000 * (time.perf_counter() - started))
    return latency_summary(seconds, 1), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a store kept by store_bench.py --home")
    parser.add_argument("--space", default="text-minilm")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = Settings(home=args.home)
    kept, unkept = Store(settings), Store(settings.model_copy(update={"store_filter_cache_seconds": 0}))
    collection = kept.collection(args.space)
    sample = np.asarray(collection.get(limit=3000, include=["embeddings"])["embeddings"], dtype=np.float32)
    rng = np.random.default_rng(args.seed)
    unit = sample[rng.integers(0, len(sample), args.queries)]
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    queries = (unit + 0.3 / np.sqrt(unit.shape[1]) * rng.standard_normal(unit.shape)).astype(np.float32)
    for each in (kept, unkept):  # as a running server: the catalog's ids read, the index loaded
        each.all_item_ids()
        each.query(args.space, queries[0], K)
    report = {"machine": machine(), "home": str(args.home), "space": args.space, "entries": collection.count(),
              "k": K, "queries": args.queries, "filters": {}}
    for label, where in FILTERS.items():
        ids = collection.get(where=where, include=[])["ids"]
        row = {"where": where, "passing_entries": len(ids)}
        report["filters"][label] = row
        if len(ids) < K:
            continue
        row["chroma_filtered_query_ms"], chroma = timed(
            queries, lambda q: collection.query(query_embeddings=[q], n_results=K, where=where, include=FIELDS))
        row["chroma_lookup_only_ms"], _ = timed(queries, lambda q: collection.get(where=where, include=[]))
        row["query_among_given_ids_ms"], given = timed(
            queries, lambda q: collection.query(query_embeddings=[q], n_results=K, ids=ids, include=FIELDS))
        row["given_ids_same_top_k"] = float(np.mean([a["ids"][0] == b["ids"][0] for a, b in zip(given, chroma)]))
        for probe in (FILTER_PROBE * K, FILTER_PROBE_MAX * K):
            summary, found = timed(queries, lambda q: collection.query(query_embeddings=[q], n_results=probe,
                                                                       include=FIELDS))
            enough = [sum(matches(m, where) for m in f["metadatas"][0]) >= K for f in found]
            row[f"probe_{probe}_ms"] = summary
            row[f"probe_{probe}_keeps_k_share"] = float(np.mean(enough))
        row["store_query_keeping_ids_ms"], store_found = timed(queries, lambda q: kept.query(args.space, q, K, where))
        # recall@K of each path against the exact answer among the passing entries
        passing = kept.get_vectors(args.space, ids)
        passing_ids = list(passing)
        matrix = np.stack(list(passing.values()))
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        exact = [{passing_ids[i] for i in np.argsort(-(matrix @ (q / np.linalg.norm(q))))[:K]} for q in queries]
        row["recall_at_k"] = {
            "chroma_filtered_query": float(np.mean([len(set(c["ids"][0]) & e) / K for c, e in zip(chroma, exact)])),
            "query_among_given_ids": float(np.mean([len(set(g["ids"][0]) & e) / K for g, e in zip(given, exact)])),
            "store_query": float(np.mean([len({f"{m.item_id}|{m.field}" for m in f} & e) / K
                                          for f, e in zip(store_found, exact)]))}
        row["store_query_not_keeping_ms"], _ = timed(queries, lambda q: unkept.query(args.space, q, K, where))
        report["filters"][label] = row
    report["unfiltered"] = {"chroma_ms": timed(queries, lambda q: collection.query(
        query_embeddings=[q], n_results=K, include=FIELDS))[0],
        "store_query_ms": timed(queries, lambda q: kept.query(args.space, q, K))[0]}
    emit(report, args.out)


if __name__ == "__main__":
    main()
