"""Ingestion: catalog rows → captions, transcripts, embeddings → the store.

Per item: caption each image, transcribe each audio clip, embed the document, captions and
transcripts (English and multilingual spaces), keep the image features. Items are processed
in batches; within a batch, vectors are written first and the item records last, so a run
killed at any moment leaves only uncommitted items, which the next run redoes (upserts by
deterministic ids: nothing is duplicated). An item whose content hash is unchanged is
skipped; a changed one has its old vectors removed and is rewritten.

A bad line or a bad media file fails that item alone, with a reason naming the input.

When a fusion checkpoint is current (``prism train``), each written item also gets its fused
vector from that checkpoint, in the checkpoint's own space, right after its text and image
vectors and before its record (no retraining; a missing modality is masked). A current
checkpoint that cannot be loaded fails the run with a message saying to run ``prism train``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from prism import spaces
from prism.catalog import CatalogItem, CatalogRow
from prism.errors import Cancelled, InputError, PrismError
from prism.fusion.checkpoints import load_current
from prism.settings import Settings
from prism.store import Store, VectorEntry
from prism.tools.caption_image import caption_images, load_image
from prism.tools.transcribe_audio import TranscribeAudioInput, transcribe_audio
from prism.untrusted import instruction_spans, without_instructions

INGEST_FORMAT = "1"


class Failure(BaseModel):
    source: str
    item_id: str | None = None
    reason: str


class IngestSummary(BaseModel):
    """What one ingestion run did."""

    ingested: int = 0
    updated: int = 0
    skipped: int = 0
    failed: list[Failure] = []
    fused: int = 0  # fused vectors written from the current fusion checkpoint (0 without one)
    seconds: float = 0.0

    @property
    def seen(self) -> int:
        return self.ingested + self.updated + self.skipped + len(self.failed)


@dataclass
class Prepared:
    """An item with everything derived from its media, ready to embed and store."""

    item: CatalogItem
    content_hash: str
    is_update: bool
    derived: list[dict] = field(default_factory=list)  # kind, field, text, provenance
    image_features: list[tuple[str, np.ndarray]] = field(default_factory=list)


def pipeline_fingerprint(settings: Settings) -> str:
    """What, besides an item's content, determines its stored vectors."""
    return "|".join([INGEST_FORMAT, settings.text_model, settings.multilingual_model,
                     f"neutral={settings.multilingual_neutral}",
                     settings.caption_backend, settings.whisper_backend])


def filter_metadata(item: CatalogItem) -> dict:
    """Item metadata as Chroma accepts it (empty lists dropped), plus the title."""
    meta = {k: v for k, v in item.metadata.items() if not (isinstance(v, list) and not v)}
    meta["title"] = item.title
    return meta


def instruction_span_count(prepared: Prepared) -> int:
    """How many instruction-like spans (:mod:`prism.untrusted`) the item's title, document,
    captions, OCR lines and transcripts hold: a flag kept with the item, never acted on."""
    texts = [prepared.item.title, prepared.item.document()]
    for derived in prepared.derived:
        texts += [derived.get("text") or "", *(derived.get("ocr") or [])]
    return sum(len(instruction_spans(text)) for text in texts)


def admit(rows: Iterable[CatalogRow], seen: set[str], summary: IngestSummary) -> list[CatalogRow]:
    """The rows holding a valid item whose id is not in ``seen`` (added to it); a bad row or a
    repeated id goes to ``summary.failed`` with its reason."""
    admitted = []
    for row in rows:
        if row.item is None:
            summary.failed.append(Failure(source=row.source, reason=row.error or "unknown error"))
        elif row.item.item_id in seen:
            summary.failed.append(Failure(source=row.source, item_id=row.item.item_id,
                                          reason=f"duplicate item_id '{row.item.item_id}' in this catalog"))
        else:
            seen.add(row.item.item_id)
            admitted.append(row)
    return admitted


def _batches(rows: Iterable[CatalogRow], size: int) -> Iterator[list[CatalogRow]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


class Ingestor:
    """Runs ingestion against one store with one set of settings."""

    def __init__(self, settings: Settings, store: Store, cancel: threading.Event | None = None) -> None:
        """``cancel``, once set, stops the ingest at its next step (a caption, a transcript, an
        encoder, the write) with :class:`Cancelled`; what was not yet written stays unwritten."""
        self.settings = settings
        self.store = store
        self.fingerprint = pipeline_fingerprint(settings)
        self.cancel = cancel

    def _go_on(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("the ingest was cancelled (the server is stopping); nothing of it was stored")

    def prepare_batch(self, work: list[tuple[CatalogItem, str, bool]]) -> list[Prepared | Exception]:
        """Caption and transcribe the media of ``work``'s items (item, content hash, is update),
        in order: the batch's images are captioned together (in groups, :func:`caption_images`),
        so the captioner batches its model work. An item whose file fails gets the error (naming the file) in its place
        and never stops the others."""
        images: list[tuple[int, int, Path, object]] = []  # item position, image index, path, image or error
        for position, (item, _, _) in enumerate(work):
            for index, path in enumerate(item.images):
                self._go_on()
                try:
                    images.append((position, index, path, load_image(path, self.settings.max_image_bytes)))
                except PrismError as exc:
                    images.append((position, index, path, exc))
        loaded = [entry for entry in images if not isinstance(entry[3], Exception)]
        captions = caption_images([image for *_, image in loaded], self.settings, go_on=self._go_on)
        results: dict[tuple[int, int], object] = {(p, i): e for p, i, _, e in images if isinstance(e, Exception)}
        results.update({(p, i): caption for (p, i, _, _), caption in zip(loaded, captions)})
        prepared: list[Prepared | Exception] = []
        for position, (item, digest, is_update) in enumerate(work):
            try:
                prepared.append(self._prepared(item, digest, is_update,
                                               [results[(position, i)] for i in range(len(item.images))]))
            except Cancelled:
                raise
            except Exception as exc:  # one bad item must never stop the batch
                prepared.append(exc)
        return prepared

    def _prepared(self, item: CatalogItem, content_hash: str, is_update: bool, captions: list) -> Prepared:
        """An item with its captions (or their errors, in image order) and its transcripts."""
        prepared = Prepared(item=item, content_hash=content_hash, is_update=is_update)
        for index, (path, caption) in enumerate(zip(item.images, captions)):
            if isinstance(caption, InputError):
                raise caption
            if isinstance(caption, Exception):
                raise PrismError(f"image file {path}: {caption}") from caption
            name = f"caption:{index}"
            prepared.derived.append({"kind": "caption", "field": name, "source": path.name, "path": str(path),
                                     "text": caption.text,
                                     "ocr": [line.text for line in caption.ocr],
                                     "provenance": caption.provenance.model_dump()})
            if caption.feature is not None:
                prepared.image_features.append((f"image:{index}", np.asarray(caption.feature, dtype=np.float32)))
        for index, path in enumerate(item.audio):
            self._go_on()
            result = transcribe_audio(TranscribeAudioInput(path=path), self.settings)
            prepared.derived.append({"kind": "transcript", "field": f"transcript:{index}", "source": path.name,
                                     "path": str(path),
                                     "text": result.text, "language": result.language,
                                     "segments": [s.model_dump() for s in result.segments],
                                     "provenance": result.provenance.model_dump()})
        return prepared

    def write(self, batch: list[Prepared]) -> int:
        """Embed and store a batch; item records go last (the commit marker). Returns how many
        fused vectors were written (0 when no fusion checkpoint is current).

        Vectors are computed first; then, under the store's write lock, every earlier vector of
        the batch's items is deleted (an update's, a concurrent upload's, or an interrupted
        write's) before the new ones and the records are written, so a record and its vectors
        always describe the same version."""
        ids = [p.item.item_id for p in batch]
        texts: list[tuple[Prepared, str, str]] = []
        for p in batch:
            texts.append((p, "document", p.item.document()))
            texts += [(p, d["field"], d["text"]) for d in p.derived if d["text"]]
        text_entries = {}
        # Instruction-like sentences are flagged, never embedded: they must not decide what finds the item.
        embedded = [without_instructions(t) or p.item.title for p, _, t in texts]
        for space in spaces.text_spaces(self.settings):
            self._go_on()
            vectors = space.encoder().encode(embedded, "passage")
            text_entries[space.name] = [VectorEntry(id=f"{p.item.item_id}|{name}", item_id=p.item.item_id, field=name,
                                                    text=text, vector=vec, metadata=filter_metadata(p.item))
                                        for (p, name, text), vec in zip(texts, vectors)]
        image_space = spaces.image_space(self.settings)
        image_entries = [VectorEntry(id=f"{p.item.item_id}|{name}", item_id=p.item.item_id, field=name,
                                     text=p.item.title, vector=vec, metadata=filter_metadata(p.item))
                         for p in batch for name, vec in p.image_features]
        self._go_on()
        with self.store.write_lock:
            for name, entries in text_entries.items():
                self.store.delete_item_vectors(name, ids)
                self.store.put_vectors(name, entries)
            self.store.delete_item_vectors(image_space.name, ids)
            if image_entries:
                self.store.put_vectors(image_space.name, image_entries)
            return self._commit(batch)

    def _commit(self, batch: list[Prepared]) -> int:
        """Fused vectors, then the records (the commit marker); under the write lock."""
        written = self.write_fused(batch)
        self.store.put_items([
            {"id": p.item.item_id, "document": p.item.document(),
             "metadata": {**filter_metadata(p.item), "content_hash": p.content_hash,
                          "n_images": len(p.item.images), "n_audio": len(p.item.audio),
                          "instruction_spans": instruction_span_count(p),
                          "derived_json": json.dumps(p.derived, ensure_ascii=False)}}
            for p in batch
        ])
        return written

    def write_fused(self, batch: list[Prepared]) -> int:
        """The batch's fused vectors from the current checkpoint, computed from the text and
        image vectors just stored; nothing without a current checkpoint."""
        served = load_current(self.settings)
        if served is None:
            return 0
        # deferred: computing fused vectors needs torch, which an ingest without a checkpoint never loads
        from prism.fusion.vectors import write_fused

        return write_fused(self.store, self.settings, served, [p.item.item_id for p in batch],
                           titles={p.item.item_id: p.item.title for p in batch})

    def run(self, rows: Iterable[CatalogRow], limit: int | None = None,
            on_batch: Callable[[IngestSummary, int], None] | None = None) -> IngestSummary:
        """Ingest ``rows`` (at most ``limit`` of them); ``on_batch(summary, rows_in_batch)``
        is called after each committed batch."""
        started = time.perf_counter()
        summary = IngestSummary()
        seen_ids: set[str] = set()
        rows = islice(rows, limit) if limit is not None else rows
        for batch in _batches(rows, self.settings.ingest_batch_size):
            items = [(row.item, row.source) for row in admit(batch, seen_ids, summary)]
            stored = self.store.item_hashes([item.item_id for item, _ in items])
            work, sources = [], []
            for item, source in items:
                digest = item.content_hash(self.fingerprint)
                if stored.get(item.item_id) == digest:
                    summary.skipped += 1
                    continue
                work.append((item, digest, item.item_id in stored))
                sources.append(source)
            prepared: list[Prepared] = []
            for (item, _, _), source, result in zip(work, sources, self.prepare_batch(work)):
                if isinstance(result, Prepared):
                    prepared.append(result)
                else:
                    reason = str(result) if isinstance(result, PrismError) else f"{type(result).__name__}: {result}"
                    summary.failed.append(Failure(source=source, item_id=item.item_id, reason=reason))
            if prepared:
                summary.fused += self.write(prepared)
            summary.updated += sum(p.is_update for p in prepared)
            summary.ingested += sum(not p.is_update for p in prepared)
            if on_batch:
                on_batch(summary, len(batch))
        summary.seconds = time.perf_counter() - started
        return summary
