"""Recommendations for a user from the ranker in service, with their explanations.

A user's history is the items they rated in the ratings file the checkpoint was trained on (at
or above its ``min_rating``; most recent first). Every stored item the user rated at all is
excluded; every other item is ranked by Prism's ranker (:mod:`prism.fusion.hybrid`):

* the content score (``user_score``): the fusion model's attention pooling over the history
  (at most ``max_history`` items, as stored fused vectors) against each item's fused vector
  (cosine / temperature);
* the collaborative score (``collaborative_score``): the history read most recent first
  against the item–item weights learned from who rated what
  (:mod:`prism.fusion.collaborative`); 0 for an item ingested after training;
* ``hybrid = z(collaborative) + w * k / (k + n_i) * z(content)`` over the catalog (``n_i``: the
  item's training users), so an item nobody rated is ranked by its content. A checkpoint
  trained before the collaborative half existed ranks by the content score alone.

Query steering. A query (text, image and/or voice, any mix) runs through
:func:`prism.search.search` over the catalog's nearest ``settings.recommend_query_reach`` items
(every item of a catalog smaller than that); each of its channels (text, voice, image,
image-caption) gives every item it reached its best cosine similarity over the item's stored
entries.
Then, over the candidate items:

* ``u`` = the ranker's score (hybrid, above) min-max normalised to [0, 1];
* ``q`` = the mean over the query's channels of each channel's similarity min-max normalised
  to [0, 1] (an item a channel did not reach gets that channel's 0);
* ``score = (1 - w) * u + w * q`` with ``w = settings.recommend_query_weight`` (default 0.5);
  ``w = 1`` ranks by the query alone among the user's unseen items, ``w = 0`` ignores it.

Without a query, ``score`` is the hybrid score itself (``u`` above is the hybrid score). Each
item reports its ``user_score``, ``collaborative_score`` and ``query_score`` (``q``) besides
``score``, the modality weights of its fused vector, the history items that contributed most to
its content score (:func:`prism.fusion.model.explain`: ``contribution``\\s of the listed items +
``history_rest`` + ``bias`` = ``user_score``), the history items behind its collaborative score
("people who liked X also liked this": ``also_liked``) and the query evidence that matched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, Field

from prism.errors import InputError
from prism.fusion.checkpoints import require_current
from prism.fusion.collaborative import recency_profiles
from prism.fusion.hybrid import CollaborativePart, blend
from prism.fusion.model import explain
from prism.fusion.vectors import fused_catalog, stored_inputs
from prism.history import history_ratings, read_ratings_rows, user_rows
from prism.search import Evidence, search
from prism.settings import Settings
from prism.store import Store

RULE = ("score = (1 - w) * minmax(user score) + w * mean over query channels of minmax(best cosine of the item's "
        "entries), over the user's unseen items")
TOP_HISTORY = 3
EVIDENCE_PER_ITEM = 3


class HistoryContribution(BaseModel):
    """A history item behind a recommendation."""

    item_id: str
    title: str
    contribution: float = Field(description="Its additive part of the user score.")
    similarity: float = Field(description="Cosine of its fused vector and the recommended item's.")


class LikedTogether(BaseModel):
    """A history item whose fans also liked the recommended item."""

    item_id: str
    title: str
    contribution: float = Field(description="Its part of the collaborative score (recency weight × item–item weight).")


class RecommendedItem(BaseModel):
    item_id: str
    title: str
    score: float = Field(description="The ranking score: the hybrid score, or the steered score with a query.")
    user_score: float = Field(description="The fusion model's (content) score: cosine(user, item) / temperature.")
    collaborative_score: float | None = Field(
        None, description="The collaborative score (history × item–item weights); None for a content-only checkpoint.")
    also_liked: list[LikedTogether] = Field(
        default_factory=list, description="People who liked these history items also liked this one (largest parts "
        "of the collaborative score first).")
    query_score: float | None = Field(None, description="The normalised query similarity q in [0, 1].")
    modalities: dict[str, float] = Field(description="Each modality's weight in the item's fused vector "
                                         "(sum 1, or 0 for an item with none).")
    because: list[HistoryContribution] = Field(description="The history items that contributed most.")
    history_rest: float = Field(description="The summed contribution of the other history items.")
    bias: float = Field(description="The history-independent part of the user score.")
    evidence: list[Evidence] = Field(default_factory=list, description="What matched the query.")


class RecommendResult(BaseModel):
    user_id: str
    checkpoint: str
    space: str
    history: int = Field(description="History items the user vector pools over.")
    excluded: int = Field(description="Items left out because the user already interacted with them.")
    query_text: str | None = None
    query_transcript: str | None = None
    query_caption: str | None = None
    query_weight: float | None = Field(None, description="w in the steering rule; None without a query.")
    rule: str | None = None
    items: list[RecommendedItem]


def _minmax(values: np.ndarray) -> np.ndarray:
    spread = float(values.max() - values.min()) if len(values) else 0.0
    return (values - values.min()) / spread if spread > 0 else np.zeros_like(values)


def _collaborative(part: CollaborativePart, catalog: list[str], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                        np.ndarray]:
    """(the user's profile over the part's items, collaborative scores over ``catalog``, each
    catalog item's training users) for a user's history ``rows``."""
    where = part.index
    known = np.array([str(i) in where for i in rows[:, 1]], dtype=bool)
    n = len(part.item_ids)
    profile = recency_profiles(np.zeros(int(known.sum()), np.int64), np.array([where[str(i)] for i in rows[known, 1]],
                               dtype=np.int64), rows[known, 3], 1, n, part.collab.tau, part.collab.mix)[0]
    scores, counts = np.zeros(len(catalog)), np.zeros(len(catalog))
    on_part = [(row, where[item_id]) for row, item_id in enumerate(catalog) if item_id in where]
    if on_part:
        mine, theirs = (np.array(a) for a in zip(*on_part))
        scores[mine] = part.collab.scores(profile[None])[0, theirs]
        counts[mine] = part.collab.counts[theirs]
    return profile, scores, counts


def recommend(store: Store, settings: Settings, user_id: str, text: str | None = None, image: Path | None = None,
              audio: Path | None = None, k: int = 10, ratings: Path | None = None) -> RecommendResult:
    """The ``k`` best unseen items for ``user_id``, optionally steered by a query (module docstring)."""
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    served = require_current(settings)
    model = served.model
    fused = fused_catalog(store, settings, served)
    catalog, index = fused.item_ids, fused.index
    if not catalog:
        raise InputError(f"the store at {settings.home} holds no items: run `prism ingest` first")

    path = history_ratings(settings, ratings, served.pointer.ratings)
    rows = user_rows(read_ratings_rows(path), user_id, path)
    in_store = np.array([str(i) in index for i in rows[:, 1]], dtype=bool)
    rows = rows[in_store]
    if not len(rows):
        raise InputError(f"user '{user_id}' has no interactions with the {len(catalog)} items in the store "
                         f"(ratings from {path})")
    seen = sorted({index[str(i)] for i in rows[:, 1]})
    liked = rows if served.pointer.min_rating is None else rows[rows[:, 2] >= served.pointer.min_rating]
    order = np.lexsort((-np.arange(len(liked)), -liked[:, 3]))  # most recent first; ties: later row first
    history = [index[str(i)] for i in liked[order, 1]][: model.config.max_history]

    vectors = torch.from_numpy(fused.vectors)
    hist = torch.tensor([history or [0]], dtype=torch.long)
    hist_mask = torch.tensor([[True] * len(history) or [False]])
    with torch.no_grad():
        user = model.encode_users(vectors, hist, hist_mask).vectors
        user_scores = model.score(user, vectors)[0].numpy().astype(np.float64)

    part = served.collaborative
    collab_scores = None
    ranker_scores = user_scores
    if part is not None:
        profile, collab_scores, counts = _collaborative(part, catalog, liked)
        ranker_scores = blend(collab_scores[None], user_scores[None], counts, part.gate)[0]
    candidates = np.setdiff1d(np.arange(len(catalog)), np.asarray(seen, dtype=np.int64))
    result = RecommendResult(user_id=user_id, checkpoint=served.pointer.name, space=served.space,
                             history=len(history), excluded=len(seen), items=[])
    ranking = ranker_scores[candidates]
    query_scores: np.ndarray | None = None
    evidence: dict[str, list[Evidence]] = {}
    if (text and text.strip()) or image is not None or audio is not None:
        # On a large catalog the query reaches its nearest items only; the rest get each channel's minimum.
        found = search(store, settings, text=text, image=image, audio=audio,
                       k=min(len(catalog), settings.recommend_query_reach))
        result.query_text, result.query_transcript, result.query_caption = (
            found.query_text, found.query_transcript, found.query_caption)
        weight = settings.recommend_query_weight
        result.query_weight, result.rule = weight, RULE
        channels = sorted({e.channel for hit in found.hits for e in hit.evidence})
        similarity = {c: np.full(len(catalog), np.nan) for c in channels}
        for hit in found.hits:
            evidence[hit.item_id] = hit.evidence[:EVIDENCE_PER_ITEM]
            if hit.item_id not in index:
                continue
            for e in hit.evidence:
                row = similarity[e.channel]
                current = row[index[hit.item_id]]
                row[index[hit.item_id]] = e.similarity if np.isnan(current) else max(current, e.similarity)
        per_channel = []
        for values in similarity.values():
            values = values[candidates]
            if np.isnan(values).all():
                continue
            per_channel.append(_minmax(np.where(np.isnan(values), np.nanmin(values), values)))
        query_scores = np.mean(per_channel, axis=0) if per_channel else np.zeros(len(candidates))
        ranking = (1 - weight) * _minmax(ranking) + weight * query_scores
    if not len(candidates):
        return result

    top = np.argsort(-ranking, kind="stable")[:k]  # ties: catalog order
    chosen = candidates[top]
    local_rows = sorted(set(chosen.tolist()) | set(history))
    local = {row: j for j, row in enumerate(local_rows)}
    inputs = stored_inputs(store, settings, [catalog[r] for r in local_rows], model.config.dims)
    explanations = explain(model, inputs, torch.tensor([local[h] for h in history] or [0], dtype=torch.long),
                           hist_mask[0], torch.tensor([local[int(r)] for r in chosen], dtype=torch.long),
                           None, TOP_HISTORY)
    together = {row: part.collab.because(profile, part.index[catalog[row]])
                if part is not None and catalog[row] in part.index
                else [] for row in chosen.tolist()}
    wanted = ({catalog[r] for r in chosen} | {catalog[local_rows[j]] for ex in explanations for j, _, _ in ex.history}
              | {part.item_ids[j] for pairs in together.values() for j, _ in pairs})
    records = store.get_items(sorted(wanted))

    def title(item_id: str) -> str:
        return str(records.get(item_id, {}).get("metadata", {}).get("title", item_id))

    for position, (row, ex) in enumerate(zip(chosen.tolist(), explanations)):
        item_id = catalog[row]
        because = [HistoryContribution(item_id=catalog[local_rows[j]], title=title(catalog[local_rows[j]]),
                                       contribution=round(c, 6), similarity=round(s, 6)) for j, c, s in ex.history]
        result.items.append(RecommendedItem(
            item_id=item_id, title=title(item_id), score=round(float(ranking[top[position]]), 6),
            user_score=round(float(user_scores[row]), 6),
            collaborative_score=None if collab_scores is None else round(float(collab_scores[row]), 6),
            also_liked=[LikedTogether(item_id=part.item_ids[j], title=title(part.item_ids[j]), contribution=round(c, 6))
                        for j, c in together[row]],
            query_score=None if query_scores is None else round(float(query_scores[top[position]]), 6),
            modalities={m: round(w, 6) for m, w in ex.modalities.items()}, because=because,
            history_rest=round(ex.others, 6), bias=round(ex.rest, 6), evidence=evidence.get(item_id, [])))
    return result
