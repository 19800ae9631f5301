"""Structured logs: with LOG_FORMAT=json every log line is one JSON object."""

from __future__ import annotations

import json
import logging

from bot.logs import JsonFormatter


def test_json_lines_carry_level_logger_message_extras_and_traceback():
    formatter = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("bot.test").makeRecord(
            "bot.test",
            logging.ERROR,
            __file__,
            1,
            "job %s failed",
            ("abc",),
            exc_info=__import__("sys").exc_info(),
            extra={"job_id": "abc"},
        )
    entry = json.loads(formatter.format(record))
    assert entry["level"] == "ERROR" and entry["logger"] == "bot.test"
    assert entry["message"] == "job abc failed" and entry["job_id"] == "abc"
    assert "ValueError: boom" in entry["traceback"] and entry["time"].endswith("+00:00")
