"""Reason/evidence pairs from real agent turns, for calibrating the faithfulness check.

``collect``: every pick the model wrote in the turns of the session files given (including
answers that were re-asked), with the request, the reason, the evidence texts it cited (read
back from the tool results in the trace) and the item's facts from the store; one JSON object
a line. A person then adds ``"label": "supported" | "unsupported"`` (and a ``"note"``) to each
line by reading the reason against the evidence and the facts only.

``score``: the check (:func:`prism.agent.faithfulness.check_reason`) against those labels:
precision and recall of "unsupported", and the agreement.

Usage:
  python evals/faithfulness_pairs.py collect --home HOME SESSIONS.sqlite3 [...] > pairs.jsonl
  python evals/faithfulness_pairs.py score evals/faithfulness_labels.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from pathlib import Path

from prism.faithfulness import check_reason, item_facts
from prism.service import PrismService
from prism.settings import Settings

EVIDENCE_LINE = re.compile(r'^\s+(E\d+) (\w+)[^:]*: "(.*)"\s*$')
ITEM_LINE = re.compile(r"^item (\S+):")


def evidence_texts(trace: dict) -> dict[str, tuple[str | None, str]]:
    """Evidence id → (item id, text), read from the tool results the trace recorded."""
    found: dict[str, tuple[str | None, str]] = {}
    for step in trace.get("steps", []):
        if step.get("kind") != "tool" or not step.get("output"):
            continue
        item = None
        for line in step["output"].splitlines():
            if m := ITEM_LINE.match(line):
                item = m.group(1)
            elif m := EVIDENCE_LINE.match(line):
                found.setdefault(m.group(1), (item if m.group(2) not in ("user_image", "user_voice", "history")
                                              else None, m.group(3)))
    return found


def answers(trace: dict) -> list[dict]:
    """Every answer object the model wrote in the turn (first tries and re-asks)."""
    out = []
    for step in trace.get("steps", []):
        text = step.get("output") or ""
        if step.get("kind") != "llm" or '"answer"' not in text:
            continue
        body = text[text.find("{"): text.rfind("}") + 1]
        try:
            out.append(json.loads(body)["answer"])
        except (ValueError, KeyError, TypeError):
            continue  # cut off at the trace's 2,000 characters
    return out


def collect(home: Path, session_files: list[Path]) -> list[dict]:
    store = PrismService(Settings(home=home)).store
    pairs, seen = [], set()
    for path in session_files:
        for request, trace_json in sqlite3.connect(path).execute("select request, trace from turns"):
            trace = json.loads(trace_json)
            texts = evidence_texts(trace)
            for answer in answers(trace):
                for pick in answer.get("picks", []):
                    cited = [texts[e][1] for e in re.findall(r"E\d+", " ".join(map(str, pick.get("evidence", []))))
                             if e in texts]
                    key = (request, pick.get("item_id"), pick.get("reason"))
                    if key in seen or not pick.get("reason"):
                        continue
                    seen.add(key)
                    record = store.get_items([str(pick.get("item_id"))]).get(str(pick.get("item_id")))
                    pairs.append({"request": request, "item_id": pick.get("item_id"), "reason": pick["reason"],
                                  "cited": cited, "facts": item_facts(record)})
    return pairs


def score(labelled: list[dict]) -> dict:
    """Precision/recall of the check's "unsupported" against the human labels."""
    tp = fp = fn = tn = 0
    for pair in labelled:
        flagged = not check_reason(pair["reason"], pair["cited"], pair["facts"], pair["request"]).supported
        truly = pair["label"] == "unsupported"
        tp += flagged and truly
        fp += flagged and not truly
        fn += truly and not flagged
        tn += not flagged and not truly
    return {"pairs": len(labelled), "unsupported_by_label": tp + fn, "flagged": tp + fp,
            "precision": round(tp / max(tp + fp, 1), 3), "recall": round(tp / max(tp + fn, 1), 3),
            "agreement": round((tp + tn) / max(len(labelled), 1), 3), "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--home", type=Path, required=True, help="The store the turns ran on.")
    c.add_argument("sessions", type=Path, nargs="+")
    s = sub.add_parser("score")
    s.add_argument("labels", type=Path)
    args = parser.parse_args()
    if args.command == "collect":
        for pair in collect(args.home, args.sessions):
            sys.stdout.write(json.dumps(pair, ensure_ascii=False) + "\n")
    else:
        rows = [json.loads(line) for line in args.labels.read_text(encoding="utf-8").splitlines() if line.strip()]
        labelled = [r for r in rows if r.get("label")]
        report = {"all": score(labelled)}
        for part in ("calibration", "held out"):
            report[part] = score([r for r in labelled if r.get("batch", "").startswith(part)])
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
