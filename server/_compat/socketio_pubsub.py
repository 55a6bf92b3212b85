"""python-socketio's cross-instance message, built without python-socketio.

Checked against python-socketio 5.16.1 to 5.18.1 (``AsyncPubSubManager.emit`` builds it;
``_thread`` reads it and hands ``method: emit`` messages to ``_handle_emit``; a message whose
``host_id`` is the receiving manager's own is skipped).

Processes without a socket server (server/emitter.py) and the publish script of the rooms'
streams (server/streams.py) write this message themselves, so that emitting needs only redis
and pydantic. ``tests/test_compat.py`` compares it with what python-socketio itself
publishes; when that test fails, re-read ``AsyncPubSubManager.emit`` and ``_handle_emit``.
"""

from __future__ import annotations

from typing import Any

from swe_realtime._compat import Upstream

UPSTREAM = (
    Upstream(
        "python-socketio",
        "socketio.async_pubsub_manager:AsyncPubSubManager.emit",
        {"5.16.1": "6cc46e0ff9b6d7cf", "5.18.1": "6cc46e0ff9b6d7cf"},
    ),
    Upstream(
        "python-socketio",
        "socketio.async_pubsub_manager:AsyncPubSubManager._thread",
        {"5.16.1": "fa8d075729aac64d", "5.18.1": "fa8d075729aac64d"},
    ),
)

SOURCE_HOST = "swe-realtime-publisher"
"""The ``host_id`` of messages no manager sent: every instance, the publishing one included,
delivers them from the channel."""


def emit_message(event: str, payload: Any, *, rooms: list[str], namespace: str) -> dict[str, Any]:
    """The message ``AsyncPubSubManager.emit(event, payload, namespace, room=rooms)`` publishes."""
    return {
        "method": "emit",
        "event": event,
        "data": [payload],
        "binary": False,
        "namespace": namespace,
        "room": rooms,
        "skip_sid": None,
        "callback": None,
        "host_id": SOURCE_HOST,
    }
