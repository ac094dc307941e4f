"""json-server and our API side by side on the fixture: a pair for reads, fresh pairs for writes."""

from __future__ import annotations

import contextlib
import pathlib
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import create_database, drop_database
from tests.contract import jsonserver, servers
from tests.contract.compare import Pair


@pytest.fixture(scope="session")
def json_server_bin() -> pathlib.Path:
    return jsonserver.install()


@pytest.fixture(scope="session")
def read_pair(
    json_server_bin: pathlib.Path,
    pg_server_url: str,
    template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    """Both servers on the fixture, shared by every read test: nothing may write through it."""
    name = f"registry_contract_{uuid.uuid4().hex[:8]}"
    database_url = create_database(pg_server_url, name, template=template_database)
    try:
        with _pair(json_server_bin, database_url, tmp_path_factory.mktemp("reads")) as pair:
            yield pair
    finally:
        drop_database(pg_server_url, name)


@pytest.fixture
def write_pair(
    json_server_bin: pathlib.Path, migrated_database_url: str, tmp_path: pathlib.Path
) -> Iterator[Pair]:
    """Both servers on fresh copies of the fixture, for one test's write sequence."""
    with _pair(json_server_bin, migrated_database_url, tmp_path) as pair:
        yield pair


@contextlib.contextmanager
def _pair(bin_js: pathlib.Path, database_url: str, workdir: pathlib.Path) -> Iterator[Pair]:
    """Both servers start while the seed loads (our API needs no rows to come up)."""
    with (
        jsonserver.serving(bin_js, servers.FIXTURE_DB_JSON, workdir, wait=False) as reference,
        servers.our_api(database_url, workdir / "ours.log", wait=False) as ours,
    ):
        servers.seed(database_url)
        reference.wait_until_ready()
        ours.wait_until_ready()
        pair = Pair(reference, ours)
        try:
            yield pair
        finally:
            pair.close()
