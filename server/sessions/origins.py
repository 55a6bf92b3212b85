"""Which browser pages may open a connection: the Origin check of the handshake.

A page is let in when it is served by the gateway itself (its origin names the host the
request was sent to: the ``Host`` header, or ``X-Forwarded-Host`` from a proxy), when
CORS_ORIGINS lists it (or is ``*``), and in ``--dev`` mode when it comes from this machine
on any port. The gateway's own origin is accepted whatever CORS_ORIGINS says: the console
(``/inspector``) and same-origin apps behind a proxy would otherwise be refused as soon as
an allow-list is set (python-engineio replaces its same-origin rule with the list).

The host is compared with its port, as the browser sends both: a proxy must forward the
port it was reached on (deploy/nginx.conf sets ``Host $http_host``). The scheme is not
compared: python-engineio's ASGI driver knows it only from ``X-Forwarded-Proto``, and a
page on the same host and port is the gateway's own whatever its scheme. A request without
an Origin is not from a browser page, and is not checked (python-engineio does not ask).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class Origins:
    """python-engineio's ``cors_allowed_origins`` callable: (origin, environ) -> allowed."""

    def __init__(self, listed: Iterable[str], *, local: bool) -> None:
        self._listed = frozenset(origin.rstrip("/") for origin in listed)
        self._local = local

    def __call__(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        if origin is None or "*" in self._listed or origin in self._listed:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        if self._local and parts.hostname in LOCAL_HOSTS:
            return True
        return parts.netloc.lower() in _hosts(environ)


def _hosts(environ: Mapping[str, Any]) -> set[str]:
    """The host (with its port, if any) the request was sent to, as the gateway and a proxy
    in front of it say."""
    named = [environ.get("HTTP_HOST", ""), *str(environ.get("HTTP_X_FORWARDED_HOST", "")).split(",")]
    return {host.strip().lower() for host in named if host.strip()}
