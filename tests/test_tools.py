"""The tools with their real models: MiniLM, Whisper base (faster-whisper), the offline captioner."""

from __future__ import annotations

import numpy as np
import pytest

from prism.errors import InputError
from prism.tools.caption_image import CaptionImageInput, caption_image, caption_images, get_backend, load_image
from prism.tools.captioning.base import CaptionError
from prism.tools.embed_text import EmbedTextInput, embed_text
from prism.tools.speech_synthesis import speak
from prism.tools.transcribe_audio import SAMPLE_RATE, TranscribeAudioInput, split_at_silence, transcribe_audio


def test_embed_text_is_normalised_and_semantic(settings):
    out = embed_text(EmbedTextInput(texts=["a cat sleeping on a sofa", "a kitten napping on a couch",
                                           "stock market prices fell sharply"]), settings)
    vectors = np.array(out.vectors)
    assert out.dim == 384 and vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_embed_text_empty_batch(settings):
    assert embed_text(EmbedTextInput(texts=[]), settings).vectors == []


def test_transcribe_espeak_clip(settings, tmp_path):
    clip = speak("I would like a calm science fiction film about space travel.", tmp_path / "clip.wav")
    out = transcribe_audio(TranscribeAudioInput(path=clip), settings)
    words = out.text.lower()
    assert out.language == "en"
    assert "science fiction" in words and "space travel" in words
    assert out.segments and out.segments[0].start >= 0 and out.segments[-1].end <= out.duration + 0.5
    assert out.provenance.backend == "faster-whisper" and out.provenance.weights_sha256


def test_long_audio_is_chunked_with_global_timestamps(settings, tmp_path):
    text = ("The first part talks about a quiet orbit around the moon. "
            "After a pause the second part describes a storm over the harbour at midnight.")
    clip = speak(text, tmp_path / "long.wav")
    short_chunks = settings.model_copy(update={"whisper_chunk_seconds": 6.0})
    out = transcribe_audio(TranscribeAudioInput(path=clip), short_chunks)
    starts = [s.start for s in out.segments]
    assert starts == sorted(starts)
    assert out.segments[-1].end > 6.0, "later chunks keep times relative to the whole recording"
    assert "moon" in out.text.lower() and "harbour" in out.text.lower().replace("harbor", "harbour")


def test_split_at_silence_cuts_in_the_quiet_part():
    tone = np.sin(np.linspace(0, 2000, SAMPLE_RATE * 4)).astype(np.float32)
    audio = np.concatenate([tone, np.zeros(SAMPLE_RATE, np.float32), tone, tone])
    chunks = split_at_silence(audio, chunk_seconds=6.0, search_seconds=3.0)
    first_offset, first = chunks[0]
    assert first_offset == 0 and 4 * SAMPLE_RATE <= len(first) <= 5 * SAMPLE_RATE
    assert sum(len(c) for _, c in chunks) == len(audio)


@pytest.mark.parametrize("content, problem", [
    (b"this is not audio at all", "could not be decoded"),
    (b"", "could not be decoded|no audio"),
])
def test_non_audio_file_is_a_clear_error(settings, tmp_path, content, problem):
    path = tmp_path / "voice.wav"
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"{path}.*({problem})"):
        transcribe_audio(TranscribeAudioInput(path=path), settings)


def test_missing_and_oversized_audio(settings, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        transcribe_audio(TranscribeAudioInput(path=tmp_path / "nope.wav"), settings)
    clip = speak("hello", tmp_path / "hello.wav")
    with pytest.raises(InputError, match="over the limit"):
        transcribe_audio(TranscribeAudioInput(path=clip), settings.model_copy(update={"max_audio_bytes": 100}))


def test_offline_caption_reads_poster_title(settings, demo_catalog):
    caption = caption_image(CaptionImageInput(path=demo_catalog / "images" / "quiet-orbit.jpg"), settings)
    assert any(line.text.upper() == "QUIET ORBIT" and line.raw for line in caption.ocr), caption.ocr
    assert "QUIET ORBIT" in caption.text.upper()
    assert caption.labels and 0 < caption.labels[0].confidence <= 1
    assert caption.feature is not None and len(caption.feature) == 1280
    assert caption.colours
    assert caption.provenance.backend == "offline" and caption.provenance.weights_sha256


def test_offline_captioner_batch_equals_one_by_one(settings, demo_catalog):
    """Ingest captions a whole batch in one network pass; that must not change any caption."""
    paths = [demo_catalog / "images" / name for name in ("quiet-orbit.jpg", "whiskers.jpg", "morning-roast.jpg")]
    paths.append(demo_catalog / "query-cat.jpg")
    images = [load_image(path) for path in paths]
    captioner = get_backend(settings)
    batch = captioner.caption_many(images)
    for image, together in zip(images, batch):
        alone = captioner.caption(image)
        assert together.text == alone.text and together.ocr == alone.ocr
        assert np.allclose(together.feature, alone.feature, atol=1e-4)


def test_one_failing_image_fails_alone_in_a_batch(settings, demo_catalog, monkeypatch):
    captioner = get_backend(settings)
    images = [load_image(demo_catalog / "images" / name) for name in ("quiet-orbit.jpg", "whiskers.jpg")]
    read_text = captioner.read_text

    def fail_on_whiskers(image):
        if image.size == images[1].size and np.array_equal(np.asarray(image), np.asarray(images[1])):
            raise RuntimeError("the OCR engine broke")
        return read_text(image)

    monkeypatch.setattr(captioner, "read_text", fail_on_whiskers)
    first, second = caption_images(images, settings)
    assert "QUIET ORBIT" in first.text.upper()
    assert isinstance(second, CaptionError) and "the OCR engine broke" in str(second)


def test_offline_caption_labels_a_real_photo(settings, demo_catalog):
    caption = caption_image(CaptionImageInput(path=demo_catalog / "query-cat.jpg"), settings)
    names = " ".join(label.name for label in caption.labels).lower()
    assert "cat" in names, caption.labels


def test_corrupt_and_truncated_images_are_clear_errors(settings, tmp_path, demo_catalog):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(InputError, match=f"{bad}.*not a readable image"):
        caption_image(CaptionImageInput(path=bad), settings)
    poster = (demo_catalog / "images" / "whiskers.jpg").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(poster[: len(poster) // 2])
    with pytest.raises(InputError, match="truncated.jpg"):
        caption_image(CaptionImageInput(path=truncated), settings)


def test_openai_whisper_switch_names_what_it_needs(tmp_path):
    """The backend switch reaches the openai-whisper backend, which asks for its .pt weights
    (a real run needs `pip install openai-whisper` and weights; none ship offline)."""
    from prism.errors import ModelMissingError
    from prism.settings import Settings
    from prism.tools.transcribe_audio import get_backend

    missing = tmp_path / "base.pt"
    settings = Settings(home=tmp_path, whisper_backend="openai-whisper", whisper_pt=missing)
    with pytest.raises(ModelMissingError, match=f"PRISM_WHISPER_PT.*{missing}"):
        get_backend(settings)


@pytest.fixture(scope="module")
def tiny_whisper_pt(tmp_path_factory):
    """A randomly initialised, locally built openai-whisper checkpoint (tiny dims, real format)."""
    from dataclasses import asdict

    import torch
    import whisper.model as whisper_model

    torch.manual_seed(0)
    dims = whisper_model.ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2,
                                         n_audio_layer=1, n_vocab=51865, n_text_ctx=64, n_text_state=32,
                                         n_text_head=2, n_text_layer=1)
    path = tmp_path_factory.mktemp("whisper-pt") / "tiny-random.pt"
    model = whisper_model.Whisper(dims)
    with torch.no_grad():  # some whisper parameters start as torch.empty (arbitrary memory, even NaN)
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02)
    torch.save({"dims": asdict(dims), "model_state_dict": model.state_dict()}, path)
    return path


def test_openai_whisper_backend_runs_a_real_checkpoint(tiny_whisper_pt, tmp_path):
    """The openai-whisper path end to end on a tiny local checkpoint: load, language detection or
    forcing, segments and provenance (its words are noise: the weights are random)."""
    from whisper.tokenizer import LANGUAGES

    from prism.settings import Settings
    from prism.weights import sha256_file

    settings = Settings(home=tmp_path, whisper_backend="openai-whisper", whisper_pt=tiny_whisper_pt)
    clip = speak("a calm film about the sea", tmp_path / "sea.wav")
    forced = transcribe_audio(TranscribeAudioInput(path=clip, language="en"), settings)
    assert forced.language == "en" and forced.duration == pytest.approx(2.0, abs=1.5)
    assert forced.provenance.backend == "openai-whisper" and forced.provenance.model == "tiny-random"
    assert forced.provenance.weights_sha256 == sha256_file(tiny_whisper_pt)
    assert all(0 <= s.start <= s.end for s in forced.segments)
    detected = transcribe_audio(TranscribeAudioInput(path=clip), settings)
    assert detected.language in LANGUAGES and 0 <= detected.language_probability <= 1
