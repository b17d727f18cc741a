"""The HTTP API over a real uvicorn server on loopback, a real Chroma store, real models for
search, captions and speech, and a policy-scripted chat model (prism.agent.policy_chat)."""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
import pytest
from catalog_fuzz import store_problems
from conftest import serve_app

from prism.agent.policy_chat import PolicyChat
from prism.api.app import create_app
from prism.api.context import safe_name
from prism.errors import PrismError
from prism.service import PrismService
from prism.titles import display_title
from prism.tools.speech_synthesis import speak


@pytest.fixture(scope="module")
def api(api_home):
    """(base URL, the chat model) of a server over the shared API home."""
    llm = PolicyChat(delay=0.3)
    app = create_app(PrismService(api_home["settings"]), llm=llm)
    with serve_app(app) as url:
        yield url, llm


def sse(response: httpx.Response) -> list[tuple[str, dict]]:
    events, name, data = [], "message", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif not line and data:
            events.append((name, json.loads(data)))
            name, data = "message", ""
    return events


def chat(url: str, session: str, text: str = "", files: dict | None = None, **form) -> list[tuple[str, dict]]:
    with httpx.stream("POST", f"{url}/v1/chat", data={"session_id": session, "text": text, **form},
                      files=files, timeout=120) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse(response)


def test_health_reports_models_and_chroma(api, api_home):
    url, _ = api
    body = httpx.get(f"{url}/healthz").json()
    assert body["status"] == "ok" and body["chroma"] == {"reachable": True, "items": 35}
    assert body["models"]["chat_model"] == "policy" and "minilm" in body["models"]["loaded"]
    assert "/v1/chat" in httpx.get(f"{url}/openapi.json").json()["paths"]


def test_chat_streams_tool_events_tokens_and_a_grounded_answer(api):
    url, _ = api
    events = chat(url, "api-1", "a calm film about space")
    kinds = [name for name, _ in events]
    assert kinds[0] == "tool" and "token" in kinds and kinds[-1] == "answer"
    assert kinds.index("tool") < kinds.index("token")
    answer = events[-1][1]
    assert answer["answer"]["picks"][0]["item_id"] == "quiet-orbit" and answer["titles"]["quiet-orbit"] == "Quiet Orbit"
    cited = next(iter(answer["evidence"].values()))
    assert cited["item_id"] == "quiet-orbit" and cited["text"]
    # The fast answer (the default): the picks stream as cards before the model's message.
    assert kinds.index("card") < kinds.index("token")
    assert [p["item_id"] for n, p in events if n == "card"] == [p["item_id"] for p in answer["answer"]["picks"]]
    streamed = "".join(p["text"] for n, p in events if n == "token")
    assert streamed == "For 'a calm film about space', try Quiet Orbit."
    session = httpx.get(f"{url}/v1/sessions/api-1").json()
    assert session["turns"][0]["request"] == "a calm film about space"
    # The user's words are searched before the one LLM step (prefetched), which writes the message.
    steps = session["turns"][0]["trace"]["steps"]
    assert [(s["name"], s["prefetched"]) for s in steps] == [("search_catalog", True), ("message", False)]


def test_chat_with_an_uploaded_image_and_voice(api, demo_catalog, tmp_path):
    url, _ = api
    with open(demo_catalog / "query-cat.jpg", "rb") as image:
        events = chat(url, "api-2", "a film like this, about a cat",
                      files={"image": ("whatever.bin", image, "application/octet-stream")})
    started = [p["name"] for n, p in events if n == "tool" and p["status"] == "start"]
    assert started == ["search_by_image", "search_catalog"]  # the image by its vector, the words as written
    assert events[-1][1]["answer"]["picks"][0]["item_id"] == "whiskers"
    voice = speak("A mystery with a detective at the harbour.", tmp_path / "voice.wav")
    with open(voice, "rb") as audio:
        events = chat(url, "api-3", files={"audio": ("clip", audio, "audio/wav")})
    assert events[-1][1]["answer"]["picks"][0]["item_id"] == "midnight-harbour"


def test_bad_input_gets_clear_4xx_errors(api, tmp_path):
    url, _ = api
    fake = tmp_path / "poster.jpg"
    fake.write_text("not an image at all")
    with open(fake, "rb") as handle:
        response = httpx.post(f"{url}/v1/chat", data={"session_id": "api-4", "text": "x"},
                              files={"image": ("poster.jpg", handle, "image/jpeg")})
    assert response.status_code == 415 and "'image' is not a readable image" in response.json()["detail"]
    big = tmp_path / "big.wav"
    big.write_bytes(b"RIFF\0\0\0\0WAVE" + b"\0" * (10 * 1024 * 1024 + 10))
    with open(big, "rb") as handle:
        response = httpx.post(f"{url}/v1/chat", data={"session_id": "api-4", "text": "x"},
                              files={"audio": ("big.wav", handle, "audio/wav")})
    assert response.status_code == 413 and "larger than" in response.json()["detail"]
    response = httpx.post(f"{url}/v1/chat", data={"session_id": "../../etc", "text": "x"})
    assert response.status_code == 400 and "session id" in response.json()["detail"]
    assert httpx.post(f"{url}/v1/chat", data={"session_id": "api-4", "text": "  "}).status_code == 400
    assert httpx.post(f"{url}/v1/chat", data={"text": "x"}).status_code == 422  # no session id
    assert httpx.get(f"{url}/v1/sessions/never-was").status_code == 404
    assert httpx.get(f"{url}/v1/items/nope").status_code == 404
    item = json.dumps({"item_id": "evil", "title": "Evil", "image": "../../../etc/passwd"})
    response = httpx.post(f"{url}/v1/items", data={"item": item})
    assert response.status_code == 400 and "must not name media paths" in response.json()["detail"]
    assert httpx.post(f"{url}/v1/items", data={"item": "{not json"}).status_code == 400
    response = httpx.post(f"{url}/v1/items", data={"item": json.dumps({"item_id": "x"})})
    assert response.status_code == 422 and "title" in response.json()["detail"]


def test_sessions_name_their_attachments_but_not_where_the_server_keeps_them(api, demo_catalog):
    url, _ = api
    with open(demo_catalog / "query-cat.jpg", "rb") as handle:
        chat(url, "api-paths", "something like this", files={"image": ("cat.jpg", handle, "image/jpeg")})
    body = httpx.get(f"{url}/v1/sessions/api-paths").json()
    attachment = body["turns"][0]["attachments"]["image"]
    assert attachment.endswith(".jpg") and "/" not in attachment


def test_a_decompression_bomb_and_reserved_keys_are_4xx_not_500(api, tmp_path):
    from PIL import Image

    url, _ = api
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(bomb)  # a few KB on disk, 400 M pixels decoded
    assert bomb.stat().st_size < 1_000_000
    for route, field, data in (("/v1/chat", "image", {"session_id": "api-bomb", "text": "x"}),
                               ("/v1/items", "images", {"item": json.dumps({"item_id": "bomb", "title": "Bomb"})})):
        with open(bomb, "rb") as handle:
            response = httpx.post(f"{url}{route}", data=data, files={field: ("bomb.png", handle, "image/png")})
        assert response.status_code == 415, (route, response.text)
        assert "is not a readable image (DecompressionBomb" in response.json()["detail"]
    item = json.dumps({"item_id": "reserved", "title": "Reserved", "chroma:document": "x"})
    response = httpx.post(f"{url}/v1/items", data={"item": item})
    assert response.status_code == 422 and "reserved" in response.json()["detail"]


def multipart(fields: dict[str, bytes], boundary: str = "prism-test-boundary") -> tuple[bytes, dict]:
    """A multipart/form-data body of raw text ``fields`` (bytes as given, not re-encoded)."""
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode() + value + b"\r\n"
                    for name, value in fields.items()) + f"--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def test_form_fields_that_are_not_utf8_are_refused_naming_the_field(api):
    url, _ = api
    good = '{"item_id": "utf8-ok", "title": "Café Lumière", "description": "A quiet film about trains."}'
    body, headers = multipart({"item": good.encode("utf-8")})
    response = httpx.post(f"{url}/v1/items", content=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    assert httpx.get(f"{url}/v1/items/utf8-ok").json()["metadata"]["title"] == "Café Lumière"
    # The same record in Latin-1 is not UTF-8: Starlette would have read it as "Café" silently.
    body, headers = multipart({"item": good.replace("utf8-ok", "latin1").encode("latin-1")})
    response = httpx.post(f"{url}/v1/items", content=body, headers=headers)
    assert response.status_code == 400 and response.json()["detail"] == "form field 'item' is not valid UTF-8"
    assert httpx.get(f"{url}/v1/items/latin1").status_code == 404
    body, headers = multipart({"session_id": b"api-utf8", "text": b"a film \xff\xfe about cats"})
    response = httpx.post(f"{url}/v1/chat", content=body, headers=headers)
    assert response.status_code == 400 and "'text' is not valid UTF-8" in response.json()["detail"]
    urlencoded = {"content-type": "application/x-www-form-urlencoded"}
    response = httpx.post(f"{url}/v1/chat", content=b"session_id=api-utf8&text=cats+%FF%FE", headers=urlencoded)
    assert response.status_code == 400 and "'text' is not valid UTF-8" in response.json()["detail"]
    events = chat(url, "api-utf8", "un film sur les chats, très calme")
    assert events[-1][0] == "answer"


def test_a_rejected_item_leaves_no_uploaded_files_behind(api, api_home, demo_catalog):
    url, _ = api
    media = api_home["home"] / "media"
    before = set(media.rglob("*")) if media.exists() else set()
    item = json.dumps({"item_id": "rejected-1", "title": "Rejected", "chroma:document": "x"})
    for _ in range(3):
        with open(demo_catalog / "images" / "whiskers.jpg", "rb") as handle:
            response = httpx.post(f"{url}/v1/items", data={"item": item},
                                  files={"images": ("w.jpg", handle, "image/jpeg")})
        assert response.status_code == 422
    assert {p for p in media.rglob("*") if p.is_file()} == {p for p in before if p.is_file()}


def test_a_stopping_server_cancels_an_upload_in_flight_and_stores_nothing(api_home, demo_catalog):
    ended = threading.Event()
    stats, outcome = {}, {}

    class Watched(PrismService):
        def ingest_item(self, *args, **kwargs):
            try:
                outcome["ingest"] = f"stored {super().ingest_item(*args, **kwargs).ingested}"
                return None
            except Exception as exc:
                outcome["ingest"] = type(exc).__name__
                raise
            finally:
                ended.set()

    service = Watched(api_home["settings"])
    posters = sorted((demo_catalog / "images").glob("*.jpg"))
    files = [("images", (f"p{n}.jpg", posters[n % len(posters)].read_bytes(), "image/jpeg")) for n in range(24)]
    item = json.dumps({"item_id": "cancelled-upload", "title": "Twenty-four Posters"})
    with serve_app(create_app(service, llm=PolicyChat(), warm=False), stats=stats, grace=0.5) as url:
        def upload():
            try:
                outcome["status"] = httpx.post(f"{url}/v1/items", data={"item": item}, files=files,
                                               timeout=120).status_code
            except httpx.HTTPError as exc:
                outcome["error"] = type(exc).__name__
        thread = threading.Thread(target=upload)
        thread.start()
        time.sleep(3.0)  # 24 posters to caption, 4 at a time (about 7 s): the ingest is under way
    thread.join(timeout=60)
    # Uvicorn stops without waiting for the worker thread: wait for the ingest itself to end.
    assert ended.wait(timeout=300) and outcome["ingest"] == "Cancelled", outcome
    assert stats["stopped"] and outcome.get("status") in (503, None), (stats, outcome)  # None: connection closed
    assert service.get_item("cancelled-upload") is None
    assert store_problems(service) == []
    media = api_home["home"] / "media"
    assert not any(p.parent.name == safe_name("cancelled-upload") for p in media.rglob("*.jpg"))


def test_items_are_ingested_with_uploaded_files_idempotently(api, demo_catalog):
    url, _ = api
    item = json.dumps({"item_id": "api-item", "title": "Harbour Lights", "genres": ["Drama"],
                       "description": "A lighthouse keeper's daughter paints the ships of a small harbour."})
    for expected in ("ingested", "unchanged"):
        with open(demo_catalog / "images" / "whiskers.jpg", "rb") as poster:
            response = httpx.post(f"{url}/v1/items", data={"item": item},
                                  files={"images": ("p.jpg", poster, "image/jpeg")}, timeout=120)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == expected
    got = httpx.get(f"{url}/v1/items/api-item").json()
    caption = got["derived"][0]
    assert caption["kind"] == "caption" and "path" not in caption and caption["url"] == "/v1/items/api-item/image/0"
    assert "lighthouse" in got["document"]
    image = httpx.get(url + caption["url"])
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    assert httpx.get(f"{url}/v1/items/api-item/audio/0").status_code == 404
    hits = httpx.post(f"{url}/v1/chat", data={"session_id": "api-5", "text": "a lighthouse keeper painting ships"})
    assert "api-item" in hits.text


def test_search_finds_items_by_text_and_image_and_refuses_bad_filters(api, demo_catalog):
    url, _ = api
    response = httpx.post(f"{url}/v1/search", data={"text": "a lighthouse keeper painting ships", "k": 3})
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert len(hits) == 3 and hits[0]["evidence"]
    with open(demo_catalog / "images" / "whiskers.jpg", "rb") as poster:
        response = httpx.post(f"{url}/v1/search", data={"k": 2}, files={"image": ("p.jpg", poster, "image/jpeg")})
    assert response.status_code == 200 and response.json()["query_caption"]
    cli_like = httpx.post(f"{url}/v1/search", data={"text": "space", "where": json.dumps({"year": {"$lt": 1990}})})
    assert cli_like.status_code == 200
    assert all(h["metadata"].get("year", 0) < 1990 for h in cli_like.json()["hits"])
    for data, problem in (({"text": "space", "where": "{oops"}, "'where' is not valid JSON"),
                          ({"text": "space", "where": json.dumps({"$bogus": 1})}, "where"),
                          ({"text": "  "}, "needs text"), ({"text": "space", "k": 0}, "k must be")):
        response = httpx.post(f"{url}/v1/search", data=data)
        assert response.status_code == 400 and problem in response.json()["detail"], (data, response.text)


def test_recommend_returns_scores_reasons_and_evidence(api, api_home):
    url, _ = api
    body = httpx.post(f"{url}/v1/recommend", data={"user_id": api_home["user"], "k": 3, "text": "a space adventure"},
                      timeout=120).json()
    assert len(body["items"]) == 3 and body["query_weight"] == 0.5
    first = body["items"][0]
    assert {"score", "user_score", "collaborative_score", "query_score", "modalities", "because", "also_liked",
            "evidence", "reason"} <= set(first)
    together = [h["title"] for h in first["also_liked"][:2]]
    opening = (f"people who liked {', '.join(together)} also liked it" if together
               else "because you liked " + ", ".join(h["title"] for h in first["because"][:2]))
    assert first["reason"].startswith(opening) and "query" in first["reason"]
    unknown = httpx.post(f"{url}/v1/recommend", data={"user_id": "999999"})
    assert unknown.status_code == 400 and "unknown user '999999'" in unknown.json()["detail"]
    assert "/" not in unknown.json()["detail"], "the ratings file's server path leaked"
    assert httpx.post(f"{url}/v1/recommend", data={"user_id": api_home["user"], "k": 0}).status_code == 400


def test_openai_compatible_facade_works_with_the_openai_client(api, demo_catalog):
    from openai import OpenAI

    url, _ = api
    client = OpenAI(base_url=f"{url}/v1", api_key="unused")
    reply = client.chat.completions.create(model="prism", messages=[{"role": "user", "content": "a calm film about space"}])
    assert "Quiet Orbit" in reply.choices[0].message.content
    assert reply.model_extra["prism"]["answer"]["picks"][0]["item_id"] == "quiet-orbit"
    image = base64.b64encode((demo_catalog / "query-cat.jpg").read_bytes()).decode()
    stream = client.chat.completions.create(model="prism", stream=True, user="oai-cat", messages=[
        {"role": "user", "content": [{"type": "text", "text": "something like this"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}}]}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Whiskers" in text and chunks[-1].choices[0].finish_reason == "stop"
    bad = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://example.com/x.jpg"}}]}]})
    assert bad.status_code == 400 and "fetches no URLs" in bad.json()["detail"]
    # The shorthand some clients send: the data URL as a plain string.
    short = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={"user": "oai-short", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": f"data:image/jpeg;base64,{image}"}]}]})
    assert short.status_code == 200 and "Whiskers" in short.json()["choices"][0]["message"]["content"]
    odd = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": 42}]}]})
    assert odd.status_code == 400


def test_one_session_is_serialised_and_different_sessions_run_concurrently(api):
    url, llm = api
    requests = [("api-same", "same one"), ("api-same", "same two"), ("api-a", "cats please"), ("api-b", "space please")]
    results: dict[str, list] = {}

    def send(session: str, text: str) -> None:
        results[text] = chat(url, session, text)

    threads = [threading.Thread(target=send, args=r) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    spans = {text: [(s, e) for req, s, e in llm.spans if req == text] for _, text in requests}

    def window(text):
        return min(s for s, _ in spans[text]), max(e for _, e in spans[text])

    (s1, e1), (s2, e2) = window("same one"), window("same two")
    assert e1 <= s2 or e2 <= s1  # the two turns of one session never overlap
    (a1, a2), (b1, b2) = window("cats please"), window("space please")
    assert a1 < b2 and b1 < a2  # two sessions did overlap
    for text in ("cats please", "space please"):  # and each got its own answer
        answer = results[text][-1][1]
        first = display_title(answer["titles"][answer["answer"]["picks"][0]["item_id"]])
        assert answer["answer"]["message"] == f"For '{text}', try {first}."
    turns = httpx.get(f"{url}/v1/sessions/api-same").json()["turns"]
    assert sorted(t["request"] for t in turns) == ["same one", "same two"]


def test_health_says_how_many_chat_turns_are_waiting_or_running(api):
    url, _ = api
    threads = [threading.Thread(target=chat, args=(url, f"api-q{n}", "a calm film about space")) for n in range(3)]
    for t in threads:
        t.start()
    seen = []
    while any(t.is_alive() for t in threads):
        seen.append(httpx.get(f"{url}/healthz").json()["queue"]["turns"])
        time.sleep(0.05)
    for t in threads:
        t.join(120)
    queue = httpx.get(f"{url}/healthz").json()["queue"]
    assert max(seen) >= 2 and queue["turns"] == 0 and queue["llm_slots"] == 1 and queue["llm_waiting"] == 0


def test_bearer_token_auth(api_home):
    settings = api_home["settings"].model_copy(update={"api_auth": "on", "api_token": "s3cret-token"})
    with pytest.raises(PrismError, match="PRISM_API_TOKEN"):
        create_app(PrismService(api_home["settings"]), llm=PolicyChat(), host="0.0.0.0", warm=False)
    with pytest.warns(UserWarning, match="auth is off .* beyond loopback"):
        app = create_app(PrismService(settings.model_copy(update={"api_token": None, "api_auth": "off"})),
                         llm=PolicyChat(), host="0.0.0.0", warm=False)  # explicitly off: allowed, with a warning
    assert app is not None
    from pydantic import SecretStr

    for blank in ("   ", " s3cret-token "):
        with pytest.raises(PrismError, match="blank or has spaces"):
            create_app(PrismService(settings.model_copy(update={"api_token": SecretStr(blank)})), llm=PolicyChat(),
                       host="0.0.0.0", warm=False)

    settings = settings.model_copy(update={"api_token": SecretStr("s3cret-token")})
    with serve_app(create_app(PrismService(settings), llm=PolicyChat(), warm=False)) as url:
        assert httpx.get(f"{url}/v1/items/quiet-orbit").status_code == 401
        assert httpx.get(f"{url}/v1/items/quiet-orbit", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = httpx.get(f"{url}/v1/items/quiet-orbit", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and ok.json()["metadata"]["title"] == "Quiet Orbit"
        assert httpx.get(f"{url}/healthz").status_code in (200, 503)  # health needs no token
        assert httpx.get(f"{url}/").status_code == 200
