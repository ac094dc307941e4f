"""Patient data never reaches the logs, at any level: a full CRUD session and an import at DEBUG."""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.integration.conftest import client_for
from tests.integration.helpers import make_patient, run_module

SECRETS = ("Zebulon Quixote", "Xanthoma Rare", "PZQ777", "999-88-7777", "Quentin Zed")


def test_a_debug_log_of_a_crud_session_holds_no_patient_data(
    migrated_database_url: str, capfd: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    record = make_patient(
        patientID="PZQ777", name="Zebulon Quixote", medicalCondition="Xanthoma Rare",
        ssn="999-88-7777",
    )  # fmt: skip
    with client_for(migrated_database_url, log_level="DEBUG") as api:
        created = api.post("/patients", json=record).json()
        path = f"/patients/{created['id']}"
        api.get(path)
        api.get("/patients?q=Zebulon&name_like=Quix&medicalCondition=Xanthoma%20Rare")
        api.patch(path, json={"name": "Quentin Zed"})
        api.put(path, json={**record, "name": "Quentin Zed"})
        api.post("/patients", json=record)  # 409: the patientID is taken
        api.delete(path)
    db_json = tmp_path / "db.json"
    db_json.write_text(json.dumps({"patients": [record]}), encoding="utf-8")
    seeded = run_module("seed", str(db_json), database_url=migrated_database_url, LOG_LEVEL="DEBUG")
    assert seeded.returncode == 0, seeded.stderr

    logged = "".join(capfd.readouterr()) + seeded.stdout + seeded.stderr
    assert "api.access" in logged  # the session was logged
    assert [secret for secret in SECRETS if secret in logged] == []
