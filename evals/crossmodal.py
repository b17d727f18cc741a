"""Cross-modal retrieval: does an item's text find its own poster, and its poster its text?

``retrieval_recall`` takes two row-aligned matrices already in one space. Raw text (384-d)
and image (1280-d) vectors are not in one space, so the baseline here is a ridge-regression
map fitted on training items; the fusion model's aligned space plugs into the same function.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval_recall(queries: np.ndarray, gallery: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Row i of ``queries`` should retrieve row i of ``gallery`` (cosine). Recall@K and MRR."""
    if queries.shape[0] != gallery.shape[0]:
        raise ValueError(f"queries ({queries.shape[0]}) and gallery ({gallery.shape[0]}) must be row-aligned")
    sims = _unit(queries) @ _unit(gallery).T
    own = np.diag(sims)
    rank = (sims > own[:, None]).sum(axis=1)  # 0 = retrieved first
    out = {f"recall@{k}": float((rank < k).mean()) for k in ks}
    out["mrr"] = float((1.0 / (rank + 1)).mean())
    out["chance@10"] = min(1.0, 10 / len(rank))
    out["n"] = float(len(rank))
    return out


def ridge_map(x: np.ndarray, y: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """W minimising ||unit(x) W - unit(y)||² + lam ||W||² (closed form)."""
    x, y = _unit(x), _unit(y)
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)


def ridge_baseline(text: np.ndarray, image: np.ndarray, train_rows: np.ndarray, test_rows: np.ndarray,
                   ks: Sequence[int] = (1, 5, 10), lam: float = 1.0) -> dict[str, dict[str, float]]:
    """Text→poster and poster→text retrieval among the test items through ridge maps fitted on
    the train items."""
    to_image = ridge_map(text[train_rows], image[train_rows], lam)
    to_text = ridge_map(image[train_rows], text[train_rows], lam)
    return {
        "text_to_image": retrieval_recall(_unit(text[test_rows]) @ to_image, image[test_rows], ks),
        "image_to_text": retrieval_recall(_unit(image[test_rows]) @ to_text, text[test_rows], ks),
    }
