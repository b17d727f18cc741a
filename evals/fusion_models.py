"""The Prism fusion model as an evaluation ``Recommender``, its model grid, and aligned retrieval.

``FusionRecommender`` trains ``prism.fusion`` on a split's train rows (early stopping on the
``validate`` callback) and scores users by their train-history representation against every
item's fused vector, so cold items are ranked from their content. ``fusion_models`` is a
``ModelFactory`` for ``evals.suite.run_suite(extra_models=[...])`` over ``DEFAULT_GRID``;
``fusion_factory(grid)`` builds one over a subset (a small suite can run one or two models).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from evals.baselines import Recommender, Validate
from evals.crossmodal import retrieval_recall
from evals.features import ItemFeatures
from evals.interactions import Interactions
from prism.fusion.model import FUSIONS, Explanation, FusionConfig, FusionModel, ItemInputs, build_history, explain
from prism.fusion.train import FusionTrainConfig, autocast, save_checkpoint, train_fusion

if TYPE_CHECKING:
    from evals.suite import Suite

MODALITY_SETS: tuple[tuple[str, ...], ...] = (("text",), ("image",), ("text", "image"))
# Every fusion strategy × modality set (a single modality makes the strategies nearly equal,
# which is itself a check: differences there are noise).
DEFAULT_GRID: tuple[tuple[str, tuple[str, ...]], ...] = tuple((f, m) for f in FUSIONS for m in MODALITY_SETS)


def item_inputs(features: ItemFeatures, modalities: Sequence[str] | None = None) -> ItemInputs:
    """The features of ``modalities`` (default: all) with their masks, as model inputs (CPU tensors)."""
    names = tuple(modalities or features.modalities)
    return ItemInputs.from_numpy({m: features.arrays[m] for m in names}, {m: features.masks[m] for m in names})


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
        self.inputs = item_inputs(features, modalities)
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
        self._train, self._validate = train, validate
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
            model = self._require_model()
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
        model = self._require_model()
        history, mask = self.history[0][user], self.history[1][user]
        return explain(model, self.inputs, history, mask, torch.as_tensor(list(items), dtype=torch.long),
                       user if model.config.use_user_id else None, top_history)

    def save(self, path: str | Path) -> Path:
        """A checkpoint of the trained model with its data hash and training metrics."""
        model = self._require_model()
        metrics = {k: v for k, v in self.info.items() if k not in ("config", "train_config", "data_hash")}
        return save_checkpoint(path, model, model.config, self.info["data_hash"], metrics)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self._require_model().parameters())

    def _require_model(self) -> FusionModel:
        if self.model is None:
            raise RuntimeError(f"{self.name} is not fitted")
        return self.model


def fusion_factory(grid: Sequence[tuple[str, Sequence[str]]] = DEFAULT_GRID, overrides: dict | None = None,
                   train_config: FusionTrainConfig | None = None
                   ) -> Callable[[ItemFeatures, int, "Suite"], list[Recommender]]:
    """A ``ModelFactory`` for the (fusion, modalities) pairs in ``grid``; the seed comes from
    the suite run and ``max_epochs`` is capped by the suite's budget."""
    base = train_config or FusionTrainConfig()

    def factory(features: ItemFeatures, seed: int, suite: "Suite") -> list[Recommender]:
        tc = replace(base, seed=seed, max_epochs=min(base.max_epochs, suite.max_epochs))
        return [FusionRecommender(features, fusion, tuple(modalities), overrides, tc) for fusion, modalities in grid]

    return factory


def fusion_models(features: ItemFeatures, seed: int, suite: "Suite") -> list[Recommender]:
    """The ``ModelFactory`` over ``DEFAULT_GRID`` (4 fusion strategies × text, image, text+image)."""
    return fusion_factory()(features, seed, suite)


@torch.no_grad()
def _token_retrieval(model: FusionModel, features: ItemFeatures, rows: np.ndarray,
                     ks: Sequence[int]) -> dict[str, dict[str, float]]:
    encoded = model.encode_items(item_inputs(features, model.config.modalities).take(torch.as_tensor(rows)))
    names = model.config.modalities
    text, image = (encoded.tokens[:, names.index(m)].float().cpu().numpy() for m in ("text", "image"))
    return {"text_to_image": retrieval_recall(text, image, ks), "image_to_text": retrieval_recall(image, text, ks)}


def aligned_retrieval(model: FusionRecommender, features: ItemFeatures, rows: np.ndarray,
                      unaligned: FusionRecommender | None = None,
                      ks: Sequence[int] = (1, 5, 10)) -> dict[str, dict[str, dict[str, float]]]:
    """Text→image and image→text ``retrieval_recall`` among ``rows`` (items lacking either
    modality are dropped) in the token space of the fitted text+image ``model`` and of an
    ``unaligned`` counterpart (align_weight = 0). Without ``unaligned``, one is trained with the
    same config on the same train rows and validation. For an honest number, ``rows`` should be
    items the models never trained on (e.g. a cold-items split's held-out items)."""
    fitted = model._require_model()
    if not {"text", "image"} <= set(fitted.config.modalities):
        raise ValueError(f"{model.name} does not use both text and image")
    if not fitted.config.aligns:
        raise ValueError(f"{model.name} is not aligned (align_weight = 0)")
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows[features.text_mask[rows] & features.image_mask[rows]]
    if len(rows) < 2:
        raise ValueError("aligned retrieval needs at least two items with both text and image")
    if unaligned is None:
        unaligned = FusionRecommender(features, fitted.config.fusion, fitted.config.modalities,
                                      {**model.overrides, "align_weight": 0.0}, model.train_config, label="-unaligned")
        unaligned.fit(model._train, model._validate)
    return {"aligned": _token_retrieval(fitted, features, rows, ks),
            "unaligned (align_weight=0)": _token_retrieval(unaligned._require_model(), features, rows, ks)}
