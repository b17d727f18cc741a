"""Evaluate one fitted model on one split, the same way for every model.

Users with at least one test interaction are ranked over the candidate items (the whole
catalog, or the held-out items for cold start). Items the user is known to have consumed
before the test window (train and validation rows) are masked.
"""

from __future__ import annotations

import numpy as np

from prism.ranking.metrics import KS, evaluate, group_by_user
from prism.ranking.recommender import Recommender
from prism.ranking.splits import Split, check_fitted_on, validation_view


def known_items(split: Split, include_val: bool) -> dict[int, np.ndarray]:
    known = group_by_user(split.train)
    if include_val:
        for user, items in group_by_user(split.val).items():
            known[user] = np.concatenate([known.get(user, np.zeros(0, dtype=np.int64)), items])
    return known


def evaluate_on(model: Recommender, split: Split, item_vectors: np.ndarray | None = None,
                ks=KS) -> tuple[dict[str, float], dict[str, np.ndarray], np.ndarray]:
    """(aggregates, per-user metrics, evaluated user indices) of ``model`` on ``split.test``."""
    check_fitted_on(model.name, model.fitted_on, split)
    is_validation = split.name.endswith("/val")
    targets = group_by_user(split.test)
    users = np.array(sorted(targets), dtype=np.int64)
    known = known_items(split, include_val=not is_validation)
    empty = np.zeros(0, dtype=np.int64)
    aggregates, per_user = evaluate(
        model.score, users, [targets[u] for u in users], [known.get(int(u), empty) for u in users],
        split.candidates, split.train, split.test, item_vectors, ks,
    )
    return aggregates, per_user, users


def validator(split: Split, metric: str = "ndcg@20"):
    """``validate(model)``: the model's validation ``metric`` on this split (never test)."""
    view = validation_view(split)

    def validate(model: Recommender) -> float:
        aggregates, _, _ = evaluate_on(model, view, ks=(20,) if metric.endswith("@20") else KS)
        return aggregates[metric]

    return validate
