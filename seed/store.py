"""The import's SQL: stage valid records with COPY, sort each into one bucket, apply.

Everything runs in one transaction of one connection, under the import advisory lock, so a failed
or killed import changes nothing and two imports never interleave. Staging and classification
happen in PostgreSQL, so the importer's memory stays flat whatever the file's size.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import asyncpg

from api import patients
from api.store import DATA_COLUMNS, IMPORT_LOCK_KEY

# Session settings for the import's transaction: sorts and hashes of a million staged rows in
# memory rather than in temporary files; the staging table in local buffers (set before the
# session's first temporary table, as PostgreSQL requires); index rebuilds sorted in memory by
# the leader and two parallel workers (each needs 32MB: 64MB kept one worker; 1M rows: the
# name_sort btree 2.1 -> 1.8 s).
SETTINGS = (
    "SET LOCAL work_mem = '64MB'",
    "SET LOCAL temp_buffers = '256MB'",
    "SET LOCAL maintenance_work_mem = '256MB'",
    # The chunked rebuild runs its INSERT ~50 times with a position bound; a generic plan
    # (asyncpg prepares them) would guess a third of the staged rows and scan them all.
    "SET LOCAL plan_cache_mode = force_custom_plan",
)
# With at least this many rows to insert into an empty table, every index of patients (the
# unique constraints' too) is dropped and built again after the INSERT, in the same transaction,
# from its own definition: building a GIN index once is ~2x cheaper than growing it row by row,
# and a sorted btree build is cheaper than a million insertions. The INSERT cannot break
# uniqueness (CLASSIFY rejected every duplicate), and the constraints are checked again as they
# come back. The price: the table is locked ACCESS EXCLUSIVE, so the API's reads wait until the
# import commits (the table is empty meanwhile).
REBUILD_MIN_ROWS = 10_000
REBUILT = """
SELECT 'ALTER TABLE patients DROP CONSTRAINT ' || quote_ident(c.conname) AS drop,
       'ALTER TABLE patients ADD CONSTRAINT ' || quote_ident(c.conname) || ' '
           || pg_get_constraintdef(c.oid) AS create,
       true AS unique
FROM pg_constraint AS c
WHERE c.conrelid = 'patients'::regclass AND c.contype IN ('p', 'u')
UNION ALL
SELECT 'DROP INDEX ' || i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), false
FROM pg_index AS i
WHERE i.indrelid = 'patients'::regclass
  AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
"""
STAGED_COLUMNS = ("position", "id", *DATA_COLUMNS, "raw", "bucket", "reason")
BUCKET = STAGED_COLUMNS.index("bucket")  # None in a staged tuple: sorted later, in SQL
CREATE_STAGING = """
CREATE TEMP TABLE import_staging (
    position bigint PRIMARY KEY,
    id bigint,
    patient_id text,
    name text,
    age integer,
    gender text,
    medical_condition text,
    last_visit date,
    extra jsonb,
    raw text NOT NULL,
    bucket text,
    target_id bigint,
    reason text
) ON COMMIT DROP
"""
# Same content: every data column and `extra` equal (NULL-safe).
SAME_CONTENT = " AND ".join(
    f"p.{column} IS NOT DISTINCT FROM s.{column}" for column in DATA_COLUMNS
)
# Each statement sorts the still-unsorted staged rows; the first that matches decides. A row
# still unsorted at the end (bucket NULL) is inserted: rewriting every staged row to say so cost
# ~0.7 s per 100,000 rows. HAVING keeps the joins of the duplicate checks to duplicated keys.
# The first two look at the file only; the others compare with the stored rows, so they cannot
# match when the table is empty (CLASSIFY_STORED, skipped then: ~0.5 s at 1M rows).
CLASSIFY_FILE = (
    """UPDATE import_staging AS s SET bucket = 'rejected',
        reason = 'id ' || s.id || ' appears earlier in the file, at position ' || first.position
    FROM (SELECT id, min(position) AS position FROM import_staging WHERE id IS NOT NULL
          GROUP BY id HAVING count(*) > 1) AS first
    WHERE s.id = first.id AND s.position > first.position AND s.bucket IS NULL""",
    """UPDATE import_staging AS s SET bucket = 'rejected',
        reason = 'patientID ' || s.patient_id || ' appears earlier in the file, at position '
                 || first.position
    FROM (SELECT patient_id, min(position) AS position FROM import_staging
          WHERE bucket IS NULL GROUP BY patient_id HAVING count(*) > 1) AS first
    WHERE s.patient_id = first.patient_id AND s.position > first.position AND s.bucket IS NULL""",
)
CLASSIFY_STORED = (
    """UPDATE import_staging AS s SET bucket = 'rejected',
        reason = 'id ' || s.id || ' is stored with another patientID (' || p.patient_id || ')'
    FROM patients AS p
    WHERE p.id = s.id AND p.patient_id <> s.patient_id AND s.bucket IS NULL""",
    """UPDATE import_staging AS s SET bucket = 'rejected',
        reason = 'patientID ' || s.patient_id || ' is stored with another id (' || p.id || ')'
    FROM patients AS p
    WHERE p.patient_id = s.patient_id AND s.id IS NOT NULL AND p.id <> s.id
      AND s.bucket IS NULL""",
    f"""UPDATE import_staging AS s SET bucket = 'unchanged', target_id = p.id
    FROM patients AS p
    WHERE p.patient_id = s.patient_id AND {SAME_CONTENT} AND s.bucket IS NULL""",
    # $1: upsert. The same patientID with other values: updated, or refused in insert mode.
    """UPDATE import_staging AS s
    SET bucket = CASE WHEN $1 THEN 'updated' ELSE 'rejected' END,
        target_id = p.id,
        reason = CASE WHEN $1 THEN NULL ELSE 'patientID ' || s.patient_id
                 || ' is stored with other values; import with --mode upsert to update it' END
    FROM patients AS p
    WHERE p.patient_id = s.patient_id AND s.bucket IS NULL""",
)
# Only rows sorted by CLASSIFY_STORED are updated, so UPDATE_STORED too is skipped when the
# table is empty.
UPDATE_STORED = f"""UPDATE patients AS p SET ({", ".join(DATA_COLUMNS)}) =
        ({", ".join(f"s.{column}" for column in DATA_COLUMNS)})
    FROM import_staging AS s WHERE s.bucket = 'updated' AND p.id = s.target_id"""
# New ids come after every stored id and every id this import brings, so after the INSERT the
# sequence is past every id in the table.
ADVANCE_IDS = """SELECT setval(s.seq, m.high)
    FROM (SELECT pg_get_serial_sequence('patients', 'id')::regclass AS seq) AS s,
    LATERAL (SELECT GREATEST(
        (SELECT max(id) FROM import_staging WHERE bucket IS NULL),
        (SELECT max(id) FROM patients),
        pg_sequence_last_value(s.seq)) AS high) AS m
    WHERE m.high IS NOT NULL"""
INSERT_NEW = f"""INSERT INTO patients (id, {", ".join(DATA_COLUMNS)})
    SELECT coalesce(s.id, nextval(pg_get_serial_sequence('patients', 'id'))),
           {", ".join(f"s.{column}" for column in DATA_COLUMNS)}
    FROM import_staging AS s WHERE s.bucket IS NULL ORDER BY s.position"""
# Migration 0006's statement trigger that adds each INSERT's row count to patients_counts. Its
# transition table holds a copy of every inserted row (~1.2 s of a 1M-row INSERT), so a rebuild,
# which holds the table ACCESS EXCLUSIVE, disables it for its INSERT and adds the delta itself.
COUNT_TRIGGER = "patients_count_inserted"
# The same trigger keeps patients_blocks (migration 0010); with it off, a rebuild (the table was
# empty under its lock) counts every block again once its rows are in.
RECOUNT_BLOCKS = (
    "DELETE FROM patients_blocks",
    "INSERT INTO patients_blocks (block, delta)"
    " SELECT storage_order >> 10, count(*) FROM patients GROUP BY 1",
)
COUNT_TRIGGER_ENABLED = """SELECT EXISTS (SELECT FROM pg_trigger
    WHERE tgrelid = 'patients'::regclass AND tgname = $1 AND tgenabled = 'O')"""

# A rebuild does not wait for the whole file: once REBUILD_MIN_ROWS valid rows are staged and the
# table is empty under its lock, every chunk of CHUNK_ROWS staged rows is inserted while the
# importer parses the next one, so PostgreSQL's INSERT (~14 s of one core at 1M rows) runs beside
# the Python reader (~20 s of the other) instead of after it. Checking each chunk against the
# rows staged before it cost more than the INSERT it overlapped (two index lookups a row in a
# staging table larger than its buffers), so the rows are inserted before they are sorted:
# - at the end, the rows without an id are inserted too, numbered after every id of the file,
#   and the unique constraints are built, under a savepoint. If they hold, no two valid rows
#   share an id or a patientID, which is exactly when CLASSIFY_FILE would reject nothing: every
#   valid row is inserted, and the whole-file sort (~4 s at 1M rows) is skipped.
# - if a constraint fails, the savepoint is rolled back (the rows without an id and the
#   constraints; the sequence was not touched), CLASSIFY_FILE sorts the whole file, the rows it
#   rejects are deleted again (DELETE_REJECTED) and the rows without an id are inserted as in
#   any import. Nobody sees the deleted rows: they never leave the transaction.
# Every row's storage_order comes from its file position, so the list order is still the file's
# order, whatever order the rows were inserted in.
CHUNK_ROWS = 20_000
STORAGE_ORDER_BASE = """SELECT coalesce(pg_sequence_last_value(
    pg_get_serial_sequence('patients', 'storage_order')::regclass), 0) + 1"""
_INSERT_ORDERED = f"""INSERT INTO patients (id, storage_order, {", ".join(DATA_COLUMNS)})
    OVERRIDING SYSTEM VALUE
    SELECT {{id}}, $1 + s.position, {", ".join(f"s.{column}" for column in DATA_COLUMNS)}
    FROM import_staging AS s WHERE s.bucket IS NULL AND {{rows}} ORDER BY s.position"""
# $1: storage_order of position 0; $2: the chunk's least position.
INSERT_CHUNK = _INSERT_ORDERED.format(id="s.id", rows="s.id IS NOT NULL AND s.position >= $2")
# $2: the highest id so far (the file's, the sequence's); what ADVANCE_IDS and nextval give.
INSERT_NUMBERED = _INSERT_ORDERED.format(
    id="coalesce($2, 0) + row_number() OVER (ORDER BY s.position)", rows="s.id IS NULL"
)
INSERT_WITHOUT_IDS = _INSERT_ORDERED.format(
    id="nextval(pg_get_serial_sequence('patients', 'id'))", rows="s.id IS NULL"
)
HIGHEST_ID = """SELECT GREATEST($1::bigint,
    pg_sequence_last_value(pg_get_serial_sequence('patients', 'id')::regclass))"""
SET_ID_SEQUENCE = "SELECT setval(pg_get_serial_sequence('patients', 'id'), $1)"
# $1: storage_order of position 0. Only rows staged valid have an id here.
DELETE_REJECTED = """DELETE FROM patients AS p USING import_staging AS s
    WHERE s.bucket = 'rejected' AND s.id IS NOT NULL AND p.storage_order = $1 + s.position"""
SET_STORAGE_ORDER = "SELECT setval(pg_get_serial_sequence('patients', 'storage_order'), $1)"
# setval and nextval are not undone by a rollback: a dry run puts the patients' sequences back
# as they were when it locked the table (writers wait on that lock, so nobody else moved them).
SEQUENCE_STATES = """SELECT s.seq::text AS seq, q.last_value, q.start_value
FROM (SELECT pg_get_serial_sequence('patients', column_name)::regclass AS seq
      FROM unnest(ARRAY['id', 'storage_order']) AS column_name) AS s
JOIN pg_sequences AS q ON format('%I.%I', q.schemaname, q.sequencename)::regclass = s.seq"""
RESTORE_SEQUENCE = "SELECT setval($1::regclass, COALESCE($2::bigint, $3), $2::bigint IS NOT NULL)"


# The run and its one audit event (not one per row), in one statement.
LOG_RUN = """WITH run AS (
    INSERT INTO import_runs (source, mode, counts) VALUES ($1, $2, $3) RETURNING id
),
event AS (
    INSERT INTO audit_events (action, import_run_id, details)
    SELECT 'import', run.id, jsonb_build_object('mode', $2::text, 'source', $1::text,
                                                'counts', $3::jsonb)
    FROM run
)
SELECT id FROM run"""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What happened to one staged record (rejected ones carry their verbatim text)."""

    position: int
    id: int | None
    patient_id: str
    bucket: str
    reason: str | None
    raw: str


class Import:
    """One import's transaction: stage rows, then classify and apply them."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.rebuilding = False  # set by start_rebuild: chunks are applied as they come
        self._rebuilt: list[asyncpg.Record] = []  # the dropped indexes' statements
        self._counting = False  # COUNT_TRIGGER is off: the inserted rows are counted here
        self._inserted = 0  # every row inserted by a rebuild, deleted ones included
        self._storage_base = 0
        self._staged = 0
        self._last_position = 0
        self._top_id: int | None = None  # the highest id of a row staged valid
        self._sequences: list[asyncpg.Record] | None = None  # as they were at the lock

    async def begin(self) -> None:
        await self.connection.execute("SELECT pg_advisory_xact_lock($1)", IMPORT_LOCK_KEY)
        for setting in SETTINGS:
            await self.connection.execute(setting)
        await self.connection.execute(CREATE_STAGING)

    async def _lock(self, mode: str) -> None:
        """Lock `patients` against writers (`mode`), and note its sequences once locked."""
        await self.connection.execute(f"LOCK TABLE patients IN {mode} MODE")
        if self._sequences is None:
            self._sequences = await self.connection.fetch(SEQUENCE_STATES)

    async def restore_sequences(self) -> None:
        """For a dry run, before its rollback: the sequences as they were at the lock."""
        for state in self._sequences or ():
            await self.connection.execute(
                RESTORE_SEQUENCE, state["seq"], state["last_value"], state["start_value"]
            )

    async def stage(self, records: Sequence[tuple[Any, ...]]) -> None:
        """COPY tuples made by `staged` or `refused` into the staging table."""
        await self.connection.copy_records_to_table(
            "import_staging", records=records, columns=STAGED_COLUMNS
        )
        self._staged += len(records)
        if records:
            self._last_position = records[-1][0]
        top = max((record[1] for record in records if record[1] is not None), default=None)
        if top is not None and (self._top_id is None or top > self._top_id):
            self._top_id = top

    async def start_rebuild(self) -> bool:
        """Lock an empty table for a rebuild and drop its indexes; False if it holds rows.

        Called once enough valid rows are staged; what is staged so far is then applied by
        `apply_chunk` like any later chunk.
        """
        if await self._has_patients():
            return False
        await self._lock("ACCESS EXCLUSIVE")
        if await self._has_patients():
            return False
        self._rebuilt = await self.connection.fetch(REBUILT)
        for index in self._rebuilt:
            await self.connection.execute(index["drop"])
        if await self.connection.fetchval(COUNT_TRIGGER_ENABLED, COUNT_TRIGGER):
            await self.connection.execute(f"ALTER TABLE patients DISABLE TRIGGER {COUNT_TRIGGER}")
            self._counting = True
        self._storage_base = await self.connection.fetchval(STORAGE_ORDER_BASE)
        self.rebuilding = True
        return True

    async def apply_chunk(self, first_position: int) -> None:
        """Insert the rows with an id staged from `first_position` on, still unsorted."""
        self._inserted += await self._execute_count(
            INSERT_CHUNK, self._storage_base, first_position
        )

    async def finish_rebuild(self) -> dict[str, int]:
        """After the last chunk: the rows without an id and the unique constraints, sorting the
        whole file only if they fail; then the count, the other indexes and the buckets."""
        unique = [index["create"] for index in self._rebuilt if index["unique"]]
        try:
            async with self.connection.transaction():  # a savepoint
                high = await self.connection.fetchval(HIGHEST_ID, self._top_id)
                numbered = await self._execute_count(INSERT_NUMBERED, self._storage_base, high)
                for statement in unique:
                    await self.connection.execute(statement)
        except asyncpg.UniqueViolationError:
            deleted = await self._sort_whole_file()
            for statement in unique:
                await self.connection.execute(statement)
        else:
            deleted = 0
            self._inserted += numbered
            if high is not None or numbered:
                await self.connection.execute(SET_ID_SEQUENCE, (high or 0) + numbered)
        await self.connection.execute(SET_STORAGE_ORDER, self._storage_base + self._last_position)
        if self._counting:  # the delete trigger counted the deleted rows
            await self.connection.execute(f"ALTER TABLE patients ENABLE TRIGGER {COUNT_TRIGGER}")
            await self.connection.execute(
                "INSERT INTO patients_counts (delta) VALUES ($1)", self._inserted
            )
            for statement in RECOUNT_BLOCKS:
                await self.connection.execute(statement)
        for index in self._rebuilt:
            if not index["unique"]:
                await self.connection.execute(index["create"])
        inserted = self._inserted - deleted
        if inserted >= REBUILD_MIN_ROWS:
            await self.connection.execute("ANALYZE patients")  # plans for the new size at once
        return {"inserted": inserted, "rejected": self._staged - inserted}

    async def _sort_whole_file(self) -> int:
        """CLASSIFY_FILE, the inserted rows it rejects deleted; the rows without an id inserted
        as any import inserts them. Returns the number of rows deleted."""
        await self.connection.execute("ANALYZE import_staging")
        for statement in CLASSIFY_FILE:
            await self.connection.execute(statement)
        deleted = await self._execute_count(DELETE_REJECTED, self._storage_base)
        await self.connection.execute(ADVANCE_IDS)
        self._inserted += await self._execute_count(INSERT_WITHOUT_IDS, self._storage_base)
        return deleted

    async def _execute_count(self, statement: str, *arguments: Any) -> int:
        status: str = await self.connection.execute(statement, *arguments)  # "DELETE <rows>"
        return int(status.rsplit(maxsplit=1)[-1])

    async def log(self, source: str, mode: str, counts: dict[str, int]) -> int:
        """Record the run, its one audit event, and every rejected record, verbatim; returns the
        run's id."""
        run_id: int = await self.connection.fetchval(LOG_RUN, source, mode, json.dumps(counts))
        if counts.get("rejected", 0):  # else a scan of every staged row for nothing
            await self.connection.execute(
                "INSERT INTO import_rejects (run_id, position, reason, record)"
                " SELECT $1, position, reason, raw FROM import_staging"
                " WHERE bucket = 'rejected' ORDER BY position",
                run_id,
            )
        return run_id

    async def keep_collection(self, run_id: int, name: str, value: str) -> None:
        await self.connection.execute(
            "INSERT INTO import_rejects (run_id, collection, reason, record)"
            " VALUES ($1, $2, 'only patients are imported', $3)",
            run_id,
            name,
            value,
        )

    async def classify_and_apply(self, upsert: bool, valid: int) -> dict[str, int]:
        """Sort the staged rows into buckets and apply them; `valid`: rows staged unsorted."""
        rebuild = valid >= REBUILD_MIN_ROWS and not await self._has_patients()
        # Writers of the API wait until the import commits, so the buckets stay true. A rebuild
        # makes readers wait too; asking for that lock at once (not upgrading to it later)
        # means an API transaction that read and then writes cannot deadlock with the import.
        mode = "ACCESS EXCLUSIVE" if rebuild else "SHARE ROW EXCLUSIVE"
        await self._lock(mode)
        rebuild = rebuild and not await self._has_patients()
        await self.connection.execute("ANALYZE import_staging")
        for statement in CLASSIFY_FILE if rebuild else CLASSIFY_FILE + CLASSIFY_STORED:
            await self.connection.execute(statement, *(upsert,) if "$1" in statement else ())
        if not rebuild:  # a rebuild found the table empty under the lock: nothing to update
            await self.connection.execute(UPDATE_STORED)
        indexes = await self.connection.fetch(REBUILT) if rebuild else []
        for index in indexes:
            await self.connection.execute(index["drop"])
        await self.connection.execute(ADVANCE_IDS)
        if rebuild and await self.connection.fetchval(COUNT_TRIGGER_ENABLED, COUNT_TRIGGER):
            await self._insert_counting_once()
        else:
            await self.connection.execute(INSERT_NEW)
        for index in indexes:
            await self.connection.execute(index["create"])
        return await self._counts()

    async def _counts(self) -> dict[str, int]:
        counts = {
            row["bucket"]: row["count"]
            for row in await self.connection.fetch(
                "SELECT coalesce(bucket, 'inserted') AS bucket, count(*)"
                " FROM import_staging GROUP BY 1"
            )
        }
        if counts.get("inserted", 0) + counts.get("updated", 0) >= REBUILD_MIN_ROWS:
            await self.connection.execute("ANALYZE patients")  # plans for the new size at once
        return counts

    async def _insert_counting_once(self) -> None:
        """INSERT_NEW with COUNT_TRIGGER off, then its delta added as the trigger would add it.

        Disabling is a catalog change of this transaction: other sessions never see the trigger
        off, and it is on again before the commit.
        """
        await self.connection.execute(f"ALTER TABLE patients DISABLE TRIGGER {COUNT_TRIGGER}")
        status = await self.connection.execute(INSERT_NEW)  # "INSERT 0 <rows>"
        await self.connection.execute(f"ALTER TABLE patients ENABLE TRIGGER {COUNT_TRIGGER}")
        await self.connection.execute(
            "INSERT INTO patients_counts (delta) VALUES ($1)", int(status.split()[-1])
        )
        for statement in RECOUNT_BLOCKS:
            await self.connection.execute(statement)

    async def _has_patients(self) -> bool:
        found: bool = await self.connection.fetchval("SELECT EXISTS (SELECT FROM patients)")
        return found

    async def outcomes(self, buckets: Iterable[str]) -> AsyncIterator[Outcome]:
        """The staged records in the given buckets, in file order, read with a cursor."""
        query = (
            "SELECT position, coalesce(id, target_id) AS id, patient_id, bucket, reason, raw"
            " FROM import_staging WHERE coalesce(bucket, 'inserted') = ANY($1) ORDER BY position"
        )
        async for row in each_row(self.connection, query, list(buckets)):
            yield Outcome(**dict(row))


CURSOR_NAMES = (f"seed_rows_{number}" for number in itertools.count())


async def each_row(
    connection: asyncpg.Connection, query: str, *arguments: Any, batch: int = 1000
) -> AsyncIterator[asyncpg.Record]:
    """The rows of `query`, `batch` at a time, through an SQL cursor of the open transaction.

    Not asyncpg's `cursor()`: it names a prepared statement (`__asyncpg_stmt_1__`) that stays on
    the server connection after the transaction. Behind PgBouncer in transaction pooling mode
    another client then gets that server connection, and its own cursor fails with "prepared
    statement ... already exists". DECLARE and FETCH are plain statements, sent unnamed."""
    name = next(CURSOR_NAMES)
    await connection.execute(f"DECLARE {name} NO SCROLL CURSOR FOR {query}", *arguments)
    while rows := await connection.fetch(f"FETCH {batch} FROM {name}"):
        for row in rows:
            yield row
    await connection.execute(f"CLOSE {name}")


def staged(position: int, row: patients.PatientRow, raw: str) -> tuple[Any, ...]:
    """A valid record, to be sorted into its bucket in SQL."""
    fields = (row.id, row.patient_id, row.name, row.age, row.gender, row.medical_condition)
    return staged_fields(position, (*fields, row.last_visit, row.extra), raw)


def staged_fields(position: int, fields: tuple[Any, ...], raw: str) -> tuple[Any, ...]:
    """`staged` for the fields `patients.to_fields` returns (the importer's hot path)."""
    record_id, patient_id, name, age, gender, condition, last_visit, extra = fields
    text = json.dumps(extra, ensure_ascii=False) if extra else "{}"
    return (
        position,
        record_id,
        patient_id,
        name,
        age,
        gender,
        condition,
        last_visit,
        text,
        raw,
        None,
        None,
    )


def refused(position: int, raw: str, reason: str) -> tuple[Any, ...]:
    """A record refused before staging (invalid, or not an object), kept with its reason."""
    return (position, None, *(None for _ in DATA_COLUMNS), raw, "rejected", reason)
