"""The catalogue: for every publishable event, its model and the rooms it goes to.

One table, read by the broadcaster (to route), the HTTP endpoint (to validate by ``type``)
and codegen (to document channels, and to write the Broadcaster's typed ``broadcast_*``
methods). Adding an event is one model and one row here, then ``just codegen``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from swe_realtime.events import agent, ai, issue, pr, project, workflow
from swe_realtime.events.envelope import Envelope
from swe_realtime.rooms import GLOBAL, Room, RoomKind


class Global(StrEnum):
    """When an event also goes to the ``global`` room."""

    NEVER = "never"
    ALWAYS = "always"
    FALLBACK = "fallback"
    """Only when the event names no project."""


@dataclass(frozen=True)
class Route:
    """The rooms of an event, read from fields of its data; absent (None) fields are skipped."""

    project: str | None = None
    users: tuple[str, ...] = ()
    agent: str | None = None
    global_room: Global = Global.NEVER

    def rooms(self, data: BaseModel) -> tuple[Room, ...]:
        rooms: list[Room] = []
        project_id = _id(data, self.project)
        if project_id is not None:
            rooms.append(Room(RoomKind.PROJECT, project_id))
        rooms += [
            Room(RoomKind.USER, user) for user in (_id(data, f) for f in self.users) if user is not None
        ]
        agent_id = _id(data, self.agent)
        if agent_id is not None:
            rooms.append(Room(RoomKind.AGENT, agent_id))
        if self.global_room is Global.ALWAYS or (self.global_room is Global.FALLBACK and project_id is None):
            rooms.append(GLOBAL)
        return tuple(dict.fromkeys(rooms))  # one room once, even if two fields name it


def _id(data: BaseModel, field: str | None) -> UUID | None:
    value = getattr(data, field) if field is not None else None
    assert value is None or isinstance(value, UUID), f"routing field {field} must hold a UUID"
    return value


@dataclass(frozen=True)
class Entry:
    event: type[Envelope[Any]]
    route: Route


_PROJECT_OR_GLOBAL = Route(project="project_id", global_room=Global.FALLBACK)
_AGENT_AND_GLOBAL = Route(agent="agent_id", global_room=Global.ALWAYS)
_PROJECT_AND_ASSIGNEE = Route(project="project_id", users=("assigned_to",))

CATALOGUE: Mapping[str, Entry] = {
    entry.event.event_type(): entry
    for entry in (
        Entry(project.ProjectUpdated, Route(project="project_id", users=("updated_by",))),
        Entry(project.ProjectDeleted, Route(project="project_id", users=("deleted_by",))),
        Entry(agent.AgentStatusChanged, _AGENT_AND_GLOBAL),
        Entry(agent.AgentConnected, _AGENT_AND_GLOBAL),
        Entry(agent.AgentDisconnected, _AGENT_AND_GLOBAL),
        Entry(workflow.WorkflowProgress, _PROJECT_OR_GLOBAL),
        Entry(workflow.WorkflowStarted, _PROJECT_OR_GLOBAL),
        Entry(workflow.WorkflowCompleted, _PROJECT_OR_GLOBAL),
        Entry(workflow.WorkflowFailed, _PROJECT_OR_GLOBAL),
        Entry(pr.PrCreated, Route(project="project_id")),
        Entry(pr.PrUpdated, Route(project="project_id")),
        Entry(pr.PrClosed, Route(project="project_id")),
        Entry(issue.IssueCreated, _PROJECT_AND_ASSIGNEE),
        Entry(issue.IssueUpdated, _PROJECT_AND_ASSIGNEE),
        Entry(issue.IssueClosed, _PROJECT_AND_ASSIGNEE),
        Entry(ai.AiSuggestion, _PROJECT_OR_GLOBAL),
        Entry(ai.AiAnalysisComplete, _PROJECT_OR_GLOBAL),
    )
}
