"""Process-wide logging: one format for the gateway, uvicorn, Sanic and python-socketio.

Two formats (LOG_FORMAT): ``text``, one human-readable line per record, and ``json``, one
JSON object per line for log shippers. Structured records (the audit trail) pass their
fields in ``extra={"fields": {...}}``: the text format writes them as ``key=value`` after
the message, the JSON format as keys of the object, so both carry the same fields.

Tokens must never reach a log. The gateway itself never logs one, but libraries log request
lines (uvicorn writes the WebSocket handshake path with its query string at INFO), and the
query string may carry ``?token=``: both formatters redact any such value, whoever logs it.

Nor may a client write log lines. Libraries quote client input in their messages (python-engineio
quotes an unknown ``sid`` query parameter), and a newline there would start a line of the
client's making, dated and levelled as it likes. The text format escapes every control
character in a record's line (``\n`` becomes ``\x0a``), and indents a traceback under its
record, so that every line starting at column 0 is one the gateway wrote. The JSON format is
safe by construction: ``json.dumps`` escapes control characters.

Nor does a connection write library lines. python-socketio and python-engineio log every
packet at INFO, and uvicorn two lines per WebSocket ("[accepted]" and "connection open",
on ``uvicorn.error``, its access log for WebSockets): the audit trail already writes one
line per connect (and one per session dropped before it joined), and these took 9% of the
server's CPU per connect. Only warnings of the packet loggers are kept, and uvicorn's
WebSocket access lines are left out as its HTTP access log is; its other lines (start-up,
shutdown, refused handshakes with their status) stay.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_TOKEN_IN_QUERY = re.compile(r"(?i)(token=)[^&\s\"']+")
_CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}
"""C0 and C1 controls, DEL, and the Unicode line and paragraph separators (some log viewers
break lines there), to their escapes."""
TRACEBACK_INDENT = "    "


def redact(text: str) -> str:
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


def escape(text: str) -> str:
    """``text`` on one line: control characters as ``\\xNN`` escapes. Every character
    escaped is one ``isprintable`` refuses: a line without one (nearly all) is not copied."""
    return text if text.isprintable() else text.translate(_CONTROL)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class RedactingFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` on one line, then any traceback, indented."""

    def format(self, record: logging.LogRecord) -> str:
        # A trailing newline (uvicorn ends "Exception in ASGI application\n" with one) is no
        # forgery: drop it rather than print its escape.
        record.message = record.getMessage().rstrip("\r\n")
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        pairs = " ".join(f"{key}={_quote(value)}" for key, value in fields_of(record).items())
        line = escape(f"{self.formatMessage(record)} {pairs}" if pairs else self.formatMessage(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        details = [
            text
            for text in (record.exc_text, record.stack_info and self.formatStack(record.stack_info))
            if text
        ]
        for text in details:
            line += "".join(f"\n{TRACEBACK_INDENT}{escape(part)}" for part in text.splitlines())
        return redact(line)


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...fields, "exception"?}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{key: _plain(value) for key, value in fields_of(record).items()},
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(body, ensure_ascii=False))


def _plain(value: object) -> object:
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def _quote(value: object) -> str:
    text = "-" if value is None else str(value)
    return json.dumps(text) if (not text or " " in text or '"' in text or "=" in text) else text


class NoWebSocketAccessLines(logging.Filter):
    """Leaves out uvicorn's and websockets' line per accepted WebSocket (see above)."""

    ACCESS_LINES = ('%s - "WebSocket %s" [accepted]', "connection open")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.ACCESS_LINES


NO_WEBSOCKET_ACCESS_LINES = NoWebSocketAccessLines()


def configure_logging(level: int = logging.INFO, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    # Neither format writes a record's thread, process or source line: skip finding them out
    # (the logging HOWTO's "Optimization"), a third of the cost of a record nobody writes.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The Socket.IO layers log every packet at INFO; warnings and errors are what matter.
    for name in ("socketio.server", "engineio.server", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").addFilter(
        NO_WEBSOCKET_ACCESS_LINES
    )  # added once, however often called
