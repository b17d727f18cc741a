"""Prism's ranker: collaborative item–item weights where an item has history, the fused
multimodal content where it has little or none, mixed per item by how much history it has.

For a user ``u`` and item ``i``::

    score(u, i) = z_u(collab)[i] + w * k / (k + n_i) * z_u(content)[i]

* ``collab`` = :class:`prism.fusion.collaborative.ItemItem` (EASE weights, the user read as
  their recency-weighted history);
* ``content`` = the fusion model's score (:class:`prism.fusion.recommender.FusionRecommender`:
  any of the four strategies, missing modalities masked);
* ``z_u`` standardises a user's scores over the catalog (mean 0, deviation 1), so the two halves
  are on one scale;
* ``n_i`` = users who interacted with ``i`` in training: the gate ``k / (k + n_i)`` trusts
  content fully for an item nobody has rated (a cold item, whose collaborative column is zero)
  and less the more history the item has.

``fit`` trains the fusion model (early stopping on validation, as alone), then picks ``lam``,
the recency reading (``tau``, ``mix``) and the gate (``w``, ``k``) on the same validation
metric from small grids (each a closed-form fit or a re-weighting: seconds, no epochs). ``w`` is
never 0, so among cold items the order is the content model's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np

from prism.fusion.collaborative import ItemItem
from prism.fusion.features import ItemFeatures
from prism.fusion.recommender import FusionRecommender
from prism.fusion.train import FusionTrainConfig
from prism.ranking.interactions import Interactions
from prism.ranking.recommender import Recommender, Validate

LAMS = (100.0, 200.0, 400.0)
READINGS = ((0.0, 0.0), (10.0, 0.1), (10.0, 0.3), (10.0, 1.0), (20.0, 0.3), (20.0, 1.0))  # (tau, mix)
GATES = tuple(product((0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0), (2.0, 10.0, 50.0)))  # (w, k)
DEFAULT = {"lam": 200.0, "tau": 10.0, "mix": 0.1, "w": 0.1, "k": 10.0}  # used without validation


def standardise(scores: np.ndarray) -> np.ndarray:
    """Each row to mean 0, deviation 1 (a constant row to 0)."""
    spread = scores.std(axis=1, keepdims=True)
    return (scores - scores.mean(axis=1, keepdims=True)) / np.where(spread > 0, spread, 1.0)


def blend(collab: np.ndarray, content: np.ndarray, counts: np.ndarray, gate: tuple[float, float]) -> np.ndarray:
    """The hybrid score (module docstring) of rows of collaborative and content scores over
    the same items; ``counts`` = each item's training users."""
    w, k = gate
    return standardise(collab) + w * (k / (k + counts))[None, :] * standardise(content)


@dataclass
class CollaborativePart:
    """What serving needs of a fitted hybrid besides the fusion checkpoint: the item–item
    weights over the items it was trained on (by id) and the gate. Saved as one ``.npz``."""

    collab: ItemItem
    item_ids: list[str]
    gate: tuple[float, float]

    def __post_init__(self) -> None:
        # Built once per loaded part (checkpoints caches parts), not on every request.
        self.index = {item_id: j for j, item_id in enumerate(self.item_ids)}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with path.open("wb") as handle:
            c = self.collab
            np.savez(handle, weights=c.weights, counts=c.counts, item_ids=np.array(self.item_ids, dtype=str),
                     params=np.array([c.lam, c.tau, c.mix, *self.gate], dtype=np.float64))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "CollaborativePart":
        with np.load(Path(path), allow_pickle=False) as data:
            lam, tau, mix, w, k = data["params"].tolist()
            return cls(ItemItem(data["weights"], data["counts"], lam, tau, mix), data["item_ids"].tolist(), (w, k))


class HybridRecommender(Recommender):
    """``name`` is ``Prism-hybrid-{fusion}-{modalities}``; the content half is a
    :class:`FusionRecommender` built from the same arguments (``content``)."""

    def __init__(self, features: ItemFeatures, fusion: str = "attention",
                 modalities: Sequence[str] = ("text", "image"), overrides: dict | None = None,
                 train_config: FusionTrainConfig | None = None, label: str = "") -> None:
        self.content = FusionRecommender(features, fusion, modalities, overrides, train_config)
        self.name = f"Prism-hybrid-{fusion}-{'+'.join(modalities)}{label}"
        self.collab: ItemItem | None = None
        self.gate = (DEFAULT["w"], DEFAULT["k"])
        self.info: dict = {}
        self._memo: dict | None = None  # the halves' scores by user batch, kept only while fitting

    def fit(self, train: Interactions, validate: Validate | None = None) -> "HybridRecommender":
        self.fitted_on = train.digest()
        self.content.fit(train, validate)  # early stopping on the content model's own validation score
        started = time.perf_counter()
        choices: list[tuple[float, dict]] = []
        fits = {lam: ItemItem.fit(train, lam) for lam in (LAMS if validate else (DEFAULT["lam"],))}
        self.train_rows = train
        # The grids re-score the same validation users 39 times, but the content half never changes
        # and the collaborative half only with (lam, reading): each is computed once per batch.
        self._memo = {}
        if validate is None:
            self._use(fits[DEFAULT["lam"]].reading(DEFAULT["tau"], DEFAULT["mix"]), (DEFAULT["w"], DEFAULT["k"]))
        else:
            # The collaborative half first (its best reading with the smallest gate), then the gate.
            for lam, (tau, mix) in product(LAMS, READINGS):
                self._use(fits[lam].reading(tau, mix), GATES[0])
                choices.append((validate(self), {"lam": lam, "tau": tau, "mix": mix}))
            best = max(choices, key=lambda c: c[0])[1]
            collab = fits[best["lam"]].reading(best["tau"], best["mix"])
            gates = []
            for gate in GATES:
                self._use(collab, gate)
                gates.append((validate(self), gate))
            value, gate = max(gates, key=lambda g: g[0])
            self._use(collab, gate)
            self.info["val_ndcg@20_hybrid"] = value
            self.info["grid"] = [(v, c) for v, c in choices] + [(v, {"w": g[0], "k": g[1]}) for v, g in gates]
        self.info.update(self.content.info)
        self.info.update(collab_seconds=time.perf_counter() - started, lam=self.collab.lam, tau=self.collab.tau,
                         mix=self.collab.mix, w=self.gate[0], k=self.gate[1])
        self.info["train_seconds"] = self.content.info.get("train_seconds", 0.0) + self.info["collab_seconds"]
        self._memo = None
        return self

    def _use(self, collab: ItemItem, gate: tuple[float, float]) -> None:
        reading = (collab.tau, collab.mix)
        if getattr(self, "_reading", None) != reading:  # the gate grid keeps one reading: read users once
            self._profiles, self._reading = collab.profiles(self.train_rows), reading
        self.collab, self.gate = collab, gate

    def score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users)
        return blend(*self._halves(users), self.collab.counts, self.gate)

    def _halves(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._memo is None:
            return self.collab.scores(self._profiles[users]), self.content.score(users)
        batch, collab_key = users.tobytes(), (self.collab.lam, self._reading)
        if self._memo.get("collab_key") != collab_key:
            self._memo.update(collab_key=collab_key, collab={})
        if batch not in self._memo["collab"]:
            self._memo["collab"][batch] = self.collab.scores(self._profiles[users])
        content = self._memo.setdefault("content", {})
        if batch not in content:
            content[batch] = self.content.score(users)
        return self._memo["collab"][batch], content[batch]

    def part(self) -> CollaborativePart:
        """The fitted collaborative half and gate, by item id, for serving."""
        return CollaborativePart(self.collab, list(self.train_rows.item_ids), self.gate)

    def n_parameters(self) -> int:
        return self.content.n_parameters() + int(np.count_nonzero(self.collab.weights))
