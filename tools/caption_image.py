"""Tool ``caption_image``: describe an image with the configured captioning backend.

``settings.caption_backend`` picks ``offline`` (default, EfficientNet-Lite0 + RapidOCR +
colours), ``blip`` (transformers BLIP from ``settings.blip_model_dir``) or ``openai``
(a vision model behind an OpenAI-compatible endpoint at ``settings.vision_base_url``).
Every caption carries provenance: backend, model, version, confidences.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from prism.errors import InputError, ModelMissingError, PrismError
from prism.model_registry import once
from prism.settings import Settings, get_settings
from prism.tools.captioning.base import Caption, CaptionBackend, CaptionError
from prism.tools.captioning.blip import BlipCaptioner
from prism.tools.captioning.offline import OfflineCaptioner
from prism.tools.captioning.openai_vision import OpenAIVisionCaptioner

MAX_PIXELS = 64_000_000


class CaptionImageInput(BaseModel):
    path: Path


def load_image(path: Path, max_bytes: int | None = None) -> Image.Image:
    """Open an image file fully as RGB.

    Raises InputError naming the file when it is missing, too large (bytes or pixels),
    truncated or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image file {path} does not exist")
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise InputError(f"image file {path} is {size} bytes, over the limit of {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as handle:
                if handle.width * handle.height > MAX_PIXELS:
                    raise InputError(f"image file {path} is {handle.width}x{handle.height} pixels, over {MAX_PIXELS}")
                handle.load()  # forces a full decode so truncated files fail here
                return handle.convert("RGB")
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise InputError(f"image file {path} is not a readable image: {exc}") from exc


def get_backend(settings: Settings) -> CaptionBackend:
    """The process-wide captioner chosen by ``settings.caption_backend``."""
    key = settings.model_key("caption_backend", "blip_model_dir", "device", "vision_base_url", "vision_model",
                             "vision_api_key", "ocr_enabled", "caption_top_labels", "ocr_detect_side",
                             "ocr_angle_classifier", "model_threads")
    return once(("captioner", *key), lambda: _build_backend(settings))


def _build_backend(settings: Settings) -> CaptionBackend:
    if settings.caption_backend == "blip":
        if settings.blip_model_dir is None:
            raise ModelMissingError("caption_backend=blip needs PRISM_BLIP_MODEL_DIR (a local BLIP folder)")
        return BlipCaptioner(settings.blip_model_dir, device=settings.device)
    if settings.caption_backend == "openai":
        if not settings.vision_base_url:
            raise ModelMissingError("caption_backend=openai needs PRISM_VISION_BASE_URL")
        key = settings.vision_api_key.get_secret_value() if settings.vision_api_key else None
        return OpenAIVisionCaptioner(base_url=settings.vision_base_url, model=settings.vision_model, api_key=key)
    return OfflineCaptioner(settings)


CAPTION_CHUNK = 4  # images per captioner call: batched, yet a cancelled ingest stops within a few images


def caption_images(images: list[Image.Image], settings: Settings,
                   go_on: Callable[[], None] | None = None) -> list[Caption | PrismError]:
    """Captions for ``images``, in order, by the configured backend: in batches of
    ``CAPTION_CHUNK`` where the backend batches (``caption_many``), else one by one. A failing
    image gets its error in its place and never stops the others. ``go_on`` is called before
    each batch (it raises to stop)."""
    if not images:
        return []
    backend = get_backend(settings)
    results: list[Caption | PrismError] = []
    batched = getattr(backend, "caption_many", None)
    step = CAPTION_CHUNK if batched else 1
    for start in range(0, len(images), step):
        if go_on is not None:
            go_on()
        chunk = images[start:start + step]
        if batched:
            results.extend(batched(chunk))
            continue
        try:
            results.append(backend.caption(chunk[0]))
        except PrismError as exc:
            results.append(exc)
        except Exception as exc:  # one image's failure must never stop the others
            results.append(CaptionError(f"{backend.name} captioner failed on the image: {type(exc).__name__}: {exc}"))
    return results


def caption_image(request: CaptionImageInput, settings: Settings | None = None) -> Caption:
    """Caption the image at ``request.path``; InputError for unusable files."""
    settings = settings or get_settings()
    image = load_image(request.path, settings.max_image_bytes)
    return get_backend(settings).caption(image)
