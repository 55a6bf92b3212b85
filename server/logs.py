"""Process-wide logging: one format for the gateway, uvicorn, Sanic and python-socketio.

Tokens must never reach a log. The gateway itself never logs one, but libraries log request
lines (uvicorn writes the WebSocket handshake path with its query string at INFO), and the
query string may carry ``?token=``: the formatter redacts any such value, whoever logs it.
"""

from __future__ import annotations

import logging
import re
import sys

_TOKEN_IN_QUERY = re.compile(r"(?i)(token=)[^&\s\"']+")


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _TOKEN_IN_QUERY.sub(r"\1[redacted]", super().format(record))


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The Socket.IO layers log every packet at INFO; warnings and errors are what matter.
    for name in ("socketio.server", "engineio.server", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
