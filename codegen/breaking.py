"""Schema-level compatibility check between two AsyncAPI documents of this gateway.

``asyncapi diff`` compares document structure: a removed enum value or a new required field
deep in a payload passes it. This walks every message's payload schema, following ``$ref``
in each document, and classifies each difference:

breaking  an event, a command or one of a command's acks removed; an event's rooms changed;
          a field removed; an optional field made required (or, in what the server sends, a
          required one made optional); a type changed or narrowed; an enum value removed; a
          constant changed; in what clients send, a new required field or a tightened bound
          (length, range, items).
warning   an enum value added (clients' exhaustive switches); in what the server sends, a type
          widened (say, to nullable).
info      new events, commands or optional fields, and everything else that is compatible.

Direction matters: messages the server sends (events, acks) are read by clients; command
payloads are written by them. Acks have no Socket.IO event name: each is compared as
``<command> ack <schema>``, whether a document gives one reply message per ack or one per
command (the union of its acks).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["breaking", "warning", "info"]
Direction = Literal["sent", "received"]
BOUNDS_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")
BOUNDS_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems")


@dataclass(frozen=True)
class Change:
    level: Level
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.level.upper():8} {self.where}: {self.what}"


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every difference between two documents that a client could notice, classified."""
    return list(_Comparison(old, new).run())


class _Comparison:
    def __init__(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.old, self.new = old, new

    def run(self) -> Iterator[Change]:
        old_messages, new_messages = _messages(self.old), _messages(self.new)
        old_rooms, new_rooms = _rooms(self.old), _rooms(self.new)
        received_old, received_new = _received(self.old), _received(self.new)
        for name, message in old_messages.items():
            kind = "command" if name in received_old else "event"
            if name not in new_messages:
                yield Change("breaking", name, f"{kind} removed")
                continue
            if old_rooms.get(name) != new_rooms.get(name):
                before, after = sorted(old_rooms.get(name, ())), sorted(new_rooms.get(name, ()))
                yield Change("breaking", name, f"rooms changed from {before} to {after}")
            direction: Direction = "received" if name in received_new else "sent"
            yield from self._schema(name, message["payload"], new_messages[name]["payload"], direction, set())
        for name in new_messages.keys() - old_messages.keys():
            yield Change("info", name, f"new {'command' if name in received_new else 'event'}")
        old_acks, new_acks = _acks(self.old), _acks(self.new)
        for where, schema in old_acks.items():
            if where not in new_acks:
                yield Change("breaking", where, "ack removed")
                continue
            yield from self._schema(where, schema, new_acks[where], "sent", set())
        for where in new_acks.keys() - old_acks.keys():
            yield Change("info", where, "new ack")

    def _schema(
        self, where: str, old: Any, new: Any, direction: Direction, seen: set[str]
    ) -> Iterator[Change]:
        key = f"{where}|{old.get('$ref')}|{new.get('$ref')}"
        if key in seen:
            return
        seen = seen | {key}
        old, new = _resolve(self.old, old), _resolve(self.new, new)
        old_kinds, new_kinds = _kinds(old), _kinds(new)
        if old_kinds != new_kinds:
            if old_kinds - new_kinds and new_kinds - old_kinds:
                yield Change(
                    "breaking", where, f"type changed from {sorted(old_kinds)} to {sorted(new_kinds)}"
                )
                return
            if old_kinds - new_kinds:
                level: Level = "breaking" if direction == "received" else "info"
                yield Change(level, where, f"type narrowed to {sorted(new_kinds)}")
            else:
                level = "warning" if direction == "sent" else "info"
                yield Change(level, where, f"type widened to {sorted(new_kinds)}")
        old, new = _strip_null(self.old, old), _strip_null(self.new, new)
        if "const" in old and old.get("const") != new.get("const"):
            yield Change("breaking", where, f"constant changed from {old['const']!r} to {new.get('const')!r}")
        yield from _enum_changes(where, old, new)
        if direction == "received":
            yield from _bound_changes(where, old, new)
        if "items" in old and "items" in new:
            yield from self._schema(f"{where}[]", old["items"], new["items"], direction, seen)
        yield from self._properties(where, old, new, direction, seen)

    def _properties(
        self, where: str, old: dict[str, Any], new: dict[str, Any], direction: Direction, seen: set[str]
    ) -> Iterator[Change]:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        for name, schema in old_props.items():
            path = f"{where}.{name}"
            if name not in new_props:
                yield Change("breaking", path, "field removed")
                continue
            if name not in old_required and name in new_required:
                yield Change("breaking", path, "optional field made required")
            elif name in old_required and name not in new_required:
                level: Level = "breaking" if direction == "sent" else "info"
                yield Change(level, path, "required field made optional")
            yield from self._schema(path, schema, new_props[name], direction, seen)
        for name in new_props.keys() - old_props.keys():
            required = name in new_required
            level = "breaking" if required and direction == "received" else "info"
            yield Change(level, f"{where}.{name}", f"new {'required' if required else 'optional'} field")


def _messages(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Messages by wire name (commands and events share one Socket.IO event namespace), but
    replies: an ack has no wire name and is compared by its command (``_acks``)."""
    replies = {ref["$ref"].rsplit("/", 1)[-1] for ref in _reply_refs(document)}
    messages = document.get("components", {}).get("messages", {})
    return {m["name"]: m for key, m in messages.items() if key not in replies}


def _reply_refs(document: dict[str, Any]) -> list[dict[str, str]]:
    return [
        ref
        for op in document.get("operations", {}).values()
        for ref in op.get("reply", {}).get("messages", [])
    ]


def _acks(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each ack a command may answer, as ``"<command> ack <schema>"``: the reply messages'
    payloads, a union taken apart (documents list one reply message per ack, or one per
    command whose payload is the union of its acks)."""
    messages = document.get("components", {}).get("messages", {})
    acks: dict[str, dict[str, Any]] = {}
    for op in document.get("operations", {}).values():
        if op.get("action") != "receive":
            continue
        command = messages[op["messages"][0]["$ref"].rsplit("/", 1)[-1]]["name"]
        for ref in op.get("reply", {}).get("messages", []):
            payload = messages[ref["$ref"].rsplit("/", 1)[-1]]["payload"]
            for member in _resolve(document, payload).get("oneOf", [payload]):
                acks[f"{command} ack {member['$ref'].rsplit('/', 1)[-1]}"] = member
    return acks


def _rooms(document: dict[str, Any]) -> dict[str, set[str]]:
    """Each message's channel addresses. Every event is on the connection channel too (since
    issue 17: one operation lists each event once, for code generators), so an event's rooms
    are its other channels where it has any; this reads documents from before and after alike."""
    keys = {key: m["name"] for key, m in document.get("components", {}).get("messages", {}).items()}
    rooms: dict[str, set[str]] = {}
    for channel in document.get("channels", {}).values():
        for key in channel.get("messages", {}):
            rooms.setdefault(keys[key], set()).add(channel["address"])
    connection = document.get("channels", {}).get("connection", {}).get("address")
    return {name: (addresses - {connection}) or addresses for name, addresses in rooms.items()}


def _received(document: dict[str, Any]) -> set[str]:
    """Wire names of what the server receives: the messages of its receive operations."""
    keys = {key: m["name"] for key, m in document.get("components", {}).get("messages", {}).items()}
    return {
        keys[ref["$ref"].rsplit("/", 1)[-1]]
        for op in document.get("operations", {}).values()
        if op.get("action") == "receive"
        for ref in op.get("messages", [])
    }


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _members(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return list(schema.get("anyOf", schema.get("oneOf", [schema])))


def _kinds(schema: dict[str, Any]) -> set[str]:
    kinds: set[str] = set()
    for member in _members(schema):
        kind = member.get("type")
        if kind is None and "$ref" in member:
            kind = "object-or-enum"
        if "const" in member:
            kind = type(member["const"]).__name__
        kinds.update(kind if isinstance(kind, list) else [str(kind)])
    return kinds


def _strip_null(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null member of a nullable schema, resolved (or the schema itself)."""
    members = [m for m in _members(schema) if m.get("type") != "null"]
    return _resolve(document, members[0]) if len(members) == 1 and members[0] is not schema else schema


def _enum_changes(where: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    if "enum" not in old:
        return
    before, after = list(old["enum"]), list(new.get("enum", []))
    for value in before:
        if value not in after:
            yield Change("breaking", where, f"enum value {value!r} removed")
    for value in after:
        if value not in before:
            yield Change("warning", where, f"enum value {value!r} added")


def _bound_changes(where: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for bound in (*BOUNDS_UPPER, *BOUNDS_LOWER):
        if bound not in new:
            continue
        before, after = old.get(bound), new[bound]
        tightened = before is None or (after < before if bound in BOUNDS_UPPER else after > before)
        if tightened and before != after:
            yield Change("breaking", where, f"{bound} tightened from {before} to {after}")
