"""The chat model the settings ask for: the embedded GGUF model or an OpenAI-compatible endpoint."""

from __future__ import annotations

from prism.agent.llm import ChatModel, OpenAIChat
from prism.settings import Settings


def chat_model(settings: Settings) -> ChatModel:
    """``settings.llm_backend``: ``embedded`` starts (once) the in-process xllamacpp server;
    ``openai`` talks to ``llm_base_url`` (None = api.openai.com) with ``llm_model``.
    ``llm_tool_mode`` decides native tool calls vs JSON-schema steps (auto: JSON for embedded)."""
    if settings.llm_backend == "embedded":
        # deferred: the embedded backend loads xllamacpp and the GGUF model
        from prism.agent.embedded import embedded_server

        server = embedded_server(settings)
        native = settings.llm_tool_mode == "native"
        return OpenAIChat(server.base_url, settings.llm_embedded_model, None, native, settings.llm_temperature,
                          settings.llm_timeout, label=f"embedded {settings.llm_embedded_model}")
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    native = settings.llm_tool_mode != "json"
    return OpenAIChat(settings.llm_base_url, settings.llm_model, key, native, settings.llm_temperature,
                      settings.llm_timeout)
