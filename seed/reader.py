"""Streams a json-server db.json: one `patients` entry at a time, with its exact source text.

The standard library's C decoder parses each value (`raw_decode`); this module only walks the top
level and the `patients` array, through a window of decoded text that holds about one chunk plus
the value being read, so memory stays flat. Each entry carries the slice of the file it came from,
so a rejected record is kept exactly as it was written. Other top-level collections are handed to
a callback whole (they are not imported, but never lost). A file that cannot be read as a whole
(not UTF-8, not JSON, no `patients` array) raises DbJsonError; the caller has written nothing yet,
or rolls back.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import pathlib
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any, NamedTuple

BOM = codecs.BOM_UTF8
OTHER_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
COLLECTION = "patients"
CHUNK_BYTES = 1 << 20
WHITESPACE = " \t\n\r"  # JSON's four
# A decode error this close to the window's end may be a value cut in two by the window.
CUT_MARGIN = 16


class DbJsonError(ValueError):
    """The file cannot be imported as a whole; the message says why in one line."""


@dataclasses.dataclass(frozen=True)
class Unreadable:
    """A well-formed JSON value that Python cannot hold: its record is refused for `reason`, and
    only that record (the file goes on)."""

    reason: str


class Entry(NamedTuple):
    """A value, not a dataclass: one is made per record, and a frozen dataclass costs ~1 us more."""

    position: int  # index in the `patients` array
    value: Any  # Unreadable when it holds a number past Python's integer limit
    raw: str  # the entry's text exactly as the file has it


class Progress:
    """How far through the file the reader is, for progress lines."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.position: Callable[[], int] = lambda: 0

    @property
    def done(self) -> int:
        return self.position()


def entries(
    path: pathlib.Path,
    other: Callable[[str, Any], None],
    progress: Progress | None = None,
    note: Callable[[str], None] | None = None,
) -> Iterator[Entry]:
    """Yield every entry of the `patients` array; pass other top-level values to `other`, and
    what is worth knowing about the file (a byte order mark) to `note`."""
    try:
        with path.open("rb") as file:
            start = file.read(4)
            if start.startswith(OTHER_BOMS):
                raise DbJsonError(f"{path} is not UTF-8 text (it is UTF-16 or UTF-32)")
            file.seek(len(BOM) if start.startswith(BOM) else 0)
            if start.startswith(BOM) and note is not None:
                note("the file starts with a UTF-8 byte order mark; it was skipped")
            if progress is not None:
                progress.position = file.tell
            yield from read(file, other)
    except OSError as error:
        raise DbJsonError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise DbJsonError(
            f"{path} is not UTF-8 text: byte 0x{error.object[error.start]:02x} near byte "
            f"{_byte_offset(error)} (a Latin-1 or Windows-1252 file? save it as UTF-8)"
        ) from None
    except DbJsonError as error:  # valid so far, but not shaped like a json-server db.json
        raise DbJsonError(f"{path}: {error}") from None
    except (json.JSONDecodeError, _NotJson) as error:
        raise DbJsonError(f"{path} is not valid JSON: {error}") from None
    except ValueError as error:  # any other value the decoder refuses
        raise DbJsonError(f"{path} is not valid JSON: {error}") from None


def _byte_offset(error: UnicodeDecodeError) -> str:
    """Where in the file the undecodable byte is, when the decoder knows (see _Window)."""
    offset = getattr(error, "file_offset", None)
    return f"{offset:,}" if offset is not None else "?"


def read(
    file: IO[bytes], other: Callable[[str, Any], None], chunk_bytes: int = CHUNK_BYTES
) -> Iterator[Entry]:
    """`entries` for an open binary file, positioned after any BOM."""
    text = _Window(file, chunk_bytes)
    if text.peek() == "":
        raise DbJsonError("the file is empty")
    if text.peek() != "{":
        raise DbJsonError('the top level must be an object like {"patients": [...]}')
    text.expect("{")
    found = False
    count = 0  # positions go on if "patients" comes twice, so they stay unique
    while text.peek() != "}":
        if text.keys:  # every member after the first follows a comma
            text.expect(",")
        key = text.key()
        if key != COLLECTION:
            value = text.value()[0]
            if isinstance(value, Unreadable):
                raise DbJsonError(f'the "{key}" collection cannot be kept: {value.reason}')
            other(key, value)
        elif text.peek() != "[":
            raise DbJsonError('"patients" must be an array')
        else:
            found = True
            for value, raw in text.array_items():
                yield Entry(count, value, raw)
                count += 1
    text.expect("}")
    if text.peek() != "":
        raise _NotJson(f"extra data after the top-level object, at character {text.offset()}")
    if not found:
        raise DbJsonError('the file has no "patients" array')


class _NotJson(ValueError):
    """Well-formed so far, but not JSON (NaN, a missing comma, extra data...)."""


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
# Reads a value that DECODER could not turn into Python (an integer past the digit limit of
# int()), only to find where it ends: its integers stay text, so the value is never used.
MEASURER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=str)


def _decode(text: str, at: int) -> tuple[Any, int]:
    try:
        return DECODER.raw_decode(text, at)
    except json.JSONDecodeError:
        raise
    except ValueError:  # an integer longer than int() converts: valid JSON, the record refused
        _, end = MEASURER.raw_decode(text, at)
        limit = sys.get_int_max_str_digits()
        reason = f"a number has more than {limit} digits, more than the importer can read"
        return Unreadable(reason), end


class _Window:
    """The file's text from the current value on, decoded chunk by chunk."""

    def __init__(self, file: IO[bytes], chunk_bytes: int) -> None:
        self.file = file
        self.chunk_bytes = chunk_bytes
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.at = 0
        self.dropped = 0  # characters before self.text, for error positions
        self.eof = False
        self.keys = 0

    def offset(self) -> int:
        return self.dropped + self.at

    def _more(self) -> bool:
        """Read the next chunk (at least as much as the window holds); False at the end."""
        if self.eof:
            return False
        # The decoder keeps the bytes of a character cut by the last chunk's end (at most 3).
        first_byte = self.file.tell() - len(self.decoder.getstate()[0])
        data = self.file.read(max(self.chunk_bytes, len(self.text) - self.at))
        self.eof = not data
        self.dropped += self.at
        try:
            decoded = self.decoder.decode(data, final=self.eof)
        except UnicodeDecodeError as error:
            error.file_offset = first_byte + error.start  # type: ignore[attr-defined]
            raise
        self.text = self.text[self.at :] + decoded
        self.at = 0
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end of the file)."""
        while True:
            text, at = self.text, self.at
            while at < len(text) and text[at] in WHITESPACE:
                at += 1
            self.at = at
            if at < len(text):
                return text[at]
            if not self._more():
                return ""

    def expect(self, character: str) -> None:
        found = self.peek()
        if found != character:
            where = f"found {found!r}" if found else "the file ends"
            raise _NotJson(f"expected {character!r} at character {self.offset()}, {where}")
        self.at += 1

    def key(self) -> str:
        if self.peek() != '"':
            raise _NotJson(f"expected a key at character {self.offset()}")
        key, _ = self.value()
        self.expect(":")
        self.keys += 1
        return str(key)

    def value(self) -> tuple[Any, str]:
        """The next JSON value and its source text."""
        self.peek()
        while True:
            try:
                value, end = _decode(self.text, self.at)
            except json.JSONDecodeError as error:
                if self._maybe_cut(error) and self._more():
                    continue
                raise _NotJson(f"{error.msg} (character {self.dropped + error.pos})") from None
            if end > len(self.text) - CUT_MARGIN and self._more():
                continue  # a number may go on in the next chunk: "12" + "34", "-1" + ".5"
            raw = self.text[self.at : end]
            self.at = end
            return value, raw

    def _maybe_cut(self, error: json.JSONDecodeError) -> bool:
        return error.pos >= len(self.text) - CUT_MARGIN or error.msg.startswith("Unterminated")

    def array_items(self) -> Iterator[tuple[Any, str]]:
        self.expect("[")
        if self.peek() == "]":
            self.at += 1
            return
        while True:
            yield self.value()
            if self.peek() == "]":
                self.at += 1
                return
            self.expect(",")
