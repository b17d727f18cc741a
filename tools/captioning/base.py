"""The captioning contract shared by every backend.

A backend turns one RGB ``PIL.Image`` into a :class:`Caption`: a short human-readable text
plus the evidence it was built from (labels, OCR lines, colours), an optional image feature
vector, and provenance saying which backend, model and weights produced it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from PIL import Image
from pydantic import BaseModel, Field

from prism.errors import PrismError
from prism.tools.provenance import Provenance


class Label(BaseModel):
    """A class label predicted for the image, with its probability."""

    name: str
    confidence: float = Field(ge=0.0, le=1.0)


class OcrLine(BaseModel):
    """A line of text read in the image, with the recogniser's confidence.

    ``text`` is cleaned for reading (word spaces restored); ``raw`` is what the recogniser emitted.
    """

    text: str
    raw: str | None = None
    confidence: float = Field(ge=0.0, le=1.0)


class Caption(BaseModel):
    """A caption and the evidence behind it."""

    text: str
    labels: list[Label] = Field(default_factory=list)
    ocr: list[OcrLine] = Field(default_factory=list)
    colours: list[str] = Field(default_factory=list)
    feature: list[float] | None = Field(
        None, description="Image feature vector (1280-d for the offline backend), if any."
    )
    provenance: Provenance


@runtime_checkable
class CaptionBackend(Protocol):
    """Anything that captions an image. Implementations load their model lazily, once."""

    name: str

    def caption(self, image: Image.Image) -> Caption:
        """Caption one RGB image. Raises ``CaptionError`` with a clear message on failure."""
        ...


class CaptionError(PrismError):
    """A captioner could not produce a caption (bad image, unreachable endpoint, ...)."""
