"""The catalog format and its loaders.

A catalog is JSONL, one item a line::

    {"item_id": "m1", "title": "Moonfall Quiet", "description": "...", "image": "img/m1.png",
     "audio": "audio/m1.wav", "genres": ["Sci-Fi"], "year": 1999}

* ``item_id`` (string or integer) and ``title`` (string) are required.
* ``image`` / ``images`` and ``audio`` are paths relative to the catalog file.
* Known prose fields (``description``, ``plot``, ``summary`` ...) and any string longer than
  ``SHORT_TEXT_CHARS`` are free text (embedded and searchable); short strings, lists of
  strings, numbers and booleans are metadata usable as filters (and also searchable text).
  Anything else is a per-line error.

``../shared/data/movielens-100k-mm`` is read by :func:`read_movielens` into the same items.
Every loader yields :class:`CatalogRow` objects: an item, or an error naming the line, so one
bad line never stops a batch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

MetadataValue = str | int | float | bool | list[str]

RESERVED = {"item_id", "title", "image", "images", "audio", "metadata"}
# Metadata keys Prism writes itself, and key forms the vector store (Chroma) reserves.
INTERNAL_KEYS = {"content_hash", "n_images", "n_audio", "instruction_spans", "derived_json", "item_id", "field"}
KEY_MAX_CHARS = 64
TITLE_MAX_CHARS = 1_000
SHORT_TEXT_CHARS = 40
PROSE_FIELDS = {"description", "plot", "summary", "overview", "synopsis", "text", "tagline", "review", "notes"}


class CatalogItem(BaseModel):
    """One validated catalog item; media paths are absolute."""

    item_id: str
    title: str
    texts: dict[str, str] = Field(default_factory=dict, description="Free text fields by name.")
    images: list[Path] = Field(default_factory=list)
    audio: list[Path] = Field(default_factory=list)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)

    def document(self) -> str:
        """The text an item is searched by: title, free texts, then list metadata."""
        parts = [self.title, *self.texts.values()]
        for key, value in self.metadata.items():
            if isinstance(value, list) and value:
                parts.append(f"{key.capitalize()}: {', '.join(value)}.")
            elif isinstance(value, str):
                parts.append(f"{key.capitalize()}: {value}.")
        return "\n".join(p for p in parts if p)

    def content_hash(self, pipeline_fingerprint: str = "") -> str:
        """sha256 over the item's fields, its media bytes and the pipeline that processes it.

        Any change to the text, a media file or the models used yields a new hash, so
        re-ingestion knows exactly what to redo.
        """
        digest = hashlib.sha256(pipeline_fingerprint.encode())
        digest.update(self.model_dump_json(exclude={"images", "audio"}).encode())
        for path in [*self.images, *self.audio]:
            digest.update(str(path.name).encode())
            try:
                with open(path, "rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
            except OSError:
                digest.update(b"<missing>")
        return digest.hexdigest()


@dataclass(frozen=True)
class CatalogRow:
    """A loader's output for one line: an item, or the reason the line was rejected."""

    source: str
    item: CatalogItem | None = None
    error: str | None = None


def _path_list(value: object, field: str, base: Path, confine: bool = True) -> list[Path]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        raise ValueError(f"field '{field}' must be a path or a list of paths, got {type(value).__name__}")
    paths = []
    for v in values:
        path = Path(v)
        path = path if path.is_absolute() else (base / path)
        # A catalog names its own media: "../" or a link out of its folder would let any
        # readable file on the server be ingested and then served.
        if confine and not path.resolve().is_relative_to(Path(base).resolve()):
            raise ValueError(f"field '{field}': '{v}' is outside the catalog's folder (set "
                             "allow_media_outside_catalog to allow it)")
        paths.append(path)
    return paths


def check_key(key: object) -> str:
    """A record's field name as Prism may store it; ValueError naming it otherwise."""
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"field name {key!r} is empty")
    if len(key) > KEY_MAX_CHARS:
        raise ValueError(f"field name '{key[:KEY_MAX_CHARS]}…' is {len(key)} characters, over {KEY_MAX_CHARS}")
    if key.startswith(("#", "chroma:", "$")) or key in INTERNAL_KEYS:
        raise ValueError(f"field name {key!r} is reserved (names starting with '#', '$' or 'chroma:', and "
                         f"{', '.join(sorted(INTERNAL_KEYS))})")
    if any(not c.isprintable() for c in key):
        raise ValueError(f"field name {key!r} holds control characters")
    return key


def _check_value(key: str, value: object) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"field '{key}' is {value}, not a finite number")
    # The store keeps 64-bit integers; a larger one would silently become a float.
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ValueError(f"field '{key}' is {value}, outside the 64-bit integer range")


def parse_item(record: object, base: Path, confine: bool = True) -> CatalogItem:
    """Validate one decoded JSON record; ValueError names the offending field. Media paths are
    relative to ``base`` and, with ``confine``, must resolve inside it."""
    if not isinstance(record, dict):
        raise ValueError(f"a line must be a JSON object, got {type(record).__name__}")
    item_id = record.get("item_id")
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)) or not str(item_id).strip():
        raise ValueError(f"field 'item_id' must be a non-empty string or integer, got {item_id!r}")
    if any(c in str(item_id) for c in "/\\") or any(not c.isprintable() for c in str(item_id)):
        raise ValueError(f"field 'item_id' {str(item_id)[:80]!r} holds a slash, backslash or control character "
                         "(it names the item in URLs and paths)")
    title = record.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"field 'title' must be a non-empty string, got {title!r}")
    if len(title) > TITLE_MAX_CHARS:
        raise ValueError(f"field 'title' is {len(title)} characters, over {TITLE_MAX_CHARS}")
    images: list[Path] = []
    for key in ("image", "images"):
        if record.get(key) is not None:
            images += _path_list(record[key], key, base, confine)
    audio = _path_list(record["audio"], "audio", base, confine) if record.get("audio") is not None else []
    texts: dict[str, str] = {}
    metadata: dict[str, MetadataValue] = {}
    extra = dict(record.get("metadata") or {}) if isinstance(record.get("metadata"), dict) else {}
    if record.get("metadata") is not None and not isinstance(record.get("metadata"), dict):
        raise ValueError("field 'metadata' must be an object")
    for key, value in record.items():
        if key in RESERVED or value is None:
            continue
        check_key(key)
        if isinstance(value, str) and (key in PROSE_FIELDS or len(value.strip()) > SHORT_TEXT_CHARS):
            if value.strip():
                texts[key] = value.strip()
        else:
            extra[key] = value
    for key, value in extra.items():
        check_key(key)
        _check_value(key, value)
        if value is None:  # absent, as at the top level
            continue
        if isinstance(value, str):
            if value.strip():
                metadata[key] = value.strip()
        elif isinstance(value, (bool, int, float)):
            metadata[key] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            if strings := [v for v in value if v]:  # an empty list is absent, like an empty string
                metadata[key] = strings
        else:
            raise ValueError(f"field '{key}' must be text, a number, a boolean or a list of strings")
    return CatalogItem(item_id=str(item_id).strip(), title=title.strip(), texts=texts,
                       images=images, audio=audio, metadata=metadata)


def read_jsonl(path: Path, max_line_bytes: int = 1 << 20, confine: bool = True) -> Iterator[CatalogRow]:
    """Yield a row per non-blank line of a JSONL catalog; malformed lines become error rows."""
    path = Path(path)
    base = path.parent
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            source = f"{path.name}:{number}"
            if not raw.strip():
                continue
            if len(raw) > max_line_bytes:
                yield CatalogRow(source, error=f"line is {len(raw)} bytes, over the limit of {max_line_bytes}")
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
                yield CatalogRow(source, item=parse_item(record, base, confine))
            except UnicodeDecodeError as exc:
                yield CatalogRow(source, error=f"line is not UTF-8: {exc}")
            except json.JSONDecodeError as exc:
                yield CatalogRow(source, error=f"malformed JSON: {exc.msg} at column {exc.colno}")
            except ValueError as exc:
                yield CatalogRow(source, error=str(exc))


def read_movielens(root: Path) -> Iterator[CatalogRow]:
    """Items of the movielens-100k-mm folder (items.jsonl + posters/), as catalog rows.

    Plot, director and cast become text and metadata; the year comes from the release date.
    """
    base = Path(root)
    with open(base / "items.jsonl", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            source = f"items.jsonl:{number}"
            try:
                raw = json.loads(line)
                record: dict[str, object] = {
                    "item_id": raw["item_id"],
                    "title": raw["title"],
                    "description": raw.get("description"),
                    "genres": raw.get("genres") or [],
                    "director": raw.get("director") or [],
                    "cast": raw.get("cast") or [],
                }
                date = raw.get("release_date") or ""
                if date[-4:].isdigit():
                    record["year"] = int(date[-4:])
                if raw.get("poster"):
                    record["image"] = raw["poster"]
                yield CatalogRow(source, item=parse_item(record, base))
            except (ValueError, KeyError) as exc:
                yield CatalogRow(source, error=f"{type(exc).__name__}: {exc}")


def read_catalog(path: Path, max_line_bytes: int = 1 << 20, confine: bool = True) -> Iterator[CatalogRow]:
    """Rows from a JSONL file, a MovieLens-MM folder, or a folder holding ``catalog.jsonl``;
    ``confine``: media paths must stay inside the catalog's folder."""
    path = Path(path)
    if path.is_dir():
        if (path / "items.jsonl").is_file() and (path / "ratings.tsv").is_file():
            return read_movielens(path)
        if (path / "catalog.jsonl").is_file():
            return read_jsonl(path / "catalog.jsonl", max_line_bytes, confine)
        raise FileNotFoundError(f"{path} holds neither catalog.jsonl nor a MovieLens-MM items.jsonl")
    if not path.is_file():
        raise FileNotFoundError(f"catalog {path} does not exist")
    return read_jsonl(path, max_line_bytes, confine)
