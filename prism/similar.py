"""Items like a given item, within one modality or across modalities.

``by`` picks the item's stored vector and the space it is compared in:

* ``text``: its document vector against the other items' text entries (plot, captions);
* ``image``: its first poster's feature against the other posters;
* ``poster-to-text``: its poster's caption vector against the other items' documents, a
  cross-modal lookup (what the poster shows → items whose text says so);
* ``fused``: its fused vector (current fusion checkpoint) against the other fused vectors.

Each neighbour comes with the entry that matched, as evidence.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from prism import spaces
from prism.errors import InputError
from prism.search import Evidence, SearchHit, hit_metadata
from prism.settings import Settings
from prism.store import Store

SimilarBy = Literal["text", "image", "poster-to-text", "fused"]


class SimilarResult(BaseModel):
    item_id: str
    title: str
    by: str
    hits: list[SearchHit]


def find_similar(store: Store, settings: Settings, item_id: str, by: SimilarBy = "text", k: int = 5) -> SimilarResult:
    """The ``k`` items nearest to ``item_id`` (itself excluded); InputError for an unknown
    item or one without the needed vector."""
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    record = store.get_items([item_id]).get(item_id)
    if record is None:
        raise InputError(f"unknown item '{item_id}': it is not in the catalog")
    if by == "fused":
        # deferred: the fusion modules load torch, which text and image lookups do not need
        from prism.fusion.checkpoints import require_current
        from prism.fusion.vectors import FUSED_FIELD, ensure_fused

        served = require_current(settings)
        source_space = target_space = served.space
        entry = f"{item_id}|{FUSED_FIELD}"
        ensure_fused(store, settings, served, [item_id])
    elif by == "image":
        source_space = target_space = spaces.image_space(settings).name
        entry = f"{item_id}|image:0"
    elif by in ("text", "poster-to-text"):
        source_space = target_space = spaces.text_space(settings).name
        entry = f"{item_id}|document" if by == "text" else f"{item_id}|caption:0"
    else:
        raise InputError(f"unknown similarity '{by}'; choose text, image, poster-to-text or fused")
    vector = store.get_vectors(source_space, [entry]).get(entry)
    if vector is None:
        raise InputError(f"item '{item_id}' has no {entry.split('|')[1]} vector to compare by {by}")
    where = {"field": "document"} if by == "poster-to-text" else None
    hits: dict[str, SearchHit] = {}
    for match in store.query(target_space, vector, n=(k + 1) * 4, where=where):
        if match.item_id == item_id or match.item_id in hits:
            continue
        meta = hit_metadata(match.metadata)
        hits[match.item_id] = SearchHit(
            item_id=match.item_id, title=str(meta.get("title", match.item_id)), score=round(match.similarity, 6),
            evidence=[Evidence(channel=by, field=match.field, text=match.text, similarity=round(match.similarity, 4))],
            metadata=meta)
        if len(hits) == k:
            break
    title = str(record["metadata"].get("title", item_id))
    return SimilarResult(item_id=item_id, title=title, by=by, hits=list(hits.values()))
