import asyncio
import time

import pytest

from api import store
from api.settings import Settings


def test_a_saturated_pool_fails_fast_instead_of_hanging(migrated_database_url: str) -> None:
    settings = Settings(database_url=migrated_database_url, db_pool_max=1, db_timeout_seconds=1)

    async def scenario() -> float:
        db = store.open_database(settings)
        await store.connect(db, settings.db_timeout_seconds)
        holding = asyncio.Event()
        release = asyncio.Event()

        async def hold_the_only_connection() -> None:
            async with db.connection():
                await db.fetch_val("SELECT 1")
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold_the_only_connection())
        await holding.wait()
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                await db.fetch_val("SELECT 1")
            waited = time.monotonic() - started
            with pytest.raises(TimeoutError):  # GET by id takes its connection straight
                await store.fetch_patient(db, 1)
            return waited
        finally:
            release.set()
            await holder
            await store.disconnect(db, 5)

    waited = asyncio.run(scenario())
    assert 0.5 < waited < 5
    assert store.is_unavailable(TimeoutError()), "the API answers it with 503"
