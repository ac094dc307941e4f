"""Structured JSON logs: one object per line on stderr, uvicorn's included."""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
# uvicorn's `color_message` repeats the message with terminal escapes.
STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}
CONFIGURED_LOGGERS = ("", "uvicorn", "uvicorn.error")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        attributes = vars(record)
        if attributes.keys() - STANDARD_ATTRIBUTES:  # most records carry no `extra=`
            entry.update(
                (key, value) for key, value in attributes.items() if key not in STANDARD_ATTRIBUTES
            )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


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
