"""The log's two formats: text lines for a person at a terminal, or one JSON object per line
for a log pipeline (`--log-format json`); and the label a JSON line and the page give this
process (`--process-label`, its pid by default).

Both come from the same records. Where a log call knows them, it passes the public facts a
pipeline filters on as `extra=` fields (see `facts`): the `reason`, the `client` address and
the session's public `tag`. Never a session id, a cookie, an Engine.IO sid or a password:
those are bearer credentials, and a log is read by more people than the server is
(tests/test_logs.py greps every log of a full run for them).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The optional fields a log call may pass with `extra=`, in the order a JSON line shows them.
FACTS = ("reason", "client", "tag")


def facts(reason: object = None, client: object = None, tag: object = None) -> dict[str, str]:
    """The `extra=` of a log call: the facts given, as text (the ones not known left out)."""
    given = {"reason": reason, "client": client, "tag": tag}
    return {name: str(value) for name, value in given.items() if value not in (None, "")}


# A process label (--process-label): what a log line and a page say of the process, so it is
# public and printable; short, so that it fits a badge on a phone.
LABEL_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,32}")


def process_label() -> str:
    """This process by default (no --process-label): its pid, as `ps`, systemd and
    `make cluster` show it. Short, public, and apart from the other processes of one machine."""
    return str(os.getpid())


def check_process_label(text: str) -> str:
    """`text` as a process label; ValueError says what a label may hold."""
    if not LABEL_PATTERN.fullmatch(text):
        raise ValueError(f"{text!r} is not a process label: 1 to 32 letters, digits, '.', '-' or '_' (e.g. app2)")
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line, ASCII only (a line separator in a username, or a traceback,
    stays escaped inside its line): `time` (ISO 8601, UTC, milliseconds), `level`, `logger`,
    `message`, `process` (`process_label`, the pid unless given), then whichever of `reason`,
    `client`, `tag` the call knew, and `traceback` for an exception."""

    def __init__(self, process_label: str | None = None) -> None:
        super().__init__()
        self.process_label = process_label

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": self.process_label or process_label(),
        }
        for name in FACTS:
            value = getattr(record, name, None)
            if value not in (None, ""):
                line[name] = str(value)
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["traceback"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=True)


def formatter(log_format: str, process_label: str | None = None) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(process_label)
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")


def configure(level: str, log_format: str = "text", process_label: str | None = None) -> None:
    """The root logger writes to stderr at `level`, in `log_format` (a JSON line names this
    process by `process_label`, else the pid); Python's warnings go through it too (as
    `py.warnings`), or they would be lines of their own in a JSON log."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format, process_label))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.captureWarnings(True)
