"""An item's metadata as a fixed-width vector: the fusion model's ``meta`` modality.

Signed feature hashing (the "hashing trick") of ``key=value`` tokens: each list entry and
each string value is one token (``genres=Comedy``, ``director=John Lasseter``); a number is
bucketed by tens (``year=1990s`` for 1995), booleans become ``key=true``/``key=false``. The
title and Prism's own bookkeeping fields are not metadata. Each token adds ±1 to one of
``dim`` buckets chosen by a stable hash (BLAKE2b), then the vector is unit-normalised.

Stateless on purpose: no vocabulary to store beside a checkpoint, so an item ingested after
training maps to the same buckets its training-time peers did. An item with no usable
metadata gets the zero vector (its ``meta`` modality is then masked as missing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

META_DIM = 256
# Fields the store adds to an item's metadata that describe Prism, not the item.
NOT_METADATA = frozenset({"title", "content_hash", "n_images", "n_audio", "derived_json", "item_id",
                          "instruction_spans"})


def metadata_tokens(metadata: Mapping[str, object]) -> list[str]:
    """The ``key=value`` tokens of ``metadata`` (see the module docstring), in a stable order."""
    tokens = []
    for key in sorted(metadata):
        if key in NOT_METADATA:
            continue
        value = metadata[key]
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, bool):
                tokens.append(f"{key}={str(item).lower()}")
            elif isinstance(item, (int, float)):
                tokens.append(f"{key}={int(item // 10 * 10)}s")
            elif isinstance(item, str) and item.strip():
                tokens.append(f"{key}={item.strip().casefold()}")
    return tokens


def _bucket(token: str, dim: int) -> tuple[int, float]:
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dim, (1.0 if (value >> 63) & 1 else -1.0)


def metadata_vector(metadata: Mapping[str, object], dim: int = META_DIM) -> np.ndarray:
    """The unit-norm hashed vector of ``metadata`` (float32, ``[dim]``); zero when it has no
    tokens (or when all of them cancel out)."""
    vector = np.zeros(dim, dtype=np.float32)
    for token in metadata_tokens(metadata):
        index, sign = _bucket(token, dim)
        vector[index] += sign
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
