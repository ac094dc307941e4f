"""The only module that talks to PostgreSQL: every SQL statement of the service lives here."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import asyncpg
from databases import Database

from api import patients
from api.settings import Settings

LOG = logging.getLogger(__name__)
APPLICATION_NAME = "patient-registry"
# The columns the code reads and writes; a test checks them against the migrated table.
DATA_COLUMNS = (*patients.COLUMNS.values(), "extra")
MANAGED_COLUMNS = ("id", "storage_order", "created_at", "updated_at")
SELECT_PATIENT = f"SELECT id, {', '.join(DATA_COLUMNS[:-1])}, extra::text AS extra FROM patients"
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
# One lock for every bulk write, so two seed runs never interleave.
IMPORT_LOCK_KEY = 0x7061_7469_656E_7473  # "patients" in ASCII
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
)
RETRY_INTERVAL_SECONDS = 1.0
CONSTRAINT_FIELDS = {"patients_pkey": "id", "patients_patient_id_key": "patientID"}


class StoreUnavailable(Exception):
    """PostgreSQL did not answer in time."""


class DuplicatePatient(Exception):
    """A write collided with a stored record on `field` (the wire key: `id` or `patientID`)."""

    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(f"a patient with this {field} already exists")


def open_database(settings: Settings) -> Database:
    return Database(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_timeout_seconds,
        command_timeout=settings.db_timeout_seconds,
        server_settings={"application_name": APPLICATION_NAME},
    )


async def disconnect(db: Database, within: float) -> None:
    """Close the pool, but never hang shutdown on leaked connections (encode/databases#477)."""
    try:
        await asyncio.wait_for(db.disconnect(), within)
    except TimeoutError:
        LOG.warning("database pool did not close within %.1f s; abandoning it", within)


async def ping(db: Database, within: float) -> bool:
    try:
        answer: object = await asyncio.wait_for(db.fetch_val("SELECT 1"), within)
    except (*UNAVAILABLE_ERRORS, asyncpg.PostgresError):
        return False
    return answer == 1


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
    return isinstance(error, UNAVAILABLE_ERRORS)


async def list_patients(db: Database) -> list[dict[str, Any]]:
    rows = await db.fetch_all(f"{SELECT_PATIENT} ORDER BY storage_order")
    return [_decode(row._mapping) for row in rows]


async def fetch_patient(db: Database, patient_id: int) -> dict[str, Any] | None:
    row = await db.fetch_one(f"{SELECT_PATIENT} WHERE id = :id", {"id": patient_id})
    return None if row is None else _decode(row._mapping)


async def insert_patient(db: Database, patient: patients.PatientRow) -> dict[str, Any]:
    async with db.transaction():
        try:
            row = await db.fetch_one(_insert_sql(patient, "RETURNING id"), _params(patient))
        except asyncpg.UniqueViolationError as error:
            raise DuplicatePatient(
                CONSTRAINT_FIELDS.get(error.constraint_name or "", "id")
            ) from None
        if patient.id is not None:
            await db.execute(ADVANCE_ID_SEQUENCE)
    assert row is not None
    stored = await fetch_patient(db, row._mapping["id"])
    assert stored is not None
    return stored


async def import_patients(db: Database, patients: Iterable[patients.PatientRow]) -> tuple[int, int]:
    """Insert the records whose id and patientID are both new; returns (inserted, skipped).

    All or nothing, under a transaction-scoped advisory lock so concurrent imports serialize.
    """
    inserted = skipped = 0
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock(:key)", {"key": IMPORT_LOCK_KEY})
        for patient in patients:
            sql = _insert_sql(patient, "ON CONFLICT DO NOTHING RETURNING id")
            if await db.fetch_one(sql, _params(patient)) is None:
                skipped += 1
            else:
                inserted += 1
        await db.execute(ADVANCE_ID_SEQUENCE)
    return inserted, skipped


def _insert_sql(patient: patients.PatientRow, suffix: str) -> str:
    if patient.id is None:
        return f"INSERT INTO patients ({INSERT_COLUMNS}) VALUES ({INSERT_VALUES}) {suffix}"
    return f"INSERT INTO patients (id, {INSERT_COLUMNS}) VALUES (:id, {INSERT_VALUES}) {suffix}"


def _params(patient: patients.PatientRow) -> dict[str, Any]:
    params = {column: getattr(patient, column) for column in DATA_COLUMNS}
    params["extra"] = json.dumps(patient.extra, ensure_ascii=False)
    if patient.id is not None:
        params["id"] = patient.id
    return params


def _decode(row: Mapping[str, Any]) -> dict[str, Any]:
    return {**row, "extra": json.loads(row["extra"])}
