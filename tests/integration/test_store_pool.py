import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx2
import pytest
from databases import Database

from api import store
from api.app import create_app
from api.settings import Settings


@contextlib.asynccontextmanager
async def holding_the_only_connection(db: Database) -> AsyncIterator[None]:
    """The pool's one connection stays in use by another task until the block ends."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with db.connection():
            await db.fetch_val("SELECT 1")
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    try:
        yield
    finally:
        release.set()
        await holder


def test_a_saturated_pool_fails_fast_instead_of_hanging(migrated_database_url: str) -> None:
    settings = Settings(database_url=migrated_database_url, db_pool_max=1, db_timeout_seconds=1)

    async def scenario() -> float:
        db = store.open_database(settings)
        await store.connect(db, settings.db_timeout_seconds)
        try:
            async with holding_the_only_connection(db):
                started = time.monotonic()
                with pytest.raises(store.PoolBusy):
                    await db.fetch_val("SELECT 1")
                waited = time.monotonic() - started
                with pytest.raises(store.PoolBusy):  # GET by id takes its connection straight
                    await store.fetch_patient(db, 1)
                return waited
        finally:
            await store.disconnect(db, 5)

    waited = asyncio.run(scenario())
    assert 0.5 < waited < 5


def test_a_busy_instance_answers_503_server_busy_and_its_health_stays_true(
    migrated_database_url: str,
) -> None:
    """Busy is not down: a request that waited DB_TIMEOUT_SECONDS for a connection gets its own
    error code, and /health says the database answers and shows the queue."""
    settings = Settings(database_url=migrated_database_url, db_pool_max=1, db_timeout_seconds=1)
    application = create_app(settings)

    async def scenario() -> tuple[httpx2.Response, httpx2.Response, httpx2.Response]:
        transport = httpx2.ASGITransport(app=application)
        async with (
            application.router.lifespan_context(application),
            httpx2.AsyncClient(transport=transport, base_url="http://registry") as client,
        ):
            assert (await client.get("/patients")).status_code == 200  # PostgreSQL answered
            async with holding_the_only_connection(application.state.db):
                waiting = asyncio.create_task(client.get("/patients?name_like=x"))
                await asyncio.sleep(0.2)
                health = await client.get("/health")
                busy = await waiting
            return busy, health, await client.get("/health")

    busy, health, after = asyncio.run(scenario())
    assert busy.status_code == 503
    assert busy.json()["error_code"] == "SERVER_BUSY"
    assert busy.headers["retry-after"] == "1"
    assert health.status_code == 200, health.text
    assert health.json()["database"] == "connected"
    assert health.json()["pool"] == {"size": 1, "max": 1, "idle": 0, "waiting": 1}
    assert after.json()["pool"]["waiting"] == 0
