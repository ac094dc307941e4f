"""The API under failure: PostgreSQL going away and coming back, and SIGTERM mid-request."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import time

import httpx2
import psycopg

import localpg
from migrator import runner
from tests.conftest import REPO
from tests.e2e.processes import drain, running, venv_env, wait_for_health


def test_api_serves_503_while_postgres_is_down_and_recovers_by_itself() -> None:
    with localpg.throwaway_cluster(REPO / ".cache" / "pg17") as cluster:
        runner.apply(cluster.url())
        port = localpg.free_port()
        env = venv_env(
            DATABASE_URL=cluster.url(), PORT=str(port), HOST="127.0.0.1", DB_TIMEOUT_SECONDS="2"
        )
        with (
            running(["sh", "docker/serve"], env) as server,
            httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        ):
            wait_for_health(f"http://127.0.0.1:{port}", server)
            created = client.post("/patients", json={"patientID": "R1", "name": "Resilient"})
            cluster.stop(mode="fast")
            started = time.monotonic()
            while_down = [client.get("/patients"), client.get("/health"), client.get("/patients/1")]
            down_seconds = time.monotonic() - started
            cluster.start(fast=True)
            wait_for_health(f"http://127.0.0.1:{port}", server)
            after = client.get("/patients")
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            log = drain(server)

    assert created.status_code == 201
    assert [response.status_code for response in while_down] == [503, 503, 503]
    assert while_down[0].json()["error_code"] == "DATABASE_UNAVAILABLE"
    assert down_seconds < 10, "requests must fail fast while the database is down"
    assert after.status_code == 200
    assert after.json() == [created.json()]
    assert "Traceback" not in log


def test_sigterm_lets_a_request_in_flight_finish(migrated_database_url: str) -> None:
    port = localpg.free_port()
    env = venv_env(DATABASE_URL=migrated_database_url, PORT=str(port), HOST="127.0.0.1")
    with (
        running(["sh", "docker/serve"], env) as server,
        httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        wait_for_health(f"http://127.0.0.1:{port}", server)
        record = client.post("/patients", json={"patientID": "S1", "name": "Slow"}).json()
        with psycopg.connect(migrated_database_url) as blocker:
            # Hold the row lock so the PATCH below waits inside the server.
            blocker.execute("SELECT 1 FROM patients WHERE id = %s FOR UPDATE", (record["id"],))
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                pending = pool.submit(client.patch, f"/patients/{record['id']}", json={"age": 7})
                time.sleep(1.0)
                server.send_signal(signal.SIGTERM)
                time.sleep(0.5)
                blocker.rollback()
                response = pending.result(timeout=30)
        exit_code = server.wait(timeout=30)
        lines = [json.loads(line) for line in drain(server).splitlines() if line.startswith("{")]

    assert response.status_code == 200
    assert response.json()["age"] == 7
    assert exit_code in (0, -signal.SIGTERM)
    messages = [line["message"] for line in lines]
    assert "Application shutdown complete." in messages
    assert not any("exception" in line for line in lines)
