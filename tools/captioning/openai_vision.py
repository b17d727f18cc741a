"""The OpenAI-compatible vision captioner: one chat.completions request per image.

Works with OpenAI itself or any local server speaking the same API (vLLM, llama.cpp,
Ollama, LM Studio). The instruction text is the prompt ``caption_image`` (``prompts/caption_image.txt``).
"""

from __future__ import annotations

import base64
import io
from importlib.metadata import version
from pathlib import Path

from PIL import Image

from prism.prompts import load_prompt
from prism.tools.captioning.base import Caption, CaptionError
from prism.tools.provenance import Provenance

# OpenAI scales larger images down to this anyway; sending more only costs upload time.
MAX_SIDE = 2048


def jpeg_data_url(image: Image.Image) -> str:
    """The image as a ``data:image/jpeg;base64,...`` URL, longest side capped at MAX_SIDE."""
    image = image.convert("RGB")
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class OpenAIVisionCaptioner:
    """Captions from a vision model behind an OpenAI-compatible endpoint.

    Connection failures, timeouts, HTTP errors and empty replies raise CaptionError naming
    ``base_url``; the api key never appears in a message. A missing prompt file raises
    CaptionError at construction.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        timeout: float = 60.0,
        prompt_path: Path | None = None,
    ) -> None:
        # deferred: the openai client loads only for this backend
        import openai

        try:
            self._prompt = (Path(prompt_path).read_text(encoding="utf-8") if prompt_path
                            else load_prompt("caption_image")).strip()
        except OSError as exc:
            raise CaptionError(f"caption prompt file {prompt_path or 'caption_image.txt'} is unreadable: {exc}") from exc
        self._base_url = base_url
        self._model = model
        self._api_key = api_key
        self._timeout = timeout
        # Local servers ignore the key but the client insists on one.
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=1)
        self._version = f"openai {version('openai')}"

    def _fail(self, problem: str) -> CaptionError:
        message = f"vision endpoint {self._base_url} (model {self._model}): {problem}"
        if self._api_key:
            message = message.replace(self._api_key, "***")
        return CaptionError(message)

    def caption(self, image: Image.Image) -> Caption:
        """Caption one image with the stripped reply; ``confidences`` stays empty (none reported)."""
        # deferred: the openai client loads only for this backend
        import openai

        content = [
            {"type": "text", "text": self._prompt},
            {"type": "image_url", "image_url": {"url": jpeg_data_url(image)}},
        ]
        # "from None": openai's own errors may quote the server's reply, which can echo the key.
        try:
            response = self._client.chat.completions.create(
                model=self._model, messages=[{"role": "user", "content": content}]
            )
        except openai.APITimeoutError:
            raise self._fail(f"no reply within {self._timeout:g} s") from None
        except openai.APIConnectionError as exc:
            raise self._fail(f"unreachable ({exc.__cause__ or exc})") from None
        except openai.APIStatusError as exc:
            detail = exc.message.removeprefix(f"Error code: {exc.status_code} - ")
            raise self._fail(f"HTTP {exc.status_code}: {detail}") from None
        except openai.OpenAIError as exc:
            raise self._fail(f"request failed: {exc}") from None
        try:
            text = (response.choices[0].message.content or "").strip()
        except (AttributeError, IndexError, TypeError):  # a non-conforming server's reply
            text = ""
        if not text:
            raise self._fail("the reply has no caption text")
        model = getattr(response, "model", None) or self._model
        return Caption(text=text, provenance=Provenance(backend=self.name, model=model, version=self._version))
