"""Real PostgreSQL 17 for the tests, a fresh migrated database per test, and no silent skips in CI.

The server, in order of preference: TEST_DATABASE_URL; testcontainers `postgres:17` when a Docker
engine answers; a throwaway cluster from PostgreSQL 17 binaries (scripts/localpg.py).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import uuid
from collections.abc import Generator, Iterator

import psycopg
import pytest
from psycopg import sql
from testcontainers.community.postgres import PostgresContainer

import localpg
from migrator import runner

# The sign-in fixtures (a real OpenID provider) and PgBouncer for every test folder.
pytest_plugins = ["tests.signin", "tests.pgbouncer"]
REPO = pathlib.Path(__file__).resolve().parent.parent
NO_SKIP_VARIABLE = "REGISTRY_TESTS_NO_SKIP"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With REGISTRY_TESTS_NO_SKIP=1 (as in CI) a skipped test fails, and says why it skipped."""
    report: pytest.TestReport = yield
    if report.skipped and os.environ.get(NO_SKIP_VARIABLE) == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, which {NO_SKIP_VARIABLE}=1 forbids: {reason}"
    return report


def docker_answers() -> bool:
    """True when a Docker engine answers `GET /_ping` within 3 s on DOCKER_HOST (unix or tcp)."""
    try:
        with _docker_connection(
            os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        ) as sock:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.")
    except (OSError, ValueError):
        return False


def _docker_connection(host: str) -> socket.socket:
    if host.startswith("tcp://"):
        address, _, port = host.removeprefix("tcp://").partition(":")
        return socket.create_connection((address, int(port or 2375)), timeout=3)
    if not host.startswith("unix://"):
        raise ValueError(f"unsupported DOCKER_HOST {host}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(3)
    try:
        sock.connect(host.removeprefix("unix://"))
    except OSError:
        sock.close()
        raise
    return sock


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """An admin URL of a PostgreSQL 17 server on which the tests may create databases."""
    with _pg_server() as url:
        with psycopg.connect(url) as connection:
            version = connection.info.server_version
        assert version // 10000 == 17, f"tests need PostgreSQL 17, the server is {version}"
        yield url


@contextlib.contextmanager
def _pg_server() -> Iterator[str]:
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
    elif docker_answers():
        with PostgresContainer("postgres:17", driver=None) as container:
            yield container.get_connection_url()
    else:
        try:
            with localpg.throwaway_cluster(REPO / ".cache" / "pg17") as cluster:
                yield cluster.url()
        except localpg.LocalPgError as error:
            pytest.skip(f"no PostgreSQL 17: no TEST_DATABASE_URL, no Docker engine, and {error}")


def database_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + "/" + name


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(server_url, autocommit=True) as connection:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        connection.execute(statement)
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> Iterator[str]:
    """The name of a database migrated once per session, cloned by every test."""
    name = f"registry_template_{uuid.uuid4().hex[:8]}"
    runner.apply(create_database(pg_server_url, name))
    yield name
    drop_database(pg_server_url, name)


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """A database with no tables at all, for the migrator's tests."""
    name = f"registry_empty_{uuid.uuid4().hex[:8]}"
    yield create_database(pg_server_url, name)
    drop_database(pg_server_url, name)


@pytest.fixture
def migrated_database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated, empty database for one test (a ~0.1 s clone of the template)."""
    name = f"registry_test_{uuid.uuid4().hex[:12]}"
    yield create_database(pg_server_url, name, template=template_database)
    drop_database(pg_server_url, name)
