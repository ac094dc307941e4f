import asyncpg
import pytest

from api import app, metrics, store
from api.settings import Settings
from seed import importer

TOKEN = "0123456789abcdef" * 4


def meter(token: str | None = None) -> metrics.Metrics:
    """The metrics of a real app (its routes); creating it opens no connection."""
    application = app.create_app(Settings(metrics=True, metrics_token=token))
    found: metrics.Metrics = application.state.metrics
    return found


@pytest.mark.parametrize(
    ("path", "route"),
    [
        pytest.param("/patients/42", "/patients/{id}", id="an item: its template"),
        pytest.param("/patients/not-an-id", "/patients/{id}", id="a bad id: still the template"),
        pytest.param("/patients", "/patients", id="the collection"),
        pytest.param("/users/7", "/users/{id}", id="a user"),
        pytest.param("/health", "/health", id="health"),
        pytest.param("/metrics", "/metrics", id="the scrape itself"),
        pytest.param("/docs/assets/swagger-ui.css", "/docs/assets/{path}", id="a docs asset"),
        pytest.param("/patients/1/2", "unmatched", id="too deep"),
        pytest.param("/Ada%20Lovelace", "unmatched", id="anything else"),
    ],
)
def test_route_labels_are_templates_from_a_fixed_set(path: str, route: str) -> None:
    assert meter().route(path) == route


@pytest.mark.parametrize(
    ("token", "sent", "allowed"),
    [
        pytest.param(None, [], True, id="no METRICS_TOKEN: open"),
        pytest.param(TOKEN, [], False, id="no header"),
        pytest.param(TOKEN, [b"Bearer " + TOKEN.encode()], True, id="the token"),
        pytest.param(TOKEN, [b"BEARER " + TOKEN.encode()], True, id="the scheme in capitals"),
        pytest.param(TOKEN, [b"Bearer " + TOKEN[:-1].encode()], False, id="a prefix"),
        pytest.param(TOKEN, [b"Bearer " + TOKEN.encode() + b"0"], False, id="a longer one"),
        pytest.param(TOKEN, [b"Basic " + TOKEN.encode()], False, id="another scheme"),
        pytest.param(TOKEN, [b"Bearer " + TOKEN.encode()] * 2, False, id="two headers"),
    ],
)
def test_allows_only_the_metrics_token(token: str | None, sent: list[bytes], allowed: bool) -> None:
    assert meter(token).allows(sent) is allowed


def test_methods_outside_the_fixed_set_are_counted_as_other() -> None:
    counted = meter()
    counted.started()
    counted.finished("BREW", "/patients/1", 405, 0.001)
    text = counted.exposition(None).decode()

    assert 'method="other",route="/patients/{id}",status="405"' in text
    assert "BREW" not in text


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        pytest.param(store.PoolBusy(), "server_busy", id="a busy pool"),
        pytest.param(asyncpg.LockNotAvailableError("lock"), "import_running", id="an import"),
        pytest.param(ConnectionRefusedError(), "database_unavailable", id="no database"),
        pytest.param(TimeoutError(), "database_unavailable", id="a timeout"),
        pytest.param(asyncpg.TooManyConnectionsError("full"), "database_busy", id="too many"),
    ],
)
def test_each_database_failure_is_counted_by_its_kind(error: Exception, kind: str) -> None:
    counted: list[str] = []
    response = app._failure_response(error, "request-1", count=counted.append)

    assert response.status_code == 503
    assert counted == [kind]
    assert kind in metrics.DATABASE_FAILURES


def test_a_bug_is_no_database_failure() -> None:
    counted: list[str] = []
    assert app._failure_response(ValueError(), "request-1", count=counted.append).status_code == 500
    assert counted == []


def test_the_import_buckets_are_the_importers() -> None:
    assert store.IMPORT_BUCKETS == importer.BUCKETS
