"""``GET /healthz`` (models loaded, Chroma reachable), the start-up warm-up, and the web chat
page at ``/`` with its static files."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, JSONResponse

from prism import spaces
from prism.api.context import ApiContext, context
from prism.model_registry import loaded_names

WEB = Path(__file__).resolve().parents[1] / "web"

router = APIRouter()


@router.get("/healthz", summary="Models loaded and Chroma reachable")
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
    ok = chroma["reachable"]
    return JSONResponse({"status": "ok" if ok else "unavailable", "chroma": chroma, "models": models},
                        status_code=200 if ok else 503)
