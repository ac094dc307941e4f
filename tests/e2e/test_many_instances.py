"""Several API processes on one database, directly and through PgBouncer (transaction pooling),
with an import running meanwhile: what each writer was told is what the database holds."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import json
import pathlib
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest

from localpg import free_port
from tests.e2e.processes import running, venv_env, wait_for_health
from tests.integration.helpers import query, run_module

INSTANCES = 3
WRITERS = 120
# Each contested patientID is created by one writer on each instance at once.
CONTESTED = WRITERS // INSTANCES
INCREMENTS = 2  # If-Match read-modify-writes of a contested record, per writer
DELETE_EVERY = 4  # every fourth writer deletes its own record at the end
IMPORTED = 2_000
# 3 instances x 5 = 15 server connections at most, under the test PgBouncer's pool of 20.
POOL_MAX = "5"
# 503s that say the write was not applied (an import held the table; every connection was busy).
NOT_APPLIED = ("IMPORT_RUNNING", "SERVER_BUSY")


@dataclasses.dataclass
class Told:
    """What the API answered one writer."""

    writer: int
    contested: httpx2.Response
    own: httpx2.Response
    put: httpx2.Response
    increments: int = 0
    deleted: httpx2.Response | None = None


@pytest.fixture(params=["none", "pgbouncer"], ids=["directly", "through PgBouncer"])
def pooler(request: pytest.FixtureRequest) -> str:
    """DB_POOLER of the instances, the import's too."""
    return str(request.param)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, pooler: str, migrated_database_url: str) -> str:
    if pooler == "pgbouncer":
        return str(request.getfixturevalue("pgbouncer").url(migrated_database_url))
    return migrated_database_url


@pytest.fixture
def instances(database_url: str, pooler: str) -> Iterator[list[str]]:
    """INSTANCES API processes (docker/serve) on one database, without access lines: nobody
    reads their output until they exit, and a full pipe would block them."""
    with contextlib.ExitStack() as stack:
        started = []
        for _ in range(INSTANCES):
            port = free_port()
            env = venv_env(
                DATABASE_URL=database_url, DB_POOLER=pooler, PORT=str(port), HOST="127.0.0.1",
                LOG_LEVEL="WARNING", DB_POOL_MAX=POOL_MAX, DB_TIMEOUT_SECONDS="10",
            )  # fmt: skip
            server = stack.enter_context(running(["sh", "docker/serve"], env))
            started.append((f"http://127.0.0.1:{port}", server))
        for base, server in started:
            wait_for_health(base, server)
        yield [base for base, _ in started]


def send(call: Callable[..., httpx2.Response], *args: Any, **kwargs: Any) -> httpx2.Response:
    """The call, again while the answer says it was not applied."""
    for _ in range(100):
        response = call(*args, **kwargs)
        if response.status_code != 503 or response.json()["error_code"] not in NOT_APPLIED:
            return response
        time.sleep(0.1)
    return response


def write(base: str, writer: int) -> Told:
    """Race for a contested patientID, create one's own record, increment the contested record
    under If-Match, replace one's own under If-Match, and maybe delete it under If-Match."""
    contested_id = f"M{writer // INSTANCES:03d}"
    with httpx2.Client(base_url=base, timeout=60) as c:
        contested = send(
            c.post, "/patients", json={"patientID": contested_id, "name": f"W{writer}"}
        )
        own = send(c.post, "/patients", json={"patientID": f"U{writer:03d}", "name": "Own"})
        told = Told(writer, contested, own, put=own)
        path = f"/patients/{c.get('/patients', params={'patientID': contested_id}).json()[0]['id']}"
        for _ in range(INCREMENTS):
            for _ in range(200):
                read = c.get(path)
                hits = read.json().get("hits", 0) + 1
                tag = {"if-match": read.headers["etag"]}
                patched = send(c.patch, path, json={"hits": hits}, headers=tag)
                if patched.status_code != 412:
                    assert patched.status_code == 200, patched.text
                    told.increments += 1
                    break
        mine = f"/patients/{own.json()['id']}"
        body = {"patientID": f"U{writer:03d}", "name": f"Replaced by {writer}"}
        told.put = send(c.put, mine, json=body, headers={"if-match": own.headers["etag"]})
        if writer % DELETE_EVERY == 0:
            tag = {"if-match": told.put.headers["etag"]}
            told.deleted = send(c.delete, mine, headers=tag)
    return told


def stored(database_url: str) -> dict[int, dict[str, Any]]:
    rows = query(database_url, "SELECT id, wire FROM patients")
    return {row["id"]: _json(row["wire"]) for row in rows}


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def test_writers_spread_over_instances_agree_with_the_database(
    instances: list[str],
    database_url: str,
    pooler: str,
    migrated_database_url: str,
    tmp_path: pathlib.Path,
) -> None:
    db_json = tmp_path / "db.json"
    imported = [{"patientID": f"S{n:05d}", "name": f"Imported {n}"} for n in range(IMPORTED)]
    db_json.write_text(json.dumps({"patients": imported}), encoding="utf-8")

    with concurrent.futures.ThreadPoolExecutor(max_workers=WRITERS + 1) as pool:
        writers = [pool.submit(write, instances[n % INSTANCES], n) for n in range(WRITERS)]
        time.sleep(0.2)  # the import starts while the writers are at it
        importing = pool.submit(
            run_module, "seed", str(db_json), database_url=database_url, DB_POOLER=pooler
        )
        told = [writer.result() for writer in writers]
        seeded: subprocess.CompletedProcess[str] = importing.result()
    rows = stored(migrated_database_url)
    totals = [
        httpx2.get(f"{base}/patients", params={"_page": 1, "_limit": 1}).headers["x-total-count"]
        for base in instances
    ]

    assert seeded.returncode == 0, seeded.stderr
    assert f"{IMPORTED} inserted" in seeded.stdout
    # Every answer was a decision, never a failure.
    answers = [r for t in told for r in (t.contested, t.own, t.put, t.deleted) if r is not None]
    assert collections.Counter(r.status_code for r in answers if r.status_code >= 500) == {}
    # Each contested patientID: exactly one 201, stored as told; the others were told 409
    # because of that winner.
    by_patient_id = {row["patientID"]: row for row in rows.values()}
    for number in range(CONTESTED):
        race = [t.contested for t in told if t.writer // INSTANCES == number]
        winners = [r for r in race if r.status_code == 201]
        assert len(winners) == 1, [r.status_code for r in race]
        assert {r.json()["error_code"] for r in race if r is not winners[0]} == {
            "DUPLICATE_PATIENT_ID"
        }
        record = by_patient_id[f"M{number:03d}"]
        assert {**winners[0].json(), "hits": record["hits"]} == record
        # No lost update: every If-Match increment that was told 200 is counted.
        assert record["hits"] == sum(t.increments for t in told if t.writer // INSTANCES == number)
        assert record["hits"] == INSTANCES * INCREMENTS
    # Each writer's own record: created, replaced as told, deleted when told so.
    created = [r.json()["id"] for t in told for r in (t.contested, t.own) if r.status_code == 201]
    assert len(created) == len(set(created)) == CONTESTED + WRITERS
    for t in told:
        assert (t.own.status_code, t.put.status_code) == (201, 200)
        if t.deleted is None:
            assert rows[t.own.json()["id"]] == t.put.json()
        else:
            assert t.deleted.status_code == 200
            assert t.own.json()["id"] not in rows
    # The counts: the rows, the kept count, and every instance's X-Total-Count agree.
    kept = query(migrated_database_url, "SELECT sum(delta) AS n FROM patients_counts")[0]["n"]
    expected = CONTESTED + WRITERS - WRITERS // DELETE_EVERY + IMPORTED
    assert len(rows) == kept == expected
    assert totals == [str(expected)] * INSTANCES
