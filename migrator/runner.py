"""Waits for PostgreSQL, then applies or rolls back the yoyo migrations under an advisory lock.

yoyo's own lock is a row in `yoyo_lock`: a migrator killed mid-run leaves it behind and every
later run times out. Every run here first takes a session-level advisory lock, which PostgreSQL
releases when the holder's connection dies; whoever holds it knows any `yoyo_lock` row is stale.
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
LOCK_WAIT = "120 s"
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
    """A yoyo backend, used while this process holds the migrator's advisory lock."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as guard:
        guard.execute("SET lock_timeout = '120s'")
        try:
            guard.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        except psycopg.errors.LockNotAvailable:
            raise MigratorError(f"another migrator held the lock for over {LOCK_WAIT}") from None
        backend = get_backend(with_driver(url, "psycopg"))
        try:
            backend.break_lock()
            yield backend
        finally:
            backend.connection.close()
