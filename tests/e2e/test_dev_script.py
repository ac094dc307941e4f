"""The README's native run command: scripts/dev starts PostgreSQL 17, migrates, seeds, serves."""

import json
import pathlib
import re
import shlex
import socket
import subprocess
import time
from typing import Any

from localpg import free_port
from tests.e2e.processes import REPO, drain, get, running, venv_env, wait_for_health
from tests.signin import bearer

SAMPLE = json.loads((REPO / "seed" / "db.json").read_text(encoding="utf-8"))["patients"]


def wait_for_line(process: subprocess.Popen[str], pattern: str, within: float = 180) -> str:
    """The output up to the first line that matches; the first run may download PostgreSQL."""
    assert process.stdout is not None
    deadline = time.monotonic() + within
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)
    raise AssertionError(f"no line matching {pattern!r}; output:\n{''.join(seen)}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_dev_once(state: pathlib.Path, pg_port: int) -> tuple[int, list[dict[str, object]], str]:
    api_port = free_port()
    env = venv_env(API_PORT=str(api_port), PG_PORT=str(pg_port), DEV_STATE_DIR=str(state))
    with running(["scripts/dev"], env) as dev:
        started = wait_for_line(dev, r"Patient Registry API at ")
        assert f"http://127.0.0.1:{api_port}/patients" in started
        wait_for_health(f"http://127.0.0.1:{api_port}", dev)
        status, patients = get(f"http://127.0.0.1:{api_port}/patients")
        assert status == 200
        dev.send_signal(2)  # Ctrl-C
        code = dev.wait(timeout=60)
        output = started + drain(dev)
    return code, patients, output


def test_dev_serves_the_sample_keeps_data_and_stops_everything(tmp_path: pathlib.Path) -> None:
    pg_port = free_port()
    first_code, first, first_output = run_dev_once(tmp_path / "state", pg_port)
    second_code, second, second_output = run_dev_once(tmp_path / "state", pg_port)

    assert first == SAMPLE
    assert "36 inserted" in first_output
    assert first_code == 0
    assert second == SAMPLE, "a second run must neither lose nor duplicate data"
    assert "0 inserted, 0 updated, 36 unchanged, 0 rejected" in second_output
    assert second_code == 0
    assert "PostgreSQL stopped" in second_output
    assert not port_open(pg_port), "Ctrl-C must stop PostgreSQL too"


def get_as(url: str, token: str | None) -> tuple[int, Any]:
    return get(url, headers=bearer(token) if token else None)


def test_dev_auth_prints_tokens_that_sign_in_with_curl(tmp_path: pathlib.Path) -> None:
    """The README's sign-in try-out: `scripts/dev --auth`, then the printed token with curl."""
    api_port, oidc_port = free_port(), free_port()
    env = venv_env(
        API_PORT=str(api_port),
        PG_PORT=str(free_port()),
        OIDC_PORT=str(oidc_port),
        DEV_STATE_DIR=str(tmp_path / "state"),
    )
    with running(["scripts/dev", "--auth"], env) as dev:
        started = wait_for_line(dev, r"Patient Registry API at ")
        wait_for_health(f"http://127.0.0.1:{api_port}", dev)
        token = re.search(r"export TOKEN=(\S+)", started)
        admin_token = re.search(r"export ADMIN_TOKEN=(\S+)", started)
        new_token = re.search(r"a new token: (curl .*)", started)
        assert token, started
        assert admin_token, started
        assert new_token, started
        base = f"http://127.0.0.1:{api_port}"

        assert get_as(f"{base}/patients/1", None)[0] == 401
        status, me = get_as(f"{base}/me", token.group(1))
        assert (status, me["displayName"], me["isAdmin"]) == (200, "Casey Clinician", False)
        assert get_as(f"{base}/patients/1", token.group(1)) == (200, SAMPLE[0])
        assert get_as(f"{base}/me", admin_token.group(1))[1]["isAdmin"] is True
        fresh = subprocess.run(
            shlex.split(new_token.group(1)), capture_output=True, text=True, check=True, timeout=30
        )
        assert get_as(f"{base}/me", json.loads(fresh.stdout)["access_token"])[0] == 200
        assert f"http://127.0.0.1:{oidc_port}/" in started


def test_dev_says_when_the_api_port_is_taken(tmp_path: pathlib.Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = venv_env(
            API_PORT=str(port), PG_PORT=str(free_port()), DEV_STATE_DIR=str(tmp_path / "state")
        )
        with running(["scripts/dev"], env) as dev:
            code = dev.wait(timeout=180)
            output = drain(dev)

    assert code == 1
    assert f"port {port} is in use" in output
    assert f"API_PORT={port + 1} scripts/dev" in output
    assert "Traceback" not in output
