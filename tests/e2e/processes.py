"""Start our commands as real processes and wait for them the way a person would."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = str(pathlib.Path(sys.executable).parent)


def venv_env(**overrides: str) -> dict[str, str]:
    """The environment with our virtualenv first on PATH, as the image has it."""
    return {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **overrides}


def get(url: str, timeout: float = 5, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def post(url: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        headers = {name.lower(): value for name, value in response.headers.items()}
        return response.status, json.loads(response.read()), headers


def wait_for_health(base_url: str, process: subprocess.Popen[str], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode}: {drain(process)}")
        with contextlib.suppress(OSError, ValueError):
            if get(f"{base_url}/health", timeout=2)[0] == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{base_url}/health did not answer 200 within {within} s")


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A process in its own session, interrupted (SIGINT, as Ctrl-C) and reaped at the end."""
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stdout:
            process.stdout.close()


def drain(process: subprocess.Popen[str]) -> str:
    """Everything the process printed; call after it exited."""
    assert process.stdout is not None
    return process.stdout.read()
