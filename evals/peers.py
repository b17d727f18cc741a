"""Peer recommenders from a maintained package, as optional baselines: Cornac's BPR, EASE and
VBPR (the poster features as its visual input), so that the suite's comparison does not rest on
Prism's own implementations only.

Cornac is an optional extra (``pip install prism-recommender[peers]``). ``peer_models`` returns
nothing when it is not installed, and ``peers_available`` says which peers the suite ran. Cornac's
LightGCN needs DGL, which is not installed here, so it is not offered.

Each peer trains on the split's train rows (every interaction counted once, as implicit
feedback) and scores every catalog item; an item Cornac never saw in training scores ``-inf``.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable

import numpy as np

from prism.fusion.features import ItemFeatures
from prism.ranking.interactions import Interactions
from prism.ranking.recommender import Recommender

PEERS = ("BPR", "EASE", "VBPR")


def peers_available() -> bool:
    return importlib.util.find_spec("cornac") is not None


class CornacPeer(Recommender):
    """One Cornac model behind Prism's ``Recommender`` contract; ``name`` is ``Cornac-{model}``."""

    def __init__(self, model: str, make: Callable[[], object], image: np.ndarray | None = None) -> None:
        self.name, self._make, self._image = f"Cornac-{model}", make, image
        self.info: dict = {}

    def fit(self, train: Interactions, validate=None) -> "CornacPeer":
        from cornac.data import Dataset, ImageModality  # deferred: Cornac is an optional extra

        started = time.perf_counter()
        pairs = np.unique(np.stack([train.users, train.items]), axis=1)
        data = Dataset.from_uir([(str(u), str(i), 1.0) for u, i in pairs.T.tolist()], seed=0)
        if self._image is not None:
            data.item_image = ImageModality(features=self._image, ids=[str(i) for i in range(len(self._image))],
                                            normalized=True)
            data.item_image.build(id_map=data.iid_map)
        self.model = self._make()
        self.model.fit(data)
        self.fitted_on, self.n_items = train.digest(), train.n_items
        self._users = data.uid_map
        self._columns = np.array([data.iid_map.get(str(i), -1) for i in range(train.n_items)])
        self.info["train_seconds"] = time.perf_counter() - started
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        out = np.full((len(users), self.n_items), -np.inf)
        known = self._columns >= 0
        for row, user in enumerate(np.asarray(users).tolist()):
            if (inner := self._users.get(str(user))) is not None:
                out[row, known] = np.asarray(self.model.score(inner)).reshape(-1)[self._columns[known]]
        return out


def peer_models(features: ItemFeatures, seed: int, suite) -> list[Recommender]:
    """A ``ModelFactory``: Cornac's BPR, EASE and VBPR, or nothing without Cornac."""
    if not peers_available():
        return []
    import cornac  # deferred: Cornac is an optional extra

    return [CornacPeer("BPR", lambda: cornac.models.BPR(k=64, max_iter=100, learning_rate=0.01, lambda_reg=0.001,
                                                        seed=seed, verbose=False)),
            CornacPeer("EASE", lambda: cornac.models.EASE(lamb=200, posB=False, verbose=False)),  # Steck's EASE
            CornacPeer("VBPR", lambda: cornac.models.VBPR(k=32, k2=32, n_epochs=20, batch_size=256, learning_rate=0.005,
                                                          seed=seed, verbose=False), image=features.image)]
