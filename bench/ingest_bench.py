"""Ingestion benchmark: prints one JSON object.

* items/s for text-only and for text+poster items (MovieLens-100K-MM when it is beside the
  repo, else the demo catalog), through the same service layer as ``prism ingest``;
* the speech real-time factor (processing seconds / audio seconds) on espeak-ng clips
  (synthetic speech, said so in the output);
* Chroma add and query rates against a brute-force numpy baseline on the same vectors, in
  the same run, with Chroma's recall@10 versus the exact answer.

With ``--baseline-tree DIR`` (a git worktree of an older commit) the same measurements run
first against that checkout's code, and the report sets both side by side.

Usage: python bench/ingest_bench.py [--items N] [--vectors N] [--queries N] [--parts ingest,audio,vectors]
       [--audio-seconds S] [--baseline-tree DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from baseline_tree import commit_of, run_in_tree
from bench_output import emit, machine

import prism
from prism.catalog import read_catalog
from prism.demo import DEMO_CATALOG
from prism.ingest import Ingestor
from prism.settings import Settings
from prism.store import Store, VectorEntry
from prism.tools.speech_synthesis import speak
from prism.tools.transcribe_audio import TranscribeAudioInput, transcribe_audio

MOVIELENS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "movielens-100k-mm"


def catalog_rows(limit: int, with_posters: bool):
    """Rows from MovieLens (or the demo catalog), keeping or dropping the posters."""
    source = MOVIELENS if MOVIELENS.is_dir() else DEMO_CATALOG
    rows = []
    for row in read_catalog(source):
        if row.item is None or (with_posters and not row.item.images):
            continue
        item = row.item if with_posters else row.item.model_copy(update={"images": [], "audio": []})
        rows.append(row.__class__(row.source, item=item))
        if len(rows) == limit:
            break
    return source.name, rows


def ingest_rate(home: Path, cache: Path, limit: int, with_posters: bool) -> dict:
    settings = Settings(home=home, model_cache_dir=cache)
    source, rows = catalog_rows(limit, with_posters)
    ingestor = Ingestor(settings, Store(settings))
    ingestor.run(rows[:2])  # loads the models, so the rate measures steady-state work
    summary = ingestor.run(rows[2:])
    done = summary.ingested + summary.updated
    return {"source": source, "items": done, "seconds": round(summary.seconds, 2),
            "items_per_s": round(done / summary.seconds, 2), "failed": len(summary.failed)}


def long_talk(seconds: float) -> str:
    """About ``seconds`` of speech (espeak-ng says about 2.6 words a second) of distinct
    sentences: the catalog's plots in order. (Repeating one sentence is not a fair test: Whisper
    sees its own repeated output as a failed decode and retries at higher temperatures.)"""
    _, rows = catalog_rows(200, with_posters=False)
    words = " ".join((row.item.document().split("\n") + [""])[1] for row in rows).split()
    return " ".join(words[: max(1, round(seconds * 2.6))])


def audio_rtf(home: Path, cache: Path, long_seconds: float) -> dict:
    """Processing seconds / audio seconds for a short request and a talk of about ``long_seconds``."""
    settings = Settings(home=home, model_cache_dir=cache)
    texts = ["A calm science fiction film about space travel.", long_talk(long_seconds)]
    clips = [speak(t, home / f"clip{i}.wav") for i, t in enumerate(texts)]
    transcribe_audio(TranscribeAudioInput(path=clips[0]), settings)  # model load
    runs = []
    for clip in clips:
        start = time.perf_counter()
        out = transcribe_audio(TranscribeAudioInput(path=clip), settings)
        seconds = time.perf_counter() - start
        runs.append({"audio_s": round(out.duration, 2), "seconds": round(seconds, 2),
                     "rtf": round(seconds / out.duration, 3), "times_real_time": round(out.duration / seconds, 2)})
    return {"speech": "synthesised with espeak-ng", "backend": f"{settings.whisper_backend} base "
            f"{settings.whisper_compute_type}", "clips": runs}


def vector_rates(home: Path, n_vectors: int, n_queries: int, dim: int = 384, k: int = 10) -> dict:
    rng = np.random.default_rng(0)
    # Clustered data, like real embeddings, so approximate search has real structure to find.
    centres = rng.normal(size=(64, dim))
    data = centres[rng.integers(0, 64, n_vectors)] + 0.5 * rng.normal(size=(n_vectors, dim))
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    queries = data[rng.integers(0, n_vectors, n_queries)] + 0.1 * rng.normal(size=(n_queries, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    store = Store(Settings(home=home))
    entries = [VectorEntry(id=str(i), item_id=str(i), field="document", text="", vector=v) for i, v in enumerate(data)]
    start = time.perf_counter()
    store.put_vectors("bench", entries)
    chroma_add = time.perf_counter() - start
    start = time.perf_counter()
    chroma_ids = [[m.item_id for m in store.query("bench", q, n=k)] for q in queries]
    chroma_query = time.perf_counter() - start

    start = time.perf_counter()
    matrix = np.array(data)  # the baseline's "add" is holding the vectors in one array
    numpy_add = time.perf_counter() - start
    start = time.perf_counter()
    exact = []
    for q in queries:
        scores = matrix @ q
        top = np.argpartition(-scores, k)[:k]
        exact.append([str(i) for i in top[np.argsort(-scores[top])]])
    numpy_query = time.perf_counter() - start
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(chroma_ids, exact)]))
    return {
        "vectors": n_vectors, "dim": dim, "queries": n_queries, "k": k,
        "chroma": {"add_per_s": round(n_vectors / chroma_add), "query_per_s": round(n_queries / chroma_query, 1),
                   "recall_at_10_vs_exact": round(recall, 4)},
        "numpy_bruteforce": {"add_per_s": round(n_vectors / max(numpy_add, 1e-9)),
                             "query_per_s": round(n_queries / numpy_query, 1)},
    }


def measure(args: argparse.Namespace) -> dict:
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = args.model_cache or tmp / "models"
        # the commit of the code that ran, read from where prism was imported
        report = {"machine": machine(), "prism_commit": commit_of(Path(prism.__file__).resolve().parents[1])}
        if "ingest" in parts:
            for name, posters in (("text_only", False), ("text_and_poster", True)):
                runs = [ingest_rate(tmp / f"{name}{i}", cache, args.items, with_posters=posters)
                        for i in range(args.repeats)]
                report[name] = {**runs[0], "items_per_s": float(np.median([r["items_per_s"] for r in runs])),
                                "runs_items_per_s": [r["items_per_s"] for r in runs]}
        if "audio" in parts:
            report["audio"] = audio_rtf(tmp / "c", cache, args.audio_seconds)
        if "vectors" in parts:
            report["vector_store"] = vector_rates(tmp / "d", args.vectors, args.queries)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--parts", default="ingest,audio,vectors")
    parser.add_argument("--repeats", type=int, default=2, help="ingest runs per kind, each into a fresh store "
                        "(the report gives their median and each run)")
    parser.add_argument("--audio-seconds", type=float, default=60.0, help="length of the long speech clip")
    parser.add_argument("--model-cache", type=Path, help="a model cache to reuse (default: a fresh one)")
    parser.add_argument("--baseline-tree", type=Path, help="an older checkout to measure first, in the same run")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = {}
    if args.baseline_tree:
        # the same measurements, rebuilt from what was parsed; the child prints, this process saves
        child = [f"--items={args.items}", f"--vectors={args.vectors}", f"--queries={args.queries}",
                 f"--parts={args.parts}", f"--repeats={args.repeats}", f"--audio-seconds={args.audio_seconds}",
                 *([f"--model-cache={args.model_cache}"] if args.model_cache else [])]
        report["baseline"] = {"commit": commit_of(args.baseline_tree),
                              "report": run_in_tree(args.baseline_tree, Path(__file__), child)}
        report["new"] = {"commit": commit_of(Path(__file__).resolve().parents[1]), "report": measure(args)}
    else:
        report = measure(args)
    emit(report, args.out)


if __name__ == "__main__":
    main()
