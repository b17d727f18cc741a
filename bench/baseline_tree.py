"""Run a benchmark script against another checkout of Prism (a git worktree of an older
commit), so that a report can set the old code beside the new in the same run.

The project is installed in editable mode; the child process points that install's package
map at ``tree`` before it imports anything of Prism, then runs ``script`` (this checkout's
copy, so both sides are measured the same way) with ``args`` and returns the JSON it prints.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_LAUNCH = """
import importlib, runpy, sys
finder = next(importlib.import_module(name[:-3]) for name in __import__("os").listdir(sys.argv[1])
              if name.startswith("__editable___prism") and name.endswith("_finder.py"))
here, tree = sys.argv[2], sys.argv[3]
for key, value in list(finder.MAPPING.items()):
    finder.MAPPING[key] = value.replace(here, tree)
sys.argv = sys.argv[4:]
sys.path.insert(0, str(__import__("pathlib").Path(sys.argv[0]).parent))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def commit_of(tree: Path) -> str:
    """The commit checked out at ``tree``, with "+changes" when its tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, check=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def run_in_tree(tree: Path, script: Path, args: list[str]) -> dict:
    """``script args`` with Prism imported from ``tree``; its printed JSON object."""
    import site

    site_dir = next(p for p in site.getsitepackages() if any(Path(p).glob("__editable___prism*_finder.py")))
    here = str(Path(__file__).resolve().parents[1])
    tree = Path(tree).resolve()
    # run in the tree: "python -c" puts the working directory first on the import path
    out = subprocess.run([sys.executable, "-c", _LAUNCH, site_dir, here, str(tree), str(Path(script).resolve()), *args],
                         cwd=tree, stdout=subprocess.PIPE, text=True, check=True).stdout  # its stderr is ours
    start = 0 if out.startswith("{") else out.rindex("\n{\n") + 1  # the report is the last thing printed
    return json.loads(out[start:])
