"""Bearer-token checks for HTTP routes: 401 without a valid token, 403 without the role."""

from __future__ import annotations

from collections.abc import Iterable

from sanic import Request
from sanic.response import JSONResponse, json

from swe_realtime.errors import AuthMissing, ClientError, ErrorCode
from swe_realtime.http.models import ErrorBody
from swe_realtime.sessions.auth import Principal, Role, TokenVerifier


def error_response(status: int, code: ErrorCode, message: str) -> JSONResponse:
    return json(ErrorBody(error_code=code, message=message).model_dump(mode="json"), status=status)


def authorize(request: Request, verifier: TokenVerifier, roles: Iterable[Role]) -> Principal | JSONResponse:
    """The caller's principal if its token holds one of ``roles``, else the error response."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthMissing()
        principal = verifier.verify(token.strip())
    except ClientError as exc:
        response = error_response(401, exc.code, exc.message)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    if not principal.has_any_role(roles):
        code = ErrorCode.PERMISSION_DENIED
        return error_response(403, code, code.default_message)
    return principal
