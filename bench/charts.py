"""Small matplotlib charts (Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt


def bars(
    path: Path,
    title: str,
    values: Mapping[str, float],
    ylabel: str,
    *,
    reference: tuple[str, float] | None = None,
    log: bool = False,
) -> None:
    """One bar per label, the value printed on top; an optional dashed reference line."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    labels = list(values)
    heights = [values[k] for k in labels]
    drawn = ax.bar(labels, heights, color=_colors(len(labels)))
    ax.bar_label(drawn, labels=[_number(v) for v in heights], padding=2, fontsize=9)
    if reference is not None:
        name, level = reference
        ax.axhline(level, color="crimson", linestyle="--", linewidth=1)
        ax.annotate(
            name,
            (0.99, level),
            xycoords=("axes fraction", "data"),
            color="crimson",
            fontsize=8,
            va="bottom",
            ha="right",
        )
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def latency_cdf(
    path: Path,
    title: str,
    series: Mapping[str, Sequence[float]],
    *,
    limits: Mapping[str, float] | None = None,
) -> None:
    """Sorted latencies (ms) per series as a CDF on a log x axis, with target lines."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, values in series.items():
        ordered = sorted(values)
        if not ordered:
            continue
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        ax.step(ordered, fractions, where="post", label=f"{name} (n={len(ordered)})")
    for name, level in (limits or {}).items():
        ax.axvline(level, color="crimson", linestyle="--", linewidth=0.8)
        ax.annotate(name, (level, 0.02), color="crimson", fontsize=7, rotation=90)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def timeline(
    path: Path,
    title: str,
    seconds: Sequence[float],
    values: Sequence[float],
    ylabel: str,
    *,
    limit: tuple[str, float] | None = None,
) -> None:
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(list(seconds), list(values))
    if limit is not None:
        ax.axhline(limit[1], color="crimson", linestyle="--", linewidth=1, label=limit[0])
        ax.legend(fontsize=8)
    ax.set_xlabel("seconds")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _colors(n: int) -> list[str]:
    palette = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd"]
    return [palette[i % len(palette)] for i in range(n)]
