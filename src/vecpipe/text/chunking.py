"""Split long texts into overlapping chunks that fit a model's input limit.

Two chunkers share one window planner:

- `TokenChunker` counts real model tokens (a Hugging Face *fast* tokenizer, via the offsets
  of the `tokenizers` library), so every chunk holds at most `max_tokens` tokens, special
  tokens excluded: pass the model's limit minus room for [CLS]/[SEP].
- `CharChunker` needs no tokenizer (gateways whose tokenizer is unknown) and budgets
  characters instead, about four per token.

Both promise the same things: a text that fits comes back as exactly one chunk equal to the
text (whitespace and empty texts included, so a record always has a chunk); every chunk is a
substring of the original text; nothing is dropped (every token, or every non-space
character, lies in some chunk); consecutive chunks overlap by about `overlap` units; and cuts
prefer a sentence end, then a word boundary, near the limit over a cut inside a word.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any, Protocol

from tokenizers import Tokenizer

__all__ = ["CharChunker", "Chunker", "TokenChunker", "split_chars", "split_tokens"]

_SENTENCE_END = frozenset(".!?;:\u3002\uff01\uff1f")  # with the CJK full stop, ! and ?

# A cut scores 2 at a sentence end, 1 at a word boundary, 0 inside a word.
Score = Callable[[int], int]
# How many units a planned window [start, end) really exceeds the budget by (0 when it fits).
Excess = Callable[[int, int], int]


class Chunker(Protocol):
    def split(self, text: str) -> list[str]: ...

    def spans(self, text: str) -> list[tuple[int, int]]: ...

    def split_many(self, texts: Sequence[str]) -> list[list[str]]: ...


def _check_sizes(max_units: int, overlap: int, what: str) -> None:
    if max_units < 1:
        raise ValueError(f"max_{what} must be at least 1, got {max_units}")
    if overlap < 0:
        raise ValueError(f"overlap must not be negative, got {overlap}")
    if overlap > max_units // 2:
        raise ValueError(f"overlap ({overlap}) must be at most half of max_{what} ({max_units})")


def plan_windows(
    cum: Sequence[int],
    max_cost: int,
    overlap_cost: int,
    score: Score,
    excess: Excess | None = None,
) -> list[tuple[int, int]]:
    """Cover units 0..n (n = len(cum) - 1) with windows [start, end) of cost <= max_cost.

    `cum[i]` is the cost of units 0..i-1 (`range(n + 1)` when every unit costs one).
    A window ends at the best-scoring cut in the last eighth of its budget (a sentence end,
    else a word boundary, else the hard limit); the next one starts `overlap_cost` back,
    moved forward to a word start when the overlap contains one. Every unit lies in a window.
    """
    n = len(cum) - 1
    lookback = max(1, max_cost // 8)
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end = max(start + 1, bisect_right(cum, cum[start] + max_cost) - 1)
        if end < n:
            end = _best_cut(start, end, score, lookback)
        end = _shrink_to_fit(start, end, excess)
        windows.append((start, end))
        if end >= n:
            return windows
        start = max(start + 1, _overlap_start(cum, end, overlap_cost, score))


def _best_cut(start: int, end: int, score: Score, lookback: int) -> int:
    """The last sentence end, else word boundary, in (end - lookback, end]; else `end`."""
    low = max(start + 1, end - lookback, start + (end - start) // 2)
    word_cut = 0
    for cut in range(end, low - 1, -1):
        quality = score(cut)
        if quality >= 2:
            return cut
        if quality == 1 and not word_cut:
            word_cut = cut
    return word_cut or end


def _shrink_to_fit(start: int, end: int, excess: Excess | None) -> int:
    if excess is None:
        return end
    over = excess(start, end)
    while over > 0 and end - start > 1:
        end = max(start + 1, end - over)
        over = excess(start, end)
    return end


def _overlap_start(cum: Sequence[int], end: int, overlap_cost: int, score: Score) -> int:
    if overlap_cost <= 0:
        return end
    first = bisect_left(cum, cum[end] - overlap_cost)
    for cut in range(first, end):
        if score(cut) >= 1:
            return cut
    return first


# ---------------------------------------------------------------------------- tokens


class TokenChunker:
    """Chunks of at most `max_tokens` model tokens (special tokens excluded).

    Owns a private copy of the tokenizer with truncation and padding switched off, so the
    model's own tokenizer state (which sentence-transformers changes on every encode) never
    leaks in, and the chunker may run on any thread.
    """

    def __init__(self, tokenizer: Tokenizer, max_tokens: int, overlap: int = 0) -> None:
        _check_sizes(max_tokens, overlap, "tokens")
        self._tokenizer = Tokenizer.from_str(tokenizer.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.max_tokens = max_tokens
        self.overlap = overlap

    @classmethod
    def from_pretrained_tokenizer(
        cls, tokenizer: Any, max_tokens: int, overlap: int = 0
    ) -> TokenChunker:
        """From a `transformers` fast tokenizer (one with a `backend_tokenizer`)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if not isinstance(backend, Tokenizer):
            raise TypeError(f"{type(tokenizer).__name__} is not a fast tokenizer")
        return cls(backend, max_tokens, overlap)

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each token of `text`, special tokens excluded."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in encoding.offsets]

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def split(self, text: str) -> list[str]:
        return [text[start:end] for start, end in self.spans(text)]

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character span [start, end) of each chunk of `text`."""
        offsets = self.offsets(text)
        if len(offsets) <= self.max_tokens:
            return [(0, len(text))]
        windows = plan_windows(
            range(len(offsets) + 1),
            self.max_tokens,
            self.overlap,
            score=lambda cut: _token_cut_score(text, offsets, cut),
            excess=lambda start, end: self._excess(text, offsets, start, end),
        )
        return [(offsets[start][0], offsets[end - 1][1]) for start, end in windows]

    def split_many(self, texts: Sequence[str]) -> list[list[str]]:
        return [self.split(text) for text in texts]

    def _excess(self, text: str, offsets: Sequence[tuple[int, int]], start: int, end: int) -> int:
        """Re-tokenized, a chunk that starts inside a word may need more tokens than its slice."""
        chunk = text[offsets[start][0] : offsets[end - 1][1]]
        return self.count_tokens(chunk) - self.max_tokens


def _token_cut_score(text: str, offsets: Sequence[tuple[int, int]], cut: int) -> int:
    """How good a cut between token `cut - 1` and token `cut` is."""
    if cut <= 0 or cut >= len(offsets):
        return 2
    prev_start, prev_end = offsets[cut - 1]
    next_start = offsets[cut][0]
    if next_start <= prev_end:
        return 0  # inside a word (or inside one character that became several tokens)
    gap = text[prev_end:next_start]
    if "\n" in gap or text[prev_start:prev_end] in _SENTENCE_END:
        return 2
    return 1


def split_tokens(
    text: str, tokenizer: Tokenizer | Any, max_tokens: int, overlap: int = 0
) -> list[str]:
    """One-off `TokenChunker(...).split(text)`; build a TokenChunker to split many texts."""
    if isinstance(tokenizer, Tokenizer):
        return TokenChunker(tokenizer, max_tokens, overlap).split(text)
    return TokenChunker.from_pretrained_tokenizer(tokenizer, max_tokens, overlap).split(text)


# ---------------------------------------------------------------------------- characters


class CharChunker:
    """Chunks of at most `max_chars` characters, for models whose tokenizer is unknown.

    With `wide_char_weight > 1` a non-ASCII character costs that many characters of the
    budget: text in scripts where one character is about one token (CJK) then stays within
    a token limit planned at ~4 characters per token. Chunks are stripped of surrounding
    whitespace (unless the whole text fits, which comes back unchanged).
    """

    def __init__(self, max_chars: int, overlap_chars: int = 0, *, wide_char_weight: int = 1):
        _check_sizes(max_chars, overlap_chars, "chars")
        if wide_char_weight < 1:
            raise ValueError("wide_char_weight must be at least 1")
        self.max_chars = max_chars
        self.overlap_chars = overlap_chars
        self.wide_char_weight = wide_char_weight

    @classmethod
    def for_token_limit(
        cls, max_tokens: int, overlap_tokens: int = 0, chars_per_token: float = 4.0
    ) -> CharChunker:
        """A budget of about `max_tokens` tokens; a non-ASCII character counts as a token."""
        weight = max(1, math.ceil(chars_per_token))
        return cls(
            max(1, int(max_tokens * chars_per_token)),
            int(overlap_tokens * chars_per_token),
            wide_char_weight=weight,
        )

    def split(self, text: str) -> list[str]:
        return [text[start:end] for start, end in self.spans(text)]

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character span [start, end) of each chunk of `text`, surrounding spaces excluded."""
        cum = self._costs(text)
        if cum[-1] <= self.max_chars:
            return [(0, len(text))]
        windows = plan_windows(
            cum, self.max_chars, self.overlap_chars, score=lambda cut: _char_cut_score(text, cut)
        )
        spans = [_strip_span(text, start, end) for start, end in windows]
        # Only a long run of whitespace strips to nothing: keep one chunk that fits.
        return [(start, end) for start, end in spans if start < end] or [(0, self.max_chars)]

    def split_many(self, texts: Sequence[str]) -> list[list[str]]:
        return [self.split(text) for text in texts]

    def _costs(self, text: str) -> Sequence[int]:
        if self.wide_char_weight == 1 or text.isascii():
            return range(len(text) + 1)
        wide = self.wide_char_weight
        return list(accumulate((1 if ord(ch) < 128 else wide for ch in text), initial=0))


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _char_cut_score(text: str, cut: int) -> int:
    if cut <= 0 or cut >= len(text):
        return 2
    before, after = text[cut - 1], text[cut]
    if before == "\n" or (before in _SENTENCE_END and (after.isspace() or not before.isascii())):
        return 2
    return 1 if before.isspace() != after.isspace() else 0


def split_chars(text: str, max_chars: int, overlap_chars: int = 0) -> list[str]:
    """One-off `CharChunker(max_chars, overlap_chars).split(text)`."""
    return CharChunker(max_chars, overlap_chars).split(text)
