"""Where the gateway worker's CPU goes: per thread, per record, with Edge flushes counted.

    nice -n 10 .venv/bin/python -m bench.gateway_cpu --records 10000 --rounds 2
    .venv/bin/python -m bench.gateway_cpu --py-spy /tmp/gil.txt   # py-spy record --gil, raw

Not a registered scenario (no target): a diagnostic for bench/README.md's gateway profile.
gateway_mode's worker run (defaults, or --batch/--concurrency) on the loopback gateway; over
the timed window only (submit to `completed`, after a warm-up job), it prints records/s,
the process CPU per record (user + system, every thread), the same split by thread (from
/proc/self/task), and how many Edge flushes ran. With --py-spy, py-spy (on PATH or in the
venv) is attached for that window: `record --gil --threads --format raw` to the path given
(its sampling then shows in the CPU figures: read them from a run without it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench import gateway_mode as gm
from bench.common import quiet_environment
from bench.gateway_process import GatewayProcess

_FLUSHES = {"flush": 0, "sync_wal": 0}  # Edge's own flushes, and WAL syncs (group commits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--py-spy", type=Path, default=None, help="raw py-spy output path")
    args = parser.parse_args()
    quiet_environment()
    _count_flushes()
    texts = gm._texts(args.records)
    config = gm.WorkerConfig("cpu", args.batch, args.concurrency)
    with GatewayProcess(gm.LATENCY, gm.DIMENSION) as gateway:
        for _ in range(args.rounds):
            gateway.reset()
            figures = asyncio.run(_run(gateway, config, texts, args.py_spy))
            print(figures, flush=True)


def _count_flushes() -> None:
    from vecpipe.store.edge import rebuild

    for name in _FLUSHES:
        real = getattr(rebuild, name)

        def counted(*args: Any, real: Any = real, name: str = name) -> None:
            _FLUSHES[name] += 1
            real(*args)

        setattr(rebuild, name, counted)  # a counting wrapper, for this run


async def _run(
    gateway: GatewayProcess, config: gm.WorkerConfig, texts: list[str], spy_path: Path | None
) -> dict[str, Any]:
    from vecpipe.heap import freeze_long_lived
    from vecpipe.models import Record
    from vecpipe.resources import open_resources
    from vecpipe.settings import Settings
    from vecpipe.worker.background import worker_for

    with tempfile.TemporaryDirectory(prefix="bench-gw-cpu-") as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data",
            gateway_allowlist="127.0.0.1",
            secret_key=SecretStr("bench-secret-key"),
            worker_batch_size=config.batch,
            worker_concurrency=config.concurrency,
        )
        async with open_resources(settings) as resources:
            freeze_long_lived()  # as `vecpipe worker` does once its resources are open
            pipeline = resources.pipeline
            await pipeline.set_ai_config("gw", {"primary": gm._provider(gateway.url, config)})
            worker = worker_for(resources, settings=settings)
            task = asyncio.create_task(worker.run(), name="bench-worker")
            try:
                warm = [Record(id=f"w{i}", text=f"warm up {i}") for i in range(300)]
                await gm._until_done(pipeline, await pipeline.submit_job("gw", upserts=warm))
                spy = _py_spy(spy_path)
                if spy is not None:
                    await asyncio.sleep(1.0)  # attached before the window opens
                records = [Record(id=f"r{i}", text=t) for i, t in enumerate(texts)]
                threads, flushes = _thread_cpu(), dict(_FLUSHES)
                cpu, started = time.process_time(), time.perf_counter()
                status = await gm._until_done(pipeline, await pipeline.submit_job("gw", records))
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                by_thread = _per_record(threads, len(texts))
                flushes = {name: n - flushes[name] for name, n in _FLUSHES.items()}
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    await asyncio.to_thread(spy.wait)
            finally:
                worker.request_stop()
                await task
    if status.done != len(texts):
        raise RuntimeError(f"the worker stored {status.done} of {len(texts)} records")
    return {
        "records_per_s": round(len(texts) / seconds, 1),
        "cpu_us_per_record": round(cpu / len(texts) * 1e6, 1),
        "cpu_us_per_record_by_thread": by_thread,
        "edge_flushes": flushes["flush"],
        "wal_syncs": flushes["sync_wal"],
        "load_average": os.getloadavg()[0],
    }


def _py_spy(path: Path | None) -> subprocess.Popen[bytes] | None:
    if path is None:
        return None
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [exe, "record", "--gil", "--threads", "-r", "250", "--format", "raw"]
    return subprocess.Popen([*command, "-o", str(path), "--pid", str(os.getpid())])


def _thread_cpu() -> dict[tuple[int, str], float]:
    """CPU seconds of every live thread of this process, by (native id, name)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        name = names.get(int(entry), "other")
        found[(int(entry), name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def _per_record(before: dict[tuple[int, str], float], count: int) -> dict[str, float]:
    """CPU per record since `before`, by thread name without its pool index."""
    spent: dict[str, float] = defaultdict(float)
    for key, seconds in _thread_cpu().items():
        name = key[1].split(" (")[0].rstrip("0123456789_-") or key[1]
        if "_connection_worker_thread" in key[1]:
            name = "aiosqlite"
        spent[name] += seconds - before.get(key, 0.0)
    ranked = sorted(spent.items(), key=lambda kv: -kv[1])
    return {name: round(s / count * 1e6, 1) for name, s in ranked if s > 0}


if __name__ == "__main__":
    main()
