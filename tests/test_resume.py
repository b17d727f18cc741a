"""An ingestion killed with SIGKILL resumes with nothing lost and nothing duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from prism.service import PrismService
from prism.settings import Settings
from prism.tools.speech_synthesis import speak

ITEMS = 12


def test_kill_9_then_resume(tmp_path, model_cache):
    clip = speak("A quiet story about a lighthouse keeper and the sea.", tmp_path / "clip.wav")
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(json.dumps({"item_id": f"item-{n}", "title": f"Film {n}",
                                             "description": f"Plot line number {n} about the sea.",
                                             "audio": clip.name}) for n in range(ITEMS)) + "\n")
    env = {**os.environ, "PRISM_HOME": str(tmp_path / "home"), "PRISM_MODEL_CACHE_DIR": str(model_cache),
           "PRISM_INGEST_BATCH_SIZE": "2"}
    process = subprocess.Popen([sys.executable, "-m", "prism.cli", "ingest", str(catalog)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    committed_lines = 0
    for line in process.stderr:
        if line.startswith("committed:"):
            committed_lines += 1
            if committed_lines == 2:
                os.kill(process.pid, signal.SIGKILL)
                break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run must be killed mid-way for this test to mean anything"

    settings = Settings(home=tmp_path / "home", model_cache_dir=model_cache, ingest_batch_size=2)
    service = PrismService(settings)
    committed = service.store.count_items()
    assert 4 <= committed < ITEMS

    summary = service.ingest(catalog)
    assert summary.failed == []
    assert summary.skipped == committed and summary.ingested == ITEMS - committed
    assert service.store.count_items() == ITEMS
    text_space = service.store.collection(f"text-{settings.text_model}")
    ids = text_space.get()["ids"]
    assert len(ids) == len(set(ids)) == 2 * ITEMS, "one document and one transcript entry per item, no duplicates"
    assert service.ingest(catalog).skipped == ITEMS
