"""``GET /healthz`` (models loaded, Chroma reachable, how deep the chat queue is), the start-up
warm-up, and the web chat page at ``/`` with its static files."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, JSONResponse

from prism import spaces
from prism.agent.llm import LLM_REQUESTS
from prism.api.context import ApiContext, context
from prism.model_registry import loaded_names

WEB = Path(__file__).resolve().parents[1] / "web"

router = APIRouter()


@router.get("/healthz", summary="Models loaded, Chroma reachable, chat queue depth")
async def healthz(prism: ApiContext = Depends(context)):
    return await asyncio.to_thread(health, prism)


@router.get("/", include_in_schema=False)
async def index():
    return FileResponse(WEB / "index.html")


def warm(prism: ApiContext) -> None:
    """Load the models a request needs (the chat model, the text encoders)."""
    prism.agent  # noqa: B018  (starts the embedded LLM)
    for space in spaces.text_spaces(prism.settings):
        space.encoder().encode(["warm up"], "query")


def health(prism: ApiContext) -> JSONResponse:
    chroma: dict = {"reachable": True}
    try:
        chroma["items"] = prism.service.store.count_items()
    except Exception as exc:  # whatever the client raises, health reports it
        chroma = {"reachable": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    # chat_model None: not loaded yet (a server started with api_warm=false loads it on first chat).
    models = {"chat_model": prism.chat_model_name, "loaded": loaded_names()}
    # The embedded model serves llm_parallel sequences at once; requests beyond those wait in it.
    slots = prism.settings.llm_parallel if prism.settings.llm_backend == "embedded" else None
    queue = {"turns": prism.turns.count, "llm_requests": LLM_REQUESTS.count, "llm_slots": slots,
             "llm_waiting": max(0, LLM_REQUESTS.count - slots) if slots else None}
    ok = chroma["reachable"]
    return JSONResponse({"status": "ok" if ok else "unavailable", "chroma": chroma, "models": models,
                         "queue": queue},
                        status_code=200 if ok else 503)
