"""``POST /v1/search``: the nearest items to a text, image and/or voice query, with the
evidence that matched (what ``prism search`` prints)."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile

from prism.api.context import ApiContext, context
from prism.api.uploads import save_upload

router = APIRouter()


@router.post("/v1/search", summary="Search the catalog by text, image or voice")
async def search(text: str | None = Form(None), k: int = Form(10),
                 where: str | None = Form(None, description='A metadata filter as JSON, e.g. {"year": {"$lt": 1980}}.'),
                 image: UploadFile | None = File(None), audio: UploadFile | None = File(None),
                 prism: ApiContext = Depends(context)):
    if not 1 <= k <= 100:
        raise HTTPException(400, f"k must be between 1 and 100, got {k}")
    try:
        filters = json.loads(where) if where else None
    except ValueError as exc:
        raise HTTPException(400, f"'where' is not valid JSON: {exc}") from None
    folder = prism.uploads / "search"
    image_path = await save_upload(image, "image", "image", folder, prism.upload_limit)
    audio_path = await save_upload(audio, "audio", "audio", folder, prism.upload_limit)
    if not (text or "").strip() and image_path is None and audio_path is None:
        raise HTTPException(400, "a search needs text, an image or an audio file")
    result = await asyncio.to_thread(prism.service.search, text or None, image_path, audio_path, k, filters)
    return result.model_dump()
