"""AI events, emitted by the AI dock service when it has something to say about code."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from swe_realtime.events._examples import PR_ID, PROJECT_ID
from swe_realtime.events._types import Count, EventData, Name, Text, Title, empty, examples
from swe_realtime.events.envelope import Envelope, source_field

AI_SOURCE = "ai_dock_service"


class TargetType(StrEnum):
    ISSUE = "issue"
    PR = "pr"
    CODE = "code"


class SuggestionCategory(StrEnum):
    OPTIMIZATION = "optimization"
    REFACTOR = "refactor"
    BUG_FIX = "bug_fix"
    SECURITY = "security"
    PERFORMANCE = "performance"
    MAINTAINABILITY = "maintainability"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AiData(EventData):
    """Fields every AI event carries."""

    project_id: UUID | None = Field(
        default=None, description="The project concerned; without one the event goes to 'global'."
    )
    target_type: TargetType = Field(description="What kind of thing was analysed.")
    target_id: Name = Field(description="Its id (a PR or issue UUID, or a code location).")


class AiSuggestionData(AiData):
    model_config = examples(
        {
            "suggestion_id": "bb0e8400-e29b-41d4-a716-446655440006",
            "project_id": PROJECT_ID,
            "target_type": "pr",
            "target_id": PR_ID,
            "category": "optimization",
            "title": "Reduce complexity in error handling",
            "description": "Cyclomatic complexity is 12; consider smaller functions.",
            "severity": "warning",
            "confidence": 0.92,
            "suggested_action": "Refactor function into smaller utilities",
            "metadata": {
                "function_name": "handle_request",
                "line_number": 125,
                "complexity_score": 12,
            },
        }
    )

    suggestion_id: UUID = Field(description="The suggestion.")
    category: SuggestionCategory = Field(description="What kind of improvement it is.")
    title: Title = Field(description="A one-line summary.")
    description: Text = Field(description="The explanation.")
    severity: Severity = Field(description="How much it matters.")
    confidence: float = Field(ge=0, le=1, description="How sure the model is (0-1).")
    suggested_action: Text | None = Field(default=None, description="What to do about it.")
    metadata: dict[str, Any] = empty(dict, description="Details specific to the analysis.")


class AiSuggestion(Envelope[AiSuggestionData]):
    """An AI suggestion for an issue, PR or code. Rooms: project:<project_id> if given, else global."""

    type: Literal["ai.suggestion"] = "ai.suggestion"
    source: str = source_field(AI_SOURCE)


class AiAnalysisCompleteData(AiData):
    model_config = examples(
        {
            "analysis_id": "cc0e8400-e29b-41d4-a716-446655440007",
            "project_id": PROJECT_ID,
            "target_type": "pr",
            "target_id": PR_ID,
            "summary": "3 suggestions: 1 security, 2 maintainability",
            "suggestion_count": 3,
            "duration_seconds": 18.4,
        }
    )

    analysis_id: UUID = Field(description="The analysis run.")
    summary: Text = Field(description="What the analysis found, in a sentence.")
    suggestion_count: Count = Field(description="How many ai.suggestion events it produced.")
    duration_seconds: float | None = Field(default=None, ge=0, description="How long it took.")


class AiAnalysisComplete(Envelope[AiAnalysisCompleteData]):
    """An AI analysis finished. Rooms: project:<project_id> if given, else global."""

    type: Literal["ai.analysis_complete"] = "ai.analysis_complete"
    source: str = source_field(AI_SOURCE)
