"""Many simultaneous writers against a real uvicorn and PostgreSQL: nothing lost, no 500."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import pathlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from localpg import free_port
from tests.e2e.processes import running, venv_env, wait_for_health
from tests.integration.helpers import query, run_module

WRITERS = 100
CROWD_RECORDS = 5000


@pytest.fixture
def api(migrated_database_url: str) -> Iterator[str]:
    yield from serving(migrated_database_url)


@pytest.fixture
def crowded_api(migrated_database_url: str, tmp_path: pathlib.Path) -> Iterator[str]:
    """CROWD_RECORDS patients, so that a whole list takes milliseconds; without access lines:
    nobody reads the server's output pipe until it exits, and thousands of lines would fill
    it and block the server."""
    db_json = tmp_path / "db.json"
    records = [patient(n, name=f"Crowd {n}") for n in range(CROWD_RECORDS)]
    db_json.write_text(json.dumps({"patients": records}), encoding="utf-8")
    seeded = run_module("seed", str(db_json), database_url=migrated_database_url)
    assert seeded.returncode == 0, seeded.stderr
    yield from serving(migrated_database_url, LOG_LEVEL="WARNING")


def serving(database_url: str, **settings: str) -> Iterator[str]:
    port = free_port()
    env = venv_env(DATABASE_URL=database_url, PORT=str(port), HOST="127.0.0.1", **settings)
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


def test_a_list_read_during_a_crowd_of_identical_reads_sees_every_earlier_write(
    crowded_api: str,
) -> None:
    """Identical list reads share queries (api/coalesce.py); a writer's next read must still see
    its own write, however many readers are waiting for the same list."""
    stop = threading.Event()

    def crowd(_: int) -> int:
        reads = 0
        with httpx2.Client(base_url=crowded_api, timeout=60) as c:
            while not stop.is_set():
                assert c.get("/patients").status_code == 200
                assert c.get("/patients?name_like=writer").status_code == 200
                reads += 2
        return reads

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        readers = [pool.submit(crowd, n) for n in range(19)]
        try:
            with httpx2.Client(base_url=crowded_api, timeout=60) as c:
                for n in range(CROWD_RECORDS, CROWD_RECORDS + 50):
                    created = c.post("/patients", json=patient(n, name=f"Writer {n}")).json()
                    assert created in c.get("/patients").json()
                    changed = c.patch(f"/patients/{created['id']}", json={"age": n % 100}).json()
                    assert changed in c.get("/patients?name_like=writer").json()
        finally:
            stop.set()
        assert sum(reader.result() for reader in readers) > 0
