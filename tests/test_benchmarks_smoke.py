"""The benchmark runner still runs: one quick benchmark end to end (the benchmarks are not tests;
this only checks that `python -m benchmarks.run` works and reports what it promises)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_reports_environment_and_verdicts(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--only", "relay_memory", "--json", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    results = json.loads(report.read_text())
    metrics = results["results"]["relay_memory"]
    assert isinstance(metrics, list) and metrics, done.stderr[-2000:]
    for key in ("cpu_count", "load_before", "load_after", "python", "sqlite", "aiogram", "discord.py"):
        assert key in results["environment"], key
    assert {metric["name"] for metric in metrics} == {"relay_memory.telegram", "relay_memory.discord"}
    # The exit code says whether a target was missed, and the table says which.
    missed = [metric["name"] for metric in metrics if metric["passed"] is False]
    assert done.returncode == (1 if missed else 0), done.stdout
    rows = {line.split("|")[0].strip(): line.split("|")[-1].strip() for line in done.stdout.splitlines() if "|" in line}
    for metric in metrics:
        assert metric["measured"] >= 0 and metric["ratio"] is not None
        assert rows[metric["name"]] == ("MISS" if metric["name"] in missed else "PASS"), done.stdout


async def test_scale_out_is_registered_and_skips_without_postgresql(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from benchmarks import scale_out
    from benchmarks.common import Skipped
    from benchmarks.run import BENCHMARKS
    from tests.postgres_server import BIN_ENV

    assert BENCHMARKS["scale_out"] is scale_out.run
    # No server programs where it looks (BOT_TEST_POSTGRESQL_BIN, then PATH): a skip that says why.
    monkeypatch.setenv(BIN_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    outcome = await scale_out.run(quick=True)
    assert isinstance(outcome, Skipped) and outcome.name == "scale_out"
    assert "no PostgreSQL server programs" in outcome.reason and BIN_ENV in outcome.reason
