"""A rebuild import applies the file chunk by chunk while reading it; the outcome must be the
one the whole-file classification gives: same rows, ids, order, buckets and reasons."""

from __future__ import annotations

import asyncio
import io
import json
import pathlib
import random
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from seed import importer, reader, store
from tests.conftest import create_database, drop_database
from tests.integration.helpers import query

ROWS = (
    "SELECT id, patient_id, name, age, gender, medical_condition, last_visit, extra,"
    " search_text, wire FROM patients ORDER BY storage_order"
)
REJECTS = (
    "SELECT position, collection, reason, record FROM import_rejects"
    " ORDER BY position NULLS LAST, collection"
)
SEQUENCES = """SELECT
    pg_sequence_last_value(pg_get_serial_sequence('patients', 'id')::regclass) AS id,
    (SELECT max(storage_order) FROM patients)
        <= pg_sequence_last_value(pg_get_serial_sequence('patients', 'storage_order')::regclass)
        AS storage_order_ahead,
    (SELECT sum(delta) FROM patients_counts) = (SELECT count(*) FROM patients) AS counted"""
SCHEMA = """SELECT
    (SELECT array_agg(indexdef ORDER BY indexname) FROM pg_indexes
     WHERE tablename = 'patients') AS indexes,
    (SELECT array_agg(pg_get_constraintdef(oid) ORDER BY conname) FROM pg_constraint
     WHERE conrelid = 'patients'::regclass) AS constraints,
    (SELECT array_agg(tgname::text ORDER BY tgname) FROM pg_trigger
     WHERE tgrelid = 'patients'::regclass AND tgenabled = 'O') AS triggers"""


def messy(count: int, seed: int, collide: bool = True) -> dict[str, Any]:
    """Records whose ids and patientIDs collide often (unless not `collide`), across any chunk
    boundary, with rows without ids, string ids, invalid values and entries that are not
    objects among them."""
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    ids = iter(rng.sample(range(1, count * 2), count))
    patient_ids = iter(rng.sample(range(count * 2), count))
    patients: list[Any] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.03:
            patients.append(rng.choice(["p003", 7, None, [1, 2]]))
            continue
        record: dict[str, Any] = {
            "patientID": f"Q{rng.randrange(count * 3 // 4) if collide else next(patient_ids)}",
            "name": rng.choice(["Zoë Ång", "Ada", "李雷", "O'Brien"]) + f" {rng.randrange(99)}",
            "age": rng.choice([rng.randrange(120), None, "x" if roll < 0.06 else 30]),
        }
        if roll > 0.2:
            record["id"] = rng.randrange(1, count // 2) if collide else next(ids)
        elif roll > 0.18:
            record["id"] = f"s{rng.randrange(5)}"
        if roll > 0.9:
            record["insurance"] = {"provider": rng.choice(["Aetna", "Cigna"]), "n": [roll]}
        patients.append(record)
    return {"patients": patients, "posts": [{"id": 1}]}


@pytest.fixture
def second_database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    name = f"registry_test_{uuid.uuid4().hex[:12]}"
    yield create_database(pg_server_url, name, template=template_database)
    drop_database(pg_server_url, name)


def run_import(url: str, path: pathlib.Path, report: pathlib.Path) -> importer.Summary:
    options = importer.Options(path=path, database_url=url, report=report)
    return asyncio.run(importer.run(options, lambda _: None, io.StringIO()))


def outcome(url: str, report: pathlib.Path) -> dict[str, Any]:
    document = json.loads(report.read_text(encoding="utf-8"))
    del document["source"]
    return {
        "rows": query(url, ROWS),
        "rejects": query(url, REJECTS),
        "sequences": query(url, SEQUENCES),
        "schema": query(url, SCHEMA),
        "report": document,
    }


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Chunks of 40 rows, a rebuild from 50 valid rows. Returns what the rebuild did: the
    applied chunks' first positions, and one entry per whole-file sort."""
    monkeypatch.setattr(store, "REBUILD_MIN_ROWS", 50)
    monkeypatch.setattr(store, "CHUNK_ROWS", 40)
    monkeypatch.setattr(importer, "YIELD_EVERY", 10)
    seen: dict[str, list[int]] = {"applied": [], "sorted": []}
    apply_chunk = store.Import.apply_chunk
    sort_whole_file = store.Import._sort_whole_file

    async def applying(self: store.Import, first_position: int) -> None:
        seen["applied"].append(first_position)
        await apply_chunk(self, first_position)

    async def sorting(self: store.Import) -> int:
        deleted = await sort_whole_file(self)
        seen["sorted"].append(deleted)
        return deleted

    monkeypatch.setattr(store.Import, "apply_chunk", applying)
    monkeypatch.setattr(store.Import, "_sort_whole_file", sorting)
    return seen


@pytest.mark.parametrize(("seed", "collide"), [(1, True), (2, True), (3, True), (4, False)])
def test_a_chunked_rebuild_ends_as_the_whole_file_classification_does(
    *,
    migrated_database_url: str,
    second_database_url: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    small_chunks: dict[str, list[int]],
    seed: int,
    collide: bool,
) -> None:
    path = tmp_path / "db.json"
    document = messy(400, seed, collide)
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    schema = query(migrated_database_url, SCHEMA)

    chunked = run_import(migrated_database_url, path, tmp_path / "chunked.json")
    applied = small_chunks["applied"]
    assert len(applied) >= 5, applied  # several chunks, each after the previous
    assert applied == sorted(applied)
    # Sorted whole, with inserted rows deleted again, only when something collided.
    assert bool(small_chunks["sorted"]) == collide
    assert all(deleted > 0 for deleted in small_chunks["sorted"])
    monkeypatch.setattr(store, "REBUILD_MIN_ROWS", 10**9)  # the whole file, then classified
    whole = run_import(second_database_url, path, tmp_path / "whole.json")

    expected = outcome(second_database_url, tmp_path / "whole.json")
    assert outcome(migrated_database_url, tmp_path / "chunked.json") == expected
    assert chunked.counts == whole.counts
    counts = chunked.counts
    assert counts["inserted"] > 100, counts
    assert counts["rejected"] > (100 if collide else 5), counts
    given = max(
        r["id"] for r in document["patients"] if type(r) is dict and type(r.get("id")) is int
    )
    assert sum(1 for row in expected["rows"] if row["id"] > given) > 20  # ids were assigned
    assert expected["sequences"] == [
        {"id": expected["sequences"][0]["id"], "storage_order_ahead": True, "counted": True}
    ]
    assert query(migrated_database_url, SCHEMA) == schema


def test_a_file_that_breaks_after_chunks_were_applied_changes_nothing(
    migrated_database_url: str, tmp_path: pathlib.Path, small_chunks: dict[str, list[int]]
) -> None:
    text = json.dumps(messy(400, 4), ensure_ascii=False)
    path = tmp_path / "db.json"
    path.write_text(text[: len(text) * 3 // 4], encoding="utf-8")  # truncated
    before = {statement: query(migrated_database_url, statement) for statement in (ROWS, SCHEMA)}

    with pytest.raises(reader.DbJsonError, match="not valid JSON"):
        run_import(migrated_database_url, path, tmp_path / "report.json")

    assert len(small_chunks["applied"]) >= 3
    assert {statement: query(migrated_database_url, statement) for statement in before} == before
    with psycopg.connect(migrated_database_url) as connection:  # the id sequence is untouched
        assert connection.execute("SELECT nextval('patients_id_seq')").fetchone() == (1,)
