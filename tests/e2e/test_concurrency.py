"""Many simultaneous writers against a real uvicorn and PostgreSQL: nothing lost, no 500."""

from __future__ import annotations

import concurrent.futures
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from localpg import free_port
from tests.e2e.processes import running, venv_env, wait_for_health
from tests.integration.helpers import query

WRITERS = 100


@pytest.fixture
def api(migrated_database_url: str) -> Iterator[str]:
    port = free_port()
    env = venv_env(DATABASE_URL=migrated_database_url, PORT=str(port), HOST="127.0.0.1")
    with running(["sh", "docker/serve"], env) as server:
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, server)
        yield base


def all_at_once(call: Callable[[int], httpx2.Response]) -> list[httpx2.Response]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=WRITERS) as pool:
        return list(pool.map(call, range(WRITERS)))


def patient(number: int, **overrides: Any) -> dict[str, Any]:
    return {"patientID": f"C{number:04d}", "name": f"Concurrent {number}", **overrides}


def events(url: str) -> list[dict[str, Any]]:
    return query(url, "SELECT action, patient_id, before, after FROM audit_events ORDER BY id")


def test_racing_creates_of_one_patient_id_let_exactly_one_win(
    api: str, migrated_database_url: str
) -> None:
    with httpx2.Client(
        base_url=api, timeout=60, limits=httpx2.Limits(max_connections=WRITERS)
    ) as c:
        responses = all_at_once(lambda n: c.post("/patients", json=patient(0, age=n % 100)))
        stored = c.get("/patients").json()

    assert Counter(response.status_code for response in responses) == {201: 1, 409: WRITERS - 1}
    assert len(stored) == 1
    assert [(event["action"], event["after"]) for event in events(migrated_database_url)] == [
        ("create", stored[0])
    ]


def test_concurrent_creates_of_distinct_patients_all_land(api: str) -> None:
    with httpx2.Client(
        base_url=api, timeout=60, limits=httpx2.Limits(max_connections=WRITERS)
    ) as c:
        responses = all_at_once(lambda n: c.post("/patients", json=patient(n)))
        stored = c.get("/patients").json()

    assert {response.status_code for response in responses} == {201}
    assert len({record["id"] for record in stored}) == WRITERS
    assert {record["patientID"] for record in stored} == {f"C{n:04d}" for n in range(WRITERS)}


def test_concurrent_patches_of_one_record_lose_nothing(
    api: str, migrated_database_url: str
) -> None:
    with httpx2.Client(
        base_url=api, timeout=60, limits=httpx2.Limits(max_connections=WRITERS)
    ) as c:
        path = f"/patients/{c.post('/patients', json=patient(1)).json()['id']}"
        responses = all_at_once(lambda n: c.patch(path, json={f"note{n}": n}))
        record = c.get(path).json()

    assert {response.status_code for response in responses} == {200}
    assert all(record[f"note{n}"] == n for n in range(WRITERS))
    # One event each, in commit order: every event starts from the record the previous left.
    trail = events(migrated_database_url)
    assert [event["action"] for event in trail] == ["create"] + ["update"] * WRITERS
    assert all(later["before"] == earlier["after"] for earlier, later in itertools.pairwise(trail))
    assert trail[-1]["after"] == record


def test_concurrent_patches_with_one_if_match_let_exactly_one_win(
    api: str, migrated_database_url: str
) -> None:
    with httpx2.Client(
        base_url=api, timeout=60, limits=httpx2.Limits(max_connections=WRITERS)
    ) as c:
        created = c.post("/patients", json=patient(2))
        path = f"/patients/{created.json()['id']}"
        tag = created.headers["etag"]
        responses = all_at_once(lambda n: c.patch(path, json={"age": n}, headers={"if-match": tag}))
        record = c.get(path).json()

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 1, 412: WRITERS - 1}
    winner = next(response for response in responses if response.status_code == 200)
    assert record == winner.json()
    assert [event["action"] for event in events(migrated_database_url)] == ["create", "update"]
