"""Training the fusion model: device choice, seeds, the epoch loop, early stopping, checkpoints.

``train_fusion`` fits a ``FusionModel`` on implicit interactions. Each step takes a batch of
(user, item) rows; the user is their train history (most recent ``max_history`` items, the
target item itself hidden), the items are encoded once per step for the unique items the batch
touches, and the loss is the recommendation loss plus ``align_weight`` × InfoNCE over the
batch's positive items. On CUDA the forward pass runs under bf16 autocast; on the CPU in float32.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from prism.errors import CheckpointError
from prism.fusion.model import FusionConfig, FusionModel, ItemInputs, build_history

CHECKPOINT_FORMAT = "prism-fusion-checkpoint"
CHECKPOINT_VERSION = 1


class InteractionRows(Protocol):
    """Parallel int arrays, one row per interaction (``prism.ranking.interactions.Interactions`` fits)."""

    users: np.ndarray
    items: np.ndarray
    times: np.ndarray


@dataclass
class FusionTrainConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-4  # AdamW, decoupled: zero-initialised id rows of unseen items stay zero
    batch_size: int = 2048
    max_epochs: int = 30
    eval_every: int = 1
    patience: int = 3  # evaluations without improvement before stopping
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    grad_clip: float = 5.0
    bpr_resample: int = 10  # BPR: rounds of re-drawing negatives the user has already seen


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU. Asking for ``cuda`` without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got '{name}'")
    return torch.device(name)


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA; a disabled context elsewhere (CPU runs in float32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def data_hash(items: ItemInputs, interactions: InteractionRows) -> str:
    """sha256 over the interaction rows and every modality's features and masks."""
    h = hashlib.sha256()
    for array in (interactions.users, interactions.items, interactions.times):
        h.update(np.ascontiguousarray(np.asarray(array, dtype=np.int64)).tobytes())
    for name in sorted(items.features):
        h.update(name.encode())
        h.update(items.features[name].detach().cpu().float().contiguous().numpy().tobytes())
        h.update(items.masks[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _negatives(users: np.ndarray, n_items: int, seen: np.ndarray, rng: np.random.Generator, rounds: int) -> np.ndarray:
    """Uniform items, re-drawn (up to ``rounds`` times) where (user, item) is in ``seen`` (sorted keys)."""
    negatives = rng.integers(0, n_items, size=len(users))
    for _ in range(rounds):
        keys = users * n_items + negatives
        hit = seen[np.minimum(np.searchsorted(seen, keys), len(seen) - 1)] == keys
        if not hit.any():
            break
        negatives[hit] = rng.integers(0, n_items, size=int(hit.sum()))
    return negatives


def train_fusion(config: FusionConfig, items: ItemInputs, interactions: InteractionRows,
                 validate: Callable[[FusionModel], float] | None = None,
                 train_config: FusionTrainConfig | None = None,
                 log: Callable[[str], None] | None = None) -> tuple[FusionModel, dict]:
    """Fit a model on ``interactions`` (user and item indices; items index rows of ``items``).

    ``config.n_items`` / ``n_users`` left at 0 are filled from the data (the returned model's
    ``config`` is the one used). ``validate(model) -> float`` (validation NDCG@20, higher is
    better; the model arrives in eval mode) runs every ``eval_every`` epochs; training stops
    after ``patience`` evaluations without improvement and the best state is restored.

    Returns ``(model, info)``; info holds ``epochs``, ``best_epoch``, ``seconds_per_epoch``
    (training only, validation excluded), ``val_ndcg@20`` [(epoch, value)], ``loss``
    [(epoch, recommendation, alignment)], ``device``, ``data_hash`` and ``train_seconds``.
    """
    tc = train_config or FusionTrainConfig()
    users_np = np.asarray(interactions.users, dtype=np.int64)
    items_np = np.asarray(interactions.items, dtype=np.int64)
    if len(users_np) == 0:
        raise ValueError("train_fusion needs at least one interaction")
    n_items = len(items)
    n_users = config.n_users or int(users_np.max()) + 1
    config = FusionConfig.from_dict({**config.to_dict(), "n_items": config.n_items or n_items, "n_users": n_users})
    if config.n_items != n_items or items_np.max() >= n_items or users_np.max() >= n_users:
        raise ValueError(f"interactions index {int(users_np.max()) + 1} users / {int(items_np.max()) + 1} items, "
                         f"but the config has {n_users} users / {config.n_items} items and the inputs {n_items} items")
    if missing := [m for m in config.modalities if m not in items.features]:
        raise ValueError(f"the item inputs lack modalities {missing}")

    device = resolve_device(tc.device)
    set_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    model = FusionModel(config).to(device)
    inputs = items.to(device)
    history, history_mask = (t.to(device) for t in build_history(
        users_np, items_np, np.asarray(interactions.times), n_users, config.max_history))
    counts = np.bincount(items_np, minlength=n_items)
    log_q = torch.from_numpy(np.log(np.maximum(counts, 1) / len(items_np))).float().to(device)
    seen = np.unique(users_np * n_items + items_np)
    optimiser = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)

    info: dict = {"epochs": 0, "best_epoch": None, "val_ndcg@20": [], "loss": [], "device": str(device),
                  "data_hash": data_hash(items, interactions), "config": config.to_dict(),
                  "train_config": asdict(tc)}
    best, best_state, bad, train_seconds, val_seconds = -float("inf"), None, 0, 0.0, 0.0
    for epoch in range(1, tc.max_epochs + 1):
        started = time.perf_counter()
        model.train()
        order = rng.permutation(len(users_np))
        totals = np.zeros(2)
        for start in range(0, len(order), tc.batch_size):
            rows = order[start:start + tc.batch_size]
            u_np, i_np = users_np[rows], items_np[rows]
            u, i = torch.from_numpy(u_np).to(device), torch.from_numpy(i_np).to(device)
            hist = history[u]
            hist_mask = history_mask[u] & (hist != i[:, None])  # never let the target explain itself
            parts = [i, hist.flatten()]
            if config.loss == "bpr":
                parts.append(torch.from_numpy(_negatives(u_np, n_items, seen, rng, tc.bpr_resample)).to(device))
            unique, inverse = torch.unique(torch.cat(parts), return_inverse=True)
            b, hl = len(i), hist.numel()
            with autocast(device):
                encoded = model.encode_items(inputs.take(unique), unique, config.modality_dropout)
                vectors = encoded.vectors
                user = model.encode_users(vectors, inverse[b:b + hl].view_as(hist), hist_mask,
                                          u if config.use_user_id else None)
                negatives = vectors[inverse[b + hl:]] if config.loss == "bpr" else None
                rec = model.recommendation_loss(user.vectors, vectors[inverse[:b]], i, negatives,
                                                log_q[i] if config.logq_correction else None)
                positive_rows = torch.unique(inverse[:b])
                align = model.alignment_loss(encoded.tokens[positive_rows], encoded.mask[positive_rows])
                loss = rec + config.align_weight * align
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimiser.step()
            totals += (float(rec.detach()) * b, float(align.detach()) * b)
        train_seconds += time.perf_counter() - started
        info["epochs"] = epoch
        info["loss"].append((epoch, *(totals / len(order)).tolist()))
        if validate is not None and epoch % tc.eval_every == 0:
            started = time.perf_counter()
            model.eval()
            value = float(validate(model))
            val_seconds += time.perf_counter() - started
            info["val_ndcg@20"].append((epoch, value))
            if log:
                log(f"epoch {epoch}: loss {info['loss'][-1][1]:.4f} align {info['loss'][-1][2]:.4f} "
                    f"val ndcg@20 {value:.4f}")
            if value > best:
                best, bad, info["best_epoch"] = value, 0, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
                if bad >= tc.patience:
                    break
        elif log:
            log(f"epoch {epoch}: loss {info['loss'][-1][1]:.4f} align {info['loss'][-1][2]:.4f}")
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        info["best_epoch"] = info["epochs"]
    model.eval()
    info["train_seconds"] = train_seconds
    info["validation_seconds"] = val_seconds
    info["seconds_per_epoch"] = train_seconds / max(info["epochs"], 1)
    if best_state is not None:
        info["best_val_ndcg@20"] = best
    return model, info


def _versions() -> dict[str, str]:
    out = {"torch": str(torch.__version__), "numpy": str(np.__version__)}
    try:
        out["prism-recommender"] = version("prism-recommender")
    except PackageNotFoundError:
        pass
    return out


def save_checkpoint(path: str | Path, model: FusionModel, config: FusionConfig, data_hash: str,
                    metrics: dict) -> Path:
    """Write one ``torch.save`` file: format tag, config dict, CPU state dict, data hash,
    metrics (JSON-able; numpy scalars become floats) and library versions. Atomic (temp file
    + rename), so a crash never leaves a half-written checkpoint under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "data_hash": str(data_hash),
        "metrics": json.loads(json.dumps(metrics, default=float)),
        "versions": _versions(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


@dataclass
class Checkpoint:
    model: FusionModel  # in eval mode
    config: FusionConfig
    data_hash: str
    metrics: dict
    versions: dict


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``. Raises CheckpointError (naming the file
    and the problem) when it is missing, not a torch file, not a Prism fusion checkpoint, or its
    weights do not fit its config."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"fusion checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for a truncated or foreign file
        raise CheckpointError(f"fusion checkpoint {path} is unreadable (corrupt or not a torch file): "
                              f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a Prism fusion checkpoint (no '{CHECKPOINT_FORMAT}' format tag)")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"fusion checkpoint {path} has format version {payload.get('format_version')}, "
                              f"this code reads version {CHECKPOINT_VERSION}")
    if missing := {"config", "state_dict", "data_hash", "metrics"} - payload.keys():
        raise CheckpointError(f"fusion checkpoint {path} lacks {sorted(missing)}")
    try:
        config = FusionConfig.from_dict(payload["config"])
        model = FusionModel(config)
        model.load_state_dict(payload["state_dict"])
    except (ValueError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"fusion checkpoint {path} does not match its config: {error}") from error
    model.to(map_location).eval()
    return Checkpoint(model, config, payload["data_hash"], payload["metrics"], payload.get("versions", {}))
