"""The fusion model in service: training on the store, the checkpoint registry, fused vectors.

Layout under ``PRISM_HOME/models/fusion/``:

* ``<name>.pt``: checkpoints written by :func:`prism.fusion.train.save_checkpoint` (config,
  weights, data hash, metrics).
* ``current.json``: the pointer to the checkpoint in service (its path, sha256, fused space,
  and the ratings file and ``min_rating`` it was trained on, which ``recommend`` reads
  histories from).

The fused item vectors of a checkpoint live in their own Chroma space,
``fused-<first 12 hex digits of the checkpoint file's sha256>`` (one entry per item, id
``"{item_id}|fused"``, metadata ``item_id``/``title``), so vectors of different checkpoints
never mix. Training fills the space for every stored item; ingestion adds the items it writes
(:func:`write_fused`, called by :class:`prism.ingest.Ingestor`); ``recommend`` backfills any
item still missing (:func:`ensure_fused`). An item's inputs are the checkpoint's modalities,
read per ``MODALITY_SOURCES`` (document, caption and transcript vectors in the text space, the
first image feature, hashed metadata); a missing one is masked, so an item with no image (or
nothing at all) still gets a vector.

Serving runs on the CPU in float32, so a vector does not depend on where it was computed.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from prism import spaces
from prism.weights import sha256_file
from prism.errors import InputError, PrismError
from prism.metadata_features import META_DIM, metadata_vector
from prism.settings import Settings
from prism.store import Store, VectorEntry

if TYPE_CHECKING:
    from prism.fusion.model import FusionModel, ItemEncoding, ItemInputs
    from prism.fusion.train import Checkpoint
    from prism.service import PrismService

CURRENT = "current.json"
FUSED_FIELD = "fused"
# Where each modality the fusion model can read comes from: (space kind, entry field).
# text/caption/transcript are vectors in the English text space, image the first poster's
# EfficientNet feature, meta the hashed item metadata (prism.metadata_features).
MODALITY_SOURCES: dict[str, tuple[str, str]] = {
    "text": ("text", "document"),
    "image": ("image", "image:0"),
    "caption": ("text", "caption:0"),
    "transcript": ("text", "transcript:0"),
    "meta": ("meta", "meta"),
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ENCODE_BATCH = 1024


class NoCheckpointError(PrismError):
    """No fusion checkpoint is in service yet."""


class CurrentCheckpoint(BaseModel):
    """The pointer file ``current.json``."""

    name: str
    path: str
    sha256: str
    space: str
    ratings: str | None = None
    min_rating: float | None = None
    created: str


class TrainSummary(BaseModel):
    """What ``prism train`` did."""

    name: str
    path: str = Field(description="The checkpoint file.")
    sha256: str
    space: str = Field(description="The Chroma space holding this checkpoint's fused item vectors.")
    fusion: str
    modalities: list[str]
    device: str
    epochs: int = Field(description="Epochs run (early stopping may end before the budget).")
    max_epochs: int
    best_epoch: int
    best_val_ndcg20: float | None = Field(
        None, description="Validation NDCG@20 of the kept state (each user's latest interaction held out); "
        "None when no user had the three interactions a held-out one needs.")
    val_ndcg20: list[tuple[int, float]] = []
    seconds_per_epoch: float
    train_seconds: float
    items: int
    users: int
    interactions: int = Field(description="Training interactions (validation rows excluded).")
    validation_interactions: int
    fused_vectors: int
    ratings: str
    min_rating: float | None = None
    seed: int
    data_hash: str


def fusion_dir(settings: Settings) -> Path:
    return settings.home / "models" / "fusion"


def catalog_order(item_ids: list[str]) -> list[str]:
    """The item axis used everywhere (the evaluation suite's order): by length, then text."""
    return sorted(item_ids, key=lambda i: (len(i), i))


# --- the registry -------------------------------------------------------------------------
def current(settings: Settings) -> CurrentCheckpoint | None:
    """The pointer to the checkpoint in service, or None when there is none."""
    pointer = fusion_dir(settings) / CURRENT
    if not pointer.is_file():
        return None
    try:
        return CurrentCheckpoint.model_validate_json(pointer.read_text())
    except ValueError as error:
        raise NoCheckpointError(f"the fusion checkpoint pointer {pointer} is unreadable ({error}): "
                                "run `prism train` again") from error


def set_current(settings: Settings, pointer: CurrentCheckpoint) -> None:
    """Make ``pointer`` the checkpoint in service (atomic write)."""
    target = fusion_dir(settings) / CURRENT
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(pointer.model_dump_json(indent=2))
    os.replace(tmp, target)


@dataclass
class Served:
    """The checkpoint in service, loaded on the CPU."""

    pointer: CurrentCheckpoint
    checkpoint: "Checkpoint"

    @property
    def model(self) -> "FusionModel":
        return self.checkpoint.model

    @property
    def space(self) -> str:
        return self.pointer.space


_LOADED: dict[tuple[str, str, float], "Checkpoint"] = {}


def load_current(settings: Settings) -> Served | None:
    """The checkpoint in service (None when there is none), loaded once per process per file
    version. Raises CheckpointError when the file is gone, corrupt or changed since it was
    made current."""
    pointer = current(settings)
    if pointer is None:
        return None
    from prism.fusion.train import CheckpointError, load_checkpoint

    path = Path(pointer.path)
    if not path.is_file():
        raise CheckpointError(f"the current fusion checkpoint {path} does not exist: run `prism train` again")
    key = (str(path), pointer.sha256, path.stat().st_mtime)
    if key not in _LOADED:
        if (actual := sha256_file(path)) != pointer.sha256:
            raise CheckpointError(f"the current fusion checkpoint {path} changed since it was made current "
                                  f"(sha256 {actual[:12]}…, expected {pointer.sha256[:12]}…): "
                                  "run `prism train` again")
        if len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = load_checkpoint(path, "cpu")
    return Served(pointer, _LOADED[key])


def require_current(settings: Settings) -> Served:
    """Like :func:`load_current`, but no checkpoint is an error telling what to run."""
    served = load_current(settings)
    if served is None:
        raise NoCheckpointError(f"no fusion model has been trained for the store at {settings.home}: "
                                "run `prism train` first")
    return served


# --- item inputs and fused vectors -----------------------------------------------------------
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


def item_inputs(store: Store, settings: Settings, item_ids: list[str], dims: dict[str, int]) -> "ItemInputs":
    from prism.fusion.model import ItemInputs

    return ItemInputs.from_numpy(*item_arrays(store, settings, item_ids, dims))


def encode(model: "FusionModel", inputs: "ItemInputs") -> "ItemEncoding":
    """The model's item encoding of ``inputs`` (eval mode, no autocast), in batches."""
    import torch

    from prism.fusion.model import ItemEncoding

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
    vectors = encode(served.model, item_inputs(store, settings, item_ids, served.checkpoint.config.dims))
    vectors_np = vectors.vectors.float().numpy()
    store.put_vectors(served.space, [
        VectorEntry(id=f"{item_id}|{FUSED_FIELD}", item_id=item_id, field=FUSED_FIELD,
                    text=titles.get(item_id, item_id), vector=vectors_np[row],
                    metadata={"title": titles.get(item_id, item_id)})
        for row, item_id in enumerate(item_ids)])
    return len(item_ids)


def ensure_fused(store: Store, settings: Settings, served: Served, item_ids: list[str]) -> np.ndarray:
    """The fused vectors of ``item_ids`` (in that order) from the served space; items without
    one (ingested while no checkpoint was current, or during training) get it now."""
    space = served.space
    found = store.get_vectors(space, [f"{i}|{FUSED_FIELD}" for i in item_ids])
    missing = [i for i in item_ids if f"{i}|{FUSED_FIELD}" not in found]
    if missing:
        write_fused(store, settings, served, missing)
        found.update(store.get_vectors(space, [f"{i}|{FUSED_FIELD}" for i in missing]))
    return np.stack([found[f"{i}|{FUSED_FIELD}"] for i in item_ids]).astype(np.float32)


# --- training -------------------------------------------------------------------------------
def train(service: "PrismService", ratings: Path, min_rating: float | None = None, fusion: str = "attention",
          epochs: int = 30, device: str = "auto", seed: int = 0, name: str | None = None,
          log: Callable[[str], None] | None = None) -> TrainSummary:
    """Train the fusion model on ``ratings`` over the stored items, save and register the
    checkpoint, and write every stored item's fused vector into the checkpoint's space.

    Validation (early stopping and the kept state): each user's latest interaction is held
    out (users with at least three interactions, ``evals.splits.leave_last_one``'s rule) and
    ranked by ``evals.protocol.validator``; the model trains on the rest. The state of the best
    validation epoch is kept and served; no retraining on the held-out rows.
    """
    from evals.features import ItemFeatures
    from evals.fusion_models import FusionRecommender
    from evals.interactions import Interactions, read_ratings, restrict_items
    from evals.protocol import validator
    from evals.splits import Split, leave_last_one
    from prism.fusion.model import FUSIONS
    from prism.fusion.train import FusionTrainConfig, load_checkpoint, resolve_device, save_checkpoint

    settings, store = service.settings, service.store
    if fusion not in FUSIONS:
        raise InputError(f"unknown fusion '{fusion}'; choose one of {', '.join(FUSIONS)}")
    if epochs < 1:
        raise InputError(f"epochs must be at least 1, got {epochs}")
    try:
        resolved = resolve_device(device)
    except (RuntimeError, ValueError) as error:
        raise InputError(str(error)) from error
    name = name or f"{fusion}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not NAME.match(name) or name == Path(CURRENT).stem:
        raise InputError(f"checkpoint name '{name}' must be letters, digits, '.', '_' or '-' (and not 'current')")
    catalog = catalog_order(store.all_item_ids())
    if not catalog:
        raise InputError(f"the store at {settings.home} holds no items: run `prism ingest` first")

    ratings = Path(ratings)
    data = read_ratings(ratings)
    if min_rating is not None:
        data = data.subset(data.ratings >= min_rating)
    data, _ = restrict_items(data, catalog)
    if len(data) == 0:
        raise InputError(f"none of the ratings in {ratings}" + (f" at or above {min_rating}" if min_rating else "")
                         + f" are about the {len(catalog)} items in the store")

    held = leave_last_one(data)  # test = each user's latest interaction (users with >= 3)
    train_rows = Interactions(*(np.concatenate([getattr(held.train, f), getattr(held.val, f)])
                                for f in ("users", "items", "ratings", "times")),
                              user_ids=data.user_ids, item_ids=data.item_ids)
    split = Split("leave_last_one", train_rows, held.test, held.test)
    validate = validator(split) if len(held.test) else None

    modalities = tuple(dict.fromkeys(settings.fusion_modalities))
    item_features = ItemFeatures.from_arrays(catalog, *item_arrays(store, settings, catalog, modalities=modalities))
    model = FusionRecommender(item_features, fusion, modalities,
                              train_config=FusionTrainConfig(max_epochs=epochs, seed=seed, device=str(resolved)))
    if log:
        log(f"training {model.name} on {len(train_rows)} interactions of {data.n_users} users × {len(catalog)} "
            f"items ({len(held.test)} held out for validation) on {resolved}")
    model.fit(train_rows, validate)
    info = model.info

    path = fusion_dir(settings) / f"{name}.pt"
    metrics = {k: v for k, v in info.items() if k not in ("config", "data_hash")}
    metrics.update(ratings=str(ratings.resolve()), min_rating=min_rating, items=len(catalog), users=data.n_users,
                   interactions=len(train_rows), validation_interactions=len(held.test), seed=seed)
    save_checkpoint(path, model._require_model(), model._require_model().config, info["data_hash"], metrics)
    sha = sha256_file(path)
    pointer = CurrentCheckpoint(name=name, path=str(path.resolve()), sha256=sha,
                                space=spaces.fused_space(sha).name, ratings=str(ratings.resolve()),
                                min_rating=min_rating, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    # Fused vectors come from the saved file (CPU), exactly what serving and ingestion compute.
    served = Served(pointer, load_checkpoint(path, "cpu"))
    written = write_fused(store, settings, served, catalog)
    previous = current(settings)
    set_current(settings, pointer)
    # Keep the new space and the one it replaces (a rollback needs only the pointer file);
    # older fused spaces would otherwise pile up with every retraining.
    keep = {pointer.space} | ({previous.space} if previous else set())
    for space in store.spaces("fused-"):
        if space not in keep:
            store.drop_space(space)
    return TrainSummary(
        name=name, path=str(path), sha256=sha, space=pointer.space, fusion=fusion, modalities=list(modalities),
        device=info["device"], epochs=info["epochs"], max_epochs=epochs, best_epoch=info["best_epoch"],
        best_val_ndcg20=info.get("best_val_ndcg@20"), val_ndcg20=[(int(e), float(v)) for e, v in info["val_ndcg@20"]],
        seconds_per_epoch=info["seconds_per_epoch"], train_seconds=info["train_seconds"], items=len(catalog),
        users=data.n_users, interactions=len(train_rows), validation_interactions=len(held.test),
        fused_vectors=written, ratings=str(ratings), min_rating=min_rating, seed=seed, data_hash=info["data_hash"])
