"""The one service layer: the CLI, the HTTP API, the agent tools and the evals all call this.

It owns the settings and the store and exposes Prism's capabilities as plain methods with
typed results. Models load lazily, once per process, inside the tools.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prism.catalog import read_catalog
from prism.errors import InputError
from prism.fused import TrainSummary
from prism.ingest import IngestSummary, Ingestor
from prism.search import SearchResult, search
from prism.settings import Settings, get_settings
from prism.store import Store

if TYPE_CHECKING:
    from prism.captioning.base import Caption
    from prism.recommend import RecommendResult
    from prism.similar import SimilarBy, SimilarResult
    from tools.transcribe_audio import TranscribeAudioOutput


class PrismService:
    """Prism's capabilities over one settings object and one store."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings)
        return self._store

    def ingest(self, path: Path, limit: int | None = None,
               on_batch: Callable[[IngestSummary, int], None] | None = None) -> IngestSummary:
        """Ingest a catalog (JSONL file or folder); idempotent and resumable."""
        rows = read_catalog(Path(path), self.settings.max_line_bytes)
        return Ingestor(self.settings, self.store).run(rows, limit=limit, on_batch=on_batch)

    def ingest_item(self, record: dict, base: Path) -> IngestSummary:
        """Ingest one item given as a catalog record (media paths relative to ``base``): the
        same validation and pipeline as ``ingest``; a bad record is reported in ``failed``."""
        from prism.catalog import CatalogRow, parse_item

        try:
            row = CatalogRow("request", item=parse_item(record, Path(base)))
        except ValueError as exc:
            row = CatalogRow("request", error=str(exc))
        return Ingestor(self.settings, self.store).run(iter([row]))

    def search(self, text: str | None = None, image: Path | None = None, audio: Path | None = None,
               k: int = 10, where: dict | None = None) -> SearchResult:
        """Nearest items to a text, image and/or voice query, with matched evidence."""
        return search(self.store, self.settings, text=text, image=image, audio=audio, k=k, where=where)

    def evaluate(self, suite: str, ratings: Path | None = None, out_dir: Path | None = None,
                 log: Callable[[str], None] = print, seeds: tuple[int, ...] | None = None) -> dict:
        """Run the offline evaluation suite ``suite`` on the items in this store; writes
        results.json, report.md and plots to ``out_dir`` (default home/evals/<suite>).
        ``seeds`` replaces the suite's seeds (fewer seeds, a shorter run)."""
        from dataclasses import replace

        from evals.suite import SUITES, run_suite

        if suite not in SUITES:
            raise InputError(f"unknown evaluation suite '{suite}'; choose one of {', '.join(SUITES)}")
        ratings = Path(ratings or self.settings.movielens_dir / "ratings.tsv")
        out_dir = Path(out_dir or self.settings.home / "evals" / suite)
        if self.store.count_items() == 0:
            raise InputError(f"the store at {self.settings.home} holds no items: run `prism ingest` first")
        if seeds is not None and not seeds:
            raise InputError("seeds must name at least one seed")
        chosen = SUITES[suite] if seeds is None else replace(SUITES[suite], seeds=tuple(seeds))
        return run_suite(self, chosen, ratings, out_dir, log=log)

    def export_mmrec(self, protocol: str, out_dir: Path, ratings: Path | None = None) -> dict[str, str]:
        """Export a split of the ingested catalog's interactions plus item features for MMRec."""
        from evals.suite import export_split

        return export_split(self, protocol, Path(ratings or self.settings.movielens_dir / "ratings.tsv"), Path(out_dir))

    def get_item(self, item_id: str) -> dict | None:
        """An ingested item's record (document, metadata, derived texts with provenance)."""
        return self.store.get_items([item_id]).get(item_id)

    def train(self, ratings: Path | None = None, min_rating: float | None = None, fusion: str = "attention",
              epochs: int | None = None, device: str | None = None, seed: int = 0, name: str | None = None,
              log: Callable[[str], None] | None = None) -> TrainSummary:
        """Train the fusion model on ``ratings`` (default: settings.movielens_dir/ratings.tsv)
        over the stored items, with each user's latest interaction held out for early stopping;
        save the checkpoint under home/models/fusion/<name>.pt, make it current and write every
        item's fused vector to the checkpoint's own space (see prism/fused.py)."""
        from prism import fused

        return fused.train(self, Path(ratings or self.settings.movielens_dir / "ratings.tsv"), min_rating, fusion,
                           epochs or self.settings.fusion_epochs, device or self.settings.device, seed, name, log)

    def recommend(self, user_id: str, text: str | None = None, image: Path | None = None,
                  audio: Path | None = None, k: int = 10, ratings: Path | None = None) -> "RecommendResult":
        """The ``k`` best unseen items for ``user_id`` from the current fusion checkpoint, optionally
        steered by a text, image and/or voice query, each with its explanation (prism/recommend.py).
        History comes from the ratings file the checkpoint was trained on unless ``ratings`` is given."""
        from prism.recommend import recommend

        return recommend(self, str(user_id), text=text, image=image, audio=audio, k=k, ratings=ratings)

    def find_similar(self, item_id: str, by: "SimilarBy" = "text", k: int = 5) -> "SimilarResult":
        """Items like ``item_id`` by text, poster, poster-to-text (cross-modal) or fused vector."""
        from prism.similar import find_similar

        return find_similar(self.store, self.settings, str(item_id), by, k)

    def caption_image(self, path: Path) -> "Caption":
        """Caption an image file with the configured backend (tools/caption_image.py)."""
        from tools.caption_image import CaptionImageInput, caption_image

        return caption_image(CaptionImageInput(path=Path(path)), self.settings)

    def transcribe(self, path: Path, language: str | None = None) -> "TranscribeAudioOutput":
        """Transcribe an audio file with the configured Whisper backend (tools/transcribe_audio.py)."""
        from tools.transcribe_audio import TranscribeAudioInput, transcribe_audio

        return transcribe_audio(TranscribeAudioInput(path=Path(path), language=language), self.settings)

    def user_history(self, user_id: str, n: int = 10, ratings: Path | None = None) -> list[dict]:
        """The user's ``n`` most recent interactions with stored items (item_id, title, rating,
        time), from ``ratings`` or the ratings file of the current fusion checkpoint (else
        settings.movielens_dir). InputError for an unknown user."""
        from prism import fused
        from prism.recommend import history_ratings, read_ratings_rows, user_rows

        pointer = fused.current(self.settings)
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
