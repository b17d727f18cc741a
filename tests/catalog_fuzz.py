"""A seeded generator of random catalog lines that knows, by construction, which lines are good.

Each line starts as a good record (random ids, titles, field names and values of every accepted
type and of sizes up to the limits, markup-like and non-Latin names included) and, for about
two lines in five, gets exactly one fault from :data:`FAULTS`. The expected outcome is decided
from the catalog format's stated rules (``prism/catalog.py``'s docstring and limits), never by
calling the validator under test.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass

from prism.store import ITEMS

LINE_LIMIT = 1024 * 1024  # settings.max_line_bytes
TITLE_LIMIT = 1_000
KEY_LIMIT = 64

WORDS = ["quiet", "orbit", "harbour", "[/]", "[bold red]", "lighthouse", "猫", "宇宙", "café", "naïve", "ünïcode",
         "🎬", "noir", "ghost", "</data>", "Assistant:", "{\"x\": 1}", "null", "NaN", "--", "' OR 1=1", "\\n",
         "%s", "${HOME}", "../..", "<script>", "jazz", "winter", "train", "Привет", "مرحبا", "שלום"]
GOOD_KEYS = ["genres", "year", "director", "rating", "lang", "country", "[/]", "[bold]x[/bold]",
             "[link=file:///etc/passwd]x", "年份", "émotion", "release date", "a.b", "_private",
             "Title", "IMAGE_count", "document", "id", "where", "tags", "runtime", "plot", "description",
             "summary", "notes", "x" * KEY_LIMIT]
RESERVED_KEYS = ["#document", "#embedding", "chroma:document", "chroma:id", "", "   ", "content_hash",
                 "n_images", "n_audio", "derived_json", "instruction_spans", "field", "$weird", "$and"]


@dataclass(frozen=True)
class FuzzLine:
    """One catalog line (raw bytes, no newline) and what must become of it."""

    raw: bytes
    fault: str | None  # None: a good line
    item_id: str | None = None  # the stored id of a good line
    title: str | None = None  # its stored title

    @property
    def good(self) -> bool:
        return self.fault is None


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def good_value(rng: random.Random) -> object:
    kind = rng.choice(["short", "long", "int", "big_int", "float", "bool", "list", "empty_list", "none", "blank"])
    return {"short": lambda: words(rng, rng.randint(1, 3))[:40],
            "long": lambda: words(rng, rng.randint(10, 400)),
            "int": lambda: rng.randint(-10**6, 10**6),
            "big_int": lambda: rng.choice([2**63 - 1, -(2**63)]),
            "float": lambda: rng.choice([0.0, -0.0, 1e308, -1e-308, 3.25, rng.random()]),
            "bool": lambda: rng.random() < 0.5,
            "list": lambda: [words(rng, rng.randint(1, 2)) for _ in range(rng.randint(1, 5))],
            "empty_list": lambda: rng.choice([[], [""], ["", "x"]]),
            "none": lambda: None,
            "blank": lambda: rng.choice(["", "   ", "\n"])}[kind]()


def good_record(rng: random.Random, index: int) -> tuple[dict, str, str]:
    """A record every rule accepts, with its stored id and title."""
    style = rng.choice(["plain", "int", "unicode", "padded", "markup"])
    item_id: object = {"plain": f"fz{index}", "int": 100_000 + index, "unicode": f"фильм-{index}-猫",
                       "padded": f"  fz{index}  ", "markup": f"[bold]fz{index}"}[style]
    size = rng.choice([1, 3, 8, 40, TITLE_LIMIT])
    title = (words(rng, size) if size < TITLE_LIMIT else "T" * TITLE_LIMIT)[:TITLE_LIMIT].strip() or "untitled"
    record: dict = {"item_id": item_id, "title": title}
    for _ in range(rng.randint(0, 6)):
        record[rng.choice(GOOD_KEYS)] = good_value(rng)
    if rng.random() < 0.5:
        record["description"] = words(rng, rng.randint(5, 60))
    if rng.random() < 0.04:  # a huge text, still under the line limit
        record["description"] = rng.choice(["猫が海辺の宿を営む。", "A keeper paints ships. "]) * rng.randint(2_000, 15_000)
    if rng.random() < 0.2:
        record["metadata"] = {rng.choice(GOOD_KEYS): good_value(rng) for _ in range(rng.randint(0, 3))}
    return record, str(item_id).strip(), title.strip()


def with_fault(rng: random.Random, record: dict, fault: str) -> object:
    """``record`` made bad by ``fault`` (a JSON value; the byte-level faults are applied later)."""
    record = dict(record)
    key_value = rng.choice(WORDS)
    if fault == "reserved_key":
        key = rng.choice(RESERVED_KEYS)
        if rng.random() < 0.5:
            record[key] = key_value
        else:
            record["metadata"] = {key: key_value}
    elif fault == "long_key":
        record["k" * rng.randint(KEY_LIMIT + 1, 300)] = key_value
    elif fault == "control_key":
        record[rng.choice(["a\x00b", "tab\tkey", "new\nline", "bell\x07", "del\x7f"])] = key_value
    elif fault == "non_finite":
        value = rng.choice([math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1, 10**30])
        if rng.random() < 0.5:
            record["score"] = value
        else:
            record["metadata"] = {"score": value}
    elif fault == "bad_id":
        choice = rng.choice(["missing", None, True, [1], {}, "", "   ", "a/b", "a\\b", "a\nb", 1.5])
        if choice == "missing":
            record.pop("item_id")
        else:
            record["item_id"] = choice
    elif fault == "bad_title":
        choice = rng.choice(["missing", 5, "", "   ", ["x"], None, "long"])
        if choice == "missing":
            record.pop("title")
        else:
            record["title"] = "L" * rng.randint(TITLE_LIMIT + 1, 5_000) if choice == "long" else choice
    elif fault == "bad_value":
        record[rng.choice(["shape", "cast", "nested"])] = rng.choice([{"x": 1}, [1, 2], [["a"]], ["a", 1], [None]])
    elif fault == "bad_metadata":
        record["metadata"] = rng.choice(["x", [1], 5, True])
    elif fault == "bad_media":
        record[rng.choice(["image", "images", "audio"])] = rng.choice(
            ["../../etc/hosts", "/etc/passwd", ["../outside.png"], 5, [""], {"path": "x"}])
    elif fault == "not_object":
        return rng.choice([[1, 2], "a string", 42, None, [record]])
    return record


FAULTS = ["reserved_key", "long_key", "control_key", "non_finite", "bad_id", "bad_title", "bad_value",
          "bad_metadata", "bad_media", "not_object", "malformed", "not_utf8", "too_long"]


def fuzz_lines(n: int, seed: int = 0, fault_rate: float = 0.4) -> list[FuzzLine]:
    """``n`` lines; good lines have distinct ids; a bad line sometimes reuses a good line's id."""
    rng = random.Random(seed)
    lines: list[FuzzLine] = []
    good_ids: list[object] = []
    for index in range(n):
        record, item_id, title = good_record(rng, index)
        fault = rng.choice(FAULTS) if rng.random() < fault_rate else None
        if fault is not None and good_ids and rng.random() < 0.3:
            record["item_id"] = rng.choice(good_ids)  # a bad version of a stored item must not replace it
        value = with_fault(rng, record, fault) if fault else record
        raw = json.dumps(value, ensure_ascii=rng.random() < 0.3).encode("utf-8")
        if fault == "malformed":
            raw = raw[: rng.randint(1, max(1, len(raw) - 1))] if rng.random() < 0.7 else b"{'single': 'quotes'}"
        elif fault == "not_utf8":
            cut = rng.randint(0, len(raw))
            raw = raw[:cut] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]) + raw[cut:]
        elif fault == "too_long":
            raw = json.dumps({**record, "description": "x" * (LINE_LIMIT + 1)}).encode()
        if fault is None and len(raw) + 1 > LINE_LIMIT:  # the limit counts the line with its newline
            fault = "too_long"
        if fault is None:
            good_ids.append(record["item_id"])
            lines.append(FuzzLine(raw, None, item_id, title))
        else:
            lines.append(FuzzLine(raw, fault))
    return lines


def store_problems(service) -> list[str]:
    """Where a store's vectors and item records disagree: a vector of an item with no record,
    a vector carrying another version's title, or an item whose vectors are not exactly its
    document, its images and its derived texts."""
    records = service.store.get_items(service.store.all_item_ids())
    fields: dict[str, set[str]] = {item_id: set() for item_id in records}
    problems = []
    for name in service.store.spaces():
        if name == ITEMS:  # the records themselves
            continue
        got = service.store.collection(name).get(include=["metadatas"])
        for entry_id, meta in zip(got["ids"], got["metadatas"]):
            record = records.get(meta.get("item_id"))
            if record is None:
                problems.append(f"{name}: vector {entry_id} of an item without a record")
            elif meta.get("title") != record["metadata"]["title"]:
                problems.append(f"{name}: vector {entry_id} carries the title {meta.get('title')!r}")
            elif meta.get("field") != "fused":  # a fusion checkpoint's own space: one vector an item
                fields[meta["item_id"]].add(meta["field"])
    for item_id, record in records.items():
        expected = {"document", *(f"image:{i}" for i in range(record["metadata"].get("n_images", 0))),
                    *(d["field"] for d in record["derived"])}
        if fields[item_id] != expected:
            problems.append(f"item {item_id}: vectors {sorted(fields[item_id])}, expected {sorted(expected)}")
    return problems
