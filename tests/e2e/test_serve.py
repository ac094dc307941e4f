"""The image's start script, docker/serve, run natively: real uvicorn, HTTP and PostgreSQL."""

import json
import pathlib
import signal
import socket
import time

from localpg import free_port
from tests.e2e.processes import drain, get, post, running, venv_env, wait_for_health

SERVE = ["sh", "docker/serve"]


def test_serve_answers_over_http_and_stops_cleanly_on_sigterm(migrated_database_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = venv_env(DATABASE_URL=migrated_database_url, PORT=str(port), HOST="127.0.0.1")
    with running(SERVE, env) as server:
        wait_for_health(base, server)
        status, created, headers = post(
            f"{base}/patients", {"patientID": "H1", "name": "Über Http", "age": 40}
        )
        listing = get(f"{base}/patients")
        item = get(f"{base}/patients/{created['id']}")
        missing = get(f"{base}/patients/424242")
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells it.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
        output = drain(server)

    assert status == 201
    assert headers["location"] == f"{base}/patients/{created['id']}"
    assert listing == (200, [created])
    assert item == (200, created)
    assert missing[0] == 404
    log_lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    access = [line for line in log_lines if line["logger"] == "api.access"]
    assert {(line["method"], line["path"], line["status"]) for line in access} >= {
        ("POST", "/patients", 201),
        ("GET", f"/patients/{created['id']}", 200),
    }
    assert not any("exception" in line for line in log_lines)
    assert "Application shutdown complete." in [line["message"] for line in log_lines]


def test_serve_can_migrate_first_for_hosts_without_a_pre_deploy_step(
    empty_database_url: str,
) -> None:
    port = free_port()
    env = venv_env(
        DATABASE_URL=empty_database_url, PORT=str(port), HOST="127.0.0.1", MIGRATE_ON_START="true"
    )
    with running(SERVE, env) as server:
        wait_for_health(f"http://127.0.0.1:{port}", server)
        assert get(f"http://127.0.0.1:{port}/patients") == (200, [])


def test_serve_refuses_to_start_in_production_with_unsafe_settings(
    migrated_database_url: str,
) -> None:
    env = venv_env(DATABASE_URL=migrated_database_url, PORT=str(free_port()), APP_ENV="production")
    with running(SERVE, env) as server:
        assert server.wait(timeout=30) != 0
        output = drain(server)

    assert "CORS_ORIGINS must list the allowed origins explicitly" in output


def test_a_client_that_hangs_up_mid_body_leaves_no_trace_and_no_record(
    migrated_database_url: str,
) -> None:
    port = free_port()
    env = venv_env(DATABASE_URL=migrated_database_url, PORT=str(port), HOST="127.0.0.1")
    with running(SERVE, env) as server:
        wait_for_health(f"http://127.0.0.1:{port}", server)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(
                b"POST /patients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"patientID": "HALF", "na'
            )
        time.sleep(1.0)
        listing = get(f"http://127.0.0.1:{port}/patients")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        output = drain(server)

    assert listing == (200, [])
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert not any("exception" in line for line in lines), "a hang-up is not an error"
    assert any(line["message"] == "client disconnected mid-request" for line in lines)


def test_serve_runs_web_concurrency_workers_and_stops_them_on_sigterm(
    migrated_database_url: str,
) -> None:
    port = free_port()
    env = venv_env(
        DATABASE_URL=migrated_database_url, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="2"
    )
    with running(SERVE, env) as server:
        wait_for_health(f"http://127.0.0.1:{port}", server)
        children = pathlib.Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text()
        workers = [
            pid
            for pid in children.split()
            if b"spawn_main" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
        output = drain(server)

    assert len(workers) == 2
    assert not any(pathlib.Path(f"/proc/{pid}").exists() for pid in workers)
    assert output.count("Application shutdown complete.") == 2
