"""The one pure ASGI middleware at the edge: request ids and access lines, json-server's URL
tolerance, CORS as json-server answered it, and the boundary that turns unexpected exceptions
into JSON errors. One layer rather than four: every request, GET by id included, passes through
it, and each layer costs a coroutine and a wrapped `send` per request."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Collection

from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import logs, metrics
from api.responses import ApiError, error_response

LOG = logging.getLogger(__name__)
REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.encode()
# Any answer may be compressed for a client that asks, and carries CORS headers or not by the
# request's Origin: every answer varies on both, so no cache hands one origin's answer to another.
VARY = b"Accept-Encoding, Origin"
# Sandboxed frames and file: pages send `Origin: null`; echoing it with credentials would let any
# of them read answers with the user's cookies, so it is never an allowed origin.
OPAQUE_ORIGIN = "null"
HEALTH_PATH = "/health"
# Polled every few seconds (compose and Render's health checks, Prometheus): their successes
# are not logged, their failures are.
QUIET_PATHS = frozenset((HEALTH_PATH, metrics.PATH))
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
COLLECTION = "/patients"
TRAILING_SLASHES = re.compile(r"(?i)/patients/*")
ITEM = re.compile(r"(?i)/patients/([^/]+)/?")
ITEM_PATH = re.compile(r"/patients/([^/]+)")  # the route's own pattern, after normalize_path
READS = frozenset(("GET", "HEAD"))
ALLOWED_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE"
PREFLIGHT_MAX_AGE = "600"
# Bounds on what a request may make the service read (docs/query-limits.md). json-server
# (Node) refused more than 16 KiB of request line and headers together with a 431.
MAX_URL_BYTES = 16 * 1024  # path and query string, as sent (percent-encoded)
MAX_HEADER_BYTES = 32 * 1024  # names and values of all headers: room for a large bearer token
URI_TOO_LONG = ApiError(
    414, "URI_TOO_LONG", f"The URL is longer than {MAX_URL_BYTES} bytes; send fewer parameters"
)
HEADERS_TOO_LARGE = ApiError(
    431, "HEADERS_TOO_LARGE", f"The request headers are larger than {MAX_HEADER_BYTES} bytes"
)
RESPONSE_HEADERS = (
    # Patient data must not linger in browser or proxy caches (json-server sent no-cache).
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
)


def normalize_path(path: str) -> str:
    if TRAILING_SLASHES.fullmatch(path):
        return COLLECTION
    item = ITEM.fullmatch(path)
    return f"{COLLECTION}/{item.group(1)}" if item else path


class EdgeMiddleware:
    """Per request, in this order:

    - an id (kept from `X-Request-ID` when sane), in `scope["state"]` and the response headers,
      with the standard headers (no-store, nosniff);
    - json-server's URL tolerance: `/PATIENTS/2`, `/patients/`, `/patients//` and `/patients/1/`
      all resolve (normalize_path);
    - CORS for browsers: the allowed Origin is echoed, credentials allowed, and every OPTIONS
      request is answered 204 with the allowed methods and the requested headers, like
      json-server. `allow_any` reflects every origin (json-server's behaviour, development only);
    - any unhandled exception becomes the JSON error of `failure_response`, without internals,
      still carrying the CORS and request-id headers;
    - one access line, with the path but without the query string: queries carry patients'
      names; and, with METRICS=on, the request counted by its route's template (api.metrics).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        origins: Collection[str],
        allow_any: bool,
        allow_credentials: bool,
        expose_headers: Collection[str],
        failure_response: Callable[[Exception, str | None], Response],
        metrics: metrics.Metrics | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.allowed: Callable[[str], bool] = (
            (lambda _: True) if allow_any else frozenset(origins).__contains__
        )
        self.credentials = allow_credentials
        self.expose = ", ".join(expose_headers).encode("latin-1")
        self.failure_response = failure_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        request_id, origin = _request_id_and_origin(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        oversized = _oversized(scope)
        if oversized is None:  # a huge path is not worth a regular expression
            scope["path"] = normalize_path(scope["path"])
        allowed = origin is not None and origin != OPAQUE_ORIGIN and self.allowed(origin)
        extra_headers = [*RESPONSE_HEADERS, (REQUEST_ID_HEADER_BYTES, request_id.encode())]
        if allowed and scope["method"] != "OPTIONS":
            assert origin is not None
            extra_headers += self._allow(origin)
            extra_headers.append((b"access-control-expose-headers", self.expose))
        status = 500
        started = False

        async def respond(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = [
                    header
                    for header in message.get("headers", ())
                    if not (allowed and header[0].lower() == b"access-control-expose-headers")
                ]
                message["headers"] = [*_with_vary(headers, VARY), *extra_headers]
            await send(message)

        if self.metrics is not None:
            self.metrics.started()
        try:
            if oversized is not None:
                await error_response(oversized, request_id)(scope, receive, respond)
            elif scope["method"] == "OPTIONS":
                await self._preflight(scope, origin if allowed else None)(scope, receive, respond)
            else:
                try:
                    await self.app(scope, receive, respond)
                except Exception as error:
                    if started:
                        raise
                    failure = self.failure_response(error, request_id)
                    await failure(scope, receive, respond)
        finally:
            elapsed = time.perf_counter() - started_at
            if self.metrics is not None:
                self.metrics.finished(scope["method"], scope["path"], status, elapsed)
            if status != 200 or scope["path"] not in QUIET_PATHS:
                caller = scope["state"].get("caller")  # api.auth.Caller, set by sign-in
                logs.access(
                    scope["method"],
                    scope["path"],
                    status,
                    round(elapsed * 1000, 2),
                    request_id,
                    user_id=None if caller is None else caller.user_id,
                )

    def _allow(self, origin: str) -> list[tuple[bytes, bytes]]:
        headers = [(b"access-control-allow-origin", origin.encode("latin-1"))]
        if self.credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers

    def _preflight(self, scope: Scope, origin: str | None) -> Response:
        response = Response(status_code=204)
        response.headers.add_vary_header("Origin")
        response.headers["access-control-allow-methods"] = ALLOWED_METHODS
        response.headers["access-control-max-age"] = PREFLIGHT_MAX_AGE
        requested = Headers(scope=scope).get("access-control-request-headers")
        if requested is not None:
            response.headers["access-control-allow-headers"] = requested
            response.headers.add_vary_header("Access-Control-Request-Headers")
        if origin is not None:
            for name, value in self._allow(origin):
                response.headers[name.decode()] = value.decode("latin-1")
        return response


class GZipWhenAskedMiddleware(GZipMiddleware):
    """Starlette's GZip, entered only when the client accepts gzip. Starlette's own class wraps
    every answer in a responder that buffers the first message even when it will not compress;
    EdgeMiddleware sends `Vary: Accept-Encoding` on every answer instead."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not any(
            name == b"accept-encoding" and b"gzip" in value for name, value in scope["headers"]
        ):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _oversized(scope: Scope) -> ApiError | None:
    """414 or 431 when the URL or the headers pass their bound; None for every other request.

    A server in front (uvicorn's parser, a proxy) may refuse some sizes before this runs; this
    is the bound whatever runs the app."""
    path = scope.get("raw_path") or scope["path"].encode()
    if len(path) + len(scope["query_string"]) > MAX_URL_BYTES:
        return URI_TOO_LONG
    if sum(len(name) + len(value) for name, value in scope["headers"]) > MAX_HEADER_BYTES:
        return HEADERS_TOO_LARGE
    return None


def _request_id_and_origin(scope: Scope) -> tuple[str, str | None]:
    request_id: str | None = None
    origin: str | None = None
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER_BYTES and request_id is None:
            candidate = value.decode("latin-1")
            if SAFE_REQUEST_ID.fullmatch(candidate):
                request_id = candidate
        elif name == b"origin" and origin is None:
            origin = value.decode("latin-1")
    return request_id or os.urandom(16).hex(), origin  # 128 random bits, like a uuid4


def _with_vary(headers: list[tuple[bytes, bytes]], vary: bytes) -> list[tuple[bytes, bytes]]:
    """The headers with one `Vary` that lists the answer's own values, then `vary`'s, each once."""
    own = [value for name, value in headers if name.lower() == b"vary"]
    if not own:
        return [*headers, (b"vary", vary)]
    items: list[str] = []
    for value in [*own, vary]:
        for item in value.decode("latin-1").split(","):
            if item.strip() and item.strip().lower() not in (seen.lower() for seen in items):
                items.append(item.strip())
    merged = [header for header in headers if header[0].lower() != b"vary"]
    return [*merged, (b"vary", ", ".join(items).encode("latin-1"))]


class ItemReads:
    """GET and HEAD of `/patients/{id}` handed straight to their endpoint, past Starlette's
    exception middleware and router: the service's hottest request, and those two layers cost
    about a fifth of its time in Python (py-spy). The answer is the router's: the same endpoint
    with the same `path_params`, and an ApiError it raises answered by `error_response`, as the
    app's handler answers it; any other exception goes up to EdgeMiddleware, as it would.
    It sits inside GZipWhenAskedMiddleware and EdgeMiddleware (after normalize_path), so
    compression, CORS, request ids and the access line are unchanged. A mounted app (a
    root_path) takes the router's way."""

    def __init__(self, app: ASGIApp, *, endpoint: ASGIApp) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in READS and not scope.get("root_path"):
            item = ITEM_PATH.fullmatch(scope["path"])
            if item is not None:
                scope["path_params"] = {"id": item.group(1)}
                try:
                    await self.endpoint(scope, receive, send)
                except ApiError as error:
                    await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
