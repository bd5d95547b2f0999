"""Scenario 3: the second bulk ingest of an unchanged corpus against the first.

Each round opens a fresh data dir and app (cold embedding cache, empty store), ingests the
corpus over the bulk API with the local model, then sends the identical corpus again a few
times. Provider calls are counted on the app's own ingestor (chunk texts sent to a provider).
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.corpus import english_paragraphs

from bench import charts
from bench.common import Result, Stopwatch, Target, median, quiet_environment
from bench.serving import bodies, post_bodies, records, served_app

NAME = "reingest"
TITLE = "Unchanged re-ingest against the first ingest (bulk API)"


@dataclass(frozen=True)
class Params:
    records: int
    rounds: int
    repeats: int
    request_batch: int = 500


PARAMS = {
    "tiny": Params(records=40, rounds=1, repeats=2, request_batch=20),
    "small": Params(records=500, rounds=1, repeats=5),
    "full": Params(records=2000, rounds=2, repeats=7),
}


def run(size: str) -> Result:
    quiet_environment()
    params = PARAMS[size]
    return asyncio.run(_main(params, size))


async def _main(params: Params, size: str) -> Result:
    payloads = bodies(records(english_paragraphs(params.records)), params.request_batch)
    rounds = [await _round(params, payloads) for _ in range(params.rounds)]
    return _result(size, params, rounds)


async def _round(params: Params, payloads: list[bytes]) -> dict[str, Any]:
    from vecpipe.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench-reingest-") as tmp:
        async with served_app(Settings(data_dir=Path(tmp) / "data")) as (resources, http):
            ingestor = resources.pipeline.ingestor
            clock = Stopwatch()
            first = await post_bodies(http, "t", payloads)
            first_seconds = clock.elapsed
            _expect(first["upserted"], params.records, "first ingest")
            calls_before = ingestor.provider_texts
            again: list[float] = []
            for _ in range(params.repeats):
                clock = Stopwatch()
                second = await post_bodies(http, "t", payloads)
                again.append(clock.elapsed)
                _expect(second["unchanged"], params.records, "second ingest")
            return {
                "first_seconds": round(first_seconds, 4),
                "second_seconds": [round(s, 4) for s in again],
                "first_provider_texts": calls_before,
                "second_provider_texts": ingestor.provider_texts - calls_before,
            }


def _expect(got: int, wanted: int, what: str) -> None:
    if got != wanted:
        raise RuntimeError(f"{what}: {got} of {wanted} records counted")


def _result(size: str, params: Params, rounds: list[dict[str, Any]]) -> Result:
    first = median([r["first_seconds"] for r in rounds])
    second = median([s for r in rounds for s in r["second_seconds"]])
    provider_texts = sum(r["second_provider_texts"] for r in rounds)
    figures: dict[str, Any] = {
        "records": params.records,
        "rounds": params.rounds,
        "repeats_per_round": params.repeats,
        "first_seconds": round(first, 3),
        "second_seconds": round(second, 4),
        "first_records_per_s": round(params.records / first, 1),
        "second_records_per_s": round(params.records / second, 1),
        "speedup": round(first / second, 1),
        "second_ingest_provider_texts": provider_texts,
        "rounds_detail": rounds,
    }
    return Result(
        scenario=NAME,
        title=TITLE,
        size=size,
        figures=figures,
        targets=[
            Target("second ingest speed-up", figures["speedup"], 100),
            Target(
                "provider texts in second ingests",
                provider_texts,
                0,
                higher_is_better=False,
                unit="texts",
            ),
        ],
    )


def chart(result: Result, path: Path) -> None:
    f = result.figures
    charts.bars(
        path,
        f"{TITLE}\n({f['records']} records; {f['speedup']:.0f}x faster the second time)",
        {
            "first ingest": f["first_records_per_s"],
            "unchanged re-ingest": f["second_records_per_s"],
        },
        "records/s (log scale)",
        reference=("100 x first", 100 * f["first_records_per_s"]),
        log=True,
    )
