"""AsyncAPI 3.0 of the Socket.IO API: rooms as channels, events as messages.

Socket.IO has no AsyncAPI binding, so the server is described with the ``ws`` protocol and
binding, and an acknowledgement is modelled as the ``reply`` of the command's operation.
Each room kind is a channel (``project:{projectId}`` ...) listing the events its rooms carry;
the ``connection`` channel is one client's connection: every event it receives, the commands
it sends and their acks.

Code generators (AsyncAPI Modelina, say) make one model per message payload they meet in the
operations and name a union of several messages after the channel, overwriting a model met
twice. So the operations meet each payload once: one ``sendEvents`` operation lists every
event (the room channels, without operations, say where each goes), and each command has one
reply message, whose payload is the union of its acks under a name of its own
(``SubscribeReply``); commands that share a payload model get a copy each under their own name.

Examples are whole envelopes as a client receives them (``delivered_example``).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from pydantic import BaseModel

from codegen.jsonschema import SCHEMAS_PREFIX, Mode, SchemaSet, readable
from swe_realtime import __version__
from swe_realtime.events import CLIENT_COMMANDS, NAMESPACE, ConnectionErrorEvent, ConnectionEstablished
from swe_realtime.events._examples import AGENT_ID, PROJECT_ID, USER_ID
from swe_realtime.events.catalogue import CATALOGUE, Global, Route
from swe_realtime.events.envelope import Envelope

ROOM_CHANNELS: dict[str, dict[str, Any]] = {
    "project": {
        "address": "project:{projectId}",
        "title": "Project room",
        "description": "Events about one project. Members: users whose token lists the project, and admins.",
        "parameters": {"projectId": {"description": "The project's UUID, lowercase."}},
    },
    "user": {
        "address": "user:{userId}",
        "title": "User room",
        "description": "Events for one user. Every connection joins its own user room on connect.",
        "parameters": {"userId": {"description": "The user's UUID (the token's sub), lowercase."}},
    },
    "agent": {
        "address": "agent:{agentId}",
        "title": "Agent room",
        "description": "Events about one agent. Any authenticated client may join; read-only.",
        "parameters": {"agentId": {"description": "The agent's UUID, lowercase."}},
    },
    "global": {
        "address": "global",
        "title": "Global room",
        "description": "System-wide events. Every connection joins it on connect.",
    },
}
CONNECTION_CHANNEL = "connection"
EXAMPLE_ROOMS = {
    "project": f"project:{PROJECT_ID}",
    "user": f"user:{USER_ID}",
    "agent": f"agent:{AGENT_ID}",
    "global": "global",
}
"""The room of each kind that the examples' positions are in."""
EXAMPLE_TIMESTAMP = "2026-01-15T10:30:00Z"


def channels_of(route: Route) -> list[str]:
    """The room channels an event with this route can be sent on."""
    kinds = {"project": bool(route.project), "user": bool(route.users), "agent": bool(route.agent)}
    return [name for name, used in kinds.items() if used] + (
        ["global"] if route.global_room is not Global.NEVER else []
    )


def delivered_example(event: type[Envelope[Any]], rooms: Sequence[str]) -> dict[str, Any]:
    """The envelope as a client receives it: the model's example with the fields the gateway
    sets (``id``, ``timestamp``, ``positions`` in each of ``rooms``) and every default filled
    in, validated by the event's model so that it matches the schema it illustrates."""
    example = {
        **event.example(),
        "id": str(uuid5(NAMESPACE_URL, f"swe-realtime:example:{event.event_type()}")),
        "timestamp": EXAMPLE_TIMESTAMP,
        "positions": {
            EXAMPLE_ROOMS[room]: {"epoch": "1768473000000-0", "offset": 42 + index}
            for index, room in enumerate(rooms)
        },
    }
    return event.model_validate(example).model_dump(mode="json")


def message(
    event: type[BaseModel], schemas: SchemaSet, name: str, summary: str, mode: Mode, rooms: Sequence[str] = ()
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "title": name,
        "summary": summary,
        "contentType": "application/json",
        "payload": schemas.ref(event, mode),
    }
    if issubclass(event, Envelope):
        entry["examples"] = [{"name": "example", "payload": delivered_example(event, rooms)}]
    return entry


def _doc(model: type[BaseModel]) -> str:
    return readable(" ".join((model.__doc__ or model.__name__).split()))


def build_asyncapi(schemas: SchemaSet) -> dict[str, Any]:
    components = dict(schemas.components)
    messages: dict[str, Any] = {}
    channel_messages: dict[str, dict[str, Any]] = {name: {} for name in (*ROOM_CHANNELS, CONNECTION_CHANNEL)}

    def add(key: str, entry: dict[str, Any], channels: list[str]) -> None:
        messages[key] = entry
        for channel in channels:
            channel_messages[channel][key] = {"$ref": f"#/components/messages/{key}"}

    # The positions of connection_established are those of the rooms every connection joins.
    for connection_event, joined in ((ConnectionEstablished, ["user", "global"]), (ConnectionErrorEvent, [])):
        add(
            connection_event.__name__,
            message(
                connection_event,
                schemas,
                connection_event.event_name(),
                _doc(connection_event),
                "serialization",
                joined,
            ),
            [CONNECTION_CHANNEL],
        )
    for entry in CATALOGUE.values():
        event = entry.event
        rooms = channels_of(entry.route)
        add(
            event.__name__,
            message(event, schemas, event.event_name(), _doc(event), "serialization", rooms),
            [*rooms, CONNECTION_CHANNEL],
        )
    events = list(messages)
    payload_users = Counter(command.payload for command in CLIENT_COMMANDS.values())
    for name, command in CLIENT_COMMANDS.items():
        key = _command_key(name)
        received = message(command.payload, schemas, name, command.summary, "validation")
        if payload_users[command.payload] > 1:
            received["payload"] = _own_schema(
                components, f"{key.removeprefix('command')}Command", command.payload, schemas
            )
        add(key, received, [CONNECTION_CHANNEL])
        add(f"{key}Reply", _reply(components, name, key, command.acks, schemas), [CONNECTION_CHANNEL])

    channels: dict[str, Any] = {}
    for name, spec in ROOM_CHANNELS.items():
        channels[name] = {**spec, "messages": channel_messages[name]}
    channels[CONNECTION_CHANNEL] = {
        "address": NAMESPACE,
        "title": "The connection",
        "description": (
            "One client's own connection to the /ws namespace: every event it receives (the room "
            "channels say which rooms carry which), the commands it sends and their "
            "acknowledgements."
        ),
        "messages": channel_messages[CONNECTION_CHANNEL],
        "bindings": {
            "ws": {
                "bindingVersion": "0.1.0",
                "query": {
                    "type": "object",
                    "properties": {
                        "token": {"type": "string", "description": "The JWT, when auth.token cannot be used."}
                    },
                },
            }
        },
    }

    ref = f"#/channels/{CONNECTION_CHANNEL}"
    operations: dict[str, Any] = {
        "sendEvents": {
            "action": "send",
            "title": "Events sent to the connection",
            "summary": "Every event, each on the rooms its route picks (see the room channels).",
            "channel": {"$ref": ref},
            "messages": [{"$ref": f"{ref}/messages/{key}"} for key in events],
        }
    }
    for name, command in CLIENT_COMMANDS.items():
        key = _command_key(name)
        operations[key] = {
            "action": "receive",
            "title": name,
            "summary": command.summary,
            "channel": {"$ref": ref},
            "messages": [{"$ref": f"{ref}/messages/{key}"}],
            "reply": {"channel": {"$ref": ref}, "messages": [{"$ref": f"{ref}/messages/{key}Reply"}]},
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "swe-realtime",
            "version": __version__,
            "description": (
                "The real-time gateway of the SWE Agent platform: Socket.IO v5 (socket.io-client 4.x) "
                f"on namespace {NAMESPACE}. Each event is emitted under its message name with the "
                "envelope as its one argument. Generated by `python -m codegen` from server/events."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "gateway": {
                "host": "localhost:8000",
                "pathname": "/socket.io/",
                "protocol": "ws",
                "description": "Socket.IO endpoint (WebSocket, with HTTP long-polling fallback).",
                "security": [
                    {"$ref": "#/components/securitySchemes/authToken"},
                    {"$ref": "#/components/securitySchemes/queryToken"},
                ],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": components,
            "messages": messages,
            "securitySchemes": {
                "authToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The JWT in the Socket.IO handshake: io(url, { auth: { token } }).",
                },
                "queryToken": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "The JWT as the token query parameter, for clients that cannot set auth.",
                },
            },
        },
    }


def _command_key(name: str) -> str:
    return "command" + "".join(part.capitalize() for part in name.replace(".", "_").split("_"))


def _own_schema(
    components: dict[str, Any], name: str, model: type[BaseModel], schemas: SchemaSet
) -> dict[str, str]:
    """A copy of a payload schema that several commands share, under a name of its own: code
    generators name a type after the payload's schema and meet each payload once."""
    components[name] = copy.deepcopy(components[schemas.name(model, "validation")])
    return {"$ref": SCHEMAS_PREFIX + name}


def _reply(
    components: dict[str, Any], name: str, key: str, acks: Sequence[type[BaseModel]], schemas: SchemaSet
) -> dict[str, Any]:
    """The message of a command's acknowledgement. AsyncAPI tools expect one reply message, and
    code generators meet each payload once: an ack that may be one of several (the answer or
    ErrorAck) is a union schema of the command's own (``SubscribeReply``); a sole ack is its own
    schema."""
    summary = f"What the ack callback of {name} receives: " + ", or ".join(ack.__name__ for ack in acks) + "."
    payload = schemas.ref(acks[0], "serialization")
    if len(acks) > 1:
        schema_name = f"{key.removeprefix('command')}Reply"
        components[schema_name] = {
            "description": summary,
            "oneOf": [schemas.ref(ack, "serialization") for ack in acks],
        }
        payload = {"$ref": SCHEMAS_PREFIX + schema_name}
    return {
        "name": f"{key}Reply",
        "title": f"Ack of {name}",
        "summary": summary,
        "contentType": "application/json",
        "payload": payload,
    }
