"""What lists read since migration 0006: the stored wire JSON and the kept count, after writes."""

import asyncio
from typing import Any

import psycopg
import pytest
from databases import Database
from starlette.testclient import TestClient

from api import query as query_module
from api import sqlquery, store
from tests.integration.helpers import blocks_kept_and_counted, execute, make_patient, query

COUNTED = (
    "SELECT (SELECT sum(delta) FROM patients_counts) AS kept, count(*) AS counted FROM patients"
)
COLUMNS = "patient_id, name, age, gender, medical_condition, last_visit, extra"


def kept_and_counted(url: str) -> tuple[int, int]:
    row = query(url, COUNTED)[0]
    return row["kept"], row["counted"]


def listed(client: TestClient, query_string: str) -> tuple[list[int], str | None]:
    response = client.get(f"/patients?{query_string}")
    assert response.status_code == 200, response.text
    return [record["id"] for record in response.json()], response.headers.get("x-total-count")


@pytest.mark.parametrize(
    "order",
    [
        pytest.param("", id="in storage order"),
        pytest.param("&_sort=name&_order=desc", id="sorted by name, descending"),
        pytest.param("&_sort=age", id="sorted by a nullable column"),
    ],
)
def test_every_page_is_its_slice_of_the_whole_list_after_writes(
    seeded_client: TestClient, order: str
) -> None:
    for number in range(7):
        created = seeded_client.post("/patients", json=make_patient(patientID=f"N{number}"))
        assert created.status_code == 201
    for patient_id in (2, 5, 6, 11):
        assert seeded_client.delete(f"/patients/{patient_id}").status_code == 200
    whole, _ = listed(seeded_client, order.lstrip("&"))

    for size in (1, 3, 7):
        for page in range(1, len(whole) // size + 3):
            expected = whole[(page - 1) * size : page * size]
            assert listed(seeded_client, f"_page={page}&_limit={size}{order}") == (
                expected,
                str(len(whole)),
            ), f"page {page} of {size}"
    assert listed(seeded_client, f"_start=-4&_end=-1{order}")[0] == whole[-4:-1]


def test_the_kept_count_follows_every_kind_of_write(migrated_database_url: str) -> None:
    url = migrated_database_url
    values = "('P{0}', 'Ada', 3, NULL, NULL, NULL, '{{}}')"
    steps = [
        f"INSERT INTO patients ({COLUMNS}) VALUES {', '.join(values.format(n) for n in range(5))}",
        "DELETE FROM patients WHERE patient_id IN ('P1', 'P2')",
        f"INSERT INTO patients ({COLUMNS}) VALUES {values.format(0)}, {values.format(9)}"
        " ON CONFLICT (patient_id) DO UPDATE SET age = 4",
        f"INSERT INTO patients ({COLUMNS}) SELECT 'Q' || n, 'Bo', n, NULL, NULL, NULL, '{{}}'"
        " FROM generate_series(1, 50) AS n",
        "UPDATE patients SET name = 'Cy'",
        "TRUNCATE patients",
        f"INSERT INTO patients ({COLUMNS}) VALUES {values.format(7)}",
    ]
    for step in steps:
        execute(url, step)
        kept, counted = kept_and_counted(url)
        assert kept == counted, step
        blocks_kept, blocks_counted = blocks_kept_and_counted(url)
        assert blocks_kept == blocks_counted, step


def test_a_rolled_back_write_leaves_the_count_alone(migrated_database_url: str) -> None:
    with psycopg.connect(migrated_database_url) as connection:
        connection.execute(
            f"INSERT INTO patients ({COLUMNS}) VALUES ('P1', 'Ada', 3, NULL, NULL, NULL, '{{}}')"
        )
        connection.rollback()

    assert kept_and_counted(migrated_database_url) == (0, 0)


TRICKY: list[tuple[Any, ...]] = [
    ("P1", 'Zoë "Quote" \\ back', 0, "", "a\tb\nc\x01\x1f\x7f", "0001-01-01", "{}"),
    ("P2", "小明", None, None, None, "9999-12-31", '{"age": null, "x": [1, {"y": "\\u0001"}]}'),
    ("P3", "Ana", 150, "Other", "", None, '{"insurance": {"plan": "PPO"}, "n": 1.50}'),
    ("P4", "😀 emoji", 7, None, "\\u0000 text", "2024-02-29", '{"gender": null}'),
]


def test_the_stored_wire_json_is_the_text_patients_json_builds(migrated_database_url: str) -> None:
    with psycopg.connect(migrated_database_url, autocommit=True) as connection:
        for row in TRICKY:
            connection.execute(
                f"INSERT INTO patients ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)", row
            )

    differing = query(
        migrated_database_url,
        "SELECT id, wire, patients_json(p) AS built FROM patients AS p"
        " WHERE wire IS DISTINCT FROM patients_json(p)",
    )
    assert differing == []
    assert len(query(migrated_database_url, "SELECT 1 FROM patients")) == len(TRICKY)


def test_a_list_longer_than_a_part_arrives_whole_and_in_order(
    migrated_database_url: str, client: TestClient
) -> None:
    """PostgreSQL sends a long list in byte slices (sqlquery.PART_BYTES); they may cut a
    character's UTF-8 bytes in two, and the response must still be the one JSON array."""
    name = "Zoë 😀 " * 40  # multi-byte characters throughout, so some slice cuts one
    execute(
        migrated_database_url,
        f"INSERT INTO patients ({COLUMNS}) SELECT 'L' || n, %s || n, n, NULL, NULL, NULL, '{{}}'"
        " FROM generate_series(1, 3000) AS n",
        (name,),
    )
    listing = query_module.parse("_sort=age&_order=desc")
    parts, total = asyncio.run(_listed_parts(migrated_database_url, listing))

    assert len(parts) > 2
    assert total is None
    assert all(len(part) <= sqlquery.PART_BYTES for part in parts)
    plain = client.get("/patients?_sort=age&_order=desc", headers={"Accept-Encoding": "identity"})
    compressed = client.get("/patients?_sort=age&_order=desc", headers={"Accept-Encoding": "gzip"})

    assert plain.status_code == compressed.status_code == 200
    assert plain.headers["content-length"] == str(len(plain.content))
    assert compressed.headers["content-encoding"] == "gzip"
    assert plain.content == compressed.content == b"".join(parts)
    records = plain.json()
    assert [record["age"] for record in records] == list(range(3000, 0, -1))
    assert all(record["name"] == f"{name}{record['age']}" for record in records)


async def _listed_parts(url: str, listing: query_module.ListQuery) -> tuple[list[bytes], Any]:
    db = Database(url)
    await store.connect(db, acquire_within=5)
    try:
        return await store.list_patients(db, listing)
    finally:
        await db.disconnect()


def test_deep_pages_skip_whole_blocks_and_are_still_their_slice(
    migrated_database_url: str, client: TestClient
) -> None:
    """Pages of the list in storage order skip blocks of 1024 storage_order values by their kept
    counts (migration 0010): after deletes across and within blocks, every page is still its
    slice of the whole list."""
    url = migrated_database_url
    execute(
        url,
        f"INSERT INTO patients ({COLUMNS}) SELECT 'D' || n, 'Di', n %% 90, NULL, NULL, NULL, '{{}}'"
        " FROM generate_series(1, 3500) AS n",
    )
    execute(url, "DELETE FROM patients WHERE storage_order BETWEEN 1000 AND 2100")  # block 1
    execute(url, "DELETE FROM patients WHERE storage_order %% 7 = 0 OR storage_order = 3072")
    for number in range(3):
        created = client.post("/patients", json=make_patient(patientID=f"E{number}"))
        assert created.status_code == 201
    whole, _ = listed(client, "")
    total = str(len(whole))

    for size in (20, 333, 1000):
        for page in (1, 2, 40, 41, 42, len(whole) // size, len(whole) // size + 1, 10_000):
            if page * size > 10_000 and page != 10_000:
                continue
            expected = whole[(page - 1) * size : page * size]
            assert listed(client, f"_page={page}&_limit={size}") == (expected, total), (page, size)
    for start, end in ((0, 5), (1020, 1030), (1500, 1530), (len(whole) - 3, len(whole) + 9)):
        assert listed(client, f"_start={start}&_end={end}") == (whole[start:end], total)
    blocks_kept, blocks_counted = blocks_kept_and_counted(url)
    assert blocks_kept == blocks_counted
