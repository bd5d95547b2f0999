"""Condition trees (conditions.py) compiled to Qdrant Edge filters.

Edge's quirks stay here (qdrant-edge-py 0.9.0):
- `MatchValue(True)` reaches the engine as the integer 1, which never matches a JSON boolean;
  a numpy bool survives the conversion as a boolean.
- `MatchAny` takes strings or integers, one type at a time: an `In` over mixed values is an
  any-of of one MatchAny per type, and of one equality per boolean.
- Ranges are `RangeFloat` only: bounds go as floats (exact up to 2**53; versions, in
  microseconds since 1970, stay below it until the year 2255).
"""

from __future__ import annotations

from typing import cast

import numpy
import qdrant_edge as qe

from vecpipe.store.conditions import (
    And,
    Condition,
    DateRange,
    Eq,
    In,
    IsEmpty,
    Not,
    Or,
    Range,
    Scalar,
    Text,
    split_values,
)


def compile_filter(condition: Condition) -> qe.Filter:
    """The Edge filter selecting what `condition` selects."""
    if isinstance(condition, And):
        return qe.Filter(must=[_compile(c) for c in condition.conditions])
    return qe.Filter(must=[_compile(condition)])


def _compile(condition: Condition) -> qe.FieldCondition | qe.IsEmptyCondition | qe.Filter:
    match condition:
        case Eq(field, value):
            return _equals(field.path, value)
        case In(field, values):
            return _any_of(field.path, values)
        case Range(field, gt, gte, lt, lte):
            bounds = qe.RangeFloat(gte=_float(gte), gt=_float(gt), lte=_float(lte), lt=_float(lt))
            return qe.FieldCondition(key=field.path, range=bounds)
        case DateRange(field, gt, gte, lt, lte):
            when = condition.iso
            span = qe.RangeDateTime(gte=when(gte), gt=when(gt), lte=when(lte), lt=when(lt))
            return qe.FieldCondition(key=field.path, range=span)
        case Text(field, text):
            return qe.FieldCondition(key=field.path, match=qe.MatchText(text))
        case IsEmpty(field):
            return qe.IsEmptyCondition(field.path)
        case Not(inner):
            return qe.Filter(must_not=[_compile(inner)])
        case And(conditions):
            return qe.Filter(must=[_compile(c) for c in conditions])
        case Or(conditions):
            return qe.Filter(should=[_compile(c) for c in conditions])
    raise TypeError(f"not a condition: {condition!r}")


def _equals(key: str, value: Scalar) -> qe.FieldCondition:
    if isinstance(value, bool):
        value = cast(bool, numpy.bool_(value))
    return qe.FieldCondition(key=key, match=qe.MatchValue(value))


def _any_of(key: str, values: tuple[Scalar, ...]) -> qe.FieldCondition | qe.Filter:
    if len(values) == 1:
        return _equals(key, values[0])
    strings, integers, booleans = split_values(values)
    parts: list[qe.FieldCondition] = [_equals(key, value) for value in booleans]
    if strings:
        parts.append(qe.FieldCondition(key=key, match=qe.MatchAny(strings)))
    if integers:
        parts.append(qe.FieldCondition(key=key, match=qe.MatchAny(integers)))
    return parts[0] if len(parts) == 1 else qe.Filter(should=list(parts))


def _float(bound: int | float | None) -> float | None:
    return None if bound is None else float(bound)
