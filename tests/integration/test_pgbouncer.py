"""The migrator, the seed and the API through a real PgBouncer in transaction pooling mode."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import psycopg

from migrator import runner
from tests.integration.conftest import client_for
from tests.integration.helpers import (
    REPO,
    SAMPLE,
    SAMPLE_DB_JSON,
    make_patient,
    query,
    run_module,
    table_exists,
)
from tests.pgbouncer import PgBouncer

POOLED = {"DB_POOLER": "pgbouncer"}
# More than seed/store.py's REBUILD_MIN_ROWS: the import's rebuild path (indexes dropped and
# built again, a trigger disabled, savepoints, chunks inserted while the file is read).
REBUILT_RECORDS = 12_000
AUDIT = "SELECT action FROM audit_events ORDER BY id"
LOCK_HOLDER = """SELECT l.pid FROM pg_locks AS l
WHERE l.locktype = 'advisory' AND l.granted
  AND ((l.classid::bigint << 32) | l.objid::bigint) = %s"""


def test_migrator_applies_every_migration_through_pgbouncer_then_is_up_to_date(
    pgbouncer: PgBouncer, empty_database_url: str
) -> None:
    pooled = pgbouncer.url(empty_database_url)
    first = run_module("migrator", database_url=pooled, **POOLED)
    second = run_module("migrator", database_url=pooled, **POOLED)
    rolled_back = run_module("migrator", "rollback", "--steps", "2", database_url=pooled)
    again = run_module("migrator", database_url=pooled)

    assert first.returncode == 0, first.stderr
    assert "applied 0 migration(s)" in second.stdout, second.stderr
    assert "rolled back 2 migration(s)" in rolled_back.stdout, rolled_back.stderr
    assert "applied 2 migration(s)" in again.stdout, again.stderr
    assert table_exists(empty_database_url, "patients")
    assert query(empty_database_url, "SELECT * FROM yoyo_lock") == []


def test_a_killed_migrator_behind_pgbouncer_leaves_no_lock_behind(
    pgbouncer: PgBouncer, migrated_database_url: str
) -> None:
    pooled = pgbouncer.url(migrated_database_url)
    with psycopg.connect(migrated_database_url) as blocker:
        # yoyo reads its log table right after the guard took the lock: the migrator waits here,
        # holding the lock, until it is killed.
        blocker.execute("LOCK TABLE _yoyo_migration IN ACCESS EXCLUSIVE MODE")
        migrator = subprocess.Popen(
            [sys.executable, "-m", "migrator"],
            cwd=REPO,
            env=_env(pooled),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert _eventually(
                lambda: query(migrated_database_url, LOCK_HOLDER, (runner.ADVISORY_LOCK_KEY,))
            )
        finally:
            migrator.send_signal(signal.SIGKILL)
            migrator.wait()
        blocker.rollback()

    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "migrator"],
        cwd=REPO,
        env=_env(pooled),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert second.returncode == 0, second.stderr
    assert time.monotonic() - started < 10, "the second migrator waited for a stale lock"
    assert query(migrated_database_url, LOCK_HOLDER, (runner.ADVISORY_LOCK_KEY,)) == []


def test_seed_imports_upserts_and_exports_through_pgbouncer(
    pooled_database_url: str, tmp_path: pathlib.Path
) -> None:
    first = run_module("seed", str(SAMPLE_DB_JSON), database_url=pooled_database_url, **POOLED)
    changed = tmp_path / "changed.json"
    changed.write_text(
        json.dumps({"patients": [{**SAMPLE[0], "age": 99}, *SAMPLE[1:]]}), encoding="utf-8"
    )
    # A second import on the same pooled server connection: a new staging table, COPY again.
    upsert = run_module(
        "seed", "import", "--mode", "upsert", "--report", str(tmp_path / "report.json"),
        str(changed), database_url=pooled_database_url, **POOLED,
    )  # fmt: skip
    exported = run_module("seed", "export", database_url=pooled_database_url, **POOLED)

    assert first.returncode == 0, first.stderr
    assert f"{len(SAMPLE)} inserted" in first.stdout
    assert upsert.returncode == 0, upsert.stderr
    assert "0 inserted, 1 updated" in upsert.stdout
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["patients"][0]["age"] == 99


def test_seed_rebuilds_a_large_import_through_pgbouncer(
    pooled_database_url: str, tmp_path: pathlib.Path
) -> None:
    records = [{"patientID": f"B{n:05d}", "name": f"Bulk {n}"} for n in range(REBUILT_RECORDS)]
    records.append({"patientID": "B00000", "name": "A duplicate, rejected"})
    path = tmp_path / "db.json"
    path.write_text(json.dumps({"patients": records}), encoding="utf-8")

    result = run_module("seed", str(path), database_url=pooled_database_url, **POOLED)

    assert result.returncode == 0, result.stderr
    assert f"{REBUILT_RECORDS} inserted" in result.stdout
    assert "1 rejected" in result.stdout
    with client_for(pooled_database_url, db_pooler="pgbouncer") as api:
        listed = api.get("/patients?_page=1&_limit=1")
    # Long lists are read through an SQL cursor, a batch of parts at a time (two instances in
    # turn, each on whichever server connection PgBouncer hands it).
    wholes = []
    for order in ("asc", "desc"):
        with client_for(pooled_database_url, db_pooler="pgbouncer") as api:
            wholes.append(api.get(f"/patients?_sort=patientID&_order={order}"))
    assert listed.headers["x-total-count"] == str(REBUILT_RECORDS)
    assert [len(whole.json()) for whole in wholes] == [REBUILT_RECORDS, REBUILT_RECORDS]
    assert wholes[0].json()[0]["patientID"] == wholes[1].json()[-1]["patientID"] == "B00000"


def test_api_reads_and_writes_through_pgbouncer(pooled_database_url: str) -> None:
    with client_for(pooled_database_url, db_pooler="pgbouncer") as api:
        created = api.post("/patients", json=make_patient(patientID="PB1"))
        taken = api.post("/patients", json=make_patient(patientID="PB1"))
        path = created.headers["location"]
        etag = api.get(path).headers["etag"]
        patched = api.patch(path, json={"age": 40}, headers={"if-match": etag})
        stale = api.put(path, json=make_patient(patientID="PB1"), headers={"if-match": etag})
        put = api.put(
            path, json=make_patient(patientID="PB1", name="Ada"),
            headers={"if-match": patched.headers["etag"]},
        )  # fmt: skip
        second = api.post("/patients", json=make_patient(patientID="PB2"))
        listed = api.get("/patients?_sort=patientID&_page=1&_limit=1&q=ada")
        deleted = api.delete(second.headers["location"])
        health = api.get("/health")

    assert (created.status_code, taken.status_code) == (201, 409)
    assert taken.json()["error_code"] == "DUPLICATE_PATIENT_ID"
    assert (patched.status_code, patched.json()["age"]) == (200, 40)
    assert stale.status_code == 412
    assert (put.status_code, put.json()["name"]) == (200, "Ada")
    assert listed.headers["x-total-count"] == "2"
    assert [patient["patientID"] for patient in listed.json()] == ["PB1"]
    assert deleted.status_code == 200
    assert health.json()["status"] == "healthy"
    assert [row["action"] for row in query(pooled_database_url, AUDIT)] == [
        "create", "update", "replace", "create", "delete",
    ]  # fmt: skip


def test_api_behind_pgbouncer_names_an_import_holding_the_table(
    pgbouncer: PgBouncer, migrated_database_url: str
) -> None:
    """lock_timeout cannot be a startup parameter behind PgBouncer: each write transaction sets
    it, so a write still gives up on an import's lock within DB_TIMEOUT_SECONDS and says why."""
    pooled = pgbouncer.url(migrated_database_url)
    timeout = 1.0
    with client_for(pooled, db_pooler="pgbouncer", db_timeout_seconds=timeout) as api:
        created = api.post("/patients", json=make_patient())
        with psycopg.connect(migrated_database_url) as importer:
            importer.execute("LOCK TABLE patients IN SHARE ROW EXCLUSIVE MODE")
            started = time.monotonic()
            write = api.patch(created.headers["location"], json={"age": 1})
            waited = time.monotonic() - started
            read = api.get(created.headers["location"])
            importer.rollback()
        after = api.patch(created.headers["location"], json={"age": 2})

    assert (write.status_code, write.json()["error_code"]) == (503, "IMPORT_RUNNING")
    assert waited < timeout  # lock_timeout (0.8 x), not the statement's timeout, ended it
    assert read.status_code == 200
    assert after.status_code == 200


def _env(database_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, **POOLED}


def _eventually(check: Callable[[], object], within: float = 20) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False
