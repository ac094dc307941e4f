"""Imports and API writes side by side: one lock order, so never a deadlock, never a 5xx."""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import random
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tests.contract import servers
from tests.integration.helpers import run_module

RECORDS = 2_000
WRITERS = 8
IMPORTS = 4


def records(version: int) -> list[dict[str, Any]]:
    return [
        {"id": n, "patientID": f"L{n:05d}", "name": f"Locked {n}", "age": (n + version) % 100}
        for n in range(1, RECORDS + 1)
    ]


@pytest.fixture
def api(migrated_database_url: str, tmp_path: pathlib.Path) -> Iterator[str]:
    first = tmp_path / "first.json"
    first.write_text(json.dumps({"patients": records(0)}), encoding="utf-8")
    seeded = run_module("seed", str(first), database_url=migrated_database_url)
    assert seeded.returncode == 0, seeded.stderr
    # Its log to a file: thousands of access lines would fill a pipe nobody reads.
    with servers.our_api(migrated_database_url, tmp_path / "api.log") as server:
        yield server.base_url


def write_until(base: str, stop: threading.Event, seed: int) -> Counter[int]:
    """PATCH, PUT and DELETE (with and without If-Match) on random records until `stop`."""
    chance = random.Random(seed)  # noqa: S311 (a test's choices, not a secret)
    statuses: Counter[int] = Counter()
    with httpx2.Client(base_url=base, timeout=60) as client:
        while not stop.is_set():
            path = f"/patients/{chance.randint(1, RECORDS)}"
            kind = chance.choice(("patch", "patch-if", "put", "put-if", "delete", "delete-if"))
            headers = {}
            if kind.endswith("-if"):
                read = client.get(path)
                statuses[read.status_code] += 1
                headers = {"if-match": read.headers.get("etag", '"gone"')}
            body = {"patientID": f"W{seed}-{chance.random()}", "name": "Writer"}
            if kind.startswith("patch"):
                response = client.patch(path, json={"age": chance.randint(0, 99)}, headers=headers)
            elif kind.startswith("put"):
                response = client.put(path, json=body, headers=headers)
            else:
                response = client.delete(path, headers=headers)
            statuses[response.status_code] += 1
    return statuses


@pytest.mark.parametrize("mode", ["upsert", "insert"])
def test_imports_and_api_writes_never_deadlock(
    api: str, migrated_database_url: str, tmp_path: pathlib.Path, mode: str
) -> None:
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=WRITERS) as pool:
        writers = [pool.submit(write_until, api, stop, n) for n in range(WRITERS)]
        results = []
        try:
            for version in range(1, IMPORTS + 1):
                path = tmp_path / f"v{version}.json"
                path.write_text(json.dumps({"patients": records(version)}), encoding="utf-8")
                results.append(
                    run_module("seed", "import", "--mode", mode, str(path),
                               database_url=migrated_database_url)
                )  # fmt: skip
        finally:
            stop.set()
        statuses = sum((writer.result() for writer in writers), Counter[int]())

    assert [result.returncode for result in results] == [0] * IMPORTS, [
        result.stderr for result in results if result.returncode
    ]
    assert not [status for status in statuses if status >= 500], statuses
    assert statuses[200] > WRITERS
