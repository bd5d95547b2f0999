"""The one condition tree: what a search, a count, a delete or an update selects.

Backend-free: each backend compiles a tree into its own filter type (edge/filters.py,
qdrant/filters.py). A condition reads a `Field`: a system field of the point layout
(`TENANT`, `RECORD`, `CHUNK`, `VERSION`) or a path into the record's metadata (`meta("a.b")`).
The tenant condition is never left to a caller: the store adds it to every tree (`for_tenant`).

Semantics, those of Qdrant's payload filters, which every backend keeps (tests/store/
contract.py and test_congruence.py hold both adapters to them):

- Eq, In: JSON values compared exactly. The string "1", the integer 1 and the boolean true
  are three values: `{"k": [false]}` never matches `k = 0`. A stored list matches when any
  of its items does.
- Range: numbers (integers and floats), never booleans or strings.
- DateRange: ISO-8601 / RFC 3339 datetime strings, compared as instants (a value without
  an offset is UTC); values that are not datetimes never match.
- Text: a string (or a list's string item) holding every word of the text, case-insensitive
  (Qdrant's MatchText without a full-text index).
- IsEmpty: the field is missing, null, or an empty list.
- Not(c): every point c does not select, points without the field included.
- And, Or: all, any, of one condition or more.

The system conditions every write and read needs are built here once (`records`,
`chunk_zeros`, `not_newer_than`, ...), and today's `{key: value | [values]}` search filter
parses into a tree (`parse_metadata_filter`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vecpipe.errors import LimitExceeded, ValidationError
from vecpipe.store import payload

Scalar = str | int | bool
"""A value Eq and In compare with: a JSON string, integer or boolean (never a float)."""
Number = int | float

MAX_FILTER_KEYS = 16
MAX_FILTER_VALUES = 256
_METADATA_PATH = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
_SYSTEM_FIELDS = frozenset(
    {payload.TENANT_ID, payload.RECORD_ID, payload.CHUNK_INDEX, payload.VERSION, payload.EXPIRES_AT}
)
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Field:
    """A field a condition reads: a system field, or a dotted path into the metadata."""

    name: str
    metadata: bool = False

    def __post_init__(self) -> None:
        if self.metadata and not _METADATA_PATH.match(self.name):
            raise ValidationError(
                "metadata paths are dotted names of letters, digits, '_' and '-' (got an invalid "
                "path)"
            )
        if not self.metadata and self.name not in _SYSTEM_FIELDS:
            raise ValidationError(f"no system field {self.name!r}")

    @property
    def path(self) -> str:
        """The payload path of the field in the shared layout (payload.py)."""
        return f"{payload.METADATA}.{self.name}" if self.metadata else self.name


def meta(path: str) -> Field:
    """A path into the record's metadata: `meta("a.b")` reaches `{"a": {"b": ...}}`."""
    return Field(path, metadata=True)


TENANT = Field(payload.TENANT_ID)
RECORD = Field(payload.RECORD_ID)
CHUNK = Field(payload.CHUNK_INDEX)
VERSION = Field(payload.VERSION)
EXPIRES = Field(payload.EXPIRES_AT)


@dataclass(frozen=True)
class Eq:
    field: Field
    value: Scalar

    def __post_init__(self) -> None:
        _check_scalar(self.value)


@dataclass(frozen=True)
class In:
    """The field equals one of the values (at least one)."""

    field: Field
    values: tuple[Scalar, ...]

    def __init__(self, field: Field, values: Iterable[Scalar]) -> None:
        items = tuple(values)
        if not items:
            raise ValidationError("'in' needs at least one value")
        for item in items:
            _check_scalar(item)
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "values", items)


@dataclass(frozen=True)
class Range:
    field: Field
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None

    def __post_init__(self) -> None:
        bounds = [b for b in (self.gt, self.gte, self.lt, self.lte) if b is not None]
        if not bounds:
            raise ValidationError("a range needs a bound")
        for bound in bounds:
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise ValidationError("range bounds are numbers")
            if isinstance(bound, float) and not math.isfinite(bound):
                raise ValidationError("range bounds are finite numbers")


@dataclass(frozen=True)
class DateRange:
    """Bounds on an ISO-8601 datetime string field (timezone-aware; naive means UTC)."""

    field: Field
    gt: datetime | None = None
    gte: datetime | None = None
    lt: datetime | None = None
    lte: datetime | None = None

    def __post_init__(self) -> None:
        bounds = [b for b in (self.gt, self.gte, self.lt, self.lte) if b is not None]
        if not bounds:
            raise ValidationError("a range needs a bound")
        for bound in bounds:
            if not isinstance(bound, datetime) or bound.tzinfo is None:
                raise ValidationError("datetime bounds are timezone-aware datetimes")

    def iso(self, bound: datetime | None) -> str | None:
        """A bound as the RFC 3339 string both engines parse."""
        return None if bound is None else bound.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Text:
    """A string field (or a list of strings) holds these words (case-insensitive)."""

    field: Field
    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not any(c.isalnum() for c in self.text):
            raise ValidationError("a text match needs at least one word")


@dataclass(frozen=True)
class IsEmpty:
    """The field is missing, null, or an empty list."""

    field: Field


@dataclass(frozen=True)
class Not:
    condition: Condition


@dataclass(frozen=True)
class And:
    conditions: tuple[Condition, ...]

    def __init__(self, *conditions: Condition) -> None:
        if not conditions:
            raise ValidationError("'and' needs at least one condition")
        object.__setattr__(self, "conditions", conditions)


@dataclass(frozen=True)
class Or:
    conditions: tuple[Condition, ...]

    def __init__(self, *conditions: Condition) -> None:
        if not conditions:  # Qdrant reads an empty `should` as "anything": never build one
            raise ValidationError("'or' needs at least one condition")
        object.__setattr__(self, "conditions", conditions)


Condition = Eq | In | Range | DateRange | Text | IsEmpty | Not | And | Or


def _check_scalar(value: object) -> None:
    if isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValidationError("integer out of 64-bit range")
        return
    raise ValidationError(f"values are strings, integers or booleans, not {type(value).__name__}")


def split_values(values: Iterable[Scalar]) -> tuple[list[str], list[int], list[bool]]:
    """In's values by JSON type, for backends whose any-of match takes one type at a time
    (Qdrant's MatchAny: strings or integers; booleans go as equalities)."""
    strings = [v for v in values if isinstance(v, str)]
    integers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    booleans = sorted({v for v in values if isinstance(v, bool)})
    return strings, integers, booleans


# ---------------------------------------------------------------------------- system conditions


def for_tenant(tenant_id: str, where: Condition | None = None) -> Condition:
    """The tenant's points, and among them what `where` selects: what the store runs."""
    tenant = Eq(TENANT, tenant_id)
    return tenant if where is None else And(tenant, where)


def visible(tenant_id: str, where: Condition | None = None) -> Condition:
    """What a read of the tenant may see (search, get, list, count), and among it what
    `where` selects. Reads build their selection here, writes and deletes with
    `for_tenant`: what a read may see can be narrower than what the tenant has stored:
    records whose `expires_at` is past are invisible from that instant, before any sweep."""
    live = not_expired(time.time())
    return for_tenant(tenant_id, live if where is None else And(live, where))


def not_expired(now: float) -> Condition:
    return Or(IsEmpty(EXPIRES), Range(EXPIRES, gt=now))


def expired(now: float) -> Condition:
    """Records whose expiry is past (what the sweeper deletes)."""
    return Range(EXPIRES, lte=now)


def facet_scope(tenant_id: str, where: Condition | None) -> Condition:
    """What facets count: the records (chunk 0s) a read of the tenant sees that `where` selects."""
    return visible(tenant_id, chunk_zeros() if where is None else And(where, chunk_zeros()))


def keyword_keys(condition: Condition | None) -> set[str]:
    """The metadata keys a condition compares with strings (Eq, In): those a keyword
    index speeds up."""
    match condition:
        case Eq(field, value) if field.metadata and isinstance(value, str):
            return {field.name}
        case In(field, values) if field.metadata and any(isinstance(v, str) for v in values):
            return {field.name}
        case Not(inner):
            return keyword_keys(inner)
        case And(conditions) | Or(conditions):
            return set().union(*(keyword_keys(c) for c in conditions))
    return set()


def range_keys(condition: Condition | None) -> set[str]:
    """The metadata keys a condition bounds with numbers (Range): those a float index
    speeds up (it holds integers and floats; other values fall back to the payload)."""
    match condition:
        case Range(field) if field.metadata:
            return {field.name}
        case Not(inner):
            return range_keys(inner)
        case And(conditions) | Or(conditions):
            return set().union(*(range_keys(c) for c in conditions))
    return set()


def record(record_id: str) -> Condition:
    return Eq(RECORD, record_id)


def records(record_ids: Iterable[str]) -> Condition:
    return In(RECORD, record_ids)


def chunk_zeros() -> Condition:
    """One point per record: its chunk 0, which stands for it."""
    return Eq(CHUNK, 0)


def record_heads(where: Condition | None = None) -> Condition:
    """The chunk 0 of each record `where` selects: one point per record."""
    return chunk_zeros() if where is None else And(chunk_zeros(), where)


def not_newer_than(version: int) -> Condition:
    """Points written before versions existed have none: they count as oldest."""
    return Or(IsEmpty(VERSION), Range(VERSION, lte=version))


def older_than(version: int) -> Condition:
    return Or(IsEmpty(VERSION), Range(VERSION, lt=version))


def exact_version(record_id: str, version: int) -> Condition:
    """The record's points of exactly this version (a write that lost a race)."""
    return And(record(record_id), Eq(VERSION, version))


def chunks_from(record_id: str, first_chunk: int, version: int) -> Condition:
    """The record's chunks whose index is >= first_chunk, of versions up to `version`."""
    return And(record(record_id), Range(CHUNK, gte=first_chunk), not_newer_than(version))


def superseded(record_id: str, version: int, chunk_count: int) -> Condition:
    """What a finished write of `chunk_count` chunks at `version` leaves stale of a record:
    its points of older versions (or none), and its chunks past the count (a rewrite of the
    same version that shrank). Points of a newer version are never selected."""
    past_the_end = And(Range(CHUNK, gte=chunk_count), not_newer_than(version))
    return And(record(record_id), Or(older_than(version), past_the_end))


def any_of(conditions: Iterable[Condition]) -> Condition:
    """One condition or several, as one (at least one)."""
    items = tuple(conditions)
    return items[0] if len(items) == 1 else Or(*items)


# ---------------------------------------------------------------------------- search filters


def parse_metadata_filter(metadata_filter: Mapping[str, Any] | None) -> Condition | None:
    """A `{key: value}` search filter as a tree (None when it selects everything).

    Keys are dotted paths of `[A-Za-z0-9_-]` segments (`a.b` reaches a nested object);
    values are strings, integers or booleans, and a list matches any of its items. Every key
    must match: `{"lang": "en", "n": [1, 2]}` is `And(Eq(lang, "en"), In(n, (1, 2)))`.
    """
    if not metadata_filter:
        return None
    if len(metadata_filter) > MAX_FILTER_KEYS:
        raise LimitExceeded(f"a filter may name at most {MAX_FILTER_KEYS} keys")
    matches = [_parse_match(key, value) for key, value in metadata_filter.items()]
    return matches[0] if len(matches) == 1 else And(*matches)


def _parse_match(key: object, value: object) -> Condition:
    if not isinstance(key, str) or not _METADATA_PATH.match(key):
        raise ValidationError(
            "filter keys are dotted names of letters, digits, '_' and '-' (got an invalid key)"
        )
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        raise ValidationError(f"filter key {key!r}: an empty list matches nothing")
    if len(items) > MAX_FILTER_VALUES:
        raise LimitExceeded(f"filter key {key!r}: at most {MAX_FILTER_VALUES} values")
    values = [_scalar(key, item) for item in items]
    field = meta(key)
    return Eq(field, values[0]) if len(values) == 1 else In(field, values)


def _scalar(key: str, value: object) -> Scalar:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValidationError(f"filter key {key!r}: integer out of 64-bit range")
        return value
    raise ValidationError(
        f"filter key {key!r}: values are strings, integers or booleans, not {type(value).__name__}"
    )
