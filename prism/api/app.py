"""The HTTP API (FastAPI; OpenAPI docs at ``/docs``) and the web chat page at ``/``.

Every route calls the one service layer (:class:`prism.service.PrismService`) or the agent
over it; nothing here computes a recommendation itself. One router per resource
(:mod:`prism.api.routes`):

* ``POST /v1/chat``: one agent turn, streamed as Server-Sent Events;
* ``GET /v1/sessions/{id}``: a chat session with its turns and traces;
* ``POST /v1/recommend``: explained recommendations for a user;
* ``POST /v1/search``: the nearest items to a text, image or voice query;
* ``POST /v1/items``, ``GET /v1/items/{id}`` (+ ``/image/{n}``, ``/audio/{n}``);
* ``POST /v1/chat/completions``: an OpenAI-compatible facade over the agent;
* ``GET /healthz``: models loaded, Chroma reachable.

Models load once per process (the lifespan warms them). Bearer-token auth guards every
``/v1`` route when it is on (``settings.api_auth``; ``auto`` = on beyond loopback). What the
routes share lives in :mod:`prism.api.context`.
"""

from __future__ import annotations

import asyncio
import warnings
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from prism.agent.llm import ChatModel
from prism.api.context import LOOPBACK, ApiContext, auth_required, bearer_guard, public_message
from prism.api.form_text import StrictFormText, refuse_invalid_form_text
from prism.api.routes import chat, health, items, openai_facade, recommend, search, sessions
from prism.api.uploads import UploadError
from prism.errors import InputError, PrismError
from prism.service import PrismService


def create_app(service: PrismService | None = None, llm: ChatModel | None = None, host: str | None = None,
               warm: bool = True) -> FastAPI:
    """The app over ``service`` (default: the process settings). ``llm`` replaces the chat
    model of the settings (tests pass a scripted one); ``host`` is the address the server
    binds (it decides ``auto`` auth); ``warm`` loads the models at start-up."""
    service = service or PrismService()
    settings = service.settings
    host = host or settings.api_host
    token = settings.api_token.get_secret_value() if settings.api_token else None
    if token is not None and (not token.strip() or token != token.strip()):
        raise PrismError("PRISM_API_TOKEN is blank or has spaces around it: set a real token")
    if auth_required(settings, host) and not token:
        raise PrismError(f"bearer-token auth is on (api_auth={settings.api_auth}, host {host}): "
                         "set PRISM_API_TOKEN, or bind to 127.0.0.1")
    if settings.api_auth == "off" and host not in LOOPBACK:
        warnings.warn(f"bearer-token auth is off (PRISM_API_AUTH=off) on {host}, beyond loopback: anyone who can "
                      "reach this address can use the API", UserWarning, stacklevel=2)
    prism = ApiContext(service, llm)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm:
            await asyncio.to_thread(health.warm, prism)
        yield

    app = FastAPI(title="Prism", version="0.1.0", lifespan=lifespan,
                  description="Multimodal, explainable recommendations and a conversational agent.")
    app.state.prism = prism
    app.add_middleware(StrictFormText)

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError):
        return JSONResponse({"detail": public_message(str(exc))}, status_code=exc.status)

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError):
        return JSONResponse({"detail": public_message(str(exc))}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        detail = public_message(exc.detail) if isinstance(exc.detail, str) else exc.detail
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    guarded = [Depends(bearer_guard(settings, host, token)), Depends(refuse_invalid_form_text)]
    for resource in (chat, sessions, recommend, search, items, openai_facade):
        app.include_router(resource.router, dependencies=guarded)
    app.include_router(health.router)
    app.mount("/web", StaticFiles(directory=health.WEB), name="web")
    return app
