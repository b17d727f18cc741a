"""Chat sessions in SQLite: turns, stated preferences, the linked user and each turn's trace.

One file (``settings.sessions_path``), WAL mode, a short-lived connection per operation so
threads and processes can share it. A preference is keyed by (session, kind, value), so
stating it again changes nothing; a turn gets the next number of its session atomically.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal

from pydantic import BaseModel, Field

from prism.errors import InputError

PreferenceKind = Literal["like", "dislike", "avoid", "want"]
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, user_id TEXT, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL REFERENCES sessions(id), number INTEGER NOT NULL,
    request TEXT NOT NULL, attachments TEXT NOT NULL, answer TEXT, text TEXT, trace TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (session_id, number));
CREATE TABLE IF NOT EXISTS preferences (
    session_id TEXT NOT NULL REFERENCES sessions(id), kind TEXT NOT NULL, value TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (session_id, kind, value));
"""


class Preference(BaseModel):
    kind: PreferenceKind
    value: str


class Turn(BaseModel):
    number: int
    request: str
    attachments: dict[str, str] = Field(default_factory=dict)
    answer: dict | None = None
    text: str | None = None
    trace: dict = Field(default_factory=dict)
    created: float


class Session(BaseModel):
    id: str
    user_id: str | None
    created: float
    updated: float
    preferences: list[Preference]
    turns: list[Turn]


def check_session_id(session_id: str) -> str:
    if not SESSION_ID.match(session_id or ""):
        raise InputError(f"session id '{session_id}' must be 1-64 letters, digits, '.', '_' or '-'")
    return session_id


class SessionStore:
    """Sessions in the SQLite file at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            with db:  # one transaction
                yield db
        finally:
            db.close()

    def ensure(self, session_id: str, user_id: str | None = None) -> None:
        """Create the session if new; link ``user_id`` when given (a later link replaces it)."""
        check_session_id(session_id)
        now = time.time()
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO sessions (id, user_id, created, updated) VALUES (?, ?, ?, ?)",
                       (session_id, user_id, now, now))
            if user_id is not None:
                db.execute("UPDATE sessions SET user_id = ?, updated = ? WHERE id = ?", (user_id, now, session_id))

    def exists(self, session_id: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is not None

    def append_turn(self, session_id: str, turn: Turn) -> int:
        """Store ``turn`` as the session's next turn and return its number. The number is
        taken inside the insert (one statement, under SQLite's write lock), so two processes
        serving one session cannot both take the same number."""
        with self._connect() as db:
            db.execute("INSERT INTO turns (session_id, number, request, attachments, answer, text, trace, created) "
                       "SELECT ?, COALESCE(MAX(number), 0) + 1, ?, ?, ?, ?, ?, ? FROM turns WHERE session_id = ?",
                       (session_id, turn.request, json.dumps(turn.attachments),
                        None if turn.answer is None else json.dumps(turn.answer), turn.text,
                        json.dumps(turn.trace), turn.created, session_id))
            number = db.execute("SELECT MAX(number) FROM turns WHERE session_id = ?", (session_id,)).fetchone()[0]
            db.execute("UPDATE sessions SET updated = ? WHERE id = ?", (time.time(), session_id))
        return int(number)

    def add_preference(self, session_id: str, kind: PreferenceKind, value: str) -> bool:
        """Remember a preference; False when it was already known."""
        value = " ".join(value.split())
        if not value:
            raise InputError("a preference needs a value")
        with self._connect() as db:
            cursor = db.execute("INSERT OR IGNORE INTO preferences (session_id, kind, value, created) "
                                "VALUES (?, ?, ?, ?)", (session_id, kind, value, time.time()))
        return cursor.rowcount > 0

    def load(self, session_id: str) -> Session | None:
        """The whole session, or None when there is none with this id."""
        with self._connect() as db:
            row = db.execute("SELECT id, user_id, created, updated FROM sessions WHERE id = ?",
                             (session_id,)).fetchone()
            if row is None:
                return None
            prefs = db.execute("SELECT kind, value FROM preferences WHERE session_id = ? ORDER BY created",
                               (session_id,)).fetchall()
            turns = db.execute("SELECT number, request, attachments, answer, text, trace, created FROM turns "
                               "WHERE session_id = ? ORDER BY number", (session_id,)).fetchall()
        return Session(
            id=row[0], user_id=row[1], created=row[2], updated=row[3],
            preferences=[Preference(kind=k, value=v) for k, v in prefs],
            turns=[Turn(number=n, request=r, attachments=json.loads(a), answer=None if ans is None else json.loads(ans),
                        text=t, trace=json.loads(tr), created=c) for n, r, a, ans, t, tr, c in turns])
