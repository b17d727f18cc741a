"""``GET /v1/sessions/{id}``: a chat session with its preferences, turns and traces."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException

from prism.api.context import ApiContext, check_session, context

router = APIRouter()


@router.get("/v1/sessions/{session_id}", summary="A session: preferences, turns, traces")
async def get_session(session_id: str, prism: ApiContext = Depends(context)):
    check_session(session_id)
    found = await asyncio.to_thread(prism.sessions.load, session_id)
    if found is None:
        raise HTTPException(404, f"no session '{session_id}'")
    session = found.model_dump()
    for turn in session["turns"]:  # which files were attached, not where the server keeps them
        turn["attachments"] = {kind: Path(path).name for kind, path in (turn.get("attachments") or {}).items()}
    return session
