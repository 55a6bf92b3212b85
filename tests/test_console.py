"""The operator console (GET /inspector) in headless Chromium against real gateways: its charts
move with the traffic, its connection list filters, pages and disconnects a real client, its
room view shows payloads, and every string a client or service chose shows as text.

Each browser test runs one scenario of tests/node/console.mjs and keeps its screenshot in
tests/artifacts/console-<scenario>.png (docs/images/ holds a copy of each).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
import pytest

from tests.support import (
    ADMIN,
    SECRET,
    Client,
    ServerProcess,
    compose_gateways,
    make_token,
    member,
    node_script,
    progress_event,
    publish,
    run_nginx,
)

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "tests" / "node"
ARTIFACTS = ROOT / "tests" / "artifacts"
XSS = "<img src=x onerror=alert(1)>"
"""Markup that runs a script if a page ever parses it: the console must show it as text."""


def clean(shown: dict[str, Any]) -> None:
    """What every scenario must end with: no dialog, no injected image, no script error, no
    console error and no CSP violation; the token gone from the address bar."""
    assert shown["dialogs"] == []
    assert shown["images"] == 0
    assert shown["problems"] == []
    assert "token" not in shown["address"]


async def console(scenario: str, gateway: ServerProcess, *args: str) -> Any:
    ARTIFACTS.mkdir(exist_ok=True)
    return await node_script("console.mjs", scenario, gateway.url, ADMIN, str(ARTIFACTS), *args, cwd=NODE)


async def room_view(
    url: str, room: str, event_id: str, publish_live: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """The console's room scenario at ``url``: the room view, with ``event_id`` among its
    events; once it is ready, ``publish_live`` publishes an event it must show live. What the
    page showed, with the live event's receipt as ``published_live``."""
    browser = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        "console.mjs",
        "room",
        url,
        ADMIN,
        str(ARTIFACTS),
        room,
        event_id,
        XSS,
        cwd=NODE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert browser.stdin is not None
    assert browser.stdout is not None
    ready = await asyncio.wait_for(browser.stdout.readline(), 60)
    assert ready == b"ready\n", ready + await browser.stdout.read()
    live = await publish_live()
    browser.stdin.write(f"{live['id']}\n".encode())
    browser.stdin.close()
    out, err = await asyncio.wait_for(browser.communicate(), 60)
    assert browser.returncode == 0, err.decode()
    shown: dict[str, Any] = json.loads(out)
    shown["published_live"] = live
    return shown


@pytest.mark.node
@pytest.mark.browser
async def test_console_charts_rise_while_events_are_published(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client]
) -> None:
    """Two instances on one Redis: a member of a project on the second, events published to
    the first; the published/s and delivered/s charts leave 0, per instance and summed. The
    instances note their timelines every half second (TIMELINE_STEP), not every 2 s: the
    scenario waits for several notes."""
    gateways = cluster(2, env={"TIMELINE_STEP": "0.5"})
    project = str(uuid4())
    await member(gateways[1].url, clients, project)

    async def traffic() -> None:
        for burst in itertools.cycle((1, 3, 6, 3)):  # uneven, for the lines to show it
            for _ in range(burst):
                await publish(gateways[0], progress_event(project, 50))
            await asyncio.sleep(0.5)  # the pace of the traffic, not a wait for anything

    publishing = asyncio.create_task(traffic())
    try:
        shown = await console("charts", gateways[0])
    finally:
        publishing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publishing
    clean(shown)
    assert [row[0] for row in shown["instances"]] == ["gw0", "gw1"]
    assert all(row[3] == "up" for row in shown["instances"])  # Redis, as each instance sees it
    assert shown["peaks"]["published:all"] > 0
    assert shown["peaks"]["published:gw0"] > 0  # published through the first instance
    assert shown["peaks"]["delivered:gw1"] > 0  # delivered by the second, to its member
    assert shown["peaks"]["connections:all"] >= 1
    assert shown["sums"]["wrong"] == []  # each sum line is its instances' total at every t
    assert shown["sums"]["compared"] >= 5
    assert {"connections:gw0", "connections:gw1", "refused:all", "dropped:all"} <= shown["peaks"].keys()
    assert len(shown["max_labels"]) == 3  # each chart has its y axis' top labelled
    assert (ARTIFACTS / "console-charts.png").stat().st_size > 10_000


@pytest.mark.node
@pytest.mark.browser
async def test_console_finds_a_user_s_connections_and_disconnects_one(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    """Three socket.io-client connections of one user among another user's: the user filter
    shows only that user's, two a page; the disconnect button ends one of them, whose client
    is told ADMIN_DISCONNECT and does not reconnect."""
    gateway = start_server({"JWT_SECRET": SECRET, "INSTANCE_ID": "gw-console"})
    user = str(uuid4())
    bystander = await clients().connect(gateway.url, make_token())
    await bystander.next("connection_established")
    shown = await console("connections", gateway, user, make_token(user))
    clean(shown)
    assert user in shown["unfiltered_users"]
    assert len(set(shown["unfiltered_users"])) > 1  # the bystander too, before the filter
    assert [row["id"] for row in shown["first_page"]] == shown["ids"][:2]  # sorted by id
    assert {row["user"] for row in shown["first_page"]} == {user}
    assert shown["second_page"] == shown["ids"][2:]
    assert shown["next_hidden_on_last_page"] is True
    assert shown["total"].startswith("3 connections match")
    assert shown["armed"] == "Really disconnect?"  # the first click only arms the button
    assert shown["status"] == f"disconnected {shown['target']} (on gw-console)"
    assert shown["victim"] == [
        {"event": "connection_error", "error_code": "ADMIN_DISCONNECT"},
        {"event": "disconnect", "reason": "io server disconnect"},
    ]
    assert shown["others"] == [[], []]  # the user's other connections heard nothing
    assert shown["others_connected"] == [True, True]
    assert bystander.sio.connected
    assert (ARTIFACTS / "console-connections.png").stat().st_size > 10_000


@pytest.mark.node
@pytest.mark.browser
async def test_console_room_view_shows_payloads_and_user_strings_as_text(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    """A room with an event whose fields carry markup: the room view lists it and its payload
    shows as JSON text; an event published later shows live; markup typed as a room or a
    user is refused by the API (422) and the refusal shows as text."""
    gateway = start_server({"JWT_SECRET": SECRET, "INSTANCE_ID": "gw-room"}, "--dev")
    project = str(uuid4())
    room = f"project:{project}"
    await member(gateway.url, clients, project)
    event = progress_event(project, 30)
    event["data"]["current_step"] = XSS
    event["data"]["logs"] = [XSS, "seen by the console"]
    receipt = await publish(gateway, event)
    shown = await room_view(
        gateway.url, room, receipt["id"], lambda: publish(gateway, progress_event(project, 90))
    )
    live = shown["published_live"]
    clean(shown)
    payload = json.loads(shown["payload"])
    assert payload["id"] == receipt["id"]
    assert payload["data"]["current_step"] == XSS
    assert payload["data"]["logs"] == [XSS, "seen by the console"]
    assert receipt["id"] in shown["events"]
    assert int(shown["members"].split()[0]) >= 1  # the member, and soon the page's own socket
    assert shown["per_instance"].startswith("gw-room: ")
    assert shown["position"].startswith("epoch ")
    assert [e["id"] for e in shown["live"]] == [live["id"]]
    assert shown["watching"] == f"INVALID_ROOM: Invalid room format (still watching {room})"
    assert shown["filter_status"].startswith("connections: 422 INVALID_ROOM")
    assert shown["user_status"].startswith("connections: 422")
    assert shown["room_status"].startswith("room: 422 INVALID_ROOM")
    assert set(shown["refused_loads"]) == {422}  # the three refusals, and nothing else failed
    assert shown["publisher"] is True  # dev mode offers the publish form
    assert (ARTIFACTS / "console-room.png").stat().st_size > 10_000


@pytest.mark.node
@pytest.mark.browser
@pytest.mark.redis
async def test_console_live_view_works_behind_the_shipped_nginx_with_an_allow_list(
    tmp_path: Path, start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    """The compose deployment: two gateways behind the shipped nginx, CORS_ORIGINS set to a
    frontend elsewhere. The console, reached through nginx, is the gateway's own page: its
    live view connects and shows an event as it is published (it was refused 403)."""
    gateways = compose_gateways(start_server, CORS_ORIGINS="http://localhost:3000")
    project = str(uuid4())
    room = f"project:{project}"
    await member(gateways[0].url, clients, project)
    receipt = await publish(gateways[0], progress_event(project, 30))
    with run_nginx(tmp_path, gateways) as url:
        shown = await room_view(
            url, room, receipt["id"], lambda: publish(gateways[1], progress_event(project, 90))
        )
    clean(shown)
    assert receipt["id"] in shown["events"]
    assert [event["id"] for event in shown["live"]] == [shown["published_live"]["id"]]


@pytest.mark.node
@pytest.mark.browser
async def test_console_shows_refused_tokens_and_never_puts_one_in_a_url(server: ServerProcess) -> None:
    """The login form: a token that is none is refused (401) and stops the polling, a user's
    is not an admin's (403), the admin's works and outlives a reload (sessionStorage). No
    request of the whole run (HTTP or WebSocket) carries any of the three in its URL."""
    shown = await console("tokens", server, make_token())
    clean(shown)
    assert shown["before"] == "no token"
    assert shown["field"] == "password"
    assert shown["unauthenticated"].endswith("401 AUTH_FAILED Invalid or expired token")
    assert shown["calls_while_refused"] == 0
    assert shown["socket_state"] == "refused: AUTH_FAILED"
    assert shown["forbidden"].endswith("403 PERMISSION_DENIED The token lacks the role this needs")
    assert shown["field_after"] == ""  # the form does not keep the token in view
    assert shown["status_after_reload"] == ""
    assert shown["stored"] == ["inspector-token"]
    assert shown["urls"] > 10
    assert shown["token_in_urls"] == []
    assert set(shown["refused_loads"]) == {401, 403}


async def test_console_files_are_served_with_a_strict_policy(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as session:
        for path in (
            "/inspector",
            "/inspector/inspector.js",
            "/inspector/inspector.css",
            "/inspector/vendor/socket.io.min.js",
        ):
            async with session.get(server.url + path) as response:
                assert response.status == 200
                policy = response.headers["Content-Security-Policy"]
                assert "default-src 'none'" in policy
                assert "script-src 'self';" in policy
                assert "style-src 'self';" in policy
                # Sockets to the gateway only ('self' covers ws: and wss: to the page's own
                # host and port in CSP Level 3, which the room test's Chromium proves).
                assert "connect-src 'self';" in policy
        async with session.get(server.url + "/inspector/config.json") as response:
            assert (await response.json())["dev"] is False


def test_console_page_builds_no_markup_from_strings() -> None:
    """The page's script never parses HTML: no innerHTML, outerHTML, insertAdjacentHTML,
    document.write or eval; and the markup carries no inline script or style."""
    script = (ROOT / "server" / "inspector" / "inspector.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    page = (ROOT / "server" / "inspector" / "index.html").read_text()
    assert "style=" not in page
    assert "<style" not in page
    assert page.count("<script") == page.count("<script src=")
    assert re.search(r"\son[a-z]+\s*=", page) is None  # no onclick= and the like
