"""json-server and our API side by side on the fixture: a pair for reads, fresh pairs for writes."""

from __future__ import annotations

import contextlib
import pathlib
import uuid
from collections.abc import Iterator

import pytest

import localoidc
from tests import signin
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


@pytest.fixture(scope="session")
def signed_in_read_pair(
    json_server_bin: pathlib.Path,
    pg_server_url: str,
    template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    oidc: localoidc.RunningProvider,
) -> Iterator[Pair]:
    """read_pair with our API in AUTH_MODE=entra, every request to it with an admin's token."""
    name = f"registry_signed_in_{uuid.uuid4().hex[:8]}"
    database_url = create_database(pg_server_url, name, template=template_database)
    workdir = tmp_path_factory.mktemp("signed-in-reads")
    try:
        with _pair(json_server_bin, database_url, workdir, oidc) as pair:
            yield pair
    finally:
        drop_database(pg_server_url, name)


@pytest.fixture
def signed_in_write_pair(
    json_server_bin: pathlib.Path,
    migrated_database_url: str,
    tmp_path: pathlib.Path,
    oidc: localoidc.RunningProvider,
) -> Iterator[Pair]:
    """write_pair with our API in AUTH_MODE=entra (an admin's token: json-server deletes)."""
    with _pair(json_server_bin, migrated_database_url, tmp_path, oidc) as pair:
        yield pair


@contextlib.contextmanager
def _pair(
    bin_js: pathlib.Path,
    database_url: str,
    workdir: pathlib.Path,
    oidc: localoidc.RunningProvider | None = None,
) -> Iterator[Pair]:
    """Both servers start while the seed loads (our API needs no rows to come up); with
    `oidc`, ours requires sign-in and the pair sends it an administrator's token."""
    settings = {} if oidc is None else signin.api_environment(oidc.authority_host)
    with (
        jsonserver.serving(bin_js, servers.FIXTURE_DB_JSON, workdir, wait=False) as reference,
        servers.our_api(database_url, workdir / "ours.log", wait=False, **settings) as ours,
    ):
        servers.seed(database_url)
        reference.wait_until_ready()
        ours.wait_until_ready()
        token = () if oidc is None else (("Authorization", f"Bearer {oidc.token('admin')}"),)
        pair = Pair(reference, ours, token)
        try:
            yield pair
        finally:
            pair.close()
