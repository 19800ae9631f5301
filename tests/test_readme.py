"""The README stays true: every setting documented, the CI command is the README's test command."""

from __future__ import annotations

from pathlib import Path

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text("utf-8")


def test_every_setting_is_documented():
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in README]
    assert missing == []


def test_ci_runs_the_readme_test_command():
    command = 'python3 -m venv .venv && . .venv/bin/activate && python -m pip install -e ".[test]" && python -m pytest'
    assert command in README
    assert command in (ROOT / ".ci" / "run").read_text("utf-8")


def test_readme_run_command_is_the_one_the_console_test_runs():
    assert (
        'python3 -m venv .venv && . .venv/bin/activate && pip install ".[sandbox]" && pixverse-bot console --sandbox'
        in README
    )
