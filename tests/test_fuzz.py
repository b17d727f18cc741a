"""Seeded fuzzing of the two ways in: 520 random catalog lines (tests/catalog_fuzz.py) through
``prism ingest`` (a real subprocess) and the same records through ``POST /v1/items`` (a real
uvicorn server), each into its own real store: no crash, no 5xx, every bad line reported with a
reason, every good line stored once with its title, and records and vectors in step."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest
from catalog_fuzz import fuzz_lines, store_problems
from conftest import serve_app
from test_api import multipart

from prism.api.app import create_app
from prism.service import PrismService
from prism.settings import Settings

LINES = fuzz_lines(520, seed=13)


def expected_ids() -> dict[str, str]:
    return {line.item_id: line.title for line in LINES if line.good}


def check_store(service: PrismService) -> None:
    ids = service.store.all_item_ids()
    assert len(ids) == len(set(ids))
    assert set(ids) == set(expected_ids())
    records = service.store.get_items(ids)
    assert {i: r["metadata"]["title"] for i, r in records.items()} == expected_ids()
    assert store_problems(service) == []


def test_the_generator_makes_both_kinds_of_line():
    faults = {line.fault for line in LINES}
    assert len(LINES) >= 500 and None in faults and len(faults) >= 12
    assert 0.3 < sum(not line.good for line in LINES) / len(LINES) < 0.6


@pytest.fixture
def fuzz_settings(tmp_path, model_cache) -> Settings:
    return Settings(home=tmp_path / "home", model_cache_dir=model_cache, multilingual_model="none")


def test_random_catalog_lines_through_prism_ingest(tmp_path, fuzz_settings):
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_bytes(b"".join(line.raw + b"\n" for line in LINES))
    env = {**os.environ, "PRISM_HOME": str(fuzz_settings.home), "PRISM_MULTILINGUAL_MODEL": "none"}
    done = subprocess.run([sys.executable, "-m", "prism.cli", "ingest", str(catalog), "--json"], env=env,
                          capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    bad = {f"catalog.jsonl:{n}" for n, line in enumerate(LINES, start=1) if not line.good}
    assert {f["source"] for f in summary["failed"]} == bad
    assert all(f["reason"].strip() for f in summary["failed"])
    assert summary["ingested"] == len(expected_ids())
    check_store(PrismService(fuzz_settings))


def test_the_same_records_through_post_v1_items(fuzz_settings):
    service = PrismService(fuzz_settings)
    statuses: dict[int, int] = {}
    with serve_app(create_app(service, warm=False)) as url, httpx.Client(timeout=300) as client:
        for n, line in enumerate(LINES):
            body, headers = multipart({"item": line.raw})
            response = client.post(f"{url}/v1/items", content=body, headers=headers)
            statuses[n] = response.status_code
            assert response.status_code < 500, (line.fault, response.text)
            if line.good:
                assert response.status_code == 200 and response.json()["status"] == "ingested", response.text
            else:
                assert 400 <= response.status_code < 500, (line.fault, line.raw[:300])
                assert response.json()["detail"].strip()
    check_store(service)
