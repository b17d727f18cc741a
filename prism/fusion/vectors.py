"""Fused item vectors: computed by the checkpoint in service, stored in its own Chroma space.

Each checkpoint's vectors live in the space ``fused-<first 12 hex digits of the checkpoint
file's sha256>`` (one entry per item, id ``"{item_id}|fused"``, metadata ``item_id``/``title``),
so vectors of different checkpoints never mix. Training fills the space for every stored
item; ingestion adds the items it writes (:func:`write_fused`); ``recommend`` backfills any
item still missing (:func:`ensure_fused`). A missing modality is masked, so an item with no
image (or nothing at all) still gets a vector.

A :class:`Store` keeps the fused vectors it has read or written in memory, per space (a 100k
catalog's vectors are 26 MB at 64-d): ``recommend`` scores the whole catalog on every call,
and reading every vector back from Chroma each time took most of its 1.9 s at 100,000 items.
Vectors written through the same ``Store`` replace their cached copies; one that another
process rewrites (an item updated by a separate ``prism ingest``) is read again only by a new
``Store`` (a restarted server).
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

from prism.fusion.checkpoints import Served
from prism.fusion.features import item_arrays
from prism.fusion.model import FusionModel, ItemEncoding, ItemInputs
from prism.settings import Settings
from prism.store import Store, VectorEntry

FUSED_FIELD = "fused"
ENCODE_BATCH = 1024
_CACHE: weakref.WeakKeyDictionary[Store, dict[str, dict[str, np.ndarray]]] = weakref.WeakKeyDictionary()


def _cached(store: Store, space: str) -> dict[str, np.ndarray]:
    """The fused vectors of ``space`` this store has read or written, by item id."""
    return _CACHE.setdefault(store, {}).setdefault(space, {})


def stored_inputs(store: Store, settings: Settings, item_ids: list[str], dims: dict[str, int]) -> ItemInputs:
    """The stored features of ``item_ids`` as model inputs, at a checkpoint's widths ``dims``."""
    return ItemInputs.from_numpy(*item_arrays(store, settings, item_ids, dims))


def encode(model: FusionModel, inputs: ItemInputs) -> ItemEncoding:
    """The model's item encoding of ``inputs`` (eval mode, no autocast), in batches."""
    model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(inputs), ENCODE_BATCH):
            rows = torch.arange(start, min(start + ENCODE_BATCH, len(inputs)))
            parts.append(model.encode_items(inputs.take(rows)))
    fields = ("vectors", "tokens", "mask", "weights")
    return ItemEncoding(*(torch.cat([getattr(p, f) for p in parts]) for f in fields))


def write_fused(store: Store, settings: Settings, served: Served, item_ids: list[str],
                titles: dict[str, str] | None = None) -> int:
    """Compute and upsert the fused vectors of ``item_ids`` into the served checkpoint's space.
    ``titles`` default to the stored item records' titles. Returns how many were written."""
    if not item_ids:
        return 0
    if titles is None:
        records = store.get_items(item_ids)
        titles = {i: str(r["metadata"].get("title", i)) for i, r in records.items()}
    vectors = encode(served.model, stored_inputs(store, settings, item_ids, served.checkpoint.config.dims))
    vectors_np = vectors.vectors.float().numpy()
    store.put_vectors(served.space, [
        VectorEntry(id=f"{item_id}|{FUSED_FIELD}", item_id=item_id, field=FUSED_FIELD,
                    text=titles.get(item_id, item_id), vector=vectors_np[row],
                    metadata={"title": titles.get(item_id, item_id)})
        for row, item_id in enumerate(item_ids)])
    _cached(store, served.space).update(zip(item_ids, vectors_np))
    return len(item_ids)


def ensure_fused(store: Store, settings: Settings, served: Served, item_ids: list[str]) -> np.ndarray:
    """The fused vectors of ``item_ids`` (in that order) from the served space; items without
    one (ingested while no checkpoint was current, or during training) get it now."""
    space = served.space
    cache = _cached(store, space)
    unread = [i for i in item_ids if i not in cache]
    if unread:
        found = store.get_vectors(space, [f"{i}|{FUSED_FIELD}" for i in unread])
        cache.update((entry_id.rsplit("|", 1)[0], vector) for entry_id, vector in found.items())
        missing = [i for i in unread if i not in cache]
        if missing:
            write_fused(store, settings, served, missing)
    return np.stack([cache[i] for i in item_ids]).astype(np.float32)
