"""PURE: a json-server 0.17.4 query string -> a ListQuery (filters, search, sort, slice, links).

Every rule here reproduces json-server's `lib/server/router/plural.js` (see
../shared/json-server-0.17.4.md, section 6), including JavaScript's parseInt/Number conversions.
"""

from __future__ import annotations

import dataclasses
import math
import re
import urllib.parse
from collections.abc import Sequence

RESERVED = frozenset({"q", "_start", "_end", "_sort", "_order", "_limit", "_embed", "_expand"})
NOT_FILTERS = frozenset({"_page", "callback", "_"})  # callback: JSONP; _: jQuery's cache-buster
OPERATORS = ("gte", "lte", "ne", "like")
OPERATOR_SUFFIX = re.compile(r"_(gte|lte|ne|like)$")
DEFAULT_PAGE_SIZE = 10
OBJECT_TEXT = "[object Object]"  # what a `key[x]=value` parameter turns into in JavaScript
# JavaScript's String.prototype.trim() whitespace, as far as URLs can carry it.
JS_WHITESPACE = " \t\n\v\f\r\u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(
    chr(c) for c in range(0x2000, 0x200B)
)
JS_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
JS_RADIX = {"0x": 16, "0o": 8, "0b": 2}
LIST_INDEX = re.compile(r"\[(\d*)\]")
PATH_PART = re.compile(r"[^.[\]]+")
# Limits that bound what one request can cost (docs/query-limits.md); past them, InvalidQuery.
# qs, json-server's query parser, reads at most 1000 parameters and silently drops the rest.
MAX_PARAMETERS = 1000
MAX_FILTERS = 20  # distinct filter keys; each is one more condition on every row
MAX_PATTERNS = 10  # values of PATTERN_OPERATORS: each is a regular expression or a comparison
PATTERN_OPERATORS = frozenset({"like", "gte", "lte"})  # evaluated on every row, no index
MAX_SORT_KEYS = 3  # a JSON path sorts by three terms; 5 paths over 100,000 rows take ~1.7 s
MAX_TEXT_LENGTH = 1000  # characters of one key or value
# PostgreSQL compiles a regular expression into an automaton that copies a repeated part once
# per count of its `{m,n}` bound, and matches back-references by trying every split: one short
# pattern of either kind can cost seconds over 100,000 rows. Back-references are refused, and
# the copies that bounds make in all `_like` patterns together (regex_copies) are bounded.
MAX_REGEX_COPIES = 30
BACK_REFERENCE = re.compile(r"\\[1-9]|\\k<")
REGEX_TOKEN = re.compile(
    r"\\.|\[\^?\]?(?:\[:[a-z]+:\]|[^\]])*\]|\{\d*(?:,\d*)?\}|[()*+?]|.", re.DOTALL
)
MAX_NUMBER_DIGITS = 300  # `_page`, `_limit`, `_start`, `_end`: JavaScript reads 309+ as Infinity


class InvalidQuery(ValueError):
    """A query string json-server would answer with a 500; we answer 400 and say why."""


@dataclasses.dataclass(frozen=True)
class Filter:
    """`path` compared with each of `values`: OR over them, except `ne`, which ANDs them."""

    path: tuple[str, ...]
    operator: str  # "eq", "gte", "lte", "ne" or "like"
    values: tuple[str, ...]
    # The path as written: lodash tries it as one literal key first. Not part of equality.
    key: str = dataclasses.field(default="", compare=False)

    @property
    def drops_when_unknown(self) -> bool:
        """json-server ignores an equality filter on a field no record has; operators stay."""
        return self.operator == "eq"


@dataclasses.dataclass(frozen=True)
class SortKey:
    path: tuple[str, ...]
    descending: bool = False
    # The path as written: lodash tries it as one literal key first. Not part of equality.
    key: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass(frozen=True)
class Window:
    """A JavaScript `rows.slice(start, end)`; negative bounds count from the end."""

    start: int
    end: int | None  # None: NaN, which slice() reads as 0

    def bounds(self, total: int) -> tuple[int, int]:
        """(offset, row count) of this slice over `total` rows."""
        start = _clamp(self.start, total)
        return start, max(_clamp(self.end or 0, total) - start, 0)

    @property
    def needs_total(self) -> bool:
        """Negative bounds count from the end, so the total must be known first."""
        return self.start < 0 or (self.end or 0) < 0


@dataclasses.dataclass(frozen=True)
class Page:
    number: int
    size: int

    @property
    def window(self) -> Window:
        return Window((self.number - 1) * self.size, self.number * self.size)


@dataclasses.dataclass(frozen=True)
class ListQuery:
    search: str | None = None  # lower-cased in SQL; "" matches nothing (json-server's quirk)
    filters: tuple[Filter, ...] = ()
    sort: tuple[SortKey, ...] = ()
    window: Window | None = None
    page: Page | None = None
    counted: bool = False  # X-Total-Count and Access-Control-Expose-Headers are sent


def parse(query_string: str) -> ListQuery:
    """Parse a raw query string, e.g. `gender=Female&_sort=age&_order=desc&_page=2`."""
    params = parse_params(query_string)
    filters = tuple(
        _filter(key, values)
        for key, values in params.items()
        if key not in RESERVED and key not in NOT_FILTERS
    )
    _check_filters(filters)
    page_value = params.get("_page")
    end, limit = params.get("_end"), params.get("_limit")
    page = _page(page_value, limit) if _truthy(page_value) else None
    return ListQuery(
        search=_search(params.get("q")),
        filters=filters,
        sort=_sort(params.get("_sort"), params.get("_order")),
        window=page.window if page else _window(params.get("_start"), end, limit),
        page=page,
        counted=_truthy(end) or _truthy(limit) or _truthy(page_value),
    )


def parse_params(query_string: str) -> dict[str, list[str]]:
    """Express's "extended" parsing, as far as json-server can tell the difference.

    `a=1&a=2` and `a[]=1&a[]=2` are lists; `a[x]=1` makes an object, which JavaScript reads as
    the text "[object Object]"; `a.b=1` stays a key with a dot, used later as a path.
    """
    params: dict[str, list[str]] = {}
    pairs = urllib.parse.parse_qsl(query_string, keep_blank_values=True)
    if len(pairs) > MAX_PARAMETERS:
        raise InvalidQuery(f"A query may have at most {MAX_PARAMETERS} parameters")
    for raw_key, value in pairs:
        if "\x00" in raw_key or "\x00" in value:
            raise InvalidQuery("Query parameters must not contain NUL characters")
        if len(raw_key) > MAX_TEXT_LENGTH or len(value) > MAX_TEXT_LENGTH:
            raise InvalidQuery(f"Query keys and values are at most {MAX_TEXT_LENGTH} characters")
        key, _, rest = raw_key.partition("[")
        is_object = bool(rest) and not LIST_INDEX.fullmatch("[" + rest)
        params.setdefault(key if rest else raw_key, []).append(OBJECT_TEXT if is_object else value)
    return params


def to_path(key: str) -> tuple[str, ...]:
    """lodash's path syntax: `insurance.provider`, `allergies.0`, `allergies[0]`."""
    return tuple(PATH_PART.findall(key)) or ("",)


def js_parse_int(values: Sequence[str] | None) -> int | None:
    """JavaScript's parseInt(value, 10); a list is first joined with commas. None is NaN."""
    if values is None:
        return None
    match = re.match(r"[+-]?(\d+)", ",".join(values).lstrip(JS_WHITESPACE))
    if match and len(match.group(1)) > MAX_NUMBER_DIGITS:
        raise InvalidQuery(
            f"Numbers in _page, _limit, _start and _end are at most {MAX_NUMBER_DIGITS} digits"
        )
    return int(match.group()) if match else None


def js_number(text: str) -> float | None:
    """JavaScript's Number(text) for a string; None is NaN.

    >>> js_number(" 50 "), js_number(""), js_number("0x50"), js_number("1e2"), js_number("4a")
    (50.0, 0.0, 80.0, 100.0, None)
    """
    text = text.strip(JS_WHITESPACE)
    if not text:
        return 0.0
    if text.lstrip("+-") == "Infinity":
        return -math.inf if text.startswith("-") else math.inf
    radix = JS_RADIX.get(text[:2].lower())
    if radix:
        try:
            return float(int(text[2:], radix))
        except ValueError:
            return None
        except OverflowError:  # past the largest double: JavaScript's Number() is Infinity
            return math.inf
    return float(text) if JS_DECIMAL.fullmatch(text) else None


def canonical_int(text: str) -> int | None:
    """The integer whose JavaScript String() is exactly `text`, if any: "45" yes, "045" no."""
    if re.fullmatch(r"-?(0|[1-9]\d*)", text) and len(text) <= 20:
        return int(text)
    return None


def page_links(full_url: str, page: Page, total: int) -> str:
    """json-server's Link header: rels by replacing the first `page=<current>` in the raw URL.

    Empty when the page is past the end; for `_page=0` no replacement happens at all.
    """
    _, count = page.window.bounds(total)
    if count == 0:
        return ""
    end = page.number * page.size
    whole = count == total
    current = "undefined" if whole else str(page.number)
    targets: list[tuple[str, int]] = []
    if not whole:
        targets.append(("first", 1))
    if page.number > 1:
        targets.append(("prev", page.number - 1))
    if end < total:
        targets.append(("next", page.number + 1))
    if not whole:
        last = math.ceil(total / page.size) if page.size else 0
        targets.append(("last", int(last)))
    return ", ".join(
        f'<{full_url.replace(f"page={current}", f"page={target}", 1)}>; rel="{rel}"'
        for rel, target in targets
    )


def _filter(key: str, values: list[str]) -> Filter:
    match = OPERATOR_SUFFIX.search(key)
    operator = match.group(1) if match else "eq"
    path = key[: match.start()] if match else key
    return Filter(path=to_path(path), operator=operator, values=tuple(values), key=path)


def _check_filters(filters: tuple[Filter, ...]) -> None:
    if len(filters) > MAX_FILTERS:
        raise InvalidQuery(f"A query may filter on at most {MAX_FILTERS} keys")
    patterns = sum(len(item.values) for item in filters if item.operator in PATTERN_OPERATORS)
    if patterns > MAX_PATTERNS:
        raise InvalidQuery(f"A query may have at most {MAX_PATTERNS} _like, _gte and _lte values")
    regexes = [value for item in filters if item.operator == "like" for value in item.values]
    if any(BACK_REFERENCE.search(regex) for regex in regexes):
        raise InvalidQuery("_like patterns may not use back-references (\\1): they cost too much")
    if sum(map(regex_copies, regexes)) > MAX_REGEX_COPIES:
        raise InvalidQuery(
            f"{{m,n}} repeats in _like patterns may copy at most {MAX_REGEX_COPIES} characters"
            " in all (nested repeats multiplied), and may not hold a * or + loop"
        )


def regex_copies(pattern: str) -> int:
    """How many atoms `{m,n}` bounds copy, nested bounds multiplied. A loop (`*`, `+`, `{m,}`)
    inside a bounded repeat costs more than any budget: `(\\w*\\s*){1,25}` took 4 s.

    >>> regex_copies("^John"), regex_copies("a{2,5}b"), regex_copies("(x{3}|y){4}z")
    (0, 4, 14)
    """
    stack = [_Group()]
    last = _Group()  # the atom just read, for a quantifier after it
    for part in REGEX_TOKEN.findall(pattern):
        group = stack[-1]
        if part == "(":
            stack.append(_Group())
        elif part == ")" and len(stack) > 1:
            last = stack.pop()
            stack[-1].add(last)
        elif part in "*+" or re.fullmatch(r"\{\d*,\}", part):
            group.loops = last.loops = True
        elif part.startswith("{"):
            if last.loops:
                return MAX_REGEX_COPIES + 1
            copies = last.size * (_largest_bound(part) - 1)
            group.size += copies
            group.copies += copies
            last = _Group(last.size + copies, last.copies + copies)
            if group.copies > MAX_REGEX_COPIES:
                break  # a bound can have hundreds of digits: stop multiplying
        elif part not in "?|":  # not atoms
            last = _Group(1)
            group.add(last)
    return sum(group.copies for group in stack)


def _largest_bound(quantifier: str) -> int:
    return max((int(number) for number in re.findall(r"\d+", quantifier)), default=1) or 1


@dataclasses.dataclass
class _Group:
    size: int = 0  # atoms, after copies
    copies: int = 0  # atoms added by bounds
    loops: bool = False

    def add(self, other: _Group) -> None:
        self.size += other.size
        self.copies += other.copies
        self.loops = self.loops or other.loops


def _search(values: list[str] | None) -> str | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0] or None  # `q=` filters nothing
    return values[0]  # json-server searches the first value; an empty one then matches nothing


def _sort(sort: list[str] | None, order: list[str] | None) -> tuple[SortKey, ...]:
    if sort is None or not _truthy(sort):
        return ()
    if len(sort) > 1 or (order is not None and len(order) > 1):
        raise InvalidQuery("Give _sort and _order once each, as comma-separated lists")
    if sort[0].count(",") >= MAX_SORT_KEYS:
        raise InvalidQuery(f"_sort takes at most {MAX_SORT_KEYS} fields")
    orders = [part.lower() for part in (order[0] if order else "").split(",")]
    return tuple(
        SortKey(
            to_path(field),
            descending=position < len(orders) and orders[position] == "desc",
            key=field,
        )
        for position, field in enumerate(sort[0].split(","))
    )


def _page(page_value: list[str] | None, limit: list[str] | None) -> Page:
    number = js_parse_int(page_value)
    return Page(
        number=number if number is not None and number >= 1 else 1,
        size=js_parse_int(limit) or DEFAULT_PAGE_SIZE,
    )


def _window(
    start: list[str] | None, end: list[str] | None, limit: list[str] | None
) -> Window | None:
    first = js_parse_int(start) or 0
    if _truthy(end):
        return Window(first, js_parse_int(end))
    if _truthy(limit):
        size = js_parse_int(limit)
        return Window(first, None if size is None else first + size)
    return None


def _truthy(values: list[str] | None) -> bool:
    """JavaScript truthiness of a parsed parameter: a list, or a non-empty string."""
    return values is not None and (len(values) > 1 or values[0] != "")


def _clamp(index: int, total: int) -> int:
    return max(total + index, 0) if index < 0 else min(index, total)
