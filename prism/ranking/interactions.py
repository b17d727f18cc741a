"""User-item interactions for offline evaluation.

Every rating is an implicit interaction; ``min_rating`` keeps only ratings at or above it
(the "liked" variant). Users and items are mapped to dense indices; the catalog's item ids
(strings, as ingested) index the item axis so content vectors line up with it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prism.errors import InputError


@dataclass(frozen=True)
class Interactions:
    """Parallel arrays, one row per interaction, plus the id maps."""

    users: np.ndarray  # int64 dense user index
    items: np.ndarray  # int64 dense item index
    ratings: np.ndarray  # float32
    times: np.ndarray  # int64 unix seconds
    user_ids: list[str]
    item_ids: list[str]

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, rows: np.ndarray) -> "Interactions":
        """The interactions at ``rows`` (indices or a boolean mask), same id maps."""
        return Interactions(self.users[rows], self.items[rows], self.ratings[rows], self.times[rows],
                            self.user_ids, self.item_ids)

    def digest(self) -> str:
        """A sha256 over the rows and id maps: what a model was fitted on."""
        h = hashlib.sha256()
        for array in (self.users, self.items, self.ratings, self.times):
            h.update(np.ascontiguousarray(array).tobytes())
        h.update("\x1f".join(self.user_ids).encode())
        h.update("\x1f".join(self.item_ids).encode())
        return h.hexdigest()

    def pairs(self) -> set[tuple[int, int]]:
        return set(zip(self.users.tolist(), self.items.tolist()))


def read_rating_rows(path: Path) -> np.ndarray:
    """``[n, 4]`` int64 rows (user, item, rating, time) of a ratings file; InputError naming the
    file when it is missing or not ``user<TAB>item<TAB>rating<TAB>timestamp``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ratings file {path} does not exist")
    try:
        raw = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    except ValueError as error:
        raise InputError(f"ratings file {path} is not user<TAB>item<TAB>rating<TAB>timestamp: {error}") from error
    if raw.shape[1] != 4:
        raise InputError(f"ratings file {path}: expected 4 tab-separated columns, found {raw.shape[1]}")
    return raw


def read_ratings(path: Path, item_ids: list[str] | None = None, min_rating: float | None = None) -> Interactions:
    """Read ``user<TAB>item<TAB>rating<TAB>timestamp`` lines (MovieLens ``ratings.tsv``).

    ``item_ids`` fixes the item axis (e.g. the ingested catalog's ids); ratings of items not in
    it are an InputError, since the evaluation would silently lose them otherwise.
    """
    raw = read_rating_rows(path)
    if min_rating is not None:
        raw = raw[raw[:, 2] >= min_rating]
    user_ids = sorted({str(u) for u in raw[:, 0]}, key=int)
    catalog = item_ids if item_ids is not None else sorted({str(i) for i in raw[:, 1]}, key=int)
    user_index = {u: i for i, u in enumerate(user_ids)}
    item_index = {it: i for i, it in enumerate(catalog)}
    missing = {str(i) for i in raw[:, 1]} - item_index.keys()
    if missing:
        raise InputError(f"ratings file {path}: {len(missing)} item ids are not in the catalog, "
                         f"e.g. {sorted(missing)[:5]}")
    return Interactions(
        users=np.array([user_index[str(u)] for u in raw[:, 0]], dtype=np.int64),
        items=np.array([item_index[str(i)] for i in raw[:, 1]], dtype=np.int64),
        ratings=raw[:, 2].astype(np.float32),
        times=raw[:, 3].astype(np.int64),
        user_ids=user_ids,
        item_ids=list(catalog),
    )


def restrict_items(data: Interactions, keep: list[str]) -> tuple[Interactions, int]:
    """Only interactions with items in ``keep`` (which becomes the item axis, in that order).

    Returns the restricted interactions and how many rows were dropped; users left with no
    interactions stay on the user axis (they are simply never evaluated).
    """
    index = {item_id: i for i, item_id in enumerate(keep)}
    mapping = np.array([index.get(item_id, -1) for item_id in data.item_ids], dtype=np.int64)
    new_items = mapping[data.items]
    rows = new_items >= 0
    restricted = Interactions(data.users[rows], new_items[rows], data.ratings[rows], data.times[rows],
                              data.user_ids, list(keep))
    return restricted, int((~rows).sum())
