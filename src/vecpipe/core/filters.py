"""The filter language of searches and of the record routes: JSON in, a condition tree out.

`parse_filter` is the one entry point: search, list, count, delete-by-filter and sync
scopes all go through it, so they all speak the same language (docs/search.md):

    {"lang": "en"}                          equality (a string, integer or boolean)
    {"lang": ["en", "de"]}                  any of the values
    {"year": {"$gte": 2024, "$lt": 2026}}   operators: $eq $ne $in $nin $gt $gte $lt $lte
                                            $exists $text; several in one object all hold
    {"at": {"$gte": "2024-01-01T00:00:00Z"}}  ranges over ISO-8601 datetimes
    {"$or": [{...}, {...}]}, {"$and": [...]}, {"$not": {...}}
    {"id": {"$in": ["r1", "r2"]}}           `id` is the record id, not a metadata key

Keys of one object all hold (an implicit $and). A key is a dotted metadata path; `id` is
the record id. Errors name where the filter is wrong (`filter.$or[1].year.$gt: ...`), and
size limits (clauses, nesting, values) raise LimitExceeded, so no filter reaches a store
that would cost it more than a bounded amount of work.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vecpipe.errors import LimitExceeded, ValidationError
from vecpipe.store.conditions import (
    RECORD,
    And,
    Condition,
    DateRange,
    Eq,
    Field,
    In,
    IsEmpty,
    Not,
    Or,
    Range,
    Scalar,
    Text,
    meta,
)

MAX_FILTER_KEYS = 16
"""Keys (and operators) in one object."""
MAX_FILTER_BRANCHES = 64
"""Filters in one $and or $or list."""
MAX_FILTER_VALUES = 256
"""Values in one list ($in, $nin, the shorthand's any-of)."""
MAX_FILTER_CLAUSES = 256
"""Conditions in a whole filter: every comparison, $and, $or and $not counts one."""
MAX_FILTER_DEPTH = 8
"""Objects nested inside one another through $and, $or and $not."""
MAX_TEXT_LENGTH = 256
ID_KEY = "id"

_PATH = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
_INT64 = (-(2**63), 2**63 - 1)
_LOGIC = ("$and", "$or", "$not")
_RANGE = ("$gt", "$gte", "$lt", "$lte")
_OPERATORS = ("$eq", "$ne", "$in", "$nin", *_RANGE, "$exists", "$text")
_ID_OPERATORS = ("$eq", "$ne", "$in", "$nin")


def parse_filter(obj: Any) -> Condition | None:
    """The condition a JSON filter stands for; None when it selects everything (no filter,
    or an empty one). Raises ValidationError (LimitExceeded for size limits) naming where
    the filter is wrong."""
    if obj is None or obj == {}:
        return None
    return _Parser().filter(obj, "filter", 1)


@dataclass
class _Parser:
    clauses: int = 0

    def count(self, where: str) -> None:
        self.clauses += 1
        if self.clauses > MAX_FILTER_CLAUSES:
            raise LimitExceeded(f"{where}: a filter may hold at most {MAX_FILTER_CLAUSES} clauses")

    def filter(self, obj: object, where: str, depth: int) -> Condition:
        """A filter object: every key holds."""
        if depth > MAX_FILTER_DEPTH:
            raise LimitExceeded(f"{where}: filters nest at most {MAX_FILTER_DEPTH} deep")
        if not isinstance(obj, Mapping):
            raise ValidationError(f"{where}: a filter is an object, not {_kind(obj)}")
        if not obj:
            raise ValidationError(f"{where}: an empty filter object inside a filter")
        if len(obj) > MAX_FILTER_KEYS:
            raise LimitExceeded(f"{where}: an object may hold at most {MAX_FILTER_KEYS} keys")
        parts = [self.clause(key, value, where, depth) for key, value in obj.items()]
        return parts[0] if len(parts) == 1 else And(*parts)

    def clause(self, key: object, value: object, where: str, depth: int) -> Condition:
        if not isinstance(key, str):
            raise ValidationError(f"{where}: keys are strings")
        here = f"{where}.{key}"
        if key.startswith("$"):
            if key not in _LOGIC:
                raise ValidationError(
                    f"{here}: unknown operator (expected a key, or one of {', '.join(_LOGIC)})"
                )
            self.count(here)
            if key == "$not":
                return Not(self.filter(value, here, depth + 1))
            if not isinstance(value, list) or not value:
                raise ValidationError(f"{here}: takes a non-empty list of filter objects")
            if len(value) > MAX_FILTER_BRANCHES:
                raise LimitExceeded(f"{here}: at most {MAX_FILTER_BRANCHES} filters")
            items = [self.filter(v, f"{here}[{i}]", depth + 1) for i, v in enumerate(value)]
            if len(items) == 1:
                return items[0]
            return And(*items) if key == "$and" else Or(*items)
        field = _field(key, here)
        if isinstance(value, Mapping):
            return self.operators(field, value, here)
        self.count(here)
        return _any_of(field, _values(value, here, field))

    def operators(self, field: Field, ops: Mapping[Any, Any], where: str) -> Condition:
        if not ops:
            raise ValidationError(f"{where}: an empty operator object")
        if len(ops) > MAX_FILTER_KEYS:
            raise LimitExceeded(f"{where}: at most {MAX_FILTER_KEYS} operators")
        allowed = _ID_OPERATORS if field == RECORD else _OPERATORS
        parts: list[Condition] = []
        bounds: dict[str, Any] = {}
        for op, operand in ops.items():
            here = f"{where}.{op}"
            if op not in allowed:
                known = ", ".join(allowed)
                if not (isinstance(op, str) and op.startswith("$")):
                    raise ValidationError(
                        f"{here}: operators and values cannot mix in one "
                        f"object (operators: {known})"
                    )
                raise ValidationError(f"{here}: unknown operator (known: {known})")
            self.count(here)
            if op in _RANGE:
                bounds[op[1:]] = operand
            else:
                parts.append(_OPERATOR_PARSERS[op](field, operand, here))
        if bounds:
            parts.append(_range(field, bounds, where))
        return parts[0] if len(parts) == 1 else And(*parts)


def _field(key: str, where: str) -> Field:
    if key == ID_KEY:
        return RECORD
    if not _PATH.match(key):
        raise ValidationError(
            f"{where}: keys are dotted names of letters, digits, '_' and '-' (or an operator)"
        )
    return meta(key)


def _values(value: object, where: str, field: Field) -> list[Scalar]:
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        raise ValidationError(f"{where}: an empty list matches nothing")
    if len(items) > MAX_FILTER_VALUES:
        raise LimitExceeded(f"{where}: at most {MAX_FILTER_VALUES} values")
    return [
        _scalar(item, f"{where}[{i}]" if len(items) > 1 else where, field)
        for i, item in enumerate(items)
    ]


def _scalar(value: object, where: str, field: Field) -> Scalar:
    if field == RECORD and not isinstance(value, str):
        raise ValidationError(f"{where}: record ids are strings, not {_kind(value)}")
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValidationError(f"{where}: integer out of 64-bit range")
        return value
    raise ValidationError(
        f"{where}: values are strings, integers or booleans, not {_kind(value)}"
        + (" (a float matches with $gte and $lte)" if isinstance(value, float) else "")
    )


def _any_of(field: Field, values: list[Scalar]) -> Condition:
    return Eq(field, values[0]) if len(values) == 1 else In(field, values)


def _eq(field: Field, operand: object, where: str) -> Condition:
    if isinstance(operand, list | tuple):
        raise ValidationError(f"{where}: takes one value (use $in for several)")
    return Eq(field, _scalar(operand, where, field))


def _ne(field: Field, operand: object, where: str) -> Condition:
    return Not(_eq(field, operand, where))


def _in(field: Field, operand: object, where: str) -> Condition:
    if not isinstance(operand, list):
        raise ValidationError(f"{where}: takes a list of values")
    return _any_of(field, _values(operand, where, field))


def _nin(field: Field, operand: object, where: str) -> Condition:
    return Not(_in(field, operand, where))


def _exists(field: Field, operand: object, where: str) -> Condition:
    if not isinstance(operand, bool):
        raise ValidationError(f"{where}: takes true or false, not {_kind(operand)}")
    return Not(IsEmpty(field)) if operand else IsEmpty(field)


def _text(field: Field, operand: object, where: str) -> Condition:
    if not isinstance(operand, str) or not any(c.isalnum() for c in operand):
        raise ValidationError(f"{where}: takes a string of at least one word")
    if len(operand) > MAX_TEXT_LENGTH:
        raise LimitExceeded(f"{where}: at most {MAX_TEXT_LENGTH} characters")
    return Text(field, operand)


_OPERATOR_PARSERS: dict[str, Callable[[Field, object, str], Condition]] = {
    "$eq": _eq,
    "$ne": _ne,
    "$in": _in,
    "$nin": _nin,
    "$exists": _exists,
    "$text": _text,
}


def _range(field: Field, bounds: Mapping[str, Any], where: str) -> Condition:
    """Numbers, or ISO-8601 datetime strings: all bounds of one kind."""
    numbers = {k: v for k, v in bounds.items() if _is_number(v)}
    strings = {k: v for k, v in bounds.items() if isinstance(v, str)}
    for op, bound in bounds.items():
        if op not in numbers and op not in strings:
            raise ValidationError(
                f"{where}.${op}: bounds are numbers or ISO-8601 datetimes, not {_kind(bound)}"
            )
    if numbers and strings:
        raise ValidationError(f"{where}: bounds mix numbers and datetimes")
    if numbers:
        return Range(field, **numbers)
    return DateRange(field, **{op: _datetime(v, f"{where}.${op}") for op, v in strings.items()})


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not isinstance(value, float) or math.isfinite(value)


def _datetime(value: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"{where}: not an ISO-8601 datetime (e.g. 2024-05-01 or 2024-05-01T12:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return "a non-finite number"
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")
