"""PURE: users on the wire (camelCase, ISO 8601 times) and the bodies and pages that change or
list them."""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import Mapping
from typing import Any

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
WIRE_KEYS = {
    "id": "id",
    "tenant_id": "tenantId",
    "object_id": "objectId",
    "email": "email",
    "display_name": "displayName",
    "is_admin": "isAdmin",
    "has_admin_role": "hasAdminRole",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
    "last_seen_at": "lastSeenAt",
}


class InvalidUserChange(ValueError):
    """A PATCH /users/{id} body that cannot be applied; `field_errors` says why, per key."""

    def __init__(self, field_errors: Mapping[str, str]) -> None:
        super().__init__("The user change is invalid")
        self.field_errors = dict(field_errors)


class InvalidPage(ValueError):
    """`_page` or `_limit` is not a usable number."""


def to_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """A users row as the API shows it: {"id": 1, "tenantId": "...", "isAdmin": false, ...}."""
    return {wire: _plain(row[column]) for column, wire in WIRE_KEYS.items()}


def admin_change(body: Mapping[str, Any]) -> bool:
    """The new `isAdmin` of a PATCH body, the only field a PATCH may change."""
    errors = {key: "cannot be changed here" for key in body if key != "isAdmin"}
    value = body.get("isAdmin")
    if not isinstance(value, bool):
        errors["isAdmin"] = "must be true or false"
    if errors:
        raise InvalidUserChange(errors)
    assert isinstance(value, bool)
    return value


def page(query_string: str) -> tuple[int, int]:
    """`_page` (from 1) and `_limit` (1-500, default 50) -> (offset, limit)."""
    params = urllib.parse.parse_qs(query_string)
    number = _positive(params, "_page", 1, None)
    limit = _positive(params, "_limit", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return (number - 1) * limit, limit


def _positive(params: Mapping[str, list[str]], name: str, default: int, most: int | None) -> int:
    values = params.get(name)
    if not values:
        return default
    raw = values[-1]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise InvalidPage(f"{name} must be a whole number from 1")
    return min(int(raw), most) if most is not None else int(raw)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if value is not None and not isinstance(value, (bool, int, str)):
        return str(value)  # uuid
    return value
