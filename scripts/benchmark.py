"""The benchmark: our API against json-server 0.17.4 and a bare asyncpg "driver ceiling", with wrk.

It sets everything up itself: a throwaway PostgreSQL 17 cluster (scripts/localpg.py), the
migrations, N deterministic patients loaded with COPY, the same records as a db.json for
json-server, our API started exactly as production starts it (`sh docker/serve`), and wrk.
GET by id also runs on our API signed in (AUTH_MODE=entra, trusting a local OpenID provider from
scripts/localoidc.py, a user's bearer token on every request); that needs Node.js and npm.
POST and PATCH also run on our API without its audit trail (AUDIT_TRAIL=false), on its own copy
of the same database, to show what writing an audit event with every change costs. GET by id
also runs on our API with METRICS=on, to show what counting every request costs.
It measures what users send: the searches are terms typed into a search box, a few unanchored
letters chosen from each size's own records (fixed seed; each matching 1-30 % of the records, one
rare term matching ~1 %), and the original frontend loads the whole list, many clients at once
(the crowd: 50 connections, our API's peak resident memory sampled meanwhile).
It prints figures, checks them against the targets (each target's figure: met or missed) and
saves them as JSON; it asserts nothing.

    scripts/benchmark [--sizes 1000,10000,100000] [--duration 10] [--connections 16]
        [--scenarios like,q,crowd] [--instances 2] [--skip-json-server] [--explain]
        [--output FILE]

With --instances N, our API (and the ceiling) run as N uvicorn workers on one port
(WEB_CONCURRENCY=N, as docker/serve passes it): N processes, each with its own pool, like N
instances behind a load balancer. The JSON's "capacity" rows are one line per scenario and server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import http.client
import json
import operator
import os
import pathlib
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import FrameType
from typing import Any

import asyncpg
import psycopg
from psycopg import sql

import localoidc
import localpg

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # api and migrator, when run as `python scripts/benchmark.py`

from api import query, sqlquery  # noqa: E402
from migrator import runner  # noqa: E402

CACHE = REPO / ".cache"
DEFAULT_OUTPUT = CACHE / "benchmark-results.json"
JSON_SERVER_VERSION = "0.17.4"
# tests/contract/jsonserver.py installs a pinned copy in the first; reused when present.
JSON_SERVER_DIRS = (CACHE / "json-server", CACHE / "json-server-bench")
JSON_SERVER_BIN = pathlib.Path("node_modules", "json-server", "lib", "cli", "bin.js")
# Only memory and durability differ from a stock server: the planner's costs stay as shipped.
PG_SETTINGS = {
    "shared_buffers": "512MB",
    "effective_cache_size": "4GB",
    "work_mem": "16MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
}
PG_FAST = "fsync=off, synchronous_commit=off, full_page_writes=off (a throwaway cluster)"
DB_POOL_MAX = "10"  # our API's default pool size, per instance; the driver ceiling gets the same
# Servers of ours that may hold pool connections at once: ours, the ceiling, signed-in, unaudited.
SERVERS_AT_ONCE = 4
STOCK_MAX_CONNECTIONS = 100
UVICORN_FLAGS = ("--no-access-log", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1")
WRK_TIMEOUT = "60s"
READY_TIMEOUT_SECONDS = 120.0
VACUUM_ATTEMPTS = 10
QUIET_SHARE = 0.15  # other processes' CPU share under which the machine counts as quiet
NOISY_SHARE = 0.25  # above this during a measurement, it is measured again
SETTLED_CORES = 0.1  # the benchmark's own servers and PostgreSQL count as idle under this
SETTLE_WAIT_SECONDS = 90.0  # json-server takes ~1 min to finish 50 abandoned whole lists
WHOLE_LIST_MAX_SIZE = 100_000  # json-server answers ~20 MB per whole list at 100,000
WHOLE_LISTS = frozenset({"whole_list", "crowd"})  # not run above WHOLE_LIST_MAX_SIZE
# Many browsers loading the whole list at once, whatever --connections says.
CROWD_CONNECTIONS = 50
RSS_INTERVAL_SECONDS = 0.05
# The rare term's target is a latency at the default load, whatever --connections says.
RARE_CONNECTIONS = 16
# Fewer connections for answers of megabytes: the whole list from 100,000 patients on, and the
# q and name_like answers (37,000 and 93,000 records at 1,000,000) above it.
BIG_LIST_SIZE = 100_000
BIG_LIST_CONNECTIONS = 4
PAGE_SIZE = 20
SIGNED_IN = "signed-in"  # our API with AUTH_MODE=entra, called with a user's bearer token
SIGNED_IN_USER = "reader"
TOKEN_TTL_SECONDS = 6 * 3600  # the one token of a run must outlive the run
UNAUDITED = "unaudited"  # our API with AUDIT_TRAIL=false, on its own copy of the database
UNAUDITED_ENV = {"AUDIT_TRAIL": "false"}
METERED = "metrics-on"  # our API with METRICS=on (ours runs with the default, off)
METERED_ENV = {"METRICS": "on"}
# The servers measured alternately, in this order, for --rounds rounds (median of each).
ROUNDS = {
    "get_by_id": ("ours", "ceiling", SIGNED_IN, METERED),
    "post": ("ours", UNAUDITED),
    "patch": ("ours", UNAUDITED),
}

SEED = 20261122
FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony",
    "Sandra", "Mark", "Ashley", "Donald", "Kimberly", "Steven", "Emily", "Andrew", "Donna", "Paul",
    "Michelle", "Joshua", "Carol", "Kenneth", "Amanda", "Kevin", "Melissa", "Brian", "Deborah",
    "George", "Stephanie", "Timothy", "Rebecca", "Jordan", "Joan", "Ronald", "Laura", "Edward",
    "Sharon", "Jason", "Cynthia", "Léa", "Søren", "Zoë", "José", "Ana", "Chloé",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Álvarez", "Ørsted", "Müller", "O'Brien",
)  # fmt: skip
GENDERS = {"Female": 48, "Male": 48, "Other": 3, "Unknown": 1}
CONDITIONS = (
    "Hypertension", "Type 2 Diabetes", "Asthma", "Migraine", "Arthritis", "Depression",
    "Anxiety", "COPD", "Hyperlipidemia", "Hypothyroidism", "Allergic Rhinitis", "Back Pain",
)  # fmt: skip
PROVIDERS = ("Aetna", "Cigna", "Humana", "Kaiser Permanente", "Blue Cross", "UnitedHealthcare")
PLANS = ("HMO", "PPO", "EPO", "POS")
FIRST_VISIT = datetime.date(2015, 1, 1)
VISIT_DAYS = (datetime.date(2025, 12, 31) - FIRST_VISIT).days
INSURED_SHARE = 0.05
# Typed search terms: a few lowercase ASCII letters from the records' own values, one per length,
# each matching a share of the records in TERM_SHARES; the rare term's share is nearest RARE_SHARE.
TERM_LENGTHS = (2, 2, 3, 3, 4, 4, 5, 5)
TERM_SHARES = (0.01, 0.30)
RARE_LENGTHS = (3, 4, 5)
RARE_SHARE = 0.01
LETTER_RUN = re.compile(r"[a-z]{2,}")
COPY_COLUMNS = (
    "id", "patient_id", "name", "age", "gender", "medical_condition", "last_visit", "extra",
)  # fmt: skip

# wrk runs this in each thread; `tid` is set by setup() so POSTed patientIDs never collide.
LUA_PRELUDE = """
next_thread = 0
tid = 0
counter = 0
json_headers = {["Content-Type"] = "application/json"}
function setup(thread)
  next_thread = next_thread + 1
  thread:set("tid", next_thread)
end
function init(args)
  math.randomseed(@SEED@ + tid * 7919)
end
"""


Headers = tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    request: str  # the body of wrk's Lua request(); @N@, @PAGES@, @TAG@, @TERMS@ are filled in
    sample: str = ""  # a path both servers must answer alike before they are measured; @TERM@
    write: bool = False
    connections: int = 0  # wrk's connections whatever --connections says; 0: as it says
    watch_memory: bool = False  # sample our API's resident memory while wrk runs
    terms: tuple[str, ...] = ()  # the search terms of the size measured (with_terms)

    def lua(self, size: int, tag: str, headers: Headers = ()) -> str:
        body = self.request.replace("@N@", str(size)).replace("@TAG@", tag)
        body = body.replace("@PAGES@", str(max(size // PAGE_SIZE, 1)))
        body = body.replace("@TERMS@", "{" + ", ".join(map(json.dumps, self.terms)) + "}")
        prelude = LUA_PRELUDE.replace("@SEED@", str(SEED)) + lua_headers(headers)
        return f"{prelude}\nrequest = function()\n{textwrap.indent(body, '  ')}\nend\n"

    @property
    def sample_path(self) -> str:
        return self.sample.replace("@TERM@", self.terms[0] if self.terms else "")

    def with_terms(self, terms: dict[str, tuple[Term, ...]]) -> Scenario:
        chosen = terms.get(self.key, ())
        return dataclasses.replace(self, terms=tuple(term.text for term in chosen))


def lua_headers(headers: Headers) -> str:
    """Lua adding `headers` to every request: wrk.format's defaults and the JSON requests'."""
    return "".join(
        f"{table}[{json.dumps(name)}] = {json.dumps(value)}\n"
        for name, value in headers
        for table in ("wrk.headers", "json_headers")
    )


GET_BY_ID = Scenario(
    "get_by_id",
    "GET by id",
    'return wrk.format("GET", "/patients/" .. math.random(1, @N@))',
    "/patients/1",
)
WHOLE_LIST = Scenario(
    "whole_list", "whole list", 'return wrk.format("GET", "/patients")', "/patients"
)
FILTERED_SORT = "/patients?gender=Female&_sort=age&_order=desc&_page=1&_limit=20"
UNPAGED = frozenset({"whole_list", "q", "like"})  # BIG_LIST_CONNECTIONS above BIG_LIST_SIZE
PICK_TERM = "local terms = @TERMS@\nlocal term = terms[math.random(#terms)]\n"
SCENARIOS = (
    GET_BY_ID,
    WHOLE_LIST,
    Scenario(
        "page",
        "page of 20 + total",
        'return wrk.format("GET", "/patients?_page=" .. math.random(1, @PAGES@) .. "&_limit=20")',
        "/patients?_page=3&_limit=20",
    ),
    Scenario(
        "q",
        "q, typed terms",
        PICK_TERM + 'return wrk.format("GET", "/patients?q=" .. term)',
        "/patients?q=@TERM@",
    ),
    Scenario(
        "like",
        "name_like, typed",
        PICK_TERM + 'return wrk.format("GET", "/patients?name_like=" .. term)',
        "/patients?name_like=@TERM@",
    ),
    Scenario(
        "like_rare",
        "name_like, rare",
        PICK_TERM + 'return wrk.format("GET", "/patients?name_like=" .. term)',
        "/patients?name_like=@TERM@",
        connections=RARE_CONNECTIONS,
    ),
    Scenario(
        "crowd",
        f"whole list x{CROWD_CONNECTIONS}",
        'return wrk.format("GET", "/patients")',
        "/patients",
        connections=CROWD_CONNECTIONS,
        watch_memory=True,
    ),
    Scenario(
        "filtered_sort",
        "filter+sort page",
        f'return wrk.format("GET", "{FILTERED_SORT}")',
        FILTERED_SORT,
    ),
    Scenario(
        "post",
        "POST",
        "counter = counter + 1\n"
        "local body = string.format("
        '\'{"patientID":"B-@TAG@-%d-%d","name":"Bench Mark","age":%d,"gender":"Female",'
        '"medicalCondition":"Asthma","lastVisit":"2024-03-01"}\', '
        "tid, counter, math.random(0, 100))\n"
        'return wrk.format("POST", "/patients", json_headers, body)',
        write=True,
    ),
    Scenario(
        "patch",
        "PATCH",
        'return wrk.format("PATCH", "/patients/" .. math.random(1, @N@), json_headers, '
        "'{\"age\":' .. math.random(0, 100) .. '}')",
        write=True,
    ),
)
# (scenario, against, minimum ours/against, sizes it applies to; empty: every size)
TARGETS = (
    ("get_by_id", "ceiling", 0.9, ()),
    ("page", "json-server", 20.0, (100_000,)),
    ("q", "json-server", 5.0, (100_000,)),
    ("like", "json-server", 5.0, (100_000,)),
    ("filtered_sort", "json-server", 5.0, (100_000,)),
    ("post", "json-server", 50.0, (100_000,)),
    ("patch", "json-server", 50.0, (100_000,)),
    ("whole_list", "json-server", 2.0, (10_000, 100_000)),
    ("crowd", "json-server", 4.0, (100_000,)),
)
# (scenario, server, against, minimum server/against) at every size: servers besides json-server
SIDE_TARGETS = (
    ("get_by_id", SIGNED_IN, "ours", 0.8),
    ("get_by_id", METERED, "ours", 0.9),
    ("post", "ours", UNAUDITED, 0.7),
    ("patch", "ours", UNAUDITED, 0.7),
)


@dataclasses.dataclass(frozen=True)
class Limit:
    """A target on a figure of ours rather than a ratio: `figure comparison value`."""

    scenario: str
    figure: str  # a key of FIGURES
    comparison: str  # a key of COMPARISONS
    value: float
    sizes: tuple[int, ...] = ()  # the sizes it applies to; empty: every size


LIMITS = (
    Limit("get_by_id", "p99", "<", 10.0),
    Limit("like_rare", "p99", "<", 300.0),
    Limit("crowd", "peak RSS per instance", "<", 150.0, (100_000,)),
    Limit("crowd", "failures", "==", 0, (100_000,)),
)
FIGURES: dict[str, tuple[Callable[[dict[str, Any]], float | None], str]] = {
    "p99": (lambda result: result["latency_ms"].get("99"), " ms"),
    "peak RSS per instance": (lambda result: result["peak_instance_rss_mib"], " MiB"),
    "failures": (lambda result: result["non_2xx"] + result["socket_errors"], ""),
}
COMPARISONS = {"<": operator.lt, "==": operator.eq}

CEILING_APP = '''
"""Driver ceiling: one route, one asyncpg pool fetchrow by id, the row's JSON sent as it is."""

import contextlib
import os

import asyncpg
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

SQL = "SELECT p.wire FROM patients AS p WHERE p.id = $1"  # the statement our API runs


async def patient(request):
    row = await request.app.state.pool.fetchrow(SQL, request.path_params["id"])
    if row is None:
        return Response("{}", status_code=404, media_type="application/json")
    return Response(row[0], media_type="application/json; charset=utf-8")


@contextlib.asynccontextmanager
async def lifespan(app):
    app.state.pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=0, max_size=int(os.environ["DB_POOL_MAX"])
    )
    yield
    await app.state.pool.close()


def create_app():
    return Starlette(routes=[Route("/patients/{id:int}", patient)], lifespan=lifespan)
'''


class BenchmarkError(RuntimeError):
    """Something could not be set up or measured; the message says what, and how to fix it."""


class Busy(BenchmarkError):
    """The server answered 503: its database pool or statements timed out."""


@dataclasses.dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...]
    scenarios: tuple[str, ...]
    duration: int
    warmup: int
    connections: int
    threads: int
    skip_json_server: bool
    explain: bool
    quiet_wait: float
    retries: int
    rounds: int
    output: pathlib.Path
    instances: int = 1

    @property
    def connection_budget(self) -> int:
        """PostgreSQL connections one server of ours may hold: instances x pool max."""
        return self.instances * int(DB_POOL_MAX)

    @property
    def max_connections(self) -> int:
        """The throwaway cluster's max_connections: stock, unless every server of ours at its
        budget needs more (a benchmark artefact: production runs one server of ours)."""
        return max(STOCK_MAX_CONNECTIONS, SERVERS_AT_ONCE * self.connection_budget + 10)


@dataclasses.dataclass(frozen=True)
class Measurement:
    requests_per_second: float  # wrk's figure: every answer, errors included
    ok_per_second: float  # 2xx answers only: what the tables and ratios use
    latency_ms: dict[str, float]  # "50", "75", "90", "99" -> milliseconds
    requests: int
    non_2xx: int
    socket_errors: int
    connections: int
    duration_seconds: int
    other_cpu: float = 0.0  # share of the machine's CPU used by processes not ours meanwhile
    # Our API's peak resident memory, when the scenario watches it: its processes summed (the
    # supervisor and every worker), and the largest single process (one instance's).
    peak_rss_mib: float | None = None
    peak_instance_rss_mib: float | None = None
    processes: int = 0  # how many processes were summed


# --- data ---------------------------------------------------------------------------------------


def generate_patients(size: int, seed: int = SEED) -> list[dict[str, Any]]:
    """`size` json-server records with ids 1..size; the same seed gives the same records."""
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    genders, weights = list(GENDERS), list(GENDERS.values())
    records = []
    for number in range(1, size + 1):
        record: dict[str, Any] = {
            "id": number,
            "patientID": f"P{number:07d}",
            "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            "age": rng.randint(0, 100),
            "gender": rng.choices(genders, weights)[0],
            "medicalCondition": rng.choice(CONDITIONS),
            "lastVisit": (FIRST_VISIT + datetime.timedelta(rng.randrange(VISIT_DAYS))).isoformat(),
        }
        if rng.random() < INSURED_SHARE:
            record["insurance"] = {
                "provider": rng.choice(PROVIDERS),
                "plan": rng.choice(PLANS),
                "memberNumber": f"M{rng.randrange(10**8):08d}",
            }
        records.append(record)
    return records


def copy_record(record: dict[str, Any]) -> tuple[Any, ...]:
    """A record as a row for COPY; storage_order and search_text are generated by PostgreSQL."""
    extra = {"insurance": record["insurance"]} if "insurance" in record else {}
    return (
        record["id"],
        record["patientID"],
        record["name"],
        record["age"],
        record["gender"],
        record["medicalCondition"],
        datetime.date.fromisoformat(record["lastVisit"]),
        json.dumps(extra),
    )


async def load_patients(url: str, records: list[dict[str, Any]]) -> None:
    connection = await asyncpg.connect(url)
    try:
        rows = map(copy_record, records)
        await connection.copy_records_to_table("patients", records=rows, columns=COPY_COLUMNS)
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence('patients', 'id'), max(id)) FROM patients"
        )
        await settle(connection)
    finally:
        await connection.close()


async def settle(connection: asyncpg.Connection) -> None:
    """VACUUM ANALYZE until the visibility map covers the table, as autovacuum soon would.

    Right after a bulk load, VACUUM can find the new rows not yet visible to every snapshot (an
    autovacuum worker's), and index-only scans would then read every heap row.
    """
    for _ in range(VACUUM_ATTEMPTS):
        await connection.execute("VACUUM (ANALYZE) patients")
        pages, visible = await connection.fetchrow(
            "SELECT relpages, relallvisible FROM pg_class WHERE oid = 'patients'::regclass"
        )
        if visible >= pages * 0.95:
            return
        await asyncio.sleep(1.0)
    say(f"VACUUM left {pages - visible} of {pages} pages not all-visible")


def write_db_json(records: list[dict[str, Any]], path: pathlib.Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump({"patients": records}, handle, ensure_ascii=False)


# --- typed search terms -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Term:
    text: str
    share: float  # of the records it matches


def choose_terms(records: list[dict[str, Any]]) -> dict[str, tuple[Term, ...]]:
    """The terms each search scenario sends at this size, the same for the same records.

    name_like and q with a term of ASCII letters are both a case-insensitive substring test:
    of the name, and of any value of the record (json-server's q reads nested values too)."""
    names = [record["name"] for record in records]
    conditions = {record["medicalCondition"] for record in records}
    name_texts = letter_runs(names)
    rng = random.Random(SEED)  # noqa: S311 (test data, not secrets)
    return {
        "like": typed_terms(name_texts, set(names), rng),
        "q": typed_terms(letter_runs(map(record_text, records)), {*names, *conditions}, rng),
        "like_rare": (rare_term(name_texts, set(names)),),
    }


def record_text(record: dict[str, Any]) -> str:
    return "\n".join(leaf_values(record))


def leaf_values(value: Any) -> Iterator[str]:
    if isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from leaf_values(item)
    else:
        yield str(value)


def letter_runs(texts: Iterable[str]) -> Counter[str]:
    """How many records have each text, reduced to its runs of ASCII letters: a term of ASCII
    letters can only match inside one, and the ids, dates and numbers left out make records
    alike count once (a few thousand distinct texts instead of a million)."""
    return Counter(" ".join(LETTER_RUN.findall(text.lower())) for text in texts)


def match_share(term: str, texts: Counter[str]) -> float:
    return sum(count for text, count in texts.items() if term in text) / texts.total()


def candidates(values: Iterable[str], length: int) -> list[str]:
    """The distinct lowercase ASCII-letter substrings of `length` characters of `values`."""
    found: set[str] = set()
    for value in values:
        for run in LETTER_RUN.findall(value.lower()):
            found.update(run[start : start + length] for start in range(len(run) - length + 1))
    return sorted(found)


def typed_terms(texts: Counter[str], values: set[str], rng: random.Random) -> tuple[Term, ...]:
    """A term of each of TERM_LENGTHS, drawn from `values`, matching a share in TERM_SHARES."""
    low, high = TERM_SHARES
    chosen: dict[str, Term] = {}
    for length in TERM_LENGTHS:
        drawn = candidates(values, length)
        rng.shuffle(drawn)
        for text in drawn:
            if text not in chosen and low <= (share := match_share(text, texts)) <= high:
                chosen[text] = Term(text, round(share, 4))
                break
    if not chosen:
        raise BenchmarkError(f"no term of {TERM_LENGTHS} letters matches {low:.0%}-{high:.0%}")
    return tuple(chosen.values())


def rare_term(texts: Counter[str], values: set[str]) -> Term:
    """The term of RARE_LENGTHS letters whose share is nearest RARE_SHARE (the first in order)."""
    drawn = sorted({text for length in RARE_LENGTHS for text in candidates(values, length)})
    shares = {text: match_share(text, texts) for text in drawn}
    text = min(drawn, key=lambda text: abs(shares[text] - RARE_SHARE))
    return Term(text, round(shares[text], 4))


def describe_terms(terms: tuple[Term, ...]) -> str:
    return ", ".join(f"{term.text} {term.share:.1%}" for term in terms)


# --- PostgreSQL ---------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres(workdir: pathlib.Path, max_connections: int) -> Iterator[localpg.Cluster]:
    """A throwaway PostgreSQL 17 cluster, tuned for the benchmark by PG_SETTINGS."""
    cluster = localpg.Cluster(
        bin_dir=localpg.ensure_binaries(CACHE / "pg17"),
        data_dir=workdir / "pgdata",
        port=localpg.free_port(),
    )
    cluster.init(fast=True)
    with (cluster.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.writelines(f"{name} = '{value}'\n" for name, value in PG_SETTINGS.items())
        conf.write(f"max_connections = {max_connections}\n")
    cluster.start(fast=True, log_file=workdir / "postgres.log")
    try:
        yield cluster
    finally:
        cluster.stop(mode="immediate")


def postmaster_pid(cluster: localpg.Cluster) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


@contextlib.contextmanager
def database(cluster: localpg.Cluster, name: str, template: str | None = None) -> Iterator[str]:
    """A new database with every migration applied, or a copy of `template` (nobody may be
    connected to it meanwhile); dropped afterwards."""
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(cluster.url(), autocommit=True) as connection:
        connection.execute(create)
    url = cluster.url(name)
    try:
        if template is None:
            runner.apply(url)
        yield url
    finally:
        with psycopg.connect(cluster.url(), autocommit=True) as connection:
            drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            connection.execute(drop)


# --- servers ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Server:
    name: str
    port: int
    pid: int
    headers: Headers = ()  # sent with every request: wrk's, the checks' and readiness polls

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def http_get(server: Server, path: str) -> tuple[Any, str | None]:
    """The parsed JSON body and X-Total-Count of a GET that must answer 200."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
    try:
        connection.request("GET", path, headers=dict(server.headers))
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        error = Busy if response.status == 503 else BenchmarkError
        raise error(f"{server.name} answered {response.status} to GET {path}")
    return json.loads(body), response.getheader("X-Total-Count")


@contextlib.contextmanager
def serving(
    name: str,
    argv: Sequence[str],
    port: int,
    env: dict[str, str],
    log: pathlib.Path,
    *,
    headers: Headers = (),
) -> Iterator[Server]:
    """Run `argv` in its own session until `/patients/1` answers; SIGTERM it afterwards."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=output, stderr=output, start_new_session=True
        )
    server = Server(name, port, process.pid, headers)
    try:
        _wait_ready(server, process, log)
        yield server
    finally:
        _stop(process)


def _wait_ready(server: Server, process: subprocess.Popen[bytes], log: pathlib.Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise BenchmarkError(f"{server.name} exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(OSError, http.client.HTTPException, BenchmarkError):
            http_get(server, "/patients/1")
            return
        time.sleep(0.2)
    raise BenchmarkError(f"{server.name} did not answer within {READY_TIMEOUT_SECONDS:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def python_env(database_url: str, port: int, instances: int) -> dict[str, str]:
    """The environment of a uvicorn of ours: `instances` workers (uvicorn reads WEB_CONCURRENCY,
    docker/serve passes it as --workers), each with its own pool of DB_POOL_MAX."""
    return {
        **os.environ,
        "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATABASE_URL": database_url,
        "DB_POOL_MAX": DB_POOL_MAX,
        "WEB_CONCURRENCY": str(instances),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def our_api(
    database_url: str,
    workdir: pathlib.Path,
    instances: int,
    *,
    name: str = "ours",
    settings: dict[str, str] | None = None,
    headers: Headers = (),
) -> contextlib.AbstractContextManager[Server]:
    """Our API as production starts it: `docker/serve`, `instances` uvicorn workers, JSON access
    log; `settings` add to (or override) its environment, `headers` go with every request."""
    port = localpg.free_port()
    env = python_env(database_url, port, instances) | (settings or {})
    log = workdir / f"{name}.log"
    return serving(name, ["sh", "docker/serve"], port, env, log, headers=headers)


@contextlib.contextmanager
def unaudited_api(
    cluster: localpg.Cluster, template: str, workdir: pathlib.Path, instances: int
) -> Iterator[Server]:
    """Our API with AUDIT_TRAIL=false on its own copy of `template`: its writes start from the
    same rows as ours and never share a table with them."""
    started = time.monotonic()
    with database(cluster, f"{template}_{UNAUDITED}", template) as url:
        say(f"{template} copied for {UNAUDITED} in {time.monotonic() - started:.1f} s")
        with our_api(url, workdir, instances, name=UNAUDITED, settings=UNAUDITED_ENV) as server:
            yield server


@contextlib.contextmanager
def metered_api(database_url: str, workdir: pathlib.Path, instances: int) -> Iterator[Server]:
    """Our API with METRICS=on; it must answer /metrics, so the setting took effect, and it
    says how many GET by id it counted when the run ends."""
    with our_api(database_url, workdir, instances, name=METERED, settings=METERED_ENV) as server:
        counted_gets(server)
        yield server
        say(f"{METERED} counted {counted_gets(server):,.0f} answered GET /patients/{{id}}")


def counted_gets(server: Server) -> float:
    """The 200s to GET /patients/{id} that `server`'s /metrics counted."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    if response.status != 200:
        raise BenchmarkError(f"{server.name} answered {response.status} to GET /metrics")
    sample = 'registry_http_requests_total{method="GET",route="/patients/{id}",status="200"} '
    return sum(float(line[len(sample) :]) for line in text.splitlines() if line.startswith(sample))


def ceiling_app(
    database_url: str, workdir: pathlib.Path, instances: int
) -> contextlib.AbstractContextManager[Server]:
    """The bare Starlette + asyncpg app, served with docker/serve's uvicorn flags and workers."""
    (workdir / "ceiling.py").write_text(CEILING_APP, encoding="utf-8")
    port = localpg.free_port()
    argv = ["uvicorn", "--app-dir", str(workdir), "--factory", "ceiling:create_app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), *UVICORN_FLAGS]
    env = python_env(database_url, port, instances)
    return serving("ceiling", argv, port, env, workdir / "ceiling.log")


def json_server(
    bin_js: pathlib.Path, db_json: pathlib.Path, workdir: pathlib.Path
) -> contextlib.AbstractContextManager[Server]:
    """`json-server db.json` with its defaults, as the mock ran (request log on, no --watch)."""
    port = localpg.free_port()
    argv = ["node", str(bin_js), str(db_json), "--port", str(port), "--host", "127.0.0.1"]
    return serving("json-server", argv, port, dict(os.environ), workdir / "json-server.log")


# --- sign-in -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SignIn:
    """What the signed-in server needs: settings trusting the provider, and its user's header."""

    env: dict[str, str]
    headers: Headers


@contextlib.contextmanager
def identity_provider(workdir: pathlib.Path) -> Iterator[SignIn | None]:
    """A local OpenID provider for the whole run, and one token of one user; None without
    Node.js or npm (the signed-in server is then skipped)."""
    config = localoidc.ProviderConfig.new(
        localoidc.user(SIGNED_IN_USER), access_token_ttl=TOKEN_TTL_SECONDS
    )
    provider: localoidc.RunningProvider | None = None
    with contextlib.ExitStack() as stack:
        try:
            log = workdir / "oidc-provider.log"
            provider = stack.enter_context(localoidc.serving(config, log=log))
        except localoidc.OidcUnavailable as error:
            say(f"{error}: the signed-in server is skipped (install Node.js and npm to run it)")
        yield None if provider is None else sign_in(provider)


def sign_in(provider: localoidc.RunningProvider) -> SignIn:
    env = {
        "AUTH_MODE": "entra",
        "ENTRA_AUTHORITY_HOST": provider.authority_host,
        "ENTRA_TENANT_ID": provider.tenant_id,
        "ENTRA_CLIENT_ID": provider.config.api_client_id,
    }
    token = provider.token(SIGNED_IN_USER)
    return SignIn(env, (("Authorization", f"Bearer {token}"),))


# --- tools --------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchmarkError("wrk is not installed: run `sudo apt-get install -y wrk` (Debian)")
    say("wrk is not installed: installing the Debian package with apt-get (running as root)")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BenchmarkError(f"`{' '.join(argv)}` failed:\n{result.stderr[-2000:]}")
    return shutil.which("wrk") or "wrk"


def ensure_json_server() -> pathlib.Path:
    """bin.js of json-server 0.17.4: the contract tests' pinned copy, else our own npm install."""
    for directory in JSON_SERVER_DIRS:
        package = directory / "node_modules" / "json-server" / "package.json"
        if package.is_file() and json.loads(package.read_text())["version"] == JSON_SERVER_VERSION:
            return directory / JSON_SERVER_BIN
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise BenchmarkError("json-server needs Node.js and npm on PATH (or --skip-json-server)")
    target = JSON_SERVER_DIRS[-1]
    target.mkdir(parents=True, exist_ok=True)
    say(f"installing json-server {JSON_SERVER_VERSION} into {target}")
    argv = ["npm", "install", "--no-audit", "--no-fund", f"json-server@{JSON_SERVER_VERSION}"]
    result = subprocess.run(argv, cwd=target, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchmarkError(f"`{' '.join(argv)}` failed:\n{result.stderr[-2000:]}")
    return target / JSON_SERVER_BIN


# --- other load on the machine ------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class CpuSnapshot:
    at: float
    busy: int  # ticks the whole machine has been busy since boot
    ours: int  # ticks of our process trees: this process, its children, PostgreSQL


def busy_ticks() -> int:
    first = pathlib.Path("/proc/stat").read_text().split("\n", 1)[0]
    ticks = [int(value) for value in first.split()[1:9]]
    return sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait


def family_ticks(roots: tuple[int, ...]) -> int:
    """CPU ticks of `roots` and their descendants, the children they waited for included."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):  # it may be gone
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
                ticks[int(entry.name)] = sum(map(int, fields[11:15]))  # u/s time, children's
    return sum(count for pid, count in ticks.items() if _descends(pid, parents, roots))


def _descends(pid: int, parents: dict[int, int], roots: tuple[int, ...]) -> bool:
    while pid > 1:
        if pid in roots:
            return True
        pid = parents.get(pid, 0)
    return False


def snapshot(roots: tuple[int, ...]) -> CpuSnapshot:
    return CpuSnapshot(time.monotonic(), busy_ticks(), family_ticks(roots))


def other_share(roots: tuple[int, ...], before: CpuSnapshot) -> float:
    """The share of all cores that processes not ours used since `before`."""
    now = snapshot(roots)
    capacity = (now.at - before.at) * CLOCK_TICKS * (os.cpu_count() or 1)
    other = (now.busy - before.busy) - (now.ours - before.ours)
    return round(min(max(other / capacity, 0.0), 1.0), 3) if capacity else 0.0


def wait_for_quiet(roots: tuple[int, ...], limit: float) -> None:
    """Wait up to `limit` seconds for other processes (other people's tests) to calm down."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = snapshot(roots)
        time.sleep(1.0)
        share = other_share(roots, before)
        if share < QUIET_SHARE:
            return
        say(f"other processes use {share:.0%} of the CPU: waiting for a quieter moment")


def wait_for_settled(roots: tuple[int, ...], limit: float) -> None:
    """Wait up to `limit` seconds for the benchmark's own processes (its servers, PostgreSQL)
    to go idle. A server still answering the last scenario's abandoned requests (json-server
    goes on building 50 whole lists for a minute after wrk gave up) would otherwise share the
    cores with the next server measured, unseen by other_share, which counts them as ours."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = snapshot(roots)
        time.sleep(1.0)
        now = snapshot(roots)
        cores = (now.ours - before.ours) / ((now.at - before.at) * CLOCK_TICKS)
        if cores < SETTLED_CORES:
            return
        say(f"the benchmark's servers still use {cores:.0%} of a core: waiting for them to settle")


def uvicorn_pid(server: Server) -> int:
    """The pid of the uvicorn serving `server`: `sh docker/serve` execs it, so usually the pid
    that was started, else a child of it."""
    children = [
        int(entry.parent.name)
        for entry in pathlib.Path("/proc").glob("[0-9]*/stat")
        if _parent(entry) == server.pid
    ]
    for pid in (server.pid, *children):
        with contextlib.suppress(OSError):
            if b"uvicorn" in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    raise BenchmarkError(f"no uvicorn process found under {server.name}'s pid {server.pid}")


def _parent(stat: pathlib.Path) -> int:
    with contextlib.suppress(OSError, IndexError, ValueError):  # it may be gone
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    return 0


def rss_mib(pid: int) -> float:
    """The resident memory of `pid` (VmRSS), in MiB; 0 once it is gone."""
    with contextlib.suppress(OSError):
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def process_tree(root: int) -> tuple[int, ...]:
    """`root` and its descendants: uvicorn's supervisor, its workers and their helpers."""
    children: dict[int, list[int]] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        children.setdefault(_parent(stat), []).append(int(stat.parent.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending += children.get(pid, [])
    return tuple(tree)


@dataclasses.dataclass(frozen=True)
class Memory:
    """Resident memory of a group of processes, in MiB."""

    total_mib: float = 0.0  # summed: what N instances on N machines would hold together
    largest_mib: float = 0.0  # the largest process: one instance's
    processes: int = 0  # those still running

    def peak(self, other: Memory) -> Memory:
        return Memory(
            max(self.total_mib, other.total_mib),
            max(self.largest_mib, other.largest_mib),
            max(self.processes, other.processes),
        )


def memory_of(pids: Iterable[int]) -> Memory:
    """The VmRSS of `pids` summed, and the largest; a process that is gone counts for nothing.
    RSS, not PSS: shared library pages count in every process, as they do on separate hosts."""
    sizes = [size for size in map(rss_mib, pids) if size]
    return Memory(round(sum(sizes), 1), round(max(sizes, default=0.0), 1), len(sizes))


def wait_idle(server: Server, limit: float = 60.0) -> None:
    """Wait until `server` stops using CPU (json-server rewrites its file after each write)."""
    deadline = time.monotonic() + limit
    last = family_ticks((server.pid,))
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = family_ticks((server.pid,))
        if now - last <= 1:
            return
        last = now


# --- wrk ----------------------------------------------------------------------------------------

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
WRK_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
WRK_TOTAL = re.compile(r"^\s+(\d+) requests in", re.MULTILINE)
WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(output: str, connections: int, duration: int) -> Measurement:
    """The figures of `wrk --latency` output."""
    rate = WRK_RATE.search(output)
    total = WRK_TOTAL.search(output)
    if rate is None or total is None:
        raise BenchmarkError(f"cannot read wrk's output:\n{output}")
    non_2xx = WRK_NON_2XX.search(output)
    socket = WRK_SOCKET.search(output)
    requests, failed = int(total.group(1)), int(non_2xx.group(1)) if non_2xx else 0
    return Measurement(
        requests_per_second=float(rate.group(1)),
        ok_per_second=round(float(rate.group(1)) * (requests - failed) / max(requests, 1), 1),
        latency_ms={
            percent: round(float(value) * UNITS_MS[unit], 3)
            for percent, value, unit in WRK_PERCENTILE.findall(output)
        },
        requests=requests,
        non_2xx=failed,
        socket_errors=sum(map(int, socket.groups())) if socket else 0,
        connections=connections,
        duration_seconds=duration,
    )


@dataclasses.dataclass(frozen=True)
class Load:
    """wrk, and what it needs to tell our CPU use from other people's."""

    wrk: str
    threads: int
    workdir: pathlib.Path
    roots: tuple[int, ...]  # this process (servers, wrk) and the postmaster

    def run(
        self, url: str, script: str, connections: int, duration: int, *, watch: int = 0
    ) -> Measurement:
        """wrk's figures; with `watch`, the peak resident memory of that pid and its descendants
        (found once, when wrk starts: every worker is up after the warm-up) meanwhile too."""
        lua = self.workdir / "request.lua"
        lua.write_text(script, encoding="utf-8")
        threads = min(self.threads, connections)
        argv = [self.wrk, "--latency", "--timeout", WRK_TIMEOUT, "-t", str(threads)]
        argv += ["-c", str(connections), "-d", f"{duration}s", "-s", str(lua), url]
        before = snapshot(self.roots)
        watched = process_tree(watch) if watch else ()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = Memory()
        while watched and process.poll() is None:  # wrk writes its few lines only at the end
            peak = peak.peak(memory_of(watched))
            time.sleep(RSS_INTERVAL_SECONDS)
        stdout, stderr = process.communicate()
        other = other_share(self.roots, before)
        if process.returncode != 0:
            raise BenchmarkError(f"wrk failed ({process.returncode}): {stderr[-2000:]}")
        result = parse_wrk(stdout, connections, duration)
        if not watch:
            return dataclasses.replace(result, other_cpu=other)
        return dataclasses.replace(
            result,
            other_cpu=other,
            peak_rss_mib=peak.total_mib,
            peak_instance_rss_mib=peak.largest_mib,
            processes=peak.processes,
        )


# --- the run ------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"benchmark: {message}", file=sys.stderr, flush=True)


def scenarios_for(size: int, options: Options) -> tuple[Scenario, ...]:
    return tuple(
        scenario
        for scenario in SCENARIOS
        if scenario.key in options.scenarios
        and (scenario.key not in WHOLE_LISTS or size <= WHOLE_LIST_MAX_SIZE)
    )


def connections_for(scenario: Scenario, size: int, options: Options) -> int:
    if scenario.connections:
        return scenario.connections
    big = size >= BIG_LIST_SIZE if scenario is WHOLE_LIST else size > BIG_LIST_SIZE
    if big and scenario.key in UNPAGED:
        return min(BIG_LIST_CONNECTIONS, options.connections)
    return options.connections


def patient_get(server: Server, path: str) -> tuple[Any, str | None]:
    """http_get, retried while the server is still busy with the last measurement's requests."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        try:
            return http_get(server, path)
        except Busy:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def check_alike(servers: Sequence[Server], scenario: Scenario) -> str:
    """Every server answers the sample request with the same records; returns how many."""
    answers = [patient_get(server, scenario.sample_path) for server in servers]
    for server, answer in zip(servers[1:], answers[1:], strict=True):
        if answer != answers[0]:
            names = f"{servers[0].name} and {server.name}"
            raise BenchmarkError(f"{names} answer {scenario.sample_path} differently")
    body, total = answers[0]
    return total or str(len(body) if isinstance(body, list) else 1)


def measure(
    load: Load,
    server: Server,
    scenario: Scenario,
    *,
    size: int,
    options: Options,
    round_number: int = 0,
) -> Measurement:
    """Warm up, then measure; again (up to --retries) when other processes were busy. The tag
    of POSTed patientIDs names the server, the round and the attempt: none is POSTed twice.
    Where the scenario watches memory, our API's is sampled while it is measured."""
    connections = connections_for(scenario, size, options)
    watch = uvicorn_pid(server) if scenario.watch_memory and server.name == "ours" else 0
    best: Measurement | None = None
    for attempt in range(options.retries + 1):
        wait_for_settled(load.roots, SETTLE_WAIT_SECONDS)
        wait_for_quiet(load.roots, options.quiet_wait)
        tag = f"{server.name[0]}{round_number}r{attempt}"
        if options.warmup:
            warmup = scenario.lua(size, tag + "w", server.headers)
            load.run(server.url, warmup, connections, options.warmup)
        script = scenario.lua(size, tag, server.headers)
        result = load.run(server.url, script, connections, options.duration, watch=watch)
        if scenario.write:
            wait_idle(server)
        if best is None or result.other_cpu < best.other_cpu:
            best = result
        if result.other_cpu <= NOISY_SHARE:
            break
        say(f"other processes used {result.other_cpu:.0%} of the CPU meanwhile")
    assert best is not None
    if best.non_2xx or best.socket_errors:
        say(f"{server.name}: {best.non_2xx} non-2xx answers, {best.socket_errors} socket errors")
    return best


def run_scenarios(
    size: int,
    load: Load,
    servers: dict[str, Server],
    options: Options,
    terms: dict[str, tuple[Term, ...]],
) -> dict[str, Any]:
    """Each scenario on json-server (when there) and ours; where ROUNDS names more servers
    (the driver ceiling, signed-in, unaudited), ours and those alternately."""
    figures: dict[str, Any] = {"scenarios": {}, "rows": {}, "connections": options.connections}
    for scenario in (scenario.with_terms(terms) for scenario in scenarios_for(size, options)):
        if scenario.sample:
            figures["rows"][scenario.key] = check_alike(alike(scenario, servers), scenario)
        alternating = [name for name in ROUNDS.get(scenario.key, ()) if name in servers]
        results: dict[str, Measurement] = {}
        for name in ("json-server", "ours"):
            if name in servers and name not in alternating:
                say(f"{size:,} patients: {scenario.title} on {name}")
                results[name] = measure(load, servers[name], scenario, size=size, options=options)
        if alternating:
            rounds = [servers[name] for name in alternating]
            results |= alternate_rounds(load, rounds, scenario, size, options)
        figures["scenarios"][scenario.key] = {
            name: dataclasses.asdict(result) for name, result in results.items()
        }
    return figures


def alike(scenario: Scenario, servers: dict[str, Server]) -> list[Server]:
    """Who must answer the sample alike: json-server (when there) and ours, and for GET by id
    signed-in too (the ceiling is left out: it sends the stored JSON as it is)."""
    names = (
        ("json-server", "ours", SIGNED_IN, METERED)
        if scenario is GET_BY_ID
        else ("json-server", "ours")
    )
    return [servers[name] for name in names if name in servers]


def alternate_rounds(
    load: Load, servers: Sequence[Server], scenario: Scenario, size: int, options: Options
) -> dict[str, Measurement]:
    """`scenario` on each of `servers` in turn, for --rounds rounds; each keeps its median round
    (by req/s). A single pair of measurements of GET by id swung from 0.70 to 1.11 between runs
    on this 2-core machine; alternating spreads the machine's moods over every side."""
    rounds: dict[str, list[Measurement]] = {server.name: [] for server in servers}
    for number in range(1, options.rounds + 1):
        for server in servers:
            title = f"{scenario.title} on {server.name}, round {number} of {options.rounds}"
            say(f"{size:,} patients: {title}")
            result = measure(
                load, server, scenario, size=size, options=options, round_number=number
            )
            say(f"  {result.ok_per_second:,.0f} req/s, p99 {result.latency_ms.get('99')} ms")
            rounds[server.name].append(result)
    return {
        name: sorted(found, key=lambda result: result.ok_per_second)[len(found) // 2]
        for name, found in rounds.items()
    }


def run_size(
    size: int,
    cluster: localpg.Cluster,
    load: Load,
    bin_js: pathlib.Path | None,
    options: Options,
    *,
    sign_in: SignIn | None,
) -> dict[str, Any]:
    workdir = load.workdir / str(size)
    workdir.mkdir()
    records = generate_patients(size)
    terms = choose_terms(records)
    name = f"bench_{size}"
    with database(cluster, name) as url:
        started = time.monotonic()
        asyncio.run(load_patients(url, records))
        loaded = round(time.monotonic() - started, 1)
        say(f"{size:,} patients loaded (COPY, VACUUM ANALYZE) in {loaded} s")
        if options.explain:
            asyncio.run(explain(url, size, terms))
        if bin_js is not None:
            write_db_json(records, workdir / "db.json")
        del records
        with contextlib.ExitStack() as stack:
            servers: dict[str, Server] = {}
            if unaudited_needed(options):  # copied before anything connects to the original
                unaudited = unaudited_api(cluster, name, workdir, options.instances)
                servers[UNAUDITED] = stack.enter_context(unaudited)
            servers["ours"] = stack.enter_context(our_api(url, workdir, options.instances))
            servers["ceiling"] = stack.enter_context(ceiling_app(url, workdir, options.instances))
            if sign_in is not None:
                signed_in = our_api(
                    url,
                    workdir,
                    options.instances,
                    name=SIGNED_IN,
                    settings=sign_in.env,
                    headers=sign_in.headers,
                )
                servers[SIGNED_IN] = stack.enter_context(signed_in)
            if GET_BY_ID.key in options.scenarios:
                servers[METERED] = stack.enter_context(metered_api(url, workdir, options.instances))
            if bin_js is not None:
                reference = json_server(bin_js, workdir / "db.json", workdir)
                servers["json-server"] = stack.enter_context(reference)
            figures = run_scenarios(size, load, servers, options, terms)
    figures["load_seconds"] = loaded
    figures["terms"] = {
        key: [dataclasses.asdict(term) for term in chosen] for key, chosen in terms.items()
    }
    return figures


def unaudited_needed(options: Options) -> bool:
    """Whether a scenario of this run alternates with the unaudited server (POST, PATCH)."""
    return any(UNAUDITED in ROUNDS.get(key, ()) for key in options.scenarios)


# --- EXPLAIN ------------------------------------------------------------------------------------


def list_statements(size: int, terms: dict[str, tuple[Term, ...]]) -> dict[str, sqlquery.Statement]:
    """The SQL that api/sqlquery.py generates for each list scenario (the middle page, the
    first term of each search)."""
    middle = size // PAGE_SIZE // 2
    q, like, rare = (terms[key][0].text for key in ("q", "like", "like_rare"))
    listings = {
        **({"whole list": ("", None, None)} if size <= WHOLE_LIST_MAX_SIZE else {}),
        f"page {middle} of 20 + total": (f"_page={middle}&_limit=20", (middle - 1) * 20, 20),
        f"q={q}": (f"q={q}", None, None),
        f"name_like={like}": (f"name_like={like}", None, None),
        f"name_like={rare} (rare)": (f"name_like={rare}", None, None),
        "filter+sort page": (FILTERED_SORT.split("?", 1)[1], 0, 20),
        "_sort=name page": (f"_sort=name&_page={middle}&_limit=20", (middle - 1) * 20, 20),
    }
    return {
        title: sqlquery.list_statement(query.parse(text), offset, limit)
        for title, (text, offset, limit) in listings.items()
    }


async def explain(url: str, size: int, terms: dict[str, tuple[Term, ...]]) -> None:
    connection = await asyncpg.connect(url)
    try:
        for title, statement in list_statements(size, terms).items():
            sql = f"EXPLAIN (ANALYZE, BUFFERS) {statement.sql}"
            rows = await connection.fetch(sql, *statement.params)
            plan = "\n".join(row[0] for row in rows)
            print(f"\n-- {size:,} patients, {title}:\n{statement.sql}\n{plan}", flush=True)
    finally:
        await connection.close()


# --- report -------------------------------------------------------------------------------------


def ratio(ours: dict[str, Any] | None, other: dict[str, Any] | None) -> float | None:
    if not ours or not other or not other["ok_per_second"]:
        return None
    mine: float = ours["ok_per_second"]
    theirs: float = other["ok_per_second"]
    return round(mine / theirs, 2)


def cell(figure: dict[str, Any] | None) -> str:
    if figure is None:
        return f"{'-':>9} {'-':>8} {'-':>8}"
    latency = figure["latency_ms"]
    return (
        f"{figure['ok_per_second']:>9.1f} {latency.get('50', 0):>8.2f} {latency.get('99', 0):>8.2f}"
    )


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(size: int, figures: dict[str, Any], options: Options) -> str:
    lines = [
        f"\n== {size:,} patients (loaded in {figures['load_seconds']} s); ours as "
        f"{instances(options.instances)} ==",
        *terms_lines(figures["terms"], options),
        f"{'scenario':<19} {'json-server req/s':>17} {'p50 ms':>8} {'p99 ms':>8}  "
        f"{'ours req/s':>10} {'p50 ms':>8} {'p99 ms':>8}  {'ours/js':>8} {'rows':>6} "
        f"{'conns':>5} {'other':>5} {'errors':>6}",
    ]
    for scenario in scenarios_for(size, options):
        results = figures["scenarios"][scenario.key]
        ours = results["ours"]
        other = max(result["other_cpu"] for result in results.values())
        errors = sum(result["non_2xx"] + result["socket_errors"] for result in results.values())
        lines.append(
            f"{scenario.title:<19} {cell(results.get('json-server')):>35}  {cell(ours):>28}  "
            f"{times(ratio(ours, results.get('json-server'))):>8} "
            f"{figures['rows'].get(scenario.key, ''):>6} {ours['connections']:>5} {other:>5.0%} "
            f"{errors:>6}"
        )
        lines += side_lines(results)
        if ours.get("peak_rss_mib") is not None:
            lines.append(crowd_line(results))
    if "get_by_id" in figures["scenarios"]:
        p99 = figures["scenarios"]["get_by_id"]["ours"]["latency_ms"].get("99")
        lines.append(f"p99 of our GET by id at {options.connections} connections: {p99} ms")
    return "\n".join(lines)


def terms_lines(terms: dict[str, list[dict[str, Any]]], options: Options) -> list[str]:
    """The terms each search scenario of the run sent, with the share of records each matches."""
    return [
        f"{key} terms (share of records matched): {describe_terms(tuple(map(as_term, chosen)))}"
        for key, chosen in terms.items()
        if key in options.scenarios
    ]


def as_term(saved: dict[str, Any]) -> Term:
    return Term(saved["text"], saved["share"])


def crowd_line(results: dict[str, Any]) -> str:
    """Under the crowd: our API's peak memory, and each server's failed requests."""
    failures = ", ".join(
        f"{name} {result['non_2xx'] + result['socket_errors']}" for name, result in results.items()
    )
    ours = results["ours"]
    peak = f"peak RSS of ours {ours['peak_rss_mib']} MiB"
    if ours["processes"] > 1:
        peak += f" ({ours['processes']} processes summed; largest {ours['peak_instance_rss_mib']})"
    return f"{'':<19} {peak}; failures (non-2xx, socket errors): {failures}"


def instances(count: int) -> str:
    return "1 instance" if count == 1 else f"{count} instances"


def capacity_rows(results: dict[int, dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """One row per size, scenario and server measured: the cells of a capacity table."""
    return [
        capacity_row(size, key, name, result, 1 if name == "json-server" else count)
        for size, figures in results.items()
        for key, servers in figures["scenarios"].items()
        for name, result in servers.items()
    ]


def capacity_row(
    size: int, scenario: str, server: str, result: dict[str, Any], count: int
) -> dict[str, Any]:
    pool_max = None if server == "json-server" else int(DB_POOL_MAX)
    return {
        "size": size,
        "scenario": scenario,
        "server": server,
        "instances": count,
        "pool_max": pool_max,
        "connection_budget": None if pool_max is None else count * pool_max,
        "connections": result["connections"],
        "req_per_s": result["ok_per_second"],
        "p99_ms": result["latency_ms"].get("99"),
        "failures": result["non_2xx"] + result["socket_errors"],
        "peak_rss_mib": result.get("peak_rss_mib"),
        "peak_instance_rss_mib": result.get("peak_instance_rss_mib"),
        "other_cpu": result["other_cpu"],
    }


def side_lines(results: dict[str, Any]) -> list[str]:
    """The lines under a scenario for the servers besides json-server and ours."""
    ours = results["ours"]
    lines = []
    if ceiling := results.get("ceiling"):
        value = ratio(ours, ceiling)
        lines.append(side_line("driver ceiling", ceiling, value, "ours / driver ceiling"))
    if signed_in := results.get(SIGNED_IN):
        value = ratio(signed_in, ours)
        lines.append(side_line(SIGNED_IN, signed_in, value, f"{SIGNED_IN} / ours"))
    if metered := results.get(METERED):
        value = ratio(metered, ours)
        lines.append(side_line(METERED, metered, value, f"{METERED} / ours (metrics off)"))
    if unaudited := results.get(UNAUDITED):
        value = ratio(ours, unaudited)
        lines.append(side_line(UNAUDITED, unaudited, value, f"ours / {UNAUDITED}"))
    return lines


def side_line(title: str, figure: dict[str, Any], value: float | None, meaning: str) -> str:
    """A line under a scenario: another server's figures, and a ratio that `meaning` names."""
    return f"{'  ' + title:<19} {'':>35}  {cell(figure):>28}  {times(value):>8}  <- {meaning}"


def verdicts(results: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target that this run measured: the figure and whether it is met."""
    found = []
    for size, figures in results.items():
        scenarios = figures["scenarios"]
        for key, against, minimum, sizes in TARGETS:
            if not sizes or size in sizes:
                value = compare(scenarios, key, "ours", against)
                found += verdict(size, f"{key} >= {minimum}x {against}", value, minimum)
        for limit in LIMITS:
            if limit.scenario in scenarios and (not limit.sizes or size in limit.sizes):
                found += limit_verdict(size, scenarios[limit.scenario]["ours"], limit)
        for key, server, against, minimum in SIDE_TARGETS:
            value = compare(scenarios, key, server, against)
            found += verdict(size, f"{key}: {server} >= {minimum}x {against}", value, minimum)
    return found


def compare(scenarios: dict[str, Any], key: str, server: str, against: str) -> float | None:
    """server/against in req/s on scenario `key`; None unless both were measured."""
    results = scenarios.get(key, {})
    return ratio(results.get(server), results.get(against))


def verdict(size: int, target: str, value: float | None, minimum: float) -> list[dict[str, Any]]:
    """The target's verdict when it was measured; none otherwise."""
    if value is None:
        return []
    met = value >= minimum
    return [{"size": size, "target": target, "value": value, "figure": times(value), "met": met}]


def limit_verdict(size: int, result: dict[str, Any], limit: Limit) -> list[dict[str, Any]]:
    """The verdict on a figure of ours (`result`) against `limit`, when it was measured."""
    read, unit = FIGURES[limit.figure]
    value = read(result)
    if value is None:
        return []
    met = COMPARISONS[limit.comparison](value, limit.value)
    target = f"{limit.scenario}: {limit.figure} {limit.comparison} {limit.value:g}{unit}"
    figure = f"{value:g}{unit}"
    return [{"size": size, "target": target, "value": value, "figure": figure, "met": met}]


def preamble(options: Options, wrk: str, sign_in: SignIn | None) -> str:
    settings = ", ".join(f"{name}={value}" for name, value in PG_SETTINGS.items())
    return "\n".join(
        [
            f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.platform()}",
            f"PostgreSQL 17: {settings}; {PG_FAST}",
            f"load: {wrk}, {options.threads} thread(s) on the SAME cores as the servers and "
            f"PostgreSQL; {options.connections} connections; {options.warmup} s warm-up, then "
            f"{options.duration} s; no Accept-Encoding (no gzip on either side)",
            f"{BIG_LIST_CONNECTIONS} connections for the whole list from {BIG_LIST_SIZE:,} "
            "patients on (json-server sends ~20 MB per request), and for q and name_like above "
            f"{BIG_LIST_SIZE:,}; the whole list is not run above {WHOLE_LIST_MAX_SIZE:,}",
            "search terms, as typed into a search box: lowercase, unanchored, "
            f"{min(TERM_LENGTHS)}-{max(TERM_LENGTHS)} ASCII letters from each size's own names "
            "(q: and medical conditions), one per length of "
            f"{','.join(map(str, TERM_LENGTHS))}, each matching {TERM_SHARES[0]:.0%}-"
            f"{TERM_SHARES[1]:.0%} of the records (seed {SEED}); each request picks one at random",
            f"name_like, rare: the name term of {min(RARE_LENGTHS)}-{max(RARE_LENGTHS)} letters "
            f"matching nearest {RARE_SHARE:.0%} of the records, at {RARE_CONNECTIONS} connections",
            f"whole list x{CROWD_CONNECTIONS}: the whole list at {CROWD_CONNECTIONS} connections "
            "(many clients loading it at once), up to "
            f"{WHOLE_LIST_MAX_SIZE:,} patients; the VmRSS of our uvicorn and its workers sampled "
            f"every {RSS_INTERVAL_SECONDS * 1000:.0f} ms meanwhile, the peak of their sum and of "
            "the largest one reported",
            f"ours: sh docker/serve as {instances(options.instances)} on one port "
            f"(WEB_CONCURRENCY={options.instances}: uvicorn --workers {options.instances}, each "
            f"worker a process with its own pool of DB_POOL_MAX={DB_POOL_MAX}), its JSON access "
            "log on (to a file)",
            f"connection budget: {instances(options.instances)} x DB_POOL_MAX {DB_POOL_MAX} = "
            f"{options.connection_budget} PostgreSQL connections per server of ours (signed-in, "
            f"unaudited and the ceiling run alike); max_connections={options.max_connections} "
            f"for up to {SERVERS_AT_ONCE} of them at once",
            "driver ceiling: bare Starlette + asyncpg pool of the same size, one fetchrow of "
            "the same statement as ours (p.wire by id), the same uvicorn flags and workers; "
            "GET by id on "
            f"ours and on the ceiling alternate for {options.rounds} rounds, median of each",
            signed_in_line(sign_in),
            f"{METERED}: ours again, with METRICS=on (every request counted by route template, "
            "method and status, its latency observed); GET by id only, its rounds alternating "
            "with ours (METRICS off, the default), the ceiling and signed-in",
            unaudited_line(options),
            "json-server 0.17.4: its defaults (request log on, to a file)",
            "req/s: 2xx answers per second (errors: non-2xx answers and socket errors)",
            "other: CPU share of the machine used meanwhile outside our processes (other "
            "people's work, and the kernel's loopback networking: 10-25 % at GET by id's rates);"
            f" measured again when above {NOISY_SHARE:.0%}",
        ]
    )


def signed_in_line(sign_in: SignIn | None) -> str:
    if sign_in is None:
        return f"{SIGNED_IN}: skipped (the local OpenID provider needs Node.js and npm)"
    return (
        f"{SIGNED_IN}: ours again, with AUTH_MODE=entra trusting a local OpenID provider "
        "(scripts/localoidc.py, one per run); wrk sends one user's bearer token on every "
        "request (verified once, then cached); GET by id only, its rounds alternating with "
        "ours and the ceiling"
    )


def unaudited_line(options: Options) -> str:
    if not unaudited_needed(options):
        return f"{UNAUDITED}: not run (only with the post or patch scenario)"
    return (
        f"{UNAUDITED}: ours again, with AUDIT_TRAIL=false (no audit event per write), on its own "
        "copy of the same database (CREATE DATABASE ... TEMPLATE, before any server connects); "
        f"POST and PATCH only, their rounds alternating with ours for {options.rounds} rounds, "
        "median of each"
    )


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="scripts/benchmark.py", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    keys = ",".join(scenario.key for scenario in SCENARIOS)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated")
    parser.add_argument("--scenarios", default=keys, help=f"a subset of {keys} (like, q: "
                        "typed terms; like_rare: a term matching ~1 %%; crowd: the whole list "
                        f"at {CROWD_CONNECTIONS} connections, our API's peak memory)")  # fmt: skip
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections, but "
                        f"like_rare always at {RARE_CONNECTIONS} and crowd at "
                        f"{CROWD_CONNECTIONS}")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1-2 on 2 cores)")
    parser.add_argument("--skip-json-server", action="store_true", help="ours alone")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the list SQL")
    parser.add_argument("--quiet-wait", type=float, default=20, help="max seconds to wait for a "
                        "quiet machine before each measurement")  # fmt: skip
    parser.add_argument("--retries", type=int, default=2, help="when other processes were busy")
    parser.add_argument("--rounds", type=int, default=3, help="alternate rounds, median of "
                        "each: GET by id on ours, the ceiling and signed-in; POST and PATCH on "
                        "ours and unaudited")  # fmt: skip
    parser.add_argument("--instances", type=int, default=1, help="our API (and the ceiling) "
                        "as N uvicorn workers on one port (WEB_CONCURRENCY=N), each with its own "
                        f"pool of DB_POOL_MAX={DB_POOL_MAX}, like N instances behind a load "
                        "balancer")  # fmt: skip
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT, help="the "
                        "figures as JSON; its \"capacity\" rows: one per size, scenario and "
                        "server")  # fmt: skip
    args = parser.parse_args(argv)
    scenarios = tuple(args.scenarios.split(","))
    if unknown := set(scenarios) - {scenario.key for scenario in SCENARIOS}:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.instances < 1:
        parser.error("--instances must be 1 or more")
    return Options(
        sizes=tuple(int(size.replace("_", "")) for size in args.sizes.split(",")),
        scenarios=scenarios,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads,
        skip_json_server=args.skip_json_server,
        explain=args.explain,
        quiet_wait=args.quiet_wait,
        retries=args.retries,
        rounds=max(args.rounds, 1),
        output=args.output,
        instances=args.instances,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    started = time.monotonic()
    wrk = ensure_wrk()
    bin_js = None if options.skip_json_server else ensure_json_server()
    results: dict[int, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="benchmark-") as scratch,
        identity_provider(pathlib.Path(scratch)) as sign_in,
        postgres(pathlib.Path(scratch), options.max_connections) as cluster,
    ):
        print(preamble(options, wrk, sign_in), flush=True)
        roots = (os.getpid(), postmaster_pid(cluster))
        load = Load(wrk, options.threads, pathlib.Path(scratch), roots)
        for size in options.sizes:
            results[size] = run_size(size, cluster, load, bin_js, options, sign_in=sign_in)
            print(table(size, results[size], options), flush=True)
    found = verdicts(results)
    print("\ntargets:")
    print(f"  {'patients':>9}  {'target':<40} {'figure':>10}  verdict")
    for verdict in found:
        mark = "met" if verdict["met"] else "MISSED"
        print(f"  {verdict['size']:>9,}  {verdict['target']:<40} {verdict['figure']:>10}  {mark}")
    if not found:
        print("  none applies to the sizes and scenarios run")
    elapsed = round(time.monotonic() - started)
    report = {
        "options": {**dataclasses.asdict(options), "output": str(options.output)},
        "postgresql": {
            **PG_SETTINGS,
            "max_connections": options.max_connections,
            "durability": PG_FAST,
        },
        "instances": options.instances,
        "connection_budget": options.connection_budget,
        "capacity": capacity_rows(results, options.instances),
        "results": {str(size): figures for size, figures in results.items()},
        "targets": found,
        "total_seconds": elapsed,
    }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\ntotal runtime {elapsed} s; raw figures in {options.output}")
    return 0


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so the servers and PostgreSQL are stopped on the way out."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchmarkError, localpg.LocalPgError, localoidc.ProviderFailed) as error:
        say(f"error: {error}")
        sys.exit(1)
