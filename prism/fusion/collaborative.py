"""The collaborative half of Prism's ranker: item-to-item weights learned from who rated what,
and a user read as their recent history.

Weights (EASE, Steck 2019): with ``X`` the binary user × item matrix of the training rows,
``B = argmin ||X - X B||² + lam ||B||²`` subject to ``diag(B) = 0``, in closed form:
``P = (XᵀX + lam I)⁻¹``, ``B = -P / diag(P)`` column-wise, ``diag(B) = 0``. ``B[j, i]`` is how
much having item ``j`` predicts item ``i``: the two-hop item–item structure of the user–item
graph, fitted rather than propagated. One matrix inverse over the catalog, no epochs.

A user is a weighted row over the items they interacted with, most recent first:
``x[j] = mix + exp(-age_j / tau)``, ``age_j`` = how many of their interactions came after ``j``
(0 for the latest). ``tau`` = 0 gives the plain binary row. The score of item ``i`` is
``x · B[:, i]``; its parts ``x[j] * B[j, i]`` say which history items the score comes from
("people who liked j also liked i").

An item with no training interactions has an all-zero column: the collaborative half has
nothing to say about it, and :mod:`prism.fusion.hybrid` ranks it by content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prism.ranking.interactions import Interactions


def item_weights(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, lam: float) -> np.ndarray:
    """``B`` [n_items, n_items] float32 (module docstring) from interaction rows; an item
    nobody interacted with gets an all-zero row and column."""
    x = np.zeros((n_users, n_items), dtype=np.float64)
    x[users, items] = 1.0
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += lam
    precision = np.linalg.inv(gram)
    weights = -precision / np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    unseen = x.sum(0) == 0
    weights[unseen, :] = 0.0
    weights[:, unseen] = 0.0
    return weights.astype(np.float32)


def recency_profiles(users: np.ndarray, items: np.ndarray, times: np.ndarray, n_users: int, n_items: int,
                     tau: float, mix: float) -> np.ndarray:
    """``[n_users, n_items]`` rows ``mix + exp(-age / tau)`` over each user's items (module
    docstring); ``tau`` = 0: 1 for every item. Ties in time: the later row is the more recent.
    An item seen twice keeps its most recent weight."""
    users, items, times = (np.asarray(a, dtype=np.int64) for a in (users, items, times))
    order = np.lexsort((-np.arange(len(users)), -times, users))  # per user, most recent first
    u, i = users[order], items[order]
    starts = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=n_users))[:-1]])
    age = np.arange(len(u)) - starts[u]
    weight = np.ones(len(u)) if tau <= 0 else mix + np.exp(-age / tau)
    profiles = np.zeros((n_users, n_items), dtype=np.float32)
    np.maximum.at(profiles, (u, i), weight.astype(np.float32))
    return profiles


@dataclass
class ItemItem:
    """Fitted item–item weights and the recency reading of users (module docstring)."""

    weights: np.ndarray  # B [n_items, n_items]
    counts: np.ndarray  # [n_items] users who interacted with each item in training
    lam: float
    tau: float
    mix: float

    @classmethod
    def fit(cls, train: Interactions, lam: float, tau: float = 0.0, mix: float = 0.0) -> "ItemItem":
        pairs = np.unique(np.stack([train.users, train.items]), axis=1)
        counts = np.bincount(pairs[1], minlength=train.n_items)
        return cls(item_weights(train.users, train.items, train.n_users, train.n_items, lam), counts, lam, tau, mix)

    def reading(self, tau: float, mix: float) -> "ItemItem":
        """The same weights with another recency reading of users (no refit)."""
        return ItemItem(self.weights, self.counts, self.lam, tau, mix)

    def profiles(self, rows: Interactions) -> np.ndarray:
        """Every user's recency-weighted row over ``rows`` (their history)."""
        return recency_profiles(rows.users, rows.items, rows.times, rows.n_users, rows.n_items, self.tau, self.mix)

    def scores(self, profiles: np.ndarray) -> np.ndarray:
        """``[n, n_items]`` collaborative scores of ``profiles`` [n, n_items]."""
        return profiles @ self.weights

    def because(self, profile: np.ndarray, item: int, top: int = 3) -> list[tuple[int, float]]:
        """The history items behind ``item``'s score for a user: ``(item, x[j] * B[j, item])``,
        largest first, positive parts only."""
        parts = profile * self.weights[:, item]
        best = np.argsort(-parts, kind="stable")[:top]
        return [(int(j), float(parts[j])) for j in best if parts[j] > 0]
