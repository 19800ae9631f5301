"""Run the benchmarks and print one table: `python -m benchmarks.run [--only NAME] [--quick] [--json PATH]`.

Each benchmark measures the product and its baseline side by side in one run and reports
the measured figure, the baseline, their ratio, the target and PASS or MISS. The exit
code is 1 when any target is missed or any benchmark crashed (its traceback on stderr),
else 0. The environment (CPUs, load average before and after, versions) is printed
first and recorded in the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sqlite3
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from benchmarks import (
    accept_latency,
    delivery_latency,
    discord_overhead,
    relay_memory,
    scale_out,
    storage_p99,
    telegram_overhead,
    upstream_traffic,
)
from benchmarks.common import Outcome, Skipped

Benchmark = Callable[[bool], Awaitable[Outcome]]
BENCHMARKS: dict[str, Benchmark] = {
    accept_latency.NAME: accept_latency.run,
    telegram_overhead.NAME: telegram_overhead.run,
    discord_overhead.NAME: discord_overhead.run,
    upstream_traffic.NAME: upstream_traffic.run,
    delivery_latency.NAME: delivery_latency.run,
    relay_memory.NAME: relay_memory.run,
    storage_p99.NAME: storage_p99.run,
    scale_out.NAME: scale_out.run,
}
# A benchmark that hangs is stopped here (each one also bounds its own phases, well below this).
HARD_LIMIT_SECONDS = 300.0
HEADERS = ("benchmark", "measured", "baseline", "ratio", "target", "pass/fail")


def environment() -> dict[str, object]:
    """What the numbers were measured on (the load average is added before and after the run)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": f"{platform.system()} {platform.machine()}",
        "sqlite": sqlite3.sqlite_version,
        "aiogram": metadata.version("aiogram"),
        "discord.py": metadata.version("discord.py"),
    }


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def describe(env: dict[str, object]) -> str:
    return ", ".join(f"{key} {value}" for key, value in env.items())


async def _bounded(benchmark: Benchmark, quick: bool) -> Outcome:
    async with asyncio.timeout(HARD_LIMIT_SECONDS):
        return await benchmark(quick)


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def _ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def _verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "MISS", None: "info"}[passed]


def _rows(name: str, outcome: Outcome | BaseException) -> list[tuple[str, ...]]:
    if isinstance(outcome, BaseException):
        return [(name, f"crashed: {type(outcome).__name__}", "—", "—", "—", "CRASH")]
    if isinstance(outcome, Skipped):
        return [(name, f"skipped: {outcome.reason}", "—", "—", "—", "SKIP")]
    return [
        (
            metric.name,
            _number(metric.measured, metric.unit),
            _number(metric.baseline, metric.unit),
            _ratio(metric.ratio),
            metric.target,
            _verdict(metric.passed),
        )
        for metric in outcome
    ]


def render_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [HEADERS, *rows]) for i in range(len(HEADERS))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [HEADERS, *rows]]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _notes(results: dict[str, Outcome | BaseException], seconds: dict[str, float]) -> list[str]:
    notes = []
    for name, outcome in results.items():
        notes.append(f"  {name} ({seconds[name]:.1f} s)")
        if isinstance(outcome, list):
            notes += [f"    {metric.name}: {metric.note}" for metric in outcome if metric.note]
        elif isinstance(outcome, BaseException):
            notes.append(f"    {type(outcome).__name__}: {outcome}")
    return notes


def _as_json(outcome: Outcome | BaseException) -> object:
    if isinstance(outcome, BaseException):
        return {"crashed": f"{type(outcome).__name__}: {outcome}"}
    if isinstance(outcome, Skipped):
        return {"skipped": outcome.reason}
    return [asdict(metric) for metric in outcome]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only this one (repeatable)")
    parser.add_argument("--quick", action="store_true", help="fewer samples and rounds, for a smoke run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    # Warnings and errors only (aiogram logs every update at INFO): the table is the output.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    env = environment()
    env["load_before"] = _load()
    print(f"environment: {describe(env)}", flush=True)
    started = time.monotonic()
    results: dict[str, Outcome | BaseException] = {}
    seconds: dict[str, float] = {}
    for name in args.only or BENCHMARKS:
        print(f"running {name} …", file=sys.stderr, flush=True)
        began = time.monotonic()
        try:
            # A fresh event loop each: one benchmark's leftovers cannot slow the next.
            results[name] = asyncio.run(_bounded(BENCHMARKS[name], args.quick))
        except Exception as exc:  # reported in the table; the traceback goes to stderr
            traceback.print_exc()
            results[name] = exc
        seconds[name] = time.monotonic() - began
    env["load_after"] = _load()

    rows = [row for name, outcome in results.items() for row in _rows(name, outcome)]
    print(render_table(rows))
    print("notes:")
    print("\n".join(_notes(results, seconds)))
    total = time.monotonic() - started
    missed = [
        metric.name
        for outcome in results.values()
        if isinstance(outcome, list)
        for metric in outcome
        if metric.passed is False
    ]
    crashed = [name for name, outcome in results.items() if isinstance(outcome, BaseException)]
    print(f"total: {total:.1f} s; load average before {env['load_before']}, after {env['load_after']}")
    print(f"missed: {', '.join(missed) or 'none'}; crashed: {', '.join(crashed) or 'none'}")
    if args.json:
        report = {
            "environment": env,
            "quick": args.quick,
            "seconds": {name: round(value, 1) for name, value in seconds.items()},
            "results": {name: _as_json(o) for name, o in results.items()},
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if missed or crashed else 0


if __name__ == "__main__":
    sys.exit(main())
