"""``prism train``: fit Prism's ranker (:mod:`prism.fusion.hybrid`: the fusion model and the
collaborative item–item half) on the ratings over the stored items, save and register both,
and write every stored item's fused vector."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from prism import spaces
from prism.errors import InputError
from prism.fusion.checkpoints import CURRENT, NAME, CurrentCheckpoint, Served, current, fusion_dir, set_current
from prism.fusion.features import ItemFeatures, catalog_order, item_arrays
from prism.fusion.hybrid import HybridRecommender
from prism.fusion.model import FUSIONS
from prism.fusion.train import FusionTrainConfig, load_checkpoint, resolve_device, save_checkpoint
from prism.fusion.vectors import write_fused
from prism.ranking.interactions import Interactions, read_ratings, restrict_items
from prism.ranking.protocol import validator
from prism.ranking.splits import Split, leave_last_one
from prism.settings import Settings
from prism.store import Store
from prism.weights import sha256_file


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
    hybrid_val_ndcg20: float | None = Field(
        None, description="Validation NDCG@20 of the served ranker (collaborative + content, gate chosen on it).")
    collaborative: dict[str, float] = Field(
        default_factory=dict, description="The collaborative half: lam (ridge), tau and mix (recency reading of a "
        "user's history), w and k (the content gate), as chosen on validation.")
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


def train(store: Store, settings: Settings, ratings: Path, min_rating: float | None = None, fusion: str = "attention",
          epochs: int = 30, device: str = "auto", seed: int = 0, name: str | None = None,
          log: Callable[[str], None] | None = None) -> TrainSummary:
    """Train the fusion model on ``ratings`` over the stored items, save and register the
    checkpoint, and write every stored item's fused vector into the checkpoint's space.

    Validation (early stopping and the kept state): each user's latest interaction is held
    out (users with at least three interactions, ``prism.ranking.splits.leave_last_one``'s rule)
    and ranked by ``prism.ranking.protocol.validator``; the model trains on the rest. The state of the best
    validation epoch is kept and served; no retraining on the held-out rows.
    """
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
    model = HybridRecommender(item_features, fusion, modalities,
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
    fusion_model = model.content.require_model()
    save_checkpoint(path, fusion_model, fusion_model.config, info["data_hash"], metrics)
    sha = sha256_file(path)
    collab_path = model.part().save(path.with_name(f"{name}.collab.npz"))
    pointer = CurrentCheckpoint(name=name, path=str(path.resolve()), sha256=sha,
                                space=spaces.fused_space(sha).name, ratings=str(ratings.resolve()),
                                min_rating=min_rating, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                collaborative=str(collab_path.resolve()), collaborative_sha256=sha256_file(collab_path))
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
        hybrid_val_ndcg20=info.get("val_ndcg@20_hybrid"),
        collaborative={k: float(info[k]) for k in ("lam", "tau", "mix", "w", "k")},
        seconds_per_epoch=info["seconds_per_epoch"], train_seconds=info["train_seconds"], items=len(catalog),
        users=data.n_users, interactions=len(train_rows), validation_interactions=len(held.test),
        fused_vectors=written, ratings=str(ratings), min_rating=min_rating, seed=seed, data_hash=info["data_hash"])
