"""Item content features for evaluation, read from the ingested store (the product's path).

One array and one presence mask per modality, read by ``prism.fused.item_arrays`` exactly as
the served fusion model reads them: text (the item's document vector in the English text
space), image (the poster's EfficientNet-Lite0 feature), caption and transcript (their
vectors in the text space), meta (hashed metadata, ``prism.metadata_features``). Items
without a modality get a zero row and a False mask bit; nothing is filled with noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prism.service import PrismService


@dataclass(frozen=True)
class ItemFeatures:
    item_ids: list[str]
    arrays: dict[str, np.ndarray]  # modality -> [N, d_modality]
    masks: dict[str, np.ndarray]  # modality -> [N] bool

    def __post_init__(self) -> None:
        if set(self.arrays) != set(self.masks):
            raise ValueError(f"arrays {sorted(self.arrays)} and masks {sorted(self.masks)} name different modalities")
        if bad := [m for m, a in self.arrays.items() if len(a) != len(self.item_ids) or len(self.masks[m]) != len(a)]:
            raise ValueError(f"modalities {bad} do not have one row per item ({len(self.item_ids)})")

    @classmethod
    def from_arrays(cls, item_ids: list[str], features: dict[str, np.ndarray],
                    masks: dict[str, np.ndarray]) -> "ItemFeatures":
        """From ``prism.fused.item_arrays``' (features, masks)."""
        return cls(list(item_ids), dict(features), dict(masks))

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.arrays)

    @property
    def text(self) -> np.ndarray:
        return self.arrays["text"]

    @property
    def text_mask(self) -> np.ndarray:
        return self.masks["text"]

    @property
    def image(self) -> np.ndarray:
        return self.arrays["image"]

    @property
    def image_mask(self) -> np.ndarray:
        return self.masks["image"]

    def with_modality(self, name: str, array: np.ndarray, mask: np.ndarray) -> "ItemFeatures":
        """A copy with modality ``name`` replaced (or added)."""
        return ItemFeatures(self.item_ids, {**self.arrays, name: array}, {**self.masks, name: mask})

    def both(self) -> np.ndarray:
        """Unit text and unit image vectors side by side (a missing half stays zero)."""
        return np.concatenate([_unit(self.text), _unit(self.image)], axis=1) / np.sqrt(2)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def load_item_features(service: PrismService, item_ids: list[str]) -> ItemFeatures:
    """Every modality's features for ``item_ids`` in that order, read the way the served fusion
    model reads them (``prism.fused.item_arrays``); raises if none of the items were ingested."""
    from prism.fused import item_arrays

    features, masks = item_arrays(service.store, service.settings, item_ids)
    if not masks["text"].any():
        raise LookupError(f"none of the {len(item_ids)} items are in the store at {service.settings.home}: "
                          "run `prism ingest` first")
    return ItemFeatures.from_arrays(item_ids, features, masks)
