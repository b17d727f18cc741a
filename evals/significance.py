"""Paired significance over users: is model A better than model B on the same users?"""

from __future__ import annotations

import numpy as np


def paired_bootstrap(a: np.ndarray, b: np.ndarray, samples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Bootstrap the mean per-user difference ``a - b`` (users resampled with replacement).

    Returns the observed difference, its 95% interval and a two-sided p-value (twice the
    share of resampled differences on the other side of zero, capped at 1).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired arrays must have one shared 1-d shape, got {a.shape} and {b.shape}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    observed = float(diff.mean())
    if observed >= 0:
        tail = float((means <= 0).mean())
    else:
        tail = float((means >= 0).mean())
    return {
        "diff": observed,
        "ci_low": float(np.quantile(means, 0.025)),
        "ci_high": float(np.quantile(means, 0.975)),
        "p_value": min(1.0, 2 * tail),
    }
