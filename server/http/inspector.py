"""``/inspector``: the operator console, served from server/inspector/ (no CDN).

The page itself is public and holds nothing: it asks for an admin token, then reads the
admin API (server/http/admin.py: charts, instances, connections, rooms) and watches a room
over Socket.IO with it, as any admin client could; it can close a connection. In dev mode it
also offers a form to publish a test event (``config.json`` says which mode).
socket.io-client's browser bundle is vendored in server/inspector/vendor (``just vendor``
copies it from npm; a test keeps it identical to the npm package's).
"""

from __future__ import annotations

from pathlib import Path

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from swe_realtime.events.catalogue import CATALOGUE
from swe_realtime.http.docs import serve_bytes

PAGES = Path(__file__).resolve().parent.parent / "inspector"
FILES = {
    "/inspector": ("index.html", "text/html; charset=utf-8"),
    "/inspector/inspector.js": ("inspector.js", "text/javascript; charset=utf-8"),
    "/inspector/inspector.css": ("inspector.css", "text/css; charset=utf-8"),
    "/inspector/favicon.svg": ("favicon.svg", "image/svg+xml"),
    "/inspector/vendor/socket.io.min.js": ("vendor/socket.io.min.js", "text/javascript; charset=utf-8"),
}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Only the gateway's own files and sockets: a page holding an admin token runs nothing else
and talks to no other host. ``connect-src 'self'`` covers the WebSocket to the page's own
host and port (CSP Level 3; the console's browser test runs with it); ``ws: wss:`` would
have allowed a socket to any host."""


def inspector_blueprint(dev: bool) -> Blueprint:
    bp = Blueprint("inspector")
    for route, (name, content_type) in FILES.items():
        body = (PAGES / name).read_bytes()
        bp.add_route(
            serve_bytes(body, content_type, {"Content-Security-Policy": POLICY}),
            route,
            name=name.replace("/", "_").replace(".", "_"),
        )

    @bp.get("/inspector/config.json")
    async def config(request: Request) -> HTTPResponse:
        example = CATALOGUE["workflow.progress"].event.example() if dev else None
        return json({"dev": dev, "example": example}, headers={"Cache-Control": "no-store"})

    return bp
