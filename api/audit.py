"""PURE: the audit trail on the wire, and the filters of GET /audit."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Mapping
from typing import Any

from api import paging

ACTIONS = ("create", "replace", "update", "delete", "import")
# GET /audit's parameters -> the column each filters (a fixed whitelist: names never reach SQL).
FILTERS = {
    "patientId": "patient_id",
    "userId": "user_id",
    "action": "action",
    "since": "since",
    "until": "until",
}
PAGING = ("_page", "_limit")
MAX_ID = 2**63 - 1


class InvalidAuditQuery(ValueError):
    """A GET /audit parameter that is unknown or cannot be used."""


@dataclasses.dataclass(frozen=True)
class AuditQuery:
    filters: tuple[tuple[str, Any], ...]  # (column, value), e.g. ("patient_id", 7)
    page: paging.Page


def parse(params: Mapping[str, list[str]]) -> AuditQuery:
    """`patientId=7&action=update&since=2026-12-01&_page=2` -> filters and a page.

    `since` is inclusive and `until` exclusive: a date or an ISO 8601 time (UTC unless it says).
    """
    unknown = sorted(set(params) - set(FILTERS) - set(PAGING))
    if unknown:
        raise InvalidAuditQuery(f"Unknown parameter {unknown[0]!r}; use {', '.join(FILTERS)}")
    filters = tuple(
        (column, _value(name, params[name][-1]))
        for name, column in FILTERS.items()
        if name in params
    )
    return AuditQuery(filters, paging.page(params))


def to_wire(row: Mapping[str, Any]) -> dict[str, Any]:
    """An audit_events row (jsonb as text) as GET /audit shows it, with the changed fields."""
    before = _json(row["before"])
    after = _json(row["after"])
    event: dict[str, Any] = {
        "id": row["id"],
        "occurredAt": row["occurred_at"].isoformat(),
        "action": row["action"],
        "patientId": row["patient_id"],
        "user": None
        if row["user_id"] is None
        else {"id": row["user_id"], "displayName": row["display_name"]},
        "requestId": row["request_id"],
        "changes": changes(before, after),
        "before": before,
        "after": after,
    }
    if row["import_run_id"] is not None:
        event["importRun"] = {"id": row["import_run_id"], **(_json(row["details"]) or {})}
    return event


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """Each field whose value differs: {"age": {"before": 45, "after": 46}}; a field that is
    absent on one side shows null there."""
    old, new = before or {}, after or {}
    return {
        key: {"before": old.get(key), "after": new.get(key)}
        for key in [*old, *(key for key in new if key not in old)]
        if key not in old or key not in new or old[key] != new[key] or _kind(old[key], new[key])
    }


def _kind(left: Any, right: Any) -> bool:
    """True when two equal Python values differ in JSON (1 and true, 1 and 1.0)."""
    return type(left) is not type(right)


def _value(name: str, raw: str) -> Any:
    if name in ("patientId", "userId"):
        if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 1 <= int(raw) <= MAX_ID:
            raise InvalidAuditQuery(f"{name} must be a positive whole number")
        return int(raw)
    if name == "action":
        if raw not in ACTIONS:
            raise InvalidAuditQuery(f"action must be one of {', '.join(ACTIONS)}")
        return raw
    return _moment(name, raw)


def _moment(name: str, raw: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidAuditQuery(
            f"{name} must be a date or an ISO 8601 time, e.g. 2026-12-01T09:30:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)
