"""The fusion model as a :class:`~prism.ranking.recommender.Recommender`: trained on a split's
train rows, scoring users by their history against every item's fused vector.

``prism train`` serves it (:mod:`prism.fusion.pipeline`) and the evaluation suites compare it
with the baselines; cold items are ranked from their content alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from prism.fusion.features import ItemFeatures
from prism.fusion.model import Explanation, FusionConfig, FusionModel, build_history, explain
from prism.fusion.train import FusionTrainConfig, autocast, save_checkpoint, train_fusion
from prism.ranking.interactions import Interactions
from prism.ranking.recommender import Recommender, Validate


class FusionRecommender(Recommender):
    """``name`` is ``Prism-{fusion}-{modalities joined by +}`` (plus ``label`` when given).

    ``overrides`` are FusionConfig fields (dims come from ``features``); ``train_config``
    the training budget. After ``fit``, ``model`` is the trained FusionModel and ``info`` its
    training info; scores are cached until the next fit."""

    def __init__(self, features: ItemFeatures, fusion: str = "attention",
                 modalities: Sequence[str] = ("text", "image"), overrides: dict | None = None,
                 train_config: FusionTrainConfig | None = None, label: str = "") -> None:
        if missing := [m for m in modalities if m not in features.arrays]:
            raise ValueError(f"no features for modalities {missing} (have {list(features.modalities)})")
        self.features = features
        self.inputs = features.inputs(modalities)
        self.overrides = dict(overrides or {})
        self.config = FusionConfig(modalities=tuple(modalities), fusion=fusion,
                                   dims={m: features.arrays[m].shape[1] for m in modalities}, **self.overrides)
        self.train_config = train_config or FusionTrainConfig()
        self.name = f"Prism-{fusion}-{'+'.join(modalities)}{label}"
        self.model: FusionModel | None = None
        self.info: dict = {}
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def fit(self, train: Interactions, validate: Validate | None = None) -> "FusionRecommender":
        if train.n_items != len(self.inputs):
            raise ValueError(f"{self.name}: train has {train.n_items} items, the features {len(self.inputs)}")
        self.train_rows, self.validate = train, validate
        self.fitted_on = train.digest()
        self.history = build_history(train.users, train.items, train.times, train.n_users, self.config.max_history)
        config = replace(self.config, n_users=train.n_users, n_items=train.n_items)

        def on_validation(model: FusionModel) -> float:
            self.model, self._cache = model, None
            return validate(self)

        self.model, self.info = train_fusion(config, self.inputs, train, on_validation if validate else None,
                                             self.train_config)
        self._cache = None
        return self

    @torch.no_grad()
    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(user vectors [n_users, d], item vectors [n_items, d]), both unit-normalised and the
        users divided by the temperature, so ``users @ items.T`` is the model's score."""
        if self._cache is None:
            model = self.require_model()
            device = model.empty.device
            model.eval()
            with autocast(device):
                items = model.encode_items(self.inputs).vectors.float()
                history, mask = (t.to(device) for t in self.history)
                users = torch.arange(len(history), device=device) if model.config.use_user_id else None
                user_vectors = model.encode_users(items, history, mask, users).vectors.float()
            unit_items = torch.nn.functional.normalize(items, dim=-1)
            unit_users = torch.nn.functional.normalize(user_vectors, dim=-1) / model.config.temperature
            self._cache = (unit_users.cpu().numpy(), unit_items.cpu().numpy())
        return self._cache

    def score(self, users: np.ndarray) -> np.ndarray:
        user_vectors, item_vectors = self.vectors()
        return user_vectors[np.asarray(users)] @ item_vectors.T

    def explain(self, user: int, items: Sequence[int], top_history: int = 3) -> list[Explanation]:
        """Modality weights and the history items behind ``user``'s scores of ``items``."""
        model = self.require_model()
        history, mask = self.history[0][user], self.history[1][user]
        return explain(model, self.inputs, history, mask, torch.as_tensor(list(items), dtype=torch.long),
                       user if model.config.use_user_id else None, top_history)

    def save(self, path: str | Path) -> Path:
        """A checkpoint of the trained model with its data hash and training metrics."""
        model = self.require_model()
        metrics = {k: v for k, v in self.info.items() if k not in ("config", "train_config", "data_hash")}
        return save_checkpoint(path, model, model.config, self.info["data_hash"], metrics)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.require_model().parameters())

    def require_model(self) -> FusionModel:
        if self.model is None:
            raise RuntimeError(f"{self.name} is not fitted")
        return self.model
