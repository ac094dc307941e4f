"""create_app(settings) -> Starlette: routes, middleware, lifespan and the one error mapping."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import handlers, logs, patients, store
from api.responses import ApiError, error_response
from api.settings import Settings

LOG = logging.getLogger(__name__)
EXPOSED_HEADERS = ("Location", "X-Total-Count", "Link", "X-Request-ID")
HTTP_ERROR_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app. Without `settings` it reads the environment (for `uvicorn --factory`)."""
    settings = settings or Settings.from_environ(os.environ)
    logs.configure(settings.log_level)
    app = Starlette(
        routes=[
            Route("/health", handlers.health, methods=["GET"]),
            Route("/patients", handlers.list_patients, methods=["GET"]),
            Route("/patients", handlers.create_patient, methods=["POST"]),
            Route("/patients/{id}", handlers.get_patient, methods=["GET"], name="patient"),
        ],
        middleware=[
            Middleware(logs.RequestContextMiddleware),
            _cors_middleware(settings),
            Middleware(ErrorBoundaryMiddleware),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            patients.InvalidPatient: _invalid_patient,
        },
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.db = store.open_database(settings)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    await app.state.db.connect()
    LOG.info("patient registry API started", extra={"environment": settings.environment})
    yield
    await store.disconnect(app.state.db, settings.shutdown_timeout_seconds)


def _cors_middleware(settings: Settings) -> Middleware:
    reflect_any = "*" in settings.cors_origins
    return Middleware(
        CORSMiddleware,
        allow_origins=[] if reflect_any else list(settings.cors_origins),
        # Like json-server, reflect any Origin: browsers refuse a literal "*" with credentials.
        allow_origin_regex=".*" if reflect_any else None,
        allow_methods=["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"],
        allow_headers=["*"],
        allow_credentials=settings.cors_allow_credentials,
        expose_headers=list(EXPOSED_HEADERS),
    )


class ErrorBoundaryMiddleware:
    """Turns any unhandled exception into a JSON 503 or 500 without internals.

    It sits inside CORSMiddleware so error responses still carry CORS headers; Starlette's own
    ServerErrorMiddleware is outside it and would answer without them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            await _failure_response(error, request_id)(scope, receive, send)


def _failure_response(error: Exception, request_id: str | None) -> Response:
    if store.is_unavailable(error):
        LOG.warning(
            "database unavailable: %s", type(error).__name__, extra={"request_id": request_id}
        )
        unavailable = ApiError(
            503, "DATABASE_UNAVAILABLE", "The database is unavailable; retry later"
        )
        return error_response(unavailable, request_id, headers={"Retry-After": "5"})
    LOG.exception("unhandled error", extra={"request_id": request_id})
    internal = ApiError(500, "INTERNAL_ERROR", "Internal server error; quote the request_id")
    return error_response(internal, request_id)


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(error)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = HTTP_ERROR_CODES.get(error.status_code, "HTTP_ERROR")
    return error_response(ApiError(error.status_code, code, error.detail), headers=error.headers)


async def _invalid_patient(request: Request, error: Exception) -> Response:
    assert isinstance(error, patients.InvalidPatient)
    invalid = ApiError(400, "VALIDATION_ERROR", "The patient record is invalid", error.field_errors)
    return error_response(invalid)
