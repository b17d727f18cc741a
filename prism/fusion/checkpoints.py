"""The checkpoint registry: which fusion checkpoint is in service, and loading it once.

Layout under ``PRISM_HOME/models/fusion/``:

* ``<name>.pt``: checkpoints written by :func:`prism.fusion.train.save_checkpoint` (config,
  weights, data hash, metrics).
* ``<name>.collab.npz``: the collaborative half of the ranker trained with it
  (:class:`prism.fusion.hybrid.CollaborativePart`: item–item weights and the gate).
* ``current.json``: the pointer to the checkpoint in service (its path, sha256, fused space,
  its collaborative half, and the ratings file and ``min_rating`` it was trained on, which
  ``recommend`` reads histories from).

Serving runs on the CPU in float32, so a vector does not depend on where it was computed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from prism.errors import CheckpointError, NoCheckpointError
from prism.settings import Settings
from prism.weights import sha256_file

if TYPE_CHECKING:
    from prism.fusion.hybrid import CollaborativePart
    from prism.fusion.model import FusionModel
    from prism.fusion.train import Checkpoint

CURRENT = "current.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class CurrentCheckpoint(BaseModel):
    """The pointer file ``current.json``."""

    name: str
    path: str
    sha256: str
    space: str
    ratings: str | None = None
    min_rating: float | None = None
    created: str
    # The collaborative half (None: a content-only checkpoint from before the hybrid ranker).
    collaborative: str | None = None
    collaborative_sha256: str | None = None


def fusion_dir(settings: Settings) -> Path:
    return settings.home / "models" / "fusion"


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
    collaborative: "CollaborativePart | None" = None

    @property
    def model(self) -> "FusionModel":
        return self.checkpoint.model

    @property
    def space(self) -> str:
        return self.pointer.space


_LOADED: dict[tuple[str, str, float], "Checkpoint"] = {}
_PARTS: dict[tuple[str, str, float], "CollaborativePart"] = {}


def _verified(path: Path, sha256: str, what: str) -> Path:
    if not path.is_file():
        raise CheckpointError(f"the current {what} {path} does not exist: run `prism train` again")
    if (actual := sha256_file(path)) != sha256:
        raise CheckpointError(f"the current {what} {path} changed since it was made current "
                              f"(sha256 {actual[:12]}…, expected {sha256[:12]}…): run `prism train` again")
    return path


def _collaborative(pointer: CurrentCheckpoint) -> "CollaborativePart | None":
    if not pointer.collaborative:
        return None
    path = Path(pointer.collaborative)
    key = (str(path), pointer.collaborative_sha256 or "", path.stat().st_mtime if path.is_file() else 0.0)
    if key not in _PARTS:
        from prism.fusion.hybrid import CollaborativePart  # deferred: numpy arrays of the catalog's size

        _verified(path, pointer.collaborative_sha256 or "", "collaborative weights")
        if len(_PARTS) >= 2:
            _PARTS.pop(next(iter(_PARTS)))
        _PARTS[key] = CollaborativePart.load(path)
    return _PARTS[key]


def load_current(settings: Settings) -> Served | None:
    """The checkpoint in service (None when there is none), loaded once per process per file
    version. Raises CheckpointError when the file is gone, corrupt or changed since it was
    made current."""
    pointer = current(settings)
    if pointer is None:
        return None
    path = Path(pointer.path)
    if not path.is_file():
        raise CheckpointError(f"the current fusion checkpoint {path} does not exist: run `prism train` again")
    key = (str(path), pointer.sha256, path.stat().st_mtime)
    if key not in _LOADED:
        # deferred: loading a checkpoint needs torch; reading the pointer does not
        from prism.fusion.train import load_checkpoint

        _verified(path, pointer.sha256, "fusion checkpoint")
        if len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = load_checkpoint(path, "cpu")
    return Served(pointer, _LOADED[key], _collaborative(pointer))


def require_current(settings: Settings) -> Served:
    """Like :func:`load_current`, but no checkpoint is an error telling what to run."""
    served = load_current(settings)
    if served is None:
        raise NoCheckpointError(f"no fusion model has been trained for the store at {settings.home}: "
                                "run `prism train` first")
    return served
