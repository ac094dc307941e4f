"""Lists longer than a page take their bytes from one budget (LIST_MEMORY_MB, api/budget.py)
while they are read and sent: a list that would overdraw it waits, then is SERVER_BUSY; one
longer than the whole budget is LIST_TOO_LARGE; every byte comes back once sent."""

import asyncio
import time

import pytest
from databases import Database

from api import budget, query, store
from api.settings import Settings
from tests.integration.conftest import client_for
from tests.integration.helpers import execute

MIB = 1024 * 1024
COLUMNS = "patient_id, name, age, gender, medical_condition, last_visit, extra"


def add_patients(url: str, count: int, name_length: int) -> None:
    execute(
        url,
        f"INSERT INTO patients ({COLUMNS}) SELECT 'M' || n, repeat('x', %s) || n, n %% 100,"
        " NULL, NULL, NULL, '{}' FROM generate_series(1, %s) AS n",
        (name_length, count),
    )


def test_a_list_longer_than_the_whole_budget_is_refused_and_pages_still_work(
    migrated_database_url: str,
) -> None:
    add_patients(migrated_database_url, 12_000, 400)  # a whole list of ~5 MB
    with client_for(migrated_database_url, list_memory_mb=4) as client:
        whole = client.get("/patients")
        page = client.get("/patients?_page=3&_limit=10")
        search = client.get("/patients?name_like=x1234$")
        memory = store.pool_state(client.app.state.db).list_memory  # type: ignore[attr-defined,union-attr]

        assert whole.status_code == 400
        assert whole.json()["error_code"] == "LIST_TOO_LARGE"
        assert page.status_code == 200
        assert len(page.json()) == 10
        assert search.status_code == 200
        assert [record["patientID"] for record in search.json()] == ["M1234"]
        assert given_back(memory)


def test_every_byte_comes_back_once_the_lists_are_sent(migrated_database_url: str) -> None:
    add_patients(migrated_database_url, 3_000, 400)
    with client_for(migrated_database_url) as client:
        for path in ("/patients", "/patients?_sort=name", "/patients?q=x", "/patients?age=7"):
            assert client.get(path).status_code == 200
        memory = store.pool_state(client.app.state.db).list_memory  # type: ignore[attr-defined,union-attr]
        # No gc.collect(): the bytes come back when the responses are done, not at a collection.
        # The app runs in the test client's thread and may still be returning for a moment.
        assert given_back(memory)


def given_back(memory: budget.ByteBudget) -> bool:
    deadline = time.monotonic() + 2
    while memory.held and time.monotonic() < deadline:
        time.sleep(0.01)
    return memory.held == 0


def test_lists_that_would_overdraw_the_budget_wait_then_are_busy(
    migrated_database_url: str,
) -> None:
    add_patients(migrated_database_url, 3_000, 400)  # each whole list ~1.3 MB
    settings = Settings(database_url=migrated_database_url, db_timeout_seconds=0.5)

    async def scenario() -> None:
        db = Database(settings.database_url)
        await store.connect(db, settings.db_timeout_seconds, list_memory_bytes=4 * MIB)
        memory = store.pool_state(db).list_memory  # type: ignore[union-attr]
        try:
            first = await store.list_patients(db, query.parse("_sort=name"))
            second = await store.list_patients(db, query.parse("_sort=age"))
            assert 2 * MIB < memory.held < 4 * MIB

            with pytest.raises(store.PoolBusy):  # it needs 2 MiB to read its first parts
                await store.list_patients(db, query.parse(""))
            assert 2 * MIB < memory.held < 4 * MIB

            third = asyncio.create_task(store.list_patients(db, query.parse("")))
            await asyncio.sleep(0.1)
            assert not third.done()
            del first, second  # the responses are sent: the third list goes on at once
            parts, _ = await asyncio.wait_for(third, 0.3)
            assert b"".join(parts).startswith(b'[{"id":1,')
            del parts, third
            assert memory.held == 0
        finally:
            await store.disconnect(db, 5)

    asyncio.run(scenario())
