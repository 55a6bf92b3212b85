"""The security audit trail: one line per connect, transport upgrade, refusal and disconnect.

Lines go to the ``swe_realtime.audit`` logger at INFO: the action is the message and the
details are structured fields (server/telemetry/logs.py writes them as ``key=value`` pairs in text
logs, as keys in JSON logs). Tokens are never passed in here, so they cannot leak.
"""

from __future__ import annotations

import logging

_log = logging.getLogger("swe_realtime.audit")


def _line(action: str, **fields: object) -> None:
    _log.info(action, extra={"fields": fields})


def connected(*, user_id: object, connection_id: str, remote: str, transport: str) -> None:
    _line("connect", user=user_id, connection=connection_id, remote=remote, transport=transport)


def upgraded(*, connection_id: str, transport: str) -> None:
    _line("upgrade", connection=connection_id, transport=transport)


def refused(*, code: str, reason: str, remote: str) -> None:
    _line("refuse", code=code, reason=reason, remote=remote)


def expired(*, user_id: object, connection_id: str, remote: str) -> None:
    _line("expire", user=user_id, connection=connection_id, remote=remote, reason="token expired")


def dropped(*, connection_id: str, reason: str) -> None:
    _line("drop", connection=connection_id, reason=reason)


def disconnected(*, user_id: object, connection_id: str, remote: str, reason: str) -> None:
    _line("disconnect", user=user_id, connection=connection_id, remote=remote, reason=reason)
