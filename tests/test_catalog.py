import json
from pathlib import Path

import pytest

from prism.catalog import parse_item, read_catalog, read_jsonl

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "movielens-100k-mm"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_fields_are_split_into_text_media_and_metadata(tmp_path):
    item = parse_item({"item_id": 7, "title": "T", "description": "A long plot line.", "image": "p.jpg",
                       "audio": ["a.wav"], "genres": ["Drama"], "year": 2001, "mood": "calm"}, tmp_path)
    assert item.item_id == "7"
    assert item.texts == {"description": "A long plot line."}
    assert item.images == [tmp_path / "p.jpg"] and item.audio == [tmp_path / "a.wav"]
    assert item.metadata == {"genres": ["Drama"], "year": 2001, "mood": "calm"}
    assert "Genres: Drama." in item.document() and "Mood: calm." in item.document()


@pytest.mark.parametrize("record, field", [
    ({"title": "no id"}, "item_id"),
    ({"item_id": True, "title": "bool id"}, "item_id"),
    ({"item_id": "x", "title": 5}, "title"),
    ({"item_id": "x", "title": "T", "image": 3}, "image"),
    ({"item_id": "x", "title": "T", "genres": [1, 2]}, "genres"),
    ({"item_id": "x", "title": "T", "extra": {"nested": 1}}, "extra"),
])
def test_wrong_types_name_the_field(tmp_path, record, field):
    with pytest.raises(ValueError, match=field):
        parse_item(record, tmp_path)


@pytest.mark.parametrize("record, problem", [
    ({"item_id": "x", "title": "T", "chroma:document": "x"}, "reserved"),
    ({"item_id": "x", "title": "T", "#document": "x"}, "reserved"),
    ({"item_id": "x", "title": "T", "": "empty key"}, "empty"),
    ({"item_id": "x", "title": "T", "content_hash": "forged"}, "reserved"),
    ({"item_id": "x", "title": "T", "metadata": {"chroma:id": 1}}, "reserved"),
    ({"item_id": "x", "title": "T", "k" * 65: 1}, "over 64"),
    ({"item_id": "x", "title": "T", "a\nb": 1}, "control"),
    ({"item_id": "x", "title": "T", "rating": float("nan")}, "not a finite number"),
    ({"item_id": "x", "title": "T", "metadata": {"score": float("inf")}}, "not a finite number"),
    ({"item_id": "a/b", "title": "T"}, "slash"),
    ({"item_id": "x", "title": "T", "$and": "x"}, "reserved"),  # the store's filter operators
    ({"item_id": "x", "title": "T", "votes": 2**63}, "64-bit"),  # the store would keep a float
])
def test_keys_the_store_reserves_and_non_finite_numbers_are_rejected_with_a_reason(tmp_path, record, problem):
    with pytest.raises(ValueError, match=problem):
        parse_item(record, tmp_path)


def test_empty_values_are_absent_at_any_level(tmp_path):
    item = parse_item({"item_id": "x", "title": "T", "tags": ["", ""], "cast": [], "note": None,
                       "metadata": {"studio": None, "genres": ["", "Drama"], "votes": -(2**63)}}, tmp_path)
    assert item.metadata == {"genres": ["Drama"], "votes": -(2**63)}


def test_bad_lines_become_error_rows_and_good_rows_survive(tmp_path):
    catalog = write_lines(tmp_path / "c.jsonl", [
        json.dumps({"item_id": "a", "title": "Good A"}),
        "{not json",
        "[1, 2]",
        "",
        json.dumps({"item_id": "b", "title": "x" * 1500}),
        json.dumps({"item_id": "c", "title": "Good C", "description": "y" * 3000}),
    ])
    rows = list(read_jsonl(catalog, max_line_bytes=2000))
    assert [r.item.item_id for r in rows if r.item] == ["a"]
    errors = {r.source: r.error for r in rows if r.error}
    assert "malformed JSON" in errors["c.jsonl:2"]
    assert "JSON object" in errors["c.jsonl:3"]
    assert "title" in errors["c.jsonl:5"]
    assert "over the limit" in errors["c.jsonl:6"]


def test_invalid_utf8_line_is_an_error_row(tmp_path):
    catalog = tmp_path / "c.jsonl"
    catalog.write_bytes(b'{"item_id": "a", "title": "\xff\xfe"}\n{"item_id": "b", "title": "ok"}\n')
    rows = list(read_jsonl(catalog))
    assert "UTF-8" in rows[0].error and rows[1].item.item_id == "b"


def test_content_hash_follows_media_bytes_and_pipeline(tmp_path):
    image = tmp_path / "p.jpg"
    image.write_bytes(b"one")
    item = parse_item({"item_id": "a", "title": "T", "image": "p.jpg"}, tmp_path)
    first = item.content_hash("v1")
    assert item.content_hash("v1") == first
    assert item.content_hash("v2") != first
    image.write_bytes(b"two")
    assert item.content_hash("v1") != first


def test_missing_catalog_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_catalog(tmp_path / "nope.jsonl")


@pytest.mark.skipif(not SHARED.is_dir(), reason="MovieLens-MM data not beside the repo")
def test_movielens_loader_reads_every_item():
    rows = list(read_catalog(SHARED))
    items = [r.item for r in rows if r.item]
    assert len(items) == 1682 and not [r for r in rows if r.error]
    toy = items[0]
    assert toy.title == "Toy Story (1995)" and toy.metadata["year"] == 1995
    assert "Animation" in toy.metadata["genres"] and toy.images[0].name == "1.jpg"
    assert sum(1 for i in items if i.images) == 1648


def test_media_paths_must_stay_inside_the_catalogs_folder(tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "posters").mkdir()
    (catalog / "posters" / "ok.jpg").write_bytes(b"x")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"x")
    (catalog / "posters" / "link.jpg").symlink_to(secret)
    assert parse_item({"item_id": "a", "title": "T", "image": "posters/ok.jpg"}, catalog).images
    for path in ("../secret.jpg", str(secret), "posters/link.jpg", "posters/../../secret.jpg"):
        with pytest.raises(ValueError, match="outside the catalog's folder"):
            parse_item({"item_id": "a", "title": "T", "image": path}, catalog)
        assert parse_item({"item_id": "a", "title": "T", "image": path}, catalog, confine=False).images
    rows = list(read_jsonl(write_lines(catalog / "c.jsonl", [
        json.dumps({"item_id": "a", "title": "Out", "audio": "../secret.jpg"}),
        json.dumps({"item_id": "b", "title": "In", "image": "posters/ok.jpg"})])))
    assert "outside" in rows[0].error and rows[1].item.item_id == "b"
