"""The audit trail: one event per change in the change's own statement, append-only in
PostgreSQL, read by administrators through GET /audit."""

from __future__ import annotations

import datetime
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest
from starlette.testclient import TestClient

import localoidc
from api import paging, store
from tests.conftest import create_database, drop_database
from tests.integration.conftest import client_for
from tests.integration.helpers import SAMPLE, SAMPLE_DB_JSON, make_patient, query, run_module
from tests.signin import ADMIN_OID, READER_OID, bearer, entra_settings_for

EVENTS = "SELECT * FROM audit_events ORDER BY id"


@pytest.fixture
def signed_in(
    migrated_database_url: str, oidc: localoidc.RunningProvider
) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    """The API with sign-in, and the headers of a reader and of an administrator."""
    entra = entra_settings_for(oidc.authority_host)
    with client_for(migrated_database_url, auth_mode="entra", entra=entra) as api:
        yield api, bearer(oidc.token("reader")), bearer(oidc.token("admin"))


def user_ids(url: str) -> dict[str, int]:
    rows = query(url, "SELECT id, object_id::text AS oid FROM users")
    return {row["oid"]: row["id"] for row in rows}


def test_every_change_is_one_event_with_who_when_and_what_before(
    signed_in: tuple[TestClient, dict[str, str], dict[str, str]], migrated_database_url: str
) -> None:
    api, reader, admin = signed_in
    created = api.post("/patients", json=make_patient(), headers=reader)
    path = f"/patients/{created.json()['id']}"
    patched = api.patch(path, json={"age": 37, "ward": "B"}, headers=reader)
    replaced = api.put(path, json=make_patient(name="Ada King"), headers=admin)
    deleted = api.delete(path, headers=admin)
    assert [r.status_code for r in (created, patched, replaced, deleted)] == [201, 200, 200, 200]

    users = user_ids(migrated_database_url)
    trail = query(migrated_database_url, EVENTS)
    assert [
        (e["action"], e["patient_id"], e["user_id"], e["before"], e["after"], e["request_id"])
        for e in trail
    ] == [
        (
            "create",
            created.json()["id"],
            users[READER_OID],
            None,
            created.json(),
            created.headers["x-request-id"],
        ),
        (
            "update",
            created.json()["id"],
            users[READER_OID],
            created.json(),
            patched.json(),
            patched.headers["x-request-id"],
        ),
        (
            "replace",
            created.json()["id"],
            users[ADMIN_OID],
            patched.json(),
            replaced.json(),
            replaced.headers["x-request-id"],
        ),
        (
            "delete",
            created.json()["id"],
            users[ADMIN_OID],
            replaced.json(),
            None,
            deleted.headers["x-request-id"],
        ),
    ]
    assert all(e["occurred_at"] <= datetime.datetime.now(datetime.UTC) for e in trail)


def test_refused_and_failed_writes_leave_no_event(
    signed_in: tuple[TestClient, dict[str, str], dict[str, str]], migrated_database_url: str
) -> None:
    api, reader, admin = signed_in
    created = api.post("/patients", json=make_patient(), headers=reader)
    path = f"/patients/{created.json()['id']}"
    refused = [
        api.post("/patients", json=make_patient(age="old"), headers=reader),  # 400
        api.post("/patients", json=make_patient(), headers=reader),  # 409: patientID taken
        api.patch(path, json={"age": 1}, headers={**reader, "If-Match": '"stale"'}),  # 412
        api.put(path, json=make_patient(patientID=""), headers=reader),  # 400
        api.delete(path, headers=reader),  # 403: not an administrator
        api.delete(path, headers={**admin, "If-Match": '"stale"'}),  # 412
        api.patch("/patients/999999", json={"age": 1}, headers=reader),  # 404
        api.delete("/patients/999999", headers=admin),  # 404
    ]
    assert [r.status_code for r in refused] == [400, 409, 412, 400, 403, 412, 404, 404]
    assert [e["action"] for e in query(migrated_database_url, EVENTS)] == ["create"]


def test_anonymous_changes_are_recorded_without_a_user(
    client: TestClient, migrated_database_url: str
) -> None:
    created = client.post("/patients", json=make_patient())
    client.delete(f"/patients/{created.json()['id']}")

    trail = query(migrated_database_url, EVENTS)
    assert [(e["action"], e["user_id"]) for e in trail] == [("create", None), ("delete", None)]


def test_without_the_trail_writes_record_nothing(migrated_database_url: str) -> None:
    with client_for(migrated_database_url, audit_trail=False) as api:
        created = api.post("/patients", json=make_patient())
        api.patch(f"/patients/{created.json()['id']}", json={"age": 40})
        assert api.get(f"/patients/{created.json()['id']}").json()["age"] == 40
    assert query(migrated_database_url, EVENTS) == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET action = 'update'",
        "UPDATE audit_events SET after = NULL WHERE id = 1",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ],
)
def test_the_application_connection_cannot_rewrite_the_trail(
    client: TestClient, migrated_database_url: str, statement: str
) -> None:
    client.post("/patients", json=make_patient())
    before = query(migrated_database_url, EVENTS)
    assert client.portal is not None

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        client.portal.call(client.app.state.db.execute, statement)  # type: ignore[attr-defined]

    assert query(migrated_database_url, EVENTS) == before


def test_an_import_is_one_event_with_its_counts_and_a_dry_run_none(
    migrated_database_url: str,
) -> None:
    dry = run_module(
        "seed", "import", "--dry-run", str(SAMPLE_DB_JSON), database_url=migrated_database_url
    )
    assert dry.returncode == 0, dry.stderr
    assert query(migrated_database_url, EVENTS) == []

    done = run_module("seed", str(SAMPLE_DB_JSON), database_url=migrated_database_url)
    assert done.returncode == 0, done.stderr
    run = query(migrated_database_url, "SELECT id FROM import_runs")[0]["id"]
    trail = query(migrated_database_url, EVENTS)
    assert [(e["action"], e["import_run_id"], e["user_id"], e["patient_id"]) for e in trail] == [
        ("import", run, None, None)
    ]
    assert trail[0]["details"] == {
        "mode": "insert",
        "source": str(SAMPLE_DB_JSON),
        "counts": {"inserted": len(SAMPLE), "updated": 0, "unchanged": 0, "rejected": 0},
    }


def test_get_audit_filters_pages_and_names_users(
    signed_in: tuple[TestClient, dict[str, str], dict[str, str]], migrated_database_url: str
) -> None:
    api, reader, admin = signed_in
    first = api.post("/patients", json=make_patient(patientID="A1"), headers=reader).json()
    second = api.post("/patients", json=make_patient(patientID="A2"), headers=admin).json()
    for age in (40, 41, 42):
        api.patch(f"/patients/{first['id']}", json={"age": age}, headers=reader)
    api.delete(f"/patients/{second['id']}", headers=admin)
    users = user_ids(migrated_database_url)

    everything = api.get("/audit", headers=admin)
    assert everything.status_code == 200
    assert everything.headers["x-total-count"] == "6"
    newest = everything.json()[0]
    assert (newest["action"], newest["patientId"]) == ("delete", second["id"])
    assert newest["user"] == {"id": users[ADMIN_OID], "displayName": "Ada Admin"}
    assert [event["id"] for event in everything.json()] == sorted(
        (event["id"] for event in everything.json()), reverse=True
    )

    updates = api.get(f"/audit?patientId={first['id']}&action=update&_limit=2", headers=admin)
    assert updates.headers["x-total-count"] == "3"
    assert [e["changes"] for e in updates.json()] == [
        {"age": {"before": 41, "after": 42}},
        {"age": {"before": 40, "after": 41}},
    ]
    assert 'rel="next"' in updates.headers["link"]
    assert "_page=2" in updates.headers["link"]
    second_page = api.get(
        f"/audit?patientId={first['id']}&action=update&_limit=2&_page=2", headers=admin
    )
    assert [e["changes"]["age"]["after"] for e in second_page.json()] == [40]

    by_reader = api.get(f"/audit?userId={users[READER_OID]}", headers=admin).json()
    assert {e["user"]["id"] for e in by_reader} == {users[READER_OID]}
    assert len(by_reader) == 4

    now = datetime.datetime.now(datetime.UTC)
    later = (now + datetime.timedelta(hours=1)).isoformat()
    earlier = (now - datetime.timedelta(hours=1)).isoformat()
    assert api.get("/audit", params={"since": later}, headers=admin).json() == []
    assert len(api.get("/audit", params={"until": later}, headers=admin).json()) == 6
    assert len(api.get("/audit", params={"since": earlier}, headers=admin).json()) == 6


def test_the_trail_tells_the_story_of_two_users_and_an_import(
    migrated_database_url: str, oidc: localoidc.RunningProvider
) -> None:
    seeded = run_module("seed", str(SAMPLE_DB_JSON), database_url=migrated_database_url)
    assert seeded.returncode == 0, seeded.stderr
    reader, admin = bearer(oidc.token("reader")), bearer(oidc.token("admin"))
    entra = entra_settings_for(oidc.authority_host)
    with client_for(migrated_database_url, auth_mode="entra", entra=entra) as api:
        created = api.post("/patients", json=make_patient(), headers=reader).json()
        api.patch("/patients/1", json={"medicalCondition": "Recovered"}, headers=reader)
        api.delete("/patients/2", headers=admin)
        replaced = api.put("/patients/3", json=make_patient(patientID="P003b"), headers=admin)
        story = api.get("/audit", headers=admin).json()

    assert [(e["action"], e["patientId"], (e["user"] or {}).get("displayName")) for e in story] == [
        ("replace", 3, "Ada Admin"),
        ("delete", 2, "Ada Admin"),
        ("update", 1, "Rita Reader"),
        ("create", created["id"], "Rita Reader"),
        ("import", None, None),
    ]
    assert story[0]["before"] == SAMPLE[2]
    assert story[0]["after"] == replaced.json()
    assert story[1]["before"] == SAMPLE[1]
    assert story[2]["changes"] == {
        "medicalCondition": {"before": SAMPLE[0]["medicalCondition"], "after": "Recovered"}
    }
    assert story[3]["after"] == created
    assert story[4]["importRun"]["counts"]["inserted"] == len(SAMPLE)


def test_an_export_leaves_the_trail_alone(
    client: TestClient, migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    client.post("/patients", json=make_patient())
    before = query(migrated_database_url, EVENTS)
    exported = run_module(
        "seed", "export", str(tmp_path / "db.json"), database_url=migrated_database_url
    )
    assert exported.returncode == 0, exported.stderr
    assert query(migrated_database_url, EVENTS) == before
    assert "audit" not in (tmp_path / "db.json").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "query_string",
    ["patientId=abc", "action=rewrite", "since=yesterday", "userId=0", "sort=id", "_page=0"],
)
def test_get_audit_refuses_what_it_cannot_filter(
    signed_in: tuple[TestClient, dict[str, str], dict[str, str]], query_string: str
) -> None:
    api, _, admin = signed_in
    response = api.get(f"/audit?{query_string}", headers=admin)
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_QUERY"


def test_get_audit_is_for_administrators_only(
    signed_in: tuple[TestClient, dict[str, str], dict[str, str]], client: TestClient
) -> None:
    api, reader, _ = signed_in
    assert api.get("/audit").status_code == 401
    assert api.get("/audit", headers=reader).status_code == 403
    assert client.get("/audit").status_code == 403  # AUTH_MODE=none: nobody is an admin


def test_access_lines_name_the_user_and_nothing_else(
    migrated_database_url: str,
    oidc: localoidc.RunningProvider,
    capfd: pytest.CaptureFixture[str],
) -> None:
    reader = bearer(oidc.token("reader"))
    entra = entra_settings_for(oidc.authority_host)
    with client_for(migrated_database_url, auth_mode="entra", entra=entra) as api:
        api.get("/patients/1", headers=reader)
        api.get("/patients/1")
    lines = [line for line in capfd.readouterr().err.splitlines() if '"api.access"' in line]
    user = user_ids(migrated_database_url)[READER_OID]
    assert lines[-2].endswith(f'"user_id": {user}}}')
    assert lines[-1].endswith('"user_id": null}')
    assert "Rita" not in "".join(lines)


SEQ_SCAN = "Seq Scan on audit_events"  # the users joined for names are a few rows
FILL = """
INSERT INTO users (tenant_id, object_id)
SELECT gen_random_uuid(), gen_random_uuid() FROM generate_series(1, 100);
INSERT INTO audit_events (occurred_at, user_id, action, patient_id, after, request_id)
SELECT timestamptz '2026-01-01' + n * interval '20 seconds', 1 + n % 100,
       CASE WHEN n % 50 = 0 THEN 'delete' WHEN n % 10 = 0 THEN 'create'
            WHEN n % 7 = 0 THEN 'replace' ELSE 'update' END,
       1 + n % 50000, '{"age": 1}', md5(n::text)
FROM generate_series(1, 1000000) AS n;
"""


DAY = (
    ("since", datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)),
    ("until", datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC)),
)


@pytest.mark.parametrize(
    ("filters", "count_by_index"),
    [
        pytest.param((), False, id="everything"),
        pytest.param((("patient_id", 4242),), True, id="one patient"),
        pytest.param((("user_id", 7),), True, id="one user"),
        pytest.param((("action", "delete"),), True, id="a rare action"),
        pytest.param((("action", "update"),), False, id="the commonest action"),
        pytest.param(DAY, True, id="one day"),
        pytest.param(
            (("patient_id", 4242), ("action", "update"), DAY[0]), True, id="a patient's updates"
        ),
    ],
)
def test_every_filter_is_served_by_an_index_at_a_million_events(
    million_events: str, filters: tuple[tuple[str, Any], ...], count_by_index: bool
) -> None:
    """Every page, and the count of every filter that selects a small share of the trail.
    Counting most of the table (no filter, or all updates: 70 % here) is cheaper as one
    sequential read, and PostgreSQL rightly plans it so."""
    listed, counted, values = store.audit_statements(filters, paging.Page(3, 50))
    assert SEQ_SCAN not in (plan := _plan(million_events, listed, *values)), plan
    if count_by_index:
        assert SEQ_SCAN not in (plan := _plan(million_events, counted, *values[:-2])), plan


@pytest.fixture(scope="module")
def million_events(pg_server_url: str, template_database: str) -> Iterator[str]:
    name = f"registry_audit_{uuid.uuid4().hex[:8]}"
    url = create_database(pg_server_url, name, template=template_database)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(FILL)
        connection.execute("VACUUM ANALYZE audit_events")  # as autovacuum would, after a bulk load
    yield url
    drop_database(pg_server_url, name)


def _plan(url: str, sql: str, *params: Any) -> str:
    """EXPLAIN of `sql` with asyncpg-style $n parameters, as the API runs it."""
    with psycopg.connect(url) as connection:
        statement = sql
        for number in range(len(params), 0, -1):
            statement = statement.replace(f"${number}", "%s")
        rows = connection.execute(f"EXPLAIN {statement}", params).fetchall()
    return "\n".join(row[0] for row in rows)
