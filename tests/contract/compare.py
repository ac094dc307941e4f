"""Send one request to json-server and to our API, and say how the answers differ.

What is compared, and how (see differences.py for what is left out on purpose):
- the status code;
- the JSON bodies, parsed: array order counts, object key order and formatting do not, a boolean
  is never equal to a number (Python's `True == 1` would hide that), `2` equals `2.0` (JavaScript
  cannot tell them apart). 404 bodies are not compared (differences.NOT_FOUND_BODY);
- the media type of Content-Type, `X-Total-Count`, and `Link` and `Location` with each server's
  own `http://127.0.0.1:PORT` replaced by a placeholder;
- with an Origin request header only (differences.CORS_WITHOUT_ORIGIN): Allow-Origin and
  Allow-Credentials verbatim, Allow-Methods and Allow-Headers as sets of tokens, and every
  header json-server lists in Access-Control-Expose-Headers must be listed by ours too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx2

from tests.contract import servers

ORIGIN = "http://localhost:5173"
BASE_PLACEHOLDER = "http://{host}"
TIMEOUT_SECONDS = 30.0
SHOWN_CHARACTERS = 700


@dataclasses.dataclass(frozen=True)
class Call:
    """One HTTP request; `target` is the path and query exactly as sent."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = (("Origin", ORIGIN),)
    body: bytes | None = None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def __str__(self) -> str:
        headers = "".join(f"\n    {name}: {value}" for name, value in self.headers)
        body = "" if self.body is None else f"\n    body: {_shorten(self.body.decode())}"
        return f"{self.method} {self.target}{headers}{body}"


def get(target: str, *, origin: bool = True) -> Call:
    return Call("GET", target, _origin_headers(origin))


def send_json(method: str, target: str, body: Any, *, origin: bool = True) -> Call:
    headers = (*_origin_headers(origin), ("Content-Type", "application/json"))
    return Call(method, target, headers, json.dumps(body, ensure_ascii=False).encode())


def _origin_headers(origin: bool) -> tuple[tuple[str, str], ...]:
    return (("Origin", ORIGIN),) if origin else ()


@dataclasses.dataclass(frozen=True)
class Answer:
    """The comparable parts of one response."""

    status: int
    media_type: str | None
    body: Any
    headers: Mapping[str, Any]

    def __str__(self) -> str:
        shown = {
            name: _show_header(value)
            for name, value in self.headers.items()
            if value is not None and value != frozenset()
        }
        return f"{self.status} {self.media_type} {shown}\n    body: {_show_body(self.body)}"


# Compared headers: name -> how its value is made comparable (given the server's base URL).
Normalize = Callable[[str, str], Any]


def _verbatim(value: str, base_url: str) -> str:
    return value


def _placeholder(value: str, base_url: str) -> str:
    return value.replace(base_url, BASE_PLACEHOLDER)


def _tokens(value: str, base_url: str) -> frozenset[str]:
    return frozenset(token.strip() for token in value.split(",") if token.strip())


def _lower_tokens(value: str, base_url: str) -> frozenset[str]:
    return frozenset(token.lower() for token in _tokens(value, base_url))


HEADERS: dict[str, Normalize] = {"x-total-count": _verbatim, "link": _placeholder}
LOCATION: dict[str, Normalize] = {"location": _placeholder}
CORS_HEADERS: dict[str, Normalize] = {
    "access-control-allow-origin": _verbatim,
    "access-control-allow-credentials": _verbatim,
    "access-control-allow-methods": _tokens,
    "access-control-allow-headers": _lower_tokens,
}
EXPOSE = "access-control-expose-headers"


class Pair:
    """json-server (the reference) and our API, each behind its own httpx2 client."""

    def __init__(
        self,
        reference: servers.Server,
        ours: servers.Server,
        our_headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """`our_headers` go to our API only (a bearer token when it runs with sign-in)."""
        self.reference = reference
        self.ours = ours
        self.our_headers = our_headers
        self._clients = {
            server.base_url: httpx2.Client(
                base_url=server.base_url, follow_redirects=False, timeout=TIMEOUT_SECONDS
            )
            for server in (reference, ours)
        }

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def send(self, server: servers.Server, call: Call) -> httpx2.Response:
        extra = self.our_headers if server is self.ours else ()
        return self._clients[server.base_url].request(
            call.method, call.target, headers=[*call.headers, *extra], content=call.body
        )

    def assert_same(self, call: Call, context: str = "") -> tuple[Answer, Answer]:
        """Send `call` to both; fail with both answers unless they agree. Returns them."""
        reference = answer(self.send(self.reference, call), self.reference.base_url, call)
        ours = answer(self.send(self.ours, call), self.ours.base_url, call)
        mismatches = differences_between(reference, ours, call)
        if mismatches:
            raise AssertionError(
                f"{context}{call}\n  differ in: {', '.join(mismatches)}\n"
                f"  json-server: {reference}\n  ours:        {ours}"
                f"{_first_different_record(reference.body, ours.body)}"
            )
        return reference, ours


def answer(response: httpx2.Response, base_url: str, call: Call) -> Answer:
    compared = {**HEADERS, **CORS_HEADERS, **_location_rule(call)}
    headers: dict[str, Any] = {
        name: None if (value := response.headers.get(name)) is None else rule(value, base_url)
        for name, rule in compared.items()
    }
    headers[EXPOSE] = _lower_tokens(response.headers.get(EXPOSE, ""), base_url)
    content_type = response.headers.get("content-type")
    media_type = None if content_type is None else content_type.split(";")[0].strip().lower()
    return Answer(response.status_code, media_type, _parse(response.content), headers)


def _location_rule(call: Call) -> dict[str, Normalize]:
    # differences.LOCATION_VERBATIM: json-server keeps a trailing slash or query in Location.
    if call.method == "POST" and call.target != "/patients":
        return {}
    return LOCATION


def differences_between(reference: Answer, ours: Answer, call: Call) -> list[str]:
    """The names of what differs between the two answers to `call`, in a fixed order."""
    found = []
    if reference.status != ours.status:
        found.append("status")
    if reference.media_type != ours.media_type:
        found.append("content-type")
    if reference.status != 404 and not same_json(reference.body, ours.body):
        found.append("body")
    origin = call.header("Origin") is not None
    for name in (*HEADERS, *LOCATION, *CORS_HEADERS):
        if name in CORS_HEADERS and not origin:
            continue
        if reference.headers.get(name) != ours.headers.get(name):
            found.append(name)
    if origin and not reference.headers[EXPOSE] <= ours.headers[EXPOSE]:
        found.append(EXPOSE)
    return found


def same_json(left: Any, right: Any) -> bool:
    """JSON equality: key order ignored, array order kept, booleans apart from numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_json(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(same_json, left, right))
    return type(left) is type(right) and left == right


@dataclasses.dataclass(frozen=True)
class NotJson:
    """A body that is not JSON, kept as text so it still compares and shows."""

    text: str


def _parse(content: bytes) -> Any:
    if not content:
        return None
    text = content.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return NotJson(text)


def _show_body(body: Any) -> str:
    """Lists of records as their ids (then the records), anything else as compact JSON."""
    if isinstance(body, NotJson):
        return _shorten(repr(body.text))
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if isinstance(body, list) and all(isinstance(item, dict) for item in body):
        ids = [item.get("id") for item in body]
        return f"{len(body)} records, ids {ids}\n    {_shorten(text)}"
    return _shorten(text)


def _show_header(value: Any) -> str:
    return ", ".join(sorted(value)) if isinstance(value, frozenset) else str(value)


def _first_different_record(reference: Any, ours: Any) -> str:
    """For two lists of records, the first position where they differ, shown in full."""
    if not (isinstance(reference, list) and isinstance(ours, list)):
        return ""
    for position, (left, right) in enumerate(zip(reference, ours, strict=False)):
        if not same_json(left, right):
            return (
                f"\n  first different record, position {position}:"
                f"\n    json-server: {_show_body(left)}\n    ours:        {_show_body(right)}"
            )
    return ""


def _shorten(text: str) -> str:
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return f"{text[:SHOWN_CHARACTERS]}… ({len(text)} characters)"
