"""The two servers under comparison as real processes: started, awaited, stopped, logs kept."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import sessions
from localpg import free_port
from tests.e2e.processes import venv_env

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURE_DB_JSON = pathlib.Path(__file__).resolve().parent / "fixture-db.json"
START_WITHIN_SECONDS = 60.0
STOP_WITHIN_SECONDS = 30.0
LOG_TAIL_CHARACTERS = 3000


class ServerFailed(AssertionError):
    """A server did not start, or a seed did not load; the message carries its output."""


@dataclasses.dataclass(frozen=True)
class Server:
    name: str
    base_url: str
    log: pathlib.Path
    process: subprocess.Popen[bytes] = dataclasses.field(repr=False, compare=False)
    ready_path: str

    def log_tail(self) -> str:
        return _tail(self.log)

    def wait_until_ready(self) -> None:
        """Return once `ready_path` answers 200; fail with the log if the process exits first."""
        deadline = time.monotonic() + START_WITHIN_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if _answers_ok(self.base_url + self.ready_path):
                return
            time.sleep(0.05)
        raise ServerFailed(
            f"{self.name}: {self.ready_path} did not answer 200 within "
            f"{START_WITHIN_SECONDS:.0f} s:\n{self.log_tail()}"
        )


@contextlib.contextmanager
def started(
    name: str,
    command: list[str],
    *,
    port: int,
    ready_path: str,
    log: pathlib.Path,
    cwd: pathlib.Path = REPO,
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> Iterator[Server]:
    """Run `command` in its own session, output to `log`; stopped (SIGINT) on exit.

    With `wait`, yields once `ready_path` answers 200; otherwise call `wait_until_ready()`.
    """
    # A file, not a pipe: a pipe nobody reads blocks a chatty server after 64 KiB of log.
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, f"http://127.0.0.1:{port}", log, process, ready_path)
    try:
        if wait:
            server.wait_until_ready()
        yield server
    finally:
        _stop(process)


def our_api(
    database_url: str, log: pathlib.Path, *, wait: bool = True, **settings: str
) -> contextlib.AbstractContextManager[Server]:
    """Our API as the image runs it (`sh docker/serve`: uvicorn, HTTP, PostgreSQL), with
    `settings` as more environment variables."""
    port = free_port()
    env = venv_env(DATABASE_URL=database_url, PORT=str(port), HOST="127.0.0.1", **settings)
    command = ["sh", "docker/serve"]
    return started("ours", command, port=port, ready_path="/health", log=log, env=env, wait=wait)


def seed(database_url: str, db_json: pathlib.Path = FIXTURE_DB_JSON) -> None:
    """`python -m seed db_json` into `database_url`, as an operator would import a db.json."""
    result = subprocess.run(
        [sys.executable, "-m", "seed", str(db_json)],
        cwd=REPO,
        env=venv_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise ServerFailed(f"seeding {db_json.name} failed:\n{result.stdout}{result.stderr}")


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
    except (OSError, ValueError):
        return False
    return status == 200


def _stop(process: subprocess.Popen[bytes]) -> None:
    sessions.stop(process, STOP_WITHIN_SECONDS)


def _tail(log: pathlib.Path) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return text[-LOG_TAIL_CHARACTERS:]
