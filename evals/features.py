"""Item content features for evaluation, read from the ingested store (the product's path).

Text: the item's document vector in the English text space. Image: the poster's
EfficientNet-Lite0 feature. Items without a modality get a zero row and a False mask bit;
nothing is filled with noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prism import spaces
from prism.service import PrismService


@dataclass(frozen=True)
class ItemFeatures:
    item_ids: list[str]
    text: np.ndarray  # [N, d_text]
    text_mask: np.ndarray  # [N] bool
    image: np.ndarray  # [N, d_image]
    image_mask: np.ndarray  # [N] bool

    def both(self) -> np.ndarray:
        """Unit text and unit image vectors side by side (a missing half stays zero)."""
        return np.concatenate([_unit(self.text), _unit(self.image)], axis=1) / np.sqrt(2)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def load_item_features(service: PrismService, item_ids: list[str]) -> ItemFeatures:
    """Features for ``item_ids`` in that order; raises if none of the items were ingested."""
    store, settings = service.store, service.settings
    text = store.get_vectors(spaces.text_space(settings).name, [f"{i}|document" for i in item_ids])
    image = store.get_vectors(spaces.image_space(settings).name, [f"{i}|image:0" for i in item_ids])
    if not text:
        raise LookupError(f"none of the {len(item_ids)} items are in the store at {settings.home}: run `prism ingest` first")
    text_dim = len(next(iter(text.values())))
    image_dim = len(next(iter(image.values()))) if image else 1280
    text_rows = np.zeros((len(item_ids), text_dim), dtype=np.float32)
    image_rows = np.zeros((len(item_ids), image_dim), dtype=np.float32)
    for row, item_id in enumerate(item_ids):
        if (v := text.get(f"{item_id}|document")) is not None:
            text_rows[row] = v
        if (v := image.get(f"{item_id}|image:0")) is not None:
            image_rows[row] = v
    return ItemFeatures(item_ids, text_rows, np.linalg.norm(text_rows, axis=1) > 0,
                        image_rows, np.linalg.norm(image_rows, axis=1) > 0)
