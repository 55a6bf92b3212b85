"""What the library seams (swe_realtime/protocol/) change stays on the gateway's own server.

python-engineio and python-socketio keep some settings on their classes (the JSON module, the
packets per POST), so setting them through the library changes every server and client of the
process; the seams use classes of their own instead. Sessions become the gateway's Socket as
python-engineio stores them (it has no socket factory).
"""

from __future__ import annotations

import engineio.json
import pytest
import socketio.packet
from engineio import async_socket, packet, payload

from swe_realtime.protocol.engineio import MAX_PACKETS_PER_POST, Payload, Socket, decode
from swe_realtime.protocol.socketio import AsyncServer, Packet

DEEP = "[" * 100_000


def test_the_libraries_classes_keep_their_settings() -> None:
    server = AsyncServer(async_mode="asgi")
    assert server.packet_class is Packet
    assert socketio.packet.Packet.json is engineio.json
    assert packet.Packet.json is engineio.json
    assert payload.Payload.max_decode_packets == 16
    assert Payload.max_decode_packets == MAX_PACKETS_PER_POST


def test_a_stored_session_is_the_gateways_socket() -> None:
    eio = AsyncServer(async_mode="asgi").eio
    eio.sockets["sid"] = async_socket.AsyncSocket(eio, "sid")
    session = eio.sockets["sid"]
    assert type(session) is Socket
    assert session.last_ping  # so that its first ping is armed, whatever the version


def test_json_nested_too_deep_is_bad_input() -> None:
    with pytest.raises(ValueError, match="too deep"):
        decode("4" + DEEP)
    with pytest.raises(ValueError, match="too deep"):
        Packet(encoded_packet="2" + DEEP)
