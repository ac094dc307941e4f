import datetime
import json
import logging
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api import logs
from api.logs import JsonFormatter


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    return logging.getLogger("api.test").makeRecord(
        "api.test", logging.INFO, "file.py", 1, message, args or ("world",), None, extra=extra
    )


def test_a_line_is_one_json_object_with_the_fixed_keys_first_then_the_extras_in_order() -> None:
    line = JsonFormatter().format(record(status=200, path="/patients/1", duration_ms=1.25))

    entry = json.loads(line)

    assert list(entry) == [
        "time", "level", "logger", "message", "status", "path", "duration_ms",
    ]  # fmt: skip
    assert entry["level"] == "INFO"
    assert entry["logger"] == "api.test"
    assert entry["message"] == "hello world"
    assert (entry["status"], entry["path"], entry["duration_ms"]) == (200, "/patients/1", 1.25)
    assert "\n" not in line


@pytest.mark.parametrize(
    "created",
    [0.0, 1_700_000_000.0, 1_700_000_000.5, 1_700_000_000.999_999_9, 1_795_000_123.000_042],
)
def test_the_time_is_iso_8601_in_utc_with_microseconds(created: float) -> None:
    entry = record()
    entry.created = created

    text = json.loads(JsonFormatter().format(entry))["time"]

    parsed = datetime.datetime.fromisoformat(text)
    assert parsed.utcoffset() == datetime.timedelta(0)
    assert len(text) == len("2026-11-22T09:46:00.123456+00:00")
    expected = datetime.datetime.fromtimestamp(created, datetime.UTC)
    assert abs((parsed - expected).total_seconds()) < 2e-6


def test_the_time_follows_the_clock_across_seconds_with_one_formatter() -> None:
    formatter = JsonFormatter()
    times = []
    for created in (1_700_000_000.25, 1_700_000_000.75, 1_700_000_061.5, 1_700_000_000.1):
        entry = record()
        entry.created = created
        times.append(json.loads(formatter.format(entry))["time"])

    assert times == [
        "2023-11-14T22:13:20.250000+00:00",
        "2023-11-14T22:13:20.750000+00:00",
        "2023-11-14T22:14:21.500000+00:00",
        "2023-11-14T22:13:20.100000+00:00",
    ]


def test_text_stays_readable_and_odd_values_do_not_break_the_line() -> None:
    line = JsonFormatter().format(
        record("patient %s", "Zoë Ørsted", when=datetime.date(2024, 1, 2))
    )

    assert "Zoë Ørsted" in line  # not \\u-escaped
    assert json.loads(line)["when"] == "2024-01-02"  # str() of what JSON cannot hold


def test_an_exception_is_logged_with_its_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        entry = record()
        entry.exc_info = sys.exc_info()

    logged = json.loads(JsonFormatter().format(entry))

    assert list(logged)[-1] == "exception"
    assert "ValueError: boom" in logged["exception"]
    assert "Traceback" in logged["exception"]


def access_record(
    method: str, path: str, status: int, duration_ms: float, request_id: str, *, user_id: int | None
) -> logs.AccessRecord:
    record = logs.AccessRecord(
        "api.access", logging.INFO, "", 0, logs.ACCESS_MESSAGE, (method, path, status), None
    )
    for name, value in zip(
        logs.ACCESS_FIELDS, (method, path, status, duration_ms, request_id, user_id), strict=True
    ):
        setattr(record, name, value)
    return record


@given(
    method=st.text(),
    path=st.text(),  # anything a client sends: quotes, backslashes, controls, surrogates
    status=st.integers(100, 599),
    duration_ms=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    request_id=st.text(),
    user_id=st.none() | st.integers(1, 2**63 - 1),
    created=st.floats(0, 4e9),
)
def test_an_access_line_is_the_generic_line_character_for_character(
    *,
    method: str,
    path: str,
    status: int,
    duration_ms: float,
    request_id: str,
    user_id: int | None,
    created: float,
) -> None:
    record = access_record(method, path, status, duration_ms, request_id, user_id=user_id)
    record.created = created
    formatter = JsonFormatter()

    line = formatter.format(record)

    assert line == formatter.format_any(record)
    assert json.loads(line)["path"] == path


def test_access_logs_the_line_the_generic_call_logged(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO")
    logs.access("GET", '/patients/"1"\\n\x07é', 200, 1.5, "abc", user_id=42)
    fields = {
        "method": "GET",
        "path": '/patients/"1"\\n\x07é',
        "status": 200,
        "duration_ms": 1.5,
        "request_id": "abc",
        "user_id": 42,
    }
    logs.ACCESS.info(logs.ACCESS_MESSAGE, "GET", fields["path"], 200, extra=fields)

    fast, generic = capsys.readouterr().err.splitlines()
    assert json.loads(fast) | {"time": None} == json.loads(generic) | {"time": None}
    assert fast[fast.index('"level"') :] == generic[generic.index('"level"') :]


def test_access_lines_follow_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("WARNING")
    logs.access("GET", "/patients/1", 200, 1.0, "abc")
    assert capsys.readouterr().err == ""
    logs.configure("INFO")
    logs.access("GET", "/patients/1", 200, 1.0, "abc")
    assert json.loads(capsys.readouterr().err)["message"] == "GET /patients/1 200"
