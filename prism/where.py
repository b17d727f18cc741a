"""Chroma's metadata filters (``where``), evaluated in Python on a result's metadata.

Chroma's local store answers a filtered query by comparing the query with every entry the
filter lets through: cheap for a selective filter, slow for a broad one ("year after 1950"
on a 100k-item catalog). :func:`prism.store.Store.query` therefore first asks for more
nearest entries without the filter and keeps those that :func:`matches`; only when too few
survive (a selective filter) does Chroma filter. For that to change nothing, :func:`matches`
follows Chroma's own semantics, checked against Chroma in ``tests/test_where.py``:

* ``{"k": v}`` is ``{"k": {"$eq": v}}``; ``$and`` / ``$or`` take lists of filters;
* ``$eq``, ``$ne``, ``$in``, ``$nin`` compare scalars (``2 == 2.0``, but ``True != 1``); an entry
  without the key fails ``$eq``/``$in`` and passes ``$ne``/``$nin``;
* ``$gt``, ``$gte``, ``$lt``, ``$lte`` compare numbers; an entry without the key fails them;
* ``$contains`` / ``$not_contains`` test membership in a list value; a scalar or missing value
  contains nothing.

Anything else (a list compared with ``$eq``, a string with ``$gt``, an integer value with a
fractional operand, which Chroma compares its own way, an unknown operator, a
malformed filter) raises :class:`Unsupported`: the caller lets Chroma decide, and Chroma's
own error reaches the user for a filter that is invalid.
"""

from __future__ import annotations

import operator
from typing import Any

COMPARE = {"$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
           "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b}
MISSING = object()


class Unsupported(ValueError):
    """A filter this module does not evaluate exactly as Chroma does."""


def matches(metadata: dict[str, Any], where: dict[str, Any]) -> bool:
    """Whether an entry with ``metadata`` passes the Chroma filter ``where``."""
    if not isinstance(where, dict) or not where:
        raise Unsupported("a filter is a non-empty object")
    results = []
    for key, condition in where.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise Unsupported(f"{key} takes a non-empty list")
            parts = [matches(metadata, part) for part in condition]
            results.append(all(parts) if key == "$and" else any(parts))
        elif key.startswith("$"):
            raise Unsupported(f"unknown logical operator {key}")
        else:
            results.append(_field(metadata.get(key, MISSING), condition))
    return all(results)


def _field(value: Any, condition: Any) -> bool:
    if not isinstance(condition, dict):
        return _field(value, {"$eq": condition})
    if len(condition) != 1:
        raise Unsupported("one operator per field")
    ((op, operand),) = condition.items()
    if isinstance(value, list) and op not in ("$contains", "$not_contains"):
        raise Unsupported(f"{op} on a list value")
    if op in ("$eq", "$ne"):
        _scalar(operand)
        same = value is not MISSING and _equal(value, operand)
        return same if op == "$eq" else not same
    if op in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand or len({type(v) for v in operand}) != 1:
            raise Unsupported(f"{op} takes a non-empty list of one type")
        found = value is not MISSING and any(_equal(value, v) for v in operand)
        return found if op == "$in" else not found
    if op in COMPARE:
        if _kind(operand) != "number":
            raise Unsupported(f"{op} compares numbers")
        return value is not MISSING and _kind(value) == "number" and COMPARE[op](*_numbers(value, operand))
    if op in ("$contains", "$not_contains"):
        _scalar(operand)
        found = isinstance(value, list) and any(_equal(v, operand) for v in value)
        return found if op == "$contains" else not found
    raise Unsupported(f"unknown operator {op}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    return type(value).__name__


def _scalar(operand: Any) -> None:
    if _kind(operand) not in ("bool", "number", "str"):
        raise Unsupported("the operand must be a string, number or boolean")


def _equal(value: Any, operand: Any) -> bool:
    if _kind(value) != _kind(operand):
        return False
    return value == operand if _kind(value) != "number" else operator.eq(*_numbers(value, operand))


def _numbers(value: int | float, operand: int | float) -> tuple[int | float, int | float]:
    # Chroma compares an integer value with a fractional operand in a way of its own
    # ({"rank": 0.5} keeps rank 0): leave those to Chroma.
    if isinstance(value, int) and isinstance(operand, float) and not operand.is_integer():
        raise Unsupported("an integer value against a fractional operand")
    return value, operand
