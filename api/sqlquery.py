"""PURE: a ListQuery -> one parameterized SQL statement over `patients`. Used by store.py only.

Field names from the query string never reach the SQL text: a known field becomes a column from
the fixed FIELDS mapping, any other becomes a bound JSON path into `extra`. Every value is bound.
The SQL functions used here (json_server_text, ...) come from migration 0002, the stored JSON
(patients.wire) and the kept count (patients_counts) from 0006.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from api import patients, query

# wire key -> (column, kind); kind decides how json-server's text semantics are expressed.
FIELDS = {
    "id": ("id", "int"),
    "patientID": ("patient_id", "text"),
    "name": ("name", "text"),
    "age": ("age", "int"),
    "gender": ("gender", "text"),
    "medicalCondition": ("medical_condition", "text"),
    "lastVisit": ("last_visit", "date"),
}
ALWAYS_PRESENT = frozenset({"id", "patientID", "name"})  # NOT NULL columns
INTEGER_LIMITS = {"id": 2**63 - 1, "age": 2**31 - 1}  # bigint, integer
COMPARISONS = {"gte": ">=", "lte": "<="}
# The number of patients, kept by triggers (migration 0006); as of the statement's snapshot.
KEPT_COUNT = "(SELECT coalesce(sum(delta), 0)::bigint FROM patients_counts)"
# Patients per block of 2**BLOCK_BITS storage_order values, kept as deltas (migration 0010).
BLOCK_BITS = 10
STORAGE_ORDER = ("p.storage_order", "ASC")  # the last sort term of every list
# JSON.parse reads a number at or past 2**1024 - 2**970 as Infinity; PostgreSQL's cast from
# numeric to double precision raises an error there (and below the smallest double) instead.
DOUBLE_OVERFLOW = 2**1024 - 2**970
DOUBLE_UNDERFLOW = "1e-323"  # below it, the nearest double is 0 or a subnormal that cast refuses
LIKE_ESCAPES = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})
# A `_like` pattern without these is a literal: the regular expression matches the text itself.
REGEX_SYNTAX = frozenset("\\^$.|?*+()[]{}")
# Typed fields with a trigram index (migration 0003/0006) that a literal `_like` can use.
TRIGRAM_INDEXED = frozenset({"name"})
TRIGRAM = 3
# A list's JSON leaves PostgreSQL in parts of at most this many bytes: neither asyncpg nor a slow
# client's socket buffer ever holds the whole list as one value (14.6 MB at 100,000 patients).
PART_BYTES = 262144


@dataclasses.dataclass(frozen=True)
class Statement:
    """SQL with asyncpg's positional placeholders ($1, $2, ...) and their values, in order."""

    sql: str
    params: list[Any]


class _Params:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def bind(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


@dataclasses.dataclass(frozen=True)
class _Field:
    key: str  # the wire key, for typed fields
    column: str | None  # set for typed fields
    kind: str  # "int", "text", "date" or "json"
    json: str  # for "json": the jsonb value expression

    def value(self, alias: str) -> str:
        return f"{alias}.{self.column}" if self.column else self.json.format(alias=alias)

    def text(self, alias: str) -> str:
        """JavaScript's String() of the value; NULL when missing or null."""
        value = self.value(alias)
        return {
            "int": f"{value}::text",
            "date": f"json_server_date({value})",
            "text": value,
            "json": f"json_server_text({value})",
        }[self.kind]


def list_statement(listing: query.ListQuery, offset: int | None, limit: int | None) -> Statement:
    """`SELECT start, part, total`: the rows' JSON array as UTF-8 bytes in parts of at most
    PART_BYTES (ordered by `start`, their byte offset), each row with the count if wanted.

    Each row's JSON is stored (patients.wire, migration 0006), so a list is one ordered string_agg,
    which PostgreSQL then sends in slices (a byte copy each; cheaper than grouping rows, which
    sorts the rows a second time). A slice of the list first picks its rows' sort keys and
    storage_order (often from an index alone), and only those rows are read whole: OFFSET then
    skips index entries, not records.
    """
    params = _Params()
    where = _where(listing, params)
    terms = _order_terms(listing.sort, params)
    if offset is None and limit is None:
        order = ", ".join(f"{term} {direction}" for term, direction in terms)
        wire, rows = f"p.wire, ',' ORDER BY {order}", f"patients AS p WHERE {where}"
    else:
        page = _slice_keys(where, terms, offset or 0, limit, params, _unfiltered(listing))
        # A subquery, not a join: the planner cannot tell how few rows a slice has, and might
        # otherwise hash-join the whole table.
        record = f"SELECT w.wire FROM patients AS w WHERE w.storage_order = page.k{len(terms) - 1}"
        wire, rows = f"({record}), ',' ORDER BY {_keys(terms, 'page.')}", f"({page}) AS page"
    total = f"({_count(listing, where)})" if listing.counted else "CAST(NULL AS bigint)"
    # The aggregate in FROM keeps `b` a subquery of its own: a plain one would be pulled up,
    # and PostgreSQL would then build the list twice (for length() and for substring()).
    body = (
        f"SELECT convert_to(coalesce('[' || string_agg({wire}) || ']', '[]'), 'UTF8') AS body,"
        f" {total} AS total FROM {rows}"
    )
    return Statement(
        f"SELECT s.start, substring(b.body FROM s.start FOR {PART_BYTES}) AS part, b.total"
        f" FROM ({body}) AS b"
        f" CROSS JOIN LATERAL generate_series(1, length(b.body), {PART_BYTES}) AS s (start)",
        params.values,
    )


def count_statement(listing: query.ListQuery) -> Statement:
    params = _Params()
    return Statement(_count(listing, _where(listing, params)), params.values)


def _count(listing: query.ListQuery, where: str) -> str:
    """Without filters, the count that triggers keep (migration 0006) instead of count(*)."""
    if _unfiltered(listing):
        return f"SELECT {KEPT_COUNT}"
    return f"SELECT count(*) FROM patients AS p WHERE {where}"


def _unfiltered(listing: query.ListQuery) -> bool:
    return not listing.filters and listing.search is None


def _slice_keys(  # noqa: PLR0917 (each argument is a different part of the statement)
    where: str,
    terms: list[tuple[str, str]],
    offset: int,
    limit: int | None,
    params: _Params,
    total_known: bool,
) -> str:
    """The sort keys of a slice's rows. When the statement knows the total (no filters), a slice
    in the second half is read backwards from the end: OFFSET then skips at most half the rows.
    The branch not taken gets LIMIT 0 and reads nothing."""
    keys = ", ".join(f"{term} AS k{number}" for number, (term, _) in enumerate(terms))
    start = f"CAST({params.bind(offset)} AS bigint)"
    size = "ALL" if limit is None else f"CAST({params.bind(limit)} AS bigint)"
    select = f"SELECT {keys} FROM patients AS p WHERE {where} ORDER BY"
    if not total_known or limit is None:
        return f"{select} {_keys(terms)} OFFSET {start} LIMIT {size}"
    if terms == [STORAGE_ORDER]:
        return _slice_by_blocks(start, size)
    first_half = f"{start} <= {KEPT_COUNT} / 2"
    rest = f"greatest({KEPT_COUNT} - {start}, 0)"  # rows from the slice's start to the end
    backwards = [(term, "ASC" if direction == "DESC" else "DESC") for term, direction in terms]
    return (
        f"({select} {_keys(terms)} OFFSET {start}"
        f" LIMIT CASE WHEN {first_half} THEN {size} ELSE 0 END)"
        f" UNION ALL ({select} {_keys(backwards)} OFFSET greatest({rest} - {size}, 0)"
        f" LIMIT CASE WHEN {first_half} THEN 0 ELSE least({size}, {rest}) END)"
    )


def _slice_by_blocks(start: str, size: str) -> str:
    """The storage_order (k0) of a slice of the whole list in storage order. Whole blocks before
    it are skipped by their kept counts (patients_blocks): OFFSET then steps over fewer than
    2**BLOCK_BITS index entries, however deep the page. A slice past the end finds no block."""
    blocks = (
        "SELECT block, sum(delta) AS n, sum(sum(delta)) OVER (ORDER BY block) AS through"
        " FROM patients_blocks GROUP BY block"
    )
    first = (
        f"SELECT b.block, b.through - b.n AS before FROM ({blocks}) AS b"
        f" WHERE b.through > {start} ORDER BY b.block LIMIT 1"
    )
    rows = (
        "SELECT p.storage_order AS k0 FROM patients AS p"
        f" WHERE p.storage_order >= f.block << {BLOCK_BITS}"
        f" ORDER BY p.storage_order OFFSET {start} - f.before LIMIT {size}"
    )
    return f"SELECT r.k0 FROM ({first}) AS f CROSS JOIN LATERAL ({rows}) AS r"


def _where(listing: query.ListQuery, params: _Params) -> str:
    conditions = [_filter(item, params) for item in listing.filters]
    if listing.search is not None:
        conditions.append(_search(listing.search, params))
    return " AND ".join(f"({condition})" for condition in conditions) or "TRUE"


def _search(text: str, params: _Params) -> str:
    if not text:
        return "FALSE"
    pattern = params.bind(text.translate(LIKE_ESCAPES))
    return f"p.search_text LIKE '%' || lower(CAST({pattern} AS text) COLLATE pg_c_utf8) || '%'"


def _field(path: tuple[str, ...], key: str, params: _Params) -> _Field:
    if len(path) == 1 and path[0] in FIELDS:
        column, kind = FIELDS[path[0]]
        return _Field(key=path[0], column=column, kind=kind, json="")
    value = f"{{alias}}.extra #> CAST({params.bind(list(path))} AS text[])"
    if len(path) > 1:
        # lodash's _.get(record, "a.b") reads a key literally named "a.b" when the record has one.
        literal = params.bind(key)
        literal_value = f"{{alias}}.extra -> {literal}"
        value = f"CASE WHEN {{alias}}.extra ? {literal} THEN {literal_value} ELSE {value} END"
    return _Field(key="", column=None, kind="json", json=f"({value})")


def _filter(item: query.Filter, params: _Params) -> str:
    field = _field(item.path, item.key, params)
    if item.operator in ("eq", "ne"):
        condition = _equal_any(field, item.values, params, negated=item.operator == "ne")
    else:
        condition = " OR ".join(
            f"({_compare(field, item.operator, value, params)})" for value in item.values
        )
    if item.drops_when_unknown and field.key not in ALWAYS_PRESENT:
        known = f"EXISTS (SELECT 1 FROM patients AS k WHERE {_present(field, params)})"
        condition = f"NOT {known} OR {condition}"
    return condition


def _present(field: _Field, params: _Params) -> str:
    """Some record has the field (lodash's _.has): a value, or an explicit null."""
    if field.column:
        return f"k.{field.column} IS NOT NULL OR k.extra ? {params.bind(field.key)}"
    return f"{field.value('k')} IS NOT NULL"


def _compare(field: _Field, operator: str, value: str, params: _Params) -> str:
    if operator == "like":
        return _like(field, value, params)
    return _range(field, COMPARISONS[operator], value, params)


def _like(field: _Field, pattern: str, params: _Params) -> str:
    """JavaScript's `new RegExp(pattern, "i").test(String(value))`.

    A literal ASCII pattern, what a search box sends, is a substring test: a regular expression
    costs ~2x more a row. JavaScript's `i` flag (without `u`) never folds a character outside
    ASCII into ASCII (not the Kelvin sign, not the long s), so lower() in the "C" collation,
    which folds only A-Z, gives exactly its matches. On an indexed field, the same test in
    pg_c_utf8 (which folds more, so it matches a superset) lets a term of three or more
    characters use the trigram index. Any other pattern is a regular expression: JavaScript's `i`
    folds the case of any letter, PostgreSQL's only ASCII under a C-collated database, so the
    collation is given explicitly."""
    if pattern and pattern.isascii() and REGEX_SYNTAX.isdisjoint(pattern):
        term = pattern.lower()
        condition = f'strpos(lower({field.text("p")} COLLATE "C"), {params.bind(term)}) > 0'
        if field.column and field.key in TRIGRAM_INDEXED and len(term) >= TRIGRAM:
            # Not for shorter terms: no trigram to look up, and ILIKE's Unicode case folding
            # on every row costs ~2x the substring test.
            like = params.bind(f"%{term.translate(LIKE_ESCAPES)}%")
            condition = f"{field.value('p')} COLLATE pg_c_utf8 ILIKE {like} AND {condition}"
        return condition
    return f"{field.text('p')} COLLATE pg_c_utf8 ~* {params.bind(pattern)}"


def _equal_any(field: _Field, values: Sequence[str], params: _Params, *, negated: bool) -> str:
    """String(record[field]) === one of `values` (`ne`: none of them), as one `= ANY(array)`.

    One bound array, not one comparison per value: a thousand values cost one bind parameter
    and one lookup per row, where a thousand ORs cost a thousand comparisons per row. Typed
    fields compare typed values (index-friendly); a value no stored value has as its text
    ("045", "2024-02-30") matches nothing."""
    column, cast = field.value("p"), "text[]"
    known: list[Any]
    if field.kind == "int":
        limit = INTEGER_LIMITS[field.key]
        numbers = (query.canonical_int(value) for value in values)
        known, cast = sorted({n for n in numbers if n is not None and abs(n) <= limit}), "bigint[]"
    elif field.kind == "date":
        days = (patients.parse_date(value) for value in values)
        known, cast = sorted({day for day in days if day is not None}), "date[]"
    else:
        known, column = sorted(set(values)), field.text("p")
    if not known:
        # `String(value) !== text` holds for every present value when no value has that text.
        return f"{field.value('p')} IS NOT NULL" if negated else "FALSE"
    matches = f"{column} = ANY(CAST({params.bind(known)} AS {cast}))"
    return f"NOT ({matches})" if negated else matches  # NULL (missing) matches neither


def _range(field: _Field, operator: str, value: str, params: _Params) -> str:
    """JavaScript's `value <= record[field]`: numeric against numbers, else by code point."""
    number = query.js_number(value)
    if field.kind == "int":
        if number is None:
            return "FALSE"
        return f"{field.value('p')} {operator} CAST({params.bind(number)} AS double precision)"
    text = f'{params.bind(value)} COLLATE "C"'
    if field.kind != "json":
        return f'{field.text("p")} COLLATE "C" {operator} {text}'
    json = field.value("p")
    bound_number = f"CAST({params.bind(number)} AS double precision)"
    return (
        f"CASE jsonb_typeof({json})"
        f" WHEN 'number' THEN {_js_double(f'{json}::numeric')} {operator} {bound_number}"
        f" WHEN 'boolean' THEN ({json} = 'true'::jsonb)::int {operator} {bound_number}"
        f" WHEN 'string' THEN ({json} #>> '{{}}') COLLATE \"C\" {operator} {text}"
        f" WHEN 'null' THEN NULL"
        f' ELSE json_server_text({json}) COLLATE "C" {operator} {text} END'
    )


def _js_double(number: str) -> str:
    """JavaScript's double of a numeric expression, without an overflow or underflow error."""
    return (
        f"(CASE WHEN {number} >= {DOUBLE_OVERFLOW} THEN 'Infinity'::float8"
        f" WHEN {number} <= -{DOUBLE_OVERFLOW} THEN '-Infinity'::float8"
        f" WHEN abs({number}) < {DOUBLE_UNDERFLOW} THEN 0::float8"
        f" ELSE CAST({number} AS double precision) END)"
    )


def _order_terms(keys: tuple[query.SortKey, ...], params: _Params) -> list[tuple[str, str]]:
    """lodash orderBy: values, null, then missing (reversed for desc); ties keep storage order.

    (term, direction) pairs; the last is always storage_order, which is unique.
    """
    terms: list[tuple[str, str]] = []
    for key in keys:
        direction = "DESC" if key.descending else "ASC"
        field = _field(key.path, key.key, params)
        terms.extend((term, direction) for term in _sort_terms(field, params))
    return [*terms, STORAGE_ORDER]


def _keys(terms: list[tuple[str, str]], alias: str = "") -> str:
    """ORDER BY over the columns k0, k1, ... that a slice's key query names its sort terms."""
    return ", ".join(f"{alias}k{number} {direction}" for number, (_, direction) in enumerate(terms))


def _sort_terms(field: _Field, params: _Params) -> list[str]:
    value = field.value("p")
    if field.column:
        ordered = f'{value} COLLATE "C"' if field.kind == "text" else value
        if field.key in ALWAYS_PRESENT:
            return [ordered]
        # A literal (a key of FIELDS, not the client's text), so the planner can match an index
        # on this expression (migration 0003) in generic plans too.
        return [
            f"CASE WHEN {value} IS NOT NULL THEN 0 WHEN p.extra ? '{field.key}' THEN 1 ELSE 2 END",
            ordered,
        ]
    # Three terms per path, each computed once per row: sorting cost grows with their number.
    # Numbers, then strings, then other values (each among its kind), then null, then missing.
    kind = f"jsonb_typeof({value})"
    return [
        f"CASE WHEN {value} IS NULL THEN 4"
        f" ELSE CASE {kind} WHEN 'number' THEN 0 WHEN 'string' THEN 1 WHEN 'null' THEN 3 ELSE 2"
        " END END",
        f"CASE WHEN {kind} = 'number' THEN {value}::numeric END",
        f"CASE {kind} WHEN 'string' THEN {value} #>> '{{}}'"
        f" WHEN 'number' THEN NULL ELSE json_server_text({value}) END COLLATE \"C\"",
    ]
