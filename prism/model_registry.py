"""Models load once per process: a registry of loaded objects keyed by what they depend on."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_loaded: dict[tuple, object] = {}
_lock = threading.Lock()


def once(key: tuple, factory: Callable[[], T]) -> T:
    """The object built by ``factory`` for ``key``, building it on first use only.

    ``key`` names the model and the settings it depends on (see ``Settings.model_key``), so
    runs with different homes share a loaded model while a different model gets its own.
    """
    with _lock:
        if key not in _loaded:
            _loaded[key] = factory()
        return _loaded[key]  # type: ignore[return-value]


def loaded_names() -> list[str]:
    """What is loaded in this process: the first element of each key (the model's kind)."""
    with _lock:
        return sorted({str(key[0]) for key in _loaded})
