"""Writes the registry as a json-server db.json, streamed, in list order."""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import TextIO

import asyncpg

from api import store as api_store
from seed import store

SELECT = "SELECT patients_json(p) FROM patients AS p ORDER BY storage_order"


async def export(
    database_url: str, target: pathlib.Path | None, stdout: TextIO, *, pooled: bool = False
) -> int:
    """Write `{"patients": [...]}` to `target` (atomically) or to stdout; returns the count.
    `pooled`: behind PgBouncer in transaction pooling mode (DB_POOLER)."""
    connection = await asyncpg.connect(database_url, **api_store.driver_options(pooled=pooled))
    try:
        if target is None:
            return await _write(connection, stdout)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                count = await _write(connection, file)
            os.replace(temporary, target)
        except BaseException:
            pathlib.Path(temporary).unlink(missing_ok=True)
            raise
        return count
    finally:
        await connection.close()


async def _write(connection: asyncpg.Connection, out: TextIO) -> int:
    count = 0
    out.write('{\n  "patients": [')
    async with connection.transaction(readonly=True, isolation="repeatable_read"):
        async for row in store.each_row(connection, SELECT):
            out.write(("\n    " if count == 0 else ",\n    ") + row[0])
            count += 1
    out.write("\n  ]\n}\n" if count else "]\n}\n")
    return count
