"""OpenAPI 3.1 of the HTTP endpoints, from the same models the routes use.

The publish body is the union of the catalogue's events as accepted over HTTP: ``type``,
optional ``source`` and the event's data (validation mode: fields with defaults optional),
without ``id`` and ``timestamp``, which the gateway sets.

What a publisher writes is not what a client receives, and generated clients name types
after schemas: so the data of an event as published is ``<Event>Input`` (the AsyncAPI
document's ``<Event>Data`` is the data as delivered, every field present), and a nested
model whose input form differs from the sent one is ``<Model>Input``. In these input
schemas a default is said in the description, not as ``default``: openapi-typescript (with
its default options) and other generators read ``default`` as "always present", true of
what the gateway sends but not of what a publisher may leave out.

Not documented: ``/inspector``'s assets (``/inspector/*``: its script, style, icon and
vendored socket.io-client, files of the page rather than an API).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from codegen.jsonschema import SCHEMAS_PREFIX, VALUES, Mode, SchemaSet, build_schemas, readable
from swe_realtime import __version__
from swe_realtime.events.catalogue import CATALOGUE
from swe_realtime.events.commands import ROOM_PATTERN
from swe_realtime.http.admin import DEFAULT_EVENTS, MAX_EVENTS
from swe_realtime.http.models import (
    MAX_BATCH,
    BatchReceiptBody,
    ConnectionPageBody,
    DisconnectedBody,
    ErrorBody,
    InstancesBody,
    ReceiptBody,
    RejectedBody,
    RoomBody,
    StatsBody,
    StatusBody,
)
from swe_realtime.ops.operator import DEFAULT_PAGE, MAX_PAGE

PUBLISH_EVENT = "PublishEvent"


def openapi_models() -> list[tuple[type[BaseModel], Mode]]:
    wanted: list[tuple[type[BaseModel], Mode]] = [
        (entry.event.data_model(), "validation") for entry in CATALOGUE.values()
    ]
    wanted += [
        (body, "serialization")
        for body in (
            StatusBody,
            ErrorBody,
            RejectedBody,
            ReceiptBody,
            BatchReceiptBody,
            StatsBody,
            ConnectionPageBody,
            DisconnectedBody,
            RoomBody,
            InstancesBody,
        )
    ]
    return wanted


def _input_names(schemas: SchemaSet) -> dict[str, str]:
    """New names of the input schemas (see the module's docstring): each event's data, and
    each nested model whose validation-mode schema differs from its serialization-mode one."""
    data_models = [entry.event.data_model() for entry in CATALOGUE.values()]
    sent = build_schemas([(model, "serialization") for model in data_models]).components
    names = {
        name: f"{name}Input"
        for name, schema in schemas.components.items()
        if name in sent and sent[name] != schema
    }
    for entry in CATALOGUE.values():
        names[schemas.name(entry.event.data_model(), "validation")] = f"{entry.event.__name__}Input"
    return names


def _as_input(schema: Any, names: dict[str, str]) -> Any:
    """``schema`` with references renamed by ``names`` and defaults moved to descriptions."""
    if isinstance(schema, list):
        return [_as_input(item, names) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            name = value.removeprefix(SCHEMAS_PREFIX)
            result[key] = SCHEMAS_PREFIX + names.get(name, name)
        elif key in VALUES:
            if key != "default":
                result[key] = value
        elif key == "properties":
            result[key] = {name: _as_input(prop, names) for name, prop in value.items()}
        else:
            result[key] = _as_input(value, names)
    if schema.get("default") is not None:
        said = f"Default: `{json.dumps(schema['default'])}`."
        result["description"] = f"{result['description']} {said}" if "description" in result else said
    return result


def _publish_schemas(schemas: SchemaSet) -> dict[str, Any]:
    """One request schema per event, and their union discriminated by ``type``."""
    components: dict[str, Any] = {}
    mapping: dict[str, str] = {}
    for event_type, entry in CATALOGUE.items():
        name = f"Publish{entry.event.__name__}"
        source = entry.event.model_fields["source"]
        components[name] = {
            "type": "object",
            "description": readable(" ".join((entry.event.__doc__ or "").split())),
            "properties": {
                "type": {"const": event_type},
                "source": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 100,
                    "description": f"The emitting service. Default: `{json.dumps(source.default)}`.",
                },
                "data": schemas.ref(entry.event.data_model(), "validation"),
            },
            "required": ["type", "data"],
            "additionalProperties": False,
            "examples": [entry.event.example()],
        }
        mapping[event_type] = SCHEMAS_PREFIX + name
    components[PUBLISH_EVENT] = {
        "description": "An event to publish, without id and timestamp (the gateway sets them).",
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    return components


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


PUBLISH_ACCEPTED = (
    "Accepted: the event is valid, holds its position in each of its rooms' history (its"
    " `positions`; none when HISTORY_SIZE=0), and was handed on for delivery to every instance:"
    " with REDIS_URL, Redis stored it in the rooms' streams and published it to all instances;"
    " without, this single instance sent it to its connections. It does not mean that any client"
    " received it: a client that is offline, dropped or reconnecting misses it live and gets it"
    " by `recover` while the history keeps it (HISTORY_SIZE, HISTORY_TTL)."
)
"""What a 202 of the publish routes promises, and what not."""

PUBLISH_UNAVAILABLE = (
    "SERVICE_UNAVAILABLE: Redis could not be reached, or did not take the event in time, so the"
    " other instances cannot get it. The message says how many events of the request were sent"
    " (`k of n sent`, in order): those are accepted as a 202 says; the others were neither stored"
    " nor sent to any client. Retry those after a delay (while Redis is away `GET /ready`"
    " answers 503). The event that failed may have reached some of its rooms"
    " before Redis failed: a retry then sends it there again, under a new id."
)
"""What a 503 of the publish routes means, and what the publisher should do."""


def _response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, **({"content": _json(schema)} if schema else {})}


def _parameter(name: str, where: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A path parameter (required) or a query parameter (optional)."""
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


def build_openapi() -> dict[str, Any]:
    schemas = build_schemas(openapi_models())
    names = _input_names(schemas)
    inputs = {names.get(name, name): schema for name, schema in schemas.components.items()}
    components = {
        name: _as_input(schema, names) for name, schema in {**inputs, **_publish_schemas(schemas)}.items()
    }
    error = schemas.ref(ErrorBody, "serialization")
    auth_errors = {
        "401": _response("No token, or not a valid one.", error),
        "403": _response("The token lacks the required role.", error),
        "429": _response(
            "Too many failed authentications from this address (AUTH_FAILURES_PER_MINUTE), answered"
            " before the token is checked; see Retry-After.",
            error,
        ),
    }
    publish_errors = {
        "400": _response("The body is not JSON (INVALID_REQUEST).", error),
        **auth_errors,
        "413": _response("The body is larger than MAX_PAYLOAD_BYTES.", error),
        "422": _response(
            "The event is invalid; every bad field is listed.", schemas.ref(RejectedBody, "serialization")
        ),
        "503": _response(PUBLISH_UNAVAILABLE, error),
    }
    admin_errors = {
        **auth_errors,
        "429": _response(
            "More than ADMIN_REQUESTS_PER_SECOND requests a second on this instance, or too many failed"
            " authentications from this address (AUTH_FAILURES_PER_MINUTE); see Retry-After.",
            error,
        ),
    }
    invalid = _response("A parameter is out of its range or grammar (INVALID_REQUEST, INVALID_ROOM).", error)
    status = schemas.ref(StatusBody, "serialization")
    text = {"description": "The document.", "content": {"application/yaml": {"schema": {"type": "object"}}}}
    document = {
        "description": "The document.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    html = {"description": "The page.", "content": {"text/html": {"schema": {"type": "string"}}}}
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness.",
                "security": [],
                "responses": {"200": _response("The process serves.", status)},
            }
        },
        "/ready": {
            "get": {
                "operationId": "ready",
                "summary": "Readiness.",
                "security": [],
                "responses": {
                    "200": _response("Ready for connections.", status),
                    "503": _response("Not ready yet.", status),
                },
            }
        },
        "/api/v1/websocket/stats": {
            "get": {
                "operationId": "websocketStats",
                "summary": "Connections and room sizes on this instance (admin or service token).",
                "responses": {
                    "200": _response("The counts.", schemas.ref(StatsBody, "serialization")),
                    **auth_errors,
                },
            }
        },
        "/api/v1/connections": {
            "get": {
                "operationId": "listConnections",
                "summary": "Live connections over every instance, by id, a page at a time (admin token).",
                "parameters": [
                    _parameter(
                        "user", "query", {"type": "string", "format": "uuid"}, "Only this user's connections."
                    ),
                    _parameter(
                        "room",
                        "query",
                        {"type": "string", "pattern": ROOM_PATTERN},
                        "Only this room's members.",
                    ),
                    _parameter(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
                        "Connections per page.",
                    ),
                    _parameter(
                        "after",
                        "query",
                        {"type": "string"},
                        "The `next` of the page before; empty for the first.",
                    ),
                ],
                "responses": {
                    "200": _response("One page.", schemas.ref(ConnectionPageBody, "serialization")),
                    **admin_errors,
                    "422": invalid,
                },
            }
        },
        "/api/v1/connections/{id}": {
            "delete": {
                "operationId": "closeConnection",
                "summary": "Close a connection on any instance (admin): its client sees ADMIN_DISCONNECT.",
                "parameters": [_parameter("id", "path", {"type": "string"}, "The connection's id.")],
                "responses": {
                    "200": _response("Closed.", schemas.ref(DisconnectedBody, "serialization")),
                    **admin_errors,
                    "404": _response("No instance holds it (NOT_FOUND).", error),
                    "503": _response(
                        "Not found on the instances that answered, and some did not (SERVICE_UNAVAILABLE).",
                        error,
                    ),
                },
            }
        },
        "/api/v1/rooms/{room}": {
            "get": {
                "operationId": "describeRoom",
                "summary": "A room's members on every instance, its position and last events (admin token).",
                "parameters": [
                    _parameter(
                        "room",
                        "path",
                        {"type": "string", "pattern": ROOM_PATTERN},
                        "The room, e.g. project:{project_id}.",
                    ),
                    _parameter(
                        "events",
                        "query",
                        {"type": "integer", "minimum": 0, "maximum": MAX_EVENTS, "default": DEFAULT_EVENTS},
                        "How many of its last events.",
                    ),
                ],
                "responses": {
                    "200": _response("The room.", schemas.ref(RoomBody, "serialization")),
                    **admin_errors,
                    "422": invalid,
                },
            }
        },
        "/api/v1/instances": {
            "get": {
                "operationId": "listInstances",
                "summary": "Every instance's state and its last 15 minutes (admin token).",
                "parameters": [
                    _parameter(
                        "since",
                        "query",
                        {"type": "number", "default": 0},
                        "Only notes taken after this (Unix seconds).",
                    )
                ],
                "responses": {
                    "200": _response("The instances.", schemas.ref(InstancesBody, "serialization")),
                    **admin_errors,
                    "422": invalid,
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics of this instance (METRICS_TOKEN, or an admin token).",
                "responses": {
                    "200": {
                        "description": "The metrics, Prometheus text format 0.0.4.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **auth_errors,
                },
            }
        },
        "/api/v1/events": {
            "post": {
                "operationId": "publishEvent",
                "summary": "Publish one event (service token).",
                "requestBody": {"required": True, "content": _json({"$ref": SCHEMAS_PREFIX + PUBLISH_EVENT})},
                "responses": {
                    "202": _response(PUBLISH_ACCEPTED, schemas.ref(ReceiptBody, "serialization")),
                    **publish_errors,
                },
            }
        },
        "/api/v1/events/batch": {
            "post": {
                "operationId": "publishEvents",
                "summary": f"Publish 1 to {MAX_BATCH} events, all checked before any is sent (service).",
                "requestBody": {
                    "required": True,
                    "content": _json(
                        {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                            "items": {"$ref": SCHEMAS_PREFIX + PUBLISH_EVENT},
                        }
                    ),
                },
                "responses": {
                    "202": _response(
                        "Every event of the batch, in order. For each: " + PUBLISH_ACCEPTED,
                        schemas.ref(BatchReceiptBody, "serialization"),
                    ),
                    **publish_errors,
                },
            }
        },
        "/asyncapi.yaml": {
            "get": {
                "operationId": "asyncapiYaml",
                "summary": "The AsyncAPI document.",
                "security": [],
                "responses": {"200": text},
            }
        },
        "/asyncapi.json": {
            "get": {
                "operationId": "asyncapiJson",
                "summary": "The AsyncAPI document.",
                "security": [],
                "responses": {"200": document},
            }
        },
        "/openapi.yaml": {
            "get": {
                "operationId": "openapiYaml",
                "summary": "This document.",
                "security": [],
                "responses": {"200": text},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapiJson",
                "summary": "This document.",
                "security": [],
                "responses": {"200": document},
            }
        },
        "/docs": {
            "get": {
                "operationId": "docs",
                "summary": "The API reference page.",
                "security": [],
                "responses": {"200": html},
            }
        },
        "/inspector": {
            "get": {
                "operationId": "inspector",
                "summary": "The operators' live page (it asks for an admin token).",
                "security": [],
                "responses": {"200": html},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "swe-realtime HTTP API",
            "version": __version__,
            "description": "Health, statistics and event publishing. Generated by `python -m codegen`.",
        },
        "servers": [{"url": "http://localhost:8000"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
