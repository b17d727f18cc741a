"""Bounded soak of the HTTP API on loopback, with and without bad requests; prints one JSON object.

The app is served in this process (uvicorn on a free loopback port) over a copy of a store
(``--home``: its Chroma folder and fusion checkpoints go to a temporary home, so the soak's
uploads never reach it) with the deterministic chat model of ``prism.agent.policy_chat``: the
soak measures the server (its locks, queues and limits), not the LLM.

Two phases in one run, over the same server:

* ``clean``: ``--sessions`` threads, each sending ``--requests`` well-formed requests in turn:
  a chat turn (its Server-Sent Events read to the end), a search, a recommendation, an item
  upload with a poster, and so on.
* ``mixed``: the same well-formed requests, with ``--bad`` bad ones per session among them
  (oversized texts and records, malformed JSON, fake and bomb images, text that is not UTF-8,
  an unknown user, an invalid filter, k=0).

Reported: p50/p95/max of the well-formed requests per phase and endpoint, and the mixed/clean
p95 ratio (the target: at most 2); 5xx responses and transport errors (target 0); the status of
each kind of bad request; cross-talk (target 0): a chat answer that is not about its own
request, a session holding another session's turn, a search or recommendation that differs from
the same request sent alone before the soak, an uploaded item read back with another's title;
and the seconds a shutdown takes with requests still in flight (target at most 10).

Usage: python bench/soak.py --home DIR [--sessions 20] [--requests 6] [--bad 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
from bench_output import emit, latency_summary, machine

QUERIES = ["a calm film about space", "something funny with a cat", "a tense thriller", "a romantic comedy",
           "an animated film for kids", "a detective mystery", "a war drama", "a film about music",
           "推荐一部关于太空的电影", "a heist movie", "a western with a lone rider", "a ghost story"]
ENDPOINTS = ["chat", "search", "recommend", "upload"]
MAX_SESSIONS, MAX_REQUESTS, MAX_BAD = 50, 20, 10


def percentiles(values: list[float]) -> dict:
    return latency_summary(values, digits=3)


def bomb_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")
    return buffer.getvalue()


def bad_requests(poster: bytes) -> list[tuple[str, int, str, dict]]:
    """(name, the status it must get, path, httpx keyword arguments) of each kind of bad request:
    oversized but well-formed texts are cut to what the models read and answered (200)."""
    bomb = bomb_png()
    not_utf8 = (b"--soak\r\nContent-Disposition: form-data; name=\"session_id\"\r\n\r\nsoak-bad\r\n"
                b"--soak\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\ncats \xff\xfe\r\n--soak--\r\n")
    return [
        ("chat_text_200kb", 200, "/v1/chat", {"data": {"session_id": "soak-bad-long", "text": "a calm film " * 17_000}}),
        ("item_record_1_5mb", 400, "/v1/items", {"data": {"item": json.dumps({"item_id": "soak-huge", "title": "Huge",
                                                                          "description": "x" * 1_500_000})}}),
        ("item_malformed_json", 400, "/v1/items", {"data": {"item": "{not json"}}),
        ("chat_fake_image", 415, "/v1/chat", {"data": {"session_id": "soak-bad-img", "text": "like this"},
                                         "files": {"image": ("p.jpg", b"not an image", "image/jpeg")}}),
        ("recommend_unknown_user", 400, "/v1/recommend", {"data": {"user_id": "no-such-user-999999", "k": 5}}),
        ("search_invalid_filter", 400, "/v1/search", {"data": {"text": "space", "where": json.dumps({"$bogus": 1})}}),
        ("chat_not_utf8", 400, "/v1/chat", {"content": not_utf8,
                                       "headers": {"content-type": "multipart/form-data; boundary=soak"}}),
        ("item_bomb_image", 415, "/v1/items", {"data": {"item": json.dumps({"item_id": "soak-bomb", "title": "Bomb"})},
                                          "files": {"images": ("b.png", bomb, "image/png")}}),
        ("search_text_300kb", 200, "/v1/search", {"data": {"text": "ghost story " * 25_000, "k": 5}}),
        ("recommend_k0", 400, "/v1/recommend", {"data": {"user_id": "1", "k": 0}}),
        ("item_reserved_key", 422, "/v1/items", {"data": {"item": json.dumps({"item_id": "soak-r", "title": "R", "$and": 1})},
                                            "files": {"images": ("p.jpg", poster, "image/jpeg")}}),
    ]


class Soak:
    def __init__(self, url: str, users: list[str], poster: bytes, timeout: float) -> None:
        self.url, self.users, self.poster, self.timeout = url, users, poster, timeout
        self.expected: dict[tuple, list[str]] = {}
        self.rows: list[dict] = []
        self.problems: list[str] = []
        self.lock = threading.Lock()
        self.bad = bad_requests(poster)
        self.last: list[dict] = []  # the requests in flight at the shutdown

    # --- the well-formed requests -------------------------------------------------------
    def search(self, client: httpx.Client, query: str) -> list[str]:
        response = client.post(f"{self.url}/v1/search", data={"text": query, "k": 5})
        response.raise_for_status()
        return [hit["item_id"] for hit in response.json()["hits"]]

    def recommend(self, client: httpx.Client, user: str) -> list[str]:
        response = client.post(f"{self.url}/v1/recommend", data={"user_id": user, "k": 5})
        response.raise_for_status()
        return [item["item_id"] for item in response.json()["items"]]

    def chat(self, client: httpx.Client, session: str, text: str) -> None:
        answer = None
        with client.stream("POST", f"{self.url}/v1/chat", data={"session_id": session, "text": text}) as response:
            response.raise_for_status()
            name = None
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:") and name in ("answer", "error"):
                    answer = (name, json.loads(line[5:]))
        if answer is None or answer[0] != "answer":
            raise RuntimeError(f"chat ended without an answer: {answer}")
        result = answer[1]
        if result["session_id"] != session or result["request"] != text:
            self.cross_talk(f"session {session} got the answer of {result['session_id']}: {result['request'][:60]!r}")
        if not result["answer"]["picks"]:
            raise RuntimeError(f"session {session}: an answer without picks")
        turns = client.get(f"{self.url}/v1/sessions/{session}").json()["turns"]
        if any(not str(t.get("request", "")).endswith(f"#{session}") for t in turns):
            self.cross_talk(f"session {session} holds another session's turn")

    def upload(self, client: httpx.Client, item_id: str, title: str) -> None:
        record = json.dumps({"item_id": item_id, "title": title, "description": f"{title}: a soak test upload."})
        response = client.post(f"{self.url}/v1/items", data={"item": record},
                               files={"images": ("p.jpg", self.poster, "image/jpeg")})
        response.raise_for_status()
        got = client.get(f"{self.url}/v1/items/{item_id}").json()
        if got["metadata"]["title"] != title:
            self.cross_talk(f"item {item_id} read back as {got['metadata']['title']!r}")

    def cross_talk(self, problem: str) -> None:
        with self.lock:
            self.problems.append(problem)

    def baseline(self) -> None:
        """Each search and recommendation sent alone: what the soak's answers must equal."""
        with httpx.Client(timeout=self.timeout) as client:
            for query in QUERIES:
                self.expected[("search", query)] = self.search(client, query)
            for user in self.users:
                self.expected[("recommend", user)] = self.recommend(client, user)

    def well_formed(self, client: httpx.Client, phase: str, session: int, n: int) -> tuple[str, callable]:
        endpoint = ENDPOINTS[(session + n) % len(ENDPOINTS)]
        if endpoint == "chat":
            sid = f"soak-{phase}-{session}"
            text = f"{QUERIES[(session + n) % len(QUERIES)]} #{sid}"
            return endpoint, lambda: self.chat(client, sid, text)
        if endpoint == "search":
            query = QUERIES[(session * 7 + n) % len(QUERIES)]

            def run_search():
                # Items uploaded meanwhile may rank among the hits; the others keep their order.
                got = [i for i in self.search(client, query) if not i.startswith("soak-")]
                if got != self.expected[("search", query)][:len(got)]:
                    self.cross_talk(f"search {query!r}: {got} alone {self.expected[('search', query)]}")
            return endpoint, run_search
        if endpoint == "recommend":
            user = self.users[(session + n) % len(self.users)]

            def run_recommend():
                if (got := self.recommend(client, user)) != self.expected[("recommend", user)]:
                    self.cross_talk(f"recommend {user}: {got} alone {self.expected[('recommend', user)]}")
            return endpoint, run_recommend
        item_id = f"soak-{phase}-{session}-{n}"
        return endpoint, lambda: self.upload(client, item_id, f"Soak item {session}.{n} ({phase})")

    def send_bad(self, client: httpx.Client, index: int) -> dict:
        name, expected, path, kwargs = self.bad[index % len(self.bad)]
        started = time.perf_counter()
        try:
            with client.stream("POST", f"{self.url}{path}", **kwargs) as response:
                body = response.read().decode("utf-8", "replace")
                status = response.status_code
            if status == 200 and "event: error" in body and "internal error" in body:
                status = 500  # a bug inside a streamed turn: the stream says so, the status cannot
        except httpx.HTTPError as exc:
            return {"phase": "mixed", "kind": "bad", "name": name, "error": f"{type(exc).__name__}: {exc}"[:200],
                    "seconds": time.perf_counter() - started}
        detail = body[:160] if status != 200 else ""
        return {"phase": "mixed", "kind": "bad", "name": name, "status": status, "expected": expected,
                "detail": detail, "seconds": time.perf_counter() - started}

    def session(self, phase: str, session: int, requests: int, bad: int) -> None:
        order = ["good"] * requests
        for b in range(bad):  # spread the bad requests through the session
            order.insert(1 + b * (requests // max(bad, 1)) + b, "bad")
        with httpx.Client(timeout=self.timeout) as client:
            n = b = 0
            for kind in order:
                if kind == "bad":
                    row = self.send_bad(client, session * bad + b)
                    b += 1
                else:
                    endpoint, call = self.well_formed(client, phase, session, n)
                    n += 1
                    started = time.perf_counter()
                    row = {"phase": phase, "kind": "good", "endpoint": endpoint}
                    try:
                        call()
                    except httpx.HTTPStatusError as exc:
                        row["status"] = exc.response.status_code
                        row["error"] = f"HTTP {exc.response.status_code}: {exc.response.text[:200]}"
                    except (httpx.HTTPError, RuntimeError, KeyError) as exc:
                        row["error"] = f"{type(exc).__name__}: {exc}"[:200]
                    row["seconds"] = time.perf_counter() - started
                with self.lock:
                    self.rows.append(row)

    def phase(self, phase: str, sessions: int, requests: int, bad: int) -> float:
        started = time.perf_counter()
        threads = [threading.Thread(target=self.session, args=(phase, s, requests, bad)) for s in range(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - started

    def in_flight(self) -> list[threading.Thread]:
        """Requests that are still running when the shutdown is asked for."""
        def fire(name, path, kwargs):
            started = time.perf_counter()
            try:
                with httpx.Client(timeout=60) as client:
                    outcome = str(client.post(f"{self.url}{path}", **kwargs).status_code)
            except httpx.HTTPError as exc:  # a connection closed by the stopping server is expected
                outcome = type(exc).__name__
            with self.lock:
                self.last.append({"request": name, "outcome": outcome, "seconds": round(time.perf_counter() - started, 2)})
        record = json.dumps({"item_id": "soak-last", "title": "Last", "description": "y " * 200_000})
        calls = [("chat", "/v1/chat", {"data": {"session_id": "soak-last", "text": "a film about trains"}}),
                 ("upload", "/v1/items", {"data": {"item": record},
                                          "files": {"images": ("p.jpg", self.poster, "image/jpeg")}}),
                 ("search", "/v1/search", {"data": {"text": "ghost " * 50_000}})]
        threads = [threading.Thread(target=fire, args=call, daemon=True) for call in calls]
        for t in threads:
            t.start()
        return threads


def report(soak: Soak, walls: dict[str, float]) -> dict:
    good = [r for r in soak.rows if r["kind"] == "good"]
    out: dict = {"phases": {}}
    for phase in ("clean", "mixed"):
        rows = [r for r in good if r["phase"] == phase]
        out["phases"][phase] = {"wall_seconds": round(walls[phase], 1), "requests": len(rows),
                                "errors": [r["error"] for r in rows if r.get("error")][:5],
                                "all": percentiles([r["seconds"] for r in rows if not r.get("error")]),
                                **{e: percentiles([r["seconds"] for r in rows if r["endpoint"] == e and not r.get("error")])
                                   for e in ENDPOINTS}}
    clean, mixed = out["phases"]["clean"], out["phases"]["mixed"]
    out["p95_ratio_mixed_over_clean"] = {key: round(mixed[key]["p95"] / clean[key]["p95"], 2)
                                         for key in ("all", *ENDPOINTS) if clean[key].get("p95") and mixed[key].get("p95")}
    bad = [r for r in soak.rows if r["kind"] == "bad"]
    kinds: dict[str, dict] = {}
    for row in bad:
        entry = kinds.setdefault(row["name"], {"sent": 0, "expected": row.get("expected"), "statuses": {},
                                               "errors": 0, "example": row.get("detail", "")})
        entry["sent"] += 1
        if "status" in row:
            entry["statuses"][str(row["status"])] = entry["statuses"].get(str(row["status"]), 0) + 1
        else:
            entry["errors"] += 1
    out["bad_requests"] = {"sent": len(bad), "unexpected_status": sum(r.get("status") != r.get("expected") for r in bad),
                           "by_kind": kinds,
                           "seconds": percentiles([r["seconds"] for r in bad])}
    out["server_errors_5xx"] = sum(1 for r in soak.rows if r.get("status", 0) >= 500)
    out["transport_errors"] = sum(1 for r in soak.rows if r.get("error") and "status" not in r)
    out["well_formed_failures"] = sum(1 for r in good if r.get("error"))
    out["cross_talk"] = {"count": len(soak.problems), "examples": soak.problems[:5]}
    return out


def copy_store(source: Path, target: Path) -> None:
    shutil.copytree(source / "chroma", target / "chroma")
    if (source / "models" / "fusion").is_dir():
        shutil.copytree(source / "models" / "fusion", target / "models" / "fusion")


def soak_users(ratings: Path, n: int = 5) -> list[str]:
    counts: dict[str, int] = {}
    for line in ratings.read_text().splitlines():
        user = line.split("\t")[0]
        counts[user] = counts.get(user, 0) + 1
    return sorted(counts, key=lambda u: (-counts[u], u))[:n]  # the users with the longest histories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="A Prism home with a store and a fusion checkpoint.")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--requests", type=int, default=6, help="Well-formed requests per session and phase.")
    parser.add_argument("--bad", type=int, default=3, help="Bad requests per session in the mixed phase.")
    parser.add_argument("--timeout", type=float, default=300.0, help="Seconds per request.")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not (1 <= args.sessions <= MAX_SESSIONS and 1 <= args.requests <= MAX_REQUESTS and 0 <= args.bad <= MAX_BAD):
        raise SystemExit(f"sessions 1..{MAX_SESSIONS}, requests 1..{MAX_REQUESTS}, bad 0..{MAX_BAD}")

    from prism.agent.policy_chat import PolicyChat
    from prism.api.app import create_app
    from prism.api.background import serve_in_thread
    from prism.demo import DEMO_CATALOG
    from prism.service import PrismService
    from prism.settings import Settings

    source = Settings()
    with tempfile.TemporaryDirectory(prefix="prism-soak-") as tmp:
        home = Path(tmp) / "home"
        copy_store(args.home, home)
        settings = Settings(home=home, model_cache_dir=source.model_cache)
        service = PrismService(settings)
        pointer = home / "models" / "fusion" / "current.json"
        trained_on = json.loads(pointer.read_text()).get("ratings") if pointer.is_file() else None
        users = soak_users(Path(trained_on or settings.movielens_dir / "ratings.tsv"))
        poster = (DEMO_CATALOG / "images" / "whiskers.jpg").read_bytes()
        stats: dict = {}
        started = time.perf_counter()
        with serve_in_thread(create_app(service, llm=PolicyChat(), host="127.0.0.1"), stats=stats,
                             grace=settings.api_shutdown_seconds) as url:
            setup = time.perf_counter() - started
            soak = Soak(url, users, poster, args.timeout)
            soak.baseline()
            walls = {"clean": soak.phase("clean", args.sessions, args.requests, 0),
                     "mixed": soak.phase("mixed", args.sessions, args.requests, args.bad)}
            pending = soak.in_flight()
            time.sleep(1.0)
        for t in pending:
            t.join(timeout=30)
        items = service.store.count_items()
    result = {"benchmark": "soak", "sessions": args.sessions, "well_formed_per_session": args.requests,
              "bad_per_session": args.bad, "items_in_store": items, "server_start_seconds": round(setup, 1),
              "chat_model": "policy (prism.agent.policy_chat)",
              "machine": machine(),
              **report(soak, walls),
              "shutdown": {"seconds": stats.get("shutdown_seconds"), "stopped": stats.get("stopped"),
                           "in_flight": soak.last}}
    emit(result, args.out)


if __name__ == "__main__":
    main()
