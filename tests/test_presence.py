"""The gateway's parts on their own: the command table, the registry and agent presence.

Their wire behaviour is tested through a real server in test_commands, test_limits and
test_agents; here each part is checked against its own interface.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest

from swe_realtime.app import create_app
from swe_realtime.errors import ConnectionLimit
from swe_realtime.events import CLIENT_COMMANDS, Command, PingCommand, PongAck
from swe_realtime.publish.broadcaster import Broadcaster
from swe_realtime.publish.message import Outgoing
from swe_realtime.sessions.auth import Principal, Role
from swe_realtime.sessions.limits import TokenBucket
from swe_realtime.sessions.namespace import Gateway
from swe_realtime.sessions.presence import REFRESHED, Presence
from swe_realtime.sessions.registry import Connection, Registry
from swe_realtime.settings import Settings
from tests.support import SECRET, Client, ServerProcess, make_token


def principal(user_id: UUID | None = None, *roles: Role) -> Principal:
    return Principal(user_id or uuid4(), frozenset(), frozenset(roles), time.time() + 60)


def connection(user: Principal, *rooms: str) -> Connection:
    return Connection(user, "127.0.0.1:1", TokenBucket(10, 20), set(rooms))


# --- the command table ---------------------------------------------------------------------


def test_every_client_command_has_a_handler() -> None:
    gateway = create_app(Settings.from_env({"JWT_SECRET": SECRET})).gateway
    assert gateway.commands.keys() == CLIENT_COMMANDS.keys()


def test_a_command_without_a_handler_stops_the_gateway_from_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    command = Command("Not handled anywhere.", PingCommand, (PongAck,))
    monkeypatch.setitem(CLIENT_COMMANDS, "unhandled", command)
    with pytest.raises(RuntimeError, match=r"missing \['unhandled'\]"):
        create_app(Settings.from_env({"JWT_SECRET": SECRET}))


def test_only_the_lifecycle_handlers_are_found_by_name() -> None:
    """python-socketio's AsyncNamespace dispatches ``on_<event>`` by name: only the lifecycle
    events may take that path, so no other ``on_`` method exists to be found."""
    assert sorted(name for name in dir(Gateway) if name.startswith("on_")) == ["on_connect", "on_disconnect"]


@pytest.mark.parametrize(
    "event", ["on_connect", "on_disconnect", "on_ping", "agent_status", "_ping", "commands"]
)
async def test_method_names_are_not_commands(
    server: ServerProcess, clients: Callable[[], Client], event: str
) -> None:
    client = await clients().connect(server.url, make_token())
    answer: dict[str, Any] = await client.call(event, {})
    assert answer["error_code"] == "INVALID_REQUEST"
    assert answer["message"].startswith("Unknown event")
    assert await client.call("ping") == {"status": "pong"}


# --- the registry ----------------------------------------------------------------------------


async def test_registry_counts_connections_per_user() -> None:
    registry = Registry(per_user=5)
    alice, bob = principal(), principal()
    await registry.add("a1", connection(alice))
    await registry.add("a2", connection(alice))
    await registry.add("b1", connection(bob))
    assert len(registry) == 3
    assert (await registry.count(alice.user_id), await registry.count(bob.user_id)) == (2, 1)

    removed = await registry.remove("a1")
    assert removed is not None
    assert removed.principal is alice
    assert registry.get("a1") is None
    assert await registry.count(alice.user_id) == 1
    assert await registry.remove("a1") is None
    assert await registry.count(alice.user_id) == 1


async def test_registry_refuses_a_users_connection_over_the_limit() -> None:
    registry = Registry(per_user=2)
    alice = principal()
    await registry.add("a1", connection(alice))
    await registry.add("a2", connection(alice))
    with pytest.raises(ConnectionLimit, match="Too many connections for this user"):
        await registry.add("a3", connection(alice))
    assert registry.get("a3") is None
    assert len(registry) == 2

    await registry.remove("a1")
    await registry.add("a3", connection(alice))
    await registry.add("b1", connection(principal()))
    assert await registry.count(alice.user_id) == 2


async def test_registry_snapshot_counts_room_members() -> None:
    registry = Registry(per_user=5)
    await registry.add("a", connection(principal(), "global", "project:x"))
    await registry.add("b", connection(principal(), "global"))
    assert registry.snapshot() == {"connections": 2, "rooms": {"global": 2, "project:x": 1}}
    await registry.remove("a")
    await registry.remove("b")
    assert registry.snapshot() == {"connections": 0, "rooms": {}}


# --- presence --------------------------------------------------------------------------------


class Recorded:
    """An event sink that keeps what it is given, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def send(self, events: Sequence[Outgoing]) -> list[BaseException | None]:
        self.events += [(event.event, event.payload()) for event in events]
        return [None] * len(events)


async def test_presence_announces_an_agents_first_and_last_connection() -> None:
    sink = Recorded()
    presence = Presence(Broadcaster(sink))
    agent = principal(None, Role.AGENT)

    await presence.opened(agent)
    await presence.opened(agent)
    await presence.closed(agent, "client disconnect")
    assert [name for name, _ in sink.events] == ["agent.connected"]

    await presence.closed(agent, "transport close")
    assert [name for name, _ in sink.events] == ["agent.connected", "agent.disconnected"]
    disconnected = sink.events[1][1]["data"]
    assert disconnected["agent_id"] == str(agent.user_id)
    assert disconnected["reason"] == "transport close"

    await presence.opened(agent)
    assert [name for name, _ in sink.events][-1] == "agent.connected"


async def test_presence_ignores_users() -> None:
    sink = Recorded()
    presence = Presence(Broadcaster(sink))
    user = principal(None, Role.ADMIN)
    await presence.opened(user)
    await presence.closed(user, "client disconnect")
    assert sink.events == []


async def test_presence_follows_a_refresh_out_of_and_into_the_agent_role() -> None:
    sink = Recorded()
    presence = Presence(Broadcaster(sink))
    agent_id = uuid4()
    as_agent, as_user = principal(agent_id, Role.AGENT), principal(agent_id)

    await presence.opened(as_agent)
    await presence.refreshed(as_agent, as_user)
    await presence.closed(as_user, "client disconnect")
    await presence.opened(as_user)
    await presence.refreshed(as_user, as_agent)
    await presence.refreshed(as_agent, principal(agent_id, Role.AGENT))  # still an agent: nothing
    await presence.closed(as_agent, "transport close")

    assert [(name, data["data"].get("reason")) for name, data in sink.events] == [
        ("agent.connected", None),
        ("agent.disconnected", REFRESHED),
        ("agent.connected", None),
        ("agent.disconnected", "transport close"),
    ]


async def test_presence_balances_a_refresh_before_the_open_is_counted() -> None:
    """The refresh handler can run while the connect handler is still joining rooms: the
    counts balance whatever the order, and the next connection is announced."""
    sink = Recorded()
    presence = Presence(Broadcaster(sink))
    agent_id = uuid4()
    as_agent, as_user = principal(agent_id, Role.AGENT), principal(agent_id)

    await presence.refreshed(as_agent, as_user)
    await presence.opened(as_agent)
    await presence.closed(as_user, "client disconnect")
    assert sink.events == []
    await presence.opened(as_agent)
    assert [name for name, _ in sink.events] == ["agent.connected"]
