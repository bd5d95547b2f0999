"""Crash test: a queue job while `vecpipe worker` is SIGKILLed at random moments and restarted.

    .venv/bin/python scripts/crash_test.py --records 5000 --kills 10 --queue sqlite
    .venv/bin/python scripts/crash_test.py --records 5000 --kills 10 --queue rabbitmq

This process plays the API: with the resource stack `vecpipe serve --no-worker` opens, on a
temporary data dir, it gives tenant `crash` a gateway provider (the loopback test gateway,
running here in a thread, so no model burns CPU) and submits a job of `--records` short
records (one chunk each). One `vecpipe worker` subprocess at a time then owns the data dir
(datadir.py) and processes the queue, while this process watches the job's progress in the
database beside it (tests/support/processes.py `observing`); at random moments, each after
that incarnation has made progress, the worker gets SIGKILL and a new one starts. After half
the kills, between two incarnations, a second job rewrites the text of a fifth of the
records while the first is still running. At the end the worker is stopped with SIGTERM and
checked:

- both jobs completed, each record counted once, none failed;
- the store holds exactly one point per record (point count == chunk count) and each
  record's text is the newest one sent;
- no dead letters, nothing left on the queue, exit 0, no asyncio error in any worker log.

It prints a JSON report and exits 1 if any check failed. tests/reliability/test_crash.py runs
it at a small size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.support: the loopback gateway, the worker process

from tests.reliability.support import gateway_factory  # noqa: E402
from tests.support.corpus import english_paragraphs  # noqa: E402
from tests.support.gateway import GatewayControl, running_gateway  # noqa: E402
from tests.support.processes import Observer, WorkerProcess, observing  # noqa: E402

from vecpipe.db.jobs import JobStatus  # noqa: E402
from vecpipe.models import Record  # noqa: E402
from vecpipe.providers.manager import ProviderFactory  # noqa: E402
from vecpipe.resources import Resources, open_resources  # noqa: E402
from vecpipe.settings import Settings  # noqa: E402

TENANT = "crash"
MODEL = "crash-model"
DIMENSION = 16
STALL_SECONDS = 120.0  # no progress for this long fails the run
ASYNCIO_ERRORS = ("Task exception was never retrieved", "Event loop is closed", "Unclosed ")


@dataclass
class Options:
    records: int = 300
    kills: int = 4
    queue: str = "sqlite"
    seed: int = 1
    latency: float = 0.02
    batch_size: int = 16
    lease_seconds: float = 2.0
    update_fraction: float = 0.2
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    keep: bool = False


@dataclass
class Report:
    queue: str
    records: int
    updates: int
    kills: int = 0
    incarnations: int = 0
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    points: int = -1
    stale: int = -1
    missing: int = -1
    dead_letters: int = -1
    depth: int = -1
    final_exit_code: int | None = None
    seconds: float = 0.0
    data_dir: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def texts(count: int, offset: int) -> list[str]:
    """`count` distinct short English texts (one chunk each), distinct for each offset."""
    paragraphs = english_paragraphs(min(count + offset, 3000))
    return [
        f"{paragraphs[(i + offset) % len(paragraphs)]} [text {i}.{offset}]" for i in range(count)
    ]


def build_settings(options: Options, data_dir: Path) -> tuple[Settings, dict[str, str]]:
    """The settings of this process and the same ones as VECPIPE_* for the workers."""
    env = {
        "VECPIPE_DATA_DIR": str(data_dir),
        "VECPIPE_QUEUE": options.queue,
        "VECPIPE_RABBITMQ_URL": options.rabbitmq_url,
        "VECPIPE_RABBITMQ_QUEUE": f"vecpipe-crash-{uuid.uuid4().hex[:10]}",
        "VECPIPE_GATEWAY_ALLOWLIST": "127.0.0.1",
        "VECPIPE_SECRET_KEY": "crash-test secret, not a real one",
        "VECPIPE_LEASE_SECONDS": str(options.lease_seconds),
        "VECPIPE_WORKER_BATCH_SIZE": str(options.batch_size),
        "VECPIPE_WORKER_POLL_SECONDS": "0.05",
        "VECPIPE_RETRY_BASE_SECONDS": "0.1",
        "VECPIPE_RETRY_MAX_SECONDS": "2",
        "VECPIPE_SHUTDOWN_GRACE_SECONDS": "5",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = Settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return settings, env


class Chaos:
    """The run: the jobs, the worker incarnations, the kills."""

    def __init__(
        self,
        options: Options,
        api: Api,
        observer: Observer,
        env: dict[str, str],
        logs: Path,
    ):
        self.options = options
        self.api = api
        self.observer = observer
        self.env = env
        self.logs = logs
        self.rng = random.Random(options.seed)
        self.worker: WorkerProcess | None = None
        self.incarnations = 0
        self.kills = 0
        self.job_ids: dict[str, str] = {}
        self.total = 0
        self.expected: dict[str, str] = {}

    def start_worker(self) -> None:
        self.incarnations += 1
        self.worker = WorkerProcess(f"worker-{self.incarnations}", self.env, self.logs).start()

    async def submit(self, name: str, records: list[Record]) -> None:
        """Submit a job through the API's stack: only while no worker owns the data dir."""
        assert self.worker is None or not self.worker.alive()
        async with self.api.open() as resources:
            self.job_ids[name] = await resources.pipeline.submit_job(TENANT, upserts=records)
        self.expected.update({r.id: r.text for r in records})

    async def statuses(self) -> dict[str, JobStatus]:
        observer = self.observer
        return {name: await observer.job(TENANT, job) for name, job in self.job_ids.items()}

    async def progress(self) -> int:
        return sum(s.done + s.unchanged + s.failed for s in (await self.statuses()).values())

    async def wait_for(self, target: int, above: int) -> None:
        """Until progress reaches `target` and exceeds `above` (this incarnation did work)."""
        last, last_change = -1, time.monotonic()
        while True:
            current = await self.progress()
            if current >= target and (current > above or current >= self.total):
                return
            if current != last:
                last, last_change = current, time.monotonic()
            if time.monotonic() - last_change > STALL_SECONDS:
                raise RuntimeError(f"no progress for {STALL_SECONDS:g}s at {current}")
            assert self.worker is not None
            if not self.worker.alive():
                raise RuntimeError(f"{self.worker.name} exited by itself:\n{self.worker.log()}")
            await asyncio.sleep(0.02)

    async def kill_after(self, target: int, cap: int, updates: list[Record] | None = None) -> None:
        """SIGKILL once progress passes `target` (this incarnation working), a random moment
        later: anywhere in the next batch or two, but before progress reaches `cap`; submit
        `updates` as a job before the next incarnation starts."""
        assert self.worker is not None
        await self.wait_for(target, await self.progress())
        deadline = time.monotonic() + self.rng.uniform(0.0, 0.4)
        while time.monotonic() < deadline:
            if await self.progress() >= cap:
                break
            await asyncio.sleep(0.01)
        await asyncio.to_thread(self.worker.kill)
        self.kills += 1
        if updates is not None:
            await self.submit("update", updates)  # while the first job is still running
        self.start_worker()

    async def run(self, originals: list[Record], updates: list[Record]) -> None:
        records = len(originals)
        self.total = total = records + len(updates)
        margin = 4 * self.options.batch_size  # work left for the next incarnation, at least
        first = self.options.kills // 2

        def targets(count: int, low: float, high: float) -> list[int]:
            return sorted(int(self.rng.uniform(low, high)) for _ in range(count))

        early = targets(first, 0.03 * records, 0.5 * records)
        late = targets(self.options.kills - first, 0.55 * total, total - margin)
        caps = [*early[1:], *late, total - margin // 2]
        await self.submit("create", originals)
        if not early:
            await self.submit("update", updates)
        self.start_worker()
        for n, (target, cap) in enumerate(zip(early, caps, strict=False)):
            await self.kill_after(target, cap, updates if n == len(early) - 1 else None)
        for target, cap in zip(late, caps[len(early) :], strict=True):
            await self.kill_after(target, cap)
        await self.wait_for(total, -1)
        await self.drain()

    async def drain(self) -> None:
        """Let the last worker finish what is queued (redeliveries included), then SIGTERM."""
        assert self.worker is not None
        quiet = 0
        deadline = time.monotonic() + STALL_SECONDS
        while quiet < 3 and time.monotonic() < deadline:
            await asyncio.sleep(max(0.3, self.options.lease_seconds / 2))
            quiet = quiet + 1 if await self.observer.queue.depth() == 0 else 0


@dataclass
class Api:
    """The API side's resource stack, opened while no worker owns the data dir."""

    settings: Settings
    factory: ProviderFactory

    def open(self) -> Any:
        return open_resources(self.settings, provider_factory=self.factory)


async def verify(chaos: Chaos, resources: Resources, report: Report) -> None:
    for name, status in (await chaos.statuses()).items():
        report.jobs[name] = status.model_dump(include={"status", "total", "done", "unchanged"})
        report.jobs[name]["failed"] = status.failed
        counted = status.done + status.unchanged + status.failed
        if status.status != "completed" or counted != status.total or status.failed:
            report.problems.append(f"job {name}: {report.jobs[name]} {status.failures[:3]}")
    space = await resources.pipeline.space_of(TENANT)
    report.points = await resources.store.count(space, TENANT)
    if report.points != len(chaos.expected):
        report.problems.append(f"{report.points} points for {len(chaos.expected)} records")
    stored = await resources.store.stored_records(space, TENANT, list(chaos.expected))
    report.missing = len(chaos.expected) - len(stored)
    report.stale = sum(1 for rid, rec in stored.items() if rec.text != chaos.expected[rid])
    multi = sum(1 for rec in stored.values() if rec.chunk_count != 1)
    if report.missing or report.stale or multi:
        report.problems.append(
            f"{report.missing} missing, {report.stale} stale, {multi} not one chunk"
        )
    report.dead_letters = len(await resources.queue.list_dead_letters())
    report.depth = await resources.queue.depth()
    if report.dead_letters or report.depth:
        report.problems.append(f"{report.dead_letters} dead letters, depth {report.depth}")


def check_logs(logs: Path, report: Report) -> None:
    for path in sorted(logs.glob("worker-*.log")):
        text = path.read_text(errors="replace")
        found = [marker for marker in (*ASYNCIO_ERRORS, "Traceback") if marker in text]
        if found:
            report.problems.append(f"{path.name} logged {found}")


async def crash_test(options: Options, work_dir: Path) -> Report:
    originals = [Record(id=f"rec-{i}", text=t) for i, t in enumerate(texts(options.records, 0))]
    chosen = sorted(
        random.Random(options.seed).sample(
            range(options.records), int(options.records * options.update_fraction)
        )
    )
    new_texts = texts(len(chosen), 1000)
    updates = [Record(id=f"rec-{i}", text=t) for i, t in zip(chosen, new_texts, strict=True)]
    report = Report(options.queue, options.records, len(updates), data_dir=str(work_dir))
    settings, env = build_settings(options, work_dir / "data")
    started = time.monotonic()
    control = GatewayControl(latency_seconds=options.latency)
    with running_gateway(control) as gateway_url:
        # A fake for the local model: configuring a tenant asks for the default space.
        api = Api(settings, gateway_factory(settings.allowlisted_gateway_hosts))
        async with api.open() as resources:
            await resources.pipeline.set_ai_config(TENANT, gateway_config(gateway_url))
        async with observing(settings) as observer:
            chaos = Chaos(options, api, observer, env, work_dir / "logs")
            try:
                await chaos.run(originals, updates)
                assert chaos.worker is not None
                report.final_exit_code = await asyncio.to_thread(chaos.worker.terminate)
            except RuntimeError as exc:
                report.problems.append(str(exc)[-4000:])
            finally:
                if chaos.worker is not None:
                    await asyncio.to_thread(chaos.worker.kill)
            report.kills, report.incarnations = chaos.kills, chaos.incarnations
            async with api.open() as resources:  # the last worker is gone: ours again
                if not report.problems:
                    await verify(chaos, resources, report)
                if options.queue == "rabbitmq":
                    await delete_rabbit_topology(resources)
    if report.final_exit_code not in (0, None):
        report.problems.append(f"the last worker exited {report.final_exit_code}")
    if report.kills < options.kills:
        report.problems.append(f"only {report.kills} kills of {options.kills}")
    check_logs(work_dir / "logs", report)
    report.seconds = round(time.monotonic() - started, 1)
    return report


def gateway_config(url: str) -> dict[str, Any]:
    return {
        "primary": {
            "kind": "openai",
            "base_url": url,
            "model": MODEL,
            "api_key": "sk-crash-test",
            "dimensions": DIMENSION,
            "timeout_seconds": 10,
        }
    }


async def delete_rabbit_topology(resources: Resources) -> None:
    """This run's queues on the broker: dropped once the run is over."""
    import aio_pika

    topology = resources.queue.topology  # type: ignore[attr-defined]
    async with await aio_pika.connect(resources.settings.rabbitmq_url) as connection:
        channel = await connection.channel()
        for name in topology.all_queues:
            await channel.queue_delete(name)
        await channel.exchange_delete(topology.dlx)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Options()
    parser.add_argument("--records", type=int, default=defaults.records)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--queue", choices=["sqlite", "rabbitmq"], default=defaults.queue)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--latency", type=float, default=defaults.latency, help="gateway seconds per request"
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lease-seconds", type=float, default=defaults.lease_seconds)
    parser.add_argument("--rabbitmq-url", default=defaults.rabbitmq_url)
    parser.add_argument("--keep", action="store_true", help="keep the data dir and logs")
    args = parser.parse_args(argv)
    return Options(**{k.replace("-", "_"): v for k, v in vars(args).items()})


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work_dir = Path(tempfile.mkdtemp(prefix="vecpipe-crash-"))
    report = asyncio.run(crash_test(options, work_dir))
    if report.ok and not options.keep:  # a failed run keeps its data dir and logs
        shutil.rmtree(work_dir, ignore_errors=True)
        report.data_dir = None
    print(json.dumps(asdict(report) | {"ok": report.ok}, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
