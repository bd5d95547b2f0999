"""Full sync with the set spooled (issue 15): memory and dry-run time against a baseline.

- memory: tracemalloc's peak while N records (1 KiB texts) arrive as JSON lines, held as a
  list of records (the baseline: what a sync held before) or fed one by one into
  `core.full_sync.SyncSet` (ids in memory, records spooled to a temporary file);
- time: a dry-run sync of N unchanged records on an Edge store (no optimize: the drift
  reads records by id and scrolls), the baseline's `sync_records` and this tree's, rounds
  alternating so that the box's load hits both alike.

    .venv/bin/python -m bench.sync_stream [--records N] [--timing-records M]
        [--baseline OLD_full_sync.py]

`--baseline` is a copy of an older core/full_sync.py (`git show REV:src/vecpipe/core/
full_sync.py > /tmp/old_full_sync.py`); without it only this tree is measured. Not a
registered scenario of `python -m bench`; writes bench/results/sync_stream.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.lifecycle_ops import _all_records, _fill, _Pipeline

TENANT = "acme"
ROUNDS = 3


def _lines(records: int) -> Iterator[bytes]:
    filler = "lorem ipsum dolor sit amet " * 38  # ~1 KiB of text per record
    for i in range(records):
        record = {"id": f"doc-{i:08d}", "text": f"{i} {filler}", "metadata": {"n": i}}
        yield json.dumps(record).encode()


def _peak(build: Callable[[], Any]) -> float:
    tracemalloc.start()
    kept = build()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return round(peak / 2**20, 1)


def memory(records: int) -> dict[str, float]:
    from vecpipe.core.full_sync import SyncSet
    from vecpipe.models import Record
    from vecpipe.settings import Limits

    def as_list() -> Any:
        return [Record.model_validate_json(line) for line in _lines(records)]

    def spooled() -> Any:
        sset = SyncSet(Limits())
        for line in _lines(records):
            sset.add(Record.model_validate_json(line))
        return sset

    figures = {"list_peak_mib": _peak(as_list)}
    clock = time.perf_counter()
    sset = None

    def keep() -> Any:
        nonlocal sset
        sset = spooled()
        return sset

    figures["spooled_peak_mib"] = _peak(keep)
    figures["spooled_seconds"] = round(time.perf_counter() - clock, 2)
    assert sset is not None
    sset.close()
    return figures


async def timing(records: int, data_dir: Path, baseline: Any) -> dict[str, Any]:
    from vecpipe.core import full_sync
    from vecpipe.models import EmbeddingSpace, Record
    from vecpipe.store.edge import EdgeStore

    space = EmbeddingSpace("all-MiniLM-L6-v2", 384)
    runs: dict[str, list[float]] = {"this_tree": [], "baseline": []}
    async with EdgeStore(data_dir) as store:
        await _fill(store, space, TENANT, records)
        listed = await _all_records(store, space, TENANT)
        wanted = [Record(id=r.record_id, text=r.text, metadata=r.metadata) for r in listed]
        pipeline = _Pipeline(store, space)
        for _ in range(ROUNDS):
            for name, module in (("this_tree", full_sync), ("baseline", baseline)):
                if module is None:
                    continue
                clock = time.perf_counter()
                report = await module.sync_records(pipeline, TENANT, wanted, dry_run=True)
                runs[name].append(time.perf_counter() - clock)
                assert report["counts"]["unchanged"] == records, report["counts"]
    return {
        f"dry_run_{name}_median_s": round(statistics.median(values), 2)
        for name, values in runs.items()
        if values
    } | {"runs": {name: [round(v, 2) for v in values] for name, values in runs.items()}}


def _load(path: str | None) -> Any:
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location("baseline_full_sync", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--timing-records", type=int, default=None, help="default: --records")
    parser.add_argument("--baseline", default=None)
    args = parser.parse_args()
    timed = args.timing_records or args.records
    figures: dict[str, Any] = {"records": args.records, **memory(args.records)}
    figures["timing_records"] = timed
    with tempfile.TemporaryDirectory() as tmp:
        figures |= asyncio.run(timing(timed, Path(tmp) / "data", _load(args.baseline)))
    print(json.dumps(figures, indent=2))
    out = Path(__file__).parent / "results" / "sync_stream.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
