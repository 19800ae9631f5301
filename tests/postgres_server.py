"""A throw-away PostgreSQL server for the tests: `initdb` in a temporary directory, on
127.0.0.1 at a free port, stopped and deleted at the end.

PostgreSQL refuses to run as root, so under root the server runs as the `postgres`
user (`runuser`). The binaries are looked for in BOT_TEST_POSTGRESQL_BIN, else the
Debian location of PostgreSQL 15, else on PATH. Where none are found the PostgreSQL
tests are skipped — unless BOT_TEST_POSTGRESQL_REQUIRED is set (`.ci/run` sets it),
which makes their absence a failure.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REQUIRED_ENV = "BOT_TEST_POSTGRESQL_REQUIRED"
BIN_ENV = "BOT_TEST_POSTGRESQL_BIN"
_DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")
_PROGRAMS = ("initdb", "pg_ctl", "psql")
# How long the server may take to start before the tests give up on it.
START_TIMEOUT_SECONDS = 60
# Durability is not what is tested: no fsync makes CREATE DATABASE and commits fast.
_SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
    " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
)


class PostgresUnavailable(Exception):
    """No PostgreSQL binaries here; `str()` says what was looked for."""


def find_binaries() -> Path:
    """The folder holding initdb, pg_ctl and psql."""
    candidates = [Path(os.environ[BIN_ENV])] if os.environ.get(BIN_ENV) else [_DEBIAN_BIN]
    on_path = shutil.which("initdb")
    if on_path:
        # Often a link into the versioned folder, which holds the other programs too.
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / program).is_file() for program in _PROGRAMS):
            return folder
    raise PostgresUnavailable(
        f"no PostgreSQL server programs ({', '.join(_PROGRAMS)}) in {', '.join(map(str, candidates))} "
        f"or on PATH; set {BIN_ENV} to their folder"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A running server; `database()` makes a fresh, empty database on it."""

    binaries: Path
    root: Path
    port: int
    _as_user: list[str]
    _names = itertools.count(1)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """The URL of a new empty database (each test its own)."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self._sql(f"CREATE DATABASE {name}")
        return self.url(name)

    def _sql(self, statement: str) -> None:
        subprocess.run(
            [str(self.binaries / "psql"), "-q", "-v", "ON_ERROR_STOP=1", self.url(), "-c", statement],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def stop(self) -> None:
        try:
            subprocess.run(
                [*self._as_user, str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=30,
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PostgresServer:
    """initdb and start a server; raises PostgresUnavailable without binaries."""
    binaries = find_binaries()
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="bot-postgres-"))
    if os.geteuid() == 0:
        # initdb and postgres refuse root: the server runs as `postgres`, owning its folder.
        account = pwd.getpwnam("postgres")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run(
            [
                *as_user,
                str(binaries / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_SECONDS,
        )
        for _attempt in range(3):  # a port free a moment ago may be taken by now
            server = PostgresServer(binaries, root, _free_port(), as_user)
            started = subprocess.run(
                [
                    *as_user,
                    str(binaries / "pg_ctl"),
                    "-D",
                    str(server.data),
                    "-l",
                    str(root / "server.log"),
                    "-o",
                    f"-p {server.port} {_SERVER_OPTIONS}",
                    "-w",
                    "-t",
                    str(START_TIMEOUT_SECONDS),
                    "start",
                ],
                capture_output=True,
                timeout=START_TIMEOUT_SECONDS + 10,
            )
            if started.returncode == 0:
                return server
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {started.stderr.decode(errors='replace')}\n{log[-2000:]}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
