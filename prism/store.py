"""The vector store: Chroma collections for item records and each vector space.

Layout (names carry the model, so switching an encoder never mixes vector spaces):

* ``{prefix}-items``: one record per item: its document text, metadata, content hash and
  the derived texts with provenance (JSON). Written *last* for an item: it is the commit
  marker that makes ingestion resumable.
* ``{prefix}-text-{model}``: English text space; entries per item for the document, each
  caption and each transcript (``field`` metadata says which).
* ``{prefix}-multi-{model}``: the same entries in the multilingual space.
* ``{prefix}-image-{model}``: the image feature of each image.

Every vector entry carries ``item_id``, ``field`` and the item's filterable metadata, so a
``where`` filter applies directly in any space. Writes are upserts by deterministic ids,
chunked to the client's maximum batch size.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prism.errors import InputError
from prism.ranking.metrics import top_k
from prism.settings import Settings
from prism.tools.text_encoders import unit_rows
from prism.where import Unsupported, matches

ITEMS = "items"
# A filtered query first fetches this many times the wanted entries unfiltered, and at most
# FILTER_PROBE_MAX times, before it lets Chroma filter (Store.query).
FILTER_PROBE = 3
FILTER_PROBE_MAX = 40
# How many filters' passing entries a Store keeps (Store._passing), least recently used out,
# and how many bytes of their vectors at most.
FILTER_CACHE_SIZE = 16
FILTER_CACHE_BYTES = 256 * 2**20
# A filter asked for this many times while its entries are kept, passing at most
# FILTER_EXACT_MAX entries, is answered by exact search among their vectors, in memory.
FILTER_EXACT_AFTER = 3
FILTER_EXACT_MAX = 20_000
# After asking about this many item ids one query at a time, a Store reads every committed id
# once (Store._committed): a store that answers many queries stops paying a records lookup each.
COMMITTED_BULK = 500


@dataclass
class VectorEntry:
    """One vector of one item in one space."""

    id: str
    item_id: str
    field: str
    text: str
    vector: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Match:
    """A vector entry found by a query, with cosine similarity."""

    item_id: str
    field: str
    text: str
    similarity: float
    metadata: dict[str, Any]


@dataclass(frozen=True)
class _Passing:
    """The entries of a space that one filter lets through: their ids, and when there are at
    most FILTER_EXACT_MAX of them, their unit vectors for an exact search."""

    ids: list[str]
    unit: np.ndarray | None = None  # float32 [len(ids), d]

    @property
    def nbytes(self) -> int:
        return 0 if self.unit is None else self.unit.nbytes

    def nearest(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """The ids and cosine similarities of the ``n`` entries nearest to ``vector``, exactly."""
        scores = self.unit @ unit_rows(np.asarray(vector)[None, :])[0]
        return [(self.ids[i], float(scores[i])) for i in top_k(scores[None, :], n)[0] if i >= 0]


def make_client(settings: Settings):
    """An HttpClient when ``chroma_host`` is set, else an embedded PersistentClient under home."""
    # deferred: chromadb (and its telemetry, onnx and HTTP stacks) loads with the first store use
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_host:
        return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port,
                                   ssl=settings.chroma_ssl, settings=chroma_settings)
    settings.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()
# Per store location and space: how many times this process has written that space's vectors.
_SPACE_WRITES: dict[tuple[str, str], int] = {}


class Store:
    """Typed access to Prism's Chroma collections."""

    def __init__(self, settings: Settings, client=None) -> None:
        self.settings = settings
        self.client = client or make_client(settings)
        self.max_batch = int(self.client.get_max_batch_size())
        self._collections: dict[str, Any] = {}
        self._known_committed: set[str] = set()  # item ids whose record this Store has seen
        self._asked_committed = 0  # how many ids _committed has looked up one query at a time
        self._all_ids: list[str] | None = None  # every committed id, as all_item_ids last read them
        where = (f"{settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host
                 else str(settings.chroma_path.resolve()))
        self._location = f"{where}/{settings.collection_prefix}"
        # per filter: the write count and time it was looked up at, its entries, how often asked for
        self._filter_ids: OrderedDict[tuple[str, str], tuple[int, float, _Passing, int]] = OrderedDict()
        self._filter_ids_lock = threading.Lock()
        with _WRITE_LOCKS_GUARD:
            # One lock per store location, shared by every Store of this process: writes of the
            # same item (two uploads at once) must not interleave their vectors and records.
            self.write_lock = _WRITE_LOCKS.setdefault(self._location, threading.Lock())

    def collection(self, name: str):
        """The collection ``{prefix}-{name}`` (cosine space), created on first use."""
        if name not in self._collections:
            ef = self.settings.store_search_ef
            collection = self.client.get_or_create_collection(
                f"{self.settings.collection_prefix}-{name}",
                configuration={"hnsw": {"space": "cosine", "ef_search": ef}},
                embedding_function=None,
            )
            hnsw = (collection.configuration_json or {}).get("hnsw") or {}
            if hnsw.get("ef_search", ef) != ef:  # a collection made before, or with another setting
                collection.modify(configuration={"hnsw": {"ef_search": ef}})
            self._collections[name] = collection
        return self._collections[name]

    def spaces(self, starting_with: str = "") -> list[str]:
        """Names (without the prefix) of the stored spaces whose name starts with ``starting_with``."""
        head = f"{self.settings.collection_prefix}-"
        names = [c if isinstance(c, str) else c.name for c in self.client.list_collections()]
        return sorted(n[len(head):] for n in names if n.startswith(head + starting_with))

    def drop_space(self, name: str) -> None:
        """Delete the space ``name`` and all its vectors."""
        self.client.delete_collection(f"{self.settings.collection_prefix}-{name}")
        self._collections.pop(name, None)
        self._wrote(name)

    def _wrote(self, space: str) -> None:
        """Note a finished write of ``space``'s vectors: every Store of this location drops the
        filter results it keeps for it (:meth:`_passing`), also those looked up while the
        write was under way."""
        with _WRITE_LOCKS_GUARD:
            key = (self._location, space)
            _SPACE_WRITES[key] = _SPACE_WRITES.get(key, 0) + 1

    # --- item records -----------------------------------------------------------------
    def item_hashes(self, item_ids: Sequence[str]) -> dict[str, str]:
        """Content hashes of the committed items among ``item_ids``."""
        found: dict[str, str] = {}
        for start in range(0, len(item_ids), self.max_batch):
            got = self.collection(ITEMS).get(ids=list(item_ids[start : start + self.max_batch]), include=["metadatas"])
            for item_id, meta in zip(got["ids"], got["metadatas"]):
                found[item_id] = meta.get("content_hash", "")
        return found

    def put_items(self, records: Sequence[dict[str, Any]]) -> None:
        """Upsert item records (``id``, ``document``, ``metadata``); the commit marker of ingestion."""
        for start in range(0, len(records), self.max_batch):
            chunk = records[start : start + self.max_batch]
            self.collection(ITEMS).upsert(
                ids=[r["id"] for r in chunk],
                documents=[r["document"] for r in chunk],
                metadatas=[r["metadata"] for r in chunk],
                embeddings=[[0.0] for _ in chunk],  # records are looked up by id, never by vector
            )

    def get_items(self, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Item records by id: ``{"document": ..., "metadata": ..., "derived": [...]}``; an id
        asked for twice is read once, an unknown id is left out."""
        out: dict[str, dict[str, Any]] = {}
        item_ids = list(dict.fromkeys(item_ids))
        for start in range(0, len(item_ids), self.max_batch):
            got = self.collection(ITEMS).get(ids=list(item_ids[start : start + self.max_batch]),
                                             include=["metadatas", "documents"])
            for item_id, meta, doc in zip(got["ids"], got["metadatas"], got["documents"]):
                meta = dict(meta)
                derived = json.loads(meta.pop("derived_json", "[]"))
                out[item_id] = {"document": doc, "metadata": meta, "derived": derived}
        return out

    def count_items(self) -> int:
        return self.collection(ITEMS).count()

    # --- vector spaces ----------------------------------------------------------------
    def delete_item_vectors(self, space: str, item_ids: Sequence[str]) -> None:
        """Remove every entry of ``item_ids`` from ``space`` (before rewriting a changed item)."""
        if item_ids:
            self.collection(space).delete(where={"item_id": {"$in": list(item_ids)}})
            self._wrote(space)

    def put_vectors(self, space: str, entries: Sequence[VectorEntry]) -> None:
        """Upsert entries into ``space`` in chunks of at most the client's max batch size."""
        try:
            for start in range(0, len(entries), self.max_batch):
                chunk = entries[start : start + self.max_batch]
                self.collection(space).upsert(
                    ids=[e.id for e in chunk],
                    embeddings=np.stack([e.vector for e in chunk]).astype(np.float32),
                    documents=[e.text for e in chunk],
                    metadatas=[{**e.metadata, "item_id": e.item_id, "field": e.field} for e in chunk],
                )
        finally:  # a failed write may have written some chunks
            self._wrote(space)

    def query(self, space: str, vector: np.ndarray, n: int, where: dict | None = None) -> list[Match]:
        """The ``n`` nearest entries of ``space`` to ``vector``, most similar first, of committed
        items only (fewer than ``n`` when some belong to an item whose record was never written).

        With a ``where`` filter, the nearest ``FILTER_PROBE`` × ``n`` entries are fetched without
        it and filtered here (:mod:`prism.where`, Chroma's semantics); when too few pass, once
        more as many as the share that passed says are needed (up to ``FILTER_PROBE_MAX`` × n).
        A filter more selective than that among the query's neighbours is evaluated by Chroma
        (:meth:`_passing`, kept a while) and only the entries it lets through are searched: by
        Chroma among their ids, or exactly in memory once the filter has proved to be asked for
        again and again."""
        collection = self.collection(space)
        if where:
            probe = n * FILTER_PROBE
            while True:
                try:
                    found = self._nearest(collection, vector, probe)
                    kept = [m for m in found if matches(m.metadata, where)]
                except Unsupported:
                    break
                if len(kept) >= n or len(found) < probe:  # enough, or the whole space was seen
                    return self._committed(kept[:n])
                needed = probe * n * 1.3 / len(kept) if kept else float("inf")
                if probe >= n * FILTER_PROBE_MAX or needed > n * FILTER_PROBE_MAX:
                    break
                probe = int(needed) + 1
            passing = self._passing(space, collection, where)
            if not passing.ids:
                return []
            if passing.unit is None:
                return self._committed(self._nearest(collection, vector, n, ids=passing.ids))
            return self._committed(self._matches(collection, passing.nearest(vector, n)))
        return self._committed(self._nearest(collection, vector, n))

    def _passing(self, space: str, collection, where: dict) -> _Passing:
        """The entries of ``space`` that ``where`` lets through, by Chroma's own evaluation.

        Chroma's filtered query spends most of its time there (at 198,000 entries: 100 ms of
        163 for a filter passing 8,970; 1.4 s of 1.44 s for one passing 189,000), and a query
        among given ids is fast (28 ms and 163 ms; bench/filter_paths.py), so the entries are
        kept for ``store_filter_cache_seconds``, until a write of the space through this process,
        for the last ``FILTER_CACHE_SIZE`` filters and ``FILTER_CACHE_BYTES`` of vectors.

        A filter asked for ``FILTER_EXACT_AFTER`` times while kept, passing at most
        ``FILTER_EXACT_MAX`` entries, has their vectors read too, so that its later queries are
        an exact product in memory (no HNSW search, no ids sent to a server) that then reads
        only the metadata and text of the entries it found. Reading them costs about four id
        lookups (8,970 vectors: 0.4 s), which a filter asked for once or twice never pays."""
        key = (space, json.dumps(where, sort_keys=True, ensure_ascii=False))
        ttl = self.settings.store_filter_cache_seconds
        written = _SPACE_WRITES.get((self._location, space), 0)
        with self._filter_ids_lock:
            kept = self._filter_ids.get(key)
            if kept and kept[0] == written and time.monotonic() - kept[1] < ttl:
                self._filter_ids.move_to_end(key)
                _, looked_up, passing, uses = kept
                self._filter_ids[key] = (written, looked_up, passing, uses + 1)
                if passing.unit is not None or uses + 1 < FILTER_EXACT_AFTER or len(passing.ids) > FILTER_EXACT_MAX:
                    return passing
                hot = True
            else:
                hot = False
        if hot:  # read the vectors once, outside the lock: other queries go on meanwhile
            found = self.get_vectors(space, passing.ids)  # an entry deleted since is left out
            passing = _Passing(list(found), unit_rows(np.stack(list(found.values())) if found else np.zeros((0, 1))))
            self._keep(key, (written, looked_up, passing, FILTER_EXACT_AFTER))
            return passing
        # deferred: chromadb is loaded by the collection; importing it at module level would not be
        from chromadb.errors import InvalidArgumentError

        try:
            passing = _Passing(list(collection.get(where=where, include=[])["ids"]))
        except (ValueError, InvalidArgumentError) as exc:
            raise InputError(f"invalid metadata filter {json.dumps(where, ensure_ascii=False)[:200]}: "
                             f"{str(exc).splitlines()[0][:200]}") from None
        if ttl > 0:
            self._keep(key, (written, time.monotonic(), passing, 1))
        return passing

    def _keep(self, key: tuple[str, str], kept: tuple[int, float, _Passing, int]) -> None:
        """Keep a filter's entries, dropping the least recently used beyond the count and bytes."""
        with self._filter_ids_lock:
            self._filter_ids[key] = kept
            self._filter_ids.move_to_end(key)
            while len(self._filter_ids) > 1 and (
                    len(self._filter_ids) > FILTER_CACHE_SIZE or
                    sum(each[2].nbytes for each in self._filter_ids.values()) > FILTER_CACHE_BYTES):
                self._filter_ids.popitem(last=False)

    def _nearest(self, collection, vector: np.ndarray, n: int, ids: list[str] | None = None) -> list[Match]:
        """The ``n`` nearest entries, among ``ids`` when given."""
        result = collection.query(query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=n,
                                  ids=ids, include=["metadatas", "documents", "distances"])
        return [
            Match(item_id=meta["item_id"], field=meta["field"], text=doc or "", similarity=1.0 - float(dist),
                  metadata=meta)
            for meta, doc, dist in zip(result["metadatas"][0], result["documents"][0], result["distances"][0])
        ]

    def _matches(self, collection, found: list[tuple[str, float]]) -> list[Match]:
        """``found`` (entry ids with their similarity) as matches, with their metadata and text."""
        got = collection.get(ids=[entry_id for entry_id, _ in found], include=["metadatas", "documents"])
        read = {entry_id: (meta, doc) for entry_id, meta, doc in zip(got["ids"], got["metadatas"], got["documents"])}
        return [Match(item_id=read[e][0]["item_id"], field=read[e][0]["field"], text=read[e][1] or "",
                      similarity=similarity, metadata=read[e][0]) for e, similarity in found if e in read]

    def _committed(self, matches: list[Match]) -> list[Match]:
        # Vectors are written before the item record (the commit marker): an ingest killed in
        # between leaves vectors of an item that does not exist, which nobody may be shown.
        # Records are never deleted, so an item seen committed stays so: only new ids are asked.
        unknown = [i for i in dict.fromkeys(m.item_id for m in matches) if i not in self._known_committed]
        if unknown and self._all_ids is None and self._asked_committed + len(unknown) > COMMITTED_BULK:
            self.all_item_ids()
            unknown = [i for i in unknown if i not in self._known_committed]
        if unknown:  # committed since (by another process), or vectors of an unfinished ingest
            self._asked_committed += len(unknown)
            self._known_committed.update(self.item_hashes(unknown))
        return [m for m in matches if m.item_id in self._known_committed]

    def get_vectors(self, space: str, entry_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors by entry id (``"{item_id}|{field}"``); absent ids are left out."""
        found: dict[str, np.ndarray] = {}
        entry_ids = list(entry_ids)
        for start in range(0, len(entry_ids), self.max_batch):
            got = self.collection(space).get(ids=entry_ids[start : start + self.max_batch], include=["embeddings"])
            for entry_id, vector in zip(got["ids"], got["embeddings"]):
                found[entry_id] = np.asarray(vector, dtype=np.float32)
        return found

    def item_titles(self) -> dict[str, str]:
        """Every committed item's title by id ("" where it has none)."""
        titles: dict[str, str] = {}
        offset = 0
        while True:  # in pages: a whole large catalog's metadata in one reply is needlessly big
            got = self.collection(ITEMS).get(include=["metadatas"], limit=self.max_batch, offset=offset)
            if not got["ids"]:
                return titles
            offset += len(got["ids"])
            titles.update((item_id, str(meta.get("title") or "")) for item_id, meta in zip(got["ids"], got["metadatas"]))

    def all_item_ids(self) -> list[str]:
        """Ids of every committed item, in the store's order. This Store reads them again only
        when the number of records has changed: records are never deleted, so the same number
        is the same items (at 100,000 items the count takes 12 ms, the ids 210 ms)."""
        if self._all_ids is None or self.count_items() != len(self._all_ids):
            ids = list(self.collection(ITEMS).get(include=[])["ids"])
            self._known_committed.update(ids)
            self._all_ids = ids
        return list(self._all_ids)
