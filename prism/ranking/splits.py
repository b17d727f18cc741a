"""Honest train / validation / test splits and the leakage guard.

Three protocols:

* ``temporal``: one global clock. Train is everything before the validation window,
  validation the next window, test the last; val/test keep only users seen in train.
* ``leave_last_one``: per user, the latest interaction is test, the one before validation.
* ``cold_items``: a random set of items is removed from training entirely; their
  interactions (from users with a training history) form validation and test, and they are
  ranked among the held-out items only, from content alone.

``check_split`` and ``check_fitted_on`` raise ``LeakageError``; the runner calls them before
any number is computed, so a leaky split or a model that saw test data fails the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from prism.errors import PrismError
from prism.ranking.interactions import Interactions


class LeakageError(PrismError):
    """Test data reached training, or validation and test are not distinct."""


@dataclass(frozen=True)
class Split:
    name: str
    train: Interactions
    val: Interactions
    test: Interactions
    # Items ranked at evaluation time; None = the whole catalog.
    candidates: np.ndarray | None = None
    # Items removed from training (cold-start protocol).
    held_out_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    params: dict = field(default_factory=dict)


def _known_users(part: Interactions, train: Interactions) -> Interactions:
    return part.subset(np.isin(part.users, np.unique(train.users)))


def temporal(data: Interactions, val_frac: float = 0.1, test_frac: float = 0.1) -> Split:
    """Cut the timeline at the (1 - val - test) and (1 - test) quantiles of interaction time."""
    t_val, t_test = np.quantile(data.times, [1 - val_frac - test_frac, 1 - test_frac])
    train = data.subset(data.times < t_val)
    val = _known_users(data.subset((data.times >= t_val) & (data.times < t_test)), train)
    test = _known_users(data.subset(data.times >= t_test), train)
    return Split("temporal", train, val, test,
                 params={"val_frac": val_frac, "test_frac": test_frac, "t_val": int(t_val), "t_test": int(t_test)})


def leave_last_one(data: Interactions) -> Split:
    """Per user (with at least three interactions): last → test, second last → validation."""
    # Sort by user, then time, then row so ties break deterministically.
    order = np.lexsort((np.arange(len(data)), data.times, data.users))
    users = data.users[order]
    counts = np.bincount(users, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(order)) - starts[users]
    rank_from_end = counts[users] - 1 - position
    eligible = counts[users] >= 3
    role = np.where(eligible & (rank_from_end == 0), 2, np.where(eligible & (rank_from_end == 1), 1, 0))
    rows = {r: order[role == r] for r in (0, 1, 2)}
    return Split("leave_last_one", data.subset(np.sort(rows[0])), data.subset(np.sort(rows[1])),
                 data.subset(np.sort(rows[2])))


def cold_items(data: Interactions, frac: float = 0.2, seed: int = 0) -> Split:
    """Hold out ``frac`` of the interacted items (half for validation, half for test)."""
    rng = np.random.default_rng(seed)
    items = np.unique(data.items)
    held = rng.permutation(items)[: max(2, int(round(frac * len(items))))]
    val_items, test_items = np.sort(held[: len(held) // 2]), np.sort(held[len(held) // 2:])
    train = data.subset(~np.isin(data.items, held))
    val = _known_users(data.subset(np.isin(data.items, val_items)), train)
    test = _known_users(data.subset(np.isin(data.items, test_items)), train)
    return Split("cold_items", train, val, test, candidates=test_items, held_out_items=np.sort(held),
                 params={"frac": frac, "seed": seed, "val_candidates": val_items.tolist()})


def validation_view(split: Split) -> Split:
    """The same split with validation as its "test": what model selection may look at."""
    candidates = split.candidates
    if split.name == "cold_items":
        candidates = np.asarray(split.params["val_candidates"], dtype=np.int64)
    return Split(f"{split.name}/val", split.train, split.val, split.val, candidates=candidates,
                 held_out_items=split.held_out_items, params=split.params)


def check_split(split: Split) -> None:
    """Raise LeakageError if test rows are in train, validation equals test, or held-out items
    (cold start) or future interactions (temporal) are in train."""
    train_pairs = split.train.pairs()
    test_pairs, val_pairs = split.test.pairs(), split.val.pairs()
    if overlap := test_pairs & train_pairs:
        raise LeakageError(f"{split.name}: {len(overlap)} test interactions are also in train, e.g. {next(iter(overlap))}")
    if overlap := val_pairs & train_pairs:
        raise LeakageError(f"{split.name}: {len(overlap)} validation interactions are also in train")
    if len(split.test) == 0:
        raise LeakageError(f"{split.name}: the test set is empty")
    if val_pairs == test_pairs or (len(split.val) and val_pairs & test_pairs == val_pairs):
        raise LeakageError(f"{split.name}: validation is the same as (or contained in) test")
    if len(split.held_out_items) and np.isin(split.train.items, split.held_out_items).any():
        raise LeakageError(f"{split.name}: held-out (cold) items appear in train")
    if split.name == "temporal" and len(split.train) and split.train.times.max() >= split.test.times.min():
        raise LeakageError(f"{split.name}: train has interactions at or after the first test time")


def check_fitted_on(model_name: str, fitted_on: str | None, split: Split) -> None:
    """Raise LeakageError unless the model was fitted on exactly this split's train rows."""
    expected = split.train.digest()
    if fitted_on != expected:
        raise LeakageError(f"{model_name} was fitted on data {str(fitted_on)[:12]}…, not this split's train "
                           f"{expected[:12]}… (it may have seen validation or test data)")
