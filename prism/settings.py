"""One typed settings object for all of Prism.

Values come, highest priority first, from: keyword arguments, ``PRISM_*`` environment
variables, a TOML config file (``PRISM_CONFIG``, else ``$PRISM_HOME/config.toml``), and
the defaults below. ``PRISM_HOME`` holds all state (store, model cache, sessions), so two
runs with different homes never touch each other.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def default_home() -> Path:
    """``$PRISM_HOME`` if set, else ``~/.prism``."""
    return Path(os.environ.get("PRISM_HOME") or Path.home() / ".prism").expanduser()


def config_file() -> Path:
    """The TOML file settings are read from: ``$PRISM_CONFIG`` or ``$PRISM_HOME/config.toml``."""
    explicit = os.environ.get("PRISM_CONFIG")
    return Path(explicit).expanduser() if explicit else default_home() / "config.toml"


class Settings(BaseSettings):
    """Every tunable of Prism, validated and typed."""

    model_config = SettingsConfigDict(env_prefix="PRISM_", extra="ignore", frozen=True)

    home: Path = Field(default_factory=default_home, description="Root of all Prism state.")
    model_cache_dir: Path | None = Field(
        None, description="Where assembled model files and checksum verdicts live; default: home/models."
    )

    # Vector store: embedded PersistentClient under home, or a Chroma server when host is set.
    chroma_host: str | None = None
    chroma_port: int = 8000
    chroma_ssl: bool = False
    collection_prefix: str = "prism"

    # Text embeddings.
    text_model: Literal["minilm"] = "minilm"
    multilingual_model: Literal["e5", "use", "none"] = "e5"
    multilingual_neutral: bool = Field(
        True, description="Project the English/Chinese offset out of the multilingual space "
        "(tools/language_neutral.py), so mixed-language catalogs rank by meaning, not language.")
    embed_batch_size: int = Field(64, ge=1)

    # Speech.
    whisper_backend: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    whisper_model_dir: Path | None = Field(
        None, description="A CTranslate2 Whisper model folder; default: the bundled base model."
    )
    whisper_pt: Path | None = Field(None, description="openai-whisper .pt weights file.")
    whisper_compute_type: str = "int8"
    whisper_chunk_seconds: float = Field(300.0, gt=5)

    # Images.
    caption_backend: Literal["offline", "blip", "openai"] = "offline"
    blip_model_dir: Path | None = None
    vision_base_url: str | None = None
    vision_model: str = "gpt-4o-mini"
    vision_api_key: SecretStr | None = None
    ocr_enabled: bool = True
    caption_top_labels: int = Field(3, ge=1)

    # Ingestion limits and batching.
    ingest_batch_size: int = Field(16, ge=1)
    max_image_bytes: int = 20 * 1024 * 1024
    max_audio_bytes: int = 100 * 1024 * 1024
    max_line_bytes: int = 1024 * 1024

    device: Literal["auto", "cpu", "cuda"] = "auto"

    # The fusion model in service (prism train / prism recommend).
    fusion_epochs: int = Field(30, ge=1, description="Default epoch budget of `prism train` "
                               "(early stopping may end sooner).")
    recommend_query_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="w in `prism recommend`'s query steering: (1 - w) * user score + w * "
        "query similarity, both min-max normalised over the candidates (prism/recommend.py).")

    # Offline evaluation: the MovieLens-100K-MM folder (ratings.tsv, items.jsonl, posters/).
    movielens_dir: Path = Path("../shared/data/movielens-100k-mm")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file()),
        )

    @property
    def chroma_path(self) -> Path:
        return self.home / "chroma"

    @property
    def model_cache(self) -> Path:
        return self.model_cache_dir or self.home / "models"

    def model_key(self, *names: str) -> tuple:
        """The values of the named fields plus the model cache: a cache key for a loaded model
        that, unlike the whole settings object, does not change with ``home``."""
        return (self.model_cache, *(getattr(self, name) for name in names))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
