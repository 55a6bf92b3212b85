"""Issue events, emitted by the GitHub service."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field

from swe_realtime.events._examples import ISSUE_ID, PROJECT_ID, USER_ID
from swe_realtime.events._types import EventData, Text, Title, UtcDatetime, examples
from swe_realtime.events.envelope import Envelope, source_field

GITHUB_SOURCE = "github_service"
ISSUE_EXAMPLE = {
    "issue_id": ISSUE_ID,
    "project_id": PROJECT_ID,
    "title": "Support for async/await syntax",
    "description": "Add support for async/await syntax in code analysis",
    "assigned_to": USER_ID,
}


class IssueStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"
    BLOCKED = "blocked"


class IssuePriority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class IssueData(EventData):
    """Fields every issue event carries."""

    issue_id: UUID = Field(description="The issue.")
    project_id: UUID = Field(description="The project it belongs to.")
    title: Title = Field(description="The issue's title.")
    description: Text | None = Field(default=None, description="The issue's body.")
    assigned_to: UUID | None = Field(
        default=None, description="The user it is assigned to; they are notified."
    )


class IssueCreatedData(IssueData):
    model_config = examples(
        {
            **ISSUE_EXAMPLE,
            "status": "open",
            "priority": "medium",
            "created_at": "2024-11-08T09:00:00.000Z",
        }
    )

    status: IssueStatus = Field(default=IssueStatus.OPEN, description="Its state.")
    priority: IssuePriority = Field(default=IssuePriority.MEDIUM, description="How urgent it is.")
    created_at: UtcDatetime = Field(description="When it was opened.")


class IssueCreated(Envelope[IssueCreatedData]):
    """An issue was opened. Rooms: project:<project_id>, user:<assigned_to> when assigned."""

    type: Literal["issue.created"] = "issue.created"
    source: str = source_field(GITHUB_SOURCE)


class IssueUpdatedData(IssueData):
    model_config = examples(
        {
            **ISSUE_EXAMPLE,
            "status": "in_progress",
            "priority": "high",
            "updated_at": "2024-11-08T10:30:00.000Z",
        }
    )

    status: IssueStatus = Field(description="Its state after the update.")
    priority: IssuePriority = Field(description="Its priority after the update.")
    updated_at: UtcDatetime = Field(description="When it changed.")


class IssueUpdated(Envelope[IssueUpdatedData]):
    """An issue changed. Rooms: project:<project_id>, user:<assigned_to> when assigned."""

    type: Literal["issue.updated"] = "issue.updated"
    source: str = source_field(GITHUB_SOURCE)


class IssueClosedData(IssueData):
    model_config = examples(
        {
            **ISSUE_EXAMPLE,
            "closed_by": USER_ID,
            "closed_at": "2024-11-09T16:00:00.000Z",
            "resolution": "Implemented in PR #42",
        }
    )

    closed_by: UUID | None = Field(default=None, description="The user who closed it.")
    closed_at: UtcDatetime = Field(description="When it was closed.")
    resolution: Text | None = Field(default=None, description="How it was resolved.")


class IssueClosed(Envelope[IssueClosedData]):
    """An issue was closed. Rooms: project:<project_id>, user:<assigned_to> when assigned."""

    type: Literal["issue.closed"] = "issue.closed"
    source: str = source_field(GITHUB_SOURCE)
