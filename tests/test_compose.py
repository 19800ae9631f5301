"""The docker-compose examples hold together (no Docker engine here: they are read, as Compose reads them).

`docker-compose.yml` stays the one-container SQLite setup of the README; the PostgreSQL
example is an override on top of it, whose bot processes share one database and split
Discord's shards so that each shard runs exactly once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bot.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::\?(?P<error>[^}]*))?\}")


def compose_file(name: str, **variables: str) -> dict[str, Any]:
    """A compose file parsed, its `${NAME}` / `${NAME:?message}` filled in from `variables`."""

    def value(match: re.Match[str]) -> str:
        if match["name"] not in variables:
            raise AssertionError(f"{name}: ${{{match['name']}}} is unset: {match['error'] or 'no message'}")
        return variables[match["name"]]

    text = (ROOT / name).read_text("utf-8")
    leftover = _VARIABLE.sub(value, text)
    assert "${" not in leftover, f"{name}: a variable form Compose reads but this test does not"
    parsed: dict[str, Any] = yaml.safe_load(leftover)
    return parsed


def test_the_quick_start_compose_file_needs_no_postgresql() -> None:
    base = compose_file("docker-compose.yml")
    assert list(base["services"]) == ["bot"]
    assert "BOT_DATABASE" not in (base["services"]["bot"].get("environment") or {})  # SQLite on /data


def test_the_postgresql_example_shares_one_database_and_runs_each_discord_shard_once() -> None:
    base = compose_file("docker-compose.yml")["services"]["bot"]
    example = compose_file("docker-compose.postgres.yml", POSTGRES_PASSWORD="s3cret")
    services = example["services"]

    postgres = services["postgres"]
    assert postgres["image"] == "postgres:15"
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"] and "postgres-data" in example["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    account = postgres["environment"]

    bots = {name: service for name, service in services.items() if name == "bot" or "extends" in service}
    assert len(bots) == 2
    shards: list[int] = []
    counts = set()
    for name, service in bots.items():
        if name != "bot":  # the others are the base file's bot, with their own environment
            assert service["extends"] == {"file": "docker-compose.yml", "service": "bot"} and "build" in base
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}, name
        environment = service["environment"]
        database = urlsplit(environment["BOT_DATABASE"])
        assert database.scheme == "postgresql" and (database.hostname, database.port) == ("postgres", 5432)
        assert (database.username, database.password) == (account["POSTGRES_USER"], account["POSTGRES_PASSWORD"])
        assert database.path == f"/{account['POSTGRES_DB']}"
        discord = {key.lower(): value for key, value in environment.items() if key.startswith("DISCORD_SHARD_")}
        settings = load_settings(_env_file=None, **discord)  # the bot's own validation
        counts.add(settings.discord_shard_count)
        shards += settings.discord_shard_ids
    [count] = counts
    assert count is not None and sorted(shards) == list(range(count))


def test_the_postgresql_example_refuses_to_start_without_its_password() -> None:
    with pytest.raises(AssertionError, match="set POSTGRES_PASSWORD in .env"):
        compose_file("docker-compose.postgres.yml")
