"""LocalProvider's batching and query lane on the real all-MiniLM-L6-v2.

`model.encode` is wrapped on the shared instance to observe the batches the model really
runs (and, where a test needs it, to hold the first one in flight); the wrapper is always
removed, since other tests share the model.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

from tests.providers.test_local import essay
from tests.providers.test_model_gate import wait_until
from vecpipe.errors import ClosedError
from vecpipe.providers.batching import TokenCounter
from vecpipe.providers.local import LocalProvider
from vecpipe.providers.model_gate import Lane

pytestmark = pytest.mark.slow


@dataclass
class ModelSpy:
    """Records each batch the model runs (its texts, torch's thread count); can hold the first."""

    hold_first: bool = False
    batches: list[list[str]] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    in_flight: threading.Event = field(default_factory=threading.Event)
    proceed: threading.Event = field(default_factory=threading.Event)

    def wrap(self, original: Any) -> Any:
        def encode(texts: list[str], **kwargs: Any) -> Any:
            self.batches.append(list(texts))
            self.threads.append(torch.get_num_threads())
            if self.hold_first and not self.in_flight.is_set():
                self.in_flight.set()
                self.proceed.wait(60)
            return original(texts, **kwargs)

        return encode


@contextmanager
def spying(provider: LocalProvider, spy: ModelSpy) -> Iterator[ModelSpy]:
    model = provider.sentence_model
    model.encode = spy.wrap(model.encode)
    try:
        yield spy
    finally:
        spy.proceed.set()
        del model.encode


@pytest.fixture
async def small_batches() -> AsyncIterator[LocalProvider]:
    async with await LocalProvider.open(batch_size=8, batch_tokens=512, torch_threads=2) as p:
        yield p


def mixed_texts(count: int, seed: int = 0) -> list[str]:
    """Texts from 2 to ~250 words (some past the model's 256 tokens), in random order."""
    rng = random.Random(seed)
    return [essay(rng.choice([2, 5, 12, 30, 60, 120, 250]), seed * 1000 + i) for i in range(count)]


def token_lengths(provider: LocalProvider, texts: list[str]) -> list[int]:
    encoded = provider.sentence_model.tokenizer(texts, truncation=True, max_length=256)
    return [len(ids) for ids in encoded["input_ids"]]


async def test_vectors_come_back_in_input_order_as_plain_encode_makes_them(
    small_batches: LocalProvider,
) -> None:
    texts = mixed_texts(40)
    with spying(small_batches, ModelSpy()) as spy:
        vectors = await small_batches.embed(texts)
    assert len(spy.batches) > 5, "the call was cut into several batches"
    expected = await asyncio.to_thread(
        small_batches.sentence_model.encode, texts, normalize_embeddings=True
    )
    assert np.allclose(np.array(vectors), expected, atol=1e-5)


async def test_token_counts_are_what_the_model_sees(small_batches: LocalProvider) -> None:
    texts = mixed_texts(30, seed=2)  # some past the model's limit: counted as truncated
    counter = TokenCounter(small_batches.sentence_model.tokenizer, 256)
    assert counter.lengths(texts) == token_lengths(small_batches, texts)
    assert max(counter.lengths(texts)) == 256


async def test_no_batch_exceeds_the_text_cap_or_the_token_budget(
    small_batches: LocalProvider,
) -> None:
    texts = mixed_texts(60, seed=1) + ["ok"] * 20  # short ones fill up to the text cap
    with spying(small_batches, ModelSpy()) as spy:
        await small_batches.embed(texts)
    assert sorted(t for batch in spy.batches for t in batch) == sorted(texts)
    sizes = []
    for batch in spy.batches:
        lengths = token_lengths(small_batches, batch)
        sizes.append(len(batch))
        assert len(batch) <= 8
        assert len(batch) * max(lengths) <= 512 or len(batch) == 1
    assert 8 in sizes and 2 in sizes, "both limits were reached"


async def test_a_query_runs_at_the_next_batch_boundary_ahead_of_queued_ingest(
    small_batches: LocalProvider,
) -> None:
    """Queued: a second call of the same provider (behind the first in its ingest thread)
    and a call of another provider of the model (waiting at the gate): the query, asked
    last, runs as soon as the batch in flight is done and finishes first."""
    first = [f"first {essay(25, s)}" for s in range(24)]  # 3 batches of 8
    second = [f"second {essay(25, s)}" for s in range(8)]
    other = [f"other {essay(25, s)}" for s in range(16)]
    finished: list[str] = []
    async with await LocalProvider.open(batch_size=8, torch_threads=2) as another:
        await another.embed(other)  # warm: its next call goes straight to the batches
        with spying(small_batches, ModelSpy(hold_first=True)) as spy:
            gate = small_batches.gate
            tasks = {"first": asyncio.create_task(small_batches.embed(first))}
            await asyncio.to_thread(spy.in_flight.wait, 60)  # its first batch is in the model
            tasks["other"] = asyncio.create_task(another.embed(other))
            await asyncio.to_thread(wait_until, lambda: gate.waiting(Lane.INGEST) == 1)
            tasks["second"] = asyncio.create_task(small_batches.embed(second))
            query = small_batches.embed(["query reset"], purpose="query")
            tasks["query"] = asyncio.create_task(query)
            await asyncio.to_thread(wait_until, lambda: gate.waiting(Lane.QUERY) == 1)
            for name, task in tasks.items():
                task.add_done_callback(functools.partial(_append, finished, name))
            spy.proceed.set()
            results = await asyncio.gather(*tasks.values())
    assert [len(r) for r in results] == [24, 16, 8, 1]
    ran = [batch[0].split()[0] for batch in spy.batches]
    assert ran[:2] == ["first", "query"]
    assert sorted(ran) == sorted(["first"] * 3 + ["query"] + ["other"] * 2 + ["second"])
    assert ran.index("second") > max(i for i, name in enumerate(ran) if name == "first")
    assert finished[0] == "query"
    assert spy.threads[1] == 1, "the query encodes with one torch thread"
    assert set(spy.threads[:1] + spy.threads[2:]) == {2}, "ingest with torch_threads"


async def test_close_with_pending_work_finishes_it_and_refuses_more() -> None:
    provider = await LocalProvider.open(batch_size=8)
    with spying(provider, ModelSpy(hold_first=True)) as spy:
        ingest = asyncio.create_task(provider.embed([essay(20, s) for s in range(16)]))
        await asyncio.to_thread(spy.in_flight.wait, 60)
        queued = asyncio.create_task(provider.embed([essay(20, s) for s in range(8)]))
        query = asyncio.create_task(provider.embed(["a query"], purpose="query"))
        chunked = asyncio.create_task(provider.chunk([essay(600)]))
        closing = asyncio.create_task(provider.aclose())
        await asyncio.sleep(0)  # every task above takes its first step: submits, or closes
        assert provider.closed
        with pytest.raises(ClosedError):
            await provider.embed(["too late"])
        spy.proceed.set()
        await closing
        assert [len(await t) for t in (ingest, queued, query)] == [16, 8, 1]
        assert len((await chunked)[0]) > 1
    await provider.aclose()  # idempotent


def _append(names: list[str], name: str, _task: object) -> None:
    names.append(name)
