"""The README's Docker command: compose.yaml is valid, and `docker compose up` serves the sample."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from localpg import free_port
from tests.conftest import docker_answers
from tests.e2e.processes import REPO, get

SAMPLE = json.loads((REPO / "seed" / "db.json").read_text(encoding="utf-8"))["patients"]


def compose_cli() -> list[str]:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed (CI installs it with docker-offline)")
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed (CI installs it)")
    return ["docker", "compose"]


def compose(project: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [*compose_cli(), "--project-name", project, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"docker compose {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def test_compose_file_is_valid_and_wires_the_services_in_order() -> None:
    config = json.loads(compose("registry-config-check", "config", "--format", "json"))
    services = config["services"]

    assert services["db"]["image"] == "postgres:17"
    assert services["migrator"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["seed"]["depends_on"]["migrator"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["api"]["depends_on"]["seed"]["condition"] == "service_completed_successfully"
    assert services["api"]["ports"][0]["host_ip"] == "127.0.0.1"
    assert "healthcheck" in services["api"]


@pytest.fixture
def compose_project() -> Iterator[tuple[str, int]]:
    if not docker_answers():
        pytest.skip("no Docker engine answers (CI starts one with docker-offline)")
    project = f"registry-e2e-{uuid.uuid4().hex[:8]}"
    port = free_port()
    yield project, port
    compose(project, "down", "--volumes", "--remove-orphans")


def test_compose_up_serves_the_sample_and_a_second_up_duplicates_nothing(
    compose_project: tuple[str, int],
) -> None:
    project, port = compose_project
    env = {**os.environ, "API_PORT": str(port)}
    compose(project, "up", "--build", "--detach", "--wait", env=env)
    first = get(f"http://127.0.0.1:{port}/patients")
    health = get(f"http://127.0.0.1:{port}/health")
    compose(project, "up", "--detach", "--wait", env=env)
    second = get(f"http://127.0.0.1:{port}/patients")
    jobs = json.loads(
        "["
        + ",".join(compose(project, "ps", "--all", "--format", "json").strip().splitlines())
        + "]"
    )
    api_user = compose(project, "exec", "-T", "api", "id", "-u", env=env).strip()

    assert health[0] == 200
    assert health[1]["database"] == "connected"
    assert first == (200, SAMPLE)
    assert second == (200, SAMPLE)
    states = {job["Service"]: (job["State"], job["ExitCode"]) for job in jobs}
    assert states["migrator"] == ("exited", 0)
    assert states["seed"] == ("exited", 0)
    assert states["api"][0] == "running"
    assert api_user != "0", "the API must not run as root"
