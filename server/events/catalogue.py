"""The catalogue: for every publishable event, its model and the rooms it goes to.

One table, read by the broadcaster (to route), the HTTP endpoint (to validate by ``type``)
and codegen (to document channels, and to write the Broadcaster's typed ``broadcast_*``
methods). Adding an event is one model and one row here, then ``just codegen``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

from swe_realtime.events import agent, ai, issue, pr, project, workflow
from swe_realtime.events.envelope import Envelope
from swe_realtime.events.rooms import GLOBAL, RoomKind


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

    def rooms(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        """The names of the event's rooms, from its ``data`` (the model's fields, or as sent:
        an id, a UUID or its canonical text, reads the same in a room's name), each room once."""
        project_id = data.get(self.project) if self.project is not None else None
        names = [f"{_PROJECT}{project_id}"] if project_id is not None else []
        names += [f"{_USER}{user}" for user in (data.get(f) for f in self.users) if user is not None]
        agent_id = data.get(self.agent) if self.agent is not None else None
        if agent_id is not None:
            names.append(f"{_AGENT}{agent_id}")
        if self.global_room is Global.ALWAYS or (self.global_room is Global.FALLBACK and project_id is None):
            names.append(_GLOBAL)
        return tuple(dict.fromkeys(names))  # one room once, even if two fields name it

    def fields(self) -> tuple[str, ...]:
        """The data fields the rooms are read from."""
        return tuple(name for name in (self.project, *self.users, self.agent) if name is not None)


_PROJECT, _USER, _AGENT = (f"{kind.value}:" for kind in (RoomKind.PROJECT, RoomKind.USER, RoomKind.AGENT))
_GLOBAL = str(GLOBAL)


@dataclass(frozen=True)
class Entry:
    """A publishable event: its model and its route; ``type`` and ``name`` (on the wire) are
    read from the model once, here."""

    event: type[Envelope[Any]]
    route: Route
    type: str = field(init=False)
    name: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", self.event.event_type())
        object.__setattr__(self, "name", self.event.event_name())
        fields = self.event.data_model().model_fields
        for name in self.route.fields():
            if name not in fields or fields[name].annotation not in (UUID, UUID | None):
                raise TypeError(f"{self.event.__name__}: routing field {name!r} must hold a UUID")


_PROJECT_OR_GLOBAL = Route(project="project_id", global_room=Global.FALLBACK)
_AGENT_AND_GLOBAL = Route(agent="agent_id", global_room=Global.ALWAYS)
_PROJECT_AND_ASSIGNEE = Route(project="project_id", users=("assigned_to",))

CATALOGUE: Mapping[str, Entry] = {
    entry.type: entry
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
