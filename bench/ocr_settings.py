"""OCR settings study on MovieLens posters: prints one JSON object.

For each RapidOCR setting (detection resize rule and side, angle classifier on or off) it
runs the same posters and reports seconds per poster (detection, classifier, recognition,
wall) and how well the poster's title is recovered: the share of the title's words (three
letters or more, article dropped) found in the lines Prism keeps (confidence >= 0.7), with
the default setting as the reference in the same run.

Usage: python bench/ocr_settings.py [--posters N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
from bench_output import emit, machine
from PIL import Image

from prism.catalog import read_catalog
from prism.tools.captioning.offline import MIN_OCR_CHARS, MIN_OCR_CONFIDENCE, restore_word_spaces

MOVIELENS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "movielens-100k-mm"
SETTINGS = {
    "default (min 736, cls)": {},
    "min 736, no cls": {"use_cls": False},
    "min 480, no cls": {"det_limit_type": "min", "det_limit_side_len": 480, "use_cls": False},
    "min 400, no cls": {"det_limit_type": "min", "det_limit_side_len": 400, "use_cls": False},
    "min 320, no cls": {"det_limit_type": "min", "det_limit_side_len": 320, "use_cls": False},
    "max 736, no cls": {"det_limit_type": "max", "det_limit_side_len": 736, "use_cls": False},
}
STOP = {"the", "and", "les", "der", "die", "das"}


def title_words(title: str) -> set[str]:
    title = re.sub(r"\(\d{4}\)", "", title)
    title = re.sub(r",\s*(The|A|An|Les|La|Le|Il|Das|Der|Die)\b", "", title)
    return {w for w in re.findall(r"[a-z0-9]+", title.lower()) if len(w) >= 3 and w not in STOP}


def ocr_words(lines: list[str]) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", " ".join(lines).lower()))


def posters(n: int) -> list[tuple[str, Path]]:
    rows = [r.item for r in read_catalog(MOVIELENS) if r.item is not None and r.item.images]
    rng = np.random.default_rng(0)
    picked = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    return [(rows[i].title, rows[i].images[0]) for i in sorted(picked)]


def run_setting(options: dict, sample: list[tuple[str, Path]]) -> tuple[dict, list[list[str]]]:
    from rapidocr_onnxruntime import RapidOCR

    use_cls = options.pop("use_cls", True)
    engine = RapidOCR(**options)
    images = [np.asarray(Image.open(path).convert("RGB")) for _, path in sample]
    engine(images[0], use_cls=use_cls)  # warm-up
    kept, recovered, totals = [], [], np.zeros(4)
    for (title, _), image in zip(sample, images):
        start = time.perf_counter()
        result, elapse = engine(image, use_cls=use_cls)
        wall = time.perf_counter() - start
        lines = [restore_word_spaces(str(t).strip()) for _, t, s in (result or [])
                 if float(s) >= MIN_OCR_CONFIDENCE and len(str(t).strip()) >= MIN_OCR_CHARS]
        kept.append(lines)
        words = title_words(title)
        if words:
            recovered.append(len(words & ocr_words(lines)) / len(words))
        det, cls, rec = (elapse or [0.0, 0.0, 0.0])
        totals += [det, cls, rec, wall]
    n = len(sample)
    return {"s_per_poster": {k: round(v / n, 4) for k, v in zip(["det", "cls", "rec", "wall"], totals)},
            "title_word_recall": round(float(np.mean(recovered)), 4),
            "posters_with_any_title_word": int(sum(r > 0 for r in recovered)),
            "posters_with_whole_title": int(sum(r == 1 for r in recovered)),
            "posters_with_lines": int(sum(bool(k) for k in kept))}, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posters", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sample = posters(args.posters)
    report = {"posters": len(sample), "source": MOVIELENS.name, "settings": {}}
    reference = None
    for name, options in SETTINGS.items():
        figures, kept = run_setting(dict(options), sample)
        if reference is None:
            reference = kept
        figures["same_lines_as_default"] = int(sum(a == b for a, b in zip(kept, reference)))
        figures["options"] = options
        report["settings"][name] = figures
        print(name, json.dumps(figures), flush=True)
    report["machine"] = machine()
    emit(report, args.out)


if __name__ == "__main__":
    main()
