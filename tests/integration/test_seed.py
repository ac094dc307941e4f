import json
import pathlib

import pytest

from tests.integration.helpers import SAMPLE_DB_JSON, UNREACHABLE_URL, execute, query, run_module

SAMPLE = json.loads(SAMPLE_DB_JSON.read_text(encoding="utf-8"))["patients"]


def stored_ids(url: str) -> list[int]:
    return [row["id"] for row in query(url, "SELECT id FROM patients ORDER BY storage_order")]


def test_seed_imports_the_sample_keeping_ids_and_file_order(migrated_database_url: str) -> None:
    result = run_module("seed", str(SAMPLE_DB_JSON), database_url=migrated_database_url)

    assert result.returncode == 0, result.stderr
    assert f"{len(SAMPLE)} inserted, 0 updated, 0 unchanged, 0 rejected" in result.stdout
    assert stored_ids(migrated_database_url) == [record["id"] for record in SAMPLE]


def test_seed_twice_changes_nothing(migrated_database_url: str) -> None:
    run_module("seed", str(SAMPLE_DB_JSON), database_url=migrated_database_url)
    before = query(migrated_database_url, "SELECT * FROM patients ORDER BY id")
    again = run_module("seed", str(SAMPLE_DB_JSON), database_url=migrated_database_url)

    assert again.returncode == 0, again.stderr
    assert f"0 inserted, 0 updated, {len(SAMPLE)} unchanged, 0 rejected" in again.stdout
    assert query(migrated_database_url, "SELECT * FROM patients ORDER BY id") == before


def test_seed_moves_the_id_sequence_past_the_highest_id(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    db_json = tmp_path / "db.json"
    db_json.write_text(json.dumps({"patients": [{"id": 900, "patientID": "X", "name": "Y"}]}))
    run_module("seed", str(db_json), database_url=migrated_database_url)

    next_id = query(
        migrated_database_url,
        "INSERT INTO patients (patient_id, name) VALUES ('NEXT', 'N') RETURNING id",
    )
    assert next_id == [{"id": 901}]


def test_seed_keeps_extra_fields_and_unicode_verbatim(migrated_database_url: str) -> None:
    run_module("seed", str(SAMPLE_DB_JSON), database_url=migrated_database_url)
    with_extra = [
        record
        for record in SAMPLE
        if set(record)
        - {"id", "patientID", "name", "age", "gender", "medicalCondition", "lastVisit"}
    ]
    assert with_extra, "the sample must carry a record with an extra field"
    for record in with_extra:
        extra = {key: record[key] for key in record if key in ("email", "insurance")}
        row = query(
            migrated_database_url, "SELECT extra FROM patients WHERE id = %s", (record["id"],)
        )
        assert row[0]["extra"] == extra
    names = {row["name"] for row in query(migrated_database_url, "SELECT name FROM patients")}
    assert names == {record["name"] for record in SAMPLE}
    assert any(not name.isascii() for name in names)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b'{"patients": [', "not valid JSON", id="truncated JSON"),
        pytest.param(b"\xff\xfe{\x00", "not UTF-8", id="UTF-16"),
        pytest.param(b'[{"id": 1}]', "top level", id="a top-level array"),
        pytest.param(b'{"posts": []}', 'no "patients" array', id="no patients"),
        pytest.param(b"", "the file is empty", id="an empty file"),
        pytest.param(b'{"patients": {"id": 1}}', '"patients" must be an array', id="not an array"),
        pytest.param(
            b'{"patients": [{"patientID": "P1", "name": "Jos\xe9"}]}',
            "not UTF-8 text: byte 0xe9 near byte 46 (a Latin-1 or Windows-1252 file?",
            id="Latin-1",
        ),
    ],
)
def test_seed_refuses_a_bad_file_and_writes_nothing(
    migrated_database_url: str, tmp_path: pathlib.Path, content: bytes, message: str
) -> None:
    db_json = tmp_path / "db.json"
    db_json.write_bytes(content)
    result = run_module("seed", str(db_json), database_url=migrated_database_url)

    assert result.returncode == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert stored_ids(migrated_database_url) == []
    if content.startswith(b"{") and content.endswith(b"}"):  # valid JSON of another shape
        assert "not valid JSON" not in result.stderr


def test_seed_accepts_a_utf8_bom(migrated_database_url: str, tmp_path: pathlib.Path) -> None:
    db_json = tmp_path / "db.json"
    db_json.write_bytes(b"\xef\xbb\xbf" + json.dumps({"patients": SAMPLE[:2]}).encode())
    result = run_module("seed", str(db_json), database_url=migrated_database_url)

    assert result.returncode == 0, result.stderr
    assert stored_ids(migrated_database_url) == [SAMPLE[0]["id"], SAMPLE[1]["id"]]
    assert "byte order mark; it was skipped" in result.stdout


def test_seed_names_a_missing_file(migrated_database_url: str) -> None:
    result = run_module("seed", "/nonexistent/db.json", database_url=migrated_database_url)

    assert result.returncode == 1
    assert "cannot read /nonexistent/db.json" in result.stderr


def test_seed_gives_up_on_an_unreachable_database() -> None:
    result = run_module(
        "seed", str(SAMPLE_DB_JSON), database_url=UNREACHABLE_URL, DB_WAIT_SECONDS="2"
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["seed: error: database not reachable after 2 s"]


def test_a_database_error_is_one_line_and_nothing_is_written(migrated_database_url: str) -> None:
    execute(migrated_database_url, "DROP TABLE audit_events")  # the run's last statement fails

    result = run_module("seed", str(SAMPLE_DB_JSON), database_url=migrated_database_url)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("seed: error:")]
    assert errors == [
        'seed: error: the database refused: UndefinedTableError: relation "audit_events" '
        "does not exist; nothing was written"
    ]
    assert query(migrated_database_url, "SELECT count(*) AS n FROM patients")[0]["n"] == 0


def test_a_dry_run_report_names_rejected_records_and_keeps_nothing(
    migrated_database_url: str, tmp_path: pathlib.Path
) -> None:
    db_json = tmp_path / "db.json"
    db_json.write_text(
        json.dumps({"patients": [{"patientID": "PX", "name": "X", "age": "old"}], "posts": [1]}),
        encoding="utf-8",
    )
    report = tmp_path / "report.json"
    result = run_module(
        "seed", "import", "--dry-run", "--report", str(report), str(db_json),
        database_url=migrated_database_url,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "'posts' (1 entries) is not imported; would be kept in import_rejects" in result.stdout
    records = json.loads(report.read_text(encoding="utf-8"))["records"]
    assert [(r["patientID"], r["bucket"]) for r in records] == [("PX", "rejected")]
