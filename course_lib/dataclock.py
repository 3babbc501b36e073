"""The data's own clock: by default `course materialize` ends at the newest event the offline store holds.

The course replays a past log: the synthetic one ends on 2025-04-01. Measured against the wall
clock, every value in it is older than its view's TTL, so a materialization that ends *now*
leaves the API with a serving moment of now and the model with empty features
(docs/troubleshooting.md #17). The course's present is therefore the data's present: the
newest event timestamp written by `course data` (read back from the offline store, the one
record of what was loaded), plus one second so that the newest event is included. The API
scores as of the newest materialization end (`registry_state.RegistryState`), so it follows the same
clock. `course materialize --end now` uses the wall clock instead, as a live pipeline would.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from course_lib.config import ConfigError, Profile
from course_lib.errors import CourseError
from course_lib.messages import say
from course_lib.offline import offline_time_range
from feature_repo.definitions import VIEWS

WALL_CLOCK = "now"  # `--end now`: the wall clock, for live data
PAST_NEWEST = timedelta(seconds=1)  # the end lies just after the newest event, so that event is included


class NoDataError(CourseError):
    """The offline store holds no course data yet; the message says which command writes it."""


def newest_event(profile: Profile) -> datetime:
    """The newest event timestamp in the profile's offline tables (UTC), or NoDataError when there are none."""
    newest = [offline_time_range(profile, view)[1] for view in VIEWS]
    if any(pd.isna(stamp) for stamp in newest):  # an empty table gives NaT
        raise NoDataError(say("dataclock.no_rows", profile=profile.name, project=profile.project))
    return max(newest).to_pydatetime()


def data_end(profile: Profile) -> datetime:
    """The data's present: one second after its newest event (the default materialization end)."""
    return newest_event(profile) + PAST_NEWEST


def wall_clock() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def materialization_end(text: str | None, profile: Profile) -> datetime:
    """`--end`: the data's present when omitted, the wall clock for `now`, else an ISO 8601 time (naive = UTC)."""
    if text is None:
        return data_end(profile)
    if text.strip().lower() == WALL_CLOCK:
        return wall_clock()
    try:
        end = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(say("dataclock.bad_end", text=text, wall_clock=WALL_CLOCK)) from None
    return end.replace(tzinfo=timezone.utc) if end.tzinfo is None else end.astimezone(timezone.utc)
