"""The evaluation suite end to end on real MovieLens items ingested into a real Chroma store."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from prism.cli import app
from prism.evals.suite import evaluate_suite, export_mmrec
from prism.service import PrismService
from prism.settings import Settings

ITEMS = 40


@pytest.fixture(scope="module")
def ml_service(tmp_path_factory, movielens_dir, model_cache):
    # The English text space and poster features are what the evaluation reads.
    settings = Settings(home=tmp_path_factory.mktemp("mlhome"), model_cache_dir=model_cache,
                        multilingual_model="none", movielens_dir=movielens_dir)
    service = PrismService(settings)
    summary = service.ingest(movielens_dir, limit=ITEMS)
    assert summary.ingested == ITEMS and not summary.failed
    return service


def test_small_suite_writes_json_markdown_and_plots(ml_service, tmp_path):
    results = evaluate_suite(ml_service, "small", out_dir=tmp_path / "report", log=lambda line: None)
    protocols = results["protocols"]
    assert set(protocols) == {"leave_last_one (all ratings)", "cold_items (all ratings)"}
    warm = protocols["leave_last_one (all ratings)"]["models"]
    assert {"Popularity", "ItemKNN", "BPR-MF", "LightGCN", "ContentKNN-text", "ContentKNN-image",
            "ContentKNN-text+image", "Random", "Prism-attention-text+image"} <= set(warm)
    assert "Prism-attention-text+image" in protocols["cold_items (all ratings)"]["models"]
    assert warm["Prism-attention-text+image"]["efficiency"]["epochs"] >= 1
    for entry in warm.values():
        assert 0 <= entry["mean"]["ndcg@20"] <= entry["mean"]["hr@20"] <= 1
        assert entry["mean"]["recall@10"] <= entry["mean"]["recall@20"] + 1e-12
    # Popularity must beat random scores on real data, even on 40 items.
    assert warm["Popularity"]["mean"]["ndcg@20"] > warm["Random"]["mean"]["ndcg@20"]
    saved = json.loads((tmp_path / "report" / "results.json").read_text())
    assert saved["data"]["catalog_items"] == ITEMS and len(saved["data"]["ratings_sha256"]) == 64
    assert "| model |" in (tmp_path / "report" / "report.md").read_text()
    for png in ("metric_at_k.png", "ablation.png", "cold_vs_warm.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"
    assert set(results["robustness"]) >= {"text+image", "image dropped", "text dropped"}
    ridge = results["cross_modal"]["ridge (unaligned baseline)"]["text_to_image"]
    assert 0 <= ridge["recall@1"] <= ridge["recall@10"] <= 1
    aligned = results["cross_modal"]["Prism-attention-text+image aligned"]["image_to_text"]
    unaligned = results["cross_modal"]["Prism-attention-text+image unaligned (align_weight=0)"]["image_to_text"]
    assert aligned["n"] == unaligned["n"] == ridge["n"] >= 2


def test_mmrec_export_matches_the_split(ml_service, tmp_path):
    written = export_mmrec(ml_service, "leave_last_one", tmp_path / "mmrec")
    lines = open(written["inter"]).read().splitlines()
    assert lines[0].split("\t") == ["userID", "itemID", "rating", "timestamp", "x_label"]
    labels = [int(line.split("\t")[4]) for line in lines[1:]]
    assert set(labels) == {0, 1, 2} and labels.count(1) == labels.count(2)
    text, image = np.load(written["text_feat"]), np.load(written["image_feat"])
    assert text.shape == (ITEMS, 384) and image.shape == (ITEMS, 1280)
    assert max(int(line.split("\t")[1]) for line in lines[1:]) < ITEMS


def test_eval_cli_rejects_unknown_suite_and_empty_store(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--suite", "nope"])
    assert result.exit_code == 2 and "unknown evaluation suite 'nope'" in result.output
    result = runner.invoke(app, ["eval", "--suite", "small"])
    assert result.exit_code == 2 and "holds no items" in result.output
    result = runner.invoke(app, ["eval", "--suite", "small", "--seeds", "0,x"])
    assert result.exit_code == 2 and "--seeds must be comma-separated integers, got '0,x'" in result.output
