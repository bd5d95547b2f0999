"""Every benchmark scenario at a tiny size, so none of them rots. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench.__main__ import SCENARIOS, run_scenario

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_runs_and_writes_its_results(name: str, tmp_path: Path) -> None:
    result = run_scenario(name, "tiny", tmp_path)

    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["scenario"] == name
    assert data["command"] == f"python -m bench {name} --size tiny"
    assert data["targets"] and all(isinstance(t["met"], bool) for t in data["targets"])
    assert data["figures"] == json.loads(json.dumps(result.figures, default=str))
    assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    if name == "retrieval":
        check_retrieval_rows(result.figures)


def check_retrieval_rows(figures: dict[str, Any]) -> None:
    """The retrieval scenario's rows: every baseline there, every metric a fraction."""
    rows = figures["rows"]
    assert {"naive", "bm25", "vecpipe dense"} <= {row["method"] for row in rows}
    for row in rows:
        for metric in ("mrr@10", "ndcg@10", "recall@10"):
            assert 0.0 <= row[metric] <= 1.0, row
