"""Spots, while a JSON body is still arriving, a string too long for any field to accept.

No field of any vecpipe request holds a string longer than a record's text limit (ids,
metadata and queries have smaller limits), so a body that holds one is refused as soon as
that string has streamed in, before the rest of the body is read and long before it is
parsed: a 15 MiB text costs 1 MiB of reading, not 15 MiB of bytes plus its parse.

The scan never looks at bytes one by one (a 16 MiB body must cost the event loop
microseconds, not seconds): it tracks the run of bytes since the last string boundary with
`find`, `rfind` and `count`, which run at memchr speed. A boundary is a `"` not escaped by
an odd run of backslashes; escaped quotes are looked at one by one only where a chunk
starts or ends with them. A run between two boundaries is a string's content (or JSON
structure, which holds no long runs in any valid request), and its length is an upper
bound on the decoded text. For a lower bound, each backslash is taken to save one byte and
each `\\u` four more (the most an escape can: `\\n` decodes to one byte, `\\u0041` too), so
a refusal is always right: a string is refused only when it decodes to more than `limit`
UTF-8 bytes, and any string over 6 x `limit` bytes of JSON is refused. Strings whose
`\\u` escapes make the bound loose are caught by the exact check after parsing, as before;
so are bodies that are not UTF-8 (JSON may arrive as UTF-16 or UTF-32), left alone here.
"""

from __future__ import annotations

QUOTE = b'"'
BACKSLASH = b"\\"
UNICODE_ESCAPE = b"\\u"
UNICODE_ESCAPE_SAVING = 4  # beyond the backslash's own byte: `\uXXXX`, six bytes for one
# escaped quotes looked at one by one per body, after which the scan gives up on it (an
# adversarial `\"\"\"...` body must not cost the loop more than its parse would)
ESCAPED_QUOTES_PER_BODY = 16_384


class LongStringScan:
    """Feed a body's chunks in order; `feed` answers True once a string over `limit` is seen."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.run = 0  # bytes since the last string boundary, across chunks
        self.backslashes = 0  # backslashes among them
        self.unicode_escapes = 0  # `\u` among them
        self.carried = 0  # backslashes that ended the previous chunk
        self.escapes_left = ESCAPED_QUOTES_PER_BODY
        self.started = False
        self.enabled = True

    def feed(self, chunk: bytes) -> bool:
        if not chunk or not self.enabled:
            return False
        if not self.started:
            self.started = True
            if not _looks_utf8(chunk):
                self.enabled = False
                return False
        try:
            return self._feed(chunk)
        except _GiveUp:
            self.enabled = False
            return False
        finally:
            self._carry_backslashes(chunk)

    def _feed(self, chunk: bytes) -> bool:
        first = self._boundary(chunk, chunk.find(QUOTE), forward=True)
        if first < 0:
            return self._extend(chunk, 0, len(chunk))
        if self._extend(chunk, 0, first):
            return True
        last = self._boundary(chunk, chunk.rfind(QUOTE), forward=False)
        if last - first > self.limit and self._long_run_between(chunk, first, last):
            return True
        self.run = self.backslashes = self.unicode_escapes = 0
        return self._extend(chunk, last + 1, len(chunk))

    def _boundary(self, chunk: bytes, index: int, *, forward: bool) -> int:
        """The first (or last) unescaped quote from `index` on (or back), -1 if none."""
        while index >= 0 and self._escaped(chunk, index):
            index = chunk.find(QUOTE, index + 1) if forward else chunk.rfind(QUOTE, 0, index)
        return index

    def _escaped(self, chunk: bytes, index: int) -> bool:
        if index == 0 or chunk[index - 1] != BACKSLASH[0]:
            return index == 0 and self.carried % 2 == 1
        self.escapes_left -= 1
        if self.escapes_left < 0:
            raise _GiveUp
        start = index - 1
        while start > 0 and chunk[start - 1] == BACKSLASH[0]:
            start -= 1
        backslashes = index - start + (self.carried if start == 0 else 0)
        return backslashes % 2 == 1

    def _carry_backslashes(self, chunk: bytes) -> None:
        if chunk[-1:] != BACKSLASH:
            self.carried = 0
            return
        trailing = len(chunk) - len(chunk.rstrip(BACKSLASH))
        self.carried = trailing + (self.carried if trailing == len(chunk) else 0)

    def _extend(self, chunk: bytes, start: int, end: int) -> bool:
        self.run += end - start
        self.backslashes += chunk.count(BACKSLASH, start, end)
        self.unicode_escapes += chunk.count(UNICODE_ESCAPE, start, end)
        if start == 0 and self.carried and chunk[:1] == b"u":
            self.unicode_escapes += 1  # a `\u` split between two chunks
        return _decoded_at_least(self.run, self.backslashes, self.unicode_escapes) > self.limit

    def _long_run_between(self, chunk: bytes, first: int, last: int) -> bool:
        """Whether a run over the limit lies between two quotes of one (large) chunk.

        Only chunks longer than the limit get here (an ASGI test transport sends a body as
        one message; servers send socket-sized chunks). A run longer than the limit covers
        at least one whole block of `limit // 2` bytes, so one `find` per block suffices.
        """
        block = max(1, self.limit // 2)
        start = first + 1
        while start < last:
            end = min(start + block, last)
            if chunk.find(QUOTE, start, end) >= 0:
                start = end
                continue
            run_start = chunk.rfind(QUOTE, first, start) + 1
            run_end = chunk.find(QUOTE, end, last + 1)
            decoded = _decoded_at_least(
                run_end - run_start,
                chunk.count(BACKSLASH, run_start, run_end),
                chunk.count(UNICODE_ESCAPE, run_start, run_end),
            )
            if decoded > self.limit:
                return True
            start = run_end + 1
        return False


def _decoded_at_least(raw: int, backslashes: int, unicode_escapes: int) -> int:
    """UTF-8 bytes that `raw` bytes of JSON string content decode to, at the least."""
    return raw - backslashes - UNICODE_ESCAPE_SAVING * unicode_escapes


class _GiveUp(Exception):
    """Too many escaped quotes to look at: the exact check after parsing will decide."""


def _looks_utf8(head: bytes) -> bool:
    """JSON in UTF-16 or UTF-32 has a NUL in its first four bytes (or a UTF-16 BOM)."""
    return b"\x00" not in head[:4] and head[:2] not in (b"\xff\xfe", b"\xfe\xff")
