"""The generated contracts, served: ``/docs``, ``/asyncapi.yaml|json``, ``/openapi.yaml|json``.

The files are the committed output of ``python -m codegen`` in ``contracts/`` (or
CONTRACTS_DIR); they are read once when the app is built. Where they are missing (a
deployment that left them out) the routes answer 404 and start-up logs a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from swe_realtime.errors import ErrorCode
from swe_realtime.http._auth import error_response

DOCUMENTS = {
    "/docs": ("docs/index.html", "text/html; charset=utf-8"),
    "/asyncapi.yaml": ("asyncapi.yaml", "application/yaml"),
    "/asyncapi.json": ("asyncapi.json", "application/json"),
    "/openapi.yaml": ("openapi.yaml", "application/yaml"),
    "/openapi.json": ("openapi.json", "application/json"),
}

_log = logging.getLogger("swe_realtime.docs")


def docs_blueprint(contracts: Path) -> Blueprint:
    bp = Blueprint("docs")
    for route, (name, content_type) in DOCUMENTS.items():
        path = contracts / name
        if not path.is_file():
            _log.warning("%s is not there: %s will answer 404 (run `just codegen`)", path, route)
        body = path.read_bytes() if path.is_file() else None
        bp.add_route(serve_bytes(body, content_type), route, name=route.strip("/").replace(".", "_"))
    return bp


def serve_bytes(
    body: bytes | None, content_type: str, headers: dict[str, str] | None = None
) -> Callable[[Request], Coroutine[Any, Any, HTTPResponse]]:
    """A handler answering with ``body`` (read once, at start-up), or 404 when it is missing."""

    async def handler(request: Request) -> HTTPResponse:
        if body is None:
            return error_response(404, ErrorCode.INVALID_REQUEST, "This document was not generated")
        return raw(body, content_type=content_type, headers=headers)

    return handler
