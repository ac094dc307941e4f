"""PURE: `_page` and `_limit` of the registry's own lists (users, audit), and their Link header."""

from __future__ import annotations

import dataclasses
import math
import urllib.parse
from collections.abc import Mapping

DEFAULT_SIZE = 50
MAX_SIZE = 500


class InvalidPage(ValueError):
    """`_page` or `_limit` is not a usable number."""


@dataclasses.dataclass(frozen=True)
class Page:
    number: int  # from 1
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def page(params: Mapping[str, list[str]]) -> Page:
    """`_page` (from 1, default 1) and `_limit` (1-500, default 50) of parsed query parameters."""
    return Page(
        _positive(params, "_page", 1, None), _positive(params, "_limit", DEFAULT_SIZE, MAX_SIZE)
    )


def links(url: str, params: Mapping[str, list[str]], current: Page, total: int) -> str:
    """RFC 8288 first/prev/next/last links of `url` (a path) with the same query but `_page`."""
    last = max(math.ceil(total / current.size), 1)
    targets = [("first", 1)]
    if current.number > 1:
        targets.append(("prev", min(current.number - 1, last)))
    if current.number < last:
        targets.append(("next", current.number + 1))
    targets.append(("last", last))
    return ", ".join(f'<{_with_page(url, params, number)}>; rel="{rel}"' for rel, number in targets)


def _with_page(url: str, params: Mapping[str, list[str]], number: int) -> str:
    query = [(key, value) for key, values in params.items() if key != "_page" for value in values]
    return f"{url}?{urllib.parse.urlencode([*query, ('_page', str(number))])}"


def _positive(params: Mapping[str, list[str]], name: str, default: int, most: int | None) -> int:
    values = params.get(name)
    if not values:
        return default
    raw = values[-1]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise InvalidPage(f"{name} must be a whole number from 1")
    return min(int(raw), most) if most is not None else int(raw)
