"""Thin endpoints: parse the request, validate, call the store, answer."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from databases import Database
from starlette.requests import Request
from starlette.responses import Response

from api import patients, store
from api.responses import ApiError, JSONResponse
from api.settings import Settings

# json-server compares the URL id with String(record.id), so "01" or "1.0" find nothing.
CANONICAL_ID = re.compile(r"[1-9][0-9]{0,18}")
JSON_MEDIA_TYPE = "application/json"


async def list_patients(request: Request) -> Response:
    rows = await store.list_patients(_db(request))
    return JSONResponse([patients.to_wire(row) for row in rows])


async def get_patient(request: Request) -> Response:
    row = await store.fetch_patient(_db(request), _item_id(request))
    if row is None:
        raise _not_found()
    return JSONResponse(patients.to_wire(row))


async def create_patient(request: Request) -> Response:
    body = await _json_object(request)
    try:
        stored = await store.insert_patient(_db(request), patients.to_row(body))
    except store.DuplicatePatient as error:
        raise ApiError(
            409, _duplicate_code(error.field), str(error), {error.field: "is taken"}
        ) from None
    record = patients.to_wire(stored)
    location = request.url_for("patient", id=str(record["id"]))
    return JSONResponse(record, status_code=201, headers={"Location": str(location)})


async def health(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    healthy = await store.ping(_db(request), settings.health_timeout_seconds)
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "database": "connected" if healthy else "disconnected",
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _item_id(request: Request) -> int:
    raw: str = request.path_params["id"]
    if not CANONICAL_ID.fullmatch(raw) or int(raw) > patients.MAX_ID:
        raise _not_found()
    return int(raw)


def _not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "No patient with this id")


def _duplicate_code(field: str) -> str:
    return "DUPLICATE_PATIENT_ID" if field == "patientID" else "DUPLICATE_ID"


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, within the size limit, or an ApiError saying why not."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json")
    body = await _read_body(request, request.app.state.settings.max_body_bytes)
    try:
        value = json.loads(body, parse_constant=_reject_constant)
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
