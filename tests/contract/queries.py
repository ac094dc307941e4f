"""Seeded random json-server query strings over the fixture's real fields and values.

By construction they stay clear of the deliberate differences (differences.py): `_like` patterns
use only literals, `^ $ . .* [a-z] a|b` and never touch astral characters (LIKE_REGEX_DIALECT);
`_sort` uses only fields of one type with no astral characters (SORT_MIXED_TYPES); there is never
more than one `_sort`, no `callback`, `_embed` or `_expand`, and lists stay short (HUGE_LISTS).
"""

from __future__ import annotations

import json
import pathlib
import random
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixture-db.json"
DEFAULT_SEED = 20240517
DEFAULT_CASES = 300
# One type per field across the records (null and missing aside), and no astral characters.
SORTABLE = (
    "id",
    "patientID",
    "name",
    "age",
    "gender",
    "medicalCondition",
    "lastVisit",
    "email",
    "visits",
    "score",
    "balance",
    "vip",
    "notes",
    "insurance.provider",
    "insurance.plan",
    "insurance.memberNumber",
    "emergencyContact.name",
)
UNKNOWN_FIELDS = ("nonexistent", "Name", "patientId", "insurance.nope", "allergies.5")
HUGE = "99999999999999999999"
EDGE_BOUNDS = ("", " 50", "1e2", "0x50", "abc", "Infinity", "-1", "2.5", "P0", "a", "Z", HUGE)
EDGE_VALUES = ("", "null", "true", "0", "undefined", "-1", HUGE)
PAGES = ("1", "2", "3", "4", "5", "9", "0", "-1", "02", "1.5", "abc", "", HUGE)
LIMITS = ("1", "3", "5", "7", "10", "15", "40", "41", "0", "-2", "2.7", "abc", "")
OFFSETS = ("0", "1", "3", "10", "38", "45", "-3", "-10", "1.9", "abc", "")
ORDERS = ("asc", "desc", "DESC", "Desc", "", "junk")
ASTRAL = re.compile("[\U00010000-\U0010ffff]")
REGEX_SPECIAL = set("\\^$.|?*+()[]{}")


def load_fixture() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["patients"]
    return records


def js_text(value: Any) -> str:
    """JavaScript's String(value) for the fixture's values (no exponent forms there)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join("" if item is None else js_text(item) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    if value is None:
        return "null"
    return str(value)


def paths(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every path json-server's `_.get` reaches: `insurance`, `insurance.plan`, `allergies.0`."""
    for key, value in record.items():
        path = f"{prefix}{key}"
        yield path, value
        if isinstance(value, dict):
            yield from paths(value, f"{path}.")
        elif isinstance(value, list):
            yield from paths({str(i): item for i, item in enumerate(value)}, f"{path}.")


class QueryMaker:
    """Builds one query string at a time from a seeded random.Random."""

    def __init__(self, seed: int, records: list[dict[str, Any]]) -> None:
        self.random = random.Random(seed)  # noqa: S311 - test data, reproducible on purpose
        self.records = records
        self.values: dict[str, list[Any]] = {}
        for record in records:
            for path, value in paths(record):
                self.values.setdefault(path, []).append(value)
        self.fields = sorted(self.values)
        self.texts = sorted(
            {js_text(v) for vs in self.values.values() for v in vs if _searchable(v)}
        )

    def query(self) -> str:
        params: list[tuple[str, str]] = []
        for _ in range(self.random.choice((0, 0, 1, 1, 1, 2, 2, 3))):
            params.extend(self.filter())
        if self.random.random() < 0.3:
            params.extend(("q", self.search()) for _ in range(self.random.choice((1, 1, 1, 2))))
        if self.random.random() < 0.45:
            params.extend(self.sort())
        if self.random.random() < 0.6:
            params.extend(self.slice())
        if self.random.random() < 0.05:
            params.append(("_", str(self.random.randrange(10**6))))
        self.random.shuffle(params)
        return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in params)

    def filter(self) -> list[tuple[str, str]]:
        operator = self.random.choice(("", "", "_ne", "_like", "_gte", "_lte"))
        field = self.field(comparable=operator in ("_gte", "_lte"))
        if operator == "_like":
            make = self.pattern
        elif operator in ("_gte", "_lte"):
            make = self.bound
        else:
            make = self.value
        repeats = self.random.choice((1, 1, 1, 1, 1, 2, 3))
        key = f"{field}{operator}"
        if operator == "" and repeats > 1 and self.random.random() < 0.3:
            key += "[]"
        return [(key, make(field)) for _ in range(repeats)]

    def field(self, comparable: bool) -> str:
        """Mostly a top-level field of a random record: common fields come up more than rare ones.

        With `comparable`, only fields of numbers and strings (`_gte` on booleans, arrays or
        objects compares JavaScript's type conversions, which nobody relies on).
        """
        draw = self.random.random()
        if draw < 0.08:
            return self.random.choice(UNKNOWN_FIELDS)
        fields = self.fields if draw < 0.3 else list(self.random.choice(self.records))
        return self.random.choice([f for f in fields if not comparable or self.comparable(f)])

    def comparable(self, field: str) -> bool:
        """Fields whose values are numbers or strings (`_gte` on objects or booleans: skipped)."""
        return all(v is None or isinstance(v, int | float | str) for v in self.values[field]) and (
            not any(isinstance(v, bool) for v in self.values[field])
        )

    def known(self, field: str) -> list[Any]:
        return [v for v in self.values.get(field, []) if v is not None] or [None]

    def value(self, field: str) -> str:
        if self.random.random() < 0.15:
            return self.random.choice(EDGE_VALUES)
        return js_text(self.random.choice(self.known(field)))

    def bound(self, field: str) -> str:
        if self.random.random() < 0.25:
            return self.random.choice(EDGE_BOUNDS)
        value = self.random.choice(self.known(field))
        if isinstance(value, int | float) and not isinstance(value, bool):
            return js_text(value + self.random.choice((-1, 0, 0, 1)))
        text = ASTRAL.sub("", js_text(value))
        return text[: self.random.randint(1, max(1, len(text)))]

    def pattern(self, field: str) -> str:
        """A simple regular expression that means the same in JavaScript and PostgreSQL."""
        choices = [t for t in (js_text(v) for v in self.known(field)) if _plain(t)] or ["a"]
        # Case-insensitive: flip the case of some letters (accented ones too) to check that.
        text = _swapcase_some(self.random, self.pick_text(choices))
        start = self.random.randrange(len(text) + 1)
        piece = text[start : start + self.random.randint(0, 4)]
        kind = self.random.choice(("literal", "literal", "start", "end", "dot", "class", "or"))
        if kind == "start":
            return "^" + text[: self.random.randint(1, 3)]
        if kind == "end":
            return text[-self.random.randint(1, 3) :] + "$"
        if kind == "dot" and len(piece) >= 2:
            return piece[0] + self.random.choice((".", ".*")) + piece[-1]
        if kind == "class":
            return piece + self.random.choice(("[a-z]", "[0-9]", "[A-Z]", "[aeiou]"))
        if kind == "or":
            other = self.random.choice(choices)
            return f"{piece}|{other[: self.random.randint(1, 4)]}"
        return piece

    def search(self) -> str:
        if self.random.random() < 0.1:
            return self.random.choice(("", " ", "0", "true", "false", "zzz"))
        text = self.pick_text(self.texts)
        start = self.random.randrange(len(text))
        return _swapcase_some(self.random, text[start : start + self.random.randint(1, 5)])

    def pick_text(self, texts: list[str]) -> str:
        """One of `texts`, often one with non-ASCII letters (rare in data, common in bugs)."""
        foreign = [text for text in texts if not text.isascii()]
        if foreign and self.random.random() < 0.3:
            return self.random.choice(foreign)
        return self.random.choice(texts)

    def sort(self) -> list[tuple[str, str]]:
        fields = self.random.sample(SORTABLE, self.random.choice((1, 1, 1, 2, 3)))
        params = [("_sort", ",".join(fields))]
        if self.random.random() < 0.6:
            orders = [self.random.choice(ORDERS) for _ in range(self.random.randint(1, 3))]
            params.append(("_order", ",".join(orders)))
        return params

    def slice(self) -> list[tuple[str, str]]:
        mode = self.random.choice(("page", "page", "limit", "start-end", "start-limit"))
        params: list[tuple[str, str]] = []
        if mode == "page":
            params.append(("_page", self.random.choice(PAGES)))
        if mode in ("page", "limit", "start-limit") and self.random.random() < 0.8:
            params.append(("_limit", self.random.choice(LIMITS)))
        if mode in ("start-end", "start-limit") and self.random.random() < 0.8:
            params.append(("_start", self.random.choice(OFFSETS)))
        if mode == "start-end":
            params.append(("_end", self.random.choice(OFFSETS)))
        return params


def random_queries(seed: int = DEFAULT_SEED, count: int = DEFAULT_CASES) -> list[str]:
    maker = QueryMaker(seed, load_fixture())
    return [maker.query() for _ in range(count)]


def _searchable(value: Any) -> bool:
    return isinstance(value, str | int | float) and bool(value) and not isinstance(value, bool)


def _plain(text: str) -> bool:
    return bool(text) and not ASTRAL.search(text) and not REGEX_SPECIAL & set(text)


def _swapcase_some(generator: random.Random, text: str) -> str:
    """Flip the case of some letters whose other case is one character (not ß → SS)."""
    return "".join(
        c.swapcase() if len(c.swapcase()) == 1 and generator.random() < 0.4 else c for c in text
    )


def _encode(text: str) -> str:
    # Keep the characters clients leave alone (`,` `[` `]` `^` `|` `$` `*`) readable in failures.
    return urllib.parse.quote(text, safe=",[]^|$*:-._~")
