"""What every route shares, as one public module: the app's context, auth, session checks,
safe names, and relaying an agent turn as Server-Sent Events.

Routes reach the context through the ``context`` dependency (``request.app.state.prism``).
Turns of one session run one at a time (a lock per session, taken in the worker thread, so a
client that disconnects cannot make two turns overlap); different sessions run concurrently.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import HTTPException, Request

from prism.agent.backends import chat_model
from prism.agent.llm import ChatModel, InFlight
from prism.agent.orchestrator import Agent
from prism.agent.sessions import SessionStore, check_session_id
from prism.errors import InputError, PrismError
from prism.service import PrismService
from prism.settings import Settings

logger = logging.getLogger("prism.api")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# An absolute path (POSIX or Windows) inside a message: the server's files are nobody's business.
_SERVER_PATH = re.compile(r"(?<![\w:/.~-])(?:[A-Za-z]:\\|/)(?:[^\s'\"<>|:]+[/\\])+([^\s'\"<>|/\\]*)")


def public_message(text: str) -> str:
    """``text`` with every absolute path replaced by its last part (the file's own name), so an
    error names the input, never where the server keeps it."""
    return _SERVER_PATH.sub(lambda m: m.group(1) or "(server path)", text)


class ApiContext:
    """What the routes share: the service, the agent (built on first use), the session store,
    the per-session locks and where uploads go."""

    def __init__(self, service: PrismService, llm: ChatModel | None) -> None:
        self.service, self.settings = service, service.settings
        self.sessions = SessionStore(service.settings.sessions_path)
        self.uploads: Path = service.settings.home / "uploads"
        self.upload_limit: int = service.settings.api_max_upload_bytes
        self._llm = llm
        self._agent: Agent | None = None
        self._agent_lock = threading.Lock()
        self._session_locks: dict[str, threading.Lock] = {}
        self.turns = InFlight()  # chat turns accepted and not finished (waiting or running)
        # Not the event loop's default pool (cpu + 4 threads): a turn waits for the LLM most of its time.
        self.turn_pool = ThreadPoolExecutor(max_workers=self.settings.api_turn_workers, thread_name_prefix="prism-turn")
        self._locks_lock = threading.Lock()

    @property
    def agent(self) -> Agent:
        with self._agent_lock:
            if self._agent is None:
                self._agent = Agent(self.service, self._llm or chat_model(self.settings), self.sessions)
            return self._agent

    @property
    def chat_model_name(self) -> str | None:
        """The chat model's name, or None while no agent has been built (nothing loaded yet)."""
        return self._agent.llm.name if self._agent else None

    def session_lock(self, session_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._session_locks.setdefault(session_id, threading.Lock())

    def run_turn(self, session_id: str, **kwargs):
        with self.turns, self.session_lock(session_id):
            return self.agent.run_turn(session_id, **kwargs)


def context(request: Request) -> ApiContext:
    """The route dependency that hands a route the app's :class:`ApiContext`."""
    return request.app.state.prism


def auth_required(settings: Settings, host: str) -> bool:
    """Whether bearer-token auth guards the ``/v1`` routes: ``on``, or ``auto`` beyond loopback."""
    return settings.api_auth == "on" or (settings.api_auth == "auto" and host not in LOOPBACK)


def bearer_guard(settings: Settings, host: str, token: str | None) -> Callable[[Request], Awaitable[None]]:
    """The dependency that checks ``Authorization: Bearer <token>`` when auth is required."""

    async def require_token(request: Request) -> None:
        if not auth_required(settings, host):
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not token or not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return require_token


def check_session(session_id: str) -> None:
    """A usable session id, else 400 naming the problem."""
    try:
        check_session_id(session_id)
    except InputError as exc:
        raise HTTPException(400, public_message(str(exc))) from None


def safe_name(value: str) -> str:
    """A folder name derived from ``value`` that cannot traverse: a hash."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


async def turn_events(prism: ApiContext, session_id: str, **kwargs) -> AsyncIterator[dict]:
    """Run a turn in a worker thread and relay its events as SSE messages."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    def work() -> None:
        try:
            prism.run_turn(session_id, on_event=lambda e: loop.call_soon_threadsafe(queue.put_nowait, e), **kwargs)
        except PrismError as exc:
            loop.call_soon_threadsafe(queue.put_nowait, {"type": "error", "detail": public_message(str(exc))})
        except Exception as exc:  # a bug must end the stream with a message, not hang the client
            logger.exception("turn of session %s failed", session_id)
            loop.call_soon_threadsafe(queue.put_nowait, {"type": "error", "detail": f"internal error: "
                                                                                   f"{type(exc).__name__}"})
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    loop.run_in_executor(prism.turn_pool, work)
    while (event := await queue.get()) is not done:
        payload = event["result"] if event["type"] == "answer" else {k: v for k, v in event.items() if k != "type"}
        yield {"event": event["type"], "data": json.dumps(payload, ensure_ascii=False)}
