"""Project events, emitted by the project service."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from swe_realtime.events._examples import PROJECT_ID, USER_ID
from swe_realtime.events._types import EventData, HttpUrlText, Name, empty, examples
from swe_realtime.events.envelope import Envelope, source_field

PROJECT_SOURCE = "project_service"


class ProjectChanges(EventData):
    """What an update changed."""

    status: str = Field(max_length=100, description="Kind of change, e.g. 'updated'.")
    fields: list[Name] = empty(list, max_length=100, description="Names of the fields that changed.")


class ProjectUpdatedData(EventData):
    model_config = examples(
        {
            "project_id": PROJECT_ID,
            "project_name": "AI Agent Framework",
            "repository_url": "https://github.com/user/ai-agent-framework",
            "status": "active",
            "updated_by": USER_ID,
            "changes": {"status": "updated", "fields": ["status", "description"]},
        }
    )

    project_id: UUID = Field(description="The project that changed.")
    project_name: Name = Field(description="Its display name after the change.")
    repository_url: HttpUrlText | None = Field(default=None, description="Its source repository.")
    status: str = Field(max_length=100, description="Its lifecycle status after the change, e.g. 'active'.")
    updated_by: UUID = Field(description="The user who made the change.")
    changes: ProjectChanges = Field(description="What changed.")


class ProjectUpdated(Envelope[ProjectUpdatedData]):
    """A project's attributes changed. Rooms: project:<project_id>, user:<updated_by>."""

    type: Literal["project.updated"] = "project.updated"
    source: str = source_field(PROJECT_SOURCE)


class ProjectDeletedData(EventData):
    model_config = examples(
        {
            "project_id": PROJECT_ID,
            "deleted_by": USER_ID,
        }
    )

    project_id: UUID = Field(description="The project that was deleted.")
    deleted_by: UUID = Field(description="The user who deleted it.")


class ProjectDeleted(Envelope[ProjectDeletedData]):
    """A project was deleted. Rooms: project:<project_id>, user:<deleted_by>."""

    type: Literal["project.deleted"] = "project.deleted"
    source: str = source_field(PROJECT_SOURCE)
