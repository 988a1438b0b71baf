"""`make bench`: how fast Card Checkout is, and how its cost grows, measured side by side.

Prints a table (each figure, and for the four that have one its target and a pass/MISS mark),
writes the same figures and marks to bench/results/latest.json and a chart of throughput and
latency against concurrency to bench/results/latest.png. `--only` runs some stages alone and
writes bench/results/partial.json instead. bench/README.md says what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
from pathlib import Path

import uvloop

from bench import load
from bench.data import drop_databases
from bench.load import stop_all
from bench.report import Results
from bench.stages import STAGES, Run

NEEDS_WRK = {"ceiling", "payments", "slow"}


def chosen(only: str | None) -> list[str]:
    """The stages to run, in their order: all, or those `--only` names (names or numbers)."""
    if not only:
        return list(STAGES)
    names = list(STAGES)
    picked = set()
    for word in only.split(","):
        word = word.strip().lower()
        if word.isdigit() and 1 <= int(word) <= len(names):
            word = names[int(word) - 1]
        if word not in STAGES:
            sys.exit(f"--only: no stage {word!r}; the stages are {', '.join(names)} (or 1-7)")
        picked.add(word)
    if "library" in picked:
        picked.add("ceiling")  # its mark is a ratio to the same run's ceiling
    return [name for name in names if name in picked]


async def main(run: Run, stages: list[str]) -> None:
    # A terminated bench still stops its servers and drops its databases.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        for name in stages:
            await STAGES[name](run)
    finally:
        stop_all()
        await drop_databases()
    full = stages == list(STAGES)
    run.results.write("latest" if full else "partial", chart_too=full)


def parse() -> tuple[Run, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help=f"stages to run alone, comma-separated: "
                        f"{', '.join(STAGES)} (or their numbers, 1-7)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk run (stages 1, 2, 4)")
    parser.add_argument("--overhead-seconds", type=float, default=15.0,
                        help="recorded seconds at the fixed rate (stage 5)")  # fmt: skip
    parser.add_argument("--growth", default="1000,1000000", help="stored payments to compare")
    parser.add_argument("--library", type=int, default=20_000, help="payments, in process")
    parser.add_argument("--server-logs", type=Path, help="a folder for the servers' output")
    args = parser.parse_args()
    load.SERVER_LOGS = args.server_logs
    stages = chosen(args.only)
    if NEEDS_WRK.intersection(stages) and shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get update && apt-get install -y wrk")
    figures = {"machine": {"cores": os.cpu_count()}, "seconds": args.seconds, "stages": stages}
    run = Run(
        Results(figures),
        seconds=args.seconds,
        growth_sizes=tuple(int(n) for n in args.growth.split(",")),
        library_count=args.library,
        overhead_seconds=args.overhead_seconds,
    )
    return run, stages


if __name__ == "__main__":
    run, stages = parse()
    # The service runs on uvloop (uvicorn's choice when installed); so does the bench's client.
    try:
        uvloop.run(main(run, stages))
    except asyncio.CancelledError:
        sys.exit("bench: terminated (its servers stopped, its databases dropped)")
