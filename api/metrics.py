"""Prometheus metrics on a registry of the app's own: requests by route template, the pool,
database failures and imports, rendered for GET /metrics (docs/metrics.md).

Every label value comes from a fixed set (route templates, methods, status codes, kinds,
buckets): never a path with an id, a query string or anything a patient's record holds."""

from __future__ import annotations

import dataclasses
import hmac
import re
from collections.abc import Iterable, Iterator, Sequence

from databases import Database
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.routing import BaseRoute, Mount, Route

from api import store

PATH = "/metrics"
# The text format every Prometheus version reads (generate_latest writes it by default).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
UNMATCHED = "unmatched"  # the route label of a path no route serves
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
OTHER_METHOD = "other"  # a client may send any token as its method
# The database failures the app answers differently (app._failure_response), by error code.
DATABASE_FAILURES = ("database_unavailable", "database_busy", "server_busy", "import_running")
# GET by id answers in about a millisecond, the costliest list in under a second.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
IMPORT_MODES = frozenset(("insert", "upsert"))  # import_runs_mode_known (migration 0004)
BEARER = b"bearer"


class RouteLabels:
    """A request's path -> the template of the route that serves it (`/patients/{id}`), or
    UNMATCHED: a dict lookup for the routes without parameters, a regular expression each for
    the few with."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self.exact: dict[str, str] = {}
        self.patterns: dict[str, re.Pattern[str]] = {}  # template -> path regex, routes' order
        for route in routes:
            if isinstance(route, Route) and not route.param_convertors:
                self.exact[route.path] = route.path
            elif isinstance(route, Route):
                self.patterns.setdefault(route.path, route.path_regex)
            elif isinstance(route, Mount):
                self.patterns.setdefault(f"{route.path}/{{path}}", route.path_regex)

    def __call__(self, path: str) -> str:
        found = self.exact.get(path)
        if found is not None:
            return found
        for template, pattern in self.patterns.items():
            if pattern.match(path):
                return template
        return UNMATCHED


class Metrics:
    """The app's registry and its instruments. Per request, `started()` and `finished()` cost a
    few dict lookups and increments: no I/O, nothing awaited, no lock held across an await.
    The pool and the import log are read only when scraped."""

    def __init__(self, routes: Sequence[BaseRoute], db: Database, token: str | None) -> None:
        self.registry = CollectorRegistry()
        self.route = RouteLabels(routes)
        self._token = None if token is None else token.encode()
        labels = ("route", "method", "status")
        self._requests = Counter(
            "registry_http_requests",
            "HTTP requests answered, by route template, method and status code",
            labels,
            registry=self.registry,
        )
        self._latency = Histogram(
            "registry_http_request_duration_seconds",
            "Time from a request's arrival to its answer's end, by route template, method, status",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._in_flight = Gauge(
            "registry_http_requests_in_flight",
            "HTTP requests being answered now",
            registry=self.registry,
        )
        self._database_errors = Counter(
            "registry_database_errors",
            "Requests failed by the database, by kind (the error code they were answered with)",
            ("kind",),
            registry=self.registry,
        )
        for kind in DATABASE_FAILURES:
            self._database_errors.labels(kind)  # every kind shows, at 0 until it happens
        self._instruments: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._imports = ImportLog()
        self.registry.register(PoolCollector(db))
        self.registry.register(self._imports)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def started(self) -> None:
        self._in_flight.inc()

    def finished(self, method: str, path: str, status: int, seconds: float) -> None:
        """Count an answered request; `path` is matched to its route's template here."""
        self._in_flight.dec()
        key = (self.route(path), method if method in METHODS else OTHER_METHOD, status)
        instruments = self._instruments.get(key)
        if instruments is None:  # once per route, method and status: a bounded set
            values = (key[0], key[1], str(status))
            instruments = (self._requests.labels(*values), self._latency.labels(*values))
            self._instruments[key] = instruments
        instruments[0].inc()
        instruments[1].observe(seconds)

    def database_error(self, kind: str) -> None:
        self._database_errors.labels(kind).inc()

    def allows(self, authorization: list[bytes]) -> bool:
        """Whether a scrape may read the metrics: always without METRICS_TOKEN; else with one
        `Authorization: Bearer <METRICS_TOKEN>` header, compared in constant time."""
        if self._token is None:
            return True
        if len(authorization) != 1:
            return False
        scheme, _, given = authorization[0].partition(b" ")
        return scheme.lower() == BEARER and hmac.compare_digest(given.strip(), self._token)

    def exposition(self, imports: list[store.ImportTotals] | None) -> bytes:
        """The text format of every metric, with the import log as just read (None: unread).
        Nothing is awaited between taking `imports` and rendering, so concurrent scrapes each
        render their own reading."""
        self._imports.latest = imports
        return generate_latest(self.registry)


class PoolCollector:
    """The connection pool's gauges, read when scraped (store.pool_state); none before the
    pool is open."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[Metric]:
        pool = store.pool_state(self._db)
        if pool is None:
            return
        size, idle = pool.get_size(), pool.get_idle_size()
        gauges = (
            ("registry_db_pool_connections", "Connections open in the pool", size),
            ("registry_db_pool_max_connections", "Most connections the pool opens (DB_POOL_MAX)",
             pool.get_max_size()),
            ("registry_db_pool_idle_connections", "Open connections not in use", idle),
            ("registry_db_pool_in_use_connections", "Connections in use by requests", size - idle),
            ("registry_db_pool_waiting_requests", "Requests waiting for a free connection",
             pool.waiting),
        )  # fmt: skip
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value=value)


@dataclasses.dataclass(eq=False)  # a registry keeps its collectors in a dict
class ImportLog:
    """What `python -m seed` imported, from the import log (import_runs) as the scrape read
    it: runs and records by mode and bucket, and when the last run of each mode started.
    The importer is another process, so the database is where its runs are known."""

    latest: list[store.ImportTotals] | None = None

    def collect(self) -> Iterator[Metric]:
        readable = GaugeMetricFamily(
            "registry_import_log_readable",
            "1 when this scrape read the import log, 0 when the database did not answer in time",
            value=int(self.latest is not None),
        )
        yield readable
        if self.latest is None:
            return
        runs = CounterMetricFamily(
            "registry_import_runs", "Imports recorded in the import log, by mode", labels=["mode"]
        )
        records = CounterMetricFamily(
            "registry_import_records",
            "Records of every recorded import, by mode and bucket",
            labels=["mode", "bucket"],
        )
        last = GaugeMetricFamily(
            "registry_import_last_run_timestamp_seconds",
            "When the last recorded import of each mode started (Unix time)",
            labels=["mode"],
        )
        for totals in self.latest:
            if totals.mode not in IMPORT_MODES:
                continue
            runs.add_metric([totals.mode], totals.runs)
            last.add_metric([totals.mode], totals.last_started)
            for bucket, count in zip(store.IMPORT_BUCKETS, totals.records, strict=True):
                records.add_metric([totals.mode, bucket], count)
        yield from (runs, records, last)
