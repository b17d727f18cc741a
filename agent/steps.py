"""One LLM step: the JSON schema it must follow, and reading what the model wrote.

A step is either a tool call or the final answer. On the embedded model every step is
JSON-schema constrained (llama.cpp turns the schema into a grammar), and the schema of the
answer lists only the item ids and evidence ids the turn has retrieved so far, so the
local model cannot even write an id it was not shown. Endpoints with native tool calling
get the tools as ``tools`` and the answer schema as ``response_format``; they are not
constrained the same way, which is why the validator (``agent.evidence``) checks every
answer anyway.

:func:`parse_step` is tolerant of the usual ways small models wrap JSON (code fences,
``<tool_call>`` tags, ``{"name": ..., "arguments": ...}``, arguments as a JSON string,
a bare answer object) and raises :class:`StepError` with a message the model can act on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from langchain_core.tools import StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

from prism.agent.evidence import USER_KINDS, Answer, Ledger

# Caps, not targets: the prompt asks for one short sentence; the grammar cuts off a runaway.
REASON_CHARS = 110
MESSAGE_CHARS = 120


class StepError(ValueError):
    """The model's reply is not a usable step; the message says why."""


@dataclass
class ToolStep:
    tool: str
    arguments: dict


@dataclass
class AnswerStep:
    answer: Answer


def tool_parameters(tool: StructuredTool) -> dict:
    """The JSON schema of a tool's arguments."""
    return convert_to_openai_tool(tool)["function"]["parameters"]


def openai_tools(tools: list[StructuredTool]) -> list[dict]:
    """The tools in OpenAI's ``tools`` format (native tool calling)."""
    return [convert_to_openai_tool(t) for t in tools]


def tool_signatures(tools: list[StructuredTool]) -> str:
    """One line per tool for the system prompt: ``name(arg, arg?): description``."""
    lines = []
    for tool in tools:
        params = tool_parameters(tool)
        required = set(params.get("required", []))
        args = ", ".join(name if name in required else f"{name}?" for name in params.get("properties", {}))
        lines.append(f"- {tool.name}({args}): {tool.description}")
    return "\n".join(lines)


def answer_schema(ledger: Ledger, max_picks: int) -> dict:
    """The answer's schema; ids are limited to what ``ledger`` holds, and each item may cite
    only its own evidence or evidence about the user (one alternative per candidate)."""
    about_user = [r.id for r in ledger.evidence.values() if r.kind in USER_KINDS]
    alternatives = []
    for item_id in ledger.candidates:
        own = [r.id for r in ledger.evidence.values() if r.item_id == item_id and r.kind not in USER_KINDS]
        if own or about_user:
            alternatives.append({"type": "object", "properties": {
                "item_id": {"type": "string", "enum": [item_id]},
                "reason": {"type": "string", "maxLength": REASON_CHARS},
                "evidence": {"type": "array", "items": {"type": "string", "enum": own + about_user},
                             "minItems": 1, "maxItems": 2}},
                "required": ["item_id", "reason", "evidence"]})
    if alternatives:
        pick = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
        picks = {"type": "array", "items": pick, "maxItems": max_picks}
    else:
        picks = {"type": "array", "maxItems": 0}
    return {"type": "object", "properties": {"message": {"type": "string", "maxLength": MESSAGE_CHARS},
                                             "picks": picks}, "required": ["message", "picks"]}


def step_schema(tools: list[StructuredTool], ledger: Ledger, max_picks: int, allow_tools: bool = True) -> dict:
    """A tool call (any of ``tools``) or the answer, as one JSON schema."""
    options = [{"type": "object", "properties": {"tool": {"type": "string", "enum": [t.name]},
                                                 "arguments": tool_parameters(t)},
                "required": ["tool", "arguments"]} for t in (tools if allow_tools else [])]
    options.append({"type": "object", "properties": {"answer": answer_schema(ledger, max_picks)},
                    "required": ["answer"]})
    return options[0] if len(options) == 1 else {"anyOf": options}


def _json_object(text: str) -> dict:
    text = text.strip()
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text)
    text = re.sub(r"^<tool_call>\s*|\s*</tool_call>$", "", text)
    try:
        value = json.loads(text)
    except ValueError:
        start = text.find("{")
        depth, end = 0, -1
        for position in range(max(start, 0), len(text)):
            depth += {"{": 1, "}": -1}.get(text[position], 0)
            if depth == 0 and start >= 0:
                end = position
                break
        if start < 0 or end < 0:
            raise StepError("the reply is not a JSON object") from None
        try:
            value = json.loads(text[start:end + 1])
        except ValueError as error:
            raise StepError(f"the reply is not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise StepError("the reply must be a JSON object")
    return value


def parse_step(text: str, tools: list[StructuredTool]) -> ToolStep | AnswerStep:
    """A tool call with validated arguments, or an answer; StepError otherwise."""
    value = _json_object(text)
    if "answer" in value or {"message", "picks"} <= set(value):
        try:
            return AnswerStep(Answer.model_validate(value.get("answer", value)))
        except ValidationError as error:
            raise StepError(f"the answer does not match its schema: {_short(error)}") from None
    name = value.get("tool") or value.get("name")
    return tool_step(name, value.get("arguments", value.get("args", {})), tools)


def tool_step(name: object, arguments: object, tools: list[StructuredTool]) -> ToolStep:
    """A validated tool call; StepError for an unknown tool or bad arguments."""
    by_name = {t.name: t for t in tools}
    if not isinstance(name, str) or name not in by_name:
        raise StepError(f"unknown tool {name!r}; the tools are {', '.join(by_name)}")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError:
            raise StepError(f"the arguments of {name} are not valid JSON") from None
    if not isinstance(arguments, dict):
        raise StepError(f"the arguments of {name} must be a JSON object")
    try:
        checked = by_name[name].args_schema.model_validate(arguments)  # type: ignore[union-attr]
    except ValidationError as error:
        raise StepError(f"bad arguments for {name}: {_short(error)}") from None
    return ToolStep(name, checked.model_dump(exclude_none=True))


def _short(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in error.errors()[:3])


class MessageStream:
    """Feeds ``on_text`` the characters of the ``"message"`` string of a JSON reply while the
    reply is still being generated (the user sees the answer as it is written)."""

    PATTERN = re.compile(r'"message"\s*:\s*"')

    def __init__(self, on_text) -> None:
        self.on_text = on_text
        self.buffer = ""
        self.start: int | None = None
        self.emitted = 0
        self.done = False

    def feed(self, chunk: str) -> None:
        self.buffer += chunk
        if self.done:
            return
        if self.start is None:
            match = self.PATTERN.search(self.buffer)
            if not match:
                return
            self.start = match.end()
        raw = self.buffer[self.start:]
        end = re.search(r'(?<!\\)(?:\\\\)*"', raw)
        if end:
            raw, self.done = raw[: end.end() - 1], True
        elif raw.endswith("\\"):
            raw = raw[:-1]
        try:
            text = json.loads(f'"{raw}"')
        except ValueError:
            return
        if len(text) > self.emitted:
            self.on_text(text[self.emitted:])
            self.emitted = len(text)
