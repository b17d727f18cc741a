"""The HTTP API (FastAPI; OpenAPI docs at ``/docs``) and the web chat page at ``/``.

Every route calls the one service layer (:class:`prism.service.PrismService`) or the agent
over it; nothing here computes a recommendation itself.

* ``POST /v1/chat``: one agent turn; a Server-Sent Events stream of ``tool`` and ``token``
  events, then ``answer`` (the structured, grounded result) or ``error``.
* ``POST /v1/recommend``: the fusion model's ranking for a user, optionally steered by a
  text, image or voice query; items with scores, reasons and evidence.
* ``POST /v1/items``, ``GET /v1/items/{id}`` (+ ``/image/{n}``, ``/audio/{n}``): ingest one
  item with uploaded files (the ``prism ingest`` path), read it back.
* ``GET /v1/sessions/{id}``: a chat session with its turns and traces.
* ``POST /v1/chat/completions``: an OpenAI-compatible facade over the agent.
* ``GET /healthz``: models loaded, Chroma reachable.

Models load once per process (the lifespan warms them). Turns of one session run one at a
time (a lock per session, taken in the worker thread, so a client that disconnects cannot
make two turns overlap); different sessions run concurrently. Bearer-token auth guards every
``/v1`` route when it is on (``settings.api_auth``; ``auto`` = on beyond loopback).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sse_starlette.sse import EventSourceResponse

from agent.llm import ChatModel
from agent.sessions import SessionStore, check_session_id
from prism.api import openai_facade
from prism.api.uploads import UploadError, save_upload
from prism.errors import InputError, PrismError
from prism.service import PrismService

logger = logging.getLogger("prism.api")
WEB = Path(__file__).resolve().parent / "web"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def auth_required(settings, host: str) -> bool:
    return settings.api_auth == "on" or (settings.api_auth == "auto" and host not in LOOPBACK)


class Prism:
    """What the routes share: the service, the agent (built once) and the per-session locks."""

    def __init__(self, service: PrismService, llm: ChatModel | None) -> None:
        self.service, self._llm = service, llm
        self.sessions = SessionStore(service.settings.sessions_path)
        self._agent = None
        self._agent_lock = threading.Lock()
        self._session_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    @property
    def agent(self):
        with self._agent_lock:
            if self._agent is None:
                from agent.agent import Agent
                from agent.backends import chat_model

                self._agent = Agent(self.service, self._llm or chat_model(self.service.settings), self.sessions)
            return self._agent

    def session_lock(self, session_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._session_locks.setdefault(session_id, threading.Lock())

    def run_turn(self, session_id: str, **kwargs):
        with self.session_lock(session_id):
            return self.agent.run_turn(session_id, **kwargs)


def create_app(service: PrismService | None = None, llm: ChatModel | None = None, host: str | None = None,
               warm: bool = True) -> FastAPI:
    """The app over ``service`` (default: the process settings). ``llm`` replaces the chat
    model of the settings (tests pass a scripted one); ``host`` is the address the server
    binds (it decides ``auto`` auth); ``warm`` loads the models at start-up."""
    service = service or PrismService()
    settings = service.settings
    host = host or settings.api_host
    token = settings.api_token.get_secret_value() if settings.api_token else None
    if auth_required(settings, host) and not token:
        raise PrismError(f"bearer-token auth is on (api_auth={settings.api_auth}, host {host}): "
                         "set PRISM_API_TOKEN, or bind to 127.0.0.1")
    prism = Prism(service, llm)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm:
            await asyncio.to_thread(_warm, prism)
        yield

    app = FastAPI(title="Prism", version="0.1.0", lifespan=lifespan,
                  description="Multimodal, explainable recommendations and a conversational agent.")
    app.state.prism = prism

    async def require_token(request: Request) -> None:
        if not auth_required(settings, host):
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(require_token)]
    limit = settings.api_max_upload_bytes
    uploads = settings.home / "uploads"

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    # --- chat ------------------------------------------------------------------------------
    @app.post("/v1/chat", dependencies=guarded, summary="One agent turn, streamed as Server-Sent Events")
    async def chat(session_id: str = Form(...), text: str = Form(""), user_id: str | None = Form(None),
                   image: UploadFile | None = File(None), audio: UploadFile | None = File(None)):
        _check_session(session_id)
        folder = uploads / _safe_name(session_id)
        image_path = await save_upload(image, "image", "image", folder, limit)
        audio_path = await save_upload(audio, "audio", "audio", folder, limit)
        if not text.strip() and image_path is None and audio_path is None:
            raise HTTPException(400, "a chat message needs text, an image or an audio file")
        return EventSourceResponse(_turn_events(prism, session_id, request=text, image=image_path, audio=audio_path,
                                                user_id=user_id or None))

    @app.get("/v1/sessions/{session_id}", dependencies=guarded, summary="A session: preferences, turns, traces")
    async def get_session(session_id: str):
        _check_session(session_id)
        found = await asyncio.to_thread(prism.sessions.load, session_id)
        if found is None:
            raise HTTPException(404, f"no session '{session_id}'")
        return found.model_dump()

    # --- recommendations and items -------------------------------------------------------------
    @app.post("/v1/recommend", dependencies=guarded, summary="Explained recommendations for a user")
    async def recommend(user_id: str = Form(...), text: str | None = Form(None), k: int = Form(10),
                        image: UploadFile | None = File(None), audio: UploadFile | None = File(None)):
        if not 1 <= k <= 100:
            raise HTTPException(400, f"k must be between 1 and 100, got {k}")
        folder = uploads / "recommend"
        image_path = await save_upload(image, "image", "image", folder, limit)
        audio_path = await save_upload(audio, "audio", "audio", folder, limit)
        from prism.fused import NoCheckpointError

        try:
            result = await asyncio.to_thread(service.recommend, user_id, text or None, image_path, audio_path, k)
        except NoCheckpointError as exc:
            raise HTTPException(409, str(exc)) from None
        return _explained(result)

    @app.post("/v1/items", dependencies=guarded, summary="Ingest one item with its files")
    async def add_item(item: str = Form(..., description="The catalog record as JSON (no media paths)."),
                       images: list[UploadFile] = File(default=[]), audio: list[UploadFile] = File(default=[])):
        try:
            record = json.loads(item)
        except ValueError as exc:
            raise HTTPException(400, f"'item' is not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise HTTPException(400, "'item' must be a JSON object")
        if given := sorted({"image", "images", "audio"} & set(record)):
            raise HTTPException(400, f"'item' must not name media paths ({', '.join(given)}): upload the files")
        folder = settings.home / "media" / _safe_name(str(record.get("item_id", "")))
        record["images"] = [str(await save_upload(f, f"images[{n}]", "image", folder, limit))
                            for n, f in enumerate(images)]
        record["audio"] = [str(await save_upload(f, f"audio[{n}]", "audio", folder, limit))
                           for n, f in enumerate(audio)]
        summary = await asyncio.to_thread(service.ingest_item, record, folder)
        if summary.failed:
            raise HTTPException(422, f"item rejected: {summary.failed[0].reason}")
        status = "ingested" if summary.ingested else "updated" if summary.updated else "unchanged"
        item_id = str(record["item_id"]).strip()
        return {"item_id": item_id, "status": status, "item": _public_item(item_id, service.get_item(item_id))}

    @app.get("/v1/items/{item_id}", dependencies=guarded, summary="An item with captions, transcripts, provenance")
    async def get_item(item_id: str):
        record = await asyncio.to_thread(service.get_item, item_id)
        if record is None:
            raise HTTPException(404, f"no item '{item_id}'")
        return _public_item(item_id, record)

    @app.get("/v1/items/{item_id}/{kind}/{index}", dependencies=guarded, summary="An item's image or audio file")
    async def item_media(item_id: str, kind: str, index: int):
        if kind not in ("image", "audio"):
            raise HTTPException(404, "media kind must be image or audio")
        record = await asyncio.to_thread(service.get_item, item_id)
        field = f"{'caption' if kind == 'image' else 'transcript'}:{index}"
        entry = next((d for d in (record or {}).get("derived", []) if d.get("field") == field), None)
        path = Path(entry["path"]) if entry and entry.get("path") else None
        if path is None or not path.is_file():
            raise HTTPException(404, f"item '{item_id}' has no {kind} {index} on this server")
        return FileResponse(path)

    # --- OpenAI-compatible facade, health, web page ---------------------------------------------
    app.include_router(openai_facade.router(prism, uploads, limit), dependencies=guarded)

    @app.get("/healthz", summary="Models loaded and Chroma reachable")
    async def healthz():
        return await asyncio.to_thread(_health, prism)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(WEB / "index.html")

    app.mount("/web", StaticFiles(directory=WEB), name="web")
    return app


# --- helpers ------------------------------------------------------------------------------------
def _check_session(session_id: str) -> None:
    try:
        check_session_id(session_id)
    except InputError as exc:
        raise HTTPException(400, str(exc)) from None


def _safe_name(value: str) -> str:
    """A folder name derived from ``value`` that cannot traverse: a hash."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _public_item(item_id: str, record: dict | None) -> dict | None:
    """An item record without server file paths; media as URLs."""
    if record is None:
        return None
    derived = []
    for entry in record.get("derived", []):
        entry = {k: v for k, v in entry.items() if k != "path"}
        kind = "image" if entry.get("kind") == "caption" else "audio"
        entry["url"] = f"/v1/items/{item_id}/{kind}/{entry.get('field', ':0').split(':')[-1]}"
        derived.append(entry)
    return {"item_id": item_id, "document": record["document"], "metadata": record["metadata"], "derived": derived}


def _explained(result) -> dict:
    """A RecommendResult with one readable reason per item (from the model's explanation)."""
    out = result.model_dump()
    for item, raw in zip(result.items, out["items"]):
        parts = []
        if item.because:
            parts.append("because you liked " + ", ".join(h.title for h in item.because[:2]))
        if item.evidence:
            best = item.evidence[0]
            parts.append(f"matches your {best.channel} query ({best.field.split(':')[0]}): {best.text[:120]}")
        raw["reason"] = "; ".join(parts) or "ranked by your history"
    return out


async def _turn_events(prism: Prism, session_id: str, **kwargs) -> AsyncIterator[dict]:
    """Run a turn in a worker thread and relay its events as SSE messages."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    def work() -> None:
        try:
            prism.run_turn(session_id, on_event=lambda e: loop.call_soon_threadsafe(queue.put_nowait, e), **kwargs)
        except PrismError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, {"type": "error", "detail": str(exc)})
        except Exception as exc:  # a bug must end the stream with a message, not hang the client
            logger.exception("turn of session %s failed", session_id)
            loop.call_soon_threadsafe(queue.put_nowait, {"type": "error", "detail": f"internal error: "
                                                                                   f"{type(exc).__name__}"})
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    loop.run_in_executor(None, work)
    while (event := await queue.get()) is not done:
        payload = event["result"] if event["type"] == "answer" else {k: v for k, v in event.items() if k != "type"}
        yield {"event": event["type"], "data": json.dumps(payload, ensure_ascii=False)}


def _warm(prism: Prism) -> None:
    """Load the models a request needs (the chat model, the text encoders)."""
    from prism import spaces

    prism.agent  # noqa: B018  (starts the embedded LLM)
    for space in spaces.text_spaces(prism.service.settings):
        space.encoder().encode(["warm up"], "query")


def _health(prism: Prism) -> dict:
    from prism.loaded import loaded_names

    chroma: dict = {"reachable": True}
    try:
        chroma["items"] = prism.service.store.count_items()
    except Exception as exc:  # whatever the client raises, health reports it
        chroma = {"reachable": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    # chat_model None: not loaded yet (a server started with api_warm=false loads it on first chat).
    models = {"chat_model": prism._agent.llm.name if prism._agent else None, "loaded": loaded_names()}
    ok = chroma["reachable"]
    return JSONResponse({"status": "ok" if ok else "unavailable", "chroma": chroma, "models": models},
                        status_code=200 if ok else 503)
