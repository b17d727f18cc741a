"""Baseline recommenders, trained on one split's train rows and selected on its validation.

Every model has ``name``, ``fit(train, validate)``, ``score(users) -> [B, n_items]`` and
``fitted_on`` (the digest of the rows it was fitted on, checked by the leakage guard).
``validate(model) -> float`` returns validation NDCG@20; iterative models use it for early
stopping, the others for choosing a hyperparameter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from prism.ranking.interactions import Interactions
from prism.ranking.recommender import Recommender


def binary_matrix(train: Interactions) -> np.ndarray:
    """Dense users × items 0/1 matrix of the train interactions (small data sets only)."""
    m = np.zeros((train.n_users, train.n_items), dtype=np.float32)
    m[train.users, train.items] = 1.0
    return m


class Popularity(Recommender):
    """Items ranked by the number of train interactions, the same list for everyone."""

    name = "Popularity"

    def fit(self, train, validate=None):
        self.counts = np.bincount(train.items, minlength=train.n_items).astype(np.float32)
        self.fitted_on, self.info = train.digest(), {}
        return self

    def score(self, users):
        return np.broadcast_to(self.counts, (len(users), len(self.counts)))


class RandomScores(Recommender):
    """Uniformly random scores (fixed seed): the floor every model must clear."""

    name = "Random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, train, validate=None):
        self.scores = np.random.default_rng(self.seed).random(train.n_items).astype(np.float32)
        self.fitted_on, self.info = train.digest(), {}
        return self

    def score(self, users):
        rng = np.random.default_rng([self.seed, *np.asarray(users).tolist()[:1]])
        return rng.random((len(users), len(self.scores)))


class ItemKNN(Recommender):
    """Item-item cosine similarity on the interaction matrix, top-``k`` neighbours kept;
    ``k`` chosen on validation."""

    name = "ItemKNN"

    def __init__(self, neighbours: tuple[int, ...] = (20, 50, 100, 200)) -> None:
        self.neighbours = neighbours

    def fit(self, train, validate=None):
        self.matrix = binary_matrix(train)
        norms = np.sqrt(self.matrix.sum(axis=0))
        full = (self.matrix.T @ self.matrix) / np.maximum(np.outer(norms, norms), 1e-9)
        np.fill_diagonal(full, 0.0)
        self.fitted_on, self.info = train.digest(), {"val_ndcg@20": {}}
        best = (-1.0, None)
        for k in self.neighbours if validate else self.neighbours[-1:]:
            self.sim = _keep_top(full, k)
            if validate:
                value = validate(self)
                self.info["val_ndcg@20"][k] = value
                if value > best[0]:
                    best = (value, k)
        if validate:
            self.sim = _keep_top(full, best[1])
            self.info["k"] = best[1]
        return self

    def score(self, users):
        return self.matrix[users] @ self.sim

    def n_parameters(self):
        return int(np.count_nonzero(self.sim))


def _keep_top(sim: np.ndarray, k: int) -> np.ndarray:
    """Keep each item's ``k`` most similar neighbours (columns), zero the rest."""
    if k >= sim.shape[0]:
        return sim
    cut = np.partition(sim, -k, axis=0)[-k]
    return np.where(sim >= cut[None, :], sim, 0.0).astype(np.float32)


class ContentKNN(Recommender):
    """A user's profile is the mean of their train items' content vectors; items are ranked by
    cosine similarity to it. Works for items never seen in training (cold start)."""

    def __init__(self, vectors: np.ndarray, label: str) -> None:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0).astype(np.float32)
        self.name = f"ContentKNN-{label}"

    def fit(self, train, validate=None):
        matrix = binary_matrix(train)
        profiles = matrix @ self.vectors
        self.profiles = profiles / np.maximum(np.linalg.norm(profiles, axis=1, keepdims=True), 1e-9)
        self.fitted_on, self.info = train.digest(), {}
        return self

    def score(self, users):
        return self.profiles[users] @ self.vectors.T


@dataclass
class TrainConfig:
    dim: int = 64
    # Chosen on leave-last-one validation NDCG@20 (lr 1e-2 / wd 1e-3 beat 5e-3 / 1e-4).
    lr: float = 1e-2
    weight_decay: float = 1e-3
    batch_size: int = 4096
    max_epochs: int = 300
    eval_every: int = 5
    patience: int = 5
    seed: int = 0
    layers: int = 3  # LightGCN only
    history: list = field(default_factory=list)


def sample_negatives(train: Interactions, users: np.ndarray, rng: np.random.Generator,
                     seen: set[tuple[int, int]]) -> np.ndarray:
    """One item per user that the user has not interacted with in train (rejection sampling)."""
    negatives = rng.integers(0, train.n_items, size=len(users))
    for row, (u, j) in enumerate(zip(users.tolist(), negatives.tolist())):
        while (u, j) in seen:
            j = int(rng.integers(0, train.n_items))
        negatives[row] = j
    return negatives


class _EmbeddingModel(Recommender):
    """Shared BPR training loop with early stopping on validation NDCG@20."""

    def __init__(self, config: TrainConfig | None = None) -> None:
        self.config = config or TrainConfig()

    def build(self, train: Interactions) -> nn.Module:
        raise NotImplementedError

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def fit(self, train, validate=None):
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.module = self.build(train)
        optimiser = torch.optim.Adam(self.module.parameters(), lr=cfg.lr)
        seen = train.pairs()
        best, best_state, bad, started = -1.0, None, 0, time.perf_counter()
        self.fitted_on, self.info = train.digest(), {"epochs": 0, "val_ndcg@20": []}
        for epoch in range(1, cfg.max_epochs + 1):
            self.module.train()
            order = rng.permutation(len(train))
            for start in range(0, len(order), cfg.batch_size):
                rows = order[start:start + cfg.batch_size]
                u = torch.from_numpy(train.users[rows])
                i = torch.from_numpy(train.items[rows])
                j = torch.from_numpy(sample_negatives(train, train.users[rows], rng, seen))
                users, items = self.embeddings()
                pos = (users[u] * items[i]).sum(-1)
                neg = (users[u] * items[j]).sum(-1)
                reg = (users[u].pow(2).sum() + items[i].pow(2).sum() + items[j].pow(2).sum()) / len(rows)
                loss = nn.functional.softplus(neg - pos).mean() + cfg.weight_decay * reg
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            self.info["epochs"] = epoch
            self._cache = None
            if validate and epoch % cfg.eval_every == 0:
                value = validate(self)
                self.info["val_ndcg@20"].append((epoch, value))
                if value > best:
                    best, bad = value, 0
                    best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
                else:
                    bad += 1
                    if bad >= cfg.patience:
                        break
        if best_state is not None:
            self.module.load_state_dict(best_state)
            self.info["best_epoch"] = max(self.info["val_ndcg@20"], key=lambda e: e[1])[0]
        self._cache = None
        self.info["train_seconds"] = time.perf_counter() - started
        self.info["seconds_per_epoch"] = self.info["train_seconds"] / max(self.info["epochs"], 1)
        return self

    def score(self, users):
        if getattr(self, "_cache", None) is None:
            self.module.eval()
            with torch.no_grad():
                self._cache = tuple(t.numpy() for t in self.embeddings())
        user_emb, item_emb = self._cache
        return user_emb[users] @ item_emb.T

    def n_parameters(self):
        return sum(p.numel() for p in self.module.parameters())


class BPRMF(_EmbeddingModel):
    """Matrix factorisation trained with the BPR pairwise loss (Rendle et al., 2009)."""

    name = "BPR-MF"

    def build(self, train):
        module = nn.Module()
        module.user = nn.Embedding(train.n_users, self.config.dim)
        module.item = nn.Embedding(train.n_items, self.config.dim)
        nn.init.normal_(module.user.weight, std=0.1)
        nn.init.normal_(module.item.weight, std=0.1)
        return module

    def embeddings(self):
        return self.module.user.weight, self.module.item.weight


class LightGCN(_EmbeddingModel):
    """Embeddings smoothed over the normalised user-item graph, layers averaged (He et al., 2020)."""

    name = "LightGCN"

    def build(self, train):
        n_u, n_i = train.n_users, train.n_items
        pairs = np.unique(np.stack([train.users, train.items]), axis=1)
        rows = np.concatenate([pairs[0], pairs[1] + n_u])
        cols = np.concatenate([pairs[1] + n_u, pairs[0]])
        degree = np.bincount(rows, minlength=n_u + n_i).astype(np.float32)
        inv_sqrt = np.where(degree > 0, degree, 1.0) ** -0.5
        values = inv_sqrt[rows] * inv_sqrt[cols]
        self.graph = torch.sparse_coo_tensor(np.stack([rows, cols]), values, (n_u + n_i, n_u + n_i),
                                             check_invariants=True).coalesce()
        self.n_users = n_u
        module = nn.Module()
        module.embedding = nn.Embedding(n_u + n_i, self.config.dim)
        nn.init.normal_(module.embedding.weight, std=0.1)
        return module

    def embeddings(self):
        x = self.module.embedding.weight
        layers = [x]
        for _ in range(self.config.layers):
            x = torch.sparse.mm(self.graph, x)
            layers.append(x)
        out = torch.stack(layers).mean(0)
        return out[: self.n_users], out[self.n_users:]
