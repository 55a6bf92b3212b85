"""Process-wide logging: one format for the gateway, uvicorn, Sanic and python-socketio."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The Socket.IO layers log every packet at INFO; warnings and errors are what matter.
    for name in ("socketio.server", "engineio.server", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
