"""Errors Sanic answers before any route runs, in the API's error body.

Sanic parses a JSON body lazily but outside our handlers' ``try`` (a malformed body is its
``BadRequest``), and it answers an unknown route (404) or method (405) itself. Its own body
(``description``, ``status``, ``message``) lacked the ``error_code`` every other error of the
HTTP API carries; here each gets ``{"error_code", "message"}``, its status and headers kept
(a 405's ``Allow``). Server errors (5xx) keep Sanic's handling: they are no client's mistake.
"""

from __future__ import annotations

from typing import Any

from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse

from swe_realtime.errors import ErrorCode
from swe_realtime.http._auth import error_response

_CODES = {404: ErrorCode.NOT_FOUND, 413: ErrorCode.PAYLOAD_TOO_LARGE}
"""Client errors other than these are INVALID_REQUEST."""


def install_error_bodies(sanic: Sanic[Any, Any]) -> None:
    """Answer Sanic's own client errors with the API's error body."""

    @sanic.exception(SanicException)
    async def client_error(request: Request, exc: SanicException) -> HTTPResponse:
        status = exc.status_code
        if status >= 500:
            return sanic.error_handler.default(request, exc)
        response = error_response(status, _CODES.get(status, ErrorCode.INVALID_REQUEST), str(exc.message))
        response.headers.update(exc.headers)
        return response
