"""Item content features for evaluation, read from the ingested store (the product's path).

Text: the item's document vector in the English text space. Image: the poster's
EfficientNet-Lite0 feature. Items without a modality get a zero row and a False mask bit;
nothing is filled with noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prism.service import PrismService


@dataclass(frozen=True)
class ItemFeatures:
    item_ids: list[str]
    text: np.ndarray  # [N, d_text]
    text_mask: np.ndarray  # [N] bool
    image: np.ndarray  # [N, d_image]
    image_mask: np.ndarray  # [N] bool

    @classmethod
    def from_arrays(cls, item_ids: list[str], features: dict[str, np.ndarray],
                    masks: dict[str, np.ndarray]) -> "ItemFeatures":
        """From ``prism.fused.item_arrays``' (features, masks) of the text and image modalities."""
        return cls(item_ids, features["text"], masks["text"], features["image"], masks["image"])

    def both(self) -> np.ndarray:
        """Unit text and unit image vectors side by side (a missing half stays zero)."""
        return np.concatenate([_unit(self.text), _unit(self.image)], axis=1) / np.sqrt(2)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def load_item_features(service: PrismService, item_ids: list[str]) -> ItemFeatures:
    """Features for ``item_ids`` in that order, read the way the served fusion model reads them
    (``prism.fused.item_arrays``); raises if none of the items were ingested."""
    from prism.fused import item_arrays

    features, masks = item_arrays(service.store, service.settings, item_ids)
    if not masks["text"].any():
        raise LookupError(f"none of the {len(item_ids)} items are in the store at {service.settings.home}: "
                          "run `prism ingest` first")
    return ItemFeatures.from_arrays(item_ids, features, masks)
