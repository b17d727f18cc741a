"""A regular (non-editable) install works: build the wheel, install it into a temporary venv,
and run ``prism demo`` from another folder; it must load its prompts, demo catalog and models
from the installed package, never from this checkout.

The temporary venv gets Prism from the wheel only; its third-party dependencies come from the
test environment's site-packages through a ``.pth`` line (installing torch and the model wheels
a second time would add minutes and prove nothing about Prism's packaging).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (built,) = out.glob("prism_recommender-*.whl")
    return built


def test_the_wheel_ships_every_package_and_its_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("prism/__init__.py", "prism/agent/orchestrator.py", "prism/tools/caption_image.py",
                     "prism/tools/captioning/offline.py", "prism/evals/suite.py", "prism/prompts/agent_system.txt",
                     "prism/prompts/caption_image.txt", "prism/api/web/index.html", "prism/api/routes/chat.py",
                     "prism/demo_data/catalog/catalog.jsonl", "prism/demo_data/catalog/images/quiet-orbit.jpg"):
        assert expected in names, expected
    # One import root: nothing installs top-level agent/tools/evals packages.
    assert not {n.split("/")[0] for n in names} & {"agent", "tools", "evals", "prompts", "demo"}


@pytest.mark.slow
def test_installed_prism_runs_the_demo_from_another_folder(wheel, tmp_path, model_cache):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, text=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRISM_") and k != "PYTHONPATH"}
    env.update(PRISM_HOME=str(tmp_path / "home"), PRISM_MODEL_CACHE_DIR=str(model_cache))
    where = subprocess.run(
        [str(python), "-c", "import prism.agent, prism.prompts, prism.demo; "
                            "print(prism.agent.__file__); print(prism.prompts.__file__); print(prism.demo.DEMO_CATALOG)"],
        cwd=elsewhere, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where

    demo = subprocess.run([str(env_dir / "bin" / "prism"), "demo"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "ingested 10" in demo.stdout
    assert "prism:" in demo.stdout  # the agent answered: its prompts loaded from the wheel
    assert str(ROOT) not in demo.stdout + demo.stderr
