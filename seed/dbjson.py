"""Reads a json-server db.json and validates its patients with the API's own rules."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

from api import patients


class DbJsonError(ValueError):
    """The file cannot be imported as a whole; nothing is written."""


@dataclasses.dataclass(frozen=True)
class DbJson:
    patients: list[patients.PatientRow]
    ignored: dict[str, int]


def load(path: str | pathlib.Path) -> DbJson:
    return parse(_read(pathlib.Path(path)))


def parse(document: Any) -> DbJson:
    if not isinstance(document, dict):
        raise DbJsonError('the top level of a db.json must be an object like {"patients": [...]}')
    records = document.get("patients")
    if not isinstance(records, list):
        raise DbJsonError('the file has no "patients" array')
    rows: list[patients.PatientRow] = []
    problems: list[str] = []
    for position, record in enumerate(records):
        try:
            if not isinstance(record, dict):
                raise patients.InvalidPatient({"record": "must be a JSON object"})
            rows.append(patients.to_row(record))
        except patients.InvalidPatient as error:
            problems.append(f"patients[{position}]: {error}")
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DbJsonError(f"{len(problems)} invalid record(s), nothing imported: {shown}{more}")
    ignored = {key: _size(value) for key, value in document.items() if key != "patients"}
    return DbJson(patients=rows, ignored=ignored)


def _read(path: pathlib.Path) -> Any:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise DbJsonError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise DbJsonError(f"{path} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DbJsonError(f"{path} is not valid JSON: {error}") from None


def _size(value: Any) -> int:
    return len(value) if isinstance(value, list | dict) else 1
