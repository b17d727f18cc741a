"""`prism ingest --ray`: the demo catalog and 500 MovieLens items through a real local Ray into a
real Chroma server store exactly what the plain ingest stores, and a repeated run adds nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from prism.chroma_server import chroma_server
from prism.cli import app
from prism.errors import InputError
from prism.service import PrismService
from prism.settings import Settings
from prism.store import ITEMS, Store

MOVIELENS_ITEMS = 500


def snapshot(store: Store) -> dict:
    """What a store holds: each item's hash, document and derived texts; each space's vectors."""
    items = {}
    for item_id, record in store.get_items(store.all_item_ids()).items():
        # Whisper's transcript can differ by a word between thread counts (the actors use one):
        # transcripts are compared by their field only, captions and OCR texts exactly.
        items[item_id] = (record["metadata"]["content_hash"], record["document"],
                          [(d["field"], d["text"] if d["kind"] != "transcript" else None) for d in record["derived"]])
    spaces = {}
    for space in store.spaces():
        if space != ITEMS:
            got = store.collection(space).get(include=["embeddings"])
            spaces[space] = dict(zip(got["ids"], np.asarray(got["embeddings"], dtype=np.float32)))
    return {"items": items, "spaces": spaces}


@pytest.mark.slow
def test_the_ray_ingest_stores_what_the_plain_ingest_stores(demo_catalog, movielens_dir, model_cache, tmp_path,
                                                             monkeypatch):
    plain = PrismService(Settings(home=tmp_path / "plain", model_cache_dir=model_cache, multilingual_model="none"))
    assert plain.ingest(demo_catalog).ingested == 10
    assert plain.ingest(movielens_dir, limit=MOVIELENS_ITEMS).ingested == MOVIELENS_ITEMS

    with chroma_server(tmp_path / "server") as server:
        for key, value in {"PRISM_HOME": tmp_path / "ray", "PRISM_MODEL_CACHE_DIR": model_cache,
                           "PRISM_MULTILINGUAL_MODEL": "none", "PRISM_CHROMA_HOST": server.host,
                           "PRISM_CHROMA_PORT": server.port}.items():
            monkeypatch.setenv(key, str(value))
        # The command line with a local Ray (--ray without an address), then the service.
        result = CliRunner().invoke(app, ["ingest", str(demo_catalog), "--ray", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["ingested"] == 10  # Ray logs to stderr
        settings = Settings()
        ray_service = PrismService(settings)
        summary = ray_service.ingest_on_ray(movielens_dir, limit=MOVIELENS_ITEMS, actors=2)
        assert (summary.ingested, summary.skipped, summary.failed) == (MOVIELENS_ITEMS, 0, [])
        assert not settings.chroma_path.exists()  # everything went to the server

        ours, theirs = snapshot(ray_service.store), snapshot(plain.store)
        assert ours["items"] == theirs["items"]  # same items, hashes, documents, captions and OCR texts
        assert ours["spaces"].keys() == theirs["spaces"].keys()
        for space, vectors in theirs["spaces"].items():
            assert ours["spaces"][space].keys() == vectors.keys(), space
            worst = max(float(np.abs(ours["spaces"][space][i] - v).max()) for i, v in vectors.items()
                        if "|transcript" not in i)
            assert worst < 1e-3, (space, worst)

        # Idempotent: a repeated run skips everything before any actor starts and adds nothing.
        again = ray_service.ingest_on_ray(movielens_dir, limit=MOVIELENS_ITEMS)
        assert (again.ingested, again.updated, again.skipped) == (0, 0, MOVIELENS_ITEMS)
        assert snapshot(ray_service.store)["items"].keys() == ours["items"].keys()


def test_the_ray_ingest_needs_a_chroma_server(demo_catalog, tmp_path):
    service = PrismService(Settings(home=tmp_path))
    with pytest.raises(InputError, match="set PRISM_CHROMA_HOST"):
        service.ingest_on_ray(demo_catalog)
    result = CliRunner().invoke(app, ["ingest", str(demo_catalog), "--ray"], env={"PRISM_HOME": str(tmp_path)})
    assert result.exit_code != 0 and "Ray's actors cannot share an embedded store" in result.output
