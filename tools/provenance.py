"""Provenance: which backend, model and weights produced a derived text (captions, transcripts)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Provenance(BaseModel):
    """Where a derived text came from: enough to reproduce or distrust it."""

    backend: str
    model: str
    version: str
    weights_sha256: str | None = None
    confidences: dict[str, float] = Field(default_factory=dict)
