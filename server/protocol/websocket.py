"""The WebSocket frame format (RFC 6455 section 5.2), as far as the gateway writes frames.

Apart from the frame writer (server/protocol/frames.py) and importing nothing, because an
emitter process without the gateway's libraries writes frames too (server/publish/message.py).
"""

from __future__ import annotations

import struct

TEXT = 0x81
"""FIN + the text opcode: the first byte of an unfragmented WebSocket text frame."""


def frame_head(first: int, length: int) -> bytes:
    """The head of an unmasked WebSocket frame (RFC 6455 section 5.2) of ``length`` bytes,
    ``first`` its first byte."""
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)
