"""The model gate (queries first), batch planning and the query purpose, without a model."""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from tests.support.app import FakeFactory
from vecpipe.models import Record
from vecpipe.providers.base import Purpose
from vecpipe.providers.batching import plan_batches
from vecpipe.providers.model_gate import Lane, ModelGate
from vecpipe.resources import Resources


def wait_until(condition: Callable[[], bool]) -> None:
    """Polls until `condition` holds; fails (instead of hanging) if it never does."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        time.sleep(0.001)


# ---------------------------------------------------------------------------- plan_batches


@pytest.mark.parametrize("seed", range(5))
def test_batches_respect_the_text_cap_and_the_token_budget(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(3, 256) for _ in range(rng.randint(1, 300))]
    batches = plan_batches(lengths, max_texts=16, max_tokens=1024)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 16
        assert len(batch) * longest <= 1024
        assert lengths[batch[0]] == longest


def test_batches_go_longest_first_so_each_pads_little() -> None:
    lengths = [10, 200, 12, 190, 11, 180]
    batches = plan_batches(lengths, max_texts=3, max_tokens=10_000)
    assert batches == [[1, 3, 5], [2, 4, 0]]


def test_a_text_over_the_budget_is_a_batch_of_its_own() -> None:
    assert plan_batches([300, 300, 5], max_texts=16, max_tokens=256) == [[0], [1], [2]]


def test_short_texts_fill_up_to_the_text_cap() -> None:
    batches = plan_batches([8] * 40, max_texts=16, max_tokens=4096)
    assert [len(b) for b in batches] == [16, 16, 8]


# ---------------------------------------------------------------------------- ModelGate


def test_a_waiting_query_goes_before_ingest_that_waited_longer() -> None:
    gate = ModelGate()
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def take_turn(name: str, lane: Lane, hold: bool = False) -> None:
        with gate.turn(lane):
            order.append(name)
            if hold:
                holding.set()
                release.wait(30)

    threads = [threading.Thread(target=take_turn, args=("ingest-1", Lane.INGEST, True))]
    threads[0].start()
    holding.wait(30)
    for name, lane in [
        ("ingest-2", Lane.INGEST),
        ("ingest-3", Lane.INGEST),
        ("query-1", Lane.QUERY),
    ]:
        threads.append(threading.Thread(target=take_turn, args=(name, lane)))
        threads[-1].start()
        wait_until(functools.partial(_all_waiting, gate, len(threads) - 1))
    release.set()
    for thread in threads:
        thread.join(30)
    assert order == ["ingest-1", "query-1", "ingest-2", "ingest-3"]
    assert gate.waiting(Lane.QUERY) == gate.waiting(Lane.INGEST) == 0


def _all_waiting(gate: ModelGate, count: int) -> bool:
    return gate.waiting(Lane.INGEST) + gate.waiting(Lane.QUERY) == count


def test_the_gate_is_free_again_after_an_exception() -> None:
    gate = ModelGate()
    with pytest.raises(RuntimeError), gate.turn(Lane.INGEST):
        raise RuntimeError("the model failed")
    with gate.turn(Lane.QUERY):  # would block forever if the turn were still held
        pass


# ---------------------------------------------------------------------------- query purpose


def test_a_query_purpose_takes_the_query_lane_and_a_document_the_ingest_lane() -> None:
    assert Lane.for_purpose("query") is Lane.QUERY
    assert Lane.for_purpose("document") is Lane.INGEST
    with pytest.raises(ValueError, match="purpose"):
        Lane.for_purpose("summary")  # type: ignore[arg-type]


async def test_pipeline_search_embeds_in_the_query_lane(
    resources: Resources, fake_factory: FakeFactory
) -> None:
    pipeline = resources.pipeline
    await pipeline.space_of("acme")  # opens the tenant's provider
    [provider] = fake_factory.built
    lanes: list[Lane] = []
    original = provider.embed

    async def recording_embed(
        texts: Sequence[str], *, purpose: Purpose = "document"
    ) -> list[list[float]]:
        lanes.append(Lane.for_purpose(purpose))
        return await original(texts, purpose=purpose)

    provider.embed = recording_embed  # type: ignore[method-assign]
    await pipeline.ingest("acme", [Record(id="1", text="a blue kayak")])
    await pipeline.search("acme", "kayak")
    await pipeline.embed(["plain embed again"], tenant_id="acme")
    assert lanes == [Lane.INGEST, Lane.QUERY, Lane.INGEST]
