"""Ranking metrics against hand-computed cases."""

import math

import numpy as np
import pytest

from prism.evals.significance import paired_bootstrap
from prism.ranking.interactions import Interactions
from prism.ranking.metrics import coverage, intra_list_diversity, novelty, ranking_metrics, satisfaction, top_k


def test_hand_computed_ranking_metrics():
    # User 0: relevant {2, 7}; ranked [2, 5, 7, 1, 0] → hits at ranks 1 and 3.
    # User 1: relevant {9};    ranked [0, 1, 3, 4, 6] → no hit.
    top = np.array([[2, 5, 7, 1, 0], [0, 1, 3, 4, 6]])
    m = ranking_metrics(top, [np.array([2, 7]), np.array([9])], ks=(1, 3, 5))
    assert m["hr@1"].tolist() == [1.0, 0.0]
    assert m["precision@3"].tolist() == pytest.approx([2 / 3, 0.0])
    assert m["recall@1"].tolist() == pytest.approx([0.5, 0.0])
    assert m["recall@5"].tolist() == pytest.approx([1.0, 0.0])
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3)
    assert m["ndcg@3"][0] == pytest.approx(dcg / idcg)
    assert m["ndcg@1"][0] == pytest.approx(1.0)
    assert m["mrr@5"].tolist() == pytest.approx([1.0, 0.0])


def test_mrr_uses_first_hit_and_ndcg_single_target():
    top = np.array([[4, 3, 8, 1]])
    m = ranking_metrics(top, [np.array([8])], ks=(4,))
    assert m["mrr@4"][0] == pytest.approx(1 / 3)
    assert m["ndcg@4"][0] == pytest.approx(1 / math.log2(4))


def test_top_k_masks_known_items_restricts_candidates_and_breaks_ties_by_index():
    scores = np.array([[0.9, 0.9, 0.1, 0.5, 0.9]])
    assert top_k(scores, 3).tolist() == [[0, 1, 4]]
    assert top_k(scores, 3, exclude=[np.array([0, 4])]).tolist() == [[1, 3, 2]]
    # Only two candidates: the rest of the list is padded with -1, never a banned item.
    assert top_k(scores, 3, candidates=np.array([2, 3])).tolist() == [[3, 2, -1]]


def test_coverage_novelty_diversity_satisfaction():
    top = np.array([[0, 1], [0, 2]])
    assert coverage(top, 2, n_candidates=4) == 0.75
    train = Interactions(np.array([0, 1, 1]), np.array([0, 0, 1]), np.ones(3, np.float32), np.zeros(3, np.int64),
                         ["a", "b"], ["x", "y", "z"])
    # p(item) = (distinct users + 1) / (n_users + 1): item0 = 1, item1 = 2/3, item2 = 1/3.
    nov = novelty(top, 2, train)
    assert nov[0] == pytest.approx((0 - math.log2(2 / 3)) / 2)
    assert nov[1] == pytest.approx((0 - math.log2(1 / 3)) / 2)
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert intra_list_diversity(top, 2, vectors).tolist() == pytest.approx([1.0, 0.0])
    test = Interactions(np.array([0, 1]), np.array([1, 3]), np.array([5.0, 2.0], np.float32), np.zeros(2, np.int64),
                        ["a", "b"], ["x", "y", "z", "w"])
    assert satisfaction(top, 2, np.array([0, 1]), test) == 5.0


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(1)
    base = rng.random(400)
    better = paired_bootstrap(base + 0.05, base)
    assert better["diff"] == pytest.approx(0.05) and better["p_value"] < 0.01 and better["ci_low"] > 0
    noise = paired_bootstrap(base + rng.normal(0, 0.1, 400), base)
    assert noise["ci_low"] < 0 < noise["ci_high"]


def test_ndcg_agrees_with_scikit_learn_on_random_rankings():
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(7)
    scores = rng.random((30, 60))
    relevant = [rng.choice(60, size=rng.integers(1, 6), replace=False) for _ in range(30)]
    top = top_k(scores, 20)
    ours = ranking_metrics(top, relevant, ks=(5, 20))
    for k in (5, 20):
        for row in range(30):
            truth = np.zeros((1, 60))
            truth[0, relevant[row]] = 1
            assert ours[f"ndcg@{k}"][row] == pytest.approx(ndcg_score(truth, scores[row:row + 1], k=k))
