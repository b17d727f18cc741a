"""``prism ingest PATH --ray [--ray-address ADDRESS]``: the plain ingest's per-item pipeline as Ray Data
batches on a pool of actors, for catalogs bigger than one machine's cores.

The driver reads and validates the catalog (a bad line fails alone, as in the plain path) and
fails repeated item ids; the remaining items go to Ray Data in batches of
``settings.ingest_batch_size``. ``map_batches`` runs each batch on an :class:`IngestWorker`
actor, which builds one :class:`prism.ingest.Ingestor` over the Chroma server when it starts
(so every actor loads each model once) and runs it on its batches: unchanged items skipped by
their content hash, captions, transcripts, text vectors, image vectors, fused vectors, then
the records. The batch summaries are added up as they arrive.

What it needs:

* a Chroma server (``PRISM_CHROMA_HOST``/``PRISM_CHROMA_PORT``): an embedded store is one
  process's files, and the actors are other processes, possibly on other machines;
* on a cluster, every node sees the catalog's media, the model cache and, when one is current,
  the fusion checkpoint at the same paths (a shared filesystem), and has Prism installed with
  the ``ray`` extra (``pip install 'prism-recommender[ray]'``).

It is idempotent like the plain path: entry ids are deterministic upserts, a record is
written after its vectors, an item whose stored hash is unchanged is skipped, so a repeated or
resumed run duplicates nothing; the driver already skips unchanged items, so a repeated run
starts no actor. Two actors never write the same item: ids are made unique before the batches
are formed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

from prism.catalog import CatalogItem, CatalogRow
from prism.errors import InputError
from prism.ingest import Ingestor, IngestSummary, admit, pipeline_fingerprint
from prism.settings import Settings
from prism.store import Store


class IngestWorker:
    """A Ray actor: one Ingestor over the Chroma server, run on each batch it is given."""

    def __init__(self, settings: Settings, threads: int) -> None:
        # deferred: torch is loaded here so each actor uses only the CPUs Ray gave it
        import torch

        torch.set_num_threads(threads)  # torch is process-wide: the actor's process is its own
        settings = settings.model_copy(update={"model_threads": threads})  # onnxruntime (OCR) per session
        self.ingestor = Ingestor(settings, Store(settings))

    def __call__(self, batch: dict) -> dict:
        rows = [CatalogRow(source, item=CatalogItem.model_validate_json(item))
                for source, item in zip(batch["source"], batch["item"])]
        summary = self.ingestor.run(rows)
        return {"summary": [summary.model_dump_json()]}


def changed_items(rows: Iterable[CatalogRow], store: Store, fingerprint: str, summary: IngestSummary,
                  batch: int) -> Iterator[dict]:
    """The valid rows' items that are new or changed, as Ray rows (source, item as JSON), each
    id once. Bad and repeated rows go to ``summary.failed`` as the plain path reports them;
    items whose stored content hash is unchanged count as skipped (a repeated run starts no
    actor at all)."""
    valid = admit(rows, set(), summary)
    for start in range(0, len(valid), batch):
        chunk = valid[start:start + batch]
        stored = store.item_hashes([r.item.item_id for r in chunk])
        for row in chunk:
            if stored.get(row.item.item_id) == row.item.content_hash(fingerprint):
                summary.skipped += 1
            else:
                yield {"source": row.source, "item": row.item.model_dump_json()}


def ingest_on_ray(settings: Settings, rows: Iterable[CatalogRow], address: str | None = None,
                  limit: int | None = None, actors: int | None = None,
                  on_batch: Callable[[IngestSummary, int], None] | None = None) -> IngestSummary:
    """Ingest ``rows`` (at most ``limit``) through Ray (module docstring) into the Chroma server
    of ``settings``. ``address``: a running cluster (``auto``, ``ray://host:10001``); None
    starts a local Ray on this machine for the run. ``actors``: how many (default: one per
    CPU Ray reports, each with one CPU). ``on_batch(summary, rows)`` after each batch."""
    if not settings.chroma_host:
        raise InputError("ingest --ray writes to a Chroma server: set PRISM_CHROMA_HOST (and PRISM_CHROMA_PORT); "
                         "Ray's actors cannot share an embedded store")
    try:
        # deferred: Ray is an optional extra, loaded only for a Ray ingest
        import ray
    except ImportError:
        raise InputError("ingest --ray needs Ray: pip install 'prism-recommender[ray]'") from None
    started = time.perf_counter()
    summary = IngestSummary()
    items = list(changed_items(islice(rows, limit) if limit is not None else rows, Store(settings),
                               pipeline_fingerprint(settings), summary, settings.ingest_batch_size))
    if not items:
        summary.seconds = time.perf_counter() - started
        return summary
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no progress lines every 10 s
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        pool = actors or max(1, int(ray.available_resources().get("CPU", 1)))
        settings = settings.model_copy(update={"home": Path(settings.home).resolve()})
        size = min(pool, -(-len(items) // settings.ingest_batch_size))  # no more actors than batches
        results = ray.data.from_items(items).map_batches(
            IngestWorker, fn_constructor_kwargs={"settings": settings, "threads": 1},
            batch_size=settings.ingest_batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size), num_cpus=1)
        for row in results.iter_rows():
            part = IngestSummary.model_validate(json.loads(row["summary"]))
            summary.ingested += part.ingested
            summary.updated += part.updated
            summary.skipped += part.skipped
            summary.fused += part.fused
            summary.failed += part.failed
            if on_batch:
                on_batch(summary, part.seen)
    finally:
        if started_here:
            ray.shutdown()
    summary.seconds = time.perf_counter() - started
    return summary
