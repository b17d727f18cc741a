"""Training the fusion model on the store, fused vectors in Chroma, and explained recommendations:
real MovieLens items ingested into a real Chroma store, the real training path, tiny budget.

The tests of this module share one trained home and run in file order: the last two add an
item and retrain, and check what that changes."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from prism import spaces
from prism.cli import app
from prism.errors import InputError, NoCheckpointError
from prism.fusion import checkpoints
from prism.fusion.features import catalog_order, stored_item_features
from prism.fusion.train import load_checkpoint
from prism.service import PrismService
from prism.settings import Settings, get_settings
from prism.weights import sha256_file

ITEMS = 30
EPOCHS = 3
runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, movielens_dir, model_cache):
    """30 real items ingested (no checkpoint yet), a ratings file restricted to them, one training run."""
    home = tmp_path_factory.mktemp("rec-home")
    settings = Settings(home=home, model_cache_dir=model_cache, multilingual_model="none",
                        movielens_dir=movielens_dir)
    service = PrismService(settings)
    summary = service.ingest(movielens_dir, limit=ITEMS)
    assert summary.ingested == ITEMS and not summary.failed and summary.fused == 0
    ids = set(service.store.all_item_ids())
    lines = [line for line in (movielens_dir / "ratings.tsv").read_text().splitlines()
             if line.split("\t")[1] in ids]
    ratings = tmp_path_factory.mktemp("rec-data") / "ratings.tsv"
    ratings.write_text("\n".join(lines) + "\n")
    train = service.train(ratings=ratings, fusion="attention", epochs=EPOCHS, device="cpu", seed=0, name="tiny")
    by_user: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for line in lines:
        user, item, rating, ts = line.split("\t")
        by_user[user].append((item, int(rating), int(ts)))
    return {"service": service, "settings": settings, "summary": train, "ratings": ratings, "lines": lines,
            "by_user": by_user, "home": home}


@pytest.fixture(scope="module")
def user(trained) -> str:
    """A real user with a history of 6 to 15 of the ingested items (so there is plenty left to rank)."""
    candidates = sorted((u for u, rows in trained["by_user"].items() if 6 <= len(rows) <= 15), key=int)
    assert candidates
    return candidates[0]


def test_train_saves_a_checkpoint_makes_it_current_and_fills_its_fused_space(trained):
    summary, service, settings = trained["summary"], trained["service"], trained["settings"]
    assert 1 <= summary.epochs <= EPOCHS and 1 <= summary.best_epoch <= summary.epochs
    assert summary.device == "cpu" and summary.fusion == "attention" and summary.seconds_per_epoch > 0
    # Each user's latest interaction (users with >= 3) is held out for validation; the rest trains.
    held = sum(len(rows) >= 3 for rows in trained["by_user"].values())
    assert summary.validation_interactions == held > 0
    assert summary.interactions + held == len(trained["lines"])
    assert summary.best_val_ndcg20 is not None and 0 <= summary.best_val_ndcg20 <= 1
    assert dict(summary.val_ndcg20)[summary.best_epoch] == pytest.approx(summary.best_val_ndcg20)

    path = trained["home"] / "models" / "fusion" / "tiny.pt"
    assert summary.path == str(path) and path.is_file()
    checkpoint = load_checkpoint(path)
    assert checkpoint.config.fusion == "attention" and checkpoint.data_hash == summary.data_hash
    assert checkpoint.metrics["validation_interactions"] == held
    pointer = checkpoints.current(settings)
    assert pointer.name == "tiny" and pointer.sha256 == sha256_file(path)
    assert pointer.space == summary.space == spaces.fused_space(pointer.sha256).name == f"fused-{pointer.sha256[:12]}"

    # One fused vector per ingested item, equal to the checkpoint's encoding of the features the
    # evaluation reads (prism.fusion.features), i.e. serving and evaluation see the same items.
    ids = catalog_order(service.store.all_item_ids())
    assert service.store.collection(summary.space).count() == ITEMS == summary.fused_vectors
    stored = service.store.get_vectors(summary.space, [f"{i}|fused" for i in ids])
    with torch.no_grad():
        expected = checkpoint.model.encode_items(stored_item_features(service.store, service.settings, ids).inputs()).vectors.numpy()
    np.testing.assert_allclose(np.stack([stored[f"{i}|fused"] for i in ids]), expected, atol=1e-5)
    meta = service.store.collection(summary.space).get(ids=["1|fused"], include=["metadatas"])["metadatas"][0]
    assert meta["item_id"] == "1" and meta["title"] == "Toy Story (1995)"


def test_recommend_ranks_unseen_items_with_explanations(trained, user):
    service = trained["service"]
    history = {item for item, _, _ in trained["by_user"][user]}
    result = service.recommend(user, k=5)
    assert result.user_id == user and result.checkpoint == "tiny" and result.space == trained["summary"].space
    assert result.history == result.excluded == len(history)
    assert len(result.items) == 5 and result.query_weight is None
    assert not {item.item_id for item in result.items} & history
    assert [i.score for i in result.items] == sorted((i.score for i in result.items), reverse=True)
    titles = {i: r["metadata"]["title"] for i, r in service.store.get_items(sorted(history)).items()}
    for item in result.items:
        assert item.query_score is None and item.evidence == [] and item.collaborative_score is not None
        # "People who liked X also liked this": history items, their parts of the collaborative score.
        for together in item.also_liked:
            assert together.item_id in history and together.title == titles[together.item_id]
            assert 0 < together.contribution <= item.collaborative_score + 1e-6
        assert item.title == service.get_item(item.item_id)["metadata"]["title"]
        assert set(item.modalities) == {"text", "image", "caption", "meta"}  # settings.fusion_modalities
        assert min(item.modalities.values()) > 0  # every poster, caption and metadata is there
        assert sum(item.modalities.values()) == pytest.approx(1, abs=1e-4)
        assert 1 <= len(item.because) <= 3
        for contributor in item.because:
            assert contributor.item_id in history and contributor.title == titles[contributor.item_id]
        # The explanation is the score split exactly: listed history items + the others + the bias.
        total = sum(c.contribution for c in item.because) + item.history_rest + item.bias
        assert total == pytest.approx(item.user_score, abs=1e-3)
        contributions = [c.contribution for c in item.because]
        assert contributions == sorted(contributions, reverse=True)
    # The score is the hybrid of the two halves (prism.fusion.hybrid.blend over the catalog):
    # items ranked by it, and some item explained by the people who liked its user's films.
    assert any(item.also_liked for item in everything_of(service, user))
    # The whole unseen catalog, no more.
    everything = service.recommend(user, k=200)
    assert len(everything.items) == ITEMS - len(history)


def everything_of(service, user):
    return service.recommend(user, k=200).items


def test_train_serves_the_hybrid_ranker_with_its_collaborative_half(trained):
    summary, settings = trained["summary"], trained["settings"]
    pointer = checkpoints.current(settings)
    assert pointer.collaborative == str(trained["home"] / "models" / "fusion" / "tiny.collab.npz")
    assert pointer.collaborative_sha256 == sha256_file(pointer.collaborative)
    part = checkpoints.load_current(settings).collaborative
    assert part.collab.weights.shape == (ITEMS, ITEMS) and len(part.item_ids) == ITEMS
    assert set(summary.collaborative) == {"lam", "tau", "mix", "w", "k"} and summary.hybrid_val_ndcg20 is not None
    assert (part.collab.lam, part.collab.tau, part.gate) == (summary.collaborative["lam"], summary.collaborative["tau"],
                                                            (summary.collaborative["w"], summary.collaborative["k"]))


def test_a_text_query_steers_the_ranking(trained, user):
    service = trained["service"]
    base = service.recommend(user, k=200).items
    target = base[-1]  # the model's least favourite unseen item
    steered = service.recommend(user, text=target.title, k=200)
    assert steered.query_text == target.title and steered.query_weight == 0.5 and steered.rule
    ranked = [i.item_id for i in steered.items]
    assert ranked.index(target.item_id) < len(base) - 1
    hit = steered.items[ranked.index(target.item_id)]
    assert hit.query_score == pytest.approx(1.0)  # its own title is the best text match
    assert hit.evidence and hit.evidence[0].channel == "text" and hit.evidence[0].field == "document"
    assert hit.user_score == pytest.approx(target.user_score, abs=1e-5)
    for item in steered.items:
        assert 0 <= item.query_score <= 1 and 0 <= item.score <= 1
    # w = 1: the query alone decides among the unseen items; w = 0: the query changes nothing.
    only_query = PrismService(trained["settings"].model_copy(update={"recommend_query_weight": 1.0}))
    first = only_query.recommend(user, text=target.title, k=3).items[0]
    assert first.item_id == target.item_id
    no_query = PrismService(trained["settings"].model_copy(update={"recommend_query_weight": 0.0}))
    assert [i.item_id for i in no_query.recommend(user, text=target.title, k=200).items] == [i.item_id for i in base]


def test_unknown_user_and_missing_checkpoint_are_clear_errors(trained, tmp_path, model_cache):
    with pytest.raises(InputError, match="unknown user '999999'"):
        trained["service"].recommend("999999")
    with pytest.raises(InputError, match="k must be at least 1"):
        trained["service"].recommend("1", k=0)
    empty = PrismService(Settings(home=tmp_path / "empty", model_cache_dir=model_cache))
    with pytest.raises(NoCheckpointError, match="run `prism train` first"):
        empty.recommend("1")
    with pytest.raises(InputError, match="holds no items"):
        empty.train(ratings=trained["ratings"], epochs=1)
    with pytest.raises(InputError, match="unknown fusion"):
        trained["service"].train(ratings=trained["ratings"], fusion="sum")


def test_cli_help_and_errors():
    for command in (["train", "--help"], ["recommend", "--help"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0 and "Usage" in result.output
    helptext = runner.invoke(app, ["train", "--help"]).output
    for option in ("--ratings", "--min-rating", "--fusion", "--epochs", "--device", "--seed"):
        assert option in helptext
    result = runner.invoke(app, ["recommend", "--user", "1"])  # a fresh home: nothing trained
    assert result.exit_code == 2 and "prism train" in result.output
    result = runner.invoke(app, ["train", "--fusion", "sum"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["train", "--epochs", "1"])  # a fresh home: nothing ingested
    assert result.exit_code == 2 and "holds no items" in result.output


def _use_home(monkeypatch, trained) -> None:
    monkeypatch.setenv("PRISM_HOME", str(trained["home"]))
    monkeypatch.setenv("PRISM_MULTILINGUAL_MODEL", "none")
    monkeypatch.setenv("PRISM_MOVIELENS_DIR", str(trained["settings"].movielens_dir))
    get_settings.cache_clear()


def test_cli_recommend_json(trained, user, monkeypatch):
    _use_home(monkeypatch, trained)
    result = runner.invoke(app, ["recommend", "--user", user, "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["user_id"] == user and len(payload["items"]) == 3
    expected = [i.item_id for i in trained["service"].recommend(user, k=3).items]
    assert [i["item_id"] for i in payload["items"]] == expected
    result = runner.invoke(app, ["recommend", "--user", user, "-k", "2", "--query", "a toy cowboy"])
    assert result.exit_code == 0 and "For user" in result.output and "text→" in result.output, result.output


def test_an_item_ingested_after_training_gets_a_fused_vector_without_retraining(trained, user, tmp_path):
    service, settings = trained["service"], trained["settings"]
    pointer = checkpoints.current(settings)
    before = sha256_file(pointer.path)
    catalog = tmp_path / "new.jsonl"
    catalog.write_text(json.dumps({"item_id": "new-1", "title": "The Lighthouse Keeper",
                                   "description": "An old lighthouse keeper alone on a stormy island."}) + "\n")
    summary = service.ingest(catalog)
    assert summary.ingested == 1 and summary.fused == 1
    assert checkpoints.current(settings) == pointer and sha256_file(pointer.path) == before  # no retraining
    stored = service.store.get_vectors(pointer.space, ["new-1|fused"])["new-1|fused"]
    checkpoint = load_checkpoint(pointer.path)
    text = service.store.get_vectors(spaces.text_space(settings).name, ["new-1|document"])["new-1|document"]
    from prism.fusion.model import ItemInputs

    # Only text: no poster, so no caption, and no metadata (meta = hashed metadata, empty here).
    dims = checkpoint.config.dims
    features = {m: np.zeros((1, dims[m]), np.float32) for m in checkpoint.config.modalities}
    features["text"] = text[None]
    inputs = ItemInputs.from_numpy(features, {m: np.array([m == "text"]) for m in checkpoint.config.modalities})
    with torch.no_grad():
        np.testing.assert_allclose(stored, checkpoint.model.encode_items(inputs).vectors[0].numpy(), atol=1e-5)
    only_query = PrismService(settings.model_copy(update={"recommend_query_weight": 1.0}))
    top = only_query.recommend(user, text="a lighthouse keeper on a stormy island", k=1).items[0]
    assert top.item_id == "new-1"
    assert top.modalities == {"text": pytest.approx(1.0), "image": 0.0, "caption": 0.0, "meta": 0.0}


def test_recommend_reads_the_fused_vectors_once_and_sees_those_written_later(trained, user, tmp_path, monkeypatch):
    settings = trained["settings"]
    service = PrismService(settings)  # a fresh Store: nothing cached yet
    fused = checkpoints.current(settings).space
    reads = []  # how many fused vectors each read of the fused space asked for
    get_vectors = service.store.get_vectors

    def counted(space, ids):
        if space == fused:
            reads.append(len(ids))
        return get_vectors(space, ids)

    monkeypatch.setattr(service.store, "get_vectors", counted)
    first = service.recommend(user, k=5)
    assert reads == [len(service.store.all_item_ids())]
    assert service.recommend(user, k=5) == first and reads == [reads[0]]  # the second call reads nothing
    catalog = tmp_path / "late.jsonl"
    catalog.write_text(json.dumps({"item_id": "late-1", "title": "The Ferryman",
                                   "description": "A ferryman rows strangers across a foggy river."}) + "\n")
    assert service.ingest(catalog).fused == 1
    only_query = service.recommend(user, text="a ferryman rowing across a foggy river", k=1)
    assert reads == [reads[0]]  # the ingest's fused vector came from the write, not a read
    stored = get_vectors(fused, ["late-1|fused"])["late-1|fused"]
    from prism.fusion.vectors import ensure_fused

    np.testing.assert_allclose(ensure_fused(service.store, settings, checkpoints.load_current(settings), ["late-1"])[0], stored,
                               atol=1e-6)
    assert only_query.items


def test_cli_retrain_switches_to_a_new_space_and_leaves_the_old_one(trained, user, monkeypatch):
    service, settings = trained["service"], trained["settings"]
    old = checkpoints.current(settings)
    old_vectors = service.store.get_vectors(old.space, ["1|fused"])["1|fused"]
    _use_home(monkeypatch, trained)
    result = runner.invoke(app, ["train", "--ratings", str(trained["ratings"]), "--epochs", "1", "--device", "cpu",
                                 "--fusion", "gated", "--name", "cli-run"])
    assert result.exit_code == 0, result.output
    for field in ("best val NDCG@20", "ranker val NDCG@20", "collaborative", "lam ", "seconds/epoch", "cpu", "cli-run.pt"):
        assert field in result.output
    new = checkpoints.current(settings)
    assert new.name == "cli-run" and new.space != old.space
    n_items = service.store.count_items()
    assert service.store.collection(new.space).count() == n_items >= ITEMS
    np.testing.assert_array_equal(service.store.get_vectors(old.space, ["1|fused"])["1|fused"], old_vectors)
    assert service.recommend(user, k=2).checkpoint == "cli-run"
    # A third training keeps its space and the one it replaces; the oldest is dropped.
    third = service.train(ratings=trained["ratings"], epochs=1, device="cpu", name="third")
    assert service.store.spaces("fused-") == sorted([third.space, new.space])


def test_the_catalog_matrix_is_kept_until_items_change_and_sees_another_process_s_items(trained, user, tmp_path,
                                                                                        monkeypatch):
    from prism.fusion.vectors import fused_catalog
    from prism.store import ITEMS as ITEMS_COLLECTION

    settings = trained["settings"]
    service, other = PrismService(settings), PrismService(settings)  # other: a separate `prism ingest`
    served = checkpoints.load_current(settings)
    service.recommend(user, k=3)
    kept = fused_catalog(service.store, settings, served)
    reads = []
    get = service.store.collection(ITEMS_COLLECTION).get
    monkeypatch.setattr(service.store.collection(ITEMS_COLLECTION), "get", lambda **kw: reads.append(kw) or get(**kw))
    service.recommend(user, k=3)
    assert fused_catalog(service.store, settings, served) is kept and not [r for r in reads if "ids" not in r]

    catalog = tmp_path / "other.jsonl"
    catalog.write_text(json.dumps({"item_id": "other-1", "title": "The Lamplighter",
                                   "description": "A lamplighter walks the night streets of an old port."}) + "\n")
    assert other.ingest(catalog).fused == 1
    found = fused_catalog(service.store, settings, served)
    assert "other-1" in found.index and found is not kept
    np.testing.assert_allclose(found.vectors[found.index["other-1"]],
                               other.store.get_vectors(served.space, ["other-1|fused"])["other-1|fused"], atol=1e-6)
    assert "other-1" in {i.item_id for i in service.recommend(user, k=len(found.item_ids)).items}
