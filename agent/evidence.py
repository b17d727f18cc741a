"""What a turn retrieved, and the check that an answer cites only that.

Every tool that returns items records them in the turn's :class:`Ledger` as *candidates*,
and every piece of text that could justify a recommendation as an :class:`EvidenceRef`
with a short id (``E1``, ``E2``, ...): a plot or caption span of an item, a history item
the user rated, the caption of the user's image, the transcript of their voice message.
The LLM sees those ids and cites them; it never has to copy text.

:func:`validate` checks an answer against the ledger and the store: every recommended id
must exist in the store and be among the candidates; every cited evidence id must exist,
belong to that item (or be about the user: history, their image, their voice), and its
text must really be in the store (an item's stored document or derived texts) or be the
tool output it came from. Each problem is a :class:`Violation`; the agent re-asks once
and then drops what is still wrong (``agent.agent``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from prism.store import Store

TEXT_KINDS = ("plot", "caption", "transcript")  # an item's own texts, as opposed to facts or the user
EvidenceKind = Literal["plot", "caption", "transcript", "metadata", "history", "user_image", "user_voice"]
# Evidence about the user, not about one item: it may support any recommendation.
USER_KINDS = {"history", "user_image", "user_voice"}
_EVIDENCE_ID = re.compile(r"\bE\d+\b")


@dataclass
class EvidenceRef:
    id: str
    kind: EvidenceKind
    text: str
    item_id: str | None = None  # the item the text belongs to (None for the user's own media)
    field: str | None = None  # the stored field: document, caption:N, transcript:N


@dataclass
class Ledger:
    """The candidates and evidence of one turn, in the order tools produced them."""

    candidates: dict[str, str] = field(default_factory=dict)  # item_id -> title
    evidence: dict[str, EvidenceRef] = field(default_factory=dict)
    # item_id -> its position in the tool result that first returned it (0 = the tool's best);
    # a call the model chose ranks after everything the prefetched calls returned (see settle)
    ranks: dict[str, int] = field(default_factory=dict)
    rank_offset: int = 0
    # item_id -> the instruction-like spans withheld from the model (prism.untrusted)
    flagged: dict[str, list[str]] = field(default_factory=dict)

    def add_candidate(self, item_id: str, title: str, rank: int | None = None) -> int | None:
        """Record a candidate; returns its rank in this turn (the first result's, offset)."""
        self.candidates.setdefault(str(item_id), title)
        if rank is not None:
            self.ranks.setdefault(str(item_id), rank + self.rank_offset)
            return self.ranks[str(item_id)]
        return None

    def settle(self) -> None:
        """The results so far (the calls run on the user's own request, image, voice or history)
        keep their ranks; every later result ranks after all of them. Across two agent-suite runs
        no pick that only the model's own rewritten search returned was ever the wanted film,
        while the prefetched search of the user's words held it often (docs/evaluation.md)."""
        if self.ranks:
            self.rank_offset = max(self.ranks.values()) + 1

    def flag(self, item_id: str, spans: list[str]) -> None:
        """Record that ``item_id``'s text held instruction-like ``spans`` (withheld from the model)."""
        self.flagged.setdefault(str(item_id), []).extend(s for s in spans if s)

    def add_evidence(self, kind: EvidenceKind, text: str, item_id: str | None = None,
                     field_name: str | None = None) -> EvidenceRef:
        """Record a span (the same kind, item and text is recorded once) and return its ref."""
        for ref in self.evidence.values():
            if (ref.kind, ref.item_id, ref.text) == (kind, item_id, text):
                return ref
        ref = EvidenceRef(f"E{len(self.evidence) + 1}", kind, text, item_id, field_name)
        self.evidence[ref.id] = ref
        return ref


class Pick(BaseModel):
    item_id: str
    reason: str = Field(description="One short sentence: why this item fits the request.")
    evidence: list[str] = Field(default_factory=list, description="Evidence ids (E1, E2, ...) that support it.")

    @field_validator("evidence", mode="before")
    @classmethod
    def _bare_ids(cls, value):
        """Models copy the label with the id ("E2 plot", "[E2]"): keep the id itself."""
        if not isinstance(value, list):
            return value
        return [m.group(0) if isinstance(v, str) and (m := _EVIDENCE_ID.search(v)) else v for v in value]


class Answer(BaseModel):
    """The structured final answer of a turn."""

    message: str = Field(description="A short reply to the user (no item list: the picks carry it).")
    picks: list[Pick] = Field(default_factory=list)


class Violation(BaseModel):
    kind: Literal["unknown_item", "not_retrieved", "unknown_evidence", "evidence_of_other_item",
                  "evidence_not_in_store", "no_evidence", "duplicate_item", "steered_pick",
                  "instruction_in_message", "copied_from_data", "names_non_pick", "unsupported_claim",
                  "unsupported_reason"]
    item_id: str | None = None
    evidence_id: str | None = None
    detail: str


def _stored_texts(record: dict) -> list[str]:
    texts = [record.get("document") or ""]
    derived = record.get("derived") or []
    texts += [d.get("text") or "" for d in derived] + [" ".join(d.get("ocr") or []) for d in derived]
    texts += [str(v) for v in record.get("metadata", {}).values() if isinstance(v, (str, int, float))]
    return texts


def validate(answer: Answer, ledger: Ledger, store: Store) -> list[Violation]:
    """Every way ``answer`` is not grounded in ``ledger`` and ``store`` (empty: grounded)."""
    violations: list[Violation] = []
    ids = [p.item_id for p in answer.picks]
    records = store.get_items(sorted({*ids, *(r.item_id for r in ledger.evidence.values() if r.item_id)}))
    seen: set[str] = set()
    for pick in answer.picks:
        if pick.item_id in seen:
            violations.append(Violation(kind="duplicate_item", item_id=pick.item_id,
                                        detail=f"item {pick.item_id} is recommended twice"))
            continue
        seen.add(pick.item_id)
        if pick.item_id not in records:
            violations.append(Violation(kind="unknown_item", item_id=pick.item_id,
                                        detail=f"item {pick.item_id} does not exist in the catalog"))
            continue
        if pick.item_id not in ledger.candidates:
            violations.append(Violation(kind="not_retrieved", item_id=pick.item_id,
                                        detail=f"item {pick.item_id} was not among the items the tools returned"))
            continue
        if not pick.evidence:
            violations.append(Violation(kind="no_evidence", item_id=pick.item_id,
                                        detail=f"item {pick.item_id} cites no evidence"))
        for evidence_id in pick.evidence:
            ref = ledger.evidence.get(evidence_id)
            if ref is None:
                violations.append(Violation(kind="unknown_evidence", item_id=pick.item_id, evidence_id=evidence_id,
                                            detail=f"evidence {evidence_id} was never shown"))
            elif ref.kind not in USER_KINDS and ref.item_id != pick.item_id:
                violations.append(Violation(kind="evidence_of_other_item", item_id=pick.item_id,
                                            evidence_id=evidence_id,
                                            detail=f"evidence {evidence_id} is about item {ref.item_id}, "
                                                   f"not {pick.item_id}"))
            elif ref.item_id is not None and not any(ref.text.strip() in t for t in
                                                     _stored_texts(records.get(ref.item_id, {}))):
                violations.append(Violation(kind="evidence_not_in_store", item_id=pick.item_id,
                                            evidence_id=evidence_id,
                                            detail=f"the text of {evidence_id} is not in item {ref.item_id}'s "
                                                   "stored content"))
    return violations


def drop_violations(answer: Answer, violations: list[Violation]) -> Answer:
    """``answer`` without the picks and citations ``violations`` name; a pick left with no
    evidence is dropped too."""
    bad_items = {v.item_id for v in violations
                 if v.kind in ("unknown_item", "not_retrieved", "no_evidence", "duplicate_item", "steered_pick")}
    bad_refs = {(v.item_id, v.evidence_id) for v in violations if v.evidence_id}
    picks, kept_ids = [], set()
    for pick in answer.picks:
        if pick.item_id in bad_items or pick.item_id in kept_ids:
            continue
        evidence = [e for e in pick.evidence if (pick.item_id, e) not in bad_refs]
        if evidence:
            picks.append(pick.model_copy(update={"evidence": evidence}))
            kept_ids.add(pick.item_id)
    return Answer(message=answer.message, picks=picks)
