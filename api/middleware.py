"""Pure ASGI middleware: request ids and access lines, json-server's URL tolerance, CORS as
json-server answered it, and the boundary that turns unexpected exceptions into JSON errors."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Collection

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOG = logging.getLogger(__name__)
ACCESS = logging.getLogger("api.access")
REQUEST_ID_HEADER = "x-request-id"
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
COLLECTION = "/patients"
TRAILING_SLASHES = re.compile(r"(?i)/patients/*")
ITEM = re.compile(r"(?i)/patients/([^/]+)/?")
ALLOWED_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE"
PREFLIGHT_MAX_AGE = "600"
RESPONSE_HEADERS = (
    # Patient data must not linger in browser or proxy caches (json-server sent no-cache).
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
)


class NormalizePathMiddleware:
    """json-server's routes are case-insensitive and tolerate a trailing slash:
    `/PATIENTS/2`, `/patients/`, `/patients//` and `/patients/1/` all resolve."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["path"] = normalize_path(scope["path"])
        await self.app(scope, receive, send)


def normalize_path(path: str) -> str:
    if TRAILING_SLASHES.fullmatch(path):
        return COLLECTION
    item = ITEM.fullmatch(path)
    return f"{COLLECTION}/{item.group(1)}" if item else path


class CORSMiddleware:
    """CORS for browsers: the allowed Origin is echoed, credentials allowed, and every OPTIONS
    request is answered 204 with the allowed methods and the requested headers, like json-server.
    `allow_any` reflects every origin (json-server's behaviour, development only)."""

    def __init__(
        self,
        app: ASGIApp,
        origins: Collection[str],
        allow_any: bool,
        allow_credentials: bool,
        expose_headers: Collection[str],
    ) -> None:
        self.app = app
        self.allowed: Callable[[str], bool] = (
            (lambda _: True) if allow_any else origins.__contains__
        )
        self.credentials = allow_credentials
        self.expose = ", ".join(expose_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin is not None and self.allowed(origin)
        if scope["method"] == "OPTIONS":
            await self._preflight(headers, origin if allowed else None)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and allowed:
                response_headers = MutableHeaders(scope=message)
                self._allow(response_headers, origin)
                response_headers["access-control-expose-headers"] = self.expose
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _preflight(self, request_headers: Headers, origin: str | None) -> Response:
        response = Response(status_code=204)
        response.headers.add_vary_header("Origin")
        response.headers["access-control-allow-methods"] = ALLOWED_METHODS
        response.headers["access-control-max-age"] = PREFLIGHT_MAX_AGE
        requested = request_headers.get("access-control-request-headers")
        if requested is not None:
            response.headers["access-control-allow-headers"] = requested
            response.headers.add_vary_header("Access-Control-Request-Headers")
        if origin is not None:
            self._allow(response.headers, origin)
        return response

    def _allow(self, headers: MutableHeaders, origin: str | None) -> None:
        assert origin is not None
        headers["access-control-allow-origin"] = origin
        headers.add_vary_header("Origin")
        if self.credentials:
            headers["access-control-allow-credentials"] = "true"


class RequestContextMiddleware:
    """Gives each request an id (kept from `X-Request-ID` when sane), adds it and the standard
    headers to the response, and logs one access line.

    The path is logged without its query string: queries carry patients' names.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    *RESPONSE_HEADERS,
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            ACCESS.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "request_id": request_id,
                },
            )


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER.encode():
            candidate: str = value.decode("latin-1")
            if SAFE_REQUEST_ID.fullmatch(candidate):
                return candidate
    return uuid.uuid4().hex


class ErrorBoundaryMiddleware:
    """Turns any unhandled exception into a JSON error from `failure_response`, without internals.

    It sits inside CORSMiddleware so error responses still carry CORS headers; Starlette's own
    ServerErrorMiddleware is outside it and would answer without them.
    """

    def __init__(
        self, app: ASGIApp, failure_response: Callable[[Exception, str | None], Response]
    ) -> None:
        self.app = app
        self.failure_response = failure_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def track(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, track)
        except Exception as error:
            if started:
                raise
            request_id = scope.get("state", {}).get("request_id")
            await self.failure_response(error, request_id)(scope, receive, send)
