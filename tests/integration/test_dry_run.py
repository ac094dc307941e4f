"""A dry run leaves the database exactly as it was: tables, and the sequences a rollback does
not undo (setval, nextval)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from tests.integration.helpers import SAMPLE_DB_JSON, query, run_module

TABLES = ("patients", "patients_counts", "import_runs", "import_rejects", "audit_events", "users")


def state(url: str) -> dict[str, Any]:
    """Every sequence's value and every row of the registry's tables."""
    sequences = query(url, "SELECT sequencename, last_value FROM pg_sequences ORDER BY 1")
    rows = {table: query(url, f"SELECT * FROM {table} ORDER BY 1") for table in TABLES}
    return {"sequences": sequences, **rows}


def write_db_json(path: pathlib.Path, records: list[dict[str, Any]]) -> pathlib.Path:
    path.write_text(json.dumps({"patients": records}), encoding="utf-8")
    return path


def new_records(count: int, *, ids: bool) -> list[dict[str, Any]]:
    return [
        {**({"id": 1000 + n} if ids else {}), "patientID": f"D{n:05d}", "name": f"Dry {n}"}
        for n in range(count)
    ]


@pytest.mark.parametrize(
    ("seeded", "records"),
    [
        pytest.param(False, new_records(20, ids=True), id="ids into an empty table"),
        pytest.param(False, new_records(20, ids=False), id="records that take ids"),
        pytest.param(True, new_records(20, ids=False), id="records that take ids after others"),
        pytest.param(False, new_records(10_500, ids=False), id="a rebuild of 10,500 rows"),
        pytest.param(True, [{"patientID": "P001", "name": "Renamed"}], id="an upsert"),
    ],
)
def test_a_dry_run_changes_nothing_at_all(
    migrated_database_url: str, tmp_path: pathlib.Path, seeded: bool, records: list[dict[str, Any]]
) -> None:
    if seeded:
        done = run_module("seed", str(SAMPLE_DB_JSON), database_url=migrated_database_url)
        assert done.returncode == 0, done.stderr
    before = state(migrated_database_url)
    db_json = write_db_json(tmp_path / "db.json", records)

    dry = run_module(
        "seed", "import", "--mode", "upsert", "--dry-run", str(db_json),
        database_url=migrated_database_url,
    )  # fmt: skip

    assert dry.returncode == 0, dry.stderr
    assert state(migrated_database_url) == before
    real = run_module(
        "seed", "import", "--mode", "upsert", str(db_json), database_url=migrated_database_url
    )
    assert real.returncode == 0, real.stderr
    assert state(migrated_database_url)["sequences"] != before["sequences"]  # it would move them
