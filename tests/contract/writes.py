"""Seeded random write sequences over the fixture: valid bodies only, with reads in between.

Each sequence is decided up front from a model of the ids and patientIDs it leaves behind, so
every request means the same to both servers and stays clear of the deliberate differences
(differences.py):
- bodies carry a patientID and a name, patientIDs stay unique, and an explicit id is an unused
  positive whole number (INVALID_WRITES, BODY_IDS);
- the record with the highest id is never deleted, so an assigned id is the same on both
  (IDS_NEVER_REUSED);
- a field only ever gets values of the types the fixture already has for it, drawn from the
  fixture (SORT_MIXED_TYPES, NUMBER_TEXT), or is one of NEW_FIELDS, which only writes add.
Between writes: the record written, seeded random queries (queries.QueryMaker) and queries on
NEW_FIELDS; each sequence ends with the whole list.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from tests.contract import compare, queries
from tests.contract.compare import Call

DEFAULT_SEQUENCES = 12
WRITES_PER_SEQUENCE = (8, 16)
MISSING_ID = 9999
CORE_FIELDS = ("age", "gender", "medicalCondition", "lastVisit")
NEW_FIELDS: dict[str, tuple[Any, ...]] = {
    "ward": ("A", "B", "Süd 2", "北 3", ""),
    "tags": (["new"], ["follow-up", "ÄRZTIN"], []),
    "contact": ({"phone": "555-0199", "kind": "mobile"}, {"phone": "+44 20 7946 0000"}),
}
NEW_FIELD_QUERIES = (
    "ward=B",
    "ward=S%C3%BCd%202",
    "ward_ne=A",
    "ward_like=%5Es",
    "_sort=ward,id&_order=desc,asc",
    "_sort=ward&_limit=5",
    "tags.0=new",
    "tags_like=%C3%A4rz",
    "contact.phone_like=%5E555",
    "contact.kind=mobile",
    "q=s%C3%BCd",
    "q=mobile",
)
FIRST_NAMES = ("Åsa", "Zoë", "Łukasz", "Nadia", "Ömer", "Chloé", "Sam", "Ana María")
LAST_NAMES = ("O'Brien", "van der Berg", "Nguyễn", "Smith", "Kowalska", "Müller", "Dupont")
FALSY_IDS = (0, None, False, "")


@dataclasses.dataclass
class Model:
    """What both servers hold after the writes so far: id -> patientID."""

    patient_ids: dict[int, str]

    def highest(self) -> int:
        return max(self.patient_ids)

    def unused_id(self, generator: random.Random) -> int:
        """An id nobody has: in a gap below the highest, or above it."""
        gaps = [i for i in range(1, self.highest()) if i not in self.patient_ids]
        if gaps and generator.random() < 0.5:
            return generator.choice(gaps)
        return self.highest() + generator.randint(1, 20)


class SequenceMaker:
    """Builds one write sequence at a time from a seeded random.Random."""

    def __init__(self, seed: int, records: list[dict[str, Any]]) -> None:
        self.random = random.Random(seed)  # noqa: S311 - test data, reproducible on purpose
        self.reads = queries.QueryMaker(seed, records)
        self.records = records
        self.values = self.reads.values  # every path's fixture values, top-level keys among them
        keys = {key for record in records for key in record}
        self.extras = sorted(keys - {"id", "patientID", "name", *CORE_FIELDS})
        self.fresh = 0

    def sequence(self, number: int) -> list[Call]:
        model = Model({record["id"]: record["patientID"] for record in self.records})
        calls: list[Call] = []
        for _ in range(self.random.randint(*WRITES_PER_SEQUENCE)):
            write, target = self.write(model, number)
            calls.append(write)
            if target is not None and self.random.random() < 0.6:
                calls.append(compare.get(f"/patients/{target}"))
            if self.random.random() < 0.6:
                calls.append(compare.get(f"/patients?{self.reads.query()}"))
            if self.random.random() < 0.3:
                calls.append(compare.get(f"/patients?{self.random.choice(NEW_FIELD_QUERIES)}"))
        calls.append(compare.get("/patients"))
        return calls

    def write(self, model: Model, number: int) -> tuple[Call, int | None]:
        """One write and the id it touched (None when it touched nothing)."""
        kind = self.random.choice(("post",) * 3 + ("put",) * 2 + ("patch",) * 4 + ("delete",) * 2)
        if self.random.random() < 0.08:  # a missing target: 404 on both, nothing changes
            return self.missing(model, kind), None
        if kind == "post":
            return self.post(model, number)
        highest = model.highest()
        # Never the highest id for DELETE: json-server would hand it out again (IDS_NEVER_REUSED).
        target = self.random.choice(
            [i for i in sorted(model.patient_ids) if kind != "delete" or i != highest]
        )
        if kind == "delete":
            del model.patient_ids[target]
            return Call("DELETE", f"/patients/{target}"), target
        if kind == "put":
            body = self.record(self.keep_or_fresh(model, target, number))
            if self.random.random() < 0.15:  # the URL's id wins over the body's
                body = {"id": self.random.choice((target, model.unused_id(self.random))), **body}
            model.patient_ids[target] = body["patientID"]
            return compare.send_json("PUT", f"/patients/{target}", body), target
        changes = self.changes(model, target, number)
        return compare.send_json("PATCH", f"/patients/{target}", changes), target

    def post(self, model: Model, number: int) -> tuple[Call, int]:
        body = self.record(self.fresh_patient_id(number))
        draw = self.random.random()
        if draw < 0.2:
            new_id = model.unused_id(self.random)
            body = {"id": new_id, **body}
        else:
            new_id = model.highest() + 1
            if draw < 0.28:
                body = {"id": self.random.choice(FALSY_IDS), **body}
        model.patient_ids[new_id] = body["patientID"]
        return compare.send_json("POST", "/patients", body), new_id

    def missing(self, model: Model, kind: str) -> Call:
        target = self.random.choice((MISSING_ID, model.highest() + 100))
        if kind in ("post", "put"):
            return compare.send_json("PUT", f"/patients/{target}", self.record("M-1"))
        if kind == "patch":
            return compare.send_json("PATCH", f"/patients/{target}", {"age": 30})
        return Call("DELETE", f"/patients/{target}")

    def record(self, patient_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"patientID": patient_id, "name": self.name()}
        for field in CORE_FIELDS:
            if self.random.random() < 0.8:
                body[field] = self.random.choice(self.values[field])
        for field in self.random.sample(self.extras, self.random.choice((0, 0, 1, 2))):
            body[field] = self.random.choice(self.values[field])
        for field in self.random.sample(sorted(NEW_FIELDS), self.random.choice((0, 0, 1, 2))):
            body[field] = self.random.choice(NEW_FIELDS[field])
        return body

    def changes(self, model: Model, target: int, number: int) -> dict[str, Any]:
        fields = [*CORE_FIELDS, *self.extras, *NEW_FIELDS]
        changes: dict[str, Any] = {}
        for field in self.random.sample(fields, self.random.choice((0, 1, 1, 2, 3))):
            pool = NEW_FIELDS.get(field) or self.values[field]
            changes[field] = self.random.choice(pool)
        if self.random.random() < 0.15:
            changes["name"] = self.name()
        if self.random.random() < 0.1:
            changes["patientID"] = model.patient_ids[target] = self.fresh_patient_id(number)
        if self.random.random() < 0.05:  # ignored by both: the URL names the record
            changes["id"] = model.unused_id(self.random)
        return changes

    def keep_or_fresh(self, model: Model, target: int, number: int) -> str:
        if self.random.random() < 0.5:
            return model.patient_ids[target]
        return self.fresh_patient_id(number)

    def fresh_patient_id(self, number: int) -> str:
        self.fresh += 1
        return f"W{number:02d}-{self.fresh:03d}"

    def name(self) -> str:
        if self.random.random() < 0.3:
            return str(self.random.choice(self.values["name"]))
        return f"{self.random.choice(FIRST_NAMES)} {self.random.choice(LAST_NAMES)}"


def random_sequences(seed: int, count: int = DEFAULT_SEQUENCES) -> list[list[Call]]:
    maker = SequenceMaker(seed, queries.load_fixture())
    return [maker.sequence(number) for number in range(count)]
