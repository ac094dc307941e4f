"""JSON responses and the one error body every failure of the API is answered with."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from starlette import responses
from starlette.types import Receive, Scope, Send


class JSONResponse(responses.JSONResponse):
    # json-server's media type, charset included; some clients compare the header verbatim.
    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        # An error may echo a client's key holding a lone surrogate: escape it, never crash.
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")


class PartsResponse(responses.Response):
    """A body sent in the parts it was made in, never joined: each part is handed over only
    once the client took the ones before (the server's flow control), so a slow client holds
    at most a part of a long list in its buffer, and the parts are shared by every reader."""

    def __init__(
        self,
        parts: Sequence[bytes],
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.parts = parts
        length = {"content-length": str(sum(len(part) for part in parts))}
        super().__init__(None, headers={**(headers or {}), **length}, media_type=media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = self.raw_headers
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        for part in self.parts[:-1]:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": self.parts[-1] if self.parts else b""})


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
