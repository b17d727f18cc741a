
import pytest
from pydantic import ValidationError

from prism.settings import Settings


def test_env_prefix_overrides_defaults(monkeypatch):
    monkeypatch.setenv("PRISM_CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("PRISM_INGEST_BATCH_SIZE", "7")
    settings = Settings()
    assert settings.chroma_host == "127.0.0.1"
    assert settings.ingest_batch_size == 7


def test_home_holds_all_state(isolated_home):
    settings = Settings()
    assert settings.home == isolated_home
    assert settings.chroma_path.is_relative_to(isolated_home)


def test_config_file_is_read_and_env_wins(isolated_home, monkeypatch):
    isolated_home.mkdir(parents=True)
    (isolated_home / "config.toml").write_text('caption_top_labels = 5\nembed_batch_size = 8\n')
    monkeypatch.setenv("PRISM_EMBED_BATCH_SIZE", "16")
    settings = Settings()
    assert settings.caption_top_labels == 5
    assert settings.embed_batch_size == 16


def test_explicit_config_path(tmp_path, monkeypatch):
    config = tmp_path / "elsewhere.toml"
    config.write_text('whisper_chunk_seconds = 42.0\n')
    monkeypatch.setenv("PRISM_CONFIG", str(config))
    assert Settings().whisper_chunk_seconds == 42.0


def test_invalid_value_is_rejected_with_field_name(monkeypatch):
    monkeypatch.setenv("PRISM_CAPTION_BACKEND", "magic")
    with pytest.raises(ValidationError, match="caption_backend"):
        Settings()


def test_model_key_ignores_home_but_not_model_fields(tmp_path):
    a = Settings(home=tmp_path / "a", model_cache_dir=tmp_path / "m")
    b = Settings(home=tmp_path / "b", model_cache_dir=tmp_path / "m")
    c = Settings(home=tmp_path / "b", model_cache_dir=tmp_path / "m", whisper_compute_type="float32")
    assert a.model_key("whisper_compute_type") == b.model_key("whisper_compute_type")
    assert a.model_key("whisper_compute_type") != c.model_key("whisper_compute_type")
