"""What the user reads: the structured answer as fluent text with its evidence, and the
compact forms of memory and earlier turns that go back to the LLM."""

from __future__ import annotations

from agent.evidence import Answer, Ledger
from agent.sessions import Preference

KIND_LABEL = {"plot": "plot", "caption": "poster", "transcript": "audio", "metadata": "details",
              "history": "you liked", "user_image": "your image", "user_voice": "you said"}


def whole_sentences(text: str, cap: int) -> str:
    """``text`` if it is shorter than ``cap`` (it ended on its own); a text cut off at the cap
    loses its unfinished last sentence (or clause), so nobody reads half a sentence."""
    if len(text) < cap:
        return text.strip()
    text = text.strip()
    for marks in (".!?", ";,"):
        end = max(text.rfind(m) for m in marks)
        if end > 0:
            return text[: end + 1].rstrip(",;") + ("" if text[end] in ".!?" else "…")
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
    """An earlier turn's answer as the LLM sees it again: the message and the titles picked."""
    if not answer:
        return text or ""
    titles = [line.split(":", 1)[0].split(". ", 1)[-1] for line in (text or "").splitlines()[1:]
              if line[:1].isdigit()]
    return answer.get("message", "") + (f" (recommended: {'; '.join(titles)})" if titles else "")


def memory(user_id: str | None, preferences: list[Preference]) -> str:
    """What the agent remembers of this session, as the head of the user message ('' if nothing)."""
    lines = []
    if user_id:
        lines.append(f"Linked user: {user_id}")
    if preferences:
        lines.append("Preferences: " + "; ".join(f"{p.kind} {p.value}" for p in preferences))
    return "".join(line + "\n" for line in lines)
