"""Load test of the HTTP API: N concurrent chat sessions on loopback; prints one JSON object.

Each session sends ``--turns`` chat turns (``POST /v1/chat``, Server-Sent Events read to the
end) and, when ``--user`` is given, one ``POST /v1/recommend``. Reported per endpoint:
p50/p95/max latency, time to the first streamed event and token (chat), requests, errors
(HTTP status >= 400, ``error`` events, timeouts, refused connections) with their messages.

Bounded and local by design: the target must be a loopback address, sessions and turns are
capped, every request has a timeout. Without ``--url`` the script serves the app itself
(in this process, uvicorn on a free loopback port) over ``PRISM_HOME`` with the configured
chat model (the embedded LLM by default), after warming the models.

Usage: python bench/load_test.py [--url http://127.0.0.1:8000] [--sessions 20|1,5,20] [--turns 1]
                                 [--user ID] [--token T] [--timeout 900] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from contextlib import nullcontext
from urllib.parse import urlparse

import httpx
from bench_output import emit, latency_summary, machine

from prism.settings import Settings

REQUESTS = ["a calm film about space", "something funny with a cat", "a tense thriller", "a romantic comedy",
            "an animated film for kids", "a detective mystery", "a war drama", "a film about music",
            "推荐一部关于太空的电影", "a heist movie"]
MAX_SESSIONS, MAX_TURNS = 50, 5


def chat_turn(client: httpx.Client, url: str, session: str, text: str) -> dict:
    started = time.perf_counter()
    first_event = first_token = first_card = None
    error = None
    with client.stream("POST", f"{url}/v1/chat", data={"session_id": session, "text": text}) as response:
        if response.status_code >= 400:
            return {"latency": time.perf_counter() - started, "error": f"HTTP {response.status_code}: "
                                                                     f"{response.read()[:200]!r}"}
        name = None
        for line in response.iter_lines():
            now = time.perf_counter() - started
            if line.startswith("event:"):
                name = line[6:].strip()
                first_event = first_event if first_event is not None else now
                if name == "token" and first_token is None:
                    first_token = now
                if name in ("card", "answer") and first_card is None:  # without cards: the answer's
                    first_card = now
            elif line.startswith("data:") and name == "error":
                error = json.loads(line[5:])["detail"]
    return {"latency": time.perf_counter() - started, "first_event": first_event, "first_token": first_token,
            "first_card": first_card,
            "error": error}


def run(url: str, sessions: int, turns: int, user: str | None, token: str | None, timeout: float) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    results: dict[str, list[dict]] = {"chat": [], "recommend": []}
    lock = threading.Lock()
    run_id = time.strftime("%H%M%S")

    def session_worker(index: int) -> None:
        with httpx.Client(headers=headers, timeout=timeout) as client:
            for turn in range(turns):
                text = REQUESTS[(index + turn) % len(REQUESTS)]
                try:
                    row = chat_turn(client, url, f"load-{run_id}-{index}", text)
                except httpx.HTTPError as exc:
                    row = {"latency": timeout, "error": f"{type(exc).__name__}: {exc}"[:200]}
                with lock:
                    results["chat"].append(row)
            if user:
                started = time.perf_counter()
                try:
                    response = client.post(f"{url}/v1/recommend", data={"user_id": user, "k": 5})
                    error = None if response.status_code < 400 else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:200]
                with lock:
                    results["recommend"].append({"latency": time.perf_counter() - started, "error": error})

    started = time.perf_counter()
    threads = [threading.Thread(target=session_worker, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    depths = watch_queue(url, threads)
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    out = {}
    for endpoint, rows in results.items():
        if not rows:
            continue
        errors = [r["error"] for r in rows if r.get("error")]
        out[endpoint] = {"requests": len(rows), "errors": len(errors), "error_examples": sorted(set(errors))[:5],
                         "latency_s": latency_summary([r["latency"] for r in rows if not r.get("error")])}
        if endpoint == "chat":
            out[endpoint]["first_event_s"] = latency_summary([r["first_event"] for r in rows if r.get("first_event")])
            out[endpoint]["first_token_s"] = latency_summary([r["first_token"] for r in rows if r.get("first_token")])
            out[endpoint]["first_card_s"] = latency_summary([r["first_card"] for r in rows if r.get("first_card")])
    return {"wall_seconds": round(wall, 1), "throughput_turns_per_min": round(len(results["chat"]) / wall * 60, 2),
            "queue_max": {k: max((d.get(k) or 0 for d in depths), default=0) for k in ("turns", "llm_waiting")},
            **out}


def watch_queue(url: str, threads: list[threading.Thread], every: float = 1.0) -> list[dict]:
    """``/healthz``'s queue, read every ``every`` seconds while ``threads`` run."""
    depths = []
    while any(t.is_alive() for t in threads):
        try:
            depths.append(httpx.get(f"{url}/healthz", timeout=10).json().get("queue") or {})
        except httpx.HTTPError:
            pass
        time.sleep(every)
    return depths


def own_server():
    """The app over the process settings, served on a free loopback port in this process."""
    from prism.api.app import create_app
    from prism.api.background import serve_in_thread

    return serve_in_thread(create_app(host="127.0.0.1"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="A running Prism on loopback (default: serve one here).")
    parser.add_argument("--sessions", default="20", help="Concurrent sessions; a comma list (1,5,20) runs each "
                        "level in turn against the same server.")
    parser.add_argument("--turns", type=int, default=1)
    parser.add_argument("--user", default=None, help="Also POST /v1/recommend for this user, once per session.")
    parser.add_argument("--token", default=os.environ.get("PRISM_API_TOKEN"))
    parser.add_argument("--timeout", type=float, default=900.0, help="Seconds per request.")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    try:
        levels = [int(n) for n in args.sessions.split(",")]
    except ValueError:
        raise SystemExit(f"--sessions must be comma-separated integers, got '{args.sessions}'") from None
    if not all(1 <= n <= MAX_SESSIONS for n in levels) or not 1 <= args.turns <= MAX_TURNS:
        raise SystemExit(f"sessions must be 1..{MAX_SESSIONS} and turns 1..{MAX_TURNS}")
    if args.url and urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"{args.url} is not a loopback address: this load test only runs against this machine")
    started = time.perf_counter()
    with (nullcontext(args.url) if args.url else own_server()) as url:
        setup = time.perf_counter() - started
        health = httpx.get(f"{url}/healthz", timeout=30).json()
        results = [{"sessions": n, **run(url, n, args.turns, args.user, args.token, args.timeout)} for n in levels]
    report = {"benchmark": "load", "url": url, "turns_per_session": args.turns,
              "server_start_seconds": round(setup, 1), "chat_model": health.get("models", {}).get("chat_model"),
              "fast_answer": None if args.url else Settings().agent_fast_answer,  # of the server served here
              "items": health.get("chroma", {}).get("items"), "machine": machine(),
              **(results[0] if len(results) == 1 else {"levels": results})}
    emit(report, args.out)


if __name__ == "__main__":
    main()
