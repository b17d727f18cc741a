"""The contract every ranker keeps: the served fusion model, the evaluation baselines, any peer.

A ``Recommender`` has ``name``, ``fit(train, validate)``, ``score(users) -> [B, n_items]``
and ``fitted_on`` (the digest of the rows it was fitted on, checked by the leakage guard in
:mod:`prism.ranking.splits`). ``validate(model) -> float`` returns a validation metric
(:func:`prism.ranking.protocol.validator`); iterative models use it for early stopping.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from prism.ranking.interactions import Interactions

Validate = Callable[["Recommender"], float]


class Recommender:
    name = "base"
    fitted_on: str | None = None
    info: dict

    def fit(self, train: Interactions, validate: Validate | None = None) -> "Recommender":
        raise NotImplementedError

    def score(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def n_parameters(self) -> int:
        return 0
