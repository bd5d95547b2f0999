"""Condition trees (conditions.py) compiled to qdrant-client filters.

`MatchAny` takes strings or integers, one type at a time (pydantic's strict types refuse a
boolean there): an `In` over mixed values is an any-of of one MatchAny per type, and of one
equality per boolean, exactly as on Edge (edge/filters.py).
"""

from __future__ import annotations

from qdrant_client import models

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


def compile_filter(condition: Condition) -> models.Filter:
    """The qdrant-client filter selecting what `condition` selects."""
    if isinstance(condition, And):
        return models.Filter(must=[_compile(c) for c in condition.conditions])
    return models.Filter(must=[_compile(condition)])


def _compile(condition: Condition) -> models.Condition:
    match condition:
        case Eq(field, value):
            return _equals(field.path, value)
        case In(field, values):
            return _any_of(field.path, values)
        case Range(field, gt, gte, lt, lte):
            bounds = models.Range(gt=gt, gte=gte, lt=lt, lte=lte)
            return models.FieldCondition(key=field.path, range=bounds)
        case DateRange(field, gt, gte, lt, lte):
            span = models.DatetimeRange(gte=gte, gt=gt, lte=lte, lt=lt)
            return models.FieldCondition(key=field.path, range=span)
        case Text(field, text):
            return models.FieldCondition(key=field.path, match=models.MatchText(text=text))
        case IsEmpty(field):
            return models.IsEmptyCondition(is_empty=models.PayloadField(key=field.path))
        case Not(inner):
            return models.Filter(must_not=[_compile(inner)])
        case And(conditions):
            return models.Filter(must=[_compile(c) for c in conditions])
        case Or(conditions):
            return models.Filter(should=[_compile(c) for c in conditions])
    raise TypeError(f"not a condition: {condition!r}")


def _equals(key: str, value: Scalar) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _any_of(key: str, values: tuple[Scalar, ...]) -> models.Condition:
    if len(values) == 1:
        return _equals(key, values[0])
    strings, integers, booleans = split_values(values)
    parts: list[models.Condition] = [_equals(key, value) for value in booleans]
    if strings:
        parts.append(models.FieldCondition(key=key, match=models.MatchAny(any=strings)))
    if integers:
        parts.append(models.FieldCondition(key=key, match=models.MatchAny(any=integers)))
    return parts[0] if len(parts) == 1 else models.Filter(should=parts)
