"""The API reference page: one self-contained HTML file (no script, no CDN, works offline).

Rendered from the generated AsyncAPI and OpenAPI documents, so it can only say what they
say: rooms, every event with its fields and an example, the commands with their acks, the
error codes and the HTTP endpoints.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from swe_realtime.errors import ErrorCode
from swe_realtime.events import NAMESPACE

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
header{background:#1d2330;color:#fff;padding:24px 40px}header p{color:#c9d1e0;max-width:70em}
main{padding:8px 40px 60px;max-width:1100px}h2{margin-top:40px;border-bottom:2px solid #dde3ee}
section.item{background:#fff;border:1px solid #dde3ee;border-radius:6px;padding:4px 18px 14px;margin:14px 0}
code,pre{font:13px ui-monospace,monospace}pre{background:#f1f4f9;padding:10px;overflow:auto;border-radius:4px}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #e6eaf1;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f4f9}.tag{display:inline-block;background:#e7eefc;color:#2451b3;
border-radius:3px;padding:0 6px;margin-right:4px;font:12px ui-monospace,monospace}nav a{margin-right:14px}
"""


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return _ref_name(schema["$ref"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}))}"
    kind = str(schema.get("type", "any"))
    return f"{kind} ({schema['format']})" if "format" in schema else kind


def _fields_table(schema: dict[str, Any], components: dict[str, Any]) -> str:
    rows = []
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        target = components.get(_ref_name(prop["$ref"]), {}) if "$ref" in prop else {}
        kind = _type(prop)
        if "enum" in target:
            kind += " — " + " | ".join(json.dumps(v) for v in target["enum"])
        rows.append(
            f"<tr><td><code>{escape(name)}</code></td><td><code>{escape(kind)}</code></td>"
            f"<td>{'yes' if name in required else 'no'}</td>"
            f"<td>{escape(prop.get('description') or target.get('description', ''))}</td></tr>"
        )
    if not rows:
        return "<p>No fields.</p>"
    head = "<tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _message_section(
    key: str, message: dict[str, Any], channels: list[str], components: dict[str, Any]
) -> str:
    payload = components[_ref_name(message["payload"]["$ref"])]
    data_ref = payload.get("properties", {}).get("data", {}).get("$ref")
    fields = components[_ref_name(data_ref)] if data_ref else payload
    rooms = "".join(f'<span class="tag">{escape(c)}</span>' for c in channels)
    example = ""
    if message.get("examples"):
        example = f"<pre>{escape(json.dumps(message['examples'][0]['payload'], indent=2))}</pre>"
    return (
        f'<section class="item" id="{escape(key)}"><h3><code>{escape(message["name"])}</code></h3>'
        f"<p>{escape(message.get('summary', ''))}</p><p>{rooms}</p>"
        f"{_fields_table(fields, components)}{example}</section>"
    )


def _acks(reply: dict[str, Any], components: dict[str, Any]) -> list[str]:
    """The ack schemas a command's reply may be: the members of its payload's union, or the
    payload's own schema."""
    payload = components[_ref_name(reply["payload"]["$ref"])]
    return [_ref_name(member["$ref"]) for member in payload.get("oneOf", [reply["payload"]])]


def build_docs_site(asyncapi: dict[str, Any], openapi: dict[str, Any]) -> str:
    components = asyncapi["components"]["schemas"]
    messages = asyncapi["components"]["messages"]
    channels = asyncapi["channels"]
    commands = {k: v for k, v in asyncapi["operations"].items() if v["action"] == "receive"}
    command_keys = {_ref_name(op["messages"][0]["$ref"]) for op in commands.values()}
    reply_keys = {_ref_name(m["$ref"]) for op in commands.values() for m in op["reply"]["messages"]}
    acks = {key: _acks(messages[key], components) for key in reply_keys}
    where: dict[str, list[str]] = {}
    for channel in channels.values():
        for key in channel["messages"]:
            where.setdefault(key, []).append(channel["address"])
    # Every event is on the connection channel too; its tags are its rooms.
    where = {key: [a for a in addresses if a != NAMESPACE] or addresses for key, addresses in where.items()}

    rooms = "".join(
        f"<tr><td><code>{escape(c['address'])}</code></td><td>{escape(c['description'])}</td></tr>"
        for c in channels.values()
    )
    events = "".join(
        _message_section(key, message, where.get(key, []), components)
        for key, message in messages.items()
        if key not in command_keys and key not in reply_keys
    )
    command_sections = []
    for op in commands.values():
        key = _ref_name(op["messages"][0]["$ref"])
        payload = components[_ref_name(messages[key]["payload"]["$ref"])]
        reply = _ref_name(op["reply"]["messages"][0]["$ref"])
        ack_names = ", ".join(f"<code>{escape(name)}</code>" for name in acks[reply])
        command_sections.append(
            f'<section class="item" id="{escape(key)}">'
            f'<h3><code>socket.emit("{escape(op["title"])}", payload, ack)</code></h3>'
            f"<p>{escape(op.get('summary', ''))}</p>{_fields_table(payload, components)}"
            f"<p>Ack: {ack_names}</p></section>"
        )
    ack_names_in_order = dict.fromkeys(name for key in messages if key in reply_keys for name in acks[key])
    ack_sections = "".join(
        f'<section class="item" id="{escape(name)}"><h3>{escape(name)}</h3>'
        f"{_fields_table(components[name], components)}</section>"
        for name in ack_names_in_order
    )
    codes = "".join(
        f"<tr><td><code>{code.value}</code></td><td>{escape(code.default_message)}</td></tr>"
        for code in ErrorCode
    )
    endpoints = "".join(
        f"<tr><td><code>{method.upper()} {escape(path)}</code></td>"
        f"<td>{escape(op.get('summary', ''))}</td></tr>"
        for path, item in openapi["paths"].items()
        for method, op in item.items()
    )
    info = asyncapi["info"]
    return f"""<!doctype html>
<!-- Generated by `python -m codegen` from server/events. Do not edit. -->
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(info["title"])} {escape(info["version"])}: API reference</title><style>{STYLE}</style></head>
<body><header><h1>{escape(info["title"])} <small>{escape(info["version"])}</small></h1>
<p>{escape(info["description"])}</p>
<nav><a href="#rooms">Rooms</a><a href="#events">Events</a><a href="#commands">Commands</a>
<a href="#errors">Errors</a><a href="#http">HTTP</a><a href="asyncapi.yaml">asyncapi.yaml</a>
<a href="openapi.json">openapi.json</a></nav></header>
<main>
<h2 id="rooms">Rooms</h2><table><tr><th>Address</th><th>What</th></tr>{rooms}</table>
<h2 id="events">Events</h2>{events}
<h2 id="commands">Commands</h2>{"".join(command_sections)}
<h2 id="acks">Acknowledgements</h2>{ack_sections}
<h2 id="errors">Error codes</h2><table><tr><th>Code</th><th>Default message</th></tr>{codes}</table>
<h2 id="http">HTTP endpoints</h2><table><tr><th>Endpoint</th><th>What</th></tr>{endpoints}</table>
</main></body></html>
"""
