"""Streams a json-server db.json: one `patients` entry at a time, in constant memory.

Other top-level collections are handed to a callback whole (they are not imported, but never
lost). A file that cannot be read as a whole (not UTF-8, not JSON, no `patients` array) raises
DbJsonError; the caller has written nothing yet, or rolls back.
"""

from __future__ import annotations

import codecs
import dataclasses
import pathlib
from collections.abc import Callable, Iterator
from typing import IO, Any

import ijson

BOM = codecs.BOM_UTF8
OTHER_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
COLLECTION = "patients"
CONTAINER_STARTS = ("start_map", "start_array")
CONTAINER_ENDS = ("end_map", "end_array")


class DbJsonError(ValueError):
    """The file cannot be imported as a whole; the message says why in one line."""


@dataclasses.dataclass(frozen=True)
class Entry:
    position: int  # index in the `patients` array
    value: Any


class Progress:
    """How far through the file the reader is, for progress lines."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.position: Callable[[], int] = lambda: 0

    @property
    def done(self) -> int:
        return self.position()


def entries(
    path: pathlib.Path, other: Callable[[str, Any], None], progress: Progress | None = None
) -> Iterator[Entry]:
    """Yield every entry of the `patients` array; pass other top-level values to `other`."""
    try:
        with path.open("rb") as file:
            start = file.read(4)
            if start.startswith(OTHER_BOMS):
                raise DbJsonError(f"{path} is not UTF-8 text (it is UTF-16 or UTF-32)")
            file.seek(len(BOM) if start.startswith(BOM) else 0)
            if progress is not None:
                progress.position = file.tell  # ijson's C backend reads past our hooks
            yield from _entries(file, other)
    except OSError as error:
        raise DbJsonError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise DbJsonError(f"{path} is not UTF-8 text") from None
    except ijson.JSONError as error:
        raise DbJsonError(f"{path} is not valid JSON: {_first_line(error)}") from None


def _entries(file: IO[bytes], other: Callable[[str, Any], None]) -> Iterator[Entry]:
    events = ijson.parse(file, use_float=True)
    try:
        first = next(events, None)
    except ijson.IncompleteJSONError:
        first = None
    if first is None:
        raise DbJsonError("the file is empty")
    if first[1] != "start_map":
        raise DbJsonError('the top level must be an object like {"patients": [...]}')
    found = False
    for _, event, key in events:
        if event == "end_map":
            break
        _, start, value = next(events)
        if key != COLLECTION:
            other(key, _build(start, value, events))
        elif start != "start_array":
            raise DbJsonError('"patients" must be an array')
        else:
            found = True
            yield from _array_items(events)
    if not found:
        raise DbJsonError('the file has no "patients" array')


def _array_items(events: Iterator[tuple[str, str, Any]]) -> Iterator[Entry]:
    for position, (_, event, value) in enumerate(events):
        if event == "end_array":
            return
        yield Entry(position, _build(event, value, events))


def _build(event: str, value: Any, events: Iterator[tuple[str, str, Any]]) -> Any:
    """The whole JSON value that starts with (event, value), read from `events`."""
    if event not in CONTAINER_STARTS:
        return value
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = 1
    while depth:
        _, event, value = next(events)
        depth += (event in CONTAINER_STARTS) - (event in CONTAINER_ENDS)
        builder.event(event, value)
    return builder.value


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
