"""The lossless import: every record in exactly one bucket, verbatim rejects, all or nothing."""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg

from seed import store
from tests.integration.helpers import (
    REPO,
    SAMPLE,
    SAMPLE_DB_JSON,
    blocks_kept_and_counted,
    query,
    run_module,
)

VALID = {"patientID": "M001", "name": "Valid One", "age": 40, "gender": "Female"}
IMPORTED = ["M001", "p003", "M006", "M008"]
WAITING_IMPORT = (
    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    " AND query = 'LOCK TABLE patients IN SHARE ROW EXCLUSIVE MODE'"
)
WAITING_REBUILD = (
    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    " AND query = 'LOCK TABLE patients IN ACCESS EXCLUSIVE MODE'"
)
INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'patients' ORDER BY 1"
CONSTRAINTS = (
    "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint"
    " WHERE conrelid = 'patients'::regclass ORDER BY 1"
)
MESSY: dict[str, Any] = {
    "posts": [{"id": 1, "title": "not a patient"}],
    "patients": [
        {"id": 1, **VALID},
        {"id": 2, "patientID": "M002", "name": "Two", "age": "45"},
        "p003",
        {"id": 3, "patientID": "p003", "name": "runpod-worker-comfy", "age": 0, "gender": ""},
        {"id": 1, "patientID": "M004", "name": "Duplicate id"},
        {"id": 5, "patientID": "M001", "name": "Duplicate patientID"},
        {"patientID": "M006", "name": "No id", "insurance": {"provider": "Aetna"}},
        {"id": "abc", "patientID": "M007", "name": "String id"},
        {"id": 8, "patientID": "M008", "name": "Nulls", "age": None, "lastVisit": None},
        [1, 2],
    ],
    "profile": {"name": "clinic"},
}


def write(tmp_path: pathlib.Path, document: Any, name: str = "db.json") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def stored(url: str) -> list[dict[str, Any]]:
    return query(url, "SELECT id, patient_id, name, extra FROM patients ORDER BY storage_order")


def report_of(url: str, path: pathlib.Path, tmp_path: pathlib.Path, *args: str) -> Any:
    report = tmp_path / "report.json"
    result = run_module(
        "seed", "import", str(path), "--report", str(report), *args, database_url=url
    )
    assert result.returncode == 0, result.stderr
    return json.loads(report.read_text(encoding="utf-8"))


def test_every_record_of_a_messy_file_lands_in_exactly_one_bucket(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    report = report_of(migrated_database_url, write(tmp_path, MESSY), tmp_path)

    counts = report["counts"]
    assert sum(counts.values()) == report["read"] == len(MESSY["patients"])
    assert counts == {"inserted": 4, "updated": 0, "unchanged": 0, "rejected": 6}
    rejected = {line["position"]: line["reason"] for line in report["records"]}
    assert set(rejected) == {1, 2, 4, 5, 7, 9}
    assert "age" in rejected[1]
    assert rejected[2] == rejected[9] == "not a JSON object"
    assert "appears earlier in the file, at position 0" in rejected[4]
    assert "patientID M001 appears earlier" in rejected[5]
    assert "id: must be a positive whole number" in rejected[7]
    assert report["other_collections"] == {"posts": 1, "profile": 1}
    assert [row["patient_id"] for row in stored(migrated_database_url)] == IMPORTED


def test_a_number_python_cannot_hold_rejects_only_its_record_and_keeps_it_verbatim(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    huge = "7" * (sys.get_int_max_str_digits() + 1)
    record = '{"id": 2, "patientID": "M002", "name": "Huge", "age": ' + huge + "}"
    path = tmp_path / "db.json"
    path.write_text(
        '{"patients": [' + json.dumps({"id": 1, **VALID}) + ", " + record + "]}", "utf-8"
    )

    report = report_of(migrated_database_url, path, tmp_path)

    assert report["counts"] == {"inserted": 1, "updated": 0, "unchanged": 0, "rejected": 1}
    [line] = report["records"]
    assert (line["position"], line["id"], line["bucket"]) == (1, 2, "rejected")
    assert "digits" in line["reason"]
    kept = query(migrated_database_url, "SELECT record FROM import_rejects")
    assert [row["record"] for row in kept] == [record]
    assert [row["patient_id"] for row in stored(migrated_database_url)] == ["M001"]


def test_rejects_and_other_collections_are_kept_verbatim(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    run_module("seed", "import", str(write(tmp_path, MESSY)), database_url=migrated_database_url)
    kept = query(
        migrated_database_url,
        "SELECT position, collection, reason, record FROM import_rejects ORDER BY position",
    )

    by_position = {
        row["position"]: json.loads(row["record"]) for row in kept if row["position"] is not None
    }
    for position, record in by_position.items():
        assert record == MESSY["patients"][position]
    collections = {
        row["collection"]: json.loads(row["record"]) for row in kept if row["position"] is None
    }
    assert collections == {"posts": MESSY["posts"], "profile": MESSY["profile"]}


def test_a_second_import_changes_nothing(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    path = write(tmp_path, MESSY)
    run_module("seed", "import", str(path), database_url=migrated_database_url)
    before = stored(migrated_database_url)
    report = report_of(migrated_database_url, path, tmp_path)

    assert report["counts"]["inserted"] == 0
    assert report["counts"]["unchanged"] == len(before)
    assert stored(migrated_database_url) == before


def test_a_dry_run_reports_everything_and_writes_nothing(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    report = report_of(migrated_database_url, write(tmp_path, MESSY), tmp_path, "--dry-run")

    assert report["dry_run"] is True
    assert report["counts"]["inserted"] == len(IMPORTED)
    assert stored(migrated_database_url) == []
    assert query(migrated_database_url, "SELECT count(*) AS n FROM import_runs")[0]["n"] == 0
    assert query(migrated_database_url, "SELECT count(*) AS n FROM import_rejects")[0]["n"] == 0


def test_changed_records_are_rejected_in_insert_mode_and_updated_in_upsert_mode(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    run_module("seed", "import", str(SAMPLE_DB_JSON), database_url=migrated_database_url)
    changed = [{**SAMPLE[0], "age": 99}, *SAMPLE[1:]]
    path = write(tmp_path, {"patients": changed}, "changed.json")

    insert = report_of(migrated_database_url, path, tmp_path)
    upsert = report_of(migrated_database_url, path, tmp_path, "--mode", "upsert")

    assert insert["counts"]["rejected"] == 1
    assert "--mode upsert" in insert["records"][0]["reason"]
    assert upsert["counts"] == {
        "inserted": 0,
        "updated": 1,
        "unchanged": len(SAMPLE) - 1,
        "rejected": 0,
    }
    assert upsert["records"] == [
        {
            "position": 0,
            "id": SAMPLE[0]["id"],
            "patientID": SAMPLE[0]["patientID"],
            "bucket": "updated",
            "reason": None,
        }
    ]
    assert query(
        migrated_database_url, "SELECT age FROM patients WHERE id = %s", (SAMPLE[0]["id"],)
    ) == [{"age": 99}]


def test_strict_mode_exits_3_when_anything_was_rejected(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    result = run_module(
        "seed",
        "import",
        str(write(tmp_path, MESSY)),
        "--strict",
        database_url=migrated_database_url,
    )
    assert result.returncode == 3


def test_concurrent_imports_do_not_duplicate(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    path = write(
        tmp_path, {"patients": [{k: v for k, v in r.items() if k != "id"} for r in SAMPLE]}
    )
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        results = list(
            pool.map(
                lambda _: run_module("seed", str(path), database_url=migrated_database_url),
                range(3),
            )
        )

    assert [result.returncode for result in results] == [0, 0, 0]
    assert len(stored(migrated_database_url)) == len(SAMPLE)


def test_a_killed_import_leaves_nothing_and_a_rerun_completes(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    path = write(tmp_path, {"patients": SAMPLE}, "sample.json")
    with psycopg.connect(migrated_database_url) as blocker:
        # Conflicts with the import's table lock: the import stages everything, then waits.
        blocker.execute("LOCK TABLE patients IN ROW EXCLUSIVE MODE")
        process = subprocess.Popen(
            [sys.executable, "-m", "seed", str(path)],
            cwd=REPO,
            env={**os.environ, "DATABASE_URL": migrated_database_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not query(migrated_database_url, WAITING_IMPORT):
            assert time.monotonic() < deadline, "the import never reached its table lock"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait()
        blocker.rollback()

    assert stored(migrated_database_url) == []
    rerun = run_module("seed", str(path), database_url=migrated_database_url)
    assert rerun.returncode == 0, rerun.stderr
    assert len(stored(migrated_database_url)) == len(SAMPLE)


def test_export_round_trips_through_import(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    run_module("seed", str(write(tmp_path, MESSY)), database_url=migrated_database_url)
    exported = tmp_path / "export.json"
    result = run_module("seed", "export", str(exported), database_url=migrated_database_url)
    document = json.loads(exported.read_text(encoding="utf-8"))

    assert result.returncode == 0, result.stderr
    originals: dict[str, Any] = {}
    for record in MESSY["patients"]:
        if isinstance(record, dict):
            originals.setdefault(record["patientID"], record)  # the first occurrence is imported
    assert [record["patientID"] for record in document["patients"]] == IMPORTED
    for record in document["patients"]:
        original = originals[record["patientID"]]
        assert record == {**original, "id": original.get("id", record["id"])}


def many(count: int, prefix: str) -> dict[str, Any]:
    return {
        "patients": [
            {"patientID": f"{prefix}{number}", "name": f"Patient {number}", "age": number % 100}
            for number in range(count)
        ]
    }


def wait_for(url: str, statement: str) -> None:
    deadline = time.monotonic() + 60
    while not query(url, statement):
        assert time.monotonic() < deadline, f"never true: {statement}"
        time.sleep(0.1)


def test_a_big_import_into_an_empty_table_rebuilds_every_index_and_makes_reads_wait(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    document = many(store.REBUILD_MIN_ROWS, "B")
    document["patients"].append(document["patients"][0])  # rejected: the constraints come back
    path = write(tmp_path, document)
    indexes = query(migrated_database_url, INDEXES)
    constraints = query(migrated_database_url, CONSTRAINTS)
    with psycopg.connect(migrated_database_url) as reader:
        reader.execute("SELECT count(*) FROM patients")  # a reader's ACCESS SHARE lock, held
        process = subprocess.Popen(
            [sys.executable, "-m", "seed", str(path)],
            cwd=REPO,
            env={**os.environ, "DATABASE_URL": migrated_database_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # The import asks for the lock that conflicts with every read, and waits for ours.
        wait_for(migrated_database_url, WAITING_REBUILD)
        reader.rollback()
    assert process.wait(timeout=120) == 0

    assert len(stored(migrated_database_url)) == store.REBUILD_MIN_ROWS
    assert query(migrated_database_url, INDEXES) == indexes
    assert query(migrated_database_url, CONSTRAINTS) == constraints


def test_a_big_import_into_a_table_with_rows_never_blocks_readers(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    run_module("seed", str(SAMPLE_DB_JSON), database_url=migrated_database_url)
    path = write(tmp_path, many(store.REBUILD_MIN_ROWS, "N"))
    with psycopg.connect(migrated_database_url) as reader:
        reader.execute("SELECT count(*) FROM patients")  # held for the whole import
        result = run_module("seed", str(path), database_url=migrated_database_url)
        reader.rollback()

    assert result.returncode == 0, result.stderr
    assert len(stored(migrated_database_url)) == len(SAMPLE) + store.REBUILD_MIN_ROWS


def test_a_big_import_into_an_empty_table_keeps_the_count_and_its_trigger(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    path = write(tmp_path, many(store.REBUILD_MIN_ROWS, "C"))
    result = run_module("seed", str(path), database_url=migrated_database_url)
    assert result.returncode == 0, result.stderr

    kept = "SELECT (SELECT sum(delta) FROM patients_counts) AS kept, count(*) AS counted"
    assert query(migrated_database_url, kept + " FROM patients") == [
        {"kept": store.REBUILD_MIN_ROWS, "counted": store.REBUILD_MIN_ROWS}
    ]
    trigger = "SELECT tgenabled FROM pg_trigger WHERE tgname = %s"
    assert query(migrated_database_url, trigger, (store.COUNT_TRIGGER,)) == [{"tgenabled": "O"}]
    blocks_kept, blocks_counted = blocks_kept_and_counted(migrated_database_url)
    assert blocks_kept == blocks_counted
    assert sum(n for _, n in blocks_kept) == store.REBUILD_MIN_ROWS
