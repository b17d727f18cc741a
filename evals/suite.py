"""One reproducible evaluation run: data → splits → models → metrics → JSON, Markdown, plots.

A suite names the protocols, rating variants, seeds and training budget. Models are fitted
on train, selected on validation (early stopping, hyperparameters) and scored once on test;
the leakage guard runs before any test number is computed. Extra model factories (the
fusion model of a later issue) plug in through ``extra_models``.
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version
from pathlib import Path

import numpy as np

from prism.errors import InputError
from prism.evals.baselines import (
    BPRMF,
    ContentKNN,
    ItemKNN,
    LightGCN,
    Popularity,
    RandomScores,
    Recommender,
    TrainConfig,
)
from prism.evals.crossmodal import ridge_baseline
from prism.evals.fusion_grid import aligned_retrieval, fusion_factory, served_factory
from prism.evals.mmrec_export import write_mmrec
from prism.evals.peers import peer_models, peers_available
from prism.evals.report import write_report
from prism.evals.significance import paired_bootstrap
from prism.fusion.features import ItemFeatures, catalog_order, stored_item_features
from prism.fusion.recommender import FusionRecommender
from prism.fusion.train import FusionTrainConfig
from prism.ranking import splits
from prism.ranking.interactions import Interactions, read_ratings, restrict_items
from prism.ranking.protocol import evaluate_on, validator
from prism.service import PrismService
from prism.weights import sha256_file

ModelFactory = Callable[[ItemFeatures, int, "Suite"], list[Recommender]]


@dataclass(frozen=True)
class Suite:
    name: str
    protocols: tuple[str, ...]
    rating_variants: tuple[float | None, ...]  # None = every rating is an interaction
    seeds: tuple[int, ...]
    max_epochs: int
    bootstrap_samples: int = 2000
    cold_frac: float = 0.2
    significance_metric: str = "ndcg@20"
    # Prism fusion models run beside the baselines: (fusion strategy, modalities) pairs.
    fusion_grid: tuple[tuple[str, tuple[str, ...]], ...] = ()
    fusion_epochs: int = 30
    baselines: bool = True
    # The served ranker (prism.fusion.hybrid: collaborative + content), as `prism train` builds it.
    served: bool = False
    # Peer recommenders from Cornac (evals.peers), when it is installed.
    peers: bool = False


FUSION_GRID = tuple((f, m) for f in ("concat", "weighted", "attention", "gated")
                    for m in (("text",), ("image",), ("text", "image")))

MODALITY_GRID = tuple(("attention", m) for m in (("text", "image"), ("text", "image", "meta"),
                                                  ("text", "image", "caption", "meta")))

SUITES = {
    "small": Suite("small", ("leave_last_one", "cold_items"), (None,), (0,), max_epochs=20, bootstrap_samples=500,
                   fusion_grid=(("attention", ("text", "image")),), fusion_epochs=3),
    "full": Suite("full", ("leave_last_one", "temporal", "cold_items"), (None, 4.0), (0, 1, 2), max_epochs=300,
                  served=True, peers=True),
    # The fusion model's table: every strategy × modality set against every baseline, warm and cold.
    "fusion": Suite("fusion", ("leave_last_one", "cold_items"), (None,), (0, 1, 2), max_epochs=300,
                    fusion_grid=FUSION_GRID, served=True, peers=True),
    # Which modalities the served model fuses: text+image, + hashed metadata, + poster captions.
    "modalities": Suite("modalities", ("leave_last_one", "cold_items"), (None,), (0,), max_epochs=300,
                        fusion_grid=MODALITY_GRID, baselines=False),
}

ITERATIVE = {"BPR-MF", "LightGCN", "Cornac-BPR", "Cornac-VBPR"}


def is_iterative(model_name: str) -> bool:
    """Models whose result depends on the seed (trained from a random start)."""
    return model_name in ITERATIVE or model_name.startswith("Prism-")


def baseline_models(features: ItemFeatures, seed: int, suite: Suite) -> list[Recommender]:
    config = TrainConfig(seed=seed, max_epochs=suite.max_epochs)
    return [
        Popularity(), RandomScores(seed), ItemKNN(), BPRMF(config), LightGCN(TrainConfig(**{**asdict(config), "history": []})),
        ContentKNN(features.text, "text"), ContentKNN(features.image, "image"), ContentKNN(features.both(), "text+image"),
    ]


def fusion_factories(suite: Suite) -> list[ModelFactory]:
    """The suite's Prism models: its fusion grid, and the served ranker when ``suite.served``."""
    config = FusionTrainConfig(max_epochs=suite.fusion_epochs)
    return ([fusion_factory(suite.fusion_grid, train_config=config)] if suite.fusion_grid else []) + (
        [served_factory(train_config=config)] if suite.served else [])


def make_split(protocol: str, data: Interactions, suite: Suite, seed: int) -> splits.Split:
    if protocol == "leave_last_one":
        return splits.leave_last_one(data)
    if protocol == "temporal":
        return splits.temporal(data)
    if protocol == "cold_items":
        return splits.cold_items(data, suite.cold_frac, seed)
    raise ValueError(f"unknown protocol '{protocol}'")


def _inference_ms_per_user(model: Recommender, users: np.ndarray) -> float:
    sample = users[: min(256, len(users))]
    started = time.perf_counter()
    model.score(sample)
    return 1000 * (time.perf_counter() - started) / max(len(sample), 1)


def run_protocol(name: str, data: Interactions, features: ItemFeatures, suite: Suite,
                 factories: list[ModelFactory], log: Callable[[str], None]) -> dict:
    """Every model × seed on one protocol: aggregates (mean and std over seeds), efficiency,
    significance of the best model against each other model."""
    results: dict[str, dict] = {}
    per_user: dict[str, list[np.ndarray]] = {}
    for seed in suite.seeds:
        split = make_split(name, data, suite, seed)
        splits.check_split(split)
        validate = validator(split)
        for factory in factories:
            for model in factory(features, seed, suite):
                if seed != suite.seeds[0] and not is_iterative(model.name) and name != "cold_items":
                    continue  # deterministic models give the same numbers for every seed
                started = time.perf_counter()
                model.fit(split.train, validate)
                fit_seconds = time.perf_counter() - started
                aggregates, users_metrics, users = evaluate_on(model, split, features.both())
                entry = results.setdefault(model.name, {"runs": [], "efficiency": {}})
                entry["runs"].append({"seed": seed, **aggregates})
                entry["efficiency"] = {
                    "fit_seconds": fit_seconds,
                    "inference_ms_per_user": _inference_ms_per_user(model, users),
                    "parameters": model.n_parameters(),
                    **{k: v for k, v in model.info.items() if k in ("epochs", "best_epoch", "seconds_per_epoch", "k")},
                }
                per_user.setdefault(model.name, []).append(users_metrics[suite.significance_metric])
                log(f"{name}: {model.name} seed {seed}: ndcg@20 {aggregates['ndcg@20']:.4f} "
                    f"recall@20 {aggregates['recall@20']:.4f} ({fit_seconds:.1f}s)")
        split_info = {"train": len(split.train), "val": len(split.val), "test": len(split.test),
                      "test_users": int(len(np.unique(split.test.users))), **split.params}
        split_info.pop("val_candidates", None)
    for entry in results.values():
        runs = entry["runs"]
        keys = [k for k in runs[0] if k != "seed"]
        entry["mean"] = {k: float(np.nanmean([r[k] for r in runs])) for k in keys}
        entry["std"] = {k: float(np.nanstd([r[k] for r in runs])) for k in keys}
    metric = suite.significance_metric
    best = max(results, key=lambda m: results[m]["mean"][metric])
    significance = {}
    # Cold-start splits differ by seed (different held-out items), so users pair up only
    # within seed 0; elsewhere the split is fixed and per-user values are averaged over seeds.
    def paired(values: list[np.ndarray]) -> np.ndarray:
        return values[0] if name == "cold_items" else np.mean(values, axis=0)

    for other, values in per_user.items():
        if other != best:
            significance[other] = paired_bootstrap(paired(per_user[best]), paired(values), suite.bootstrap_samples)
    return {"split": split_info, "models": results, "best": best,
            "significance": {"metric": metric, "vs": significance}}


def robustness(data: Interactions, features: ItemFeatures, suite: Suite) -> dict:
    """NDCG@20 of the text+image content model when a modality is dropped or noised at test time."""
    split = splits.leave_last_one(data)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, features.image[features.image_mask].std(), features.image.shape).astype(np.float32)
    variants = {
        "text+image": features.both(),
        "image dropped": features.with_modality("image", np.zeros_like(features.image),
                                                features.image_mask & False).both(),
        "text dropped": features.with_modality("text", np.zeros_like(features.text), features.text_mask & False).both(),
        "image noised (σ = feature std)": features.with_modality("image", features.image + noise,
                                                                 features.image_mask).both(),
    }
    out = {}
    for label, vectors in variants.items():
        model = ContentKNN(vectors, "text+image").fit(split.train)
        aggregates, _, _ = evaluate_on(model, split)
        out[label] = {"ndcg@20": aggregates["ndcg@20"], "recall@20": aggregates["recall@20"]}
    base = out["text+image"]["ndcg@20"]
    for label in out:
        out[label]["delta_ndcg@20"] = out[label]["ndcg@20"] - base
    return out


def cross_modal(data: Interactions, features: ItemFeatures, suite: Suite, seed: int = 0) -> dict:
    """Text↔poster retrieval among the cold-start protocol's held-out items, which no model
    trained on: ridge maps fitted on the other items, and, when the suite has a text+image
    fusion model, its aligned token space against the same model trained without InfoNCE."""
    split = splits.cold_items(data, suite.cold_frac, seed)
    both = features.text_mask & features.image_mask
    held = np.zeros(len(both), dtype=bool)
    held[split.held_out_items] = True
    out = {"ridge (unaligned baseline)": ridge_baseline(features.text, features.image,
                                                        np.flatnonzero(both & ~held), np.flatnonzero(both & held))}
    multimodal = [(f, m) for f, m in suite.fusion_grid if set(m) == {"text", "image"}]
    if multimodal:
        fusion = "attention" if ("attention", ("text", "image")) in multimodal else multimodal[0][0]
        model = FusionRecommender(features, fusion, ("text", "image"),
                                  train_config=FusionTrainConfig(max_epochs=suite.fusion_epochs, seed=seed))
        model.fit(split.train, validator(split))
        for label, result in aligned_retrieval(model, features, split.held_out_items).items():
            out[f"{model.name} {label}"] = result
    return out


def export_split(service: PrismService, protocol: str, ratings_path: Path, out_dir: Path,
                 min_rating: float | None = None, seed: int = 0) -> dict[str, str]:
    """Write ``protocol``'s split of the ingested catalog's interactions in MMRec's format."""
    catalog_ids = catalog_order(service.store.all_item_ids())
    data = read_ratings(ratings_path)
    if min_rating is not None:
        data = data.subset(data.ratings >= min_rating)
    data, _ = restrict_items(data, catalog_ids)
    split = make_split(protocol, data, SUITES["full"], seed)
    splits.check_split(split)
    features = stored_item_features(service.store, service.settings, catalog_ids)
    return write_mmrec(split, out_dir, f"prism-{protocol}", features.text, features.image)


def run_suite(service: PrismService, suite: Suite, ratings_path: Path, out_dir: Path,
              extra_models: list[ModelFactory] | None = None, log: Callable[[str], None] = print) -> dict:
    """Run ``suite`` on the ratings at ``ratings_path`` and the items ingested in ``service``'s
    store; write ``results.json``, ``report.md`` and plots to ``out_dir``; return the results."""
    started = time.perf_counter()
    catalog_ids = catalog_order(service.store.all_item_ids())
    all_ratings = read_ratings(ratings_path)
    results: dict = {"suite": asdict(suite), "protocols": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    features = stored_item_features(service.store, service.settings, catalog_ids)
    factories = [*([baseline_models] if suite.baselines else []), *fusion_factories(suite),
                 *([peer_models] if suite.peers else []), *(extra_models or [])]
    for variant in suite.rating_variants:
        data = all_ratings if variant is None else all_ratings.subset(all_ratings.ratings >= variant)
        data, dropped = restrict_items(data, catalog_ids)
        label = "all ratings" if variant is None else f"ratings >= {variant:g}"
        log(f"{label}: {len(data)} interactions on {data.n_items} catalog items ({dropped} dropped: item not ingested)")
        for protocol in suite.protocols:
            results["protocols"][f"{protocol} ({label})"] = run_protocol(protocol, data, features, suite, factories, log)
    base, _ = restrict_items(all_ratings, catalog_ids)
    results["robustness"] = robustness(base, features, suite)
    results["cross_modal"] = cross_modal(base, features, suite)
    results["data"] = {
        "ratings": str(ratings_path), "ratings_sha256": sha256_file(ratings_path),
        "catalog_items": len(catalog_ids), "items_with_text": int(features.text_mask.sum()),
        "items_with_image": int(features.image_mask.sum()),
        "items_with": {m: int(mask.sum()) for m, mask in features.masks.items()},
        "features_sha256": hashlib.sha256(b"".join(features.arrays[m].tobytes()
                                                   for m in sorted(features.arrays))).hexdigest(),
        "store": str(service.settings.home),
    }
    results["versions"] = {p: version(p) for p in ("prism-recommender", "torch", "numpy", "chromadb")}
    results["peers"] = {"requested": suite.peers, "cornac": version("cornac") if peers_available() else None,
                        "ran": sorted({m for p in results["protocols"].values() for m in p["models"]
                                       if m.startswith("Cornac-")})}
    results["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
    results["wall_seconds"] = time.perf_counter() - started
    write_report(results, Path(out_dir))
    return results


def evaluate_suite(service: PrismService, suite: str, ratings: Path | None = None, out_dir: Path | None = None,
                   log: Callable[[str], None] = print, seeds: tuple[int, ...] | None = None) -> dict:
    """``prism eval``: run the suite named ``suite`` on the items in ``service``'s store; writes
    results.json, report.md and plots to ``out_dir`` (default home/evals/<suite>). ``seeds``
    replaces the suite's seeds (fewer seeds, a shorter run)."""
    if suite not in SUITES:
        raise InputError(f"unknown evaluation suite '{suite}'; choose one of {', '.join(SUITES)}")
    settings = service.settings
    ratings = Path(ratings or settings.movielens_dir / "ratings.tsv")
    out_dir = Path(out_dir or settings.home / "evals" / suite)
    if service.store.count_items() == 0:
        raise InputError(f"the store at {settings.home} holds no items: run `prism ingest` first")
    if seeds is not None and not seeds:
        raise InputError("seeds must name at least one seed")
    chosen = SUITES[suite] if seeds is None else replace(SUITES[suite], seeds=tuple(seeds))
    return run_suite(service, chosen, ratings, out_dir, log=log)


def export_mmrec(service: PrismService, protocol: str, out_dir: Path, ratings: Path | None = None) -> dict[str, str]:
    """``prism eval --export-mmrec``: a split of the ingested catalog's interactions plus item
    features, in MMRec's format."""
    return export_split(service, protocol, Path(ratings or service.settings.movielens_dir / "ratings.tsv"),
                        Path(out_dir))
