"""How many tokens the model pays for, padding included, under each way of batching.

A batch costs about (texts x its longest text) tokens; texts are sorted by length before
being cut into batches (sentence-transformers and LocalProvider both do), but only within
the texts of one call: a worker micro-batch of 64 messages is one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def padded_tokens(lengths: Sequence[int], call_size: int, batch_size: int) -> int:
    """Tokens computed when calls of `call_size` texts are each sorted and cut into batches."""
    total = 0
    for start in range(0, len(lengths), call_size):
        call = sorted(lengths[start : start + call_size], reverse=True)
        for first in range(0, len(call), batch_size):
            batch = call[first : first + batch_size]
            total += len(batch) * batch[0]
    return total


def padding_report(tokenizer: Any, texts: Sequence[str], max_tokens: int = 256) -> dict[str, int]:
    encoded = tokenizer(list(texts), truncation=True, max_length=max_tokens)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    everything = len(lengths)
    return {
        "real_tokens": sum(lengths),
        "one_call_batch_64": padded_tokens(lengths, everything, 64),
        "one_call_batch_16": padded_tokens(lengths, everything, 16),
        "calls_of_64_batch_64": padded_tokens(lengths, 64, 64),
        "calls_of_64_batch_16": padded_tokens(lengths, 64, 16),
    }
