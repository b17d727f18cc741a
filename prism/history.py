"""A user's history: which ratings file it comes from, read once per file version, and one
user's rows. ``recommend`` pools these into the user; ``user_history`` lists them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prism.errors import InputError, UnknownUserError
from prism.ranking.interactions import read_rating_rows
from prism.settings import Settings

_RATINGS: dict[tuple[str, float, int], np.ndarray] = {}


def read_ratings_rows(path: Path) -> np.ndarray:
    """``[n, 4]`` int64 rows (user, item, rating, time) of a ratings file, cached per file version."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ratings file {path} does not exist")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime, stat.st_size)
    if key not in _RATINGS:
        raw = read_rating_rows(path)
        _RATINGS.clear()
        _RATINGS[key] = raw
    return _RATINGS[key]


def history_ratings(settings: Settings, ratings: Path | None, trained_on: str | None) -> Path:
    """The ratings file user histories come from: ``ratings`` if given, else the one the current
    checkpoint was trained on (``trained_on``), else settings.movielens_dir's."""
    return Path(ratings or trained_on or settings.movielens_dir / "ratings.tsv")


def user_rows(raw: np.ndarray, user_id: str, path: Path) -> np.ndarray:
    """The user's rows, in file order; an unknown user is an InputError naming them."""
    text = user_id.strip()
    rows = raw[raw[:, 0] == int(text)] if text.lstrip("-").isdigit() else raw[:0]
    if not len(rows):
        raise UnknownUserError(f"unknown user '{user_id}': no ratings for this user in {path}")
    return rows
