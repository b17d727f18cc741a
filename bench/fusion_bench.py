"""Fusion model benchmark: prints one JSON object.

On a synthetic data set of MovieLens-100K size (943 users, 1,682 items, ~80k interactions;
384-d text and 1280-d non-negative "image" features, ~10% of each missing), for each fusion
strategy (text+image): training seconds per epoch and inference latency per 1,000 items
(fused item vectors for the whole catalog + user vectors + scores for every user), on the
device picked by ``--device``. BPR-MF from ``evals.baselines`` is trained on the same rows in
the same run as the baseline. NDCG@20 on a leave-last-one split after the few epochs is a
sanity check that the models learn, not a tuned result.

Usage: python bench/fusion_bench.py [--device auto|cpu|cuda] [--epochs N] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from prism.evals.baselines import BPRMF, TrainConfig
from prism.fusion.model import FUSIONS, FusionConfig, ItemInputs, build_history
from prism.fusion.train import FusionTrainConfig, autocast, resolve_device, train_fusion
from prism.ranking import splits
from prism.ranking.interactions import Interactions
from prism.ranking.protocol import evaluate_on


def synthetic(n_users: int = 943, n_items: int = 1682, mean_per_user: int = 85, seed: int = 0):
    """Interactions driven by a 16-d item latent and a popularity term; text and image are
    noisy linear maps of the latent (image through a ReLU, like CNN features)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_items, 16))
    text = z @ rng.normal(size=(16, 384)) + rng.normal(size=(n_items, 384))
    image = np.maximum(z @ rng.normal(size=(16, 1280)) + rng.normal(size=(n_items, 1280)), 0)
    masks = {"text": rng.random(n_items) >= 0.1, "image": rng.random(n_items) >= 0.1}
    features = {"text": text.astype(np.float32), "image": image.astype(np.float32)}
    for name in features:
        features[name][~masks[name]] = 0.0
    counts = np.minimum(20 + rng.geometric(1 / (mean_per_user - 19), size=n_users), n_items // 2)
    taste = rng.normal(size=(n_users, 16)) / 4
    popularity = rng.normal(size=n_items)
    utility = taste @ z.T + popularity + rng.gumbel(size=(n_users, n_items))  # Gumbel top-k = sampling
    ranked = np.argsort(-utility, axis=1)
    users = np.repeat(np.arange(n_users), counts)
    items = np.concatenate([ranked[u, :c] for u, c in enumerate(counts)])
    times = rng.permutation(len(users)).astype(np.int64)
    data = Interactions(users, items, np.ones(len(users), np.float32), times,
                        [str(u) for u in range(n_users)], [str(i) for i in range(n_items)])
    return data, ItemInputs.from_numpy(features, masks)


class _Scores:
    """The minimum evaluate_on needs: name, fitted_on, score."""

    def __init__(self, name: str, fitted_on: str, scores: np.ndarray) -> None:
        self.name, self.fitted_on, self.scores = name, fitted_on, scores

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.scores[users]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def inference(model, inputs: ItemInputs, history: torch.Tensor, mask: torch.Tensor, device: torch.device,
              repeats: int = 5) -> tuple[dict, np.ndarray]:
    """Median ms to encode the catalog, and to encode every user and score the catalog for them."""
    inputs, history, mask = inputs.to(device), history.to(device), mask.to(device)
    encode, score = [], []
    for _ in range(repeats + 1):  # the first run warms up
        _sync(device)
        t0 = time.perf_counter()
        with autocast(device):
            items = model.encode_items(inputs).vectors
            _sync(device)
            t1 = time.perf_counter()
            users = model.encode_users(items, history, mask).vectors
            scores = model.score(users, items)
        _sync(device)
        t2 = time.perf_counter()
        encode.append(1000 * (t1 - t0))
        score.append(1000 * (t2 - t1))
    encode_ms, score_ms = float(np.median(encode[1:])), float(np.median(score[1:]))
    per_1000 = 1000 / len(inputs)
    return {"encode_items_ms": round(encode_ms, 2), "users_and_scores_ms": round(score_ms, 2),
            "ms_per_1000_items": round((encode_ms + score_ms) * per_1000, 2)}, scores.float().cpu().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    started = time.perf_counter()
    data, inputs = synthetic()
    split = splits.leave_last_one(data)
    train = split.train
    history, mask = build_history(train.users, train.items, train.times, train.n_users, 50)
    out: dict = {
        "data": {"users": data.n_users, "items": data.n_items, "interactions": len(data), "train": len(train),
                 "text_missing": float(1 - inputs.masks["text"].float().mean()),
                 "image_missing": float(1 - inputs.masks["image"].float().mean()), "synthetic": True},
        "device": str(device), "torch_threads": torch.get_num_threads(), "epochs": args.epochs,
        "batch_size": args.batch_size, "models": {},
    }
    for fusion in FUSIONS:
        config = FusionConfig(modalities=("text", "image"), fusion=fusion, d_model=64)
        model, info = train_fusion(config, inputs, train,
                                   train_config=FusionTrainConfig(max_epochs=args.epochs, batch_size=args.batch_size,
                                                                  device=args.device))
        latency, scores = inference(model, inputs, history, mask, device)
        quality, _, _ = evaluate_on(_Scores(fusion, train.digest(), scores), split, ks=(20,))
        out["models"][f"Prism-{fusion}-text+image"] = {
            "seconds_per_epoch": round(info["seconds_per_epoch"], 3),
            "parameters": sum(p.numel() for p in model.parameters()),
            "inference": latency, "test_ndcg@20": round(quality["ndcg@20"], 4),
            "final_loss": [round(x, 4) for x in info["loss"][-1][1:]],
        }
    bpr = BPRMF(TrainConfig(max_epochs=args.epochs, batch_size=args.batch_size, seed=0)).fit(train)
    t0 = time.perf_counter()
    bpr_scores = bpr.score(np.arange(data.n_users))
    bpr_ms = 1000 * (time.perf_counter() - t0)
    quality, _, _ = evaluate_on(_Scores("BPR-MF", train.digest(), bpr_scores), split, ks=(20,))
    out["baseline"] = {"BPR-MF": {"seconds_per_epoch": round(bpr.info["seconds_per_epoch"], 3), "device": "cpu",
                                  "users_and_scores_ms": round(bpr_ms, 2),
                                  "ms_per_1000_items": round(bpr_ms * 1000 / data.n_items, 2),
                                  "test_ndcg@20": round(quality["ndcg@20"], 4)}}
    out["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                      "torch": str(torch.__version__),
                      "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None}
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
