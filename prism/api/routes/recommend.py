"""``POST /v1/recommend``: the fusion model's ranking for a user, optionally steered by a text,
image or voice query; items with scores, a readable reason and evidence."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile

from prism.api.context import ApiContext, context
from prism.api.uploads import save_upload
from prism.errors import NoCheckpointError
from prism.recommend import RecommendResult

router = APIRouter()


@router.post("/v1/recommend", summary="Explained recommendations for a user")
async def recommend(user_id: str = Form(...), text: str | None = Form(None), k: int = Form(10),
                    image: UploadFile | None = File(None), audio: UploadFile | None = File(None),
                    prism: ApiContext = Depends(context)):
    if not 1 <= k <= 100:
        raise HTTPException(400, f"k must be between 1 and 100, got {k}")
    folder = prism.uploads / "recommend"
    image_path = await save_upload(image, "image", "image", folder, prism.upload_limit)
    audio_path = await save_upload(audio, "audio", "audio", folder, prism.upload_limit)
    try:
        result = await asyncio.to_thread(prism.service.recommend, user_id, text or None, image_path, audio_path, k)
    except NoCheckpointError as exc:
        raise HTTPException(409, str(exc)) from None
    return explained(result)


def explained(result: RecommendResult) -> dict:
    """A RecommendResult with one readable reason per item (from the model's explanation)."""
    out = result.model_dump()
    for item, raw in zip(result.items, out["items"]):
        parts = []
        if item.also_liked:
            parts.append("people who liked " + ", ".join(h.title for h in item.also_liked[:2]) + " also liked it")
        elif item.because:
            parts.append("because you liked " + ", ".join(h.title for h in item.because[:2]))
        if item.evidence:
            best = item.evidence[0]
            parts.append(f"matches your {best.channel} query ({best.field.split(':')[0]}): {best.text[:120]}")
        raw["reason"] = "; ".join(parts) or "ranked by your history"
    return out
