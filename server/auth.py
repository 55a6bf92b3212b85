"""Tokens in, principals out: the only module that knows what a JWT is.

Verification uses an explicit algorithm allow-list taken from the settings (HMAC only with a
shared secret, RSA/EC only with a public key), so neither ``none`` nor the HS/RS key-confusion
trick can pass. ``exp`` and ``sub`` are required and ``sub`` must be a UUID.

``exp``, ``iat`` and ``nbf`` are NumericDates (RFC 7519): JSON numbers, here of seconds from
1970 to the end of year 9999. PyJWT reads them with ``int()``, which takes the string
``"9999999999"`` and ``true``; and an ``exp`` of ``10**400`` or ``1e300`` passes PyJWT but not
``float()``, ``datetime.fromtimestamp`` or an event loop timer. So they are screened before
PyJWT reads them, and a token is either refused (AuthFailed) or gives an ``expires_at`` every
caller can use. Clocks may disagree by ``JWT_LEEWAY`` seconds on all three.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

import jwt

from swe_realtime.errors import AuthFailed, AuthMissing
from swe_realtime.settings import JwtSettings

MAX_TOKEN_CHARS = 8192
"""Longer tokens are refused before any parsing: no legitimate claim set comes near it."""
MAX_NUMERIC_DATE = 253402300799
"""9999-12-31T23:59:59Z, the latest date a token may name (``datetime`` ends there)."""
NUMERIC_DATES = ("exp", "iat", "nbf")


class Role(StrEnum):
    ADMIN = "admin"
    SERVICE = "service"
    AGENT = "agent"


@dataclass(frozen=True)
class Principal:
    """Who is on the other end of a connection or request, as the token says."""

    user_id: UUID
    projects: frozenset[UUID]
    roles: frozenset[Role]
    expires_at: float

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    def has_any_role(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)


class TokenVerifier:
    """Verifies tokens against one key; safe to share between connections."""

    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings

    def verify(self, token: object) -> Principal:
        """Return the principal of a valid token; raise AuthMissing or AuthFailed otherwise."""
        if token is None or token == "":
            raise AuthMissing()
        if not isinstance(token, str):
            raise AuthFailed("Token must be a string")
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthFailed("Token is too long")
        try:
            claims = jwt.decode(
                token,
                self._settings.key,
                algorithms=list(self._settings.algorithms),
                issuer=self._settings.issuer,
                audience=self._settings.audience,
                leeway=self._settings.leeway,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailed("Token has expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthFailed(f"Token lacks the required claim {exc.claim!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthFailed("Token issuer is not accepted") from None
        except jwt.InvalidAudienceError:
            raise AuthFailed("Token audience is not accepted") from None
        except jwt.ImmatureSignatureError:
            raise AuthFailed("Token is not valid yet") from None
        except jwt.InvalidTokenError:
            raise AuthFailed() from None
        except (OverflowError, TypeError, ValueError):
            # A date PyJWT's int() cannot take: infinite (1e400 in the JSON), or a list or an
            # object, which PyJWT 2.9 (the floor) lets out as it is.
            raise AuthFailed("Token claim 'exp', 'iat' or 'nbf' is not a number of seconds") from None
        _check_dates(claims)
        return _principal(claims)

    def ends_at(self, principal: Principal) -> float:
        """When a connection holding ``principal`` must end: its ``exp``, with the leeway its
        token was accepted with (a token accepted 2 s after ``exp`` is not dropped at once)."""
        return principal.expires_at + self._settings.leeway


def _check_dates(claims: Mapping[str, Any]) -> None:
    """Refuse NumericDates that are not numbers of seconds between 1970 and the end of 9999.

    PyJWT takes any value ``int()`` takes ("9999999999", ``true``, 10**400, negative
    numbers), and the gateway then does arithmetic on ``exp``: checked on the verified claims,
    after the one decode a request costs (reading the unverified claims first doubled it).
    """
    for claim in NUMERIC_DATES:
        if claim not in claims:
            continue
        value = claims[claim]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AuthFailed(f"Token claim {claim!r} must be a number")
        if not 0 <= value <= MAX_NUMERIC_DATE:  # also False for NaN
            raise AuthFailed(f"Token claim {claim!r} is out of range")


def _principal(claims: Mapping[str, Any]) -> Principal:
    user_id = _uuid(claims["sub"], "sub")
    projects = claims.get("projects", [])
    roles = claims.get("roles", [])
    if not isinstance(projects, list):
        raise AuthFailed("Token claim 'projects' must be a list of UUIDs")
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise AuthFailed("Token claim 'roles' must be a list of strings")
    known_roles = {role.value for role in Role}
    return Principal(
        user_id=user_id,
        projects=frozenset(_uuid(project, "projects") for project in projects),
        # Roles this gateway does not know are someone else's business: ignore, do not refuse.
        roles=frozenset(Role(role) for role in roles if role in known_roles),
        expires_at=float(claims["exp"]),
    )


def _uuid(value: object, claim: str) -> UUID:
    try:
        if not isinstance(value, str):
            raise ValueError
        return UUID(value)
    except ValueError:
        raise AuthFailed(f"Token claim {claim!r} must hold UUIDs") from None


def mint_token(
    settings: JwtSettings,
    *,
    sub: UUID,
    projects: Iterable[UUID] = (),
    roles: Iterable[Role] = (),
    ttl_seconds: int = 3600,
) -> str:
    """Sign a token with the configured secret: a development and test tool, not an issuer."""
    if settings.secret is None:
        raise ValueError("minting needs JWT_SECRET; a public key can only verify tokens")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(sub),
        "iat": now,
        "exp": now + ttl_seconds,
        "projects": [str(project) for project in projects],
        "roles": [str(role) for role in roles],
    }
    if settings.issuer:
        claims["iss"] = settings.issuer
    if settings.audience:
        claims["aud"] = settings.audience
    return jwt.encode(claims, settings.secret, algorithm=settings.algorithms[0])
