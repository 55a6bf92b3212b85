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

A verified token is remembered (``VerifiedTokens``) until its dates say it is no longer valid:
publishers send the same service token with every request, reconnecting clients their last
one, and a decode costs more than the rest of a small publish (PyJWT decodes base64url in
Python). Only a token that passed every check is kept, under its exact text; nothing here
revokes tokens, so the answer for that text can only change with the clock.
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
MAX_CACHED_TOKENS = 4096
"""The most verified tokens a verifier remembers; the oldest goes first."""
MAX_CACHED_TOKEN_CHARS = 1024
"""Longer tokens are verified every time. An entry costs about 1.1 KB with a 200-character
token, 3.9 KB at this bound (15 projects; measured with tracemalloc): the cache stays under
16 MB."""


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


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    exp: int
    not_before: int | None
    """The later of ``iat`` and ``nbf``, when the token has either."""


class VerifiedTokens:
    """Tokens that passed verification, with the principal each gave, while their dates hold.

    An entry is used only while PyJWT itself would accept the token's dates at this moment
    (the same integer dates, leeway and comparisons): ``exp`` not passed, and ``iat`` and
    ``nbf`` not ahead of the clock (it may have been set back). Otherwise it is dropped and
    the token is verified again, which gives the usual refusal.
    """

    def __init__(self, leeway: int, size: int = MAX_CACHED_TOKENS) -> None:
        self._leeway = leeway
        self._size = size
        self._entries: dict[str, _Verified] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        now = time.time()  # PyJWT's clock: datetime.now(UTC).timestamp()
        if entry.exp <= now - self._leeway or (
            entry.not_before is not None and entry.not_before > now + self._leeway
        ):
            del self._entries[token]
            return None
        return entry.principal

    def put(self, token: str, claims: Mapping[str, Any], principal: Principal) -> None:
        """Remember a token whose ``claims`` passed every check (``_check_dates`` included)."""
        if len(token) > MAX_CACHED_TOKEN_CHARS or self._size == 0:
            return
        # int(), as PyJWT reads them; _check_dates made them numbers from 0 to the year 9999.
        dates = [int(claims[claim]) for claim in ("iat", "nbf") if claim in claims]
        while len(self._entries) >= self._size:
            self._entries.pop(next(iter(self._entries)), None)
        self._entries[token] = _Verified(principal, int(claims["exp"]), max(dates, default=None))


class TokenVerifier:
    """Verifies tokens against one key; safe to share between connections."""

    def __init__(self, settings: JwtSettings, *, cache_size: int = MAX_CACHED_TOKENS) -> None:
        self._settings = settings
        self.verified = VerifiedTokens(settings.leeway, cache_size)
        """The tokens verified lately (see VerifiedTokens)."""

    def verify(self, token: object) -> Principal:
        """Return the principal of a valid token; raise AuthMissing or AuthFailed otherwise."""
        if token is None or token == "":
            raise AuthMissing()
        if not isinstance(token, str):
            raise AuthFailed("Token must be a string")
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthFailed("Token is too long")
        known = self.verified.get(token)
        if known is not None:
            return known
        claims = self._decode(token)
        _check_dates(claims)
        principal = _principal(claims)
        self.verified.put(token, claims, principal)
        return principal

    def _decode(self, token: str) -> dict[str, Any]:
        """The claims of a token whose signature, iss, aud and dates PyJWT accepts."""
        try:
            claims: dict[str, Any] = jwt.decode(
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
        return claims

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
