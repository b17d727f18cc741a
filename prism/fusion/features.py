"""What the fusion model reads of an item: one array and one presence mask per modality.

Where each modality comes from (``MODALITY_SOURCES``): text (the item's document vector in
the English text space), image (the first poster's EfficientNet-Lite0 feature), caption and
transcript (their vectors in the text space), meta (hashed metadata,
:mod:`prism.fusion.metadata`). Serving, training and evaluation all read items through
:func:`item_arrays`, so they see the same numbers. Items without a modality get a zero row
and a False mask bit; nothing is filled with noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prism import spaces
from prism.errors import InputError
from prism.fusion.metadata import META_DIM, metadata_vector
from prism.fusion.model import ItemInputs
from prism.settings import Settings
from prism.store import Store

# Where each modality the fusion model can read comes from: (space kind, entry field).
# text/caption/transcript are vectors in the English text space, image the first poster's
# EfficientNet feature, meta the hashed item metadata (prism.fusion.metadata).
MODALITY_SOURCES: dict[str, tuple[str, str]] = {
    "text": ("text", "document"),
    "image": ("image", "image:0"),
    "caption": ("text", "caption:0"),
    "transcript": ("text", "transcript:0"),
    "meta": ("meta", "meta"),
}


def catalog_order(item_ids: list[str]) -> list[str]:
    """The item axis used everywhere (the evaluation suite's order): by length, then text."""
    return sorted(item_ids, key=lambda i: (len(i), i))


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
        """From :func:`item_arrays`' (features, masks)."""
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

    def inputs(self, modalities: Sequence[str] | None = None) -> ItemInputs:
        """The features of ``modalities`` (default: all) with their masks, as model inputs (CPU tensors)."""
        names = tuple(modalities or self.modalities)
        return ItemInputs.from_numpy({m: self.arrays[m] for m in names}, {m: self.masks[m] for m in names})

    def both(self) -> np.ndarray:
        """Unit text and unit image vectors side by side (a missing half stays zero)."""
        return np.concatenate([_unit(self.text), _unit(self.image)], axis=1) / np.sqrt(2)


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def item_arrays(store: Store, settings: Settings, item_ids: list[str], dims: dict[str, int] | None = None,
                modalities: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(features, masks)`` of ``item_ids`` for ``modalities`` (default: the keys of ``dims``,
    else every one in ``MODALITY_SOURCES``), read from the store; a missing modality is a zero
    row and a False mask bit. ``dims`` (a checkpoint's) fixes the widths; a stored vector of
    another width is an error (the store was ingested with another encoder)."""
    wanted = tuple(modalities or (dims or MODALITY_SOURCES))
    if unknown := [m for m in wanted if m not in MODALITY_SOURCES]:
        raise InputError(f"unknown modalities {unknown}; Prism reads {', '.join(MODALITY_SOURCES)}")
    features, masks = {}, {}
    for name in wanted:
        space, field = MODALITY_SOURCES[name]
        if space == "meta":
            records = store.get_items(item_ids)
            found = {f"{i}|meta": metadata_vector(records[i]["metadata"]) for i in item_ids if i in records}
            default = META_DIM
        else:
            space_name = (spaces.text_space(settings) if space == "text" else spaces.image_space(settings)).name
            found = store.get_vectors(space_name, [f"{i}|{field}" for i in item_ids])
            default = 384 if space == "text" else 1280
        width = (dims or {}).get(name) or (len(next(iter(found.values()))) if found else default)
        rows = np.zeros((len(item_ids), width), dtype=np.float32)
        for row, item_id in enumerate(item_ids):
            vector = found.get(f"{item_id}|{field}")
            if vector is None:
                continue
            if len(vector) != width:
                raise InputError(f"item '{item_id}' has a {len(vector)}-d {name} vector, the fusion model expects "
                                 f"{width}-d: retrain with `prism train` after changing encoders")
            rows[row] = vector
        features[name], masks[name] = rows, np.linalg.norm(rows, axis=1) > 0
    return features, masks


def stored_item_features(store: Store, settings: Settings, item_ids: list[str],
                         modalities: Sequence[str] | None = None) -> ItemFeatures:
    """The features of ``item_ids`` in that order (default: every modality), read the way the
    served fusion model reads them; raises LookupError if none of the items were ingested."""
    features, masks = item_arrays(store, settings, item_ids, modalities=modalities)
    if not any(mask.any() for mask in masks.values()):
        raise LookupError(f"none of the {len(item_ids)} items are in the store at {settings.home}: "
                          "run `prism ingest` first")
    return ItemFeatures.from_arrays(item_ids, features, masks)
