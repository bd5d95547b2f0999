"""Cutting one embed call into model batches by a text cap and a padded-token budget.

A batch costs the model about (texts x its longest text) tokens: every text is padded to
the longest. Sorting the call's texts by token length before cutting keeps that padding
small, and the token budget keeps a batch of long texts short, which bounds both the
activation memory of one forward pass and how long a query waits for the batch in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tokenizers import Tokenizer

__all__ = ["TokenCounter", "plan_batches"]

CHARS_PER_TOKEN = 3  # a cautious estimate where the tokenizer is not a fast one


def plan_batches(lengths: Sequence[int], max_texts: int, max_tokens: int) -> list[list[int]]:
    """Indexes of the texts in each batch, longest texts first.

    A batch holds at most `max_texts` texts and, padded to its longest text, at most
    `max_tokens` tokens; a text longer than the budget on its own is a batch of one.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    start = 0
    while start < len(order):
        longest = max(1, lengths[order[start]])  # sorted: the batch's first is its longest
        size = max(1, min(max_texts, max_tokens // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


class TokenCounter:
    """How many tokens the model will see per text (special tokens in, truncated to its limit).

    Owns a copy of the model's fast tokenizer, so counting never touches the model's own
    (which is reconfigured on every encode); a lock makes it safe from any thread.
    """

    def __init__(self, tokenizer: Any, sequence_tokens: int) -> None:
        self.sequence_tokens = sequence_tokens
        self._lock = threading.Lock()
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._tokenizer: Tokenizer | None = None
        if isinstance(backend, Tokenizer):
            self._tokenizer = Tokenizer.from_str(backend.to_str())
            self._tokenizer.enable_truncation(sequence_tokens)
            self._tokenizer.no_padding()

    def lengths(self, texts: Sequence[str]) -> list[int]:
        if self._tokenizer is None:
            return [min(self.sequence_tokens, 2 + len(t) // CHARS_PER_TOKEN) for t in texts]
        # one text at a time: `encode_batch` would start the tokenizers' thread pool, which
        # competes with torch for the cores and makes every later fork print a warning
        with self._lock:
            return [len(self._tokenizer.encode(text).ids) for text in texts]
