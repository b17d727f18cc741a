"""The fusion model on small synthetic data: masking, fusion strategies, cold start, alignment,
training, checkpoints, determinism and the evaluation adapter. Every test runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prism.errors import CheckpointError
from prism.evals.baselines import RandomScores
from prism.evals.crossmodal import retrieval_recall
from prism.evals.fusion_grid import DEFAULT_GRID, aligned_retrieval, fusion_factory, fusion_models
from prism.evals.suite import Suite, run_protocol
from prism.fusion.features import ItemFeatures
from prism.fusion.model import FUSIONS, FusionConfig, FusionModel, ItemInputs, build_history
from prism.fusion.recommender import FusionRecommender
from prism.fusion.train import FusionTrainConfig, load_checkpoint, resolve_device, train_fusion
from prism.ranking import splits
from prism.ranking.interactions import Interactions
from prism.ranking.protocol import evaluate_on, validator

DIMS = {"text": 16, "image": 24}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def latent_items(n: int, k: int = 6, noise: float = 0.1, missing: float = 0.15, seed: int = 0):
    """Items whose text and image are linear maps of a shared latent ``z`` (plus noise); each
    modality missing with probability ``missing`` (zero row, False mask)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k))
    text = (z @ rng.normal(size=(k, DIMS["text"])) + noise * rng.normal(size=(n, DIMS["text"]))).astype(np.float32)
    image = (z @ rng.normal(size=(k, DIMS["image"])) + noise * rng.normal(size=(n, DIMS["image"]))).astype(np.float32)
    text_mask, image_mask = rng.random(n) >= missing, rng.random(n) >= missing
    text[~text_mask], image[~image_mask] = 0.0, 0.0
    return z, text, text_mask, image, image_mask


def content_interactions(n_users: int = 120, n_items: int = 150, per_user: int = 20, seed: int = 0):
    """Users whose choices are decided by content alone: each has a taste vector over the items'
    latent, and picks ``per_user`` items with probability ∝ exp(3 · taste·z)."""
    z, text, text_mask, image, image_mask = latent_items(n_items, seed=seed)
    rng = np.random.default_rng(seed + 1)
    taste = rng.normal(size=(n_users, z.shape[1]))
    users, items = [], []
    for u in range(n_users):
        s = 3 * (z @ taste[u]) / np.sqrt(z.shape[1])
        p = np.exp(s - s.max())
        users += [u] * per_user
        items += rng.choice(n_items, per_user, replace=False, p=p / p.sum()).tolist()
    n = len(users)
    data = Interactions(np.array(users), np.array(items), np.ones(n, np.float32), rng.permutation(n).astype(np.int64),
                        [f"u{u}" for u in range(n_users)], [f"i{i}" for i in range(n_items)])
    return data, ItemFeatures(data.item_ids, {"text": text, "image": image}, {"text": text_mask, "image": image_mask})


def inputs_of(features: ItemFeatures) -> ItemInputs:
    return ItemInputs.from_numpy({"text": features.text, "image": features.image},
                                 {"text": features.text_mask, "image": features.image_mask})


def small_config(fusion: str = "attention", **kw) -> FusionConfig:
    return FusionConfig(**{"dims": DIMS, "fusion": fusion, "d_model": 16, "n_heads": 4, "max_history": 8, **kw})


def tiny_batch(n_items: int = 12, n_users: int = 5, seed: int = 0):
    """Inputs where item 0 has no modality, 1 only text, 2 only image; histories fill all slots
    except user 0 (empty) and user 1 (three items)."""
    _, text, text_mask, image, image_mask = latent_items(n_items, missing=0.0, seed=seed)
    text_mask[[0, 2]] = False
    image_mask[[0, 1]] = False
    inputs = ItemInputs.from_numpy({"text": text, "image": image}, {"text": text_mask, "image": image_mask})
    rng = np.random.default_rng(seed)
    history = torch.from_numpy(rng.integers(0, n_items, size=(n_users, 8)))
    mask = torch.ones(n_users, 8, dtype=torch.bool)
    mask[0], mask[1, 3:] = False, False
    return inputs, history, mask


@pytest.mark.parametrize("fusion", FUSIONS)
def test_a_masked_modality_changes_nothing_even_nan(fusion):
    torch.manual_seed(0)
    model = FusionModel(small_config(fusion)).eval()
    inputs, history, mask = tiny_batch()
    before = model(inputs, history, mask)
    # Garbage (huge values, NaN) in every masked row: outputs must be bit-identical.
    features = {m: x.clone() for m, x in inputs.features.items()}
    for m, x in features.items():
        missing = ~inputs.masks[m]
        x[missing] = torch.randn(int(missing.sum()), x.shape[1]) * 1e4
        x[missing, 0] = float("nan")
    after = model(ItemInputs(features, inputs.masks), history, mask)
    for a, b in [(before.scores, after.scores), (before.items.vectors, after.items.vectors),
                 (before.items.tokens, after.items.tokens), (before.items.weights, after.items.weights),
                 (before.users.attention, after.users.attention)]:
        assert torch.equal(a, b)
    # A present input does matter (the check above can fail).
    features["text"][3] += 1.0
    changed = model(ItemInputs(features, inputs.masks), history, mask)
    assert not torch.equal(changed.items.vectors[3], before.items.vectors[3])
    # Training with NaN in masked rows still gives finite gradients.
    model.train()
    out = model(ItemInputs(features, inputs.masks), history, mask)
    (out.scores.sum() + model.alignment_loss(out.items.tokens, out.items.mask)).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_each_fusion_runs_forward_backward_and_its_weights_are_shares(fusion):
    torch.manual_seed(0)
    model = FusionModel(small_config(fusion, use_item_id=True, use_user_id=True, n_items=12, n_users=5))
    inputs, history, mask = tiny_batch()
    out = model(inputs, history, mask, users=torch.arange(5))
    assert out.scores.shape == (5, 12) and out.items.vectors.shape == (12, 16)
    assert out.items.tokens.shape == (12, 2, 16) and out.items.weights.shape == (12, 2)
    loss = model.recommendation_loss(out.users.vectors, out.items.vectors[:5], torch.arange(5)) \
        + model.alignment_loss(out.items.tokens, out.items.mask)
    loss.backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # Every parameter (zero-initialised id embeddings, the empty vector, recency logits) learns.
    assert no_grad == []
    weights, present = out.items.weights, out.items.mask
    assert torch.all(weights[~present] == 0)
    assert torch.allclose(weights[1:].sum(1), torch.ones(11), atol=1e-5)
    assert weights[0].sum() == 0  # no modality: the learned empty vector, no weights
    assert weights[1].tolist() == [1.0, 0.0] and weights[2].tolist() == [0.0, 1.0]
    attention = out.users.attention
    assert torch.all(attention[~mask] == 0) and attention[0].sum() == 0
    assert torch.allclose(attention[1:].sum(1), torch.ones(4), atol=1e-5)


def test_items_without_any_modality_get_the_empty_vector():
    model = FusionModel(small_config("gated")).eval()
    inputs, history, mask = tiny_batch()
    vectors = model.encode_items(inputs).vectors
    assert torch.equal(vectors[0], model.empty.detach())
    assert not torch.equal(vectors[1], model.empty.detach())


def test_cold_items_are_scored_from_content_without_id_embeddings():
    data, features = content_interactions(n_users=60, n_items=80, per_user=12)
    cold = np.arange(70, 80)
    train = data.subset(~np.isin(data.items, cold))
    config = small_config("attention", use_item_id=True)
    model, _ = train_fusion(config, inputs_of(features), train,
                            train_config=FusionTrainConfig(max_epochs=2, batch_size=256))
    # Never trained: their id rows are still exactly zero (AdamW decay is decoupled).
    assert torch.all(model.item_id.weight[torch.from_numpy(cold)] == 0)
    assert torch.any(model.item_id.weight[:70] != 0)
    history, mask = build_history(train.users, train.items, train.times, data.n_users, config.max_history)
    scores = model(inputs_of(features), history, mask).scores.detach()
    assert torch.isfinite(scores[:, cold]).all()
    # The cold scores come from content: other content, other scores.
    changed = {m: x.clone() for m, x in inputs_of(features).features.items()}
    changed["text"][cold] = torch.randn(len(cold), DIMS["text"])
    changed["image"][cold] = torch.randn(len(cold), DIMS["image"])
    rescored = model(ItemInputs(changed, inputs_of(features).masks), history, mask).scores.detach()
    present = torch.from_numpy(features.text_mask[cold] | features.image_mask[cold])
    assert not torch.allclose(rescored[:, cold][:, present], scores[:, cold][:, present])
    assert torch.equal(rescored[:, :70], scores[:, :70])


def test_infonce_aligns_text_and_image_so_retrieval_beats_chance():
    torch.manual_seed(0)
    _, text, _, image, _ = latent_items(300, k=8, noise=0.05, missing=0.0)
    both = np.ones(300, dtype=bool)
    inputs = ItemInputs.from_numpy({"text": text, "image": image}, {"text": both, "image": both})
    train_rows, test_rows = torch.arange(200), torch.arange(200, 300)
    model = FusionModel(small_config("weighted", dropout=0.0, d_model=32))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        encoded = model.encode_items(inputs.take(train_rows))
        loss = model.alignment_loss(encoded.tokens, encoded.mask)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    with torch.no_grad():
        tokens = model.encode_items(inputs.take(test_rows)).tokens
    text_to_image = retrieval_recall(tokens[:, 0].numpy(), tokens[:, 1].numpy())
    image_to_text = retrieval_recall(tokens[:, 1].numpy(), tokens[:, 0].numpy())
    # 100 held-out items: chance recall@1 is 0.01, recall@10 is 0.1.
    assert text_to_image["recall@1"] > 0.2 and image_to_text["recall@1"] > 0.2
    assert text_to_image["recall@10"] > 0.5


@pytest.mark.parametrize("loss", ["softmax", "bpr"])
def test_short_training_on_content_driven_interactions_beats_random(loss):
    data, features = content_interactions()
    split = splits.leave_last_one(data)
    validate = validator(split)
    model = FusionRecommender(features, "attention", ("text", "image"),
                              {"d_model": 16, "max_history": 10, "loss": loss},
                              FusionTrainConfig(max_epochs=8, batch_size=256, patience=2))
    model.fit(split.train, validate)
    random = RandomScores(0).fit(split.train)
    assert model.info["best_epoch"] is not None and len(model.info["val_ndcg@20"]) >= 1
    assert max(v for _, v in model.info["val_ndcg@20"]) == pytest.approx(validate(model))  # best state restored
    ours, _, _ = evaluate_on(model, split)
    chance, _, _ = evaluate_on(random, split)
    assert ours["ndcg@20"] > 2 * chance["ndcg@20"] and ours["ndcg@20"] > 0.1


def trained(fusion: str = "gated", seed: int = 0, **overrides):
    data, features = content_interactions(n_users=50, n_items=60, per_user=10)
    model = FusionRecommender(features, fusion, ("text", "image"), {"d_model": 16, "max_history": 6, **overrides},
                              FusionTrainConfig(max_epochs=2, batch_size=128, seed=seed))
    return model.fit(data), data, features


def test_checkpoint_round_trip_gives_identical_scores(tmp_path):
    model, data, features = trained(use_item_id=True, use_user_id=True)
    path = model.save(tmp_path / "fusion.pt")
    loaded = load_checkpoint(path)
    assert loaded.config == model.model.config and loaded.data_hash == model.info["data_hash"]
    assert loaded.metrics["epochs"] == 2 and "torch" in loaded.versions
    history, mask = model.history
    users = torch.arange(data.n_users)
    with torch.no_grad():
        again = loaded.model(inputs_of(features), history, mask, users).scores
        original = model.model.eval()(inputs_of(features), history, mask, users).scores
    assert torch.equal(again, original)
    assert np.allclose(model.score(np.arange(data.n_users)), again.numpy(), atol=1e-5)


def test_bad_checkpoints_give_clear_errors(tmp_path):
    model, _, _ = trained()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    good = model.save(tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt is unreadable"):
        load_checkpoint(tmp_path / "truncated.pt")
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "noise.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a Prism fusion checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    payload["config"]["d_model"] = 32
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="does not match its config"):
        load_checkpoint(tmp_path / "mismatch.pt")


def test_training_is_deterministic_for_a_seed():
    first, _, _ = trained(seed=3)
    second, _, _ = trained(seed=3)
    other, _, _ = trained(seed=4)
    a, b, c = (m.model.state_dict() for m in (first, second, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert np.array_equal(first.score(np.arange(5)), second.score(np.arange(5)))


def test_explanations_add_up_to_the_score():
    model, data, _ = trained("attention", use_user_id=True)
    user = int(data.users[0])
    items = [0, 5, 17]
    scores = model.score(np.array([user]))[0]
    history_items = set(model.history[0][user][model.history[1][user]].tolist())
    everything = model.explain(user, items, top_history=20)
    top_two = model.explain(user, items, top_history=2)
    for e, short in zip(everything, top_two):
        assert e.score == pytest.approx(float(scores[e.item]), abs=1e-4)
        assert e.others == pytest.approx(0.0, abs=1e-6) and len(e.history) == len(history_items) > 2
        assert e.rest + sum(c for _, c, _ in e.history) == pytest.approx(e.score, abs=1e-4)
        assert short.history == e.history[:2]
        assert short.rest + short.others + sum(c for _, c, _ in short.history) == pytest.approx(e.score, abs=1e-4)
        assert {h for h, _, _ in e.history} <= history_items
        assert [c for _, c, _ in e.history] == sorted((c for _, c, _ in e.history), reverse=True)
        assert sum(e.modalities.values()) == pytest.approx(1.0, abs=1e-5) or sum(e.modalities.values()) == 0


def test_config_validation_and_devices():
    with pytest.raises(ValueError, match="fusion must be one of"):
        FusionConfig(fusion="sum")
    with pytest.raises(ValueError, match="no input dimension"):
        FusionConfig(modalities=("text", "audio"))
    with pytest.raises(ValueError, match="unknown fields"):
        FusionConfig.from_dict({"d_model": 8, "colour": "red"})
    config = small_config("concat", use_item_id=True, n_items=4)
    assert FusionConfig.from_dict(config.to_dict()) == config
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            resolve_device("cuda")


def test_history_is_most_recent_first_and_padded():
    users, items, times = np.array([0, 0, 0, 2]), np.array([5, 6, 7, 1]), np.array([10, 30, 20, 5])
    history, mask = build_history(users, items, times, n_users=3, max_history=2)
    assert history[0].tolist() == [6, 7] and mask[0].tolist() == [True, True]
    assert mask[1].tolist() == [False, False]
    assert history[2, 0] == 1 and mask[2].tolist() == [True, False]


def test_the_suite_runs_a_chosen_subset_and_aligned_retrieval_reports_both_models():
    data, features = content_interactions(n_users=80, n_items=200, per_user=15)
    assert len(fusion_models(features, 0, Suite("x", (), (None,), (0,), max_epochs=1))) == len(DEFAULT_GRID) == 12
    factory = fusion_factory([("gated", ("text", "image"))], {"d_model": 16, "max_history": 10, "align_weight": 1.0},
                             FusionTrainConfig(max_epochs=6, batch_size=256))
    suite = Suite("tiny", ("cold_items",), (None,), (0,), max_epochs=6, bootstrap_samples=50, cold_frac=0.3)
    lines = []
    result = run_protocol("cold_items", data, features, suite, [factory], lines.append)
    entry = result["models"]["Prism-gated-text+image"]
    assert 0 < entry["mean"]["ndcg@20"] <= 1 and entry["efficiency"]["seconds_per_epoch"] > 0
    assert lines and lines[0].startswith("cold_items: Prism-gated-text+image seed 0")
    # Retrieval among the held-out (never trained on) items, aligned vs align_weight = 0.
    split = splits.cold_items(data, suite.cold_frac, 0)
    model = factory(features, 0, suite)[0].fit(split.train, validator(split))
    retrieval = aligned_retrieval(model, features, split.held_out_items)
    aligned, unaligned = retrieval["aligned"], retrieval["unaligned (align_weight=0)"]
    n = aligned["text_to_image"]["n"]
    assert n >= 30 and n == unaligned["text_to_image"]["n"]
    for direction in ("text_to_image", "image_to_text"):
        assert aligned[direction]["recall@1"] > 5 / n  # chance is 1 / n
        assert aligned[direction]["mrr"] > 2 * unaligned[direction]["mrr"]
