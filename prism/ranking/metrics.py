"""Full-ranking metrics: every candidate item is scored, known items masked, top-K compared.

Per-user values are kept (for significance tests); aggregates are their means. Definitions
(``hits`` = relevant items in the top K, ``R`` = the user's relevant items):

* HR@K = 1 if hits > 0; Precision@K = hits / K; Recall@K = hits / |R|
* NDCG@K = DCG / IDCG with binary gains, IDCG over min(|R|, K) positions
* MRR@K = 1 / rank of the first relevant item within K (0 if none)
* Coverage@K = distinct items recommended to anyone / number of candidate items
* Novelty@K = mean self-information -log2(p(i)) of recommended items, p from train popularity
* ILD@K = mean pairwise cosine distance between the content vectors of a user's top K
* Satisfaction@K = mean rating of the hit items (a proxy: did hits land on liked items)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from prism.ranking.interactions import Interactions

KS = (5, 10, 20, 50)


def group_by_user(data: Interactions) -> dict[int, np.ndarray]:
    """user index → array of item indices (in row order)."""
    order = np.argsort(data.users, kind="stable")
    users, items = data.users[order], data.items[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    return {int(u[0]): i for u, i in zip(np.split(users, bounds), np.split(items, bounds)) if len(u)}


def top_k(scores: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None,
          candidates: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first; excluded items never appear.

    Lists are padded with -1 where fewer than ``k`` items are allowed.

    ``exclude[r]`` are item indices banned for row r; ``candidates`` restricts every row.
    Ties are broken by item index so results are deterministic.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    if candidates is not None:
        allowed = np.zeros(scores.shape[1], dtype=bool)
        allowed[candidates] = True
        scores[:, ~allowed] = -np.inf
    if exclude is not None:
        for row, banned in enumerate(exclude):
            scores[row, banned] = -np.inf
    depth, k = k, min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    ranked = np.take_along_axis(part, order, axis=1)
    # -inf items can fill the list only when fewer than k items are allowed; mark them -1.
    valid = np.isfinite(np.take_along_axis(scores, ranked, axis=1))
    ranked = np.where(valid, ranked, -1)
    if depth > k:  # fewer items than K: pad so every list has the requested depth
        ranked = np.pad(ranked, ((0, 0), (0, depth - k)), constant_values=-1)
    return ranked


def ranking_metrics(top: np.ndarray, relevant: Sequence[np.ndarray], ks: Sequence[int] = KS) -> dict[str, np.ndarray]:
    """Per-user HR, Precision, Recall, NDCG and MRR at each K for ranked lists ``top``."""
    n_users, depth = top.shape
    if max(ks) > depth:
        raise ValueError(f"ranked lists have {depth} items, fewer than K={max(ks)}")
    hit = np.zeros((n_users, depth), dtype=bool)
    n_rel = np.array([len(r) for r in relevant], dtype=np.float64)
    for row, rel in enumerate(relevant):
        hit[row] = np.isin(top[row], rel) & (top[row] >= 0)
    discounts = 1.0 / np.log2(np.arange(2, depth + 2))
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hits_k = hit[:, :k]
        n_hits = hits_k.sum(axis=1)
        dcg = (hits_k * discounts[:k]).sum(axis=1)
        ideal = np.array([discounts[: int(min(n, k))].sum() for n in n_rel])
        first = np.where(hits_k.any(axis=1), hits_k.argmax(axis=1) + 1, 0)
        out[f"hr@{k}"] = (n_hits > 0).astype(np.float64)
        out[f"precision@{k}"] = n_hits / k
        out[f"recall@{k}"] = n_hits / np.maximum(n_rel, 1)
        out[f"ndcg@{k}"] = np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)
        out[f"mrr@{k}"] = np.divide(1.0, first, out=np.zeros(n_users), where=first > 0)
    return out


def coverage(top: np.ndarray, k: int, n_candidates: int) -> float:
    items = top[:, :k]
    return float(len(np.unique(items[items >= 0])) / n_candidates)


def novelty(top: np.ndarray, k: int, train: Interactions) -> np.ndarray:
    """Per-user mean self-information of the top K, popularity from distinct train users."""
    users_per_item = np.bincount(np.unique(np.stack([train.items, train.users]), axis=1)[0], minlength=train.n_items)
    p = (users_per_item + 1) / (train.n_users + 1)
    info = -np.log2(p)
    items = top[:, :k]
    return np.array([info[row[row >= 0]].mean() if (row >= 0).any() else 0.0 for row in items])


def intra_list_diversity(top: np.ndarray, k: int, vectors: np.ndarray) -> np.ndarray:
    """Per-user mean pairwise cosine distance of the top K items' content vectors."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    out = np.zeros(len(top))
    for row, items in enumerate(top[:, :k]):
        items = items[items >= 0]
        if len(items) < 2:
            continue
        sims = unit[items] @ unit[items].T
        n = len(items)
        out[row] = 1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1))
    return out


def satisfaction(top: np.ndarray, k: int, users: np.ndarray, test: Interactions) -> float:
    """Mean rating of the test items that were hit in the top K (NaN when nothing was hit)."""
    rating = {(u, i): r for u, i, r in zip(test.users.tolist(), test.items.tolist(), test.ratings.tolist())}
    hits = [rating[(int(u), int(i))] for u, row in zip(users, top[:, :k]) for i in row if (int(u), int(i)) in rating]
    return float(np.mean(hits)) if hits else float("nan")


def evaluate(score_fn: Callable[[np.ndarray], np.ndarray], users: np.ndarray, relevant: Sequence[np.ndarray],
             exclude: Sequence[np.ndarray], candidates: np.ndarray | None, train: Interactions,
             test: Interactions, item_vectors: np.ndarray | None = None, ks: Sequence[int] = KS,
             batch: int = 256) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Score ``users`` in batches with ``score_fn(users) -> [B, n_items]`` and compute every
    metric. Returns (aggregates, per-user arrays)."""
    depth = max(ks)
    tops = []
    for start in range(0, len(users), batch):
        chunk = users[start:start + batch]
        scores = np.asarray(score_fn(chunk), dtype=np.float64)
        tops.append(top_k(scores, depth, exclude[start:start + batch], candidates))
    top = np.concatenate(tops) if tops else np.zeros((0, depth), dtype=np.int64)
    per_user = ranking_metrics(top, relevant, ks)
    n_candidates = len(candidates) if candidates is not None else train.n_items
    aggregates = {name: float(values.mean()) for name, values in per_user.items()}
    for k in ks:
        aggregates[f"coverage@{k}"] = coverage(top, k, n_candidates)
        per_user[f"novelty@{k}"] = novelty(top, k, train)
        aggregates[f"novelty@{k}"] = float(per_user[f"novelty@{k}"].mean())
        aggregates[f"satisfaction@{k}"] = satisfaction(top, k, users, test)
        if item_vectors is not None:
            per_user[f"ild@{k}"] = intra_list_diversity(top, k, item_vectors)
            aggregates[f"ild@{k}"] = float(per_user[f"ild@{k}"].mean())
    aggregates["users"] = float(len(users))
    return aggregates, per_user
