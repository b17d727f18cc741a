"""One real turn on the embedded LLM (the GGUF assembled from its wheels, served in-process by
xllamacpp), with the real tools over a real Chroma store of the demo catalog."""

from __future__ import annotations

import pytest

from prism.agent.backends import chat_model
from prism.agent.evidence import validate
from prism.agent.orchestrator import Agent
from prism.agent.sessions import SessionStore
from prism.service import PrismService
from prism.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_service(tmp_path_factory, demo_catalog, model_cache) -> PrismService:
    home = tmp_path_factory.mktemp("llm-home")
    service = PrismService(Settings(home=home, model_cache_dir=model_cache, multilingual_model="none"))
    assert service.ingest(demo_catalog).ingested == 10
    return service


def test_a_real_embedded_llm_turn_calls_a_tool_and_answers_with_grounded_picks(demo_service, tmp_path):
    # The model's own steps and picks (the fast answer, on by default, has code pick).
    service = PrismService(demo_service.settings.model_copy(update={"agent_fast_answer": False}))
    llm = chat_model(service.settings)
    assert llm.name == "embedded qwen2.5-coder-1.5b-q4km" and not llm.native_tools
    agent = Agent(service, llm, SessionStore(tmp_path / "sessions.sqlite3"))
    tokens = []
    result = agent.run_turn("ci", "a calm film about space",
                            on_event=lambda e: tokens.append(e["text"]) if e["type"] == "token" else None)
    trace = result.trace
    assert trace.invalid_steps == 0 and not trace.fallback  # constrained decoding: every step parses
    # The user's words were searched as written before the model was asked; then it answered.
    assert trace.steps[0].kind == "tool" and trace.steps[0].prefetched
    assert trace.steps[0].arguments == {"query": "a calm film about space"}
    assert any(s.kind == "llm" for s in trace.steps)
    assert result.answer.picks, result.text
    assert not validate(result.answer, _ledger_of(result), demo_service.store)
    picked = {p.item_id for p in result.answer.picks}
    assert picked & {"quiet-orbit", "deep-field", "lost-in-the-stars", "launch-window"}, result.text
    assert "".join(tokens) == result.answer.message  # what streamed is the checked message
    assert trace.reasons == len(result.answer.picks)
    print(result.text, trace.model_dump_json(include={"violations", "below_top", "supported_reasons",
                                                      "message_replaced", "latency_seconds"}))
    # The system prompt is processed once: the next turn's first step reuses its KV cache.
    again = agent.run_turn("ci-2", "a funny film with a cat")
    first = next(s for s in again.trace.steps if s.kind == "llm")
    assert first.cached_tokens >= 300 and again.trace.prompt_tokens > again.trace.cached_tokens


def _ledger_of(result):
    """The turn's ledger rebuilt from what the answer cites (ids, items and texts)."""
    from prism.agent.evidence import EvidenceRef, Ledger

    ledger = Ledger()
    for pick in result.answer.picks:
        ledger.add_candidate(pick.item_id, pick.item_id)
    for key, ref in result.evidence.items():
        ledger.evidence[key] = EvidenceRef(key, ref["kind"], ref["text"], ref["item_id"])
    return ledger


def test_an_openai_compatible_endpoint_chosen_by_settings(demo_service, tmp_path):
    """The embedded model's llama.cpp server, used as any OpenAI-compatible endpoint would be
    (PRISM_LLM_BACKEND=openai + base URL + model), in native tool mode: no grammar, so the
    model's tool calls and answer are read by the tolerant parser."""
    from prism.agent.embedded import embedded_server

    endpoint = embedded_server(demo_service.settings).base_url
    settings = demo_service.settings.model_copy(update={"llm_backend": "openai", "llm_base_url": endpoint,
                                                        "llm_model": "qwen", "llm_tool_mode": "native",
                                                        "agent_fast_answer": False})  # the model's tool calls
    llm = chat_model(settings)
    assert llm.native_tools and llm.name == f"qwen @ {endpoint}"
    result = Agent(PrismService(settings), llm, SessionStore(tmp_path / "s.sqlite3")).run_turn(
        "native", "a calm film about space")
    assert result.trace.tool_calls >= 1 and not result.trace.fallback
    assert result.answer.picks and not validate(result.answer, _ledger_of(result), demo_service.store)


def test_a_real_fast_answer_streams_cards_then_one_short_message_step(demo_service, tmp_path):
    """settings.agent_fast_answer with n-gram speculative decoding and a small prompt batch
    (llm_batch) on the real model: the tools' picks stream as cards before the only LLM step,
    which writes the message alone."""
    settings = demo_service.settings.model_copy(update={"agent_fast_answer": True, "llm_speculative": "ngram",
                                                        "llm_batch": 64})
    events = []
    agent = Agent(PrismService(settings), chat_model(settings), SessionStore(tmp_path / "fast.sqlite3"))
    result = agent.run_turn("fast", "a calm film about space", on_event=events.append)
    trace = result.trace
    assert trace.fast_answer and [s.name for s in trace.steps if s.kind == "llm"] == ["message"]
    kinds = [e["type"] for e in events]
    assert "card" in kinds and kinds.index("card") < kinds.index("token")
    assert result.answer.picks[0].item_id in {"quiet-orbit", "deep-field", "lost-in-the-stars", "launch-window"}
    assert result.answer.message and trace.completion_tokens <= 60 and trace.supported_reasons == trace.reasons
    print(result.text, trace.model_dump_json(include={"latency_seconds", "message_replaced", "completion_tokens"}))
