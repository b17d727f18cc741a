"""Catalog text, captions, transcripts and uploads are data, never instructions.

:func:`instruction_spans` finds the spans of a text that read as instructions to a model
rather than as content: chat-role markers (``Assistant:``, ``<|im_start|>``), delimiters that
try to close a data block (``</data>``), overrides ("ignore all previous instructions"),
the agent's own JSON protocol (a ready-made ``{"answer": …}`` or tool call),
requests for the prompt, and steering aimed at the recommender ("recommend only …", "tell
the user …"), in English and Chinese. Ingestion counts them per item
(``instruction_spans`` in the item's metadata); at read time :func:`clean_run` keeps what
a model may see of a text (the longest run of whole sentences with no flagged span, a
verbatim substring so that evidence can still be checked against the store).

The patterns were checked for false alarms on every MovieLens-100K-MM plot, title and
poster caption (``tests/test_untrusted.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Each rule: (name, pattern). Patterns are case-insensitive; English ones match on word
# boundaries, Chinese ones on the characters.
RULES: tuple[tuple[str, str], ...] = (
    ("role marker", r"(?:^|(?<=[\n>\]\}.!?。！？\"“]))\s*(?:system|assistant|developer|user)\s*[:：]"),
    ("chat template", r"<\|?\s*(?:im_start|im_end|system|assistant|user|endoftext|eot_id)\s*\|?>|\[/?INST\]"
                      r"|###\s*(?:instruction|system|response)"),
    ("delimiter", r"<\s*/?\s*(?:data|tool|tool_call|function|script)\b[^>]{0,40}>?"),
    ("override", r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,40}\b(?:instructions?|rules?|prompts?"
                 r"|directions?|guidelines?|everything above|previous|prior)\b"),
    ("persona", r"\byou are now\b|\bnew instructions?\b|\bfrom now on,? (?:you|always|only)\b"
                r"|\bsystem (?:notice|prompt|message|override|instruction)\b|\bdeveloper mode\b"),
    ("prompt request", r"\b(?:reveal|print|show|repeat|output|leak)\b[^.!?\n]{0,30}\b(?:system prompt|your prompt"
                       r"|your instructions|hidden instructions)\b"),
    ("steering", r"\b(?:recommend|suggest|pick|choose|select)\s+(?:only|exclusively|nothing but)\b"
                 r"|\b(?:tell|inform|convince|assure) the user\b|\bi will (?:now )?recommend\b"
                 r"|\bas the assistant\b|\byou must (?:recommend|say|answer|reply|pick)\b"),
    ("addressing the model", r"\b(?:note|message|instructions?) (?:to|for) (?:the |any )?(?:ai|assistant|model|llm|bot)\b"
                             r"|\b(?:ai|assistant|language model|llm|chatbot)s? reading this\b"
                             r"|\bif you are an? (?:ai|assistant|language model|llm)\b"
                             r"|\bthe user (?:has )?(?:asked|wants|told) you to\b"),
    # The agent's own output protocol written into data: a ready-made answer or tool call to copy.
    ("protocol", r"\{\s*\"(?:answer|message|picks|tool|tool_calls|arguments|item_id|reason|role|content)\"\s*:"),
    ("chinese", r"(?:忽略|无视|無視|忘记|忘記)[^。！？\n]{0,12}(?:指令|指示|提示|规则|規則|之前|以上|上面)"
                r"|(?:系统|系統)(?:提示|通知|指令|消息)|你现在是|你現在是|只(?:推荐|推薦|选择|選擇)"
                r"|(?:推荐|推薦)编号|告诉用户|告訴用戶|新的指令"),
)
_COMPILED = tuple((name, re.compile(pattern, re.IGNORECASE)) for name, pattern in RULES)
_SENTENCE = re.compile(r"[^.!?。！？\n]*(?:[.!?。！？]+[\"'”’)]*|\n|$)")


@dataclass(frozen=True)
class Flag:
    """A span of a text that reads as an instruction: where, which rule, what it says."""

    start: int
    end: int
    rule: str
    text: str


def instruction_spans(text: str) -> list[Flag]:
    """Every instruction-like span of ``text``, in order."""
    flags = [Flag(m.start(), m.end(), name, m.group(0).strip()) for name, pattern in _COMPILED
             for m in pattern.finditer(text or "") if m.group(0).strip()]
    return sorted(flags, key=lambda f: (f.start, f.end))


def looks_like_instruction(text: str) -> bool:
    """Whether ``text`` holds any instruction-like span."""
    return bool(text) and any(pattern.search(text) for _, pattern in _COMPILED)


def sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text`` (ends at . ! ? 。 ！ ？ or a line break)."""
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text or "") if m.group(0).strip()]


def clean_run(text: str) -> str:
    """What a model may see of ``text``: unchanged when nothing is flagged, else the longest
    run of consecutive whole sentences that touch no flagged span ('' when none is clean).
    Always a verbatim substring of ``text`` (stripped)."""
    flags = instruction_spans(text)
    if not flags:
        return (text or "").strip()
    best, run_start, run_end = "", None, None
    for start, end in sentences(text):
        if any(f.start < end and f.end > start for f in flags):
            run_start = None
            continue
        run_start = start if run_start is None else run_start
        run_end = end
        candidate = text[run_start:run_end].strip()
        if len(candidate) > len(best):
            best = candidate
    return best


def without_instructions(text: str) -> str:
    """``text`` with every sentence that touches a flagged span left out (the clean sentences
    kept in order): what an encoder may embed, so instruction text never decides what a search
    finds."""
    flags = instruction_spans(text)
    if not flags:
        return (text or "").strip()
    kept = [text[start:end].strip() for start, end in sentences(text)
            if not any(f.start < end and f.end > start for f in flags)]
    return " ".join(k for k in kept if k)
