"""The tools the LLM may call: LangChain tools over the one service layer.

Each tool runs a :class:`prism.service.PrismService` method, records the items it returns
as candidates and the texts that could justify them as evidence in the turn's
:class:`agent.evidence.Ledger`, and returns a compact text for the LLM. That text is
wrapped by :func:`as_data` in ``<data tool="...">`` delimiters: whatever an item's
description says, it is data, and the system prompt tells the model never to obey it.

The user's image and voice message are attachments of the turn; ``caption_image`` and
``transcribe_audio`` read them, so the model never handles file paths. Stated preferences
are saved by ``remember_preference`` and applied by the search tools: an ``avoid``
preference removes matching items (by genre or title) before the model sees them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from prism import genres
from prism.agent import constraints as stated
from prism.agent.constraints import Constraints
from prism.agent.evidence import TEXT_KINDS, EvidenceKind, Ledger
from prism.agent.sessions import Preference, PreferenceKind, SessionStore
from prism.errors import NoCheckpointError, UnknownUserError
from prism.search import Evidence, SearchHit
from prism.service import PrismService
from prism.untrusted import clean_run, instruction_spans

SPAN_CHARS = 140
EVIDENCE_PER_ITEM = 1  # the best-matching stored text; more costs prompt time on a CPU model


@dataclass
class TurnContext:
    """What the tools of one turn share."""

    service: PrismService
    sessions: SessionStore
    session_id: str
    user_id: str | None
    ledger: Ledger = field(default_factory=Ledger)
    image: Path | None = None
    audio: Path | None = None
    preferences: list[Preference] = field(default_factory=list)
    k: int = 5
    constraints: Constraints = field(default_factory=Constraints)
    new_user: bool = False  # the linked user has no ratings yet: the answer asks about their taste


# --- argument schemas (the JSON schemas the LLM fills) ------------------------------------
class SearchCatalogArgs(BaseModel):
    query: str = Field(description="What to look for, in the user's words (any language).")
    genre: str | None = Field(None, description="Only items of this genre, e.g. Comedy.")
    year_min: int | None = Field(None, description="Only items from this year on.")
    year_max: int | None = Field(None, description="Only items up to this year.")


class SearchCatalogQueryArgs(BaseModel):
    # The metadata filters are offered to endpoints with native tool calls only: on the
    # JSON-schema path the 1.5B model filled every optional filter it was offered, unasked
    # (genre "space" for "a calm film about space", year ranges on 3 of 3 requests; 9 of 20
    # benchmark turns), which emptied the results or confused its answer.
    query: str = Field(description="What to look for, in the user's words (any language).")


class RecommendArgs(BaseModel):
    user_id: str | None = Field(None, description="The user; default: the user linked to this chat.")
    query: str | None = Field(None, description="Optional wish that steers the ranking.")


class FindSimilarArgs(BaseModel):
    item_id: str
    by: Literal["text", "image", "poster-to-text", "fused"] = Field(
        "text", description="text: similar story; image: similar poster; poster-to-text: what the poster shows; "
        "fused: overall.")


class NoArgs(BaseModel):
    pass


class ItemArgs(BaseModel):
    item_id: str


class HistoryArgs(BaseModel):
    user_id: str | None = Field(None, description="The user; default: the user linked to this chat.")


class PreferenceArgs(BaseModel):
    kind: PreferenceKind = Field(description="like / dislike (an item or person), avoid (a genre or theme), "
                                             "want (something to look for).")
    value: str = Field(description="What, e.g. 'horror' or 'Fargo (1996)'.")


# --- rendering for the LLM ------------------------------------------------------------------
def as_data(tool: str, body: str) -> str:
    """``body`` delimited as data; any delimiter inside it is defused so it cannot close the block."""
    body = re.sub(r"</?\s*data", lambda m: m.group(0).replace("<", "‹"), body, flags=re.IGNORECASE)
    return f'<data tool="{tool}">\n{body}\n</data>'


def span(text: str, limit: int = SPAN_CHARS) -> str:
    """A verbatim piece of ``text`` (a substring, so it can be checked against the store):
    its first ``limit`` characters, cut at a word boundary."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    return cut[: cut.rfind(" ")] if " " in cut else cut


def plot_of(document: str, metadata: dict | None = None) -> str:
    """The item's description: its stored document without the title line and without the
    lines its metadata wrote ("Genres: Drama."), which are facts, not a plot ('' when the
    item has no description)."""
    lines = [line for line in document.splitlines() if line.strip()][1:]
    written = tuple(f"{key.capitalize()}: " for key in (metadata or {}))
    return next((line for line in lines if not line.startswith(written)), "")


def own_plot(ctx: TurnContext, item_id: str):
    """Record ``item_id``'s stored plot in the ledger when the tools showed none of its texts
    (one evidence an item is shown: often its poster's caption), so that a reason written by
    code can quote the film; the recorded evidence, or None. Instruction-like plots are never
    recorded."""
    if any(r.item_id == item_id and r.kind in TEXT_KINDS for r in ctx.ledger.evidence.values()):
        return None
    record = ctx.service.store.get_items([item_id]).get(item_id)
    plot = plot_of(record["document"], record["metadata"]) if record else ""
    if plot and not instruction_spans(plot) and (clean := clean_run(plot)):
        return ctx.ledger.add_evidence("plot", span(clean), item_id, "document")
    return None


def confident_caption(text: str) -> str:
    """What of a machine caption may reach the model as a fact: the whole caption when its
    label is confident; else only the OCR text and colours after the label clause (a verbatim
    tail, so it can still be checked against the store). The offline captioner hedges a label
    under 0.3 ("An image that may show a …") and lists runner-up labels with "or"; either way
    the label is a guess (an astronaut poster read as "barbell or bobsled"), not a fact."""
    clause_end = min((i for i in (text.find(", with the text"), text.find(", mostly")) if i >= 0), default=len(text))
    label = text[:clause_end]
    if not label.startswith("An image that may show") and " or " not in label:
        return text
    return text[clause_end + 2:].strip() if clause_end < len(text) else ""


def _kind(field_name: str) -> EvidenceKind:
    if field_name.startswith("caption"):
        return "caption"
    if field_name.startswith("transcript"):
        return "transcript"
    return "plot"


def _avoided(title: str, metadata: dict, preferences: list[Preference]) -> str | None:
    """The ``avoid`` preference an item matches (by genre or title), if any."""
    haystack = [g.casefold() for g in genres.of_item(metadata)] + [title.casefold()]
    for pref in preferences:
        if pref.kind == "avoid" and any(pref.value.casefold().rstrip("s") in h for h in haystack):
            return pref.value
    return None


def _item_line(ctx: TurnContext, item_id: str, title: str, metadata: dict, evidence: list[Evidence],
               rank: int | None = None, score: float | None = None) -> str:
    """One candidate as the LLM sees it. Its texts pass :func:`prism.untrusted.clean_run`:
    instruction-like sentences are withheld (and the item flagged in the ledger), so catalog
    text never reaches the model as something it could obey."""
    withheld = [f.text for f in instruction_spans(title)]
    shown_title = clean_run(title) or f"item {item_id}"
    rank = ctx.ledger.add_candidate(item_id, shown_title, rank)
    facts = ", ".join(genres.of_item(metadata))
    year = metadata.get("year")
    lines = [f"item {item_id}: {shown_title}" + (f" [{facts}]" if facts else "")
             + (f" {year}" if year and str(year) not in shown_title else "")
             + (f" (rank {rank + 1}" + (f", score {score:.3f})" if score is not None else ")") if rank is not None
                else "")]
    for e in evidence[:EVIDENCE_PER_ITEM]:
        if e.field.startswith("image"):
            # A poster-vector match carries only the title, which says nothing about the film:
            # its own plot does (and is what a reason can quote).
            ref = own_plot(ctx, item_id)
            if ref is None and facts and not any(r.item_id == item_id for r in ctx.ledger.evidence.values()):
                ref = ctx.ledger.add_evidence("metadata", f"Genres: {facts}.", item_id, "document")
            if ref is not None:
                lines.append(f'  {ref.id} {ref.kind}: "{ref.text}"')
            continue
        kind = _kind(e.field)
        text = plot_of(e.text, metadata) if e.field == "document" else e.text
        if e.field == "document" and not text and facts:
            # No description: the genres are what there is, shown as facts, never as a plot.
            kind, text = "metadata", f"Genres: {facts}."
        if kind == "caption":
            text = confident_caption(text)
        withheld += [f.text for f in instruction_spans(text)]
        if not (clean := clean_run(text)):
            continue
        ref = ctx.ledger.add_evidence(kind, span(clean), item_id, e.field)
        lines.append(f'  {ref.id} {ref.kind}: "{ref.text}"')
    if withheld:
        ctx.ledger.flag(item_id, withheld)
        lines.append("  (instruction-like text in this item's data was withheld)")
    return "\n".join(lines)


def _constrained(ctx: TurnContext, hits: list, **read) -> tuple[list, str]:
    """``hits`` under the turn's stated constraints, and a note for the model (see
    :mod:`prism.agent.constraints`). When nothing meets them, the years are relaxed, saying so;
    what the user ruled out ("not that one", "no horror") stays out."""
    if not ctx.constraints:
        return hits, ""
    kept = stated.rank(hits, ctx.constraints, **read)
    if not kept and hits:
        relaxed = dataclasses.replace(ctx.constraints, year_min=None, year_max=None)
        closest = stated.rank(hits, relaxed, **read)
        return closest, f"no item meets the stated constraints ({ctx.constraints.describe()}); the closest:\n"
    return kept, f"ordered by the stated constraints ({ctx.constraints.describe()}):\n"


def _hits_text(ctx: TurnContext, hits: list[SearchHit]) -> str:
    hits, note = _constrained(ctx, hits)
    lines, dropped = [], []
    for hit in hits:
        if (avoided := _avoided(hit.title, hit.metadata, ctx.preferences)) is not None:
            dropped.append(f"{clean_run(hit.title) or hit.item_id} (avoid: {avoided})")
            continue
        if len(lines) < ctx.k:
            lines.append(_item_line(ctx, hit.item_id, hit.title, hit.metadata, hit.evidence, rank=len(lines),
                                    score=hit.score))
    if dropped:
        lines.append(f"left out by the user's preferences: {', '.join(dropped[:5])}")
    return note + ("\n".join(lines) or "no matching items")


# --- the tools --------------------------------------------------------------------------------
def build_tools(ctx: TurnContext, filters: bool = True) -> list[StructuredTool]:
    """The ten tools, bound to one turn's context (``filters``: see SearchCatalogQueryArgs)."""
    service = ctx.service

    def search_catalog(query: str, genre: str | None = None, year_min: int | None = None,
                       year_max: int | None = None) -> str:
        result = service.search(text=query, k=ctx.k * 6)
        hits = [h for h in result.hits
                if (genre is None or any(genre.casefold() in g.casefold() for g in genres.of_item(h.metadata)))
                and (year_min is None or int(h.metadata.get("year") or 0) >= year_min)
                and (year_max is None or int(h.metadata.get("year") or 10**6) <= year_max)]
        if hits or not result.hits:
            return _hits_text(ctx, hits)
        # Small models fill optional filters they were not asked for; an empty result would
        # end the turn with nothing, so the filters are dropped, and the model is told so.
        return "no item matches those filters; the closest items without them:\n" + _hits_text(ctx, result.hits)

    def starter_text(header: str) -> str:
        lines = [header]
        starters = service.starter_picks(n=ctx.k)
        records = service.store.get_items([i.item_id for i in starters])
        for rank, item in enumerate(starters):
            record = records.get(item.item_id, {"metadata": {}, "document": ""})
            evidence = [Evidence(channel="item", field="document", text=record["document"], similarity=0.0)]
            line = _item_line(ctx, item.item_id, item.title, record["metadata"], evidence, rank=rank)
            if item.ratings:
                line += f"\n  liked by many: {item.mean_rating:.1f}/5 from {item.ratings} ratings"
            lines.append(line)
        return "\n".join(lines)

    def recommend_for_user(user_id: str | None = None, query: str | None = None) -> str:
        user = user_id or ctx.user_id
        if not user:
            return "error: no user is linked to this chat; use search_catalog instead"
        try:
            result = service.recommend(str(user), text=query, k=ctx.k * 3)
        except UnknownUserError:
            ctx.new_user = True
            return starter_text(f"user {user} is new (no ratings yet): ask one short question about their taste, "
                                "and offer a few of these well-liked films from different genres")
        except NoCheckpointError:
            return starter_text("no personal model is trained yet: offer a few of these well-liked films from "
                                "different genres")
        records = service.store.get_items([i.item_id for i in result.items])
        items, note = _constrained(ctx, result.items,
                                   metadata=lambda i: records.get(i.item_id, {"metadata": {}})["metadata"])
        lines = [note.rstrip("\n")] if note else []
        for item in items:
            record = records.get(item.item_id, {"metadata": {}, "document": ""})
            if _avoided(item.title, record["metadata"], ctx.preferences) or len(lines) >= ctx.k + bool(note):
                continue
            evidence = item.evidence or [Evidence(channel="item", field="document", text=record["document"],
                                                  similarity=0.0)]
            line = _item_line(ctx, item.item_id, item.title, record["metadata"], evidence,
                              rank=len(lines) - bool(note), score=item.score)
            for because in (item.also_liked or item.because)[:1]:  # the collaborative reason first
                if not (liked := clean_run(because.title)):
                    continue
                ref = ctx.ledger.add_evidence("history", liked, because.item_id, "title")
                line += f'\n  {ref.id} history: user {user} liked "{liked}"'
            lines.append(line)
        return "\n".join(lines) or "no recommendations"

    def popular_picks() -> str:
        return starter_text("well-liked films from different genres (for someone new, or a request with no "
                            "particular wish)")

    def find_similar(item_id: str, by: str = "text") -> str:
        result = service.find_similar(item_id, by, ctx.k * 2)  # type: ignore[arg-type]
        return f"items like {result.title} (by {by}):\n" + _hits_text(ctx, result.hits)

    def user_media(kind: EvidenceKind, text: str, label: str, hint: str) -> str:
        # An upload is untrusted too: text read off an image or heard in a clip is not an instruction.
        ref = ctx.ledger.add_evidence(kind, span(clean_run(text), 240))
        return f'{ref.id} {label}: "{ref.text}"\n{hint}'

    def search_by_image() -> str:
        if ctx.image is None:
            return "error: the user attached no image"
        result = service.search(image=ctx.image, k=ctx.k * 6)
        head = user_media("user_image", result.query_caption or "", "user_image (machine caption, may be wrong)",
                          "the items below look like it (poster vector and caption)") if result.query_caption else ""
        return (head + "\n" if head else "") + _hits_text(ctx, result.hits)

    def caption_image() -> str:
        if ctx.image is None:
            return "error: the user attached no image"
        return user_media("user_image", service.caption_image(ctx.image).text, "user_image", "use it as a search query")

    def transcribe_audio() -> str:
        if ctx.audio is None:
            return "error: the user attached no voice message"
        result = service.transcribe(ctx.audio)
        return user_media("user_voice", result.text, f"user_voice ({result.language})", "use it as the request")

    def get_item(item_id: str) -> str:
        record = service.get_item(str(item_id))
        if record is None:
            return f"error: no item {item_id} in the catalog"
        meta = record["metadata"]
        evidence = [Evidence(channel="item", field="document", text=record["document"], similarity=0.0)]
        return _item_line(ctx, str(item_id), str(meta.get("title", item_id)), meta, evidence)

    def get_user_history(user_id: str | None = None) -> str:
        user = user_id or ctx.user_id
        if not user:
            return "error: no user is linked to this chat"
        lines = []
        for row in service.user_history(str(user), n=ctx.k):
            if not (title := clean_run(row["title"])):
                continue
            ref = ctx.ledger.add_evidence("history", title, row["item_id"], "title")
            lines.append(f'  {ref.id} history: user {user} rated "{title}" {row["rating"]}/5')
        return "\n".join(lines) or "no history"

    def remember_preference(kind: str, value: str) -> str:
        new = ctx.sessions.add_preference(ctx.session_id, kind, value)  # type: ignore[arg-type]
        preference = Preference(kind=kind, value=" ".join(value.split()))  # type: ignore[arg-type]
        if preference not in ctx.preferences:
            ctx.preferences.append(preference)
        return f"remembered: {kind} {value}" if new else f"already known: {kind} {value}"

    specs = [
        (search_catalog, SearchCatalogArgs if filters else SearchCatalogQueryArgs,
         "Find catalog items matching a description (any language)."),
        (recommend_for_user, RecommendArgs, "Personal recommendations for a user from their history."),
        (popular_picks, NoArgs, "Well-liked items from different genres, for a new user or a vague request."),
        (find_similar, FindSimilarArgs, "Items similar to a given item, by story, poster or overall."),
        (search_by_image, NoArgs, "Find items that look like the image the user attached (its poster vector "
                                  "and caption)."),
        (caption_image, NoArgs, "Describe the image the user attached."),
        (transcribe_audio, NoArgs, "Transcribe the voice message the user attached."),
        (get_item, ItemArgs, "Details of one item."),
        (get_user_history, HistoryArgs, "What a user rated recently."),
        (remember_preference, PreferenceArgs, "Save a preference the user stated, for this and later turns."),
    ]
    return [StructuredTool.from_function(func=f, name=f.__name__, description=d, args_schema=a)
            for f, a, d in specs]
