"""API clients on a fresh migrated database, empty or seeded with the sample db.json."""

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.integration.helpers import SAMPLE_DB_JSON, run_module


def client_for(database_url: str, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(database_url=database_url, **settings)))


@pytest.fixture
def client(migrated_database_url: str) -> Iterator[TestClient]:
    with client_for(migrated_database_url) as test_client:
        yield test_client


@pytest.fixture
def seeded_client(migrated_database_url: str) -> Iterator[TestClient]:
    result = run_module("seed", str(SAMPLE_DB_JSON), database_url=migrated_database_url)
    assert result.returncode == 0, result.stderr
    with client_for(migrated_database_url) as test_client:
        yield test_client
