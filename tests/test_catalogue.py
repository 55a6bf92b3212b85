"""The catalogue's models: documented, exemplified, and as strict as the API document."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from swe_realtime.events import ACKS, CLIENT_COMMANDS, SERVER_EVENTS, project
from swe_realtime.events.agent import AgentStatus
from swe_realtime.events.ai import Severity, SuggestionCategory, TargetType
from swe_realtime.events.catalogue import CATALOGUE, Entry, Route
from swe_realtime.events.issue import IssuePriority, IssueStatus
from swe_realtime.events.workflow import WorkflowStatus


def nested_models(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[type[BaseModel]]:
    seen = set() if seen is None else seen
    if model in seen:
        return seen
    seen.add(model)
    for field in model.model_fields.values():
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested_models(candidate, seen)
    return seen


ALL_MODELS = sorted(
    set().union(
        *(nested_models(m) for m in (*SERVER_EVENTS, *ACKS, *(c.payload for c in CLIENT_COMMANDS.values())))
    ),
    key=lambda m: m.__name__,
)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.__name__)
def test_every_event_field_is_described(model: type[BaseModel]) -> None:
    undocumented = [
        name for name, field in model.model_fields.items() if not field.description and name != "type"
    ]
    assert undocumented == []


@pytest.mark.parametrize("event", SERVER_EVENTS, ids=lambda m: m.__name__)
def test_every_event_has_a_valid_example(event: Any) -> None:
    example = event.example()
    assert event.model_validate(example).event_type() == example["type"]


def test_catalogue_covers_the_api_document() -> None:
    """Every event of the API document is in the catalogue (it may hold more: adding an event
    is its model and its catalogue row, nothing here)."""
    assert set(CATALOGUE) >= {
        "project.updated",
        "project.deleted",
        "agent.status_changed",
        "agent.connected",
        "agent.disconnected",
        "workflow.progress",
        "workflow.started",
        "workflow.completed",
        "workflow.failed",
        "pr.created",
        "pr.updated",
        "pr.closed",
        "issue.created",
        "issue.updated",
        "issue.closed",
        "ai.suggestion",
        "ai.analysis_complete",
    }


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        (AgentStatus, {"online", "offline", "busy", "idle", "error"}),
        (WorkflowStatus, {"pending", "running", "completed", "failed", "cancelled"}),
        (IssueStatus, {"open", "in_progress", "closed", "blocked"}),
        (IssuePriority, {"low", "medium", "high", "critical"}),
        (TargetType, {"issue", "pr", "code"}),
        (
            SuggestionCategory,
            {"optimization", "refactor", "bug_fix", "security", "performance", "maintainability"},
        ),
        (Severity, {"info", "warning", "critical"}),
    ],
)
def test_enumerations_are_the_documents(enum: Any, values: set[str]) -> None:
    assert {member.value for member in enum} == values


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("workflow.progress", "progress", 101),
        ("workflow.progress", "progress", -1),
        ("agent.status_changed", "availability", 101),
        ("ai.suggestion", "confidence", 1.01),
        ("ai.suggestion", "confidence", -0.1),
        ("pr.created", "created_at", "2024-11-08T10:30:00"),  # no timezone: ambiguous, refused
        ("pr.created", "github_url", "javascript:alert(1)"),
    ],
)
def test_ranges_and_formats_are_enforced(event_type: str, field: str, value: Any) -> None:
    event = CATALOGUE[event_type].event
    body = event.example()
    body["data"] = {**body["data"], field: value}
    with pytest.raises(ValueError, match=field):
        event.model_validate(body)


@pytest.mark.parametrize("route", [Route(project="project_name"), Route(users=("nobody",))], ids=repr)
def test_a_route_must_read_ids(route: Route) -> None:
    """Rooms are named by ids: a row routing by any other field fails when the catalogue loads."""
    with pytest.raises(TypeError, match="must hold a UUID"):
        Entry(project.ProjectUpdated, route)


def test_an_event_goes_to_each_of_its_rooms_once() -> None:
    user = "6f1c2a52-8f0e-4f4e-9d7e-2b1d7b0c9a11"
    route = Route(project="project_id", users=("updated_by", "deleted_by"))
    assert route.rooms({"project_id": None, "updated_by": user, "deleted_by": user}) == (f"user:{user}",)
