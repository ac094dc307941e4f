"""PURE: json-server patient records (wire) -> database rows, and the validation of write bodies.

Keys that are not columns travel in `extra`, verbatim. A typed field sent as an explicit `null` is
kept in `extra` as `null`, so a record reads back exactly as it was written: `null` and "missing"
stay different. The way back, row -> wire, is the SQL function patients_json (migration 0002).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping
from typing import Any

# wire key -> column, in the order records are written back out.
COLUMNS = {
    "patientID": "patient_id",
    "name": "name",
    "age": "age",
    "gender": "gender",
    "medicalCondition": "medical_condition",
    "lastVisit": "last_visit",
}
REQUIRED = ("patientID", "name")
MAX_ID = 2**63 - 1
MAX_AGE = 150
MAX_TEXT_LENGTH = 200
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")


class InvalidPatient(ValueError):
    """A record that cannot be stored; `field_errors` maps each wire key to what is wrong."""

    def __init__(self, field_errors: Mapping[str, str]) -> None:
        self.field_errors = dict(field_errors)
        details = "; ".join(f"{key}: {message}" for key, message in self.field_errors.items())
        super().__init__(f"invalid patient: {details}")


@dataclasses.dataclass(frozen=True)
class PatientRow:
    """One row of the `patients` table, as the store writes it."""

    id: int | None
    patient_id: str
    name: str
    age: int | None = None
    gender: str | None = None
    medical_condition: str | None = None
    last_visit: datetime.date | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def to_row(record: Mapping[str, Any]) -> PatientRow:
    """Validate a json-server record and split it into typed columns and `extra`.

    json-server treats a falsy id (`0`, `null`, `false`, `""`) as "assign one", so do we.
    """
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    record_id = _parse_id(record.get("id"), errors)
    for key, value in record.items():
        if key == "id":
            continue
        if key not in COLUMNS:
            extra[key] = value
        elif value is None and key not in REQUIRED:
            extra[key] = None
        else:
            _check_field(key, value, values, errors)
    for key in REQUIRED:
        if key not in record:
            errors.setdefault(key, "is required")
    if errors:
        raise InvalidPatient(errors)
    return PatientRow(id=record_id, extra=extra, **values)


def replacement(body: Mapping[str, Any]) -> PatientRow:
    """PUT: the body is the whole new record; as in json-server, the URL's id wins."""
    return to_row(_without_id(body))


def merge(current: Mapping[str, Any], changes: Mapping[str, Any]) -> PatientRow:
    """PATCH: json-server's shallow merge (a nested object is replaced whole); the id stays."""
    return to_row({**_without_id(current), **_without_id(changes)})


def _without_id(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "id"}


def _parse_id(value: Any, errors: dict[str, str]) -> int | None:
    if value in (None, 0, False, ""):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    errors["id"] = "must be a positive whole number, or left out to be assigned"
    return None


def _check_field(key: str, value: Any, values: dict[str, Any], errors: dict[str, str]) -> None:
    column = COLUMNS[key]
    if key == "age":
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_AGE:
            values[column] = value
        else:
            errors[key] = f"must be a whole number from 0 to {MAX_AGE}"
    elif key == "lastVisit":
        parsed = parse_date(value)
        if parsed is None:
            errors[key] = "must be a date written YYYY-MM-DD"
        else:
            values[column] = parsed
    elif not isinstance(value, str):
        errors[key] = "must be a string"
    elif len(value) > MAX_TEXT_LENGTH:
        errors[key] = f"must be at most {MAX_TEXT_LENGTH} characters"
    elif key in REQUIRED and not value.strip():
        errors[key] = "must not be empty"
    else:
        values[column] = value


def parse_date(value: Any) -> datetime.date | None:
    """A real calendar date written exactly YYYY-MM-DD, else None."""
    if not isinstance(value, str) or not DATE_PATTERN.fullmatch(value):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None
