"""All configuration, read once from the environment and validated before the server starts.

A mistake in the environment stops start-up with a :class:`SettingsError` whose message is a
single line naming the variable and what is wrong with it, so an operator reading a crash
loop's last log line knows what to fix.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from swe_realtime.errors import SettingsError

if TYPE_CHECKING:  # imported where a key is read: emitters read settings without cryptography
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = frozenset({"ES256", "ES384", "ES512"})
MIN_SECRET_BYTES = 32
DEFAULT_REDIS_CHANNEL = "swe-realtime"
_PACKAGE = Path(__file__).resolve().parent
SHIPPED_CONTRACTS = (
    _PACKAGE / "contracts" if (_PACKAGE / "contracts").is_dir() else _PACKAGE.parent / "contracts"
)
"""The generated documents served at /docs: inside an installed wheel, or a checkout's contracts/."""
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+sentinel", "redis+cluster", "rediss+cluster"})
MIN_INTERVAL = 0.1
"""Seconds: shorter intervals only add load (a test idles past 0.2 s ones in a second)."""
MAX_INTERVAL = 3600.0
"""Seconds: an hour. A larger value is most likely milliseconds written as seconds."""

PublicKey: TypeAlias = "RSAPublicKey | EllipticCurvePublicKey"


@dataclass(frozen=True)
class JwtSettings:
    """How tokens are verified: one key, the algorithms it may be used with, optional iss/aud."""

    key: str | PublicKey
    algorithms: tuple[str, ...]
    issuer: str | None = None
    audience: str | None = None
    leeway: int = 5
    """Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat`` (JWT_LEEWAY)."""
    generated: bool = False
    """True when ``--dev`` invented the secret: tokens die with the process."""

    @property
    def secret(self) -> str | None:
        """The shared secret, when tokens are HMAC-signed (only then can this process mint)."""
        return self.key if isinstance(self.key, str) else None


@dataclass(frozen=True)
class RedisSettings:
    """How instances find each other: one Redis, one pub/sub channel (also the key prefix)."""

    url: str
    channel: str = DEFAULT_REDIS_CHANNEL


@dataclass(frozen=True)
class HistorySettings:
    """Per-room event history for missed-event recovery (server/delivery/history.py)."""

    size: int = 1000
    """Events kept per room (HISTORY_SIZE); 0 turns history and positions off."""
    ttl: int = 600
    """Seconds an event is kept (HISTORY_TTL); a room idle this long starts a new epoch."""


@dataclass(frozen=True)
class TlsSettings:
    """Certificate chain and private key files for serving https and wss directly."""

    cert: str
    key: str


@dataclass(frozen=True)
class Limits:
    """What one client may take from an instance; each a setting with a safe default."""

    connections_per_user: int = 20
    rooms_per_connection: int = 100
    commands_per_second: int = 20
    """Sustained command rate per connection; bursts of twice as many pass."""
    connects_per_ip_per_minute: int = 60
    queued_packets: int = 1000
    """Outbound packets a connection may have waiting; a client that stops reading is dropped."""
    queued_bytes: int = 4 * 1024 * 1024
    """Outbound bytes a connection may have unread, of any kind (events, acks, replays,
    pongs); past it the client is dropped as a slow consumer (MAX_QUEUED_BYTES)."""
    connect_timeout: int = 5
    """Seconds an Engine.IO session may stay open without joining ``/ws`` (CONNECT_TIMEOUT)."""
    admin_requests_per_second: int = 5
    """Admin API requests per admin per instance; bursts of twice as many. Each asks every
    instance, which scans its connections: kept well below a connection's command rate."""
    auth_failures_per_minute: int = 20
    """HTTP API requests per client address per instance whose token is missing, invalid or
    expired, bursts of as many (AUTH_FAILURES_PER_MINUTE); past it the address is answered
    429 before any signature is checked, until a failure's worth has refilled."""


@dataclass(frozen=True)
class Timings:
    """The intervals of the gateway's background work, in seconds (fractions allowed).

    The defaults suit production. They are settings so that a test can idle past each of
    them in a second or two, where the defaults would take minutes; change them in
    production only for a reason the operations guide gives.
    """

    redis_health_check: float = 5.0
    """A Redis connection idle this long is checked with a PING before it is used again; a
    pub/sub connection's PING unanswered for another interval counts as a dead connection
    (REDIS_HEALTH_CHECK_INTERVAL)."""
    room_sweep: float = 1.0
    """How often rooms without local members are unsubscribed (ROOM_SWEEP_INTERVAL)."""
    heartbeat: float = 2.0
    """How often an instance writes its stats and roster entry, which live three heartbeats
    (HEARTBEAT_INTERVAL)."""
    presence_tick: float = 3.0
    """How often an instance checks its share of the cluster's connection counts and looks
    for dead instances (PRESENCE_TICK)."""
    presence_grace: float = 6.0
    """How long an instance's heartbeat must be missing before its share is swept
    (PRESENCE_GRACE); longer than a heartbeat, so that a Redis that lost its data does not
    get live instances swept before they beat again."""
    ping_interval: float = 25.0
    """Engine.IO: how often the server pings each client (PING_INTERVAL)."""
    ping_timeout: float = 20.0
    """Engine.IO: how long a ping may go unanswered before the client is dropped, and how
    long a client may read nothing before it is dropped as a slow consumer (PING_TIMEOUT)."""
    timeline_step: float = 2.0
    """How often an instance notes its connections and event rates for the operator
    console's charts, which show the last 15 minutes of notes (TIMELINE_STEP)."""

    @property
    def silent_instance(self) -> float:
        """How long an instance that stopped beating (stalled, partitioned) may still hold
        live connections: its clients give up on it a ping interval plus a ping timeout after
        its last word, and a heartbeat more covers the beat it missed. Until then an admin
        answer without it is ``partial``, never complete."""
        return self.ping_interval + self.ping_timeout + self.heartbeat


DEFAULT_TIMINGS = Timings()
"""The defaults, for components built without ``Settings`` (tests build some alone)."""


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one gateway process."""

    jwt: JwtSettings
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: tuple[str, ...] = ()
    max_payload_bytes: int = 1_000_000
    max_connections: int = 10_000
    limits: Limits = field(default_factory=Limits)
    redis: RedisSettings | None = None
    """None: one instance, in memory."""
    history: HistorySettings = field(default_factory=HistorySettings)
    timings: Timings = DEFAULT_TIMINGS
    metrics_token: str | None = None
    """A static bearer token for GET /metrics (METRICS_TOKEN); unset: admin tokens only."""
    log_format: str = "text"
    """LOG_FORMAT: ``text`` (one human-readable line) or ``json`` (one JSON object per line)."""
    tls: TlsSettings | None = None
    workers: int = 1
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    """Names this process in cluster stats and logs (INSTANCE_ID; default host-pid)."""
    contracts_dir: Path = SHIPPED_CONTRACTS
    """Where the generated contracts served at /docs are (CONTRACTS_DIR; default the shipped ones)."""
    dev: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, dev: bool = False) -> Settings:
        """Build settings from environment variables; raise SettingsError on the first mistake."""
        return cls(
            jwt=_jwt_settings(environ, dev=dev),
            host=environ.get("HOST", "127.0.0.1"),
            port=_int(environ, "PORT", 8000, minimum=0, maximum=65535),
            cors_origins=_origins(environ.get("CORS_ORIGINS", "")),
            max_payload_bytes=_int(environ, "MAX_PAYLOAD_BYTES", 1_000_000, minimum=1024),
            max_connections=_int(environ, "MAX_CONNECTIONS", 10_000, minimum=1),
            limits=Limits(
                connections_per_user=_int(environ, "MAX_CONNECTIONS_PER_USER", 20, minimum=1),
                rooms_per_connection=_int(environ, "MAX_ROOMS_PER_CONNECTION", 100, minimum=3),
                commands_per_second=_int(environ, "COMMANDS_PER_SECOND", 20, minimum=1),
                connects_per_ip_per_minute=_int(environ, "CONNECTS_PER_IP_PER_MINUTE", 60, minimum=1),
                queued_packets=_int(environ, "MAX_QUEUED_PACKETS", 1000, minimum=10),
                queued_bytes=_int(environ, "MAX_QUEUED_BYTES", 4 * 1024 * 1024, minimum=64 * 1024),
                connect_timeout=_int(environ, "CONNECT_TIMEOUT", 5, minimum=1, maximum=300),
                admin_requests_per_second=_int(environ, "ADMIN_REQUESTS_PER_SECOND", 5, minimum=1),
                auth_failures_per_minute=_int(environ, "AUTH_FAILURES_PER_MINUTE", 20, minimum=1),
            ),
            redis=redis_settings(environ),
            history=history_settings(environ),
            timings=timing_settings(environ),
            metrics_token=_metrics_token(environ.get("METRICS_TOKEN") or None),
            log_format=_choice(environ, "LOG_FORMAT", ("text", "json")),
            tls=tls_settings(environ.get("SSL_CERT") or None, environ.get("SSL_KEY") or None),
            workers=_workers(environ),
            dev=dev,
            **({"instance_id": environ["INSTANCE_ID"]} if environ.get("INSTANCE_ID") else {}),
            contracts_dir=Path(environ.get("CONTRACTS_DIR") or SHIPPED_CONTRACTS),
        )


def redis_settings(environ: Mapping[str, str]) -> RedisSettings | None:
    """REDIS_URL and REDIS_CHANNEL (the gateway's, and an emitter process's)."""
    url = environ.get("REDIS_URL") or None
    if url is None:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in REDIS_SCHEMES:
        raise SettingsError(f"REDIS_URL must start with one of {', '.join(sorted(REDIS_SCHEMES))}://")
    channel = environ.get("REDIS_CHANNEL") or DEFAULT_REDIS_CHANNEL
    if not all(c.isalnum() or c in "-_.:" for c in channel):
        raise SettingsError(f"REDIS_CHANNEL: {channel!r} may hold letters, digits and -_.: only")
    return RedisSettings(url, channel)


def history_settings(environ: Mapping[str, str]) -> HistorySettings:
    """HISTORY_SIZE and HISTORY_TTL (the gateway's, and an emitter process's)."""
    return HistorySettings(
        size=_int(environ, "HISTORY_SIZE", 1000, minimum=0, maximum=100_000),
        ttl=_int(environ, "HISTORY_TTL", 600, minimum=1, maximum=7 * 24 * 3600),
    )


def timing_settings(environ: Mapping[str, str]) -> Timings:
    """The advanced intervals (REDIS_HEALTH_CHECK_INTERVAL, ..., TIMELINE_STEP)."""
    heartbeat = _seconds(environ, "HEARTBEAT_INTERVAL", DEFAULT_TIMINGS.heartbeat)
    grace = _seconds(environ, "PRESENCE_GRACE", DEFAULT_TIMINGS.presence_grace)
    if grace <= heartbeat:
        raise SettingsError(
            f"PRESENCE_GRACE ({grace:g} s) must be longer than HEARTBEAT_INTERVAL ({heartbeat:g} s):"
            " else a live instance may be swept before its next heartbeat"
        )
    return Timings(
        redis_health_check=_seconds(
            environ, "REDIS_HEALTH_CHECK_INTERVAL", DEFAULT_TIMINGS.redis_health_check
        ),
        room_sweep=_seconds(environ, "ROOM_SWEEP_INTERVAL", DEFAULT_TIMINGS.room_sweep),
        heartbeat=heartbeat,
        presence_tick=_seconds(environ, "PRESENCE_TICK", DEFAULT_TIMINGS.presence_tick),
        presence_grace=grace,
        ping_interval=_seconds(environ, "PING_INTERVAL", DEFAULT_TIMINGS.ping_interval),
        ping_timeout=_seconds(environ, "PING_TIMEOUT", DEFAULT_TIMINGS.ping_timeout),
        timeline_step=_seconds(environ, "TIMELINE_STEP", DEFAULT_TIMINGS.timeline_step),
    )


def tls_settings(cert: str | None, key: str | None) -> TlsSettings | None:
    """TLS files, both or neither, checked to exist and be readable."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise SettingsError("TLS needs both SSL_CERT and SSL_KEY (or --ssl-cert and --ssl-key)")
    for name, path in (("SSL_CERT", cert), ("SSL_KEY", key)):
        if not os.access(path, os.R_OK):
            raise SettingsError(f"{name}: cannot read {path}")
    return TlsSettings(cert, key)


def _workers(environ: Mapping[str, str]) -> int:
    workers = _int(environ, "WORKERS", 1, minimum=1, maximum=64)
    if workers > 1 and not environ.get("REDIS_URL"):
        raise SettingsError(
            "WORKERS above 1 needs REDIS_URL: the worker processes share events through Redis"
        )
    return workers


def _jwt_settings(environ: Mapping[str, str], *, dev: bool) -> JwtSettings:
    secret = environ.get("JWT_SECRET") or None
    pem = environ.get("JWT_PUBLIC_KEY") or None
    if secret and pem:
        raise SettingsError("set JWT_SECRET or JWT_PUBLIC_KEY, not both")
    issuer = environ.get("JWT_ISSUER") or None
    audience = environ.get("JWT_AUDIENCE") or None
    leeway = _int(environ, "JWT_LEEWAY", 5, minimum=0, maximum=300)
    raw_algorithms = environ.get("JWT_ALGORITHMS", "")
    if pem is not None:
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

        key = _public_key(pem)
        family = RSA_ALGORITHMS if isinstance(key, RSAPublicKey) else EC_ALGORITHMS
        default = "RS256" if isinstance(key, RSAPublicKey) else "ES256"
        algorithms = _algorithms(raw_algorithms or default, family, "the JWT_PUBLIC_KEY given")
        return JwtSettings(key, algorithms, issuer, audience, leeway)
    if secret is None:
        if not dev:
            raise SettingsError("no JWT key: set JWT_SECRET or JWT_PUBLIC_KEY (or run with --dev)")
        return JwtSettings(secrets.token_urlsafe(48), ("HS256",), issuer, audience, leeway, generated=True)
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"JWT_SECRET is {len(secret.encode())} bytes; HMAC secrets need at least {MIN_SECRET_BYTES}"
        )
    algorithms = _algorithms(raw_algorithms or "HS256", HMAC_ALGORITHMS, "JWT_SECRET")
    return JwtSettings(secret, algorithms, issuer, audience, leeway)


def _metrics_token(token: str | None) -> str | None:
    """A bearer token guessed is a metrics page read: as long as an HMAC secret, at least."""
    if token is not None and len(token.encode()) < MIN_SECRET_BYTES:
        raise SettingsError(
            f"METRICS_TOKEN is {len(token.encode())} bytes; it needs at least {MIN_SECRET_BYTES}"
        )
    return token


def _public_key(pem: str) -> PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    # Environment files often carry a PEM on one line with literal "\n" separators.
    text = pem.replace("\\n", "\n").strip()
    try:
        key = load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"JWT_PUBLIC_KEY is not a PEM public key ({exc})") from None
    if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey):
        raise SettingsError("JWT_PUBLIC_KEY must be an RSA or EC public key")
    return key


def _algorithms(raw: str, allowed: frozenset[str], key_name: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    if not names:
        raise SettingsError("JWT_ALGORITHMS is empty")
    for name in names:
        if name not in allowed:
            raise SettingsError(
                f"JWT_ALGORITHMS: {name!r} cannot be used with {key_name}; "
                f"choose from {', '.join(sorted(allowed))}"
            )
    return names


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise SettingsError(f"CORS_ORIGINS: {origin!r} is not '*' or an http(s) origin")
    return origins


def _int(
    environ: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None
) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum is not None else ""
        raise SettingsError(f"{name} must be at least {minimum}{upper}, got {value}")
    return value


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    """An interval in seconds, fractions allowed, between MIN_INTERVAL and MAX_INTERVAL."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not (math.isfinite(value) and MIN_INTERVAL <= value <= MAX_INTERVAL):
        raise SettingsError(
            f"{name} must be at least {MIN_INTERVAL:g} and at most {MAX_INTERVAL:g} seconds,"
            f" got {raw.strip()}"
        )
    return value


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = (environ.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value
