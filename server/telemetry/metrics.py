"""Prometheus metrics of one gateway process, served at ``GET /metrics``.

Each instance exposes its own figures (Prometheus labels them by scrape target; the
``swe_realtime_info`` gauge also names the instance). What is a state rather than a count
(open connections, rooms, Redis reachability) is read when scraped, from the callbacks
``create_app`` installs.

Per process, not per gateway. The metrics are module-level, as the audit trail is: the code
that sees a thing happen counts it (the protocol seams, the fan-out, the sessions, the
publish path, the Redis channels), with no object to thread through every layer and no
attribute lookup added per delivery. A deployment runs one gateway per process (each
``WORKERS`` process keeps its own figures), so per process is per gateway there. Several
gateways built in one process (the tests do) share the counters and the ``info`` gauge, and
the state gauges add theirs up (:func:`install`); ``GET /metrics`` of any of them shows the
process's figures. Making them per gateway would mean a registry per gateway passed to
every layer that counts, for a case production does not have.

Label values are bounded: event types and commands come from the catalogue, error codes
and reasons from enumerations; nothing a client sends becomes a label as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from time import time
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()
PREFIX = "swe_realtime"

INFO = Gauge(
    f"{PREFIX}_info", "Always 1; names this instance.", ["instance_id", "version"], registry=REGISTRY
)
CONNECTIONS = Gauge(
    f"{PREFIX}_connections", "Open Socket.IO connections on this instance.", registry=REGISTRY
)
ROOMS = Gauge(f"{PREFIX}_rooms", "Rooms with at least one member on this instance.", registry=REGISTRY)
HISTORY_ROOMS = Gauge(
    f"{PREFIX}_history_rooms",
    "Rooms whose event history this instance keeps in memory (without Redis).",
    registry=REGISTRY,
)
REDIS_UP = Gauge(
    f"{PREFIX}_redis_up", "1 while Redis answers, 0 when not; absent without Redis.", registry=REGISTRY
)

CONNECTIONS_OPENED = Counter(f"{PREFIX}_connections_opened", "Connections accepted.", registry=REGISTRY)
CONNECTIONS_REFUSED = Counter(
    f"{PREFIX}_connections_refused", "Connections refused, by error code.", ["code"], registry=REGISTRY
)
DISCONNECTS = Counter(
    f"{PREFIX}_disconnects",
    "Connections closed, by python-socketio's reason (client disconnect, transport close, ...).",
    ["reason"],
    registry=REGISTRY,
)
WRITE_PAUSES = Counter(
    f"{PREFIX}_websocket_write_pauses",
    "Times a WebSocket's transport buffer passed its high-water mark: a client reading slower than"
    " it is sent to (its frames wait in the connection's cork until it catches up).",
    registry=REGISTRY,
)
DROPPED = Counter(
    f"{PREFIX}_connections_dropped",
    "Connections the gateway closed itself, by reason (slow_consumer, malformed, token_expired,"
    " connect_timeout, unknown_namespace, admin).",
    ["reason"],
    registry=REGISTRY,
)
COMMANDS = Counter(
    f"{PREFIX}_commands",
    "Client commands answered, by command and status.",
    ["command", "status"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    f"{PREFIX}_rate_limited",
    "Requests refused by a rate limit, by scope (connect, command, admin, auth).",
    ["scope"],
    registry=REGISTRY,
)
EVENTS_PUBLISHED = Counter(
    f"{PREFIX}_events_published", "Events accepted, by type.", ["type"], registry=REGISTRY
)
EVENTS_REFUSED = Counter(
    f"{PREFIX}_events_refused",
    "Events refused before sending, by reason (invalid, redis_unavailable).",
    ["reason"],
    registry=REGISTRY,
)
VALIDATION_FAILURES = Counter(
    f"{PREFIX}_validation_failures",
    "Inputs that failed model validation, by where they came from (publish, command).",
    ["source"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    f"{PREFIX}_deliveries",
    "Events handed to connections on this instance, by type.",
    ["type"],
    registry=REGISTRY,
)
REPLAYED = Counter(
    f"{PREFIX}_events_replayed", "Missed events replayed to reconnecting clients.", registry=REGISTRY
)
RECOVERIES = Counter(
    f"{PREFIX}_recoveries",
    "Room recoveries, by result (recovered, or why not).",
    ["result"],
    registry=REGISTRY,
)
REDIS_RECONNECTS = Counter(
    f"{PREFIX}_redis_reconnects", "Times Redis came back after an outage.", registry=REGISTRY
)
UNPUBLISHED = Counter(
    f"{PREFIX}_redis_unpublished",
    "Events refused because Redis could not store and send them.",
    registry=REGISTRY,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
COMMAND_SECONDS = Histogram(
    f"{PREFIX}_command_seconds",
    "Time to answer a client command, by command.",
    ["command"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
PUBLISH_TO_EMIT_SECONDS = Histogram(
    f"{PREFIX}_publish_to_emit_seconds",
    "From an event's acceptance (its timestamp) to its hand-over to this instance's connections.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)

M = TypeVar("M", Counter, Histogram)


class Children(Generic[M]):
    """A labelled metric's children, each looked up once: ``labels()`` takes a lock and
    builds a tuple per call, on paths that run per event or per command. Label values are
    bounded (see above), so is this."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


published = Children(EVENTS_PUBLISHED)
deliveries = Children(DELIVERIES)
commands = Children(COMMANDS)
command_seconds = Children(COMMAND_SECONDS)
disconnects = Children(DISCONNECTS)


@dataclass(frozen=True)
class _Gauges:
    connections: Callable[[], float]
    rooms: Callable[[], float]
    redis_up: Callable[[], float] | None


_gateways: list[_Gauges] = []
"""The state of every gateway built in this process (usually one), read when scraped."""


def install(
    instance_id: str,
    version: str,
    connections: Callable[[], float],
    rooms: Callable[[], float],
    redis_up: Callable[[], float] | None,
) -> None:
    """Name the instance and attach the state gauges to a gateway; with several gateways in
    one process the gauges add theirs up (Redis: up only while up for all)."""
    INFO.labels(instance_id=instance_id, version=version).set(1)
    _gateways.append(_Gauges(connections, rooms, redis_up))
    CONNECTIONS.set_function(lambda: sum(gateway.connections() for gateway in _gateways))
    ROOMS.set_function(lambda: sum(gateway.rooms() for gateway in _gateways))
    if redis_up is not None:
        REDIS_UP.set_function(
            lambda: min(gateway.redis_up() for gateway in _gateways if gateway.redis_up is not None)
        )


def delivered(event: str, accepted: float | None, recipients: int) -> None:
    """Count one fan-out, and how long after its acceptance (Unix time) it happened."""
    if recipients:
        deliveries(event).inc(recipients)
    if accepted is not None:
        PUBLISH_TO_EMIT_SECONDS.observe(max(0.0, time() - accepted))


def accepted_at(payload: object) -> float | None:
    """When the gateway accepted an event given as JSON (its envelope's ``timestamp``)."""
    stamp = payload.get("timestamp") if isinstance(payload, dict) else None
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return None


def exposition() -> bytes:
    """The metrics in the Prometheus text format."""
    return generate_latest(REGISTRY)


def total(*counters: Counter) -> float:
    """The counters' values, summed over every label."""
    return sum(
        sample.value
        for counter in counters
        for family in counter.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )
