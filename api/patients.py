"""PURE: json-server patient records (wire) -> database rows, and the validation of write bodies.

Keys that are not columns travel in `extra`, verbatim. A typed field sent as an explicit `null` is
kept in `extra` as `null`, so a record reads back exactly as it was written: `null` and "missing"
stay different. The way back, row -> wire, is the SQL function patients_json (migration 0002).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections.abc import Callable, Mapping
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
# The largest id a browser holds exactly (JavaScript's Number.MAX_SAFE_INTEGER): ids are read
# up to it. A client may pick an id up to half of it, so that the id sequence, which moves past
# the highest id, still has 2**52 ids to hand out below it after any single write.
MAX_ID = 2**53 - 1
MAX_CHOSEN_ID = 2**52
MAX_AGE = 150
MAX_TEXT_LENGTH = 200
MAX_PATIENT_ID_LENGTH = 64
MAX_NESTING = 32
GENDERS = ("Female", "Male", "Non-binary", "Other", "Prefer not to say", "Unknown", "")
EARLIEST_VISIT = datetime.date(1900, 1, 1)
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
# C0 and C1 controls (NUL included: PostgreSQL cannot store it) and lone UTF-16 surrogates
# (not encodable as UTF-8). Tabs and newlines are allowed only in free text, not in typed fields.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "must not contain NUL characters or unpaired surrogates"
# Every character either pattern matches is a control or a surrogate, which str.isprintable()
# rejects, so a printable string (nearly every value) skips the searches: isprintable is a
# C loop, ~5x cheaper than a regular expression search on a short string.
NOT_FINITE_MESSAGE = "must be a finite number"
SCALARS = frozenset((str, int, float, bool, type(None)))
CONTAINERS = frozenset((dict, list))


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


def to_row(record: Mapping[str, Any], today: datetime.date | None = None) -> PatientRow:
    """Validate a json-server record and split it into typed columns and `extra`.

    Every problem is reported at once. json-server treats a falsy id (`0`, `null`, `false`, `""`)
    as "assign one", so do we. `today` bounds lastVisit (default: the current UTC date).
    """
    return PatientRow(*to_fields(record, today))


def to_fields(record: Mapping[str, Any], today: datetime.date | None = None) -> tuple[Any, ...]:
    """`to_row`'s fields as a plain tuple, in PatientRow's order, for the importer's hot loop.

    {"id": 1, "patientID": "P1", "name": "Ada", "x": 2} -> (1, "P1", "Ada", None, None, None,
    None, {"x": 2}). Building the frozen dataclass costs ~4 us, a fifth of a record's validation.
    """
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    record_id = _parse_id(record.get("id"), errors)
    for key, value in record.items():
        if key == "id":
            continue
        problem = _storable(key, value)
        check = CHECKS.get(key)
        if problem:
            errors[key] = problem
        elif check is None:
            extra[key] = value
        elif value is None and key not in REQUIRED:
            extra[key] = None
        else:
            checked = check(value, today)
            if type(checked) is Problem:
                errors[key] = checked.message
            else:
                values[key] = checked
    for key in REQUIRED:
        if key not in record:
            errors.setdefault(key, "is required")
    if errors:
        raise InvalidPatient(errors)
    get = values.get
    return (
        record_id,
        values["patientID"],
        values["name"],
        get("age"),
        get("gender"),
        get("medicalCondition"),
        get("lastVisit"),
        extra,
    )


def replacement(body: Mapping[str, Any]) -> PatientRow:
    """PUT: the body is the whole new record; as in json-server, the URL's id wins."""
    return to_row(_without_id(body))


def merge(current: Mapping[str, Any], changes: Mapping[str, Any]) -> PatientRow:
    """PATCH: json-server's shallow merge (a nested object is replaced whole); the id stays."""
    return to_row({**_without_id(current), **_without_id(changes)})


def parse_date(value: Any) -> datetime.date | None:
    """A real calendar date written exactly YYYY-MM-DD, else None."""
    if not isinstance(value, str) or not DATE_PATTERN.fullmatch(value):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Problem:
    message: str


def _check_age(value: Any, today: datetime.date | None) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_AGE:
        return value
    rule = f"must be a whole number from 0 to {MAX_AGE}"
    if isinstance(value, str):
        return Problem(f'{rule}, not text: write 45, not "45"')
    return Problem(rule)


def _check_visit(value: Any, today: datetime.date | None) -> Any:
    day = parse_date(value)
    if day is None:
        if isinstance(value, str) and DATE_PATTERN.fullmatch(value):
            return Problem(f"{value} is not a date of the calendar")
        return Problem("must be a date written YYYY-MM-DD")
    if today is not None and EARLIEST_VISIT <= day <= today:
        return day  # the common case, without date arithmetic
    latest = (today or datetime.datetime.now(datetime.UTC).date()) + datetime.timedelta(1)
    if not EARLIEST_VISIT <= day <= latest:
        # Tomorrow is accepted: a clinic ahead of UTC records today's visits on UTC's tomorrow.
        return Problem(f"must be between {EARLIEST_VISIT} and {latest} (tomorrow, UTC)")
    return day


def _text_check(key: str) -> Callable[[Any, datetime.date | None], Any]:
    """The check of a text field: its value, or the Problem with it."""
    limit = MAX_PATIENT_ID_LENGTH if key == "patientID" else MAX_TEXT_LENGTH
    required = key in REQUIRED
    strict_ends = key == "patientID"
    choices = GENDERS if key == "gender" else None

    def check(value: Any, today: datetime.date | None) -> Any:
        if not isinstance(value, str):
            return Problem("must be a string")
        if len(value) > limit:
            return Problem(f"must be at most {limit} characters")
        if not value.isprintable() and CONTROL.search(value):
            return Problem("must not contain control characters")
        if value and not value.strip():
            return Problem("must not be only whitespace")
        if required and not value:
            return Problem("must not be empty")
        if strict_ends and value != value.strip():
            return Problem("must not start or end with whitespace")
        if choices is not None and value not in choices:
            return Problem("must be one of " + ", ".join(repr(gender) for gender in choices))
        return value

    return check


# wire key -> the check of its typed column (the same keys as COLUMNS).
CHECKS: dict[str, Callable[[Any, datetime.date | None], Any]] = {
    "patientID": _text_check("patientID"),
    "name": _text_check("name"),
    "age": _check_age,
    "gender": _text_check("gender"),
    "medicalCondition": _text_check("medicalCondition"),
    "lastVisit": _check_visit,
}


def _storable(key: Any, value: Any) -> str | None:
    """Why PostgreSQL could not store this JSON value faithfully, if it could not."""
    # The common case, a str key and a scalar value, without the walk (same answer, same order:
    # the value is looked at before the key).
    kind = type(value)
    if type(key) is not str or kind in CONTAINERS or kind not in SCALARS:
        return _storable_tree(key, value)
    if kind is str and not value.isprintable() and UNSTORABLE.search(value):
        return UNSTORABLE_MESSAGE
    if kind is float and not math.isfinite(value):
        return NOT_FINITE_MESSAGE
    if key not in COLUMNS and not key.isprintable() and UNSTORABLE.search(key):
        return UNSTORABLE_MESSAGE
    return None


def _storable_tree(key: Any, value: Any) -> str | None:
    stack: list[tuple[Any, int]] = [(key, 0), (value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            return f"must not nest deeper than {MAX_NESTING} levels"
        if isinstance(item, str) and UNSTORABLE.search(item):
            return UNSTORABLE_MESSAGE
        if isinstance(item, float) and not math.isfinite(item):
            return NOT_FINITE_MESSAGE
        if isinstance(item, dict):
            stack.extend((part, depth + 1) for pair in item.items() for part in pair)
        elif isinstance(item, list):
            stack.extend((element, depth + 1) for element in item)
    return None


def _without_id(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "id"}


def _parse_id(value: Any, errors: dict[str, str]) -> int | None:
    if value in (None, 0, False, ""):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_CHOSEN_ID:
        return value
    errors["id"] = (
        f"must be a positive whole number up to {MAX_CHOSEN_ID:,}, or left out to be assigned"
    )
    return None
