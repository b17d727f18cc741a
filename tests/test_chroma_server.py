"""Prism against a real Chroma server (`chroma run` on loopback) instead of the embedded store."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prism.service import PrismService
from prism.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """A `chroma run` server on 127.0.0.1 with its own data folder; stopped after the module."""
    chroma = Path(sys.executable).with_name("chroma")
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = open(data / "server.log", "w")
    process = subprocess.Popen([str(chroma), "run", "--path", str(data / "db"), "--host", "127.0.0.1",
                                "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chroma run exited with {process.returncode}: {(data / 'server.log').read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("chroma run did not listen within 60 s")
    yield port, data / "db"
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


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
