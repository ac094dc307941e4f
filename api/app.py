"""create_app(settings) -> Starlette: routes, middleware, lifespan and the one error mapping."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
from collections.abc import AsyncIterator, Callable

from databases import Database
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api import (
    audit,
    auth,
    handlers,
    keys,
    logs,
    metrics,
    middleware,
    openapi,
    paging,
    patients,
    query,
    store,
    users,
)
from api.responses import ApiError, error_response
from api.settings import Settings

LOG = logging.getLogger(__name__)
EXPOSED_HEADERS = (
    "X-Total-Count",
    "Link",
    "Location",
    "X-Request-ID",
    "ETag",
    "WWW-Authenticate",
    "Retry-After",
)
HTTP_ERROR_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
GZIP_MINIMUM_BYTES = 1000  # json-server compressed bodies of 1 KB and more
VERSION = "0.1.0"
ALLOW_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app. Without `settings` it reads the environment (for `uvicorn --factory`)."""
    settings = settings or Settings.from_environ(os.environ)
    logs.configure(settings.log_level)
    reader = handlers.PatientReader()  # routed, and reached first through ItemReads
    db = store.open_database(settings)
    authenticator = _authenticator(settings, db)
    # The router tries routes in order: the hottest come first (paths do not overlap, so the
    # order changes nothing else).
    routes: list[BaseRoute] = [
        Route("/patients/{id}", reader, methods=["GET"], name="patient"),
        Route("/patients", handlers.list_patients, methods=["GET"]),
        Route("/patients", handlers.create_patient, methods=["POST"]),
        Route("/patients/{id}", handlers.replace_patient, methods=["PUT"]),
        Route("/patients/{id}", handlers.update_patient, methods=["PATCH"]),
        Route("/patients/{id}", handlers.delete_patient, methods=["DELETE"]),
        Route("/health", handlers.health, methods=["GET"]),
        Route("/me", handlers.me, methods=["GET"]),
        Route("/users", handlers.list_users, methods=["GET"]),
        Route("/users/{id}", handlers.update_user, methods=["PATCH"]),
        Route("/audit", handlers.list_audit, methods=["GET"]),
        Route("/openapi.json", handlers.openapi_document, methods=["GET"]),
        Route("/docs", handlers.docs, methods=["GET"]),
        Mount("/docs/assets", StaticFiles(directory=_swagger_ui_assets())),
    ]
    meter: metrics.Metrics | None = None
    if settings.metrics:
        routes.append(Route(metrics.PATH, handlers.scrape, methods=["GET"]))
        meter = metrics.Metrics(routes, db, settings.metrics_token)
    edge = [
        Middleware(
            middleware.EdgeMiddleware,
            origins=settings.cors_origins,
            allow_any="*" in settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            expose_headers=EXPOSED_HEADERS,
            failure_response=_failure_handler(meter),
            metrics=meter,
        )
    ]
    if authenticator is not None:
        edge.append(
            Middleware(auth.Authenticate, authenticator=authenticator, public=auth.is_public)
        )
    app = Starlette(
        routes=routes,
        middleware=[
            *edge,
            Middleware(middleware.GZipWhenAskedMiddleware, minimum_size=GZIP_MINIMUM_BYTES),
            Middleware(middleware.ItemReads, endpoint=reader),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            patients.InvalidPatient: _invalid_patient,
            query.InvalidQuery: _invalid_query,
            paging.InvalidPage: _invalid_query,
            audit.InvalidAuditQuery: _invalid_query,
            users.InvalidUserChange: _invalid_user_change,
            store.DuplicatePatient: _duplicate_patient,
        },
        lifespan=_lifespan,
    )
    app.router.redirect_slashes = False  # json-server answers `/patients/1//` with a 404
    app.state.settings = settings
    app.state.openapi = openapi.document(VERSION, signed_in=authenticator is not None)
    app.state.db = db
    app.state.authenticator = authenticator
    app.state.metrics = meter
    return app


def _authenticator(settings: Settings, db: Database) -> auth.Authenticator | None:
    """The token edge of AUTH_MODE=entra; None when requests are anonymous."""
    if settings.entra is None:
        return None
    signing_keys = keys.SigningKeys(
        settings.entra.discovery_url, settings.entra.keys_cooldown_seconds
    )
    return auth.Authenticator(settings.entra, db, settings.admin_object_ids, signing_keys)


def _swagger_ui_assets() -> str:
    """swagger-ui-py's static folder, found without importing the package (and its Jinja2)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed: run scripts/bootstrap")
    return os.path.join(spec.submodule_search_locations[0], "static")


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    authenticator: auth.Authenticator | None = app.state.authenticator
    await store.connect(
        app.state.db, settings.db_timeout_seconds, settings.list_memory_mb * 1024 * 1024
    )
    if authenticator is not None:
        # In the background: the API starts while the identity provider is unreachable.
        authenticator.keys.refresh_in_background()
    elif settings.production:
        LOG.warning(
            "AUTH_MODE=none in production (ALLOW_ANONYMOUS_ACCESS=true): anyone who can reach "
            "the API can read and change every patient"
        )
    LOG.info(
        "patient registry API started",
        extra={"environment": settings.environment, "auth_mode": settings.auth_mode},
    )
    yield
    if authenticator is not None:
        await authenticator.keys.close()
    await store.disconnect(app.state.db, settings.shutdown_timeout_seconds)


def _failure_handler(meter: metrics.Metrics | None) -> Callable[[Exception, str | None], Response]:
    if meter is None:
        return _failure_response
    return functools.partial(_failure_response, count=meter.database_error)


def _database_failure(error: Exception) -> str | None:
    """The kind of database failure `error` is, named as the error code it is answered with
    (metrics.DATABASE_FAILURES); None when it is none of them."""
    if isinstance(error, store.PoolBusy):
        return "server_busy"
    if store.is_locked(error):
        return "import_running"
    if store.is_unavailable(error):
        return "database_unavailable"
    if store.is_busy(error):
        return "database_busy"
    return None


def _failure_response(
    error: Exception, request_id: str | None, count: Callable[[str], None] | None = None
) -> Response:
    if isinstance(error, ClientDisconnect):
        # Normal on the web: the client went away mid-request. Nothing was written.
        LOG.info("client disconnected mid-request", extra={"request_id": request_id})
        return error_response(ApiError(400, "CLIENT_DISCONNECTED", "The client went away"))
    kind = _database_failure(error)
    if kind is not None and count is not None:
        count(kind)
    if kind == "server_busy":
        LOG.warning("busy: %s", error, extra={"request_id": request_id})
        busy = ApiError(
            503,
            "SERVER_BUSY",
            "The server is busy; retry after Retry-After seconds",
        )
        return error_response(busy, request_id, headers={"Retry-After": "1"})
    if kind == "import_running":
        LOG.info("patients locked by an import", extra={"request_id": request_id})
        locked = ApiError(
            503,
            "IMPORT_RUNNING",
            "An import holds the patient records; retry after Retry-After seconds",
        )
        return error_response(locked, request_id, headers={"Retry-After": "5"})
    if kind == "database_unavailable":
        LOG.warning(
            "database unavailable: %s", type(error).__name__, extra={"request_id": request_id}
        )
        unavailable = ApiError(
            503, "DATABASE_UNAVAILABLE", "The database is unavailable; retry later"
        )
        return error_response(unavailable, request_id, headers={"Retry-After": "5"})
    if kind == "database_busy":
        LOG.warning("database busy: %s", type(error).__name__, extra={"request_id": request_id})
        busy = ApiError(503, "DATABASE_BUSY", "The database is busy; retry shortly")
        return error_response(busy, request_id, headers={"Retry-After": "2"})
    LOG.exception("unhandled error", extra={"request_id": request_id})
    internal = ApiError(500, "INTERNAL_ERROR", "Internal server error; quote the request_id")
    return error_response(internal, request_id)


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(error)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = HTTP_ERROR_CODES.get(error.status_code, "HTTP_ERROR")
    headers = dict(error.headers or {})
    if error.status_code == 405:
        # Starlette names the methods of the first route whose path matched; a path served by
        # several routes (GET and POST /patients) allows all of theirs.
        headers["Allow"] = ", ".join(_allowed_methods(request.app.router.routes, request.scope))
    return error_response(ApiError(error.status_code, code, error.detail), headers=headers)


def _allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    methods = {
        method
        for route in routes
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] != Match.NONE
        for method in route.methods
    }
    return sorted(methods, key=ALLOW_ORDER.index)


async def _invalid_patient(request: Request, error: Exception) -> Response:
    assert isinstance(error, patients.InvalidPatient)
    invalid = ApiError(400, "VALIDATION_ERROR", "The patient record is invalid", error.field_errors)
    return error_response(invalid)


async def _invalid_query(request: Request, error: Exception) -> Response:
    assert isinstance(error, (query.InvalidQuery, paging.InvalidPage, audit.InvalidAuditQuery))
    return error_response(ApiError(400, "INVALID_QUERY", str(error)))


async def _invalid_user_change(request: Request, error: Exception) -> Response:
    assert isinstance(error, users.InvalidUserChange)
    return error_response(ApiError(400, "VALIDATION_ERROR", str(error), error.field_errors))


async def _duplicate_patient(request: Request, error: Exception) -> Response:
    assert isinstance(error, store.DuplicatePatient)
    code = "DUPLICATE_PATIENT_ID" if error.field == "patientID" else "DUPLICATE_ID"
    return error_response(ApiError(409, code, str(error), {error.field: "is taken"}))
