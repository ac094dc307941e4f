"""Import the fixture, export it, and json-server 0.17.4 answers the same on both files."""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Iterator

import pytest

from tests.conftest import create_database, drop_database
from tests.contract import compare, jsonserver, servers, test_reads
from tests.contract.compare import Pair
from tests.integration.helpers import run_module

QUERIES = tuple(
    itertools.chain(
        test_reads.EQUALITY,
        test_reads.RANGES,
        test_reads.NOT_EQUAL,
        test_reads.LIKE,
        test_reads.FULL_TEXT,
        test_reads.SORTING,
        test_reads.PAGES,
        test_reads.SLICES,
        test_reads.COMBINATIONS,
    )
)


@pytest.fixture(scope="module")
def json_servers(
    json_server_bin: pathlib.Path,
    pg_server_url: str,
    template_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pair]:
    name = "registry_export_round_trip"
    url = create_database(pg_server_url, name, template=template_database)
    workdir = tmp_path_factory.mktemp("round-trip")
    exported = workdir / "exported.json"
    try:
        imported = run_module("seed", "import", str(servers.FIXTURE_DB_JSON), database_url=url)
        assert imported.returncode == 0, imported.stderr
        assert " 0 rejected" in imported.stdout, "every fixture record must be imported"
        result = run_module("seed", "export", str(exported), database_url=url)
        assert result.returncode == 0, result.stderr
        (workdir / "original").mkdir()
        (workdir / "export").mkdir()
        with (
            jsonserver.serving(
                json_server_bin, servers.FIXTURE_DB_JSON, workdir / "original"
            ) as original,
            jsonserver.serving(json_server_bin, exported, workdir / "export") as from_export,
        ):
            pair = Pair(original, from_export)
            try:
                yield pair
            finally:
                pair.close()
    finally:
        drop_database(pg_server_url, name)


def test_the_whole_list_survives_the_round_trip(json_servers: Pair) -> None:
    json_servers.assert_same(compare.get("/patients"), "export round trip: ")


@pytest.mark.parametrize("query", QUERIES)
def test_queries_answer_the_same_after_the_round_trip(json_servers: Pair, query: str) -> None:
    json_servers.assert_same(compare.get(f"/patients?{query}"), "export round trip: ")
