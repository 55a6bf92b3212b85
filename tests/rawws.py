"""A raw Engine.IO WebSocket client whose reading the test controls, byte for byte.

python-socketio's client reads as fast as it can; a test of back-pressure needs a client that
stops reading (a small receive buffer, so the kernel holds little for it), resumes, and sees
every frame the server wrote, control frames included, in the order they came.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import Self
from urllib.parse import urlsplit

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


@dataclass(frozen=True)
class Frame:
    opcode: int
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode()


class RawWebSocket:
    """One WebSocket to the gateway's Engine.IO endpoint, joined to ``/ws``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls,
        url: str,
        token: str,
        *,
        receive_buffer: int | None = 4096,
        tls: ssl.SSLContext | None = None,
        positions: dict[str, object] | None = None,
    ) -> Self:
        """Connect, join ``/ws`` with ``token`` (resuming at ``positions``), and read up to
        the CONNECT answer (``40/ws,...``); ``receive_buffer``: SO_RCVBUF, set before
        the connection so that the TCP window stays that small."""
        reader, writer = await cls._handshake(url, "", receive_buffer=receive_buffer, tls=tls)
        client = cls(reader, writer)
        auth: dict[str, object] = {"token": token}
        if positions is not None:
            auth["positions"] = positions
        client.send(f"40/ws,{json.dumps(auth)}")
        await writer.drain()
        assert (await client.read_text()).startswith("0")  # Engine.IO OPEN
        while not (answer := await client.read_text()).startswith("40/ws,"):  # events may come first
            assert not answer.startswith("44/ws,"), answer
        return client

    @classmethod
    async def upgrade(cls, url: str, sid: str) -> Self:
        """A WebSocket for the long-polling session ``sid``, before its probe: the test
        upgrades it."""
        reader, writer = await cls._handshake(url, f"&sid={sid}")
        return cls(reader, writer)

    @staticmethod
    async def _handshake(
        url: str, query: str, *, receive_buffer: int | None = None, tls: ssl.SSLContext | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The HTTP upgrade to the Engine.IO WebSocket endpoint, ``query`` added to its URL."""
        host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=tls, server_hostname=host if tls else None
        )
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /socket.io/?EIO=4&transport=websocket{query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        return reader, writer

    def send(self, text: str, opcode: int = TEXT) -> None:
        """One masked frame (a client's frames are masked)."""
        data, mask = text.encode(), os.urandom(4)
        size = len(data)
        header = bytes([0x80 | opcode]) + (
            bytes([0x80 | size])
            if size < 126
            else struct.pack("!BH", 0x80 | 126, size)
            if size < 65536
            else struct.pack("!BQ", 0x80 | 127, size)
        )
        self.writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def ask(self, ack_id: int, name: str, args: object) -> None:
        """An acked command."""
        self.send(f"42/ws,{ack_id}{json.dumps([name, args])}")

    async def read_frame(self, timeout: float = 10.0) -> Frame:
        """The next frame the server wrote; a server's frames are never masked or fragmented
        by this gateway, so a masked or continued frame fails the test."""
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        assert head[0] & 0x80, "a fragmented frame"
        assert not head[1] & 0x80, "a masked frame from the server"
        size = head[1] & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return Frame(head[0] & 0x0F, await asyncio.wait_for(self.reader.readexactly(size), timeout))

    async def read_text(self, timeout: float = 10.0) -> str:
        """The next text frame, answering the server's Engine.IO pings on the way."""
        while True:
            frame = await self.read_frame(timeout)
            if frame.opcode != TEXT:
                continue
            if frame.text == "2":
                self.send("3")
                continue
            return frame.text

    def close(self) -> None:
        self.writer.transport.abort()
