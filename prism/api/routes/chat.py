"""``POST /v1/chat``: one agent turn; a Server-Sent Events stream of ``tool`` and ``token``
events, then ``answer`` (the structured, grounded result) or ``error``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from sse_starlette.sse import EventSourceResponse

from prism.api.context import ApiContext, check_session, context, safe_name, turn_events
from prism.api.uploads import save_upload

router = APIRouter()


@router.post("/v1/chat", summary="One agent turn, streamed as Server-Sent Events")
async def chat(session_id: str = Form(...), text: str = Form(""), user_id: str | None = Form(None),
               image: UploadFile | None = File(None), audio: UploadFile | None = File(None),
               prism: ApiContext = Depends(context)):
    check_session(session_id)
    folder = prism.uploads / safe_name(session_id)
    image_path = await save_upload(image, "image", "image", folder, prism.upload_limit)
    audio_path = await save_upload(audio, "audio", "audio", folder, prism.upload_limit)
    if not text.strip() and image_path is None and audio_path is None:
        raise HTTPException(400, "a chat message needs text, an image or an audio file")
    return EventSourceResponse(turn_events(prism, session_id, request=text, image=image_path, audio=audio_path,
                                           user_id=user_id or None))
