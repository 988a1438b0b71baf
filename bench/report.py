"""The bench's table, its marks, bench/results/*.json and the chart."""

from __future__ import annotations

import json
import operator
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# What `make bench` marks (issue 16); every other figure is printed without a mark.
MAX_COMMITS_PER_PAYMENT = 2.0
MAX_GROWTH = 1.15
MAX_OVERHEAD_P99_MS = 10.0
MIN_LIBRARY_TO_CEILING = 0.35

COMPARE: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


class Results:
    """The figures of one run: rows for the table, marks for the targets, raw figures."""

    def __init__(self, figures: dict[str, Any]) -> None:
        self.figures = figures
        self.rows: list[tuple[str, str, str, str]] = []
        self.marks: dict[str, dict[str, Any]] = {}

    def show(self, figure: str, measured: str) -> None:
        """A figure without a target."""
        self._row((figure, measured, "-", ""))

    def check(self, key: str, figure: str, measured: str, value: float, compare: str,
              limit: float, valid: bool = True) -> None:  # fmt: skip
        """A figure held to a target: `value compare limit` passes, if the measurement was
        `valid` (the overhead's is not when a payment was not answered 201)."""
        passed = valid and COMPARE[compare](value, limit)
        target = f"{compare} {limit:g}"
        self.marks[key] = {"figure": figure, "value": value, "target": target, "pass": passed}
        if not valid:
            self.marks[key]["invalid"] = True
        self._row((figure, measured, target, "pass" if passed else "MISS"))

    def _row(self, row: tuple[str, str, str, str]) -> None:
        """Keep a row for the table, and show it now: the whole run takes minutes."""
        self.rows.append(row)
        print(f"{row[0]}: {row[1]} {row[3]}".rstrip(), file=sys.stderr, flush=True)

    def table(self) -> str:
        width = max([len("figure"), *(len(r[0]) for r in self.rows)])
        measured = max([len("measured"), *(len(r[1]) for r in self.rows)])
        lines = [f"{'figure':<{width}}  {'measured':<{measured}}  {'target':<10}  mark"]
        lines += [f"{a:<{width}}  {b:<{measured}}  {c:<10}  {d}".rstrip()
                  for a, b, c, d in self.rows]  # fmt: skip
        return "\n".join(lines)

    def write(self, name: str, chart_too: bool) -> None:
        """Print the table, then write bench/results/`name`.json (and .png when asked)."""
        table = self.table()
        print(table, flush=True)
        missed = [key for key, mark in self.marks.items() if not mark["pass"]]
        print(f"\nmarks: {len(self.marks) - len(missed)} pass, {len(missed)} MISS"
              + (f" ({', '.join(missed)})" if missed else ""))  # fmt: skip
        RESULTS.mkdir(exist_ok=True)
        document = {
            **self.figures,
            "marks": self.marks,
            "all_pass": not missed,
            "table": table,
        }
        written = [RESULTS / f"{name}.json"]
        written[0].write_text(json.dumps(document, indent=2, default=str) + "\n")
        if chart_too and "curves" in self.figures:
            written.append(RESULTS / f"{name}.png")
            chart(self.figures["curves"], written[-1])
        print(f"written: {', '.join(str(path) for path in written)}")


def chart(curves: dict[str, dict[int, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rate, latency) = plt.subplots(1, 2, figsize=(11, 4))
    for label, curve in curves.items():
        levels = sorted(curve)
        rate.plot(levels, [curve[c]["rps"] for c in levels], marker="o", label=label)
        latency.plot(levels, [curve[c]["p99_ms"] for c in levels], marker="o", label=label)
    for axis, title in ((rate, "throughput (requests/s)"), (latency, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent connections")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
    rate.set_yscale("log")  # the ceiling is over an order above the service
    latency.set_yscale("log")
    figure.suptitle("POST /api/v1/payments against a bare Starlette ceiling")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
