"""Imports a json-server db.json: every record ends in exactly one bucket, all or nothing.

Buckets: inserted, updated (upsert mode only), unchanged, rejected (with a reason, kept verbatim
in import_rejects). Other top-level collections are kept there too. A dry run does all of it,
reports, and rolls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import pathlib
import time
from collections.abc import Callable
from typing import Any, TextIO

import asyncpg

from api import patients
from api.store import driver_options
from seed import reader, store
from seed.store import BUCKET, Import, refused, staged_fields

PROGRESS_EVERY = 5000  # records between two looks at the clock
# Records between two chances for the chunk being applied to send its next statement (~10 ms).
YIELD_EVERY = 500
MAX_RECORD_BYTES = 1_048_576  # the API's default body limit
BUCKETS = ("inserted", "updated", "unchanged", "rejected")
PROGRESS_INTERVAL_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Options:
    path: pathlib.Path
    database_url: str
    upsert: bool = False
    dry_run: bool = False
    report: pathlib.Path | None = None
    wait_seconds: float = 60.0
    pooled: bool = False  # behind PgBouncer in transaction pooling mode (DB_POOLER)


@dataclasses.dataclass
class Summary:
    counts: dict[str, int]
    collections: dict[str, int]
    run_id: int | None
    read: int


async def run(options: Options, say: Callable[[str], None], progress_to: TextIO) -> Summary:
    connection = await _connect(options, say)
    try:
        transaction = connection.transaction()
        await transaction.start()
        job = Import(connection)
        try:
            summary = await _import(job, options, say, progress_to)
            if options.dry_run:
                await job.restore_sequences()
        except BaseException:
            await transaction.rollback()
            raise
        if options.dry_run:
            await transaction.rollback()
        else:
            await transaction.commit()
        return summary
    finally:
        await connection.close()


async def _import(
    job: Import, options: Options, say: Callable[[str], None], out: TextIO
) -> Summary:
    await job.begin()
    collections: dict[str, str] = {}  # name -> JSON text, kept in import_rejects
    sizes: dict[str, int] = {}  # name -> number of entries, for the summary and the report
    meter = _Meter(options.path, out, say)
    read = valid = 0
    # lastVisit may be at most tomorrow as of the day the import started.
    today = datetime.datetime.now(datetime.UTC).date()

    stager = _Stager(job)
    try:
        for entry in reader.entries(options.path, _keep(collections, sizes), meter.progress, say):
            record = _prepare(entry, today)
            stager.chunk.append(record)
            read += 1
            valid += record[BUCKET] is None
            if read % YIELD_EVERY == 0:
                if read % PROGRESS_EVERY == 0:
                    meter.tick(read)
                if len(stager.chunk) >= store.CHUNK_ROWS:
                    await stager.flush(valid)
                elif stager.applying is not None:
                    await asyncio.sleep(0)  # the chunk being applied sends its next statement
        await stager.flush(valid)
        await stager.wait()
    except BaseException:
        await stager.abandon()
        raise
    meter.finish(read)
    started = time.monotonic()
    applied = await (
        job.finish_rebuild() if job.rebuilding else job.classify_and_apply(options.upsert, valid)
    )
    counts = dict.fromkeys(BUCKETS, 0) | applied
    say(f"sorted into buckets and applied in {time.monotonic() - started:.1f} s")
    run_id = None
    if not options.dry_run:
        run_id = await job.log(str(options.path), "upsert" if options.upsert else "insert", counts)
        for name, value in collections.items():
            await job.keep_collection(run_id, name, value)
    if options.report:
        await _write_report(job, options, counts, sizes, read)
    return Summary(counts, sizes, run_id, read)


class _Stager:
    """COPYs the records to the staging table chunk by chunk. Once a rebuild has started
    (enough valid rows, an empty table), each chunk is then sorted and inserted by PostgreSQL
    in a task, while the importer parses the next chunk."""

    def __init__(self, job: Import) -> None:
        self.job = job
        self.chunk: list[tuple[Any, ...]] = []
        self.applying: asyncio.Task[None] | None = None
        self.tried = False  # start_rebuild is asked once
        self.unapplied: int | None = None  # the least position staged and not yet applied

    async def flush(self, valid: int) -> None:
        """Stage the chunk (after the previous one is applied); apply it in a rebuild."""
        await self.wait()
        if not self.chunk:
            return
        chunk, self.chunk = self.chunk, []
        await self.job.stage(chunk)
        if self.unapplied is None:
            self.unapplied = chunk[0][0]
        if not self.tried and valid >= store.REBUILD_MIN_ROWS:
            self.tried = True
            await self.job.start_rebuild()
        if self.job.rebuilding:
            self.applying = asyncio.create_task(self.job.apply_chunk(self.unapplied))
            self.unapplied = None
            await asyncio.sleep(0)  # it sends its first statement before parsing goes on

    async def wait(self) -> None:
        if self.applying is not None:
            applying, self.applying = self.applying, None
            await applying

    async def abandon(self) -> None:
        """On failure: stop the chunk being applied, so the connection can roll back."""
        if self.applying is not None:
            self.applying.cancel()
            with contextlib.suppress(BaseException):
                await self.applying


def _keep(collections: dict[str, str], sizes: dict[str, int]) -> Callable[[str, Any], None]:
    def keep(name: str, value: Any) -> None:
        collections[name] = json.dumps(value, ensure_ascii=False)
        sizes[name] = len(value) if isinstance(value, list | dict) else 1

    return keep


def _prepare(entry: reader.Entry, today: datetime.date) -> tuple[Any, ...]:
    """The staging tuple for one entry: validated by the API's own rules, or refused."""
    raw = entry.raw
    if isinstance(entry.value, reader.Unreadable):
        return refused(entry.position, raw, entry.value.reason)
    if not isinstance(entry.value, dict):
        return refused(entry.position, raw, "not a JSON object")
    if len(raw) * 4 > MAX_RECORD_BYTES and len(raw.encode()) > MAX_RECORD_BYTES:
        return refused(entry.position, raw, f"larger than {MAX_RECORD_BYTES} bytes")
    try:
        return staged_fields(entry.position, patients.to_fields(entry.value, today), raw)
    except patients.InvalidPatient as error:
        reason = "; ".join(f"{key}: {text}" for key, text in error.field_errors.items())
        return refused(entry.position, raw, reason)


async def _write_report(
    job: Import, options: Options, counts: dict[str, int], sizes: dict[str, int], read: int
) -> None:
    """A JSON report, streamed: the counts, then each rejected or updated record's line."""
    assert options.report is not None
    with options.report.open("w", encoding="utf-8") as file:
        header = {
            "source": str(options.path),
            "mode": "upsert" if options.upsert else "insert",
            "dry_run": options.dry_run,
            "read": read,
            "counts": counts,
            "other_collections": sizes,
        }
        file.write(json.dumps(header, ensure_ascii=False)[:-1] + ', "records": [')
        separator = "\n"
        async for outcome in job.outcomes(("rejected", "updated")):
            line = {
                "position": outcome.position,
                "id": outcome.id if outcome.id is not None else _raw_field(outcome.raw, "id"),
                "patientID": outcome.patient_id
                if outcome.patient_id is not None
                else _raw_field(outcome.raw, "patientID"),
                "bucket": outcome.bucket,
                "reason": outcome.reason,
            }
            file.write(separator + json.dumps(line, ensure_ascii=False))
            separator = ",\n"
        file.write("\n]}\n")


def _raw_field(raw: str, key: str) -> Any:
    """A field of a rejected record as the file had it (None when it is not an object)."""
    value = json.loads(raw, parse_int=_whole_number)
    return value.get(key) if isinstance(value, dict) else None


def _whole_number(text: str) -> int | str:
    """An integer of a rejected record, or its digits when it is too long for int()."""
    try:
        return int(text)
    except ValueError:
        return text


async def _connect(options: Options, say: Callable[[str], None]) -> asyncpg.Connection:
    within = options.wait_seconds
    deadline = time.monotonic() + within
    attempt = 1
    while True:
        try:
            return await asyncpg.connect(
                options.database_url,
                timeout=min(5.0, within),
                **driver_options(pooled=options.pooled),
            )
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as error:
            if time.monotonic() >= deadline:
                raise ConnectionError(f"database not reachable after {within:.0f} s") from error
            say(f"waiting for the database (attempt {attempt}): {type(error).__name__}")
            attempt += 1
            await asyncio.sleep(1.0)


class _Meter:
    """A live progress line on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, path: pathlib.Path, out: TextIO, say: Callable[[str], None]) -> None:
        size = path.stat().st_size if path.exists() else 0
        self.progress = reader.Progress(size)
        self.out = out
        self.say = say
        self.live = out.isatty()
        self.started = self.last = time.monotonic()

    def tick(self, records: int) -> None:
        now = time.monotonic()
        if not self.live and now - self.last < PROGRESS_INTERVAL_SECONDS:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        fraction = self.progress.done / self.progress.size if self.progress.size else 0.0
        eta = elapsed / fraction - elapsed if fraction else 0.0
        line = (
            f"{records:,} records read, {records / elapsed:,.0f}/s, "
            f"{fraction:.0%} of the file, about {eta:.0f} s left"
        )
        if self.live:
            self.out.write(f"\r{line}\x1b[K")
            self.out.flush()
        else:
            self.say(line)

    def finish(self, records: int) -> None:
        if self.live:
            self.out.write("\r\x1b[K")
            self.out.flush()
        elapsed = time.monotonic() - self.started
        self.say(f"{records:,} records read in {elapsed:.1f} s")
