"""PURE: users on the wire (camelCase, ISO 8601 times) and the body that changes one."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

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


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if value is not None and not isinstance(value, (bool, int, str)):
        return str(value)  # uuid
    return value
