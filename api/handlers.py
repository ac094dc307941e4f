"""Thin endpoints: parse the request, validate, call the store, answer."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from databases import Database
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send

from api import audit, auth, metrics, paging, patients, query, store, users
from api.responses import ApiError, JSONResponse, PartsResponse
from api.settings import Settings

# json-server compares the URL id with String(record.id), so "01" or "1.0" find nothing.
CANONICAL_ID = re.compile(r"[1-9][0-9]{0,18}")
JSON_MEDIA_TYPE = "application/json"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
JSON_CONTENT_TYPE_BYTES = JSON_CONTENT_TYPE.encode()
# Swagger UI from the swagger-ui-py package, served by us: /docs works without internet.
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Patient Registry API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""


async def list_patients(request: Request) -> Response:
    listing = query.parse(request.scope["query_string"].decode("utf-8", "replace"))
    try:
        parts, total = await store.list_patients(_db(request), listing)
    except store.ListTooLarge:
        detail = "The list is longer than this server sends at once; ask for it in pages (_page)"
        raise ApiError(400, "LIST_TOO_LARGE", detail) from None
    headers: dict[str, str] = {}
    if listing.counted:
        assert total is not None
        headers["X-Total-Count"] = str(total)
        exposed = "X-Total-Count, Link" if listing.page else "X-Total-Count"
        headers["Access-Control-Expose-Headers"] = exposed
        if listing.page:
            headers["Link"] = query.page_links(_original_url(request), listing.page, total)
    return PartsResponse(parts, headers=headers, media_type=JSON_CONTENT_TYPE)


class PatientReader:
    """GET /patients/{id}, the service's hottest request, as a bare ASGI app (Starlette routes
    to a class instance as ASGI): the same answer a Starlette endpoint would send (status, body,
    headers in the same order), without building a Request and a Response for it. Errors go to
    the app's one mapping, as elsewhere."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        db: Database = scope["app"].state.db
        body = _found(await store.fetch_patient(db, _canonical_id(scope["path_params"]["id"])))
        tag = etag(body)
        if_none_match = next((v for k, v in scope["headers"] if k == b"if-none-match"), b"")
        if _none_match(if_none_match.decode("latin-1"), tag):
            headers = [(b"etag", tag.encode())]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        encoded = body.encode()
        headers = [
            (b"etag", tag.encode()),
            (b"content-length", str(len(encoded)).encode()),
            (b"content-type", JSON_CONTENT_TYPE_BYTES),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": encoded})


async def create_patient(request: Request) -> Response:
    row = patients.to_row(await _json_object(request))
    body = await store.insert_patient(_db(request), row, _audit(request))
    location = request.url_for("patient", id=str(json.loads(body)["id"]))
    headers = {"Location": str(location), "Access-Control-Expose-Headers": "Location"}
    return _record(body, status_code=201, headers=headers)


async def replace_patient(request: Request) -> Response:
    row = patients.replacement(await _json_object(request))
    check = _if_match(request) or (lambda current: None)

    def change(current: str) -> patients.PatientRow:
        check(current)
        return row

    return await _changed(request, change, "replace")


async def update_patient(request: Request) -> Response:
    changes = await _json_object(request)
    check = _if_match(request) or (lambda current: None)

    def change(current: str) -> patients.PatientRow:
        check(current)
        return patients.merge(json.loads(current), changes)

    return await _changed(request, change, "update")


async def _changed(
    request: Request, change: Callable[[str], patients.PatientRow], action: str
) -> Response:
    body = await store.update_patient(
        _db(request), _item_id(request), change, _audit(request), action
    )
    return _record(_found(body))


async def delete_patient(request: Request) -> Response:
    auth.require(request.scope, auth.DELETE)
    deleted = await store.delete_patient(
        _db(request), _item_id(request), _audit(request), _if_match(request)
    )
    if not deleted:
        raise _not_found()
    return _json("{}")  # json-server answers 200 with an empty object, not 204


def _audit(request: Request) -> store.Audit | None:
    """Who changes a record, for its audit event; None when the audit trail is off."""
    settings: Settings = request.app.state.settings
    if not settings.audit_trail:
        return None
    return store.Audit(auth.caller(request.scope).user_id, request.scope["state"]["request_id"])


def etag(body: str) -> str:
    """A strong validator of a record: its JSON text's digest."""
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'


def _record(body: str, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return _json(body, status_code, {**(headers or {}), "ETag": etag(body)})


def _if_match(request: Request) -> Callable[[str], None] | None:
    """A check of the stored record against If-Match (RFC 9110: strong comparison), or None."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    accepted = _listed_tags(header)

    def check(current: str) -> None:
        if "*" not in accepted and etag(current) not in accepted:
            raise ApiError(
                412,
                "PRECONDITION_FAILED",
                "The record changed since it was read (If-Match); read it again and retry",
            )

    return check


def _none_match(header: str, tag: str) -> bool:
    """If-None-Match matches: `*`, or the tag by the weak comparison (RFC 9110 13.1.2), so
    `W/"abc"` matches our `"abc"`."""
    listed = _listed_tags(header)
    return "*" in listed or tag in {value.removeprefix("W/") for value in listed}


def _listed_tags(header: str | None) -> set[str]:
    return {tag.strip() for tag in (header or "").split(",") if tag.strip()}


async def health(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    healthy = await store.ping(_db(request), settings.health_timeout_seconds)
    body: dict[str, Any] = {
        "status": "healthy" if healthy else "unhealthy",
        "database": "connected" if healthy else "disconnected",
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
    }
    if healthy and await store.import_running(_db(request), settings.health_timeout_seconds):
        body["import"] = "running"  # patients' writes (a rebuild: reads too) answer 503 now
    if (pool := store.pool_state(_db(request))) is not None:
        body["pool"] = {
            "size": pool.get_size(),
            "max": pool.get_max_size(),
            "idle": pool.get_idle_size(),
            "waiting": pool.waiting,
        }
    return JSONResponse(body, status_code=200 if healthy else 503)


async def scrape(request: Request) -> Response:
    """GET /metrics (METRICS=on): the Prometheus text format, behind METRICS_TOKEN when set."""
    meter: metrics.Metrics = request.app.state.metrics
    sent = auth.authorization(request.scope["headers"])
    if not meter.allows(sent):
        raise auth.unauthenticated(
            "Send Authorization: Bearer <METRICS_TOKEN>", token_sent=bool(sent)
        )
    settings: Settings = request.app.state.settings
    imports = await store.import_totals(_db(request), settings.health_timeout_seconds)
    return Response(meter.exposition(imports), media_type=metrics.CONTENT_TYPE)


async def me(request: Request) -> Response:
    return JSONResponse(auth.caller(request.scope).to_wire())


async def list_users(request: Request) -> Response:
    auth.require(request.scope, auth.ADMINISTER)
    params = _params(request)
    wanted = paging.page(params)
    rows, total = await store.list_users(_db(request), wanted.offset, wanted.size)
    return _paged([users.to_wire(row) for row in rows], request, params, wanted, total)


async def list_audit(request: Request) -> Response:
    """GET /audit: the trail, newest first, filtered and paged (administrators only)."""
    auth.require(request.scope, auth.ADMINISTER)
    params = _params(request)
    wanted = audit.parse(params)
    rows, total = await store.list_audit(_db(request), wanted.filters, wanted.page)
    return _paged([audit.to_wire(row) for row in rows], request, params, wanted.page, total)


def _params(request: Request) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(request.scope["query_string"].decode("latin-1"))


def _paged(
    body: list[dict[str, Any]],
    request: Request,
    params: dict[str, list[str]],
    page: paging.Page,
    total: int,
) -> Response:
    headers = {
        "X-Total-Count": str(total),
        "Link": paging.links(request.url.path, params, page, total),
        "Access-Control-Expose-Headers": "X-Total-Count, Link",
    }
    return JSONResponse(body, headers=headers)


async def update_user(request: Request) -> Response:
    """PATCH /users/{id} `{"isAdmin": bool}`: grant or take away the admin right."""
    admin = auth.require(request.scope, auth.ADMINISTER)
    user_id = _canonical_id(request.path_params["id"], _no_such_user)
    is_admin = users.admin_change(await _json_object(request))
    current = await store.fetch_user(_db(request), user_id)
    if current is None:
        raise _no_such_user()
    if not is_admin:
        _check_demotion(request, admin, current)
    changed = await store.set_admin(_db(request), user_id, is_admin)
    if changed is None:
        raise _no_such_user()
    request.app.state.authenticator.forget(user_id)
    return JSONResponse(users.to_wire(changed))


def _check_demotion(request: Request, admin: auth.Caller, user: dict[str, Any]) -> None:
    if user["id"] == admin.user_id:
        raise ApiError(409, "CONFLICT", "An administrator cannot take away their own admin right")
    settings: Settings = request.app.state.settings
    if str(user["object_id"]) in settings.admin_object_ids:
        raise ApiError(
            409,
            "CONFLICT",
            "This user is an administrator through ADMIN_OBJECT_IDS; change it there",
        )


def _no_such_user() -> ApiError:
    return ApiError(404, "NOT_FOUND", "No user with this id")


async def openapi_document(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


async def docs(request: Request) -> Response:
    return HTMLResponse(DOCS_PAGE)


def _json(
    body: str | bytes, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """JSON text that PostgreSQL already built, sent as it is."""
    return Response(body, status_code=status_code, headers=headers, media_type=JSON_CONTENT_TYPE)


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _item_id(request: Request) -> int:
    return _canonical_id(request.path_params["id"])


def _canonical_id(raw: str, not_found: Callable[[], ApiError] | None = None) -> int:
    if not CANONICAL_ID.fullmatch(raw) or int(raw) > patients.MAX_ID:
        raise (not_found or _not_found)()
    return int(raw)


def _found(body: str | None) -> str:
    if body is None:
        raise _not_found()
    return body


def _not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "No patient with this id")


def _original_url(request: Request) -> str:
    """The URL as the client sent it (json-server rewrites its text for Link headers)."""
    host = request.headers.get("host") or request.url.netloc
    path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    query_string = request.scope["query_string"].decode("latin-1")
    return f"{request.url.scheme}://{host}{path}" + (f"?{query_string}" if query_string else "")


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, within the size limit, or an ApiError saying why not."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json")
    body = await _read_body(request, request.app.state.settings.max_body_bytes)
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError(400, "MALFORMED_JSON", "The body nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise ApiError(400, "MALFORMED_JSON", f"The body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "INVALID_BODY", "The body must be a JSON object")
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "PAYLOAD_TOO_LARGE", f"The body must be at most {limit} bytes")
