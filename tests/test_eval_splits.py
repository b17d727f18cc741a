"""Splits are honest, and the leakage guard fires when they are not."""

import numpy as np
import pytest

from prism.evals.baselines import Popularity
from prism.ranking import splits
from prism.ranking.interactions import Interactions, read_ratings, restrict_items
from prism.ranking.protocol import evaluate_on
from prism.ranking.splits import LeakageError


def toy(n_users=30, n_items=40, per_user=8, seed=0) -> Interactions:
    rng = np.random.default_rng(seed)
    users, items, times = [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=per_user, replace=False)
        users += [u] * per_user
        items += chosen.tolist()
        times += sorted(rng.integers(0, 10_000, size=per_user).tolist())
    return Interactions(np.array(users), np.array(items), np.full(len(users), 4.0, np.float32), np.array(times),
                        [str(u) for u in range(n_users)], [str(i) for i in range(n_items)])


def test_leave_last_one_takes_each_users_latest_for_test():
    data = toy()
    split = splits.leave_last_one(data)
    splits.check_split(split)
    assert len(split.test) == len(split.val) == data.n_users
    for u, i, t in zip(split.test.users, split.test.items, split.test.times):
        assert t == data.times[data.users == u].max()
        assert t >= split.train.times[split.train.users == u].max()


def test_temporal_split_orders_train_before_validation_before_test():
    split = splits.temporal(toy())
    splits.check_split(split)
    assert split.train.times.max() < split.val.times.min() <= split.val.times.max() < split.test.times.min()


def test_cold_items_never_appear_in_train_and_are_the_only_candidates():
    split = splits.cold_items(toy(), frac=0.25, seed=3)
    splits.check_split(split)
    assert not np.isin(split.train.items, split.held_out_items).any()
    assert set(split.test.items.tolist()) <= set(split.candidates.tolist())


def test_guard_fires_when_test_rows_leak_into_train():
    split = splits.leave_last_one(toy())
    leaky_train = Interactions(*(np.concatenate([getattr(split.train, f), getattr(split.test, f)[:3]])
                                 for f in ("users", "items", "ratings", "times")), split.train.user_ids, split.train.item_ids)
    with pytest.raises(LeakageError, match="test interactions are also in train"):
        splits.check_split(splits.Split("leave_last_one", leaky_train, split.val, split.test))


def test_guard_fires_when_validation_is_test():
    split = splits.leave_last_one(toy())
    with pytest.raises(LeakageError, match="validation is the same"):
        splits.check_split(splits.Split("leave_last_one", split.train, split.test, split.test))


def test_guard_fires_when_cold_items_are_trained_on():
    split = splits.cold_items(toy(), frac=0.25)
    with pytest.raises(LeakageError, match="held-out"):
        splits.check_split(splits.Split("cold_items", split.val, split.train.subset(np.arange(0)), split.test,
                                        held_out_items=split.held_out_items))


def test_guard_fires_when_a_model_saw_test_data():
    data = toy()
    split = splits.leave_last_one(data)
    cheater = Popularity().fit(data)  # fitted on everything, test included
    with pytest.raises(LeakageError, match="not this split's train"):
        evaluate_on(cheater, split)
    honest = Popularity().fit(split.train)
    aggregates, _, _ = evaluate_on(honest, split)
    assert 0 <= aggregates["ndcg@20"] <= 1


def test_movielens_ratings_load_and_restrict(movielens_dir):
    data = read_ratings(movielens_dir / "ratings.tsv")
    assert len(data) == 100_000 and data.n_users == 943 and data.n_items == 1682
    liked = data.subset(data.ratings >= 4)
    assert 0 < len(liked) < len(data)
    restricted, dropped = restrict_items(data, ["1", "50"])
    assert restricted.n_items == 2 and dropped == len(data) - len(restricted)
    assert set(restricted.items.tolist()) == {0, 1}
