"""Several gateway processes joined by Redis: delivery, emitters, stats, outages, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from swe_realtime.cluster.stats import Roster, heartbeat_key
from tests.support import (
    ADMIN,
    CLI,
    SECRET,
    SERVICE,
    SHARED_REDIS,
    SHORT_INTERVALS,
    Client,
    RedisProcess,
    ServerProcess,
    api,
    eventually,
    free_port,
    make_token,
    member,
    progress_event,
    publish,
    received,
    wait_ready,
)

NODE = Path(__file__).with_name("node")


@pytest.mark.redis
@pytest.mark.slow
async def test_events_cross_instances_exactly_once(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client]
) -> None:
    gateways = cluster(3)
    project = str(uuid4())
    members = [
        await member(gateway.url, clients, project, transport)
        for gateway, transport in zip(gateways, ["websocket", "polling", "websocket"], strict=True)
    ]
    # A connection on each instance, and one more on the first: two local members, two remote.
    members.append(await member(gateways[0].url, clients, project))

    for index, gateway in enumerate(gateways):
        await publish(gateway, progress_event(project, progress=index))

    for client in members:
        assert sorted(await received(client, 3)) == [0, 1, 2]


@pytest.mark.redis
@pytest.mark.slow
async def test_write_only_emitter_process(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client]
) -> None:
    channel = f"test-{uuid4().hex[:12]}"
    gateways = cluster(2, channel=channel)
    project = str(uuid4())
    members = [await member(gateway.url, clients, project) for gateway in gateways]
    assert await emit(SHARED_REDIS, channel, project, 77) == f"project:{project}"
    for client in members:
        assert await received(client, 1) == [77]


async def emit(url: str, channel: str, project: str, progress: int) -> str:
    """Run tests/emit.py, a backend process without a socket server; what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.emit",
        url,
        channel,
        project,
        str(progress),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    return out.decode().strip()


async def test_write_only_emitter_validates_and_reports_redis_down() -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    assert await emit(nowhere, "nowhere", "-", 101) == "rejected data.progress"
    assert await emit(nowhere, "nowhere", "-", 1) == "unavailable"


@pytest.mark.redis
@pytest.mark.slow
async def test_stats_sum_instances_and_drop_dead_ones(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client]
) -> None:
    # A dead instance's stats entry outlives it by three heartbeats: 1.5 s, not the default 6.
    first, second = cluster(2, env={"HEARTBEAT_INTERVAL": "0.5"})
    project = str(uuid4())
    for gateway, count in ((first, 2), (second, 3)):
        for _ in range(count):
            await member(gateway.url, clients, project)

    async def stats() -> dict[str, Any]:
        status, body = await api(first, "GET", "/api/v1/websocket/stats", SERVICE)
        assert status == 200
        result: dict[str, Any] = body
        return result

    async def all_counted() -> dict[str, Any] | None:
        body = await stats()
        return body if body["rooms"].get(f"project:{project}") == 5 else None

    # The second instance's heartbeat lands within half a second (on a busy machine, later).
    body = await eventually(all_counted, 20, interval=0.2, message="the stats never counted 5 members")
    assert body["rooms"][f"project:{project}"] == 5
    assert set(body["instances"]) == {"gw0", "gw1"}
    assert body["instances"]["gw0"]["connections"] == 2
    assert body["instances"]["gw1"]["connections"] == 3
    assert body["connections"] == 5
    assert body["partial"] is False

    second.kill()

    async def dead_one_gone() -> bool:
        return "gw1" not in (await stats())["instances"]

    await eventually(dead_one_gone, 20, interval=0.2, message="a dead instance stayed in the stats")
    body = await stats()
    assert body["connections"] == 2
    assert body["rooms"][f"project:{project}"] == 2


@pytest.mark.redis
async def test_heartbeat_interval_sets_how_long_an_instance_counts_as_alive(
    cluster: Callable[..., list[ServerProcess]],
) -> None:
    """HEARTBEAT_INTERVAL reaches the stats heartbeat: an entry lives three beats, counted in
    milliseconds (a fraction of a second here), and a killed instance leaves the roster then."""
    channel = f"test-{uuid4().hex[:12]}"
    _, second = cluster(2, channel=channel, env={"HEARTBEAT_INTERVAL": "0.2", "PRESENCE_GRACE": "1"})
    redis = Redis.from_url(SHARED_REDIS)
    roster = Roster(redis, channel)

    async def alive(expected: set[str]) -> bool:
        return await roster.live() == expected

    try:
        await eventually(lambda: alive({"gw0", "gw1"}), message="the roster never listed both instances")
        assert 0 < await redis.pttl(heartbeat_key(channel, "gw1")) <= 600
        second.kill()
        await eventually(lambda: alive({"gw0"}), message="a killed instance stayed in the roster")
    finally:
        await redis.aclose()


@pytest.mark.redis
@pytest.mark.slow
async def test_redis_outage_and_recovery(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client], private_redis: RedisProcess
) -> None:
    channel = f"test-{uuid4().hex[:12]}"
    first, second = cluster(2, redis_url=private_redis.url, channel=channel)
    for gateway in (first, second):
        await wait_ready(gateway, 200)
    project = str(uuid4())
    local, remote = await member(first.url, clients, project), await member(second.url, clients, project)

    private_redis.stop()
    await wait_ready(first, 503)
    await wait_ready(second, 503)
    # Nothing can be stored or sent: the publisher is told, and no client sees an event the
    # others miss.
    for progress in range(5):
        status, body = await api(first, "POST", "/api/v1/events", SERVICE, progress_event(project, progress))
        assert status == 503, body
        assert body["error_code"] == "SERVICE_UNAVAILABLE"
    assert local.sio.connected
    assert remote.sio.connected

    private_redis.start()
    await wait_ready(first, 200)  # ready again only once resubscribed and caught up
    await wait_ready(second, 200)
    await publish(first, progress_event(project, 50))
    assert await received(local, 1) == [50]
    assert await received(remote, 1) == [50]

    log = first.log()
    assert len(re.findall(r"WARNING swe_realtime\.redis: Redis at \S+ is unreachable", log)) == 1
    reached = re.findall(r"is reachable again; (\d+) event\(s\) so far were refused", log)
    assert len(reached) == 1
    assert int(reached[0]) >= 5


@pytest.mark.node
async def test_sigterm_drains_clients_so_they_reconnect(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    gateway = start_server({"JWT_SECRET": SECRET})
    polling = await clients().connect(gateway.url, make_token(), transport="polling")
    await polling.next("connection_established")
    watchers = [
        await asyncio.create_subprocess_exec(
            shutil.which("node") or "node",
            "watch_reconnect.mjs",
            gateway.url,
            make_token(),
            transport,
            cwd=NODE,
            stdout=asyncio.subprocess.PIPE,
        )
        for transport in ("websocket", "polling")
    ]
    for watcher in watchers:
        assert watcher.stdout is not None
        assert json.loads(await asyncio.wait_for(watcher.stdout.readline(), 10))["event"] == "established"

    started = time.monotonic()
    gateway.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(gateway.process.wait, 15) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 8
    for watcher in watchers:
        out, _ = await asyncio.wait_for(watcher.communicate(), 15)
        events = [json.loads(line) for line in out.decode().splitlines()]
        disconnect = next(e for e in events if e["event"] == "disconnect")
        # Reasons on which socket.io-client reconnects by itself (not "io server disconnect").
        assert disconnect["reason"] in ("transport close", "transport error")
        assert events[-1]["event"] == "reconnect_attempt"
    assert "Application shutdown complete" in gateway.log()


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, trusted by no one but the test."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "swe-realtime test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.node
@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_tls_serves_wss_to_socket_io_client(
    start_server: Callable[..., ServerProcess], tmp_path: Path, transport: str
) -> None:
    cert, key = self_signed(tmp_path)
    gateway = start_server({"JWT_SECRET": SECRET, "SSL_CERT": str(cert), "SSL_KEY": str(key)}, https=True)
    assert gateway.url.startswith("https://")
    user = uuid4()
    watcher = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        "watch_reconnect.mjs",
        gateway.url,
        make_token(user),
        transport,
        str(cert),
        cwd=NODE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert watcher.stdout is not None
    line = json.loads(await asyncio.wait_for(watcher.stdout.readline(), 10))
    watcher.kill()
    await watcher.wait()
    assert line == {"event": "established", "user": str(user)}


@pytest.mark.redis
@pytest.mark.slow
async def test_workers_share_one_port(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    channel = f"test-{uuid4().hex[:12]}"
    gateway = start_server(
        {"JWT_SECRET": SECRET, "REDIS_URL": SHARED_REDIS, "REDIS_CHANNEL": channel}, "--workers", "2"
    )
    project = str(uuid4())
    members = [await member(gateway.url, clients, project) for _ in range(8)]

    async def both_workers_report() -> bool:
        return len((await api(gateway, "GET", "/api/v1/websocket/stats", SERVICE))[1]["instances"]) >= 2

    # Generous: the second worker may come up well after the first on a busy machine.
    await eventually(both_workers_report, 60, interval=0.2, message="the second worker never reported")
    await publish(gateway, progress_event(project, 33))
    for client in members:
        assert await received(client, 1, settle=0.1) == [33]
    # Only WebSocket is offered: a polling session could hop between workers.
    status, _ = await api(gateway, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 400


async def test_workers_with_one_instance_id_each_count_as_themselves(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    """INSTANCE_ID set for a gateway of two workers (docker-compose.yml sets it per service):
    each worker is an instance of its own, so stats, the admin listing and the instances
    count every connection once (issue 26: one shared id made them alternate and undercount)."""
    channel = f"test-{uuid4().hex[:12]}"
    env = {"JWT_SECRET": SECRET, "REDIS_URL": SHARED_REDIS, "REDIS_CHANNEL": channel, "INSTANCE_ID": "gwW"}
    gateway = start_server(env | SHORT_INTERVALS | {"ADMIN_REQUESTS_PER_SECOND": "1000"}, "--workers", "2")

    async def instances() -> list[str] | None:
        status, body = await api(gateway, "GET", "/api/v1/instances", ADMIN)
        ids = sorted(str(instance["id"]) for instance in body["instances"])
        return ids if status == 200 and len(ids) >= 2 else None

    # Generous: the second worker may come up well after the first on a busy machine.
    assert await eventually(instances, 60, interval=0.2) == ["gwW-1", "gwW-2"]
    project = str(uuid4())
    for _ in range(8):
        await member(gateway.url, clients, project)

    async def all_counted() -> bool:  # by either worker, once each has beaten since
        for _ in range(4):
            if (await api(gateway, "GET", "/api/v1/websocket/stats", SERVICE))[1]["connections"] != 8:
                return False
        return True

    await eventually(all_counted, 10, interval=0.2)
    for _ in range(6):  # each request lands on either worker: every one must see all
        stats = (await api(gateway, "GET", "/api/v1/websocket/stats", SERVICE))[1]
        assert (stats["connections"], stats["partial"]) == (8, False), stats
        assert sorted(stats["instances"]) == ["gwW-1", "gwW-2"]
        status, listing = await api(gateway, "GET", f"/api/v1/connections?room=project:{project}", ADMIN)
        assert (status, listing["total"], listing["partial"]) == (200, 8, False), listing
        assert len(listing["connections"]) == 8
    # The per-user counts and presence keep a share per instance: one each, not one taken turns at.
    redis = Redis.from_url(SHARED_REDIS)
    try:

        async def one_share_each() -> bool:
            members = await redis.smembers(f"{channel}:presence:instances")
            return members == {b"gwW-1", b"gwW-2"}

        await eventually(one_share_each, 10, interval=0.2)
    finally:
        await redis.aclose()


async def test_a_second_gateway_with_a_live_instance_id_refuses_to_start(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Two live processes with one INSTANCE_ID would overwrite each other's heartbeat, answers
    and shares: the second one exits at once, saying which id and what to do. A stopped
    gateway's id is free again at once (it withdraws its heartbeat)."""
    channel = f"test-{uuid4().hex[:12]}"
    env = {"JWT_SECRET": SECRET, "REDIS_URL": SHARED_REDIS, "REDIS_CHANNEL": channel, "INSTANCE_ID": "gw-a"}
    first = start_server(env | SHORT_INTERVALS)
    second = await asyncio.create_subprocess_exec(
        CLI,
        "serve",
        "--port",
        "0",
        env={**os.environ, **env, **SHORT_INTERVALS},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        raw, _ = await asyncio.wait_for(second.communicate(), 60)
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    output = raw.decode()
    assert second.returncode != 0, output
    (refusal,) = [line for line in output.splitlines() if "gw-a" in line]
    assert "INSTANCE_ID" in refusal, output
    assert first.process.poll() is None
    assert first.stop()
    again = start_server(env | SHORT_INTERVALS)
    assert again.process.poll() is None
