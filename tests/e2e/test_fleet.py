"""compose's scale profile: API replicas behind a proxy, PostgreSQL only through PgBouncer."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from localpg import free_port
from tests.conftest import docker_answers
from tests.e2e.processes import REPO, get
from tests.e2e.test_compose import compose, compose_cli

PLAIN_SERVICES = {"db", "migrator", "seed", "api"}
SCALE_SERVICES = {"pgbouncer", "migrator-pooled", "seed-pooled", "api-replica", "proxy"}
POOLED_APPS = ("migrator-pooled", "seed-pooled", "api-replica")
JOB_CONNECTIONS = 4  # the migrator's lock and yoyo connections, the seed's one or two
POSTGRES_MAX_CONNECTIONS = 100  # postgres:17's default; the live value is checked below
POSTGRES_RESERVED = 3  # superuser_reserved_connections' default
PATIENT = {
    "patientID": "F-1",
    "name": "Fleet Test",
    "age": 40,
    "gender": "Female",
    "medicalCondition": "Asthma",
    "lastVisit": "2024-03-01",
}


def rendered(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(
        compose("registry-config-check", *args, "config", "--format", "json", env=env)
    )
    return config["services"]  # type: ignore[no-any-return]


def test_plain_up_is_unchanged_by_the_scale_profile() -> None:
    services = rendered()

    assert set(services) == PLAIN_SERVICES
    assert services["api"]["ports"][0]["published"] == "8000"
    assert "@db:5432/" in services["api"]["environment"]["DATABASE_URL"]
    assert services["api"]["environment"].get("DB_POOLER", "none") == "none"


def test_scale_profile_sends_every_app_through_pgbouncer_within_the_connection_budget() -> None:
    services = rendered("--profile", "scale")
    pgbouncer = services["pgbouncer"]["environment"]
    replicas = services["api-replica"]["deploy"]["replicas"]
    pool_max = int(services["api-replica"]["environment"]["DB_POOL_MAX"])
    workers = int(services["api-replica"]["environment"]["WEB_CONCURRENCY"])

    assert set(services) == PLAIN_SERVICES | SCALE_SERVICES
    for name in POOLED_APPS:
        environment = services[name]["environment"]
        assert "@pgbouncer:6432/" in environment["DATABASE_URL"], name
        assert environment["DB_POOLER"] == "pgbouncer", name
        assert "profiles" in services[name], name
    assert "@db:5432/" in pgbouncer["DATABASE_URL"]
    assert pgbouncer["PGBOUNCER_POOL_MODE"] == "transaction"
    assert int(pgbouncer["PGBOUNCER_MAX_PREPARED_STATEMENTS"]) > 0
    assert replicas == 3
    assert services["proxy"]["environment"]["API_REPLICAS"] == "3"
    assert "ports" not in services["api-replica"]
    assert services["proxy"]["ports"][0]["host_ip"] == "127.0.0.1"
    # The budget compose.yaml states: clients fit PgBouncer, PgBouncer's servers fit PostgreSQL.
    # Each uvicorn worker of a replica is an instance with its own pool.
    clients = replicas * workers * pool_max + JOB_CONNECTIONS
    assert clients <= int(pgbouncer["PGBOUNCER_MAX_CLIENT_CONN"])
    assert int(pgbouncer["PGBOUNCER_DEFAULT_POOL_SIZE"]) <= int(
        pgbouncer["PGBOUNCER_MAX_DB_CONNECTIONS"]
    )
    assert int(pgbouncer["PGBOUNCER_MAX_DB_CONNECTIONS"]) <= (
        POSTGRES_MAX_CONNECTIONS - POSTGRES_RESERVED
    )


def test_scale_profile_takes_the_replica_count_from_api_replicas() -> None:
    services = rendered("--profile", "scale", env={**os.environ, "API_REPLICAS": "5"})

    assert services["api-replica"]["deploy"]["replicas"] == 5
    assert services["proxy"]["environment"]["API_REPLICAS"] == "5"


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[str, str, dict[str, str]]]:
    """`docker compose --profile scale up proxy` once for this module; `down -v` at the end."""
    compose_cli()
    if not docker_answers():
        pytest.skip("no Docker engine answers (CI starts one with docker-offline)")
    project = f"registry-fleet-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PROXY_PORT": str(free_port())}
    env.pop("API_REPLICAS", None)
    try:
        compose(
            project, "--profile", "scale", "up", "--build", "--detach", "--wait", "proxy", env=env
        )
        yield project, f"http://127.0.0.1:{env['PROXY_PORT']}", env
    finally:
        compose(project, "--profile", "scale", "down", "--volumes", "--remove-orphans", env=env)


def scale(project: str, *args: str, env: dict[str, str]) -> str:
    return compose(project, "--profile", "scale", *args, env=env)


def send(method: str, url: str, request_id: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-request-id": request_id},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def served_by(project: str, env: dict[str, str], request_ids: set[str]) -> dict[str, str]:
    """Which replica logged each request id, from the API's own access lines (`docker compose
    logs` prefixes each line with its container); waits a little for the lines to arrive."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = scale(project, "logs", "--no-color", "api-replica", env=env)
        for line in logs.splitlines():
            container, _, text = line.partition("|")
            if text.strip().startswith("{"):
                request_id = json.loads(text).get("request_id")
                if request_id in request_ids:
                    found[request_id] = container.strip()
        if set(found) == request_ids:
            break
        time.sleep(0.5)
    return found


def psql(project: str, env: dict[str, str], service: str, *args: str) -> list[list[str]]:
    output = scale(project, "exec", "-T", service, "psql", "-X", "-A", "-t", *args, env=env)
    return [line.split("|") for line in output.splitlines() if line]


def addresses(project: str, env: dict[str, str], service: str) -> set[str]:
    ids = scale(project, "ps", "--quiet", service, env=env).split()
    result = subprocess.run(
        [
            "docker",
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            *ids,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
    )
    return set(result.stdout.split())


def test_fleet_spreads_requests_over_the_replicas_and_reads_what_another_wrote(
    fleet: tuple[str, str, dict[str, str]],
) -> None:
    project, base, env = fleet
    tag = uuid.uuid4().hex[:8]
    health = get(f"{base}/health")
    written = send("POST", f"{base}/patients", f"fleet-{tag}-write", PATIENT)
    reads = [
        send("GET", f"{base}/patients/{written[1]['id']}", f"fleet-{tag}-read-{number}")
        for number in range(6)
    ]
    replicas = served_by(
        project, env, {f"fleet-{tag}-write"} | {f"fleet-{tag}-read-{n}" for n in range(6)}
    )
    running = json.loads(
        "["
        + ",".join(scale(project, "ps", "--all", "--format", "json", env=env).splitlines())
        + "]"
    )

    assert health[0] == 200
    assert health[1]["database"] == "connected"
    assert written[0] == 201
    assert reads == [(200, written[1])] * 6
    writer = replicas[f"fleet-{tag}-write"]
    readers = {replicas[f"fleet-{tag}-read-{n}"] for n in range(6)}
    assert len(readers | {writer}) >= 3, replicas
    assert len(readers - {writer}) >= 2, replicas
    states = {(job["Service"], job["State"], job["ExitCode"]) for job in running}
    assert {service for service, _, _ in states} == {"db"} | SCALE_SERVICES
    assert ("migrator-pooled", "exited", 0) in states
    assert ("seed-pooled", "exited", 0) in states


def test_fleet_reaches_postgresql_only_through_pgbouncer_in_transaction_mode(
    fleet: tuple[str, str, dict[str, str]],
) -> None:
    project, base, env = fleet
    assert get(f"{base}/patients?_limit=1")[0] == 200
    admin = ("-h", "127.0.0.1", "-p", "6432", "-U", "registry", "-d", "pgbouncer")
    console = ["env", "PGPASSWORD=registry-local-dev", "psql", "-X", "-A", "-t", *admin]
    config = dict(
        row[:2]
        for row in (
            line.split("|")
            for line in scale(
                project, "exec", "-T", "pgbouncer", *console, "-c", "SHOW CONFIG", env=env
            ).splitlines()
        )
    )
    clients = scale(project, "exec", "-T", "pgbouncer", *console, "-c", "SHOW CLIENTS", env=env)
    backends = psql(
        project,
        env,
        "db",
        "-U",
        "registry",
        "-d",
        "registry",
        "-c",
        "SELECT host(client_addr) FROM pg_stat_activity"
        " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    )
    max_connections = psql(project, env, "db", "-U", "registry", "-c", "SHOW max_connections")
    pgbouncer_address = addresses(project, env, "pgbouncer")
    replica_addresses = addresses(project, env, "api-replica")
    client_addresses = {row.split("|")[5] for row in clients.splitlines() if row.startswith("C|")}

    assert config["pool_mode"] == "transaction"
    assert int(config["max_prepared_statements"]) > 0
    assert len(replica_addresses) == 3
    assert replica_addresses <= client_addresses, clients
    assert backends, "PgBouncer holds no server connection"
    assert {row[0] for row in backends} == pgbouncer_address
    assert int(max_connections[0][0]) - POSTGRES_RESERVED >= int(config["max_db_connections"])


def test_fleet_runs_pgbouncer_and_the_proxy_as_non_root(
    fleet: tuple[str, str, dict[str, str]],
) -> None:
    project, _, env = fleet

    for service in ("pgbouncer", "proxy", "api-replica"):
        assert scale(project, "exec", "-T", service, "id", "-u", env=env).strip() != "0", service
