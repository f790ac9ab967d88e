"""PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> Path:
    """Write the figure, making its folder (an experiment may be the first to write
    under the run's output), and free it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def method_bars(methods: dict[str, dict], title: str, path: Path) -> Path:
    """Overall F. Acc and R. Acc per method with their 95% intervals."""
    plt = _pyplot()
    names = list(methods)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(names) + 2), 4))
    width = 0.4
    for offset, metric, label in ((-width / 2, "function_acc", "F. Acc"),
                                  (width / 2, "result_acc", "R. Acc")):
        values = [methods[n]["overall"][metric] for n in names]
        cis = [methods[n]["overall"][f"{metric}_ci"] for n in names]
        errors = [[v - c[0] for v, c in zip(values, cis)], [c[1] - v for v, c in zip(values, cis)]]
        ax.bar([i + offset for i in range(len(names))], values, width, yerr=errors,
               capsize=3, label=label)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return _save(plt, fig, path)


def lines(x: Sequence[float] | dict[str, Sequence[float]], series: dict[str, Sequence[float]], title: str,
          xlabel: str, ylabel: str, path: Path, log_x: bool = False) -> Path:
    """One line per series over a shared x axis (or, given a dict, each series' own x)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, ys in series.items():
        ax.plot(list(x[label] if isinstance(x, dict) else x), list(ys), marker="o", label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(plt, fig, path)


def plot_report(report: dict, out: Path) -> list[Path]:
    """One bar chart per track."""
    return [method_bars(section["methods"], f"{track}-turn: overall accuracy (95% CI)",
                        out / f"{track}_turn.png")
            for track, section in report["tracks"].items()]
