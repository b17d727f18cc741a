"""Which faithfulness check: the lexical check against the alternatives, on the labelled pairs.

Methods, each scored as precision/recall of "unsupported" against the hand labels:

- ``lexical``: :func:`prism.faithfulness.check_reason` (genres, decades, numbers, names and
  content words of the reason must be in the cited evidence or the item's facts);
- ``embedding``: the reason is unsupported when its MiniLM cosine to every sentence of the
  cited evidence and facts is below a threshold (chosen on the calibration pairs for the best
  F1, then applied to the held-out pairs);
- ``lexical+embedding``: flagged by either;
- ``llm_judge``: the embedded chat model asked whether the evidence supports every claim of
  the reason (yes/no), when ``--judge`` is given (slow on CPU).

Pairs whose ``batch`` names "calibration" tune; the others ("held out") are where the figures
that matter come from. Prints one JSON object.

Usage: python bench/faithfulness_alternatives.py evals/faithfulness_labels.jsonl [--judge] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
from bench_output import emit

from prism.faithfulness import check_reason
from prism.settings import Settings
from prism.tools.embed_text import get_encoder
from prism.untrusted import sentences

JUDGE = ("Evidence about a film:\n{evidence}\n\nA reason given for recommending it: \"{reason}\"\n\n"
         "Is every factual claim of the reason stated in the evidence? Answer yes or no.")


def scores(flags: list[bool], labels: list[bool]) -> dict:
    tp = sum(f and t for f, t in zip(flags, labels))
    fp = sum(f and not t for f, t in zip(flags, labels))
    fn = sum(t and not f for f, t in zip(flags, labels))
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"pairs": len(labels), "precision": round(precision, 3), "recall": round(recall, 3),
            "f1": round(2 * precision * recall / max(precision + recall, 1e-9), 3),
            "agreement": round(sum(f == t for f, t in zip(flags, labels)) / max(len(labels), 1), 3)}


def best_threshold(similarity: np.ndarray, labels: list[bool]) -> float:
    candidates = np.unique(np.round(similarity, 3))
    return float(max(candidates, key=lambda t: (scores(list(similarity < t), labels)["f1"], -t)))


def evidence_sentences(pair: dict) -> list[str]:
    texts = [*pair["cited"], pair["facts"]]
    return [t[s:e].strip() for t in texts for s, e in sentences(t) if t[s:e].strip()] or [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path)
    parser.add_argument("--judge", action="store_true", help="Also ask the embedded chat model (slow).")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("label")]
    calibration = [r for r in rows if "calibration" in r.get("batch", "")]
    held = [r for r in rows if "calibration" not in r.get("batch", "")]
    settings = Settings()
    encoder = get_encoder("minilm", settings)

    def similarity(pairs: list[dict]) -> np.ndarray:
        out = []
        for pair in pairs:
            vectors = encoder.encode([re.sub(r"\bE\d+\b", "", pair["reason"]), *evidence_sentences(pair)])
            out.append(float((vectors[1:] @ vectors[0]).max()))
        return np.array(out)

    truth = {id(r): r["label"] == "unsupported" for r in rows}
    lexical = {id(r): not check_reason(r["reason"], r["cited"], r["facts"], r["request"]).supported for r in rows}
    sim = dict(zip(map(id, rows), similarity(rows)))
    threshold = best_threshold(np.array([sim[id(r)] for r in calibration]), [truth[id(r)] for r in calibration])
    methods = {
        "lexical": lambda r: lexical[id(r)],
        "embedding": lambda r: sim[id(r)] < threshold,
        "lexical+embedding": lambda r: lexical[id(r)] or sim[id(r)] < threshold,
    }
    report: dict = {"pairs": {"calibration": len(calibration), "held_out": len(held),
                              "unsupported": sum(truth.values())},
                    "embedding_threshold": round(threshold, 3), "methods": {}}
    if args.judge:
        # deferred: the judge needs the agent's chat backend and the GGUF model
        from prism.agent.backends import chat_model

        llm = chat_model(settings)
        verdicts, started = {}, time.perf_counter()
        for r in rows:
            prompt = JUDGE.format(evidence="\n".join(evidence_sentences(r)), reason=r["reason"])
            reply = llm.complete([{"role": "user", "content": prompt}], max_tokens=3)
            verdicts[id(r)] = not (reply.content or "").strip().casefold().startswith("yes")
        report["judge_seconds_per_pair"] = round((time.perf_counter() - started) / max(len(rows), 1), 2)
        methods["llm_judge"] = lambda r: verdicts[id(r)]
    for name, flag in methods.items():
        report["methods"][name] = {
            part: scores([flag(r) for r in group], [truth[id(r)] for r in group])
            for part, group in (("calibration", calibration), ("held_out", held), ("all", rows))}
    emit(report, args.out, ensure_ascii=True)


if __name__ == "__main__":
    main()
