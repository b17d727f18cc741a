"""Prism's prompts, one text file each (``<name>.txt`` beside this file), shipped as package
data and read through :mod:`importlib.resources`, so an installed Prism finds them too."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files


@lru_cache(maxsize=None)
def load_prompt(name: str) -> str:
    """The text of the prompt ``<name>.txt``, without its final newline; FileNotFoundError
    naming the prompt when it is not shipped."""
    resource = files(__name__) / f"{name}.txt"
    if not resource.is_file():
        raise FileNotFoundError(f"prompt '{name}' ({name}.txt) is not among Prism's prompts")
    return resource.read_text(encoding="utf-8").rstrip("\n")
