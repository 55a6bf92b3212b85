"""Connecting: both token methods, both transports, the welcome event, every refusal."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest
import socketio

from swe_realtime.events import ConnectionErrorEvent, ConnectionEstablished
from tests.support import Client, ServerProcess, make_token, stats

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
TRANSPORTS = ["websocket", "polling"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("via", ["auth", "query"])
async def test_connect_sends_connection_established(
    server: ServerProcess, clients: Callable[[], Client], via: str, transport: str
) -> None:
    user = uuid4()
    client = await clients().connect(server.url, make_token(user), via=via, transport=transport)

    event = await client.next("connection_established")

    assert ConnectionEstablished.model_validate(event).data.user_id == str(user)
    assert event["type"] == "connection.established"
    assert RFC3339_UTC.fullmatch(event["timestamp"])
    assert event["data"] == {
        "connection_id": client.sio.get_sid("/ws"),
        "user_id": str(user),
        "protocol_version": "1.0",
        "recovery": [],
    }


async def test_auth_token_wins_over_query(server: ServerProcess, clients: Callable[[], Client]) -> None:
    user = uuid4()
    url = f"{server.url}?token=not-a-token"
    client = await clients().connect(url, make_token(user))
    assert (await client.next("connection_established"))["data"]["user_id"] == str(user)


async def test_connection_joins_user_and_global_rooms(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    user = uuid4()
    client = await clients().connect(server.url, make_token(user))
    await client.next("connection_established")
    snapshot = await stats(server)

    assert snapshot["rooms"][f"user:{user}"] == 1
    assert snapshot["rooms"]["global"] >= 1


REFUSALS: list[tuple[str, Callable[[], Any], str, str]] = [
    # Each auth is made when its test runs: a token minted at collection may have come of
    # age (nbf) or gone stale by the time a long run reaches it.
    ("no token at all", lambda: None, "AUTH_MISSING", "No authentication provided"),
    ("empty auth object", lambda: {}, "AUTH_MISSING", "No authentication provided"),
    ("empty token", lambda: {"token": ""}, "AUTH_MISSING", "No authentication provided"),
    ("token not a string", lambda: {"token": 12345}, "AUTH_FAILED", "Token must be a string"),
    ("garbage token", lambda: {"token": "not.a.jwt"}, "AUTH_FAILED", "Invalid or expired token"),
    (
        "wrong secret",
        lambda: {"token": make_token(secret="another-secret-another-secret-another!")},
        "AUTH_FAILED",
        "Invalid or expired token",
    ),
    ("expired", lambda: {"token": make_token(ttl=-60)}, "AUTH_FAILED", "Token has expired"),
    (
        "no exp",
        lambda: {"token": make_token(without=("exp",))},
        "AUTH_FAILED",
        "Token lacks the required claim 'exp'",
    ),
    (
        "no sub",
        lambda: {"token": make_token(without=("sub",))},
        "AUTH_FAILED",
        "Token lacks the required claim 'sub'",
    ),
    (
        "sub not a uuid",
        lambda: {"token": make_token("alice")},
        "AUTH_FAILED",
        "Token claim 'sub' must hold UUIDs",
    ),
    (
        "projects not uuids",
        lambda: {"token": make_token(projects=["p1"])},
        "AUTH_FAILED",
        "Token claim 'projects' must hold UUIDs",
    ),
    (
        "alg none",
        lambda: {"token": make_token(secret="", algorithm="none")},
        "AUTH_FAILED",
        "Invalid or expired token",
    ),
    (
        "future nbf",
        lambda: {"token": make_token(nbf=int(time.time()) + 600)},
        "AUTH_FAILED",
        "Token is not valid yet",
    ),
    ("huge token", lambda: {"token": "x" * 20_000}, "AUTH_FAILED", "Token is too long"),
]


@pytest.mark.parametrize(("case", "auth", "code", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_refused_connection_carries_connection_error(
    server: ServerProcess,
    clients: Callable[[], Client],
    case: str,
    auth: Callable[[], Any],
    code: str,
    message: str,
) -> None:
    client = clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, auth=auth())

    assert client.connect_error["message"] == message
    refusal = client.connect_error["data"]
    ConnectionErrorEvent.model_validate(refusal)
    assert refusal["type"] == "connection.error"
    assert RFC3339_UTC.fullmatch(refusal["timestamp"])
    assert refusal["data"] == {"error_code": code, "error_message": message, "connection_id": None}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refusal_by_query_token(
    server: ServerProcess, clients: Callable[[], Client], transport: str
) -> None:
    client = clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, make_token(ttl=-5), via="query", transport=transport)
    assert client.connect_error["data"]["data"]["error_code"] == "AUTH_FAILED"
