"""PostgreSQL out of capacity is a 503 with Retry-After, never a 500; a client's error is never
reported as an outage."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import psycopg
import pytest
from psycopg import sql

from api import app, query, store
from tests.integration.conftest import client_for


def limited_role_url(database_url: str) -> str:
    """A login role allowed no connection at all: PostgreSQL answers "too many connections"."""
    role, password = f"busy_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 0 PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    address = database_url.split("@", 1)[1]
    return f"postgresql://{role}:{password}@{address}"


def test_too_many_connections_is_503_database_busy_with_retry_after(
    migrated_database_url: str,
) -> None:
    with client_for(limited_role_url(migrated_database_url)) as client:
        response = client.get("/patients")

    assert response.status_code == 503, response.text
    assert response.json()["error_code"] == "DATABASE_BUSY"
    assert response.headers["retry-after"].isdigit()


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(asyncpg.TooManyConnectionsError("too many clients"), id="too many clients"),
        pytest.param(asyncpg.OutOfMemoryError("out of memory"), id="out of memory"),
        pytest.param(asyncpg.DiskFullError("could not extend file"), id="disk full"),
        pytest.param(asyncpg.QueryCanceledError("statement timeout"), id="statement timeout"),
        pytest.param(asyncpg.DeadlockDetectedError("deadlock detected"), id="a deadlock"),
    ],
)
def test_capacity_errors_are_503_database_busy(error: Exception) -> None:
    response = app._failure_response(error, "request-1")

    assert response.status_code == 503
    assert b'"error_code":"DATABASE_BUSY"' in response.body
    assert "retry-after" in response.headers


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(asyncpg.AdminShutdownError("terminating connection"), id="shutdown"),
        pytest.param(asyncpg.CannotConnectNowError("starting up"), id="starting up"),
        pytest.param(ConnectionRefusedError(), id="refused"),
    ],
)
def test_an_unreachable_database_is_503_database_unavailable(error: Exception) -> None:
    response = app._failure_response(error, "request-1")

    assert response.status_code == 503
    assert b'"error_code":"DATABASE_UNAVAILABLE"' in response.body


def test_too_many_query_arguments_is_the_querys_fault_not_an_outage(
    migrated_database_url: str,
) -> None:
    async def too_many_arguments() -> None:
        connection = await asyncpg.connect(migrated_database_url)
        try:
            values = list(range(32_768))
            placeholders = ", ".join(f"${n}::int" for n in range(1, len(values) + 1))
            statement = f"SELECT 1 WHERE 0 IN ({placeholders})"
            await store._guarded(connection.fetchrow(statement, *values))
        finally:
            await connection.close()

    with pytest.raises(query.InvalidQuery, match="too many or too large values") as raised:
        asyncio.run(too_many_arguments())

    original = raised.value.__context__
    assert isinstance(original, asyncpg.InterfaceError), "asyncpg's own error, as it raises it"
    assert not store.is_unavailable(original)
    assert app._failure_response(original, None).status_code == 500, "a bug, not an outage"
