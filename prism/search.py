"""Search the catalog by text, image or voice, returning items with the evidence that matched.

Each query modality becomes one or more *channels* (a vector and the space to search):

* text: the English space, or the multilingual space when the text holds CJK script;
* voice: transcribed, then searched as text (the transcript is returned as evidence);
* image: captioned; its image feature searches the image space and its caption the text space.

Channels are merged by reciprocal-rank fusion (robust to the different similarity scales of
the spaces); each hit keeps the best matches per field as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from prism import spaces
from prism.errors import InputError
from prism.settings import Settings
from prism.store import Match, Store
from prism.tools.caption_image import CaptionImageInput, caption_image
from prism.tools.transcribe_audio import TranscribeAudioInput, transcribe_audio

RRF_K = 60


class Evidence(BaseModel):
    """A stored text or image of an item that matched the query."""

    channel: str = Field(description="Which part of the query matched: text, voice, image, image-caption.")
    field: str = Field(description="Which part of the item matched: document, caption:N, transcript:N, image:N.")
    text: str
    similarity: float


class SearchHit(BaseModel):
    item_id: str
    title: str
    score: float = Field(description="Reciprocal-rank fusion score over the query channels.")
    evidence: list[Evidence]
    metadata: dict


class SearchResult(BaseModel):
    query_text: str | None = None
    query_transcript: str | None = None
    query_caption: str | None = None
    hits: list[SearchHit]


@dataclass
class Channel:
    name: str
    space: str
    vector: np.ndarray


def query_channels(settings: Settings, text: str | None, image: Path | None, audio: Path | None,
                   result: SearchResult) -> list[Channel]:
    """Turn the query's modalities into channels, recording the derived transcript and caption."""
    channels: list[Channel] = []
    if text and text.strip():
        space = spaces.space_for_query(text, settings)
        channels.append(Channel("text", space.name, space.encoder().encode([text], "query")[0]))
    if audio is not None:
        spoken = transcribe_audio(TranscribeAudioInput(path=audio), settings).text
        result.query_transcript = spoken
        if spoken:
            space = spaces.space_for_query(spoken, settings)
            channels.append(Channel("voice", space.name, space.encoder().encode([spoken], "query")[0]))
    if image is not None:
        caption = caption_image(CaptionImageInput(path=image), settings)
        result.query_caption = caption.text
        if caption.feature is not None:
            channels.append(Channel("image", spaces.image_space(settings).name, np.asarray(caption.feature)))
        space = spaces.text_space(settings)
        channels.append(Channel("image-caption", space.name, space.encoder().encode([caption.text], "query")[0]))
    return channels


def hit_metadata(entry_metadata: dict) -> dict:
    """An item's metadata as a hit shows it: a vector entry's metadata without its entry keys."""
    return {k: v for k, v in entry_metadata.items() if k not in ("item_id", "field")}


def search(store: Store, settings: Settings, text: str | None = None, image: Path | None = None,
           audio: Path | None = None, k: int = 10, where: dict | None = None) -> SearchResult:
    """The ``k`` best items for a query in any mix of text, image and voice."""
    if not (text and text.strip()) and image is None and audio is None:
        raise InputError("a search needs text, an image or an audio file")
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    result = SearchResult(query_text=text, hits=[])
    fused: dict[str, float] = {}
    evidence: dict[str, dict[tuple[str, str], Evidence]] = {}
    metadata: dict[str, dict] = {}
    for channel in query_channels(settings, text, image, audio, result):
        matches: list[Match] = store.query(channel.space, channel.vector, n=k * 5, where=where)
        rank = 0
        for match in matches:
            per_item = evidence.setdefault(match.item_id, {})
            if not any(key[0] == channel.name for key in per_item):
                rank += 1
                fused[match.item_id] = fused.get(match.item_id, 0.0) + 1.0 / (RRF_K + rank)
            key = (channel.name, match.field)
            if key not in per_item:
                per_item[key] = Evidence(channel=channel.name, field=match.field, text=match.text,
                                         similarity=round(match.similarity, 4))
            metadata.setdefault(match.item_id, match.metadata)
    best = sorted(fused, key=lambda item_id: -fused[item_id])[:k]
    for item_id in best:
        meta = hit_metadata(metadata[item_id])
        result.hits.append(SearchHit(
            item_id=item_id, title=str(meta.get("title", item_id)), score=round(fused[item_id], 6),
            evidence=sorted(evidence[item_id].values(), key=lambda e: -e.similarity), metadata=meta))
    return result
