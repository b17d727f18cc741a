"""What the user reads: the structured answer as fluent text with its evidence, and the
compact forms of memory and earlier turns that go back to the LLM."""

from __future__ import annotations

from prism.agent.evidence import Answer, Ledger
from prism.agent.sessions import Preference

KIND_LABEL = {"plot": "plot", "caption": "poster", "transcript": "audio", "metadata": "details",
              "history": "you liked", "user_image": "your image", "user_voice": "you said"}


SENTENCE_END = (".", "!", "?", "…", "。", "！", "？", '"', "'", ")")
CUT_MARGIN = 15  # the grammar refuses a token that would pass the cap, so a cut lands up to a word early


def looks_cut(text: str, cap: int) -> bool:
    """Whether a string the grammar capped at ``cap`` characters was cut off: it ends near
    the cap, or on a space (the model closed the string mid-phrase), and not on a sentence end."""
    return (len(text) >= cap - CUT_MARGIN or text.endswith(" ")) and not text.rstrip().endswith(SENTENCE_END)


def whole_sentences(text: str, cap: int) -> str:
    """``text`` unless :func:`looks_cut`; a cut text loses its unfinished last sentence (or
    clause, marked with "…"), so nobody reads half a sentence."""
    if not looks_cut(text, cap):
        return text.strip()
    text = text.strip()
    for marks in (".!?。！？", ";,，"):
        end = max(text.rfind(m) for m in marks)
        if end > 0:
            return text[: end + 1].rstrip(",;，") + ("" if text[end] in ".!?。！？" else "…")
    return text + "…"


def answer_text(answer: Answer, ledger: Ledger) -> str:
    """The message, then one paragraph per pick: title, reason, and the cited evidence quoted."""
    parts = [answer.message.strip()]
    for number, pick in enumerate(answer.picks, start=1):
        title = ledger.candidates.get(pick.item_id, pick.item_id)
        quotes = []
        for evidence_id in pick.evidence:
            ref = ledger.evidence.get(evidence_id)
            if ref is not None:
                quotes.append(f'{KIND_LABEL.get(ref.kind, ref.kind)}: "{ref.text}"')
        line = f"{number}. {title}: {pick.reason.strip()}"
        if quotes:
            line += "\n   Evidence: " + "; ".join(quotes)
        parts.append(line)
    return "\n".join(p for p in parts if p)


def short(answer: dict | None, text: str | None) -> str:
    """An earlier turn's answer as the LLM sees it again: the message and the titles picked
    (the stored answer's ``titles``)."""
    if not answer:
        return text or ""
    titles = [answer.get("titles", {}).get(p["item_id"], p["item_id"]) for p in answer.get("picks", [])]
    return answer.get("message", "") + (f" (recommended: {'; '.join(titles)})" if titles else "")


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word boundary, marked as cut."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    return (head[: head.rfind(" ")] if " " in head[limit // 2:] else head) + " …(cut)"


def replayed(turns: list, budget: int) -> list[dict]:
    """Earlier turns as chat messages within ``budget`` characters: each request and answer cut
    to a share of it, the newest kept first, so one huge message never crowds out the rest."""
    if not turns or budget <= 0:
        return []
    share = max(budget // (2 * len(turns)), 40)
    messages: list[dict] = []
    used = 0
    for turn in reversed(turns):
        pair = [{"role": "user", "content": cut(turn.request, share)},
                {"role": "assistant", "content": cut(short(turn.answer, turn.text), share)}]
        size = sum(len(m["content"]) for m in pair)
        if used + size > budget and messages:
            break
        messages = pair + messages
        used += size
    return messages


def memory(user_id: str | None, preferences: list[Preference]) -> str:
    """What the agent remembers of this session, as the head of the user message ('' if nothing)."""
    lines = []
    if user_id:
        lines.append(f"Linked user: {user_id}")
    if preferences:
        lines.append("Preferences: " + "; ".join(f"{p.kind} {p.value}" for p in preferences))
    return "".join(line + "\n" for line in lines)
