"""What a real client gets from a real `docker/serve` (uvicorn) for a huge URL or header: a 4xx,
quickly, never a 5xx or a hang. tests/integration/test_edge_limits.py pins the exact answers."""

from __future__ import annotations

import contextlib
import socket

import pytest

from localpg import free_port
from tests.e2e.processes import running, venv_env, wait_for_health

SERVE = ["sh", "docker/serve"]
ANSWER_WITHIN_SECONDS = 20


def status_of(port: int, head: bytes) -> int:
    """Send a request head, read the status code of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_SECONDS) as sock:
        # The server may answer and close before reading it all.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split()[1])


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        pytest.param(
            b"GET /patients?" + b"id=1&" * 4_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
            id="a 20 KB URL: ours",
        ),
        pytest.param(
            b"GET /patients?" + b"id=1&" * 2_400_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            id="a 12 MB URL: uvicorn's parser refuses it first (text/plain)",
        ),
        pytest.param(
            b"GET /patients HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 5_000_000 + b"\r\n\r\n",
            431,
            id="a 5 MB header",
        ),
        pytest.param(
            b"GET /patients?"
            + b"_sort="
            + b",".join(b"f%d" % n for n in range(400))
            + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            id="400 sort keys in a 2 KB URL",
        ),
    ],
)
def test_a_real_server_answers_huge_requests_with_a_4xx(
    migrated_database_url: str, head: bytes, expected: int
) -> None:
    port = free_port()
    env = venv_env(DATABASE_URL=migrated_database_url, PORT=str(port), HOST="127.0.0.1")
    with running(SERVE, env) as server:
        wait_for_health(f"http://127.0.0.1:{port}", server)
        status = status_of(port, head)
        after = status_of(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")

    assert status == expected
    assert after == 200, "the server is still serving"
