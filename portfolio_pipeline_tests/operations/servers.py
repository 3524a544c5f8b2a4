"""Helpers for tests that start real servers: PostgreSQL, the Dagster daemon, the webserver.

Every server runs in its own process group (``start_new_session=True``) and is stopped with
``killpg`` + ``wait``: ``dagster dev`` and ``dagster-daemon`` start children (code server, run
workers) that a plain ``terminate()`` would leave behind.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Outside CI a missing system dependency skips the test; in CI it fails it."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run in CI)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.5):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def tool(name: str) -> str | None:
    """A Python console script of this venv, or of the interpreter's environment."""
    # Next to the running interpreter first: a worktree or an outside venv has no .venv here.
    for candidate in (
        Path(sys.executable).parent / name,
        VENV_BIN / name,
        Path(shutil.which(name) or ""),
    ):
        if candidate.name == name and candidate.exists():
            return str(candidate)
    return None


@contextlib.contextmanager
def process_group(
    args: list[str], *, env: dict, log_path: Path, cwd: Path = REPO_ROOT
) -> Iterator[subprocess.Popen]:
    """Start ``args`` in a new session; on exit SIGTERM its whole group, then SIGKILL if needed."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            # Children that outlived the leader (run workers) share the group id.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


# --------------------------------------------------------------------------- PostgreSQL
@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    db_name: str

    def env(self) -> dict[str, str]:
        return {
            "PORTFOLIO_PIPELINE_PG_HOST": self.host,
            "PORTFOLIO_PIPELINE_PG_PORT": str(self.port),
            "PORTFOLIO_PIPELINE_PG_DB": self.db_name,
            "PORTFOLIO_PIPELINE_PG_USER": self.user,
            "PORTFOLIO_PIPELINE_PG_PASSWORD": "unused-trust-auth",
        }

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg2

        con = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=self.db_name)
        try:
            with con.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            con.close()


def postgres_binary(name: str) -> str | None:
    """``initdb``/``pg_ctl`` from PATH or Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4])
    )
    return versions[-1] if versions else None


@contextlib.contextmanager
def ephemeral_postgres(db_name: str = "dagster") -> Iterator[Postgres]:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (initdb + pg_ctl), removed afterwards.

    Run as the ``postgres`` user when we are root (initdb refuses root), else as ourselves.
    """
    initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
    if not (initdb and pg_ctl):
        skip_or_fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        )
    user_kwargs: dict = {}
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            skip_or_fail("running as root and there is no 'postgres' user to run initdb as")
        user_kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    root = Path(tempfile.mkdtemp(prefix="portfolio-pg-"))
    if user_kwargs:
        os.chown(root, user_kwargs["user"], user_kwargs["group"])
    data, port = root / "data", free_port()

    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=60, **user_kwargs)

    started = False
    try:
        run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(
            pg_ctl,
            "-D",
            str(data),
            "-o",
            f"-h 127.0.0.1 -p {port} -k {root}",
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "30",
            "start",
        )
        started = True
        server = Postgres("127.0.0.1", port, "postgres", db_name)
        import psycopg2

        con = psycopg2.connect(host=server.host, port=port, user="postgres", dbname="postgres")
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f'create database "{db_name}"')
        con.close()
        yield server
    finally:
        if started:
            with contextlib.suppress(subprocess.SubprocessError):
                run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop")
        shutil.rmtree(root, ignore_errors=True)
