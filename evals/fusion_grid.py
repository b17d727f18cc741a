"""The fusion models the evaluation suites run: the strategy × modality grid, and aligned retrieval.

``fusion_models`` is a ``ModelFactory`` for ``run_suite(extra_models=[...])`` over
``DEFAULT_GRID``; ``fusion_factory(grid)`` builds one over a subset (a small suite can run one
or two models). :func:`aligned_retrieval` measures text↔image retrieval in a trained model's
token space against an unaligned twin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from prism.evals.crossmodal import retrieval_recall
from prism.fusion.features import ItemFeatures
from prism.fusion.hybrid import HybridRecommender
from prism.fusion.model import FUSIONS, FusionModel
from prism.fusion.recommender import FusionRecommender
from prism.fusion.train import FusionTrainConfig
from prism.ranking.recommender import Recommender
from prism.settings import Settings

if TYPE_CHECKING:
    from prism.evals.suite import Suite

MODALITY_SETS: tuple[tuple[str, ...], ...] = (("text",), ("image",), ("text", "image"))
# Every fusion strategy × modality set (a single modality makes the strategies nearly equal,
# which is itself a check: differences there are noise).
DEFAULT_GRID: tuple[tuple[str, tuple[str, ...]], ...] = tuple((f, m) for f in FUSIONS for m in MODALITY_SETS)


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


def served_factory(fusion: str = "attention", modalities: Sequence[str] | None = None,
                   train_config: FusionTrainConfig | None = None
                   ) -> Callable[[ItemFeatures, int, "Suite"], list[Recommender]]:
    """A ``ModelFactory`` for the ranker ``prism train`` serves (:mod:`prism.fusion.hybrid`), by
    default over the served modalities (``Settings.fusion_modalities``) the features have."""
    base = train_config or FusionTrainConfig()
    wanted = tuple(modalities or Settings.model_fields["fusion_modalities"].default)

    def factory(features: ItemFeatures, seed: int, suite: "Suite") -> list[Recommender]:
        tc = replace(base, seed=seed, max_epochs=min(base.max_epochs, suite.max_epochs))
        return [HybridRecommender(features, fusion, tuple(m for m in wanted if m in features.arrays), train_config=tc)]

    return factory


def fusion_models(features: ItemFeatures, seed: int, suite: "Suite") -> list[Recommender]:
    """The ``ModelFactory`` over ``DEFAULT_GRID`` (4 fusion strategies × text, image, text+image)."""
    return fusion_factory()(features, seed, suite)


@torch.no_grad()
def _token_retrieval(model: FusionModel, features: ItemFeatures, rows: np.ndarray,
                     ks: Sequence[int]) -> dict[str, dict[str, float]]:
    encoded = model.encode_items(features.inputs(model.config.modalities).take(torch.as_tensor(rows)))
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
    fitted = model.require_model()
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
        unaligned.fit(model.train_rows, model.validate)
    return {"aligned": _token_retrieval(fitted, features, rows, ks),
            "unaligned (align_weight=0)": _token_retrieval(unaligned.require_model(), features, rows, ks)}
