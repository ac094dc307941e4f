"""Waits for PostgreSQL, then applies or rolls back the yoyo migrations under an advisory lock.

yoyo's own lock is a row in `yoyo_lock`: a migrator killed mid-run leaves it behind and every
later run times out. Every run here first takes an advisory lock on a guard connection, which
PostgreSQL releases when the holder's connection dies; whoever holds it knows any `yoyo_lock` row
is stale. The lock is a transaction-level one held by a transaction left open for the whole run,
not a session-level one: behind PgBouncer in transaction pooling mode, an open transaction keeps
its server connection, and a client that dies mid-transaction has that server connection closed
(PostgreSQL then releases the lock), where a session lock would stay on a pooled server
connection after the migrator finished or died, blocking every later run. One way for both,
direct and pooled (docs/pgbouncer.md).
"""

from __future__ import annotations

import contextlib
import pathlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from yoyo import get_backend, read_migrations

from api.settings import redact, with_driver

MIGRATIONS_DIR = pathlib.Path(__file__).parent / "migrations"
ADVISORY_LOCK_KEY = 0x6D69_6772_6174_6F72  # "migrator" in ASCII
LOCK_WAIT_SECONDS = 120
LOCK_WAIT = f"{LOCK_WAIT_SECONDS} s"
RETRY_INTERVAL_SECONDS = 1.0


class MigratorError(RuntimeError):
    """The migrations could not be applied; the message says why in one line."""


def wait_for_database(url: str, within: float, say: Callable[[str], None] = print) -> None:
    """Return once PostgreSQL accepts a connection, or raise after `within` seconds."""
    deadline = time.monotonic() + within
    attempt = 0
    while True:
        attempt += 1
        try:
            with psycopg.connect(url, connect_timeout=3):
                return
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else "no answer"
            if time.monotonic() >= deadline:
                raise MigratorError(
                    f"database at {redact(url)} not reachable after {within:.0f} s: {reason}"
                ) from None
            say(f"waiting for the database (attempt {attempt}): {reason}")
            time.sleep(RETRY_INTERVAL_SECONDS)


def apply(url: str) -> list[str]:
    """Apply every pending migration; returns their ids (empty when already up to date)."""
    with _exclusive(url) as backend:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return [migration.id for migration in pending]


def rollback(url: str, steps: int) -> list[str]:
    """Roll back the `steps` most recently applied migrations; returns their ids."""
    with _exclusive(url) as backend:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            applied = backend.to_rollback(migrations)
            chosen = applied.__class__(list(applied)[:steps], applied.post_apply)
            backend.rollback_migrations(chosen)
        return [migration.id for migration in chosen]


def pending(url: str) -> list[str]:
    with _exclusive(url) as backend:
        return [
            migration.id for migration in backend.to_apply(read_migrations(str(MIGRATIONS_DIR)))
        ]


@contextlib.contextmanager
def _exclusive(url: str) -> Iterator[Any]:
    """A yoyo backend, used while this process holds the migrator's advisory lock: the guard's
    transaction stays open until the block ends (then rolls back: it wrote nothing)."""
    with psycopg.connect(url, connect_timeout=10, prepare_threshold=None) as guard:
        guard.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT_SECONDS}s'")  # opens the transaction
        try:
            guard.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        except psycopg.errors.LockNotAvailable:
            raise MigratorError(f"another migrator held the lock for over {LOCK_WAIT}") from None
        backend = get_backend(with_driver(url, "psycopg"))
        # psycopg prepares a statement run 5 times (yoyo's bookkeeping, once per migration) on
        # the server connection it happens to have; behind PgBouncer the next run of it may get
        # another one ("prepared statement _pg3_0 does not exist"). Never prepare: yoyo's
        # statements run a few times per deployment, preparing them saves nothing.
        backend.connection.prepare_threshold = None
        try:
            backend.break_lock()
            yield backend
        finally:
            backend.connection.close()
            guard.rollback()
