"""The exercise checks' messages in English and Korean, one module per checks module; `course_lib.messages.say`
renders them in the learner's language. Keys start with their module's name: `data_sources.avg_wrong`."""
from __future__ import annotations

from collections.abc import Mapping

from course_lib.checks.catalog import (
    common,
    completion_criteria,
    data_sources,
    feast_setup,
    monitoring,
    optimization,
    realtime_features,
    realtime_serving,
    scale_out,
)
from course_lib.checks.catalog.message import Message

__all__ = ["CATALOG", "MODULES", "Message"]

MODULES = (common, completion_criteria, data_sources, feast_setup, monitoring, optimization, realtime_features,
           realtime_serving, scale_out)
CATALOG: Mapping[str, Message] = {key: message for module in MODULES for key, message in module.MESSAGES.items()}
