"""Workflow events, emitted by the workflow service as a workflow runs."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from swe_realtime.events._examples import PROJECT_ID, USER_ID, WORKFLOW_ID
from swe_realtime.events._types import Count, EventData, Name, Text, WholePercent, empty, examples
from swe_realtime.events.envelope import Envelope, source_field

WORKFLOW_SOURCE = "workflow_service"


class WorkflowStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class WorkflowData(EventData):
    """Fields every workflow event carries."""

    workflow_id: UUID = Field(description="The workflow run.")
    project_id: UUID | None = Field(
        default=None, description="The project it runs for; without one the event goes to 'global'."
    )


class WorkflowProgressData(WorkflowData):
    model_config = examples(
        {
            "workflow_id": WORKFLOW_ID,
            "project_id": PROJECT_ID,
            "status": "running",
            "progress": 45,
            "current_step": "Analyzing code structure",
            "total_steps": 10,
            "estimated_time_remaining": 120,
            "logs": ["Starting workflow execution", "Cloning repository", "Analyzing code structure"],
            "errors": [],
        }
    )

    status: WorkflowStatus = Field(description="Where the run stands.")
    progress: WholePercent = Field(description="Completion in percent (0-100).")
    current_step: Text | None = Field(default=None, description="What the run is doing now.")
    total_steps: Count | None = Field(default=None, description="How many steps the run has.")
    estimated_time_remaining: Count | None = Field(default=None, description="Seconds until done, estimated.")
    logs: list[Text] = empty(list, max_length=1000, description="Recent log lines, oldest first.")
    errors: list[Text] = empty(list, max_length=1000, description="Errors so far.")


class WorkflowProgress(Envelope[WorkflowProgressData]):
    """Progress of a running workflow. Rooms: project:<project_id> if given, else global."""

    type: Literal["workflow.progress"] = "workflow.progress"
    source: str = source_field(WORKFLOW_SOURCE)


class WorkflowStartedData(WorkflowData):
    model_config = examples(
        {
            "workflow_id": WORKFLOW_ID,
            "project_id": PROJECT_ID,
            "workflow_name": "Code review",
            "total_steps": 10,
            "started_by": USER_ID,
        }
    )

    workflow_name: Name = Field(description="What kind of workflow this is.")
    total_steps: Count | None = Field(default=None, description="How many steps the run has.")
    started_by: UUID | None = Field(default=None, description="The user who started it, if a user did.")


class WorkflowStarted(Envelope[WorkflowStartedData]):
    """A workflow run started. Rooms: project:<project_id> if given, else global."""

    type: Literal["workflow.started"] = "workflow.started"
    source: str = source_field(WORKFLOW_SOURCE)


class WorkflowCompletedData(WorkflowData):
    model_config = examples(
        {
            "workflow_id": WORKFLOW_ID,
            "project_id": PROJECT_ID,
            "duration_seconds": 312.5,
            "result": {"pull_request": "https://github.com/user/project/pull/42", "files_changed": 7},
        }
    )

    duration_seconds: float = Field(ge=0, description="How long the run took.")
    result: dict[str, Any] = empty(dict, description="What the run produced; its shape is the workflow's.")


class WorkflowCompleted(Envelope[WorkflowCompletedData]):
    """A workflow run finished successfully. Rooms: project:<project_id> if given, else global."""

    type: Literal["workflow.completed"] = "workflow.completed"
    source: str = source_field(WORKFLOW_SOURCE)


class WorkflowFailedData(WorkflowData):
    model_config = examples(
        {
            "workflow_id": WORKFLOW_ID,
            "project_id": PROJECT_ID,
            "error": "Repository clone failed: authentication required",
            "failed_step": "Cloning repository",
            "duration_seconds": 4.2,
        }
    )

    error: Text = Field(min_length=1, description="Why the run failed.")
    failed_step: Text | None = Field(default=None, description="The step that failed.")
    duration_seconds: float | None = Field(default=None, ge=0, description="How long the run lasted.")


class WorkflowFailed(Envelope[WorkflowFailedData]):
    """A workflow run failed. Rooms: project:<project_id> if given, else global."""

    type: Literal["workflow.failed"] = "workflow.failed"
    source: str = source_field(WORKFLOW_SOURCE)
