"""bench/edge_write_cost.py stays runnable: each Edge call is timed over real writes."""

from __future__ import annotations

from bench import edge_write_cost


def test_every_call_is_timed_over_points_written() -> None:
    figures = edge_write_cost._round(edge_write_cost._rows(300))
    assert set(figures) == {"bm25", "point", "operation", "update"}
    assert all(us >= 0 for us in figures.values())
    assert figures["update"] > 0  # 300 points of 384 dimensions cannot take no CPU


def test_the_gil_probe_reports_each_call() -> None:
    speeds = edge_write_cost._beside_calls(edge_write_cost._rows(100), seconds=0.1)
    assert set(speeds) == {"update", "bm25", "sleep"}
    assert all(speed > 0 for speed in speeds.values())
