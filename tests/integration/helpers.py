"""Shared by the integration tests: run our entry points as a person would, and look at tables."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import psycopg
from psycopg.rows import dict_row
from starlette.testclient import TestClient

REPO = pathlib.Path(__file__).resolve().parents[2]
SAMPLE_DB_JSON = REPO / "seed" / "db.json"
SAMPLE: list[dict[str, Any]] = json.loads(SAMPLE_DB_JSON.read_text(encoding="utf-8"))["patients"]
UNREACHABLE_URL = "postgresql://registry:registry@127.0.0.1:9/registry"


def run_module(
    module: str, *args: str, database_url: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m module args...` from the repository root with DATABASE_URL set."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def query(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as connection:
        return connection.execute(statement, params).fetchall()


def execute(url: str, statement: str, params: tuple[Any, ...] = ()) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement, params)


def table_exists(url: str, name: str) -> bool:
    return bool(query(url, "SELECT 1 FROM pg_tables WHERE tablename = %s", (name,)))


def make_patient(**overrides: Any) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "patientID": "P900",
        "name": "Ada Lovelace",
        "age": 36,
        "gender": "Female",
        "medicalCondition": "Migraine",
        "lastVisit": "2024-03-01",
    }
    patient.update(overrides)
    return patient


def patient_count(client: TestClient) -> int:
    return len(client.get("/patients").json())


# Per block of storage_order values (migration 0010): kept deltas, and the rows really there.
BLOCKS_KEPT = "SELECT block, sum(delta) AS n FROM patients_blocks GROUP BY 1 HAVING sum(delta) <> 0"
BLOCKS_COUNTED = "SELECT storage_order >> 10 AS block, count(*) AS n FROM patients GROUP BY 1"


def blocks_kept_and_counted(url: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    def rows(statement: str) -> list[tuple[int, int]]:
        return sorted((row["block"], row["n"]) for row in query(url, statement))

    return rows(BLOCKS_KEPT), rows(BLOCKS_COUNTED)
