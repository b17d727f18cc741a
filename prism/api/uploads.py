"""Uploaded files: size and type checked by content (never by name), saved under names the
server chooses, so a client cannot pick a path.

Images must decode as JPEG, PNG, WebP, GIF or BMP (Pillow verifies them). Audio must start
with the signature of WAV, MP3, Ogg, FLAC, WebM/Matroska or MP4/M4A. Anything else, an
empty file or one over ``settings.api_max_upload_bytes`` is a :class:`UploadError` naming
the field and the problem (the API answers 413 for size, 415 for type). Files are named by
their content's sha256.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

from fastapi import UploadFile
from PIL import Image, UnidentifiedImageError

IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


class UploadError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def audio_kind(head: bytes) -> str | None:
    """The audio container ``head`` (the first bytes) starts with, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[4:8] == b"ftyp":
        return "m4a"
    return None


def check_image(data: bytes, field: str) -> str:
    """The file extension for an image ``data``; UploadError(415) if it is not one."""
    try:
        with warnings.catch_warnings():
            # Over Pillow's pixel limit is a warning up to twice the limit, then an error: both refuse.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format
                image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise UploadError(415, f"'{field}' is not a readable image ({type(exc).__name__})") from None
    if kind not in IMAGE_FORMATS:
        raise UploadError(415, f"'{field}' is a {kind} image; accepted: {', '.join(IMAGE_FORMATS)}")
    return IMAGE_FORMATS[kind]


def check_audio(data: bytes, field: str) -> str:
    kind = audio_kind(data[:16])
    if kind is None:
        raise UploadError(415, f"'{field}' is not audio in a known format (WAV, MP3, Ogg, FLAC, WebM, M4A)")
    return kind


def save_bytes(data: bytes, field: str, kind: str, folder: Path, limit: int) -> Path:
    """Check ``data`` (``kind`` "image" or "audio": size, then type by content) and store it in
    ``folder`` under a name made of its sha256, so the same file sent twice is stored once
    (and re-ingesting an item with the same files finds nothing changed)."""
    if len(data) > limit:
        raise UploadError(413, f"'{field}' is larger than the {limit} bytes allowed")
    if not data:
        raise UploadError(400, f"'{field}' is empty")
    extension = check_image(data, field) if kind == "image" else check_audio(data, field)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()[:24]}.{extension}"
    if not path.exists():
        path.write_bytes(data)
    return path


async def save_upload(upload: UploadFile | None, field: str, kind: str, folder: Path, limit: int) -> Path | None:
    """:func:`save_bytes` for an uploaded file (read at most ``limit`` + 1 bytes); None when
    nothing was uploaded."""
    if upload is None or (not upload.filename and not upload.size):
        return None
    return save_bytes(await upload.read(limit + 1), field, kind, folder, limit)
