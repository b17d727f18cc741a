"""Dependencies point down: the layer contract (tests/layering.py) over the real source tree,
and proof that the checker catches what it must."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from layering import check, check_source, layer_of, source_modules

ROOT = Path(__file__).resolve().parents[1]


def test_the_source_tree_keeps_the_layer_contract():
    violations = check(ROOT)
    assert not violations, "layer contract broken:\n" + "\n".join(map(str, violations))


def test_every_mapped_folder_is_seen():
    modules = source_modules(ROOT)
    for name in ("prism.settings", "prism.tools.caption_image", "prism.tools.captioning.offline",
                 "prism.fusion.model", "prism.service", "prism.agent.orchestrator", "prism.evals.suite",
                 "prism.prompts", "prism.cli.main", "prism.api.routes.chat", "prism.demo_data"):
        assert name in modules, name
    assert modules["prism.agent.orchestrator"] == ROOT / "agent" / "orchestrator.py"
    assert all(layer_of(m) is not None for m in modules)


@pytest.mark.parametrize("module, source, problem", [
    ("prism.store", "from prism.agent.sessions import SessionStore\n", "upward import of prism.agent.sessions"),
    ("prism.tools.embed_text", "import prism.service\n", "upward import of prism.service"),
    ("prism.settings", "from prism import search\n", "upward import of prism.search"),
    ("prism.agent.toolkit", "from prism.evals.suite import SUITES\n", "stay independent"),
    ("prism.evals.suite", "from prism.api.app import create_app\n", "upward import of prism.api.app"),
    ("prism.api.routes.chat", "from prism.api.context import _secret\n", "private name _secret"),
    ("prism.service", "def f():\n    from prism.recommend import recommend\n", "without a 'deferred' comment"),
    ("prism.newthing", "import os\n", "module has no layer"),
])
def test_the_checker_catches(module, source, problem):
    known = {"prism.search", "prism.service"}
    found = check_source(module, source, known=known)
    assert any(problem in str(v) for v in found), found


def test_the_checker_allows_downward_and_deferred_imports():
    source = ("from prism.settings import Settings\nfrom prism.tools.embed_text import get_encoder\n"
              "def f():\n    # deferred: torch\n    from prism.fusion.model import FusionModel\n")
    assert check_source("prism.recommend", source) == []


def test_no_test_or_benchmark_imports_a_private_name():
    offenders = []
    for path in [*ROOT.joinpath("tests").glob("*.py"), *ROOT.joinpath("bench").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prism"):
                offenders += [f"{path.name}:{node.lineno} {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert not offenders, offenders


def test_doctests_in_the_mapped_folders_pass():
    """pytest collects doctests under prism/ itself; this runs those of the folders mapped into
    ``prism`` (tools/, agent/, evals/), imported under their real names."""
    import doctest
    import importlib

    ran = 0
    for name, path in source_modules(ROOT).items():
        if path.is_relative_to(ROOT / "prism") or ">>> " not in path.read_text(encoding="utf-8"):
            continue
        result = doctest.testmod(importlib.import_module(name))
        assert result.failed == 0, name
        ran += result.attempted
    assert ran > 0
