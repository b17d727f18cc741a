"""A first answer for someone the catalog knows nothing about: well-liked items from different
genres.

Items are scored by a damped mean rating over the ratings file (``(sum + C·m) / (n + C)``,
``m`` the mean of all ratings, ``C`` = :data:`PRIOR_RATINGS`), so an item rated 5 by one user
does not beat one rated 4.4 by three hundred. The picks then cover as many genres as they can:
best first, one per leading genre, the rest filled by score. Without ratings for the stored
items the catalog order stands in for the score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel

from prism import genres
from prism.history import read_ratings_rows
from prism.store import Store

PRIOR_RATINGS = 20


class StarterItem(BaseModel):
    item_id: str
    title: str
    genres: list[str]
    mean_rating: float | None = None
    ratings: int = 0


def starter_items(store: Store, ratings: Path | None, n: int = 5) -> list[StarterItem]:
    """``n`` well-liked stored items from as many different genres as possible."""
    ids = store.all_item_ids()
    records = store.get_items(ids)
    scores: dict[str, tuple[float, float | None, int]] = {i: (0.0, None, 0) for i in ids}
    if ratings is not None and Path(ratings).is_file():
        rows = read_ratings_rows(Path(ratings))
        if len(rows):
            prior = float(rows[:, 2].mean())
            items, inverse = np.unique(rows[:, 1], return_inverse=True)
            counts = np.bincount(inverse)
            sums = np.bincount(inverse, weights=rows[:, 2].astype(np.float64))
            for item, count, total in zip(items.tolist(), counts.tolist(), sums.tolist()):
                if str(item) in scores:
                    damped = (total + PRIOR_RATINGS * prior) / (count + PRIOR_RATINGS)
                    scores[str(item)] = (damped, total / count, count)
    position = {item_id: n for n, item_id in enumerate(ids)}
    order = sorted(ids, key=lambda i: (-scores[i][0], position[i]))
    rank = {item_id: n for n, item_id in enumerate(order)}
    chosen: list[str] = []
    seen_genres: set[str] = set()
    for item_id in order:  # one per leading genre first
        item_genres = genres.of_item(records[item_id]["metadata"])
        lead = item_genres[0] if item_genres else ""
        if lead not in seen_genres and len(chosen) < n:
            chosen.append(item_id)
            seen_genres.add(lead)
    chosen += [i for i in order if i not in chosen][: n - len(chosen)]
    chosen.sort(key=rank.__getitem__)
    return [StarterItem(item_id=i, title=str(records[i]["metadata"].get("title", i)),
                        genres=genres.of_item(records[i]["metadata"]),
                        mean_rating=None if scores[i][1] is None else round(scores[i][1], 2), ratings=scores[i][2])
            for i in chosen]
