"""The faithfulness check in a turn: every reason against the evidence it cites.

A reason that :func:`prism.faithfulness.check_reason` finds unsupported is re-asked once, then
replaced by :func:`extractive_reason`, built by code from the cited evidence (the sentence
that best matches the request, or the history item behind it). The agent records the share of
supported reasons per turn.
"""

from __future__ import annotations

from prism.agent.evidence import TEXT_KINDS, Answer, EvidenceRef, Ledger, Pick, Violation
from prism.faithfulness import check_reason, item_facts, stems
from prism.store import Store
from prism.untrusted import sentences


def reason_violations(answer: Answer, ledger: Ledger, store: Store, request: str,
                      skip: set[str] = frozenset()) -> list[Violation]:
    """One ``unsupported_reason`` violation per pick whose reason its evidence does not support
    (picks in ``skip``, which other checks already reject, are not judged)."""
    records = store.get_items([p.item_id for p in answer.picks])
    violations = []
    for pick in answer.picks:
        if pick.item_id in skip or pick.item_id not in ledger.candidates or pick.item_id not in records:
            continue  # the validator reports it; its reason is moot
        refs = [ledger.evidence[e] for e in pick.evidence if e in ledger.evidence]
        verdict = check_reason(pick.reason, [r.text for r in refs], item_facts(records.get(pick.item_id)), request,
                               history_cited=any(r.kind == "history" for r in refs))
        if not verdict.supported:
            violations.append(Violation(kind="unsupported_reason", item_id=pick.item_id,
                                        detail=f"the reason for item {pick.item_id} claims what its evidence does "
                                               f"not say ({'; '.join(verdict.unsupported)}): use only the evidence"))
    return violations




def extractive_pick(pick: Pick, ledger: Ledger, request: str, limit: int) -> Pick:
    """``pick`` with an :func:`extractive_reason`. A pick that cites no text of its item and no
    history (only a genre line, say) first cites the item's own texts that the tools showed this turn, so that
    the reason quotes the film rather than saying nothing ("It matched your request.")."""
    cited = [ledger.evidence[e] for e in pick.evidence if e in ledger.evidence]
    if not any(r.kind in (*TEXT_KINDS, "history") for r in cited):
        mine = [r for r in ledger.evidence.values() if r.item_id == pick.item_id and r.id not in pick.evidence]
        own = [r.id for r in mine if r.kind in TEXT_KINDS] or [r.id for r in mine if r.kind == "metadata"]
        pick = pick.model_copy(update={"evidence": [*pick.evidence, *own[:2]]})
    return pick.model_copy(update={"reason": extractive_reason(pick, ledger, request, limit)})


def extractive_reason(pick: Pick, ledger: Ledger, request: str, limit: int) -> str:
    """A reason built by code from ``pick``'s evidence: the cited sentence that shares the most
    words with the request, or the history item behind it."""
    refs: list[EvidenceRef] = [ledger.evidence[e] for e in pick.evidence if e in ledger.evidence]
    history = [r for r in refs if r.kind == "history"]
    texts = [r for r in refs if r.kind in TEXT_KINDS]
    wanted = stems(request)
    best, best_score = "", -1
    for ref in texts:
        for start, end in sentences(ref.text):
            sentence = ref.text[start:end].strip()
            score = len(stems(sentence) & wanted)
            if score > best_score:
                best, best_score = sentence, score
    if best:
        label = {"caption": "Its poster: ", "transcript": "Its audio: "}.get(texts[0].kind, "")
        text = label + best
        return text if len(text) <= limit else text[: text.rfind(" ", 0, limit - 1)] + "…"
    if history:
        return f'Because you liked "{history[0].text}".'[:limit]
    if details := [r for r in refs if r.kind == "metadata"]:  # no plot in the catalog: its genres, say
        return details[0].text[:limit]
    return "It matched your request."
