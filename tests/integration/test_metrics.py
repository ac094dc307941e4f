"""GET /metrics against PostgreSQL 17: the Prometheus text format, requests counted exactly by
route template, the pool read at scrape time, database failures by kind, the import log, and
the token that guards it all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from api import metrics
from api.app import create_app
from api.settings import Settings
from tests.identity import entra_settings
from tests.integration.conftest import client_for
from tests.integration.helpers import SAMPLE_DB_JSON, UNREACHABLE_URL, make_patient, run_module
from tests.integration.test_store_pool import holding_the_only_connection

TOKEN = "0123456789abcdef" * 4
REQUESTS = "registry_http_requests_total"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def read(text: str) -> Samples:
    """Every sample of an exposition, by name and labels (parsed as Prometheus parses it)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: TestClient, **headers: str) -> Samples:
    response = client.get(metrics.PATH, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return read(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def labels_of(samples: Samples) -> set[str]:
    return {value for _, labels in samples for _, value in labels}


@pytest.fixture
def metered(migrated_database_url: str) -> Iterator[TestClient]:
    with client_for(migrated_database_url, metrics=True, db_pool_max=3) as test_client:
        yield test_client


def test_metrics_are_off_by_default(client: TestClient) -> None:
    assert client.get(metrics.PATH).status_code == 404
    assert client.app.state.metrics is None  # type: ignore[attr-defined]


def test_requests_are_counted_exactly_by_route_template_method_and_status(
    metered: TestClient,
) -> None:
    created = metered.post("/patients", json=make_patient())
    assert created.status_code == 201
    item = f"/patients/{created.json()['id']}"
    before = scrape(metered)
    for _ in range(5):
        assert metered.get(item).status_code == 200
    for _ in range(3):
        assert metered.get("/patients/999999").status_code == 404
    assert metered.patch(item, json={"age": 50}).status_code == 200
    after = scrape(metered)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    item_get = {"route": "/patients/{id}", "method": "GET"}
    assert moved(REQUESTS, **item_get, status="200") == 5
    assert moved(REQUESTS, **item_get, status="404") == 3
    assert moved(REQUESTS, route="/patients/{id}", method="PATCH", status="200") == 1
    assert moved(REQUESTS, route="/patients", method="POST", status="201") == 0
    assert moved(REQUESTS, route="/metrics", method="GET", status="200") == 1  # the first scrape
    latency = "registry_http_request_duration_seconds"
    assert moved(f"{latency}_count", **item_get, status="200") == 5
    assert moved(f"{latency}_bucket", **item_get, status="200", le="+Inf") == 5
    assert value(after, "registry_http_requests_in_flight") == 1  # the scrape itself


def test_labels_never_carry_ids_queries_or_patient_data(metered: TestClient) -> None:
    metered.post("/patients", json=make_patient(name="Zebulon Quackenbush", patientID="P-777"))
    metered.get("/patients/123")
    metered.get("/PATIENTS/123/")
    metered.get("/patients?name_like=secret&q=Zebulon")
    metered.get("/users/456")
    metered.get("/no/such/path/789secret")
    metered.request("BREW", "/patients/123")
    response = metered.get(metrics.PATH)
    samples = read(response.text)

    values = labels_of(samples)  # the samples' values are numbers: digits may occur there
    for leaked in ("123", "456", "789", "secret", "?", "Zebulon", "Quackenbush", "P-777"):
        assert not [value for value in values if leaked in value]
    for leaked in ("secret", "Zebulon", "Quackenbush", "P-777"):
        assert leaked not in response.text
    routes = {dict(labels)["route"] for name, labels in samples if name == REQUESTS}
    assert routes == {"/patients", "/patients/{id}", "/users/{id}", "unmatched"}
    assert value(samples, REQUESTS, route="/patients/{id}", method="GET", status="404") == 2
    assert value(samples, REQUESTS, route="/patients/{id}", method="other", status="405") == 1
    assert value(samples, REQUESTS, route="unmatched", method="GET", status="404") == 1
    assert value(samples, REQUESTS, route="/patients", method="GET", status="200") == 1
    assert "BREW" not in labels_of(samples)


def test_pool_gauges_and_the_process_are_read_at_scrape_time(metered: TestClient) -> None:
    assert metered.get("/patients").status_code == 200
    samples = scrape(metered)

    size = value(samples, "registry_db_pool_connections")
    idle = value(samples, "registry_db_pool_idle_connections")
    assert 1 <= size <= 3
    assert value(samples, "registry_db_pool_max_connections") == 3
    assert value(samples, "registry_db_pool_in_use_connections") == size - idle == 0
    assert value(samples, "registry_db_pool_waiting_requests") == 0
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_cpu_seconds_total") > 0
    assert ("python_info", frozenset()) not in samples  # it has labels: found below
    assert any(name == "python_info" for name, _ in samples)


def test_a_busy_pool_shows_in_its_gauges_and_as_server_busy(migrated_database_url: str) -> None:
    """The scrape does not queue for a connection: the import log is skipped, the pool read."""
    settings = Settings(
        database_url=migrated_database_url, db_pool_max=1, db_timeout_seconds=1, metrics=True
    )
    application = create_app(settings)

    async def scenario() -> tuple[httpx2.Response, Samples, Samples]:
        transport = httpx2.ASGITransport(app=application)
        async with (
            application.router.lifespan_context(application),
            httpx2.AsyncClient(transport=transport, base_url="http://registry") as client,
        ):
            assert (await client.get("/patients")).status_code == 200
            async with holding_the_only_connection(application.state.db):
                waiting = asyncio.create_task(client.get("/patients?name_like=x"))
                await asyncio.sleep(0.2)
                during = read((await client.get(metrics.PATH)).text)
                busy = await waiting
            return busy, during, read((await client.get(metrics.PATH)).text)

    busy, during, after = asyncio.run(scenario())
    assert busy.json()["error_code"] == "SERVER_BUSY"
    assert value(during, "registry_db_pool_in_use_connections") == 1
    assert value(during, "registry_db_pool_waiting_requests") == 1
    assert value(during, "registry_import_log_readable") == 0
    assert value(after, "registry_database_errors_total", kind="server_busy") == 1
    assert value(after, "registry_import_log_readable") == 1


def test_a_database_outage_is_counted_by_its_kind() -> None:
    settings: dict[str, Any] = {"health_timeout_seconds": 1, "db_timeout_seconds": 1}
    with client_for(UNREACHABLE_URL, metrics=True, **settings) as client:
        before = scrape(client)
        assert client.get("/patients").status_code == 503
        assert client.get("/patients/1").status_code == 503
        after = scrape(client)

    for kind in metrics.DATABASE_FAILURES:
        counted = value(after, "registry_database_errors_total", kind=kind)
        assert counted - value(before, "registry_database_errors_total", kind=kind) == (
            2 if kind == "database_unavailable" else 0
        )
    assert value(after, "registry_import_log_readable") == 0
    assert value(after, REQUESTS, route="/patients/{id}", method="GET", status="503") == 1


def test_imports_are_read_from_the_import_log(migrated_database_url: str) -> None:
    for mode in ("insert", "upsert"):
        imported = run_module(
            "seed",
            "import",
            str(SAMPLE_DB_JSON),
            "--mode",
            mode,
            database_url=migrated_database_url,
        )
        assert imported.returncode == 0, imported.stderr
    with client_for(migrated_database_url, metrics=True) as client:
        samples = scrape(client)

    records = "registry_import_records_total"
    assert value(samples, "registry_import_log_readable") == 1
    assert value(samples, "registry_import_runs_total", mode="insert") == 1
    assert value(samples, "registry_import_runs_total", mode="upsert") == 1
    assert value(samples, records, mode="insert", bucket="inserted") == 36
    assert value(samples, records, mode="upsert", bucket="unchanged") == 36
    assert value(samples, records, mode="upsert", bucket="inserted") == 0
    assert value(samples, "registry_import_last_run_timestamp_seconds", mode="upsert") > 1.7e9


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no token"),
        pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}x"}, 401, id="a wrong token"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, 401, id="another scheme"),
        pytest.param({"Authorization": TOKEN}, 401, id="no scheme"),
        pytest.param({"Authorization": f"Bearer {TOKEN}"}, 200, id="the token"),
        pytest.param(
            {"Authorization": f"bearer {TOKEN}"}, 200, id="the token, scheme in lower case"
        ),
    ],
)
def test_metrics_token_guards_the_scrape(
    migrated_database_url: str, headers: dict[str, str], status: int
) -> None:
    with client_for(migrated_database_url, metrics=True, metrics_token=TOKEN) as client:
        response = client.get(metrics.PATH, headers=headers)

    assert response.status_code == status, response.text
    if status == 401:
        assert response.json()["error_code"] == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "registry_http_requests" not in response.text


def test_two_authorization_headers_are_refused(migrated_database_url: str) -> None:
    with client_for(migrated_database_url, metrics=True, metrics_token=TOKEN) as client:
        both = [("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer other")]
        assert client.get(metrics.PATH, headers=both).status_code == 401


def test_with_entra_sign_in_the_scrape_needs_the_metrics_token_not_an_entra_token(
    migrated_database_url: str,
) -> None:
    with client_for(
        migrated_database_url,
        auth_mode="entra",
        entra=entra_settings(authority_host="http://127.0.0.1:9"),
        metrics=True,
        metrics_token=TOKEN,
    ) as client:
        scraped = client.get(metrics.PATH, headers={"Authorization": f"Bearer {TOKEN}"})
        refused = client.get(metrics.PATH)
        patients = client.get("/patients", headers={"Authorization": f"Bearer {TOKEN}"})

    assert scraped.status_code == 200
    assert refused.status_code == 401
    assert "METRICS_TOKEN" in refused.json()["detail"]
    assert patients.status_code == 401  # the metrics token opens /metrics only
    assert "METRICS_TOKEN" not in patients.json()["detail"]
