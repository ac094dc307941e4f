"""While an import holds the patients table, the API says so: a 503 of its own with Retry-After
(never DATABASE_UNAVAILABLE), /health names the import, and everything answers once it ends."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.integration.conftest import client_for
from tests.integration.helpers import SAMPLE_DB_JSON, make_patient, run_module

TIMEOUT_SECONDS = 1.0


@pytest.mark.parametrize(
    ("mode", "reads_wait"),
    [
        pytest.param("ACCESS EXCLUSIVE", True, id="a rebuild: readers and writers wait"),
        pytest.param("SHARE ROW EXCLUSIVE", False, id="an import applying rows: writers wait"),
    ],
)
def test_an_import_holding_the_table_is_named_not_an_outage(
    migrated_database_url: str, mode: str, reads_wait: bool
) -> None:
    seeded = run_module("seed", str(SAMPLE_DB_JSON), database_url=migrated_database_url)
    assert seeded.returncode == 0, seeded.stderr
    with client_for(migrated_database_url, db_timeout_seconds=TIMEOUT_SECONDS) as api:
        assert api.get("/health").json().get("import") is None
        with psycopg.connect(migrated_database_url) as importer:
            importer.execute(f"LOCK TABLE patients IN {mode} MODE")  # as seed/store.py does
            started = time.monotonic()
            write = api.post("/patients", json=make_patient())
            waited = time.monotonic() - started
            reads = [api.get("/patients/1"), api.get("/patients?_page=1")]
            health = api.get("/health")
            importer.rollback()
        after = api.post("/patients", json=make_patient())

    assert write.status_code == 503
    assert write.json()["error_code"] == "IMPORT_RUNNING"
    assert write.headers["retry-after"] == "5"
    assert waited < TIMEOUT_SECONDS  # it waited for the lock, within DB_TIMEOUT_SECONDS
    if reads_wait:
        assert [(r.status_code, r.json()["error_code"]) for r in reads] == [
            (503, "IMPORT_RUNNING")
        ] * 2
    else:
        assert [read.status_code for read in reads] == [200, 200]
    assert (health.status_code, health.json()["import"]) == (200, "running")
    assert after.status_code == 201
