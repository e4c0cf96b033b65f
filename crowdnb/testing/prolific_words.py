"""The fake Prolific's vocabulary: paths, rejection categories, study fields, ids and times, refusals."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

API = "/api/v1/"
CATEGORIES = {
    "BAD_CODE", "FAILED_CHECK", "FAILED_INSTRUCTIONS", "INCOMP_LONGITUDINAL", "LOW_EFFORT", "MALINGERING",
    "NO_CODE", "NO_DATA", "OTHER", "TOO_QUICKLY", "TOO_SLOWLY", "UNSUPP_DEVICE",
}  # fmt: skip
TAKES_PLACE = ("RESERVED", "ACTIVE", "AWAITING REVIEW", "APPROVED")
PENDING = ("RESERVED", "ACTIVE", "AWAITING REVIEW")
STUDY_FIELDS = (
    "name", "internal_name", "description", "external_study_url", "prolific_id_option", "completion_codes",
    "total_available_places", "estimated_completion_time", "maximum_allowed_time", "reward", "filters",
    "project", "device_compatibility", "peripheral_requirements",
)  # fmt: skip
REQUIRED = ("name", "description", "external_study_url", "estimated_completion_time", "reward",
            "total_available_places", "completion_codes", "prolific_id_option")  # fmt: skip


class Refused(Exception):
    """A request (or a test control) the real platform would refuse; becomes a 4xx JSON error."""

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.detail, self.status = detail, status


def new_id() -> str:
    return secrets.token_hex(12)  # Prolific ids are 24 hex characters


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
