"""URLs and headers past their bounds are refused at the edge (414, 431), before anything else.

Through the ASGI app itself: httpx refuses URLs past 64 KiB on its own, and uvicorn's parser may
refuse some sizes first; these bounds hold whatever runs the app. tests/e2e/test_edge_limits.py
sends the same requests to a real `docker/serve`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import Message

from api import middleware
from api.app import create_app
from api.settings import Settings
from tests.integration.helpers import UNREACHABLE_URL

ORIGIN = "http://localhost:5173"


def call(
    path: bytes = b"/nowhere",
    query_string: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
) -> tuple[int, dict[str, str], bytes]:
    """One request straight into the app (no lifespan: the database is never reached)."""
    app = create_app(Settings(database_url=UNREACHABLE_URL, cors_origins=(ORIGIN,)))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path.decode("latin-1"),
        "raw_path": path,
        "root_path": "",
        "query_string": query_string,
        "headers": [(b"host", b"testserver"), (b"origin", ORIGIN.encode()), *(headers or [])],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    headers_out = {k.decode().lower(): v.decode("latin-1") for k, v in start["headers"]}
    return start["status"], headers_out, body


BASE_HEADERS = len(b"host") + len(b"testserver") + len(b"origin") + len(ORIGIN)


def padded_header(total: int) -> list[tuple[bytes, bytes]]:
    """One `x-pad` header that brings all headers to `total` bytes (names and values)."""
    return [(b"x-pad", b"a" * (total - BASE_HEADERS - len(b"x-pad")))]


@pytest.mark.parametrize(
    ("request_args", "status"),
    [
        pytest.param(
            {"query_string": b"a" * (middleware.MAX_URL_BYTES - len(b"/nowhere"))},
            404,
            id="a URL at the limit is served",
        ),
        pytest.param(
            {"query_string": b"a" * (middleware.MAX_URL_BYTES - len(b"/nowhere") + 1)},
            414,
            id="a URL one byte past it is not",
        ),
        pytest.param(
            {"path": b"/" + b"p" * middleware.MAX_URL_BYTES}, 414, id="a long path, no query"
        ),
        pytest.param({"query_string": b"id=1&" * 2_400_000}, 414, id="a 12 MB URL"),
        pytest.param(
            {"query_string": b"a" * middleware.MAX_URL_BYTES, "method": "OPTIONS"},
            414,
            id="a preflight too",
        ),
        pytest.param(
            {"headers": padded_header(middleware.MAX_HEADER_BYTES)},
            404,
            id="headers at the limit are served",
        ),
        pytest.param(
            {"headers": padded_header(middleware.MAX_HEADER_BYTES + 1)},
            431,
            id="headers one byte past it are not",
        ),
        pytest.param(
            {"headers": [(b"x-h%d" % n, b"v" * 100) for n in range(400)]},
            431,
            id="many small headers add up",
        ),
        pytest.param({"headers": [(b"cookie", b"c" * 5_000_000)]}, 431, id="a 5 MB header"),
    ],
)
def test_urls_and_headers_past_their_bounds_are_refused(
    request_args: dict[str, Any], status: int
) -> None:
    answered, headers, body = call(**request_args)

    assert answered == status, body[:300]
    if status in (414, 431):
        error = {414: "URI_TOO_LONG", 431: "HEADERS_TOO_LARGE"}[status]
        assert body.startswith(b'{"detail":'), "the one JSON error shape"
        assert f'"error_code":"{error}"'.encode() in body
        assert f'"request_id":"{headers["x-request-id"]}"'.encode() in body
        if request_args.get("method") != "OPTIONS":
            assert headers["access-control-allow-origin"] == ORIGIN, "a browser can read it"
        assert headers["content-type"] == "application/json; charset=utf-8"
