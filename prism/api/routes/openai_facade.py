"""``POST /v1/chat/completions``: the agent behind OpenAI's chat API, for existing chat clients.

The last user message is the turn's request; its text parts are the text and a
``data:`` URL image part becomes the turn's image (remote URLs are refused: the server
fetches nothing). Earlier messages are not replayed: the session remembers them. The session
is the ``X-Prism-Session`` header, else the request's ``user`` field, else a hash of the
first user message (stable while a client resends the whole conversation). The reply's
content is the fluent answer; the structured, grounded answer rides along as ``prism``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import time
import uuid
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from prism.api.context import ApiContext, check_session, context, safe_name, turn_events
from prism.api.uploads import save_bytes

router = APIRouter()


class ChatCompletionRequest(BaseModel):
    model: str = "prism"
    messages: list[dict] = Field(min_length=1)
    stream: bool = False
    user: str | None = None


def _text_and_image(message: dict) -> tuple[str, bytes | None]:
    content = message.get("content")
    if isinstance(content, str):
        return content, None
    if not isinstance(content, list):
        raise HTTPException(400, "message content must be a string or a list of parts")
    texts, image = [], None
    for part in content:
        if not isinstance(part, dict):
            raise HTTPException(400, "each content part must be an object")
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            given = part.get("image_url")
            # Some clients send the URL itself as a string instead of {"url": ...}.
            url = given if isinstance(given, str) else str(given.get("url", "")) if isinstance(given, dict) else ""
            if not url.startswith("data:") or ";base64," not in url:
                raise HTTPException(400, "image parts must be data: URLs (base64); the server fetches no URLs")
            try:
                image = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
            except (binascii.Error, ValueError):
                raise HTTPException(400, "the image data URL is not valid base64") from None
        else:
            raise HTTPException(400, f"unsupported content part type {part.get('type')!r}")
    return " ".join(texts), image


def _session(request: Request, body: ChatCompletionRequest) -> str:
    explicit = request.headers.get("x-prism-session") or body.user
    if explicit:
        return explicit
    first = next((m for m in body.messages if m.get("role") == "user"), body.messages[0])
    return "oai-" + hashlib.sha256(json.dumps(first.get("content"), sort_keys=True).encode()).hexdigest()[:16]


@router.post("/v1/chat/completions", summary="OpenAI-compatible chat completions over the agent")
async def chat_completions(body: ChatCompletionRequest, request: Request, prism: ApiContext = Depends(context)):
    last = next((m for m in reversed(body.messages) if m.get("role") == "user"), None)
    if last is None:
        raise HTTPException(400, "messages hold no user message")
    text, image_bytes = _text_and_image(last)
    session = _session(request, body)
    check_session(session)
    image = None
    if image_bytes is not None:
        image = save_bytes(image_bytes, "image_url", "image", prism.uploads / safe_name(session), prism.upload_limit)
    if not text.strip() and image is None:
        raise HTTPException(400, "the last user message is empty")
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    if not body.stream:
        result = await asyncio.to_thread(prism.run_turn, session, request=text, image=image)
        t = result.trace
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": body.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
                          "total_tokens": t.prompt_tokens + t.completion_tokens},
                "prism": result.model_dump()}
    return EventSourceResponse(_chunks(prism, session, text, image, completion_id, created, body.model))


async def _chunks(prism: ApiContext, session: str, text: str, image: Path | None, completion_id: str,
                  created: int, model: str):
    def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
        return {"data": json.dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                    "model": model, "choices": [{"index": 0, "delta": delta,
                                                                 "finish_reason": finish}], **extra},
                                   ensure_ascii=False)}

    yield chunk({"role": "assistant", "content": ""})
    streamed = ""
    async for event in turn_events(prism, session, request=text, image=image):
        if event["event"] == "token":
            piece = json.loads(event["data"])["text"]
            streamed += piece
            yield chunk({"content": piece})
        elif event["event"] == "answer":
            result = json.loads(event["data"])
            rest = result["text"][len(streamed):] if result["text"].startswith(streamed) else "\n" + result["text"]
            if rest:
                yield chunk({"content": rest})
            yield chunk({}, "stop", prism=result)
        elif event["event"] == "error":
            yield chunk({"content": f"[error] {json.loads(event['data'])['detail']}"}, "stop")
    yield {"data": "[DONE]"}
