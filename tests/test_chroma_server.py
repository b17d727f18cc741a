"""Prism against a real Chroma server (`chroma run` on loopback) instead of the embedded store."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prism.chroma_server import chroma_server as start_chroma_server
from prism.service import PrismService
from prism.settings import Settings


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """A `chroma run` server on 127.0.0.1 with its own data folder; stopped after the module."""
    with start_chroma_server(tmp_path_factory.mktemp("chroma-server") / "db") as server:
        yield server.port, server.path


@pytest.mark.slow
def test_ingest_and_search_through_a_chroma_server(chroma_server, demo_catalog, model_cache, tmp_path):
    port, db = chroma_server
    settings = Settings(home=tmp_path / "home", model_cache_dir=model_cache, chroma_host="127.0.0.1",
                        chroma_port=port)
    service = PrismService(settings)
    summary = service.ingest(demo_catalog)
    assert summary.ingested == 10 and not summary.failed
    assert not settings.chroma_path.exists()  # nothing went to an embedded store
    assert db.is_dir() and any(db.iterdir())  # the server persisted it
    hits = service.search(text="a cat in a snowy inn", k=3).hits
    assert hits[0].item_id == "whiskers"
    # Another service with a home of its own (as a second worker would have) shares the store.
    again = PrismService(Settings(home=tmp_path / "other", model_cache_dir=model_cache, chroma_host="127.0.0.1",
                                  chroma_port=port)).ingest(demo_catalog)
    assert again.skipped == 10 and again.ingested == 0


@pytest.mark.slow
def test_two_prism_serve_workers_share_one_chroma_server(chroma_server, demo_catalog, model_cache, tmp_path):
    """Two `prism serve` processes over one Chroma server (and one home for uploads and
    sessions): an item added through one is served by the other."""
    import json
    import os

    import httpx

    port, _ = chroma_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRISM_")}
    env.update(PRISM_HOME=str(tmp_path / "home"), PRISM_MODEL_CACHE_DIR=str(model_cache), PRISM_CHROMA_HOST="127.0.0.1",
               PRISM_CHROMA_PORT=str(port), PRISM_MULTILINGUAL_MODEL="none", PRISM_API_WARM="false",
               PRISM_COLLECTION_PREFIX="workers")
    prism = Path(sys.executable).with_name("prism")
    with socket.socket() as first, socket.socket() as second:  # two distinct free ports
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        ports = [first.getsockname()[1], second.getsockname()[1]]
    logs = [tmp_path / f"worker-{p}.log" for p in ports]
    workers = [subprocess.Popen([str(prism), "serve", "--port", str(p)], env=env, stdout=subprocess.DEVNULL,
                                stderr=open(log, "w")) for p, log in zip(ports, logs)]
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        deadline = time.monotonic() + 180
        for url, worker, log in zip(urls, workers, logs):
            while True:
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert worker.poll() is None, f"worker exited with {worker.returncode}: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, f"worker not healthy after 180 s: {log.read_text()[-2000:]}"
                time.sleep(0.5)
        item = json.dumps({"item_id": "shared-1", "title": "Two Harbours",
                           "description": "Two ferry captains race each other across a foggy bay."})
        with open(demo_catalog / "images" / "morning-roast.jpg", "rb") as poster:
            added = httpx.post(f"{urls[0]}/v1/items", data={"item": item},
                               files={"images": ("p.jpg", poster, "image/jpeg")}, timeout=180)
        assert added.status_code == 200 and added.json()["status"] == "ingested", added.text
        seen = httpx.get(f"{urls[1]}/v1/items/shared-1", timeout=60)
        assert seen.status_code == 200 and "ferry captains" in seen.json()["document"]
        assert httpx.get(urls[1] + seen.json()["derived"][0]["url"]).status_code == 200
        health = [httpx.get(f"{u}/healthz").json() for u in urls]
        assert [h["chroma"] for h in health] == [{"reachable": True, "items": 1}] * 2
        assert health[0]["models"]["chat_model"] is None  # api_warm=false: no LLM loaded for item work
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=20)


def test_filtered_queries_through_a_chroma_server_match_chroma_s_own_filter(chroma_server, tmp_path):
    import numpy as np

    from prism.store import Store, VectorEntry

    port, _ = chroma_server
    store = Store(Settings(home=tmp_path, chroma_host="127.0.0.1", chroma_port=port, collection_prefix="filters"))
    vectors = np.random.default_rng(4).normal(size=(400, 8)).astype(np.float32)
    store.put_vectors("films", [VectorEntry(id=f"{i}|document", item_id=str(i), field="document", text="",
                                            vector=v, metadata={"year": 1900 + i % 100}) for i, v in enumerate(vectors)])
    store.put_items([{"id": str(i), "document": "", "metadata": {"title": str(i)}} for i in range(400)])
    raw = store.collection("films")
    for where in ({"year": {"$gte": 1910}}, {"year": 1950}):  # probed and filtered here; Chroma's lookup
        got = [f"{m.item_id}|document" for m in store.query("films", vectors[0], n=10, where=where)]
        assert got == raw.query(query_embeddings=[vectors[0]], n_results=10, where=where, include=[])["ids"][0]
