"""Token edge cases against real gateways: NumericDates out of range or of the wrong type,
clock-skew leeway, and ``refresh_token`` racing a ``subscribe`` whose access check waits."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
import socketio
from hypothesis import given, settings
from hypothesis import strategies as st

from swe_realtime.app import GatewayApp
from swe_realtime.errors import AuthFailed
from swe_realtime.events.rooms import Room, RoomKind
from swe_realtime.events.workflow import WorkflowStatus
from swe_realtime.sessions.access import ClaimsAccessPolicy
from swe_realtime.sessions.auth import Principal, TokenVerifier
from swe_realtime.settings import JwtSettings
from tests.support import (
    ADMIN,
    SECRET,
    Client,
    ServerProcess,
    api,
    eventually,
    example,
    gateway_in_process,
    make_token,
)

END_OF_9999 = 253402300799
"""9999-12-31T23:59:59Z: the latest ``exp`` accepted."""
LONG_AGO = 1_700_000_000
"""2023-11-14: a time past whenever the tests run (the claims below are wrong in their
type, not their time, and no time they hold may depend on when the module was imported)."""
BAD_DATES: list[tuple[str, dict[str, Any]]] = [
    ("exp 10**400", {"exp": 10**400}),
    ("exp 1e300", {"exp": 1e300}),
    ("exp past year 9999", {"exp": END_OF_9999 + 1}),
    ("exp infinite", {"exp": math.inf}),
    ("exp not a number", {"exp": math.nan}),
    ("exp as a string", {"exp": str(END_OF_9999)}),
    ("exp a bool", {"exp": True}),
    ("exp a list", {"exp": [END_OF_9999]}),
    ("iat as a string", {"iat": str(LONG_AGO)}),
    ("iat a bool", {"iat": True}),
    ("iat 10**400", {"iat": 10**400}),
    ("nbf as a string", {"nbf": str(LONG_AGO)}),
    ("nbf negative", {"nbf": -1}),
]
"""Claims a validly signed token must not be accepted with."""


def token_with(claims: dict[str, Any], sub: UUID | None = None) -> str:
    return make_token(sub, **claims)


def ahead(claim: str, seconds: int) -> dict[str, Any]:
    """``claim`` (iat or nbf) ``seconds`` ahead of this clock."""
    return {claim: int(time.time()) + seconds}


@pytest.mark.parametrize("claims", [c for _, c in BAD_DATES], ids=[n for n, _ in BAD_DATES])
async def test_connect_refuses_an_out_of_range_date(
    server: ServerProcess, clients: Callable[[], Client], claims: dict[str, Any]
) -> None:
    client = clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, token_with(claims))
    assert client.connect_error is not None, "the CONNECT was never answered"
    assert client.connect_error["data"]["data"]["error_code"] == "AUTH_FAILED"


@pytest.mark.parametrize("claims", [c for _, c in BAD_DATES], ids=[n for n, _ in BAD_DATES])
async def test_refresh_refuses_an_out_of_range_date(
    server: ServerProcess, clients: Callable[[], Client], claims: dict[str, Any]
) -> None:
    user = uuid4()
    client = await clients().connect(server.url, make_token(user))
    await client.next("connection_established")
    ack = await client.call("refresh_token", {"token": token_with(claims, user)})
    assert (ack["status"], ack["error_code"]) == ("error", "AUTH_FAILED")
    assert await client.call("ping") == {"status": "pong"}


@pytest.mark.parametrize("claims", [c for _, c in BAD_DATES], ids=[n for n, _ in BAD_DATES])
async def test_http_refuses_an_out_of_range_date(server: ServerProcess, claims: dict[str, Any]) -> None:
    token = make_token(roles=["service"], **claims)
    status, body = await api(server, "POST", "/api/v1/events", token, example("pr.created"))
    assert (status, body["error_code"]) == (401, "AUTH_FAILED")


async def test_the_last_second_of_year_9999_is_a_valid_exp(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    user = uuid4()
    client = await clients().connect(server.url, make_token(user, exp=END_OF_9999))
    await client.next("connection_established")
    ack = await client.call("refresh_token", {"token": make_token(user, exp=END_OF_9999)})
    assert ack == {"status": "success", "expires_at": "9999-12-31T23:59:59.000Z", "left": []}


NUMBERS = st.integers() | st.floats() | st.text(max_size=12) | st.booleans() | st.none()


@settings(max_examples=300, deadline=None)
@given(exp=NUMBERS, iat=NUMBERS, nbf=NUMBERS)
def test_signed_dates_of_any_value_are_accepted_or_refused_cleanly(exp: Any, iat: Any, nbf: Any) -> None:
    """Whatever a validly signed token holds, ``verify`` returns a principal whose expiry the
    gateway can arm a timer for and print, or raises AuthFailed: nothing else."""
    verifier = TokenVerifier(JwtSettings(SECRET, ("HS256",)))
    try:
        principal = verifier.verify(make_token(exp=exp, iat=iat, nbf=nbf))
    except AuthFailed:
        return
    assert not isinstance(exp, bool | str)
    assert math.isfinite(principal.expires_at)
    datetime.fromtimestamp(principal.expires_at, UTC)


# --- clock skew --------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["iat", "nbf"])
async def test_a_clock_two_seconds_ahead_is_tolerated(
    server: ServerProcess, clients: Callable[[], Client], claim: str
) -> None:
    user = uuid4()
    client = await clients().connect(server.url, token_with(ahead(claim, 2), user))
    await client.next("connection_established")
    ack = await client.call("refresh_token", {"token": token_with(ahead(claim, 2), user)})
    assert ack["status"] == "success"


async def test_a_token_expired_within_the_leeway_is_accepted(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    client = await clients().connect(server.url, make_token(ttl=-2))
    assert (await client.next("connection_established"))["type"] == "connection.established"


@pytest.mark.parametrize("claim", ["iat", "nbf"])
async def test_a_clock_a_minute_ahead_is_not_tolerated(
    server: ServerProcess, clients: Callable[[], Client], claim: str
) -> None:
    client = clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, token_with(ahead(claim, 60)))
    assert client.connect_error["message"] == "Token is not valid yet"


async def test_no_leeway_refuses_a_clock_a_few_seconds_ahead(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    """4 s ahead, within the default leeway (5 s): refused once JWT_LEEWAY is 0. (Not fewer
    seconds: on a busy machine the token must still be early when the gateway reads it.)"""
    strict = start_server({"JWT_SECRET": SECRET, "JWT_LEEWAY": "0"})
    client = clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(strict.url, make_token(nbf=int(time.time()) + 4))
    assert client.connect_error["message"] == "Token is not valid yet"
    status, _ = await api(strict, "POST", "/api/v1/events", make_token(roles=["service"], ttl=-2), {})
    assert status == 401


# --- the verified-token cache ------------------------------------------------------------------


def cached_verifier(leeway: int = 5, cache_size: int = 4096) -> TokenVerifier:
    return TokenVerifier(JwtSettings(SECRET, ("HS256",), leeway=leeway), cache_size=cache_size)


async def test_a_cached_token_is_refused_once_its_leeway_has_passed() -> None:
    verifier = cached_verifier(leeway=1)
    exp = int(time.time())
    token = make_token(exp=exp)  # expired already, but within the leeway
    verifier.verify(token)
    assert verifier.verify(token).expires_at == exp  # from the cache
    assert len(verifier.verified) == 1

    await eventually(lambda: time.time() >= exp + 1, message="the clock did not pass exp + leeway")

    with pytest.raises(AuthFailed, match="Token has expired"):
        verifier.verify(token)
    assert len(verifier.verified) == 0


def test_a_token_with_a_bad_signature_never_hits_the_cache() -> None:
    verifier = cached_verifier()
    user = uuid4()
    good = make_token(user, roles=["service"])
    assert verifier.verify(good).user_id == user
    header, payload, signature = good.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    other_payload = make_token(user, roles=["admin"]).split(".")[1]
    forged = [
        f"{header}.{payload}.{flipped}",  # its claims, another signature
        f"{header}.{other_payload}.{signature}",  # its signature, other claims
        make_token(user, roles=["service"], secret="another-secret-another-secret-another!"),
    ]
    for token in forged:
        for _ in range(2):  # refused, and refused again: never remembered
            with pytest.raises(AuthFailed):
                verifier.verify(token)
    assert len(verifier.verified) == 1


def test_the_cache_is_bounded_and_a_forgotten_token_is_verified_again() -> None:
    verifier = cached_verifier(cache_size=3)
    tokens = [make_token(roles=["service"]) for _ in range(5)]
    principals = [verifier.verify(token) for token in tokens]
    assert len(verifier.verified) == 3
    assert verifier.verify(tokens[0]) == principals[0]
    assert len(verifier.verified) == 3


def test_a_long_token_is_verified_every_time() -> None:
    verifier = cached_verifier()
    token = make_token(note="x" * 1200)
    verifier.verify(token)
    assert len(verifier.verified) == 0


# --- refresh_token racing a subscribe -------------------------------------------------------------


class GatedProjects:
    """The claims policy, except that a project room's check waits until ``open`` is set, as
    a policy asking a database waits for its answer."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.open = asyncio.Event()
        self._claims = ClaimsAccessPolicy()

    async def may_subscribe(self, principal: Principal, room: Room) -> bool:
        if room.kind is RoomKind.PROJECT and not self.open.is_set():
            self.asked.set()
            await self.open.wait()
        return await self._claims.may_subscribe(principal, room)


async def rooms_of(client: Client, url: str) -> dict[str, int]:
    page = await client.sio.eio.http.get(
        f"{url}/api/v1/websocket/stats", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    rooms: dict[str, int] = (await page.json())["rooms"]
    return rooms


async def member_events(app: GatewayApp, client: Client, url: str, project: UUID) -> tuple[int | None, int]:
    """Publish an event to ``project``'s room, then a global marker: how many members the room
    has (None: no such room) and how many of the project's events ``client`` got before the
    marker."""
    await app.broadcaster.broadcast_workflow_progress(
        workflow_id=uuid4(), project_id=project, status=WorkflowStatus.RUNNING, progress=7
    )
    marker: dict[str, Any] = example("ai.analysis_complete")["data"]
    await app.broadcaster.broadcast_ai_analysis_complete(**(marker | {"project_id": None}))
    await client.next("ai.analysis_complete")
    return (await rooms_of(client, url)).get(f"project:{project}"), client.events["workflow.progress"].qsize()


def logged_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("command", ["subscribe", "recover"])
@pytest.mark.parametrize("keeps_access", [False, True])
async def test_refresh_during_a_slow_subscribe(
    clients: Callable[[], Client], caplog: pytest.LogCaptureFixture, command: str, keeps_access: bool
) -> None:
    """The subscribe's access check waits; meanwhile the token is refreshed. The room is
    joined only if the new token allows it, and its events reach the client only then."""
    policy = GatedProjects()
    user, project = uuid4(), uuid4()
    room = f"project:{project}"
    async with gateway_in_process({"JWT_SECRET": SECRET}, policy) as (app, url):
        client = await clients().connect(url, make_token(user, projects=[project]))
        await client.next("connection_established")
        payload: dict[str, Any] = {"room": room}
        if command == "recover":
            payload["position"] = {"epoch": "0", "offset": 0}
        pending = asyncio.create_task(client.call(command, payload))
        await asyncio.wait_for(policy.asked.wait(), 5)

        refreshed = make_token(user, projects=[project] if keeps_access else [])
        refresh = await client.call("refresh_token", {"token": refreshed})
        assert (refresh["status"], refresh["left"]) == ("success", [])
        policy.open.set()
        ack = await pending

        if keeps_access:
            assert ack["status"] == "success"
            assert await member_events(app, client, url, project) == (1, 1)
        else:
            assert (ack["status"], ack["error_code"], ack["room"]) == ("error", "ROOM_ACCESS_DENIED", room)
            assert await member_events(app, client, url, project) == (None, 0)
        await client.close()
    assert logged_errors(caplog) == []


async def test_refresh_during_a_slow_resume_at_connect(
    clients: Callable[[], Client], caplog: pytest.LogCaptureFixture
) -> None:
    """The same race, on the rooms a client resumes through ``auth.positions``: their access
    checks run after the CONNECT is answered, so a refresh can come first."""
    policy = GatedProjects()
    user, project = uuid4(), uuid4()
    room = f"project:{project}"
    auth = {"token": make_token(user, projects=[project]), "positions": {room: {"epoch": "0", "offset": 0}}}
    async with gateway_in_process({"JWT_SECRET": SECRET}, policy) as (app, url):
        client = await clients().connect(url, auth=auth)
        await asyncio.wait_for(policy.asked.wait(), 5)
        refresh = await client.call("refresh_token", {"token": make_token(user)})
        assert refresh["status"] == "success"
        policy.open.set()

        welcome = await client.next("connection_established")
        [answer] = welcome["data"]["recovery"]
        assert (answer["status"], answer["error_code"], answer["room"]) == (
            "error",
            "ROOM_ACCESS_DENIED",
            room,
        )
        assert await member_events(app, client, url, project) == (None, 0)
        await client.close()
    assert logged_errors(caplog) == []
