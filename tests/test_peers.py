"""Cornac's models behind Prism's Recommender contract (evals.peers), checked against Prism's own."""

from __future__ import annotations

import numpy as np

from prism.evals.peers import PEERS, CornacPeer, peer_models, peers_available
from prism.fusion.collaborative import ItemItem
from prism.fusion.features import ItemFeatures
from prism.ranking.interactions import Interactions


def small(n_users: int = 60, n_items: int = 30, seed: int = 0) -> tuple[Interactions, ItemFeatures]:
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, n_users, 700), rng.integers(0, n_items - 1, 700)  # nobody rates the last item
    data = Interactions(users, items, np.ones(700, np.float32), np.arange(700), [f"u{u}" for u in range(n_users)],
                        [f"i{i}" for i in range(n_items)])
    features = ItemFeatures(data.item_ids, {"text": rng.random((n_items, 8)).astype(np.float32),
                                            "image": rng.random((n_items, 8)).astype(np.float32)},
                            {"text": np.ones(n_items, bool), "image": np.ones(n_items, bool)})
    return data, features


def test_cornac_ease_scores_like_prisms_own_item_item_weights():
    assert peers_available()  # the test extra installs Cornac
    data, features = small()
    peers = {m.name: m for m in peer_models(features, 0, None)}
    assert set(peers) == {f"Cornac-{p}" for p in PEERS}
    ease = peers["Cornac-EASE"].fit(data)
    ours = ItemItem.fit(data, lam=200.0)
    x = np.zeros((data.n_users, data.n_items), np.float32)
    x[data.users, data.items] = 1
    users = np.arange(data.n_users)
    theirs = ease.score(users)
    assert np.isneginf(theirs[:, -1]).all()  # an item Cornac never saw in training
    np.testing.assert_allclose(theirs[:, :-1], ours.scores(x)[:, :-1], atol=1e-4)


def test_a_seeded_cornac_peer_is_repeatable_and_fitted_on_its_rows():
    data, _ = small(seed=1)
    import cornac

    def bpr() -> CornacPeer:
        return CornacPeer("BPR", lambda: cornac.models.BPR(k=8, max_iter=20, seed=3, verbose=False))

    first, second = bpr().fit(data), bpr().fit(data)
    assert first.fitted_on == data.digest() and first.name == "Cornac-BPR"
    np.testing.assert_allclose(first.score(np.arange(5)), second.score(np.arange(5)))
