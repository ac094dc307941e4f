"""A real PgBouncer in transaction pooling mode in front of the test PostgreSQL (`pgbouncer`).

Debian's `pgbouncer` package (bookworm: 1.18; `.ci/run` installs it). Without the binary the
tests that need it skip with the reason, which CI turns into failures. One PgBouncer per session:
its `*` database entry reaches every per-test database by name, with the test server's account.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator

import psycopg
import pytest

from localpg import free_port

# Where Debian installs it; /usr/sbin is not on every PATH.
SEARCH_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin"
# Server connections per (database, user): more than the tests' instances open at once
# (3 API processes x DB_POOL_MAX 5, a migrator's 2, the checks' own), far below max_connections.
DEFAULT_POOL_SIZE = 20
# PgBouncer refuses to run as root; as root it is started as this user instead (as PostgreSQL).
RUN_AS = "nobody"
STARTUP_SECONDS = 15


@dataclasses.dataclass(frozen=True)
class PgBouncer:
    """A running PgBouncer: `url(direct_url)` is the same database reached through it."""

    port: int
    version: str

    def url(self, direct_url: str) -> str:
        parts = urllib.parse.urlsplit(direct_url)
        userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def binary() -> str | None:
    return shutil.which("pgbouncer", path=SEARCH_PATH)


def config(server_url: str, port: int, folder: pathlib.Path) -> str:
    """pgbouncer.ini for `server_url`'s server; the userlist beside it holds its account."""
    server = urllib.parse.urlsplit(server_url)
    user = urllib.parse.unquote(server.username or "postgres")
    password = urllib.parse.unquote(server.password or "")
    userlist = folder / "userlist.txt"
    userlist.write_text(f'"{user}" "{password}"\n', encoding="utf-8")
    return "\n".join(
        (
            "[databases]",
            f"* = host={server.hostname or '127.0.0.1'} port={server.port or 5432}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            # A password-less test cluster trusts its clients; a password is checked as the
            # server checks it (PgBouncer logs in to the server with the userlist's password).
            f"auth_type = {'scram-sha-256' if password else 'trust'}",
            f"auth_file = {userlist}",
            "pool_mode = transaction",
            f"default_pool_size = {DEFAULT_POOL_SIZE}",
            "max_client_conn = 1000",
            "server_check_delay = 0",
            "log_connections = 0",
            "log_disconnections = 0",
            "",
        )
    )


@contextlib.contextmanager
def running(server_url: str) -> Iterator[PgBouncer]:
    """PgBouncer in front of `server_url`'s server until the block ends; skips without it."""
    program = binary()
    if program is None:
        pytest.skip("no pgbouncer binary (Debian: apt-get install pgbouncer)")
    version = subprocess.run(
        [program, "--version"], capture_output=True, text=True, check=True
    ).stdout.split("\n", 1)[0]
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as name:
        folder = pathlib.Path(name)
        folder.chmod(0o755)  # readable by RUN_AS
        port = free_port()
        ini = folder / "pgbouncer.ini"
        ini.write_text(config(server_url, port, folder), encoding="utf-8")
        account = pwd.getpwnam(RUN_AS) if os.geteuid() == 0 else None
        log = folder / "pgbouncer.log"  # a file, not a pipe nobody reads: it never blocks
        with (
            log.open("w") as output,
            subprocess.Popen(
                [program, str(ini)],
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            ) as process,
        ):
            try:
                _wait_until_serving(process, port, log)
                yield PgBouncer(port=port, version=version)
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_until_serving(process: subprocess.Popen[str], port: int, log: pathlib.Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = log.read_text(encoding="utf-8", errors="replace")
            raise AssertionError(f"pgbouncer exited with {process.returncode}: {said}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise AssertionError(f"pgbouncer did not listen on port {port} within {STARTUP_SECONDS} s")


@pytest.fixture(scope="session")
def pgbouncer(pg_server_url: str) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction pooling mode in front of the test server."""
    with running(pg_server_url) as bouncer:
        with psycopg.connect(bouncer.url(pg_server_url), prepare_threshold=None) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
        yield bouncer


@pytest.fixture
def pooled_database_url(pgbouncer: PgBouncer, migrated_database_url: str) -> str:
    """A fresh migrated database, reached through PgBouncer in transaction pooling mode."""
    return pgbouncer.url(migrated_database_url)
