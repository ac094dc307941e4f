"""The only module that talks to PostgreSQL: every SQL statement of the service lives here."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, TypeVar

import asyncpg
from databases import Database

from api import budget, coalesce, paging, patients, query, sqlquery, tokens
from api.settings import Settings

T = TypeVar("T")
LOG = logging.getLogger(__name__)
APPLICATION_NAME = "patient-registry"
# The columns the code reads and writes; a test checks them against the migrated table.
DATA_COLUMNS = (*patients.COLUMNS.values(), "extra")
MANAGED_COLUMNS = ("id", "storage_order", "created_at", "updated_at", "search_text", "wire")
SELECT_JSON = "SELECT p.wire FROM patients AS p"  # the stored JSON (migration 0006)
FETCH_PATIENT = f"{SELECT_JSON} WHERE p.id = $1"
INSERT_COLUMNS = ", ".join(DATA_COLUMNS)
INSERT_VALUES = ", ".join(f":{column}" for column in DATA_COLUMNS[:-1]) + ", CAST(:extra AS jsonb)"
# Moves the id sequence past every stored id, and never backwards: ids are never reused,
# unlike json-server, which hands the highest id out again after it was deleted.
ADVANCE_ID_SEQUENCE = """
SELECT setval(s.seq, GREATEST(m.max_id, COALESCE(pg_sequence_last_value(s.seq), 0)))
FROM (SELECT pg_get_serial_sequence('patients', 'id')::regclass AS seq) AS s,
     (SELECT max(id) AS max_id FROM patients) AS m
WHERE m.max_id IS NOT NULL
"""
AUTO_ID_ATTEMPTS = 3
# A busy pool's PostgreSQL counts as up when it answered a read this recently (ping()).
ANSWERED_LATELY_SECONDS = 10.0
# Concurrent identical list reads share one query (coalesce.py), keyed by database and statement.
SHARED_READS: coalesce.Coalescer[list[asyncpg.Record]] = coalesce.Coalescer()
SHARED_LISTS: coalesce.Coalescer[tuple[ListParts, int | None]] = coalesce.Coalescer()
# A window of at most this many rows (a page) is read in one go, outside the list memory budget:
# the window bounds it. Longer lists are read PARTS_PER_FETCH parts at a time, each batch's
# bytes taken from the budget first (budget.py, LIST_MEMORY_MB).
SMALL_WINDOW_ROWS = 1000
PARTS_PER_FETCH = 8
FETCH_BYTES = PARTS_PER_FETCH * sqlquery.PART_BYTES
FETCH_PARTS = f"FETCH {PARTS_PER_FETCH} FROM list_parts"
# One lock for every bulk write, so two seed runs never interleave.
IMPORT_LOCK_KEY = 0x7061_7469_656E_7473  # "patients" in ASCII
UPDATE_PATIENT = (
    f"UPDATE patients AS p SET ({INSERT_COLUMNS}) = ROW({INSERT_VALUES}) "
    "WHERE p.id = :id RETURNING p.id, p.wire"
)
DELETE_PATIENT = "DELETE FROM patients WHERE id = :id RETURNING id, wire"
# One lock order for every path that writes patients: the table's ROW EXCLUSIVE lock, then rows.
# An import locks the table SHARE ROW EXCLUSIVE, then updates rows; a PATCH used to lock its row
# (SELECT FOR UPDATE takes only ROW SHARE on the table) and then wait for ROW EXCLUSIVE behind
# the import, which waited for that row: a deadlock. The empty UPDATE takes ROW EXCLUSIVE when
# the statement is parsed, before the row lock, in the same round trip. An UPDATE, not a DELETE:
# patients has statement-level DELETE triggers (the kept count), none for UPDATE.
LOCKED = (
    "WITH writer AS (UPDATE patients SET id = id WHERE false) "
    f"{SELECT_JSON} WHERE p.id = :id FOR UPDATE"
)
# Each write of a patient and its audit event are one statement (a data-modifying WITH): one
# round trip, one atomic change; a write that fails leaves no event and an event that cannot be
# written fails the write. `before` is read in the statement's snapshot: the record as it was
# (update_patient holds its row lock).
WRITE = "WITH written AS ({write}){event}\nSELECT w.{answer} FROM written AS w"
EVENT = """,
event AS (
    INSERT INTO audit_events (user_id, action, patient_id, before, after, request_id)
    SELECT CAST(:audit_user AS bigint), '{action}', w.id, {before}, {after},
           CAST(:audit_request AS text)
    FROM written AS w
)"""
BEFORE = "(SELECT CAST(o.wire AS jsonb) FROM patients AS o WHERE o.id = w.id)"
AFTER = WIRE = "CAST(w.wire AS jsonb)"
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,  # the server is shutting down or restarting
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,  # the connection or pool is closed; but see _is_query_argument_error
)
# The database is up but out of capacity for now: a retry soon may succeed (503, Retry-After).
BUSY_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, out of memory, disk full
    asyncpg.QueryCanceledError,  # statement_timeout, or a cancel by the administrator
    asyncpg.TransactionRollbackError,  # deadlock, serialization failure: retrying succeeds
)
# A statement waits this share of DB_TIMEOUT_SECONDS for a lock, then PostgreSQL says so
# (LockNotAvailableError): an import holds the table (a rebuild holds it against readers too),
# an answer the API can name, where the statement timeout could only say "unavailable".
LOCK_WAIT_SHARE = 0.8
# Locks only an import (or a migration) takes on patients: SHARE ROW EXCLUSIVE keeps writers
# out while an import applies its rows, ACCESS EXCLUSIVE keeps everyone out during a rebuild.
IMPORT_RUNNING = """SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE relation = 'patients'::regclass AND granted
      AND mode IN ('ShareRowExclusiveLock', 'AccessExclusiveLock')
)"""
RETRY_INTERVAL_SECONDS = 1.0
# The buckets of an import's `counts` (seed.importer.BUCKETS; a test keeps them equal).
IMPORT_BUCKETS = ("inserted", "updated", "unchanged", "rejected")
# One row per mode over import_runs, which grows by one row per import: cheap for any scrape.
IMPORT_TOTALS = f"""SELECT mode, count(*) AS runs, extract(epoch FROM max(started_at)) AS last,
       {", ".join(f"COALESCE(sum((counts ->> '{b}')::bigint), 0)" for b in IMPORT_BUCKETS)}
FROM import_runs GROUP BY mode ORDER BY mode"""
CONSTRAINT_FIELDS = {"patients_pkey": "id", "patients_patient_id_key": "patientID"}


class StoreUnavailable(Exception):
    """PostgreSQL did not answer in time."""


class DuplicatePatient(Exception):
    """A write collided with a stored record on `field` (the wire key: `id` or `patientID`)."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"a patient with this {field} already exists")


@dataclasses.dataclass(frozen=True)
class ImportTotals:
    """Every recorded import of one mode: how many, the last one's start, and the records of
    each of IMPORT_BUCKETS."""

    mode: str
    runs: int
    last_started: float  # Unix time
    records: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Audit:
    """Who made a change and in which request, for its audit event; `user_id` None: anonymous."""

    user_id: int | None
    request_id: str | None


def _write(
    write: str, action: str, audit: Audit | None, *, before: str = "NULL", after: str = "NULL"
) -> tuple[str, dict[str, Any]]:
    """`write` (it RETURNs id and wire) with its audit event (none with AUDIT_TRAIL=false, a
    development setting), and the event's parameters."""
    answer = "id" if action == "delete" else "wire"
    if audit is None:
        return WRITE.format(write=write, event="", answer=answer), {}
    event = EVENT.format(action=action, before=before, after=after)
    params = {"audit_user": audit.user_id, "audit_request": audit.request_id}
    return WRITE.format(write=write, event=event, answer=answer), params


def open_database(settings: Settings) -> Database:
    lock_timeout = f"{round(settings.db_timeout_seconds * LOCK_WAIT_SHARE * 1000)}ms"
    if settings.pooled:
        # PgBouncer (transaction pooling) refuses startup parameters it does not track, such as
        # lock_timeout ("unsupported startup parameter"), and would not keep a session setting
        # past a transaction anyway: every write transaction sets it (_transaction). Reads
        # outside a transaction are bounded by command_timeout alone (docs/pgbouncer.md).
        return _PooledDatabase(
            f"SET LOCAL lock_timeout = '{lock_timeout}'",
            settings.database_url,
            **_pool_options(settings),
            server_settings={"application_name": APPLICATION_NAME},
            **driver_options(pooled=True),
        )
    return Database(
        settings.database_url,
        **_pool_options(settings),
        server_settings={"application_name": APPLICATION_NAME, "lock_timeout": lock_timeout},
    )


def driver_options(*, pooled: bool) -> dict[str, Any]:
    """asyncpg's options for the deployment, for the API, the seed and the export.

    Behind PgBouncer in transaction pooling mode a named prepared statement lives on one server
    connection, and the next transaction may get another: asyncpg's statement cache would fail
    with "prepared statement ... does not exist" (or "already exists"). Without the cache,
    asyncpg (>= 0.29) sends every statement unnamed and parses it again in the same message
    sequence as its Bind and Execute, which PgBouncer keeps on one server connection (any
    version; 1.21's max_prepared_statements is not needed)."""
    return {"statement_cache_size": 0} if pooled else {}


def _pool_options(settings: Settings) -> dict[str, Any]:
    return {
        "min_size": settings.db_pool_min,
        "max_size": settings.db_pool_max,
        "timeout": settings.db_timeout_seconds,
        "command_timeout": settings.db_timeout_seconds,
        "reset": _keep_session,
    }


class _PooledDatabase(Database):
    """A Database behind PgBouncer: `set_locally` starts each of its write transactions."""

    def __init__(self, set_locally: str, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.set_locally = set_locally


@contextlib.asynccontextmanager
async def _transaction(db: Database) -> AsyncIterator[None]:
    """db.transaction(), with the session's lock_timeout set in it when behind PgBouncer."""
    async with db.transaction():
        if isinstance(db, _PooledDatabase):
            await db.execute(db.set_locally)
        yield


async def _keep_session(connection: asyncpg.Connection) -> None:
    """asyncpg's default release runs `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on the server: one more round trip for every request. The service never changes
    session state (no SET, LISTEN, session advisory lock or cursor outside a transaction: what
    PgBouncer's transaction pooling needs too), so only asyncpg's client-side part, which always
    runs and rolls back an open transaction, is needed."""


async def connect(
    db: Database, acquire_within: float, list_memory_bytes: int = 256 * 1024 * 1024
) -> None:
    """Open the pool (no connection yet when DB_POOL_MIN is 0, so this works while PostgreSQL is
    down) and bound every pool acquisition: `databases` 0.9 waits forever for a free connection,
    so a saturated pool would hang requests instead of answering 503."""
    await db.connect()
    # databases is frozen at 0.9.0 and reads only `_pool`; tests/integration pins this.
    db._backend._pool = _BoundedPool(db._backend._pool, acquire_within, list_memory_bytes)


async def disconnect(db: Database, within: float) -> None:
    """Close the pool, but never hang shutdown on leaked connections (encode/databases#477)."""
    try:
        await asyncio.wait_for(db.disconnect(), within)
    except TimeoutError:
        LOG.warning("database pool did not close within %.1f s; abandoning it", within)


async def ping(db: Database, within: float) -> bool:
    """Whether PostgreSQL answers. When every connection is busy, a query of the pool's that
    PostgreSQL answered lately says so without waiting in line behind the requests: a health
    check that timed out in the queue would call a busy instance down."""
    pool = pool_state(db)
    if pool is not None and pool.saturated and pool.answered_lately():
        return True
    try:
        answer: object = await asyncio.wait_for(db.fetch_val("SELECT 1"), within)
    except PoolBusy:
        return pool is not None and pool.answered_lately()
    except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError):
        return False
    return answer == 1


def pool_state(db: Database) -> _BoundedPool | None:
    """The pool, once connect() bounded it."""
    pool = getattr(db._backend, "_pool", None)
    return pool if isinstance(pool, _BoundedPool) else None


async def wait_until_reachable(
    db: Database, within: float, say: Callable[[str], None] = LOG.info
) -> None:
    """Return once `SELECT 1` answers, or raise StoreUnavailable after `within` seconds."""
    deadline = time.monotonic() + within
    attempt = 1
    while not await ping(db, min(3.0, within)):
        if time.monotonic() >= deadline:
            raise StoreUnavailable(f"database not reachable after {within:.0f} s")
        say(f"waiting for the database (attempt {attempt})")
        attempt += 1
        await asyncio.sleep(RETRY_INTERVAL_SECONDS)


def is_unavailable(error: BaseException) -> bool:
    """True when `error` means the database could not be reached, rather than a bug."""
    return isinstance(error, UNAVAILABLE_ERRORS) and not _is_query_argument_error(error)


def is_locked(error: BaseException) -> bool:
    """True when a statement gave up waiting for a lock on patients (an import holds it)."""
    return isinstance(error, asyncpg.LockNotAvailableError)


async def import_running(db: Database, within: float) -> bool | None:
    """Whether an import holds the patients table now; None when PostgreSQL did not say, or
    every connection is busy (the health check does not wait in line)."""
    pool = pool_state(db)
    if pool is not None and pool.saturated:
        return None
    try:
        answer: bool = await asyncio.wait_for(db.fetch_val(IMPORT_RUNNING), within)
    except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError, PoolBusy):
        return None
    return answer


async def import_totals(db: Database, within: float) -> list[ImportTotals] | None:
    """The import log summed by mode; None when PostgreSQL did not answer within `within`
    seconds, or every connection is busy (a scrape does not wait in line behind requests)."""
    pool = pool_state(db)
    if pool is None or pool.saturated:
        return None
    try:
        rows = await asyncio.wait_for(_read_all(db, IMPORT_TOTALS), within)
    except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError, PoolBusy):
        return None
    return [
        ImportTotals(row[0], row[1], float(row[2]), tuple(int(count) for count in row[3:]))
        for row in rows
    ]


def is_busy(error: BaseException) -> bool:
    """True when PostgreSQL answered but lacks the capacity now (connections, memory, time)."""
    return isinstance(error, BUSY_ERRORS)


def _is_query_argument_error(error: BaseException) -> bool:
    """asyncpg refused a statement's arguments before sending it ("the number of query arguments
    cannot exceed 32767", "invalid input for query argument $1"): the query's fault, not an
    outage, although asyncpg raises it as an InterfaceError."""
    return isinstance(error, asyncpg.InterfaceError) and "query argument" in str(error)


class ListParts(list[bytes]):
    """A list's JSON array in parts. Its bytes stay taken from the pool's list memory budget
    until the last response sending it lets go of it."""


class ListTooLarge(Exception):
    """The list alone needs more than the whole list memory budget (LIST_MEMORY_MB)."""


async def list_patients(db: Database, listing: query.ListQuery) -> tuple[list[bytes], int | None]:
    """The JSON array of the matching records as UTF-8, in parts that together make the array
    (each at most sqlquery.PART_BYTES), and their count when `listing.counted`.

    Bytes, not text: a whole list is megabytes that would otherwise be decoded only to be
    encoded again for the response. Parts, not one value: the response sends them one by one,
    so memory never holds the list twice, and asyncpg never buffers it as one message."""
    window = listing.window
    offset: int | None = None
    limit: int | None = None
    if window is not None:
        total = await _count(db, listing) if window.needs_total else None
        offset, limit = window.bounds(total if total is not None else patients.MAX_ID)
    statement = sqlquery.list_statement(listing, offset, limit)
    if limit is not None and limit <= SMALL_WINDOW_ROWS:
        rows = await _shared_read(db, statement)
        return _parts(rows), rows[0]["total"]
    return await SHARED_LISTS.run(
        _shared_key(db, statement), lambda: _guarded(_read_long_list(db, statement))
    )


def _parts(rows: list[asyncpg.Record]) -> list[bytes]:
    """The parts of a list statement's rows, in order (sqlquery.list_statement)."""
    return [row["part"] for row in sorted(rows, key=lambda row: int(row["start"]))]


async def _read_long_list(
    db: Database, statement: sqlquery.Statement
) -> tuple[ListParts, int | None]:
    """A list of any length, read through a cursor a batch of parts at a time, each batch's
    bytes taken from the list memory budget before it is read (budget.py): so lists in memory
    never hold more than the budget, however many clients ask for however long lists."""
    pool: _BoundedPool = db._backend._pool  # see connect()
    held = [0]  # bytes taken from the budget
    parts = ListParts()
    weakref.finalize(parts, lambda: pool.list_memory.give_back(held[0]))
    try:
        rows = await _fetch_parts(db, statement, held)
    except BaseException:
        # Now, not when the traceback (which holds `parts`) is collected.
        pool.list_memory.give_back(held[0])
        held[0] = 0
        raise
    parts.extend(_parts(rows))
    return parts, rows[0]["total"]


async def _fetch_parts(
    db: Database, statement: sqlquery.Statement, held: list[int]
) -> list[asyncpg.Record]:
    pool: _BoundedPool = db._backend._pool  # see connect()
    try:
        return await _answer(
            db, lambda connection: _cursor_parts(connection, pool, statement, held)
        )
    except budget.TooLarge:
        raise ListTooLarge from None
    except budget.BudgetBusy:
        raise PoolBusy("the list memory budget (LIST_MEMORY_MB) in use") from None


async def _cursor_parts(
    connection: asyncpg.Connection,
    pool: _BoundedPool,
    statement: sqlquery.Statement,
    held: list[int],
) -> list[asyncpg.Record]:
    """The statement's rows through an SQL cursor, each batch's bytes taken from the pool's list
    memory budget first. Not asyncpg's cursor(), which names a prepared statement that
    PgBouncer's transaction pooling would strand on one server connection."""
    memory = pool.list_memory
    rows: list[asyncpg.Record] = []
    async with connection.transaction(readonly=True):
        declare = f"DECLARE list_parts NO SCROLL CURSOR FOR {statement.sql}"
        await connection.execute(declare, *statement.params)
        while len(rows) % PARTS_PER_FETCH == 0:
            await memory.take(FETCH_BYTES, held[0], pool.within)
            held[0] += FETCH_BYTES
            batch = await connection.fetch(FETCH_PARTS)
            unused = FETCH_BYTES - sum(len(row["part"]) for row in batch)
            memory.give_back(unused)
            held[0] -= unused
            rows.extend(batch)
            if not batch:
                break
    return rows


async def _shared_read(db: Database, statement: sqlquery.Statement) -> list[asyncpg.Record]:
    """The rows of a small list or a count statement, shared with the identical reads that
    arrive meanwhile."""
    return await SHARED_READS.run(
        _shared_key(db, statement),
        lambda: _guarded(_read_all(db, statement.sql, *statement.params)),
    )


def _shared_key(db: Database, statement: sqlquery.Statement) -> tuple[Any, ...]:
    """Reads share a query when they ask the same database the same statement."""
    return (db, statement.sql, repr(statement.params))


async def fetch_patient(db: Database, patient_id: int) -> str | None:
    """The record's JSON text, or None."""
    row = await _read(db, FETCH_PATIENT, patient_id)
    return None if row is None else row[0]


async def _read(db: Database, sql: str, *params: Any) -> asyncpg.Record | None:
    """The first row of a read-only statement with positional parameters (see _answer)."""
    return await _answer(db, lambda connection: connection.fetchrow(sql, *params))


async def _read_all(db: Database, sql: str, *params: Any) -> list[asyncpg.Record]:
    """Every row of a read-only statement with positional parameters (see _answer)."""
    return await _answer(db, lambda connection: connection.fetch(sql, *params))


async def _answer(db: Database, ask: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """`ask` on a pool connection, noting when PostgreSQL last answered. Reads are the hot path,
    so they go straight to asyncpg (a prepared statement, no SQLAlchemy compile per call, ~10%
    of a list request's CPU) on a connection of the pool that `databases` manages, acquired
    with the same bound as every other query. Writes keep going through `databases`."""
    pool: _BoundedPool = db._backend._pool  # see connect()
    async with pool.acquire() as connection:
        try:
            answer = await ask(connection)
        except asyncpg.PostgresError:
            pool.answered_at = time.monotonic()  # an error message is an answer too
            raise
        pool.answered_at = time.monotonic()
    return answer


async def insert_patient(db: Database, patient: patients.PatientRow, audit: Audit | None) -> str:
    """Insert; a record sent with an id keeps it and moves the sequence past it. A record
    without one takes the sequence's next id, which a concurrent explicit id (or rows written
    around the sequence) may already hold: then the sequence is moved past every stored id and
    the insert retried, so a client that sent no id never gets a 409 for an id it did not pick."""
    sql, params = _write(_insert_sql(patient), "create", audit, after=AFTER)
    for attempt in range(1, AUTO_ID_ATTEMPTS + 1):
        try:
            async with _transaction(db):
                stored: str = await _unique(db.fetch_val(sql, {**params, **_params(patient)}))
                if patient.id is not None:
                    await db.execute(ADVANCE_ID_SEQUENCE)
            break
        except DuplicatePatient as error:
            if patient.id is not None or error.field != "id" or attempt == AUTO_ID_ATTEMPTS:
                raise
            LOG.warning("the id sequence was behind the stored ids; moving it past them")
            await db.execute(ADVANCE_ID_SEQUENCE)
    return stored


async def update_patient(
    db: Database,
    patient_id: int,
    change: Callable[[str], patients.PatientRow],
    audit: Audit | None,
    action: str = "update",
) -> str | None:
    """Read the record's JSON under a row lock, let `change` build the new row (it may raise
    to refuse), write it (`action`: "update" for PATCH, "replace" for PUT). Concurrent updates
    of one record queue up; none is lost. None when there is no such record."""
    async with _transaction(db):
        current = await _locked(db, patient_id)
        if current is None:
            return None
        row = change(current)
        sql, params = _write(UPDATE_PATIENT, action, audit, before=BEFORE, after=AFTER)
        value: str = await _unique(db.fetch_val(sql, {**params, **_params(row), "id": patient_id}))
    return value


async def delete_patient(
    db: Database, patient_id: int, audit: Audit | None, check: Callable[[str], None] | None = None
) -> bool:
    """Delete the record; `check` sees its JSON under a row lock first and may raise to refuse."""
    sql, params = _write(DELETE_PATIENT, "delete", audit, before=WIRE)
    async with _transaction(db):
        if check is not None:
            current = await _locked(db, patient_id)
            if current is None:
                return False
            check(current)
        deleted = await db.fetch_val(sql, {**params, "id": patient_id})
    return deleted is not None


async def _locked(db: Database, patient_id: int) -> str | None:
    """The record's JSON under its row lock, taken after the writers' table lock (LOCKED)."""
    value: str | None = await db.fetch_val(LOCKED, {"id": patient_id})
    return value


async def _count(db: Database, listing: query.ListQuery) -> int:
    rows = await _shared_read(db, sqlquery.count_statement(listing))
    total: int = rows[0][0]
    return total


async def _guarded(pending: Awaitable[T]) -> T:
    """Turn verdicts on a client's query into InvalidQuery: PostgreSQL's on a regular expression
    or a statement past its limits, asyncpg's on the arguments. query.py's limits keep the
    last two out of reach; this keeps them 400s if a limit is ever raised too far."""
    try:
        return await pending
    except asyncpg.InvalidRegularExpressionError as error:
        raise query.InvalidQuery(f"Invalid regular expression in a _like filter: {error}") from None
    except asyncpg.ProgramLimitExceededError:
        raise query.InvalidQuery("The query is too large for the database; simplify it") from None
    except asyncpg.InterfaceError as error:
        if _is_query_argument_error(error):
            raise query.InvalidQuery("The query has too many or too large values") from None
        raise


async def _unique(pending: Awaitable[T]) -> T:
    try:
        return await pending
    except asyncpg.UniqueViolationError as error:
        raise DuplicatePatient(CONSTRAINT_FIELDS.get(error.constraint_name or "", "id")) from None


class PoolBusy(Exception):
    """Every connection of the pool, or the whole list memory budget, stayed in use for the
    whole wait: this instance is busy, the database is not down. Answered 503 SERVER_BUSY with
    Retry-After. Its text says which (for the log)."""

    def __init__(self, what: str = "every database connection busy") -> None:
        super().__init__(what)


class _BoundedPool:
    """An asyncpg pool whose acquire() gives up after `within` seconds: PoolBusy when every
    connection was in use, TimeoutError when opening one took too long. Waiting requests are
    served first come, first served (asyncpg's queue of waiters is FIFO)."""

    def __init__(self, pool: asyncpg.Pool, within: float, list_memory_bytes: int) -> None:
        self._pool = pool
        self.within = within
        self.list_memory = budget.ByteBudget(list_memory_bytes)
        self.waiting = 0
        self.answered_at = -math.inf  # time.monotonic() of PostgreSQL's last answer to a read

    def acquire(self) -> Any:
        # Only waiting for a free connection needs the bound. asyncpg arms a timer for every
        # acquisition with a timeout (~6% of a GET by id's CPU), so when a connected idle
        # connection is there (handed out at once, without suspending), none is armed.
        if self._pool.get_idle_size():
            return self._pool.acquire()
        return _Acquiring(self)

    def answered_lately(self) -> bool:
        return time.monotonic() - self.answered_at < ANSWERED_LATELY_SECONDS

    @property
    def saturated(self) -> bool:
        """Every connection the pool may open is open and in use."""
        pool = self._pool
        return not pool.get_idle_size() and pool.get_size() >= pool.get_max_size()

    async def wait_for_connection(self) -> asyncpg.Connection:
        saturated = self.saturated
        self.waiting += 1
        try:
            connection: asyncpg.Connection = await self._pool.acquire(timeout=self.within)
        except TimeoutError:
            if saturated:
                raise PoolBusy from None
            raise
        finally:
            self.waiting -= 1
        return connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


class _Acquiring:
    """What asyncpg's pool.acquire() returns, for _BoundedPool: awaited (as `databases` does)
    or used as `async with`."""

    def __init__(self, pool: _BoundedPool) -> None:
        self._pool = pool
        self._connection: asyncpg.Connection | None = None

    def __await__(self) -> Generator[Any, None, asyncpg.Connection]:
        return self._pool.wait_for_connection().__await__()

    async def __aenter__(self) -> asyncpg.Connection:
        self._connection = await self._pool.wait_for_connection()
        return self._connection

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._connection is not None
        await self._pool.release(self._connection)


def _insert_sql(patient: patients.PatientRow) -> str:
    """The INSERT of one record, answering its stored JSON (the generated `wire` column)."""
    if patient.id is None:
        return (
            f"INSERT INTO patients ({INSERT_COLUMNS}) VALUES ({INSERT_VALUES}) RETURNING id, wire"
        )
    return (
        f"INSERT INTO patients (id, {INSERT_COLUMNS}) VALUES (:id, {INSERT_VALUES}) "
        "RETURNING id, wire"
    )


def _params(patient: patients.PatientRow) -> dict[str, Any]:
    params = {column: getattr(patient, column) for column in DATA_COLUMNS}
    params["extra"] = json.dumps(patient.extra, ensure_ascii=False)
    if patient.id is not None:
        params["id"] = patient.id
    return params


# --- users (migration 0008) ----------------------------------------------------------------
USER_COLUMNS = (
    "id",
    "tenant_id",
    "object_id",
    "email",
    "display_name",
    "is_admin",
    "has_admin_role",
    "created_at",
    "updated_at",
    "last_seen_at",
)
SELECT_USERS = f"SELECT {', '.join(USER_COLUMNS)} FROM users"
# A missing name in the token keeps the stored one (Entra sends claims only when they have a
# value); `is_admin` only ever turns on here (ADMIN_OBJECT_IDS): PATCH /users turns it off.
SYNC_USER = """
INSERT INTO users AS u (tenant_id, object_id, email, display_name, is_admin, has_admin_role)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, object_id) DO UPDATE SET
    email = COALESCE(EXCLUDED.email, u.email),
    display_name = COALESCE(EXCLUDED.display_name, u.display_name),
    is_admin = u.is_admin OR EXCLUDED.is_admin,
    has_admin_role = EXCLUDED.has_admin_role,
    updated_at = CASE
        WHEN (COALESCE(EXCLUDED.email, u.email), COALESCE(EXCLUDED.display_name, u.display_name),
              u.is_admin OR EXCLUDED.is_admin, EXCLUDED.has_admin_role)
             IS DISTINCT FROM (u.email, u.display_name, u.is_admin, u.has_admin_role)
        THEN now() ELSE u.updated_at END,
    last_seen_at = now()
RETURNING id, is_admin
"""


async def sync_user(
    db: Database, principal: tokens.Principal, admin: bool, admin_role: bool
) -> tuple[int, bool]:
    """Create or refresh the token's user (tid, oid) and mark it seen: its id and stored admin
    flag (`admin` turns the flag on, never off; `admin_role` is what the token says)."""
    pool: _BoundedPool = db._backend._pool  # see connect()
    async with pool.acquire() as connection:
        row = await connection.fetchrow(
            SYNC_USER,
            principal.tenant_id,
            principal.object_id,
            principal.username,
            principal.display_name,
            admin,
            admin_role,
        )
    return row["id"], row["is_admin"]


async def list_users(db: Database, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """One page of users in id order, and how many there are."""
    rows = await db.fetch_all(
        f"{SELECT_USERS} ORDER BY id LIMIT :limit OFFSET :offset",
        {"limit": limit, "offset": offset},
    )
    total: int = await db.fetch_val("SELECT count(*) FROM users")
    return [dict(row._mapping) for row in rows], total


async def fetch_user(db: Database, user_id: int) -> dict[str, Any] | None:
    row = await db.fetch_one(f"{SELECT_USERS} WHERE id = :id", {"id": user_id})
    return None if row is None else dict(row._mapping)


async def set_admin(db: Database, user_id: int, is_admin: bool) -> dict[str, Any] | None:
    """Set a user's admin flag; the user as stored now, or None when there is no such user."""
    row = await db.fetch_one(
        "UPDATE users SET is_admin = :is_admin, "
        "updated_at = CASE WHEN is_admin = :is_admin THEN updated_at ELSE now() END "
        f"WHERE id = :id RETURNING {', '.join(USER_COLUMNS)}",
        {"id": user_id, "is_admin": is_admin},
    )
    return None if row is None else dict(row._mapping)


# --- audit trail (migration 0009) ----------------------------------------------------------
# GET /audit's filters: a fixed piece of SQL per whitelisted column, every value bound.
AUDIT_CONDITIONS = {
    "patient_id": "e.patient_id = ${}",
    "user_id": "e.user_id = ${}",
    "action": "e.action = ${}",
    "since": "e.occurred_at >= ${}",
    "until": "e.occurred_at < ${}",
}
SELECT_AUDIT = """SELECT e.id, e.occurred_at, e.action, e.patient_id, e.user_id, u.display_name,
       e.request_id, e.before::text AS before, e.after::text AS after, e.import_run_id,
       e.details::text AS details
FROM audit_events AS e LEFT JOIN users AS u ON u.id = e.user_id"""


def audit_statements(
    filters: tuple[tuple[str, Any], ...], page: paging.Page
) -> tuple[str, str, list[Any]]:
    """The page's SQL, the count's SQL, and their values (the page's end with size, offset)."""
    where = " AND ".join(
        AUDIT_CONDITIONS[column].format(number) for number, (column, _) in enumerate(filters, 1)
    )
    where = f" WHERE {where}" if where else ""
    values = [value for _, value in filters]
    last = len(values)
    listed = f"{SELECT_AUDIT}{where} ORDER BY e.id DESC LIMIT ${last + 1} OFFSET ${last + 2}"
    return (
        listed,
        f"SELECT count(*) FROM audit_events AS e{where}",
        [*values, page.size, page.offset],
    )


async def list_audit(
    db: Database, filters: tuple[tuple[str, Any], ...], page: paging.Page
) -> tuple[list[asyncpg.Record], int]:
    """One page of audit events matching every filter, newest first, and how many match."""
    listed, counted, values = audit_statements(filters, page)
    pool: _BoundedPool = db._backend._pool  # see connect()
    async with pool.acquire() as connection:
        rows: list[asyncpg.Record] = await connection.fetch(listed, *values)
        total: int = await connection.fetchval(counted, *values[:-2])
    return rows, total
