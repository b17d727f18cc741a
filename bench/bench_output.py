"""What every benchmark script prints: latency summaries, the machine it ran on, and the report
as one JSON object (also written to ``--out`` when given)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np


def latency_summary(values: list[float], digits: int = 2) -> dict:
    """n, p50, p95 and max of ``values`` (``{"n": 0}`` for none)."""
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(float(np.percentile(values, 50)), digits),
            "p95": round(float(np.percentile(values, 95)), digits), "max": round(max(values), digits)}


def machine() -> dict:
    return {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(), "platform": platform.platform()}


def emit(report: dict, out: str | Path | None, ensure_ascii: bool = False) -> None:
    """Print ``report`` as indented JSON and write the same text to ``out`` if given."""
    text = json.dumps(report, indent=1, ensure_ascii=ensure_ascii)
    if out:
        Path(out).write_text(text)
    print(text)
