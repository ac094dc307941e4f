"""Structured JSON logs: one object per line on stderr, uvicorn's included."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
# uvicorn's `color_message` repeats the message with terminal escapes.
STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}
CONFIGURED_LOGGERS = ("", "uvicorn", "uvicorn.error")
# One encoder for every line: json.dumps with options builds a new encoder on every call.
ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, its keys in a fixed order: time, level, logger, message,
    then the record's `extra=` fields, then the exception if any. Every request logs a line,
    so this is kept cheap."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in STANDARD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return ENCODER.encode(entry)

    def _utc_time(self, created: float) -> str:
        """ISO 8601 in UTC with microseconds, e.g. 2026-11-22T09:46:00.123456+00:00; the
        date and time of day are formatted once a second, not once a line."""
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        microseconds = min(round((created - second) * 1_000_000), 999_999)
        return f"{self._second_text}.{microseconds:06d}+00:00"


def configure(level: str) -> None:
    """Send every log line, uvicorn's included, to stderr as JSON.

    uvicorn's own access line is silenced: middleware.EdgeMiddleware logs a structured one.
    """
    # Every request logs a line; these record attributes are never written (see JsonFormatter),
    # so the logging module need not look them up (its documented optimisation knobs).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False
    logging._srcfile = None  # no caller lookup (file, line, function) per record
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in CONFIGURED_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler] if name == "" else []
        logger.propagate = name != ""
        logger.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True
