"""Structured logs: one JSON object per line, each with the id of the request or the
delivery it belongs to, so that one callback can be followed from its acknowledgement
to the messages it caused.

What goes into a log line is decided where it is written: never a secret, a token, a
decrypted body or what a person typed (the pipeline logs where a delivery came from
and what failed, not its text); ``tests/operations/test_logs.py`` greps a whole scenario's logs.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import re
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

#: The request (``r-…``) or delivery (``d-…``) the current code works for.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_default_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Records keep the id current where they were made (a handler may format them later)."""
    record = _default_factory(*args, **kwargs)
    record.request_id = request_id.get()
    return record


logging.setLogRecordFactory(_record_with_request_id)

_INCOMING_ID = re.compile(r"[0-9A-Za-z._-]{1,64}")
REQUEST_ID_HEADER = "X-Request-Id"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id"[, "error"]}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        current = getattr(record, "request_id", None) or request_id.get()
        if current:
            entry["request_id"] = current
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: int = logging.INFO) -> None:
    """JSON lines on standard error for ``serve`` (the CLI's other commands talk to people)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # no per-request lines (query strings)


class _Ids:
    """Request ids: a random prefix per process and a counter, unique without asking the
    kernel for randomness on every request (a forked child draws its own prefix)."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix, self.count = secrets.token_hex(4), itertools.count(1)

    def next(self, kind: str) -> str:
        return f"{kind}-{self.prefix}{next(self.count):x}"


_ids = _Ids()


def new_id(prefix: str = "r") -> str:
    return _ids.next(prefix)


@web.middleware
async def with_request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request gets an id (a sane incoming ``X-Request-Id`` is kept), in its log
    lines and in the response."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    current = incoming if _INCOMING_ID.fullmatch(incoming) else new_id()
    token = request_id.set(current)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = current
        raise
    finally:
        request_id.reset(token)
    response.headers[REQUEST_ID_HEADER] = current
    return response
