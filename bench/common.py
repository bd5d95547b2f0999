"""What every scenario shares: sizes, results (JSON + chart), timing helpers, machine facts."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

SIZES = ("tiny", "small", "full")
"""`tiny` is for the smoke test only; `small` is a quick look; `full` gives the real figures."""

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Target:
    name: str
    value: float
    goal: float
    higher_is_better: bool = True
    unit: str = "x"

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    def describe(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        verdict = "met" if self.met else "MISSED"
        return f"{self.name}: {self.value:.4g} {self.unit} (target {sign} {self.goal:g}) {verdict}"


@dataclass
class Result:
    scenario: str
    title: str
    size: str
    figures: dict[str, Any]
    targets: list[Target]
    notes: list[str] = field(default_factory=list)
    command: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    started: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["targets"] = [asdict(t) | {"met": t.met} for t in self.targets]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        targets = [Target(**{k: v for k, v in t.items() if k != "met"}) for t in data["targets"]]
        return cls(**(data | {"targets": targets}))


Chart = Callable[[Result, Path], None]


def command_for(scenario: str, size: str) -> str:
    return f"python -m bench {scenario} --size {size}"


def write_result(result: Result, results_dir: Path, chart: Chart) -> tuple[Path, Path]:
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path = results_dir / f"{result.scenario}.json"
    png_path = results_dir / f"{result.scenario}.png"
    json_path.write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    chart(result, png_path)
    return json_path, png_path


def print_result(result: Result) -> None:
    print(f"\n== {result.scenario}: {result.title} [{result.size}, {result.seconds:.0f}s]")
    for key, value in result.figures.items():
        if not isinstance(value, list | dict):
            print(f"   {key}: {_fmt(value)}")
    for target in result.targets:
        print(f"   -> {target.describe()}")
    for note in result.notes:
        print(f"   note: {note}")


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def machine_info() -> dict[str, Any]:
    import torch

    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in ("torch", "qdrant-edge-py", "sentence-transformers")},
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Milliseconds: p50, p90, p99, max and the count."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else float("nan"),
    }


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


# ---------------------------------------------------------------------------- processes


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc (Linux)."""
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def quiet_environment() -> None:
    """The model loads offline and without tokenizer threads of its own."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
