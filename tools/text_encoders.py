"""The contract every text encoder keeps (float32 unit rows, one per text), and the batched,
locked base class that MiniLM, e5 and USE share."""

from __future__ import annotations

import re
import threading
from typing import Literal, Protocol

import numpy as np

TextKind = Literal["query", "passage"]


class TextEncoder(Protocol):
    """An encoder returning float32 unit vectors, one row per text."""

    name: str
    dim: int

    def encode(self, texts: list[str], kind: TextKind = "passage") -> np.ndarray: ...


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 rows of unit L2 norm (all-zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))


_WIDE = re.compile(r"[\u1100-\u11ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
CHARS_PER_TOKEN = 6  # generous for Latin script (about 4); CJK text runs about one token a character


def clip(text: str, max_tokens: int) -> str:
    """``text`` cut to at most what an encoder of ``max_tokens`` can read, so that nobody's long
    text is tokenised in full (tokenising is the slow part, under the encoder's lock)."""
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= max_tokens * 2:
        return text
    head = text[:limit]
    wide = len(_WIDE.findall(head[:1000])) / max(min(len(head), 1000), 1)
    return head[: int(max_tokens * (2 if wide > 0.3 else CHARS_PER_TOKEN))]


class BatchedEncoder:
    """The shared :class:`TextEncoder` contract: ``encode`` runs ``_encode_batch`` over chunks
    of ``batch_size`` texts (bounding activation memory), one call at a time (a lock, so one
    encoder may be shared by threads), and returns float32 unit rows; ``(0, dim)`` for no texts.
    Each text is first cut to what the model reads (``max_tokens``, :func:`clip`), so the lock
    is never held for the tokenising of a huge text. Engines already normalise; normalising
    again keeps the contract exact at negligible cost."""

    name: str
    dim: int
    max_tokens: int = 512

    def __init__(self, batch_size: int) -> None:
        self._batch = batch_size
        self._lock = threading.Lock()

    def _encode_batch(self, texts: list[str], kind: TextKind) -> np.ndarray:
        raise NotImplementedError

    def encode(self, texts: list[str], kind: TextKind = "passage") -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [clip(t, self.max_tokens) for t in texts]
        with self._lock:
            parts = [self._encode_batch(list(texts[i : i + self._batch]), kind) for i in range(0, len(texts), self._batch)]
        return unit_rows(np.concatenate(parts))
