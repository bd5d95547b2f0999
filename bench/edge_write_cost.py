"""What Edge's own calls cost per point of a gateway-path write: the floor under the worker.

    nice -n 10 .venv/bin/python -m bench.edge_write_cost --points 6000 --rounds 3

Not a registered scenario (no target): a diagnostic for bench/README.md's gateway profile.
It writes the points the worker writes (the payload `chunk_payload` builds, a 384-dimension
vector, texts of gateway_mode's corpus) to a new shard on a temp dir, in batches of 256, and
prints the process CPU per point of each call the store's write thread makes:
`qe.Point` (the payload's conversion into Edge's values), the BM25 document vector, building
the UpdateOperation, and `EdgeShard.update`, each timed apart, medians over the rounds.
Then, whether Edge's update and BM25 calls let Python run beside them: how fast a pure-Python
loop runs while another thread makes one of these calls over and over, as a fraction of
its speed alone (1.0: the call frees the GIL; at or under 0.5: it holds it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from bench import gateway_mode as gm
from vecpipe.models import ChunkPoint
from vecpipe.store import sparse
from vecpipe.store.conditions import not_newer_than
from vecpipe.store.edge import shard as edge_shard
from vecpipe.store.edge.filters import compile_filter
from vecpipe.store.payload import CHUNK_TEXT, chunk_payload

BATCH = 256
Row = tuple[str, list[float], dict[str, Any]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = _rows(args.points)
    runs: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        for name, us in _round(rows).items():
            runs[name].append(us)
    medians = {name: round(statistics.median(values), 1) for name, values in runs.items()}
    medians["total"] = round(sum(medians.values()), 1)
    print({"us_per_point": medians, "points": args.points, "rounds": args.rounds}, flush=True)
    print({"python_speed_beside": _beside_calls(rows)}, flush=True)


def _rows(count: int) -> list[Row]:
    vectors = np.random.default_rng(0).random((count, gm.DIMENSION), dtype=np.float32)
    rows = []
    for i, text in enumerate(gm._texts(count)):
        point = ChunkPoint("bench", f"r{i}", 0, 1, text, text, "ab" * 32, {}, [], version=1)
        rows.append((str(uuid.uuid4()), vectors[i].tolist(), chunk_payload(point)))
    return rows


def _round(rows: list[Row]) -> dict[str, float]:
    spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        started = time.process_time()
        yield
        spent[name] += time.process_time() - started

    where = compile_filter(not_newer_than(1))
    with tempfile.TemporaryDirectory(prefix="bench-edge-write-") as tmp:
        shard = edge_shard.open_shard(Path(tmp) / "shard", gm.DIMENSION)
        try:
            for start in range(0, len(rows), BATCH):
                batch = rows[start : start + BATCH]
                with timed("bm25"):
                    documents = [sparse.document(str(row[2][CHUNK_TEXT])) for row in batch]
                with timed("point"):
                    points = _points(batch, documents)
                with timed("operation"):
                    op = qe.UpdateOperation.upsert_points(points, where)
                with timed("update"):
                    shard.update(op)
        finally:
            edge_shard.close_shard(shard)
    return {name: seconds / len(rows) * 1e6 for name, seconds in spent.items()}


def _points(batch: list[Row], documents: list[qe.SparseVector]) -> list[qe.Point]:
    """As `edge_shard.upsert_op` builds them: the dense and the BM25 vector by name."""
    return [
        qe.Point(pid, {sparse.DENSE_VECTOR: vector, sparse.SPARSE_VECTOR: document}, payload)
        for (pid, vector, payload), document in zip(batch, documents, strict=True)
    ]


def _beside_calls(rows: list[Row], seconds: float = 1.0) -> dict[str, float]:
    """A pure-Python loop's speed while another thread calls Edge, over its speed alone."""
    where = compile_filter(not_newer_than(1))
    batch = rows[:100]
    documents = [sparse.document(str(row[2][CHUNK_TEXT])) for row in batch]
    text = str(batch[0][2][CHUNK_TEXT])
    alone = _spin(seconds)
    found = {}
    with tempfile.TemporaryDirectory(prefix="bench-edge-gil-") as tmp:
        shard = edge_shard.open_shard(Path(tmp) / "shard", gm.DIMENSION)
        try:
            # built once: building holds the GIL in Python, which would hide what update does
            op = qe.UpdateOperation.upsert_points(_points(batch, documents), where)
            calls: dict[str, Callable[[], object]] = {
                "update": lambda: shard.update(op),  # the same 100 points, replaced each time
                "bm25": lambda: sparse.document(text),
                "sleep": lambda: time.sleep(0.0001),  # a call that frees it, for scale
            }
            for name, call in calls.items():
                found[name] = round(_spin_beside(call, seconds) / alone, 2)
        finally:
            edge_shard.close_shard(shard)
    return found


def _spin_beside(call: Callable[[], object], seconds: float) -> int:
    stop = threading.Event()

    def repeat() -> None:
        while not stop.is_set():
            call()

    thread = threading.Thread(target=repeat, name="bench-edge-caller")
    thread.start()
    try:
        return _spin(seconds)
    finally:
        stop.set()
        thread.join()


def _spin(seconds: float) -> int:
    count, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        count += 1
    return count


if __name__ == "__main__":
    main()
