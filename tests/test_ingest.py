"""Ingestion and search over real models and a real embedded Chroma."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from catalog_fuzz import store_problems

from prism.service import PrismService
from prism.settings import Settings
from prism.store import Store, VectorEntry
from prism.tools.speech_synthesis import speak


@pytest.fixture(scope="module")
def demo_service(tmp_path_factory, model_cache, demo_catalog) -> PrismService:
    """The demo catalog ingested once into a home of its own."""
    settings = Settings(home=tmp_path_factory.mktemp("demo-home"), model_cache_dir=model_cache)
    service = PrismService(settings)
    summary = service.ingest(demo_catalog)
    assert summary.failed == [] and summary.ingested == 10, summary
    return service


def test_rerun_skips_everything(demo_service, demo_catalog):
    summary = demo_service.ingest(demo_catalog)
    assert (summary.ingested, summary.updated, summary.skipped, summary.failed) == (0, 0, 10, [])


def test_every_modality_is_stored_with_provenance(demo_service):
    poster = demo_service.get_item("quiet-orbit")
    caption = next(d for d in poster["derived"] if d["kind"] == "caption")
    assert "QUIET ORBIT" in " ".join(caption["ocr"]).upper()
    assert caption["provenance"]["backend"] == "offline" and caption["provenance"]["confidences"]["top_label"] > 0
    narrated = demo_service.get_item("midnight-harbour")
    transcript = next(d for d in narrated["derived"] if d["kind"] == "transcript")
    assert "detective" in transcript["text"].lower() and transcript["language"] == "en"
    assert transcript["segments"] and transcript["provenance"]["backend"] == "faster-whisper"
    assert narrated["metadata"]["genres"] == ["Crime", "Mystery"]


def test_text_search_finds_the_calm_space_films(demo_service):
    hits = demo_service.search(text="a calm film about space", k=3).hits
    assert {"quiet-orbit", "deep-field"} & {h.item_id for h in hits[:2]}
    assert hits[0].evidence and hits[0].evidence[0].channel == "text"


def test_chinese_query_finds_chinese_item(demo_service):
    hits = demo_service.search(text="太空迷路的宇航员", k=3).hits
    assert hits[0].item_id == "lost-in-the-stars"
    assert hits[0].evidence[0].text.startswith("星际迷途")


def test_chinese_query_finds_english_item(demo_service):
    hits = demo_service.search(text="两个咖啡师的爱情故事", k=3).hits
    assert "morning-roast" in [h.item_id for h in hits[:2]]


def test_voice_query_is_transcribed_then_searched(demo_service, tmp_path):
    voice = speak("Find me a mystery about a detective at the harbour.", tmp_path / "q.wav")
    result = demo_service.search(audio=voice, k=3)
    assert "detective" in result.query_transcript.lower()
    assert result.hits[0].item_id == "midnight-harbour"
    assert result.hits[0].evidence[0].channel == "voice"


def test_image_query_finds_the_item_with_a_similar_poster(demo_service, demo_catalog):
    result = demo_service.search(image=demo_catalog / "query-cat.jpg", k=3)
    assert result.hits[0].item_id == "whiskers"
    assert "cat" in result.query_caption.lower()
    assert any(e.channel == "image" and e.field == "image:0" for e in result.hits[0].evidence)


def test_metadata_filters_apply(demo_service):
    hits = demo_service.search(text="space", k=5, where={"genres": {"$contains": "Documentary"}}).hits
    assert [h.item_id for h in hits] == ["deep-field"]


def write_catalog(path: Path, records: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    return path


def test_bad_inputs_fail_alone_and_good_rows_are_kept(settings, tmp_path, demo_catalog):
    shutil.copy(demo_catalog / "images" / "whiskers.jpg", tmp_path / "good.jpg")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken jpeg")
    (tmp_path / "notes.wav").write_text("this is a text file, not audio")
    with open(tmp_path / "huge.jpg", "wb") as handle:
        handle.truncate(30 * 1024 * 1024)
    catalog = write_catalog(tmp_path / "catalog.jsonl", [
        {"item_id": "good-1", "title": "A good film", "description": "A tabby cat runs an inn.", "image": "good.jpg"},
        {"item_id": "corrupt", "title": "Corrupt poster", "image": "corrupt.jpg"},
        {"item_id": "not-audio", "title": "Text as audio", "audio": "notes.wav"},
        {"item_id": "missing", "title": "Missing poster", "image": "nowhere.jpg"},
        "{this is not json",
        {"item_id": "huge", "title": "Huge poster", "image": "huge.jpg"},
        {"item_id": "wrong-types", "title": ["not", "a", "string"]},
        {"item_id": "reserved", "title": "Reserved key", "chroma:document": "x"},  # Chroma raised on these
        {"item_id": "empty-key", "title": "Empty key", "": "x"},
        {"item_id": "good-2", "title": "Another good film", "description": "Rival baristas fall in love."},
    ])
    summary = PrismService(settings).ingest(catalog)
    assert summary.ingested == 2
    reasons = {f.item_id or f.source: f.reason for f in summary.failed}
    assert "corrupt.jpg" in reasons["corrupt"] and "not a readable image" in reasons["corrupt"]
    assert "notes.wav" in reasons["not-audio"] and "decoded" in reasons["not-audio"]
    assert "nowhere.jpg" in reasons["missing"] and "does not exist" in reasons["missing"]
    assert "malformed JSON" in reasons["catalog.jsonl:5"]
    assert "huge.jpg" in reasons["huge"] and "over the limit" in reasons["huge"]
    assert "title" in reasons["catalog.jsonl:7"]
    assert "reserved" in reasons["catalog.jsonl:8"] and "empty" in reasons["catalog.jsonl:9"]
    service = PrismService(settings)
    assert service.store.count_items() == 2
    assert service.search(text="baristas in love", k=1).hits[0].item_id == "good-2"
    again = service.ingest(catalog)
    assert again.skipped == 2 and len(again.failed) == 8, "failed items are retried, good ones skipped"


def test_changed_item_is_rewritten_without_stale_vectors(settings, tmp_path, demo_catalog):
    shutil.copy(demo_catalog / "images" / "whiskers.jpg", tmp_path / "p.jpg")
    catalog = tmp_path / "c.jsonl"
    write_catalog(catalog, [{"item_id": "a", "title": "Cat film", "image": "p.jpg"},
                            {"item_id": "b", "title": "Other film", "description": "Harbour at night."}])
    service = PrismService(settings)
    assert service.ingest(catalog).ingested == 2
    write_catalog(catalog, [{"item_id": "a", "title": "Cat film", "description": "Now without a poster."},
                            {"item_id": "b", "title": "Other film", "description": "Harbour at night."}])
    summary = service.ingest(catalog)
    assert (summary.updated, summary.skipped) == (1, 1)
    image_space = service.store.collection("image-effnetlite0")
    assert image_space.get(where={"item_id": "a"})["ids"] == []
    text_space = service.store.collection(f"text-{settings.text_model}")
    assert sorted(text_space.get(where={"item_id": "a"})["ids"]) == ["a|document"]
    assert "Now without a poster." in service.get_item("a")["document"]


def test_writes_are_chunked_to_the_client_batch_limit(settings):
    store = Store(settings)
    store.max_batch = 3
    entries = [VectorEntry(id=f"i{n}", item_id=f"i{n}", field="document", text=f"t{n}",
                           vector=np.eye(10, dtype=np.float32)[n]) for n in range(10)]
    store.put_vectors("chunk-test", entries)
    assert store.collection("chunk-test").count() == 10
    assert store.query("chunk-test", np.eye(10, dtype=np.float32)[7], n=1) == []  # no record yet: not committed
    store.put_items([{"id": f"i{n}", "document": f"t{n}", "metadata": {"title": f"T{n}"}} for n in range(10)])
    assert store.count_items() == 10
    assert store.query("chunk-test", np.eye(10, dtype=np.float32)[7], n=1)[0].item_id == "i7"


def test_two_writes_of_one_item_at_once_leave_its_record_and_vectors_in_step(settings, demo_catalog):
    import threading

    service = PrismService(settings)
    versions = [{"item_id": "twin", "title": "Version A", "description": "A cat runs an inn by the sea.",
                 "images": ["images/whiskers.jpg", "images/quiet-orbit.jpg"]},
                {"item_id": "twin", "title": "Version B", "description": "Two baristas share one espresso machine.",
                 "images": ["images/morning-roast.jpg"], "audio": ["audio/midnight-harbour.wav"]}]
    for _ in range(3):
        threads = [threading.Thread(target=service.ingest_item, args=(v, demo_catalog)) for v in versions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert service.get_item("twin")["metadata"]["title"] in ("Version A", "Version B")
        assert store_problems(service) == []


def test_vectors_of_an_item_whose_record_was_never_written_are_never_shown(settings, demo_catalog):
    service = PrismService(settings)
    service.ingest_item({"item_id": "real", "title": "Lighthouse", "description": "A lighthouse keeper's winter."},
                        demo_catalog)
    # What a kill -9 between the vector writes and the record write leaves behind.
    text_space = service.store.spaces("text")[0]
    vector = service.store.collection(text_space).get(ids=["real|document"], include=["embeddings"])["embeddings"][0]
    service.store.collection(text_space).upsert(ids=["ghost|document"], embeddings=[vector],
                                                documents=["A lighthouse keeper's winter."],
                                                metadatas=[{"item_id": "ghost", "field": "document", "title": "Ghost"}])
    hits = service.search(text="a lighthouse keeper in winter", k=5).hits
    assert [h.item_id for h in hits] == ["real"]
    assert service.get_item("ghost") is None
