"""An ASGI guard that refuses HTTP bodies above MAX_PAYLOAD_BYTES with 413.

Sanic enforces its REQUEST_MAX_SIZE only when it runs its own server, not as an ASGI app,
so the limit is applied here, in front of it: a declared Content-Length over the limit is
refused before anything is read, and a chunked body is read up to the limit and no further.
The body read is then handed to the app unchanged.

It stands in front of python-engineio's long-polling requests too. python-engineio checks a
POST's declared length itself, but then closes the session waiting for its queue to drain,
which over polling never happens: the request was never answered and its socket and task
were kept until restart. And a POST whose client left before its body made python-engineio
fail with KeyError ('REQUEST_METHOD'), logged as an ASGI application error. Here such a
request is answered 413 at once, or dropped without a word when the client is gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from swe_realtime.errors import ErrorCode
from swe_realtime.http.models import ErrorBody

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """``app`` behind the MAX_PAYLOAD_BYTES bound on HTTP request bodies."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._max_bytes:
            await _too_large(send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            body += message.get("body", b"")
            if len(body) > self._max_bytes:
                await _too_large(send)
                return
            if not message.get("more_body", False):
                break
        await self._app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive callable that yields the buffered body once, then defers to the server."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _too_large(send: Send) -> None:
    code = ErrorCode.PAYLOAD_TOO_LARGE
    payload = ErrorBody(error_code=code, message=code.default_message).model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
