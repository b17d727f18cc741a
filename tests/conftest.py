"""Shared fixtures: every test runs with its own PRISM_HOME; loaded models are shared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from prism.api.background import serve_in_thread
from prism.demo import DEMO_CATALOG, ensure_demo_audio
from prism.settings import Settings


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One model cache for the session (the assembled Whisper model is 145 MB)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, model_cache, monkeypatch) -> Path:
    """No test reads or writes ~/.prism or a developer's PRISM_* variables."""
    import os

    for name in list(os.environ):
        if name.startswith("PRISM_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("PRISM_HOME", str(home))
    monkeypatch.setenv("PRISM_MODEL_CACHE_DIR", str(model_cache))
    from prism.settings import get_settings

    get_settings.cache_clear()
    return home


@pytest.fixture
def settings(isolated_home) -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def demo_catalog(tmp_path_factory) -> Path:
    """A private copy of the demo catalog with its espeak-ng audio synthesised."""
    target = tmp_path_factory.mktemp("demo") / "catalog"
    shutil.copytree(DEMO_CATALOG, target, ignore=shutil.ignore_patterns("audio"))
    ensure_demo_audio(target)
    return target


MOVIELENS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "movielens-100k-mm"


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    """The real MovieLens-100K-MM data set (read in place, never copied)."""
    if not (MOVIELENS / "ratings.tsv").is_file():
        pytest.fail(f"MovieLens-100K-MM is missing at {MOVIELENS}; tests need the shared data set")
    return MOVIELENS


serve_app = serve_in_thread  # tests import it from here


@pytest.fixture(scope="session")
def api_home(tmp_path_factory, demo_catalog, movielens_dir, model_cache) -> dict:
    """The demo catalog plus 25 MovieLens items in one store, and a tiny fusion model trained
    on those items' ratings: what the HTTP and browser tests serve."""
    from prism.service import PrismService

    home = tmp_path_factory.mktemp("api-home")
    settings = Settings(home=home, model_cache_dir=model_cache, multilingual_model="none",
                        movielens_dir=movielens_dir)
    service = PrismService(settings)
    assert service.ingest(demo_catalog).ingested == 10
    assert service.ingest(movielens_dir, limit=25).ingested == 25
    ids = set(service.store.all_item_ids())
    lines = [line for line in (movielens_dir / "ratings.tsv").read_text().splitlines() if line.split("\t")[1] in ids]
    ratings = home / "ratings.tsv"
    ratings.write_text("\n".join(lines) + "\n")
    service.train(ratings=ratings, epochs=2, device="cpu", name="api")
    users: dict[str, int] = {}
    for line in lines:
        users[line.split("\t")[0]] = users.get(line.split("\t")[0], 0) + 1
    user = sorted((u for u, n in users.items() if 5 <= n <= 15), key=int)[0]
    return {"home": home, "settings": settings, "user": user}


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny matrices: thread hand-offs cost more than they save,
    and the machine may be shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
