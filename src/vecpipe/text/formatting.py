"""How a record's chunks and a search's query become model inputs, beyond the raw text.

- a title: the value of a named metadata field, put before every chunk's text when it is
  embedded (a contextual chunk header), never stored with the chunk;
- prefixes, for models trained with them (e5's "query: " and "passage: ");
- the chunk size and overlap, which the provider applies when it chunks.

Everything here changes the vectors, so a format that is not the default names its own
embedding space (`variant`): a tenant that changes it re-embeds through a migration, and
vectors made two ways never share an index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from vecpipe.text.hashing import fingerprint

MAX_TITLE_CHARS = 200  # a title is a header: a long field is cut, not embedded whole
LATER_CHUNK_PENALTY = 0.2  # chosen by the retrieval benchmark: bench/README.md §7
SEARCH_ONLY = frozenset({"later_chunk_penalty"})  # search-time: the vectors do not change


@dataclass(frozen=True)
class TextFormat:
    chunk_tokens: int | None = None  # None: the model's input limit
    chunk_overlap: int | None = None  # None: the operator's VECPIPE_CHUNK_OVERLAP_TOKENS
    title_field: str | None = None
    query_prefix: str = ""
    document_prefix: str = ""
    later_chunk_penalty: float = LATER_CHUNK_PENALTY  # how chunk scores make a record's

    @property
    def variant(self) -> str:
        """The empty string for the default format, else a short fingerprint of what
        differs from it (search-time options aside: they leave the vectors alone)."""
        return self.space_variant()

    def space_variant(self, model_options: Mapping[str, str] | None = None) -> str:
        """`variant`, with what else changes the vectors besides the text: the model's own
        non-default options (a local inference backend: providers/local_backend.py)."""
        options = {k: v for k, v in asdict(self).items() if k not in SEARCH_ONLY}
        changed = {k: v for k, v in options.items() if v not in (None, "")}
        changed |= dict(model_options or {})
        return fingerprint(changed)[:12] if changed else ""

    def document(self, chunk: str, metadata: Mapping[str, Any]) -> str:
        """What the model reads for one chunk of a record with this metadata."""
        title = self.title(metadata)
        text = f"{title}\n{chunk}" if title else chunk
        return f"{self.document_prefix}{text}"

    def query(self, text: str) -> str:
        return f"{self.query_prefix}{text}"

    def title(self, metadata: Mapping[str, Any]) -> str:
        if self.title_field is None:
            return ""
        value = metadata.get(self.title_field)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            return ""
        return " ".join(str(value).split())[:MAX_TITLE_CHARS]


DEFAULT_FORMAT = TextFormat()
