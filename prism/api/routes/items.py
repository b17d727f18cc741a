"""``POST /v1/items`` (ingest one item with uploaded files: the ``prism ingest`` path),
``GET /v1/items/{id}`` and its media (``/image/{n}``, ``/audio/{n}``). No server path is ever
shown: media are URLs."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse

from prism.api.context import ApiContext, context, safe_name
from prism.api.uploads import save_upload

router = APIRouter()


@router.post("/v1/items", summary="Ingest one item with its files")
async def add_item(item: str = Form(..., description="The catalog record as JSON (no media paths)."),
                   images: list[UploadFile] = File(default=[]), audio: list[UploadFile] = File(default=[]),
                   prism: ApiContext = Depends(context)):
    size = len(item.encode("utf-8"))
    if size > prism.settings.max_line_bytes:  # the limit a catalog line has in `prism ingest`
        raise HTTPException(413, f"'item' is {size} bytes, over the limit of {prism.settings.max_line_bytes}")
    try:
        record = json.loads(item)
    except ValueError as exc:
        raise HTTPException(400, f"'item' is not valid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise HTTPException(400, "'item' must be a JSON object")
    if given := sorted({"image", "images", "audio"} & set(record)):
        raise HTTPException(400, f"'item' must not name media paths ({', '.join(given)}): upload the files")
    folder = prism.settings.home / "media" / safe_name(str(record.get("item_id", "")))
    limit = prism.upload_limit
    before = set(folder.iterdir()) if folder.is_dir() else set()
    try:
        record["images"] = [str(await save_upload(f, f"images[{n}]", "image", folder, limit))
                            for n, f in enumerate(images)]
        record["audio"] = [str(await save_upload(f, f"audio[{n}]", "audio", folder, limit))
                           for n, f in enumerate(audio)]
        cancel = threading.Event()
        try:
            summary = await asyncio.to_thread(prism.service.ingest_item, record, folder, cancel)
        except asyncio.CancelledError:
            cancel.set()  # a stopping server gave up on this request: the ingest stops at its next step
            raise HTTPException(503, "the server is stopping: the item was not stored; send it again") from None
        if summary.failed:
            raise HTTPException(422, f"item rejected: {summary.failed[0].reason}")
    except BaseException:  # a rejection, or the cancellation of a stopping server
        # A rejected item leaves no files behind (repeated bad uploads must not fill the disk);
        # files an earlier version of the item uses were there before and stay.
        for path in (set(folder.iterdir()) if folder.is_dir() else set()) - before:
            path.unlink(missing_ok=True)
        raise
    status = "ingested" if summary.ingested else "updated" if summary.updated else "unchanged"
    item_id = str(record["item_id"]).strip()
    return {"item_id": item_id, "status": status, "item": public_item(item_id, prism.service.get_item(item_id))}


@router.get("/v1/items/{item_id}", summary="An item with captions, transcripts, provenance")
async def get_item(item_id: str, prism: ApiContext = Depends(context)):
    record = await asyncio.to_thread(prism.service.get_item, item_id)
    if record is None:
        raise HTTPException(404, f"no item '{item_id}'")
    return public_item(item_id, record)


@router.get("/v1/items/{item_id}/{kind}/{index}", summary="An item's image or audio file")
async def item_media(item_id: str, kind: str, index: int, prism: ApiContext = Depends(context)):
    if kind not in ("image", "audio"):
        raise HTTPException(404, "media kind must be image or audio")
    record = await asyncio.to_thread(prism.service.get_item, item_id)
    field = f"{'caption' if kind == 'image' else 'transcript'}:{index}"
    entry = next((d for d in (record or {}).get("derived", []) if d.get("field") == field), None)
    path = Path(entry["path"]) if entry and entry.get("path") else None
    if path is None or not path.is_file():
        raise HTTPException(404, f"item '{item_id}' has no {kind} {index} on this server")
    return FileResponse(path)


def public_item(item_id: str, record: dict | None) -> dict | None:
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
