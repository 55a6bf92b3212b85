"""Bearer-token checks for HTTP routes: 401 without a valid token, 403 without the role, 429
for an address whose tokens keep failing."""

from __future__ import annotations

import math
from collections.abc import Iterable

from sanic import Request
from sanic.response import JSONResponse, json

from swe_realtime.errors import AuthMissing, ClientError, ErrorCode, RateLimited
from swe_realtime.http.models import ErrorBody
from swe_realtime.sessions.auth import Principal, Role, TokenVerifier
from swe_realtime.sessions.limits import Buckets
from swe_realtime.telemetry import metrics


def error_response(status: int, code: ErrorCode, message: str) -> JSONResponse:
    return json(ErrorBody(error_code=code, message=message).model_dump(mode="json"), status=status)


def rate_limited(message: str, retry_after: int) -> JSONResponse:
    """429 RATE_LIMITED with the seconds to wait in ``Retry-After``."""
    limited = RateLimited(message)
    response = error_response(429, limited.code, limited.message)
    response.headers["Retry-After"] = str(retry_after)
    return response


class Authenticator:
    """The HTTP API's token check, with a bucket of failures per client address.

    A missing, invalid or expired token takes one of the address's AUTH_FAILURES_PER_MINUTE;
    once they are spent the address is answered 429 before its token is looked at, so that
    a caller sending bad tokens costs a dictionary lookup per request, not a signature check.
    A valid token takes nothing: only an address that is failing waits, its valid tokens too
    (telling them apart is the check being saved) for at most ``Retry-After`` seconds.
    """

    def __init__(self, verifier: TokenVerifier, failures_per_minute: int) -> None:
        self._verifier = verifier
        self._failures = Buckets(failures_per_minute / 60, failures_per_minute)
        self._retry_after = math.ceil(60 / failures_per_minute)

    def authorize(self, request: Request, roles: Iterable[Role]) -> Principal | JSONResponse:
        """The caller's principal if its token holds one of ``roles``, else the error response."""
        address = request.ip
        if self._failures.spent(address):
            metrics.RATE_LIMITED.labels("auth").inc()
            return rate_limited("Too many failed authentications from this address", self._retry_after)
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthMissing()
            principal = self._verifier.verify(token.strip())
        except ClientError as exc:
            self._failures.take(address)
            response = error_response(401, exc.code, exc.message)
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if not principal.has_any_role(roles):
            code = ErrorCode.PERMISSION_DENIED
            return error_response(403, code, code.default_message)
        return principal
