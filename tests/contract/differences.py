"""The deliberate differences from json-server 0.17.4: not compared, and why.

The contract tests compare everything else with json-server. Each entry below is referred to by
the code that leaves a request or a header out, and test_differences.py checks our side of it.
docs/compatibility.md shows this table (a test keeps their topics the same).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Difference:
    topic: str
    json_server: str
    ours: str
    why: str


NOT_FOUND_BODY = Difference(
    "404 body",
    "`{}`",
    '`{"detail": ..., "error_code": "NOT_FOUND"}`; the status is the same',
    "one error shape for every failure",
)
INVALID_WRITES = Difference(
    "invalid writes",
    "malformed JSON → 400 HTML; invalid record → 201; duplicate id → 500 HTML; "
    "duplicate patientID → 201",
    "400 (malformed, invalid) or 409 (duplicate id or patientID) with a JSON error body",
    "the registry validates its records and never leaks stack traces",
)
INVALID_QUERIES = Difference(
    "invalid queries",
    "invalid `_like` regex (`name_like=(`) or repeated `_sort` → 500 HTML stack trace",
    '400 `{"error_code": "INVALID_QUERY", ...}`',
    "a client error, not a crash",
)
NON_JSON_BODIES = Difference(
    "non-JSON write bodies",
    "text/plain or no body: ignored (empty record); form bodies parsed; an array is stored",
    "415 for a non-JSON media type, 400 for an array",
    "silently storing empty or odd records corrupts the registry",
)
BODY_IDS = Difference(
    "ids in bodies",
    "string and float ids are stored as sent",
    "400 unless a positive whole number (a falsy id is assigned, as in json-server)",
    "ids are bigint keys; `/patients/01`-style URLs are 404 on both",
)
IDS_NEVER_REUSED = Difference(
    "id reuse",
    "new id = max(id) + 1, so deleting the highest id hands it out again",
    "ids come from a sequence and are never reused",
    "a reused id could point old references at another patient",
)
JSONP = Difference(
    "JSONP",
    "`?callback=cb` answers text/javascript",
    "`callback` is ignored; plain JSON",
    "JSONP bypasses CORS",
)
DB_DUMP = Difference("`/db`", "the whole database", "404", "would dump the registry")
METHOD_OVERRIDE = Difference(
    "method override",
    "`POST` with `X-HTTP-Method-Override: PATCH` is a PATCH",
    "the header is ignored",
    "turns a simple cross-origin request into a write",
)
EMBED_EXPAND = Difference(
    "`_embed` / `_expand`",
    '`_embed=x` adds `"x": []` to every record',
    "ignored",
    "there are no related collections",
)
HOME_PAGE = Difference("`GET /`", "json-server's HTML home page", "not that page", "an API only")
NESTED_ROUTES = Difference(
    "nested routes",
    "`/patients/1/patients` → the whole collection",
    "404",
    "leaks every record through a route nobody uses",
)
WRONG_METHOD = Difference(
    "wrong method on a route",
    "`POST /patients/1`, `PUT /patients` → 404",
    "405 with `Allow`",
    "the route exists; the method is not allowed",
)
LOCATION_VERBATIM = Difference(
    "`Location` on POST",
    "keeps a trailing slash or query text (`/patients//31`, `/patients?x=1/32`)",
    "always `<base>/patients/<id>`",
    "a valid URL of the new record; compared for `POST /patients` only",
)
RESPONSE_FORMAT = Difference(
    "response format",
    "2-space pretty JSON in insertion key order; gzip from 1 KB; `Cache-Control: no-cache`; "
    "`X-Powered-By`; ETag and 304",
    "compact JSON in a fixed key order; gzip; `Cache-Control: no-store`; no `X-Powered-By`",
    "same data; patient data must not be cached; ETag/304 is not compared",
)
CORS_WITHOUT_ORIGIN = Difference(
    "CORS without Origin",
    "`Access-Control-Allow-Credentials: true` on every response",
    "CORS headers only on requests with an Origin",
    "they mean nothing without one; CORS headers are compared only when Origin is sent",
)
LIKE_REGEX_DIALECT = Difference(
    "`_like` dialect",
    "JavaScript regular expressions",
    "PostgreSQL regular expressions",
    "the same for literals, `^ $ . .* [a-z] a|b`; JS-only syntax (`\\b`, lookbehind) may differ,"
    " and `\\w` also matches non-ASCII letters",
)
SORT_MIXED_TYPES = Difference(
    "`_sort` on mixed types",
    "numbers vs non-numeric strings: order depends on the engine's sort algorithm",
    "a fixed order",
    "not reproducible; strings sort by code point (json-server: UTF-16 code unit, which "
    "differs only for astral characters)",
)
NUMBER_TEXT = Difference(
    "numbers as text",
    "JavaScript's `String(number)` (`1e+21`)",
    "the same for integers and plain decimals (`2.5`)",
    "exponent forms may differ; the fixture avoids them",
)
HUGE_LISTS = Difference(
    "long parameter lists",
    "up to 1000 repeated values, then qs's limit applies",
    "400 `INVALID_QUERY` above 1,000 parameters (docs/query-limits.md); not compared there",
    "json-server drops the rest silently; a request must have a bound on its cost",
)

DIFFERENCES: tuple[Difference, ...] = (
    NOT_FOUND_BODY,
    INVALID_WRITES,
    INVALID_QUERIES,
    NON_JSON_BODIES,
    BODY_IDS,
    IDS_NEVER_REUSED,
    JSONP,
    DB_DUMP,
    METHOD_OVERRIDE,
    EMBED_EXPAND,
    HOME_PAGE,
    NESTED_ROUTES,
    WRONG_METHOD,
    LOCATION_VERBATIM,
    RESPONSE_FORMAT,
    CORS_WITHOUT_ORIGIN,
    LIKE_REGEX_DIALECT,
    SORT_MIXED_TYPES,
    NUMBER_TEXT,
    HUGE_LISTS,
)
