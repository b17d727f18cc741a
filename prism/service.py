"""The one service layer: the CLI, the HTTP API, the agent tools and the evals all call this.

It owns the settings and the store and exposes Prism's capabilities as plain methods with
typed results. Models load lazily, once per process, inside the tools.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prism.catalog import CatalogRow, parse_item, read_catalog
from prism.fusion.checkpoints import current as current_checkpoint
from prism.history import history_ratings, read_ratings_rows, user_rows
from prism.ingest import Ingestor, IngestSummary
from prism.search import SearchResult, search
from prism.settings import Settings, get_settings
from prism.similar import SimilarBy, SimilarResult, find_similar
from prism.starter import StarterItem, starter_items
from prism.store import Store
from prism.tools.caption_image import CaptionImageInput, caption_image
from prism.tools.captioning.base import Caption
from prism.tools.transcribe_audio import TranscribeAudioInput, TranscribeAudioOutput, transcribe_audio

if TYPE_CHECKING:
    from prism.fusion.pipeline import TrainSummary
    from prism.recommend import RecommendResult


class PrismService:
    """Prism's capabilities over one settings object and one store."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._store: Store | None = None
        self._store_lock = threading.Lock()

    @property
    def store(self) -> Store:
        """The service's store, opened on first use (once, also when threads ask at once)."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = Store(self.settings)
        return self._store

    def ingest(self, path: Path, limit: int | None = None,
               on_batch: Callable[[IngestSummary, int], None] | None = None) -> IngestSummary:
        """Ingest a catalog (JSONL file or folder); idempotent and resumable."""
        rows = read_catalog(Path(path), self.settings.max_line_bytes,
                            confine=not self.settings.allow_media_outside_catalog)
        return Ingestor(self.settings, self.store).run(rows, limit=limit, on_batch=on_batch)

    def ingest_on_ray(self, path: Path, address: str | None = None, limit: int | None = None,
                      actors: int | None = None,
                      on_batch: Callable[[IngestSummary, int], None] | None = None) -> IngestSummary:
        """``ingest`` as Ray Data batches on a pool of actors (prism/ray_ingest.py), into the
        Chroma server of the settings; ``address`` None starts a local Ray for the run."""
        # deferred: the Ray path imports Ray only when it runs
        from prism.ray_ingest import ingest_on_ray

        rows = read_catalog(Path(path), self.settings.max_line_bytes,
                            confine=not self.settings.allow_media_outside_catalog)
        return ingest_on_ray(self.settings, rows, address, limit, actors, on_batch)

    def ingest_item(self, record: dict, base: Path, cancel: threading.Event | None = None) -> IngestSummary:
        """Ingest one item given as a catalog record (media paths relative to ``base``): the
        same validation and pipeline as ``ingest``; a bad record is reported in ``failed``.
        ``cancel``, once set, stops it at its next step (:class:`Cancelled`, nothing stored)."""
        try:
            item = parse_item(record, Path(base), confine=not self.settings.allow_media_outside_catalog)
            row = CatalogRow("request", item=item)
        except ValueError as exc:
            row = CatalogRow("request", error=str(exc))
        return Ingestor(self.settings, self.store, cancel).run(iter([row]))

    def search(self, text: str | None = None, image: Path | None = None, audio: Path | None = None,
               k: int = 10, where: dict | None = None) -> SearchResult:
        """Nearest items to a text, image and/or voice query, with matched evidence."""
        return search(self.store, self.settings, text=text, image=image, audio=audio, k=k, where=where)

    def get_item(self, item_id: str) -> dict | None:
        """An ingested item's record (document, metadata, derived texts with provenance)."""
        return self.store.get_items([item_id]).get(item_id)

    def train(self, ratings: Path | None = None, min_rating: float | None = None, fusion: str = "attention",
              epochs: int | None = None, device: str | None = None, seed: int = 0, name: str | None = None,
              log: Callable[[str], None] | None = None) -> "TrainSummary":
        """Train the fusion model on ``ratings`` (default: settings.movielens_dir/ratings.tsv)
        over the stored items, with each user's latest interaction held out for early stopping;
        save the checkpoint under home/models/fusion/<name>.pt, make it current and write every
        item's fused vector to the checkpoint's own space (see prism/fusion/pipeline.py)."""
        # deferred: training loads torch; a service that only searches never does
        from prism.fusion.pipeline import train

        return train(self.store, self.settings, Path(ratings or self.settings.movielens_dir / "ratings.tsv"), min_rating, fusion,
                           epochs or self.settings.fusion_epochs, device or self.settings.device, seed, name, log)

    def recommend(self, user_id: str, text: str | None = None, image: Path | None = None,
                  audio: Path | None = None, k: int = 10, ratings: Path | None = None) -> "RecommendResult":
        """The ``k`` best unseen items for ``user_id`` from the current fusion checkpoint, optionally
        steered by a text, image and/or voice query, each with its explanation (prism/recommend.py).
        History comes from the ratings file the checkpoint was trained on unless ``ratings`` is given."""
        # deferred: recommending loads torch and the fusion model
        from prism.recommend import recommend

        return recommend(self.store, self.settings, str(user_id), text=text, image=image, audio=audio, k=k, ratings=ratings)

    def find_similar(self, item_id: str, by: SimilarBy = "text", k: int = 5) -> SimilarResult:
        """Items like ``item_id`` by text, poster, poster-to-text (cross-modal) or fused vector."""
        return find_similar(self.store, self.settings, str(item_id), by, k)

    def caption_image(self, path: Path) -> Caption:
        """Caption an image file with the configured backend (prism.tools.caption_image)."""
        return caption_image(CaptionImageInput(path=Path(path)), self.settings)

    def transcribe(self, path: Path, language: str | None = None) -> TranscribeAudioOutput:
        """Transcribe an audio file with the configured Whisper backend (prism.tools.transcribe_audio)."""
        return transcribe_audio(TranscribeAudioInput(path=Path(path), language=language), self.settings)

    def starter_picks(self, n: int = 5, ratings: Path | None = None) -> list[StarterItem]:
        """Well-liked items from different genres: a first answer for a new user (prism/starter.py),
        scored on ``ratings`` or the ratings file of the current fusion checkpoint."""
        pointer = current_checkpoint(self.settings)
        return starter_items(self.store, history_ratings(self.settings, ratings, pointer.ratings if pointer else None), n)

    def user_history(self, user_id: str, n: int = 10, ratings: Path | None = None) -> list[dict]:
        """The user's ``n`` most recent interactions with stored items (item_id, title, rating,
        time), from ``ratings`` or the ratings file of the current fusion checkpoint (else
        settings.movielens_dir). InputError for an unknown user."""
        pointer = current_checkpoint(self.settings)
        path = history_ratings(self.settings, ratings, pointer.ratings if pointer else None)
        rows = user_rows(read_ratings_rows(path), str(user_id), path)
        rows = rows[(-rows[:, 3]).argsort(kind="stable")]
        records = self.store.get_items([str(i) for i in dict.fromkeys(rows[:, 1].tolist())])
        out = []
        for _, item, rating, when in rows.tolist():
            if str(item) in records and len(out) < n:
                out.append({"item_id": str(item), "title": str(records[str(item)]["metadata"].get("title", item)),
                            "rating": rating, "time": when})
        return out
