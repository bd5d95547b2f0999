"""`python -m bench [scenario ...] [--size small|full]`: run scenarios, print, write results.

Each scenario module has NAME, TITLE, PARAMS (by size), `run(size) -> Result` and
`chart(result, path)`. Results go to bench/results/<name>.json and <name>.png.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

from bench.common import (
    RESULTS_DIR,
    SIZES,
    Result,
    Stopwatch,
    command_for,
    machine_info,
    now_iso,
    print_result,
    write_result,
)

SCENARIOS = (
    "local_throughput",
    "gateway_mode",
    "gateway_serve",
    "reingest",
    "embed_cache",
    "search_latency",
    "search_modes",
    "footprint",
    "retrieval",
    "local_backends",
)


def scenario_module(name: str) -> ModuleType:
    return importlib.import_module(f"bench.{name}")


def run_scenario(name: str, size: str, results_dir: Path = RESULTS_DIR) -> Result:
    module = scenario_module(name)
    started, clock = now_iso(), Stopwatch()
    machine = machine_info()
    result: Result = module.run(size)
    machine["load_average_after"] = machine_info()["load_average"]
    result.started, result.seconds, result.machine = started, round(clock.elapsed, 1), machine
    result.command = command_for(name, size)
    write_result(result, results_dir, module.chart)
    return result


def replot(name: str, results_dir: Path) -> None:
    path = results_dir / f"{name}.json"
    if path.exists():
        result = Result.from_json(json.loads(path.read_text()))
        scenario_module(name).chart(result, results_dir / f"{name}.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "scenarios", nargs="*", metavar="scenario", help=f"any of {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="output directory")
    parser.add_argument(
        "--replot", action="store_true", help="redraw the charts from the JSON results only"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    if args.replot:
        for name in args.scenarios or SCENARIOS:
            replot(name, args.results)
        return 0
    missed = 0
    for name in args.scenarios or SCENARIOS:
        result = run_scenario(name, args.size, args.results)
        print_result(result)
        missed += sum(not t.met for t in result.targets)
    print(f"\n{missed} target(s) missed" if missed else "\nevery target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
