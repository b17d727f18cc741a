"""Chat models behind the agent: one small interface, an OpenAI-compatible client, a scripted model.

``ChatModel.complete`` sends a list of OpenAI-style messages and returns one ``LLMReply``:
its text, any native tool calls, token counts and timings. A step may ask for output that
follows a JSON schema (``json_schema``: constrained decoding on llama.cpp, structured outputs
on OpenAI) and/or offer native ``tools``. Tokens are streamed to ``on_token`` as they come.

* :class:`OpenAIChat` talks to any OpenAI-compatible endpoint, the embedded xllamacpp server
  included (``agent.embedded``).
* :class:`ScriptedChat` replays fixed replies: deterministic agent tests, no model.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

TokenCallback = Callable[[str], None]


@dataclass
class ToolCallRequest:
    """A native tool call as the model wrote it (``arguments`` is the raw JSON text)."""

    name: str
    arguments: str
    id: str = ""


@dataclass
class LLMReply:
    content: str
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None
    # llama.cpp servers report where the time went: prompt processing vs generation.
    prompt_seconds: float | None = None
    generation_seconds: float | None = None


class ChatModel(Protocol):
    name: str
    native_tools: bool  # True: tool steps use the endpoint's tool_calls; False: JSON-schema steps

    def complete(self, messages: list[dict], *, tools: list[dict] | None = None, json_schema: dict | None = None,
                 max_tokens: int = 256, on_token: TokenCallback | None = None) -> LLMReply: ...


class LLMError(RuntimeError):
    """The chat model could not be reached or failed; the message names the endpoint."""


class InFlight:
    """How many chat requests this process has waiting on or running in its chat models: the
    queue depth that ``/healthz`` reports."""

    def __init__(self) -> None:
        self._lock, self.count = threading.Lock(), 0

    def __enter__(self) -> "InFlight":
        with self._lock:
            self.count += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.count -= 1


LLM_REQUESTS = InFlight()


class OpenAIChat:
    """Any OpenAI-compatible chat endpoint, always streamed (for time to first token)."""

    def __init__(self, base_url: str | None, model: str, api_key: str | None = None, native_tools: bool = True,
                 temperature: float = 0.0, timeout: float = 300.0, label: str | None = None) -> None:
        # deferred: the openai client loads with the first endpoint
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=1)
        self.model, self.native_tools, self.temperature = model, native_tools, temperature
        self.name = label or f"{model} @ {base_url or 'api.openai.com'}"

    def complete(self, messages: list[dict], *, tools: list[dict] | None = None, json_schema: dict | None = None,
                 max_tokens: int = 256, on_token: TokenCallback | None = None) -> LLMReply:
        # deferred: the openai client loads with the first call
        import openai

        request: dict = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                         "temperature": self.temperature, "stream": True, "stream_options": {"include_usage": True}}
        if tools:
            request["tools"] = tools
        if json_schema is not None:
            request["response_format"] = {"type": "json_schema",
                                          "json_schema": {"name": "step", "schema": json_schema, "strict": False}}
        started = time.perf_counter()
        first: float | None = None
        text: list[str] = []
        calls: dict[int, dict] = {}
        reply = LLMReply(content="")
        try:
            with LLM_REQUESTS:
                for chunk in self.client.chat.completions.create(**request):
                    timings = (chunk.model_extra or {}).get("timings")
                    if isinstance(timings, dict) and "prompt_ms" in timings:
                        reply.prompt_seconds = timings["prompt_ms"] / 1000
                        reply.generation_seconds = timings.get("predicted_ms", 0.0) / 1000
                    if chunk.usage:
                        reply.prompt_tokens = chunk.usage.prompt_tokens or 0
                        reply.completion_tokens = chunk.usage.completion_tokens or 0
                        details = getattr(chunk.usage, "prompt_tokens_details", None)
                        reply.cached_tokens = (getattr(details, "cached_tokens", 0) or 0) if details else 0
                    if not chunk.choices:
                        continue
                    delta = chunk.choices[0].delta
                    if delta.content:
                        first = first if first is not None else time.perf_counter() - started
                        text.append(delta.content)
                        if on_token:
                            on_token(delta.content)
                    for call in delta.tool_calls or []:
                        first = first if first is not None else time.perf_counter() - started
                        slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                        slot["id"] = call.id or slot["id"]
                        if call.function:
                            slot["name"] += call.function.name or ""
                            slot["arguments"] += call.function.arguments or ""
        except openai.OpenAIError as error:
            raise LLMError(f"the chat model {self.name} failed: {type(error).__name__}: {error}") from error
        reply.content = "".join(text)
        reply.tool_calls = [ToolCallRequest(c["name"], c["arguments"], c["id"]) for _, c in sorted(calls.items())]
        reply.seconds, reply.first_token_seconds = time.perf_counter() - started, first
        return reply


class ScriptedChat:
    """Replays ``replies`` in order, one per ``complete`` call, and records what it was sent.

    A reply is the text the model "writes" (a str, or any JSON-able value, dumped), or
    ``{"tool_calls": [{"name": ..., "arguments": {...} or "raw text"}]}`` for a native call
    (then ``native_tools`` should be True), or a callable that gets this call's record
    (``messages``, ``tools``, ``json_schema``) and returns one of those, for scripts that
    depend on what the tools returned. Running out of replies is an error."""

    def __init__(self, replies: Sequence[object], native_tools: bool = False) -> None:
        self.replies = list(replies)
        self.native_tools = native_tools
        self.name = "scripted"
        self.calls: list[dict] = []

    def complete(self, messages: list[dict], *, tools: list[dict] | None = None, json_schema: dict | None = None,
                 max_tokens: int = 256, on_token: TokenCallback | None = None) -> LLMReply:
        self.calls.append({"messages": [dict(m) for m in messages], "tools": tools, "json_schema": json_schema})
        if not self.replies:
            raise LLMError(f"the scripted chat model ran out of replies after {len(self.calls) - 1} calls")
        reply = self.replies.pop(0)
        if callable(reply):
            reply = reply(self.calls[-1])
        if isinstance(reply, dict) and "tool_calls" in reply:
            calls = [ToolCallRequest(c["name"], c["arguments"] if isinstance(c["arguments"], str)
                                     else json.dumps(c["arguments"]), f"call_{len(self.calls)}_{i}")
                     for i, c in enumerate(reply["tool_calls"])]
            return LLMReply(content="", tool_calls=calls, prompt_tokens=_words(messages), completion_tokens=1)
        text = reply if isinstance(reply, str) else json.dumps(reply)
        if on_token:
            for start in range(0, len(text), 8):
                on_token(text[start:start + 8])
        return LLMReply(content=text, prompt_tokens=_words(messages), completion_tokens=len(text.split()),
                        first_token_seconds=0.0)


def _words(messages: list[dict]) -> int:
    return sum(len(str(m.get("content") or "").split()) for m in messages)
