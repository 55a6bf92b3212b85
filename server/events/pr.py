"""Pull request events, emitted by the GitHub service."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field

from swe_realtime.events._examples import PR_ID, PROJECT_ID
from swe_realtime.events._types import EventData, HttpUrlText, Name, Text, Title, UtcDatetime, examples
from swe_realtime.events.envelope import Envelope, source_field

GITHUB_SOURCE = "github_service"
PR_EXAMPLE = {"pr_id": PR_ID, "project_id": PROJECT_ID, "title": "Fix: Improve error handling in API routes"}


class PrStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    MERGED = "merged"


class PrData(EventData):
    """Fields every pull request event carries."""

    pr_id: UUID = Field(description="The pull request.")
    project_id: UUID = Field(description="The project whose repository it belongs to.")
    title: Title = Field(description="The pull request's title (after the change, if it changed).")


class PrCreatedData(PrData):
    model_config = examples(
        {
            **PR_EXAMPLE,
            "description": "This PR improves error handling across API routes...",
            "author": "john-doe",
            "branch": "feature/improve-error-handling",
            "github_url": "https://github.com/user/project/pull/42",
            "status": "open",
            "created_at": "2024-11-08T10:30:00.000Z",
        }
    )

    description: Text | None = Field(default=None, description="Its body.")
    author: Name = Field(description="The GitHub login of its author.")
    branch: Name = Field(description="The branch it merges from.")
    github_url: HttpUrlText = Field(description="Its page on GitHub.")
    status: PrStatus = Field(default=PrStatus.OPEN, description="Its state.")
    created_at: UtcDatetime = Field(description="When it was opened.")


class PrCreated(Envelope[PrCreatedData]):
    """A pull request was opened. Rooms: project:<project_id>."""

    type: Literal["pr.created"] = "pr.created"
    source: str = source_field(GITHUB_SOURCE)


class PrUpdatedData(PrData):
    model_config = examples(
        {
            **PR_EXAMPLE,
            "status": "merged",
        }
    )

    status: PrStatus = Field(description="Its state after the update.")
    description: Text | None = Field(default=None, description="Its body, when it changed.")
    updated_at: UtcDatetime | None = Field(default=None, description="When it changed.")


class PrUpdated(Envelope[PrUpdatedData]):
    """A pull request changed (title, body, state). Rooms: project:<project_id>."""

    type: Literal["pr.updated"] = "pr.updated"
    source: str = source_field(GITHUB_SOURCE)


class PrClosedData(PrData):
    model_config = examples(
        {
            **PR_EXAMPLE,
            "merged": True,
            "closed_by": "jane-doe",
            "closed_at": "2024-11-08T12:00:00.000Z",
        }
    )

    merged: bool = Field(description="True if it was merged, false if closed unmerged.")
    closed_by: Name | None = Field(default=None, description="The GitHub login of who closed or merged it.")
    closed_at: UtcDatetime = Field(description="When it was closed.")


class PrClosed(Envelope[PrClosedData]):
    """A pull request was closed, merged or not. Rooms: project:<project_id>."""

    type: Literal["pr.closed"] = "pr.closed"
    source: str = source_field(GITHUB_SOURCE)
