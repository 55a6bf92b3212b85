"""The shared step: one map of JSON Schemas for every event, command and ack.

Outbound models (events, acks) are rendered in serialization mode, inbound ones (command
payloads) in validation mode; pydantic gives a model both names (``-Output``/``-Input``)
only when the two differ. Titles are dropped: property titles would become type aliases
in TypeScript and add nothing the descriptions do not say. Descriptions are Markdown to the
tools that render them, so a ``<project_id>`` placeholder (an HTML tag there, which vanishes)
is written ``{project_id}``, as in the channel addresses. The result is pure and
deterministic, and a model name used twice is an error.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from codegen.errors import CodegenError
from swe_realtime.events import ACKS, CLIENT_COMMANDS, SERVER_EVENTS

SCHEMAS_PREFIX = "#/components/schemas/"
Mode = Literal["serialization", "validation"]
VALUES = ("examples", "default", "const", "enum")
"""Keywords whose value is data, not a schema: copied as they are."""
PLACEHOLDER = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")


def readable(description: str) -> str:
    """``description`` with each ``<name>`` placeholder written ``{name}`` (see above)."""
    return PLACEHOLDER.sub(r"{\1}", description)


@dataclass(frozen=True)
class SchemaSet:
    """Component schemas by name, and the name of each (model, mode)."""

    components: dict[str, Any]
    names: dict[tuple[type[BaseModel], Mode], str]

    def name(self, model: type[BaseModel], mode: Mode) -> str:
        return self.names[(model, mode)]

    def ref(self, model: type[BaseModel], mode: Mode) -> dict[str, str]:
        return {"$ref": SCHEMAS_PREFIX + self.name(model, mode)}


def socket_models() -> list[tuple[type[BaseModel], Mode]]:
    """The Socket.IO API: events and acks as sent, command payloads as accepted."""
    wanted: list[tuple[type[BaseModel], Mode]] = [(event, "serialization") for event in SERVER_EVENTS]
    wanted += [(event.data_model(), "serialization") for event in SERVER_EVENTS]  # their examples
    wanted += [(ack, "serialization") for ack in ACKS]
    wanted += [(command.payload, "validation") for command in CLIENT_COMMANDS.values()]
    return wanted


def _unique(wanted: list[tuple[type[BaseModel], Mode]]) -> list[tuple[type[BaseModel], Mode]]:
    """Each (model, mode) once, in order; two different models with one name are an error."""
    unique = list(dict.fromkeys(wanted))
    by_name: dict[str, type[BaseModel]] = {}
    for model, _ in unique:
        if by_name.setdefault(model.__name__, model) is not model:
            raise CodegenError(f"two catalogue models share the name {model.__name__}")
    return unique


def build_schemas(wanted: list[tuple[type[BaseModel], Mode]]) -> SchemaSet:
    """Component schemas for ``wanted`` and everything they reference."""
    models = _unique(wanted)
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = list(models)
    refs, document = models_json_schema(modes, ref_template=SCHEMAS_PREFIX + "{model}")
    names = {key: ref["$ref"].removeprefix(SCHEMAS_PREFIX) for key, ref in refs.items()}
    components = {name: _published(schema) for name, schema in sorted(document.get("$defs", {}).items())}
    for model, mode in models:
        name = names[(model, mode)]
        if mode == "serialization" and "examples" in components[name]:
            components[name]["examples"] = [_as_sent(model, e) for e in components[name]["examples"]]
    return SchemaSet(components, {(model, mode): names[(model, mode)] for model, mode in models})


def _as_sent(model: type[BaseModel], example: Any) -> Any:
    """An example as the gateway sends it: a model's examples may leave out fields with
    defaults (as a publisher may), but what is sent has them all (serialization mode)."""
    return model.model_validate(example).model_dump(mode="json")


def _published(schema: Any) -> Any:
    """A copy of ``schema`` without ``title`` keywords (property names named ``title``, and
    values in examples and defaults, stay) and with readable descriptions."""
    if isinstance(schema, list):
        return [_published(item) for item in schema]
    if not isinstance(schema, dict):
        return copy.deepcopy(schema)
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title":
            continue
        if key in VALUES:
            result[key] = copy.deepcopy(value)
        elif key == "properties":
            result[key] = {name: _published(prop) for name, prop in value.items()}
        elif key == "description" and isinstance(value, str):
            result[key] = readable(value)
        else:
            result[key] = _published(value)
    return result
