"""JSON responses and the one error body every failure of the API is answered with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette import responses


class JSONResponse(responses.JSONResponse):
    # json-server's media type, charset included; some clients compare the header verbatim.
    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        # An error may echo a client's key holding a lone surrogate: escape it, never crash.
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


class ApiError(Exception):
    """An expected failure of a request, turned into an error body by the app's one mapping."""

    def __init__(
        self,
        status_code: int,
        error_code: str,
        detail: str,
        field_errors: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.headers = dict(headers or {})
        self.status_code = status_code
        self.error_code = error_code
        self.detail = detail
        self.field_errors = dict(field_errors or {})


def error_response(
    error: ApiError, request_id: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """`{"detail": ..., "message": ..., "error_code": ..., "field_errors": {...},
    "request_id": ...}`. `message` is `detail` with each field's problem, for clients that show
    one text (react-admin and refine show `message`)."""
    body: dict[str, Any] = {"detail": error.detail, "message": _message(error)}
    body["error_code"] = error.error_code
    if error.field_errors:
        body["field_errors"] = error.field_errors
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(
        body, status_code=error.status_code, headers={**error.headers, **(headers or {})}
    )


def _message(error: ApiError) -> str:
    """ "The patient record is invalid: age must be ...; name is required"."""
    if not error.field_errors:
        return error.detail
    problems = "; ".join(f"{field} {problem}" for field, problem in error.field_errors.items())
    return f"{error.detail}: {problems}"
