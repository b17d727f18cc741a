"""The embedded LLM: a GGUF model assembled from wheels, served in-process by xllamacpp.

xllamacpp runs llama.cpp's OpenAI-compatible HTTP server inside this process, bound to a
free loopback port; the agent talks to it with the same client as to any endpoint. The
server starts once per process and settings (``prism.model_registry.once``) and lives as long as
the process. ``cache_prompt`` keeps the last prompt's KV cache in its slot, so the static
system prompt at the head of every request is processed once, not every turn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from prism.model_registry import once
from prism.settings import Settings
from prism.weights import gguf_file


@dataclass
class EmbeddedServer:
    base_url: str  # ".../v1"
    model_path: str
    server: object  # the xllamacpp.Server; dropping it stops the server


def embedded_server(settings: Settings) -> EmbeddedServer:
    """The running embedded server for ``settings`` (started on first use)."""
    key = ("llm", *settings.model_key("llm_embedded_model", "llm_context", "llm_threads", "llm_parallel", "llm_batch",
                                      "llm_speculative", "llm_draft_model"))
    return once(key, lambda: _start(settings))


def _start(settings: Settings) -> EmbeddedServer:
    # deferred: xllamacpp (llama.cpp) loads only when the embedded LLM starts
    import xllamacpp

    path = gguf_file(settings.llm_embedded_model, settings.model_cache)
    threads = settings.llm_threads or max(1, len(os.sched_getaffinity(0)))
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_ctx = settings.llm_context * settings.llm_parallel  # slots share the context
    params.n_parallel = settings.llm_parallel
    params.use_jinja = True
    params.cache_prompt = True
    params.n_ubatch = settings.llm_batch
    params.n_batch = max(params.n_batch, settings.llm_batch)
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    if settings.llm_speculative == "ngram":
        # Answers repeat ids, titles and words of the prompt: drafts looked up there are often right.
        params.speculative.types = [xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
    elif settings.llm_speculative == "draft":
        # The small model of the same family proposes tokens; the big one checks them in one batch.
        params.speculative.types = [xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
        params.speculative.draft.mparams.path = str(gguf_file(settings.llm_draft_model, settings.model_cache))
        params.speculative.draft.cpuparams.n_threads = threads
        params.speculative.draft.cpuparams_batch.n_threads = threads
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # any free port
    params.verbosity = 0
    server = xllamacpp.Server(params)
    return EmbeddedServer(base_url=server.listening_address.rstrip("/") + "/v1", model_path=str(path), server=server)
