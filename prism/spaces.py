"""The vector spaces Prism stores and searches, each bound to one encoder.

A space's name is its collection suffix and includes the model, so vectors of different
models never share a collection.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from prism.settings import Settings
from prism.tools.embed_text import get_encoder

CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


@dataclass(frozen=True)
class Space:
    name: str
    encoder: Callable[[], object] | None = None


def text_space(settings: Settings) -> Space:
    """The English text space (``settings.text_model``)."""
    return Space(f"text-{settings.text_model}", lambda: get_encoder("minilm", settings))


def multi_space(settings: Settings) -> Space | None:
    """The multilingual text space, or None when ``multilingual_model`` is ``none``."""
    if settings.multilingual_model == "none":
        return None
    suffix = "-ln" if settings.multilingual_neutral else ""
    return Space(f"multi-{settings.multilingual_model}{suffix}", lambda: get_encoder("multilingual", settings))


def text_spaces(settings: Settings) -> list[Space]:
    """Every text space items are written to."""
    return [s for s in (text_space(settings), multi_space(settings)) if s is not None]


def image_space(settings: Settings) -> Space:
    """The image feature space of the offline captioner (EfficientNet-Lite0, 1280-d)."""
    return Space("image-effnetlite0")


def space_for_query(text: str, settings: Settings) -> Space:
    """The space a text query is searched in: multilingual when it holds CJK script."""
    multi = multi_space(settings)
    if multi is not None and CJK.search(text):
        return multi
    return text_space(settings)


def fused_space(checkpoint_sha256: str) -> Space:
    """The fused item vectors of one fusion checkpoint, named by the first 12 hex digits of the
    checkpoint file's sha256, so vectors of different checkpoints never share a collection."""
    if not re.fullmatch(r"[0-9a-f]{12,64}", checkpoint_sha256):
        raise ValueError(f"expected a hex sha256, got '{checkpoint_sha256}'")
    return Space(f"fused-{checkpoint_sha256[:12]}")
