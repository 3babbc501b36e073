"""Every learner-facing message in English and Korean; `course_lib.messages.say` renders them in the learner's
language. One data module per concern: `checks_*` for the exercise checks (one per checks module), `errors_*`
for the expected failures the `course` command line and the course's tools print as one line (one per area).

A key's first part names the module that says it: `common.not_done` is said in course_lib/checks/common.py,
`diagnose.pg_unreachable` in course_lib/diagnose.py. A module holds every key of the namespaces it covers."""
from __future__ import annotations

from collections.abc import Mapping

from course_lib.catalog import (
    checks_common,
    checks_completion_criteria,
    checks_data_sources,
    checks_feast_setup,
    checks_feedback_loop,
    checks_monitoring,
    checks_optimization,
    checks_realtime_features,
    checks_realtime_serving,
    checks_scale_out,
    errors_cli,
    errors_data,
    errors_edition,
    errors_model,
    errors_services,
)
from course_lib.catalog.message import Message

__all__ = ["CATALOG", "MODULES", "Message"]

MODULES = (checks_common, checks_completion_criteria, checks_data_sources, checks_feast_setup, checks_feedback_loop,
           checks_monitoring, checks_optimization, checks_realtime_features, checks_realtime_serving, checks_scale_out,
           errors_cli, errors_data, errors_edition, errors_model, errors_services)
CATALOG: Mapping[str, Message] = {key: message for module in MODULES for key, message in module.MESSAGES.items()}
