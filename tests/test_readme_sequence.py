"""The README's command sequence serves real recommendations: `course data`, `apply`, `materialize`
(default end), `train`, `serve`, then `POST /recommendations` uses stored features, not nulls.

It runs the real commands on the local profile (small data) in its own work folder: `serve` as a
real process (course_lib.background), `data`, `apply`, `train` and `materialize` as the same
`cli.main` in the test's process (support.course_in_process: a `course` process each cost 5-10 s of
Feast imports; tests/test_cli_errors.py shows what a real process adds). Without the data clock (an
end of now) every `features_used` value is null: `test_an_end_of_now_serves_nulls` runs that case
too, so the first test is shown to be able to fail.
"""
from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest
from support import course_in_process, isolated_env

from course_lib import background, datasets
from course_lib.config import Profile, resolve_profile
from course_lib.dataclock import data_end

SMALL = ["--users", "200", "--movies", "80", "--events", "6000", "--days", "30"]


def course(profile: Profile, *args: str) -> None:
    """Run one README command in this process; fail if it fails (pytest shows what it printed)."""
    result = course_in_process(None, {**isolated_env(profile.workdir), **profile.env()}, *args,
                               "--profile", profile.name)
    assert result.returncode == 0, args


def recommend(profile: Profile) -> dict:
    """Run the README's steps up to `course serve` and POST one recommendation request for the busiest user."""
    events = datasets.load(profile.raw_dir).watch_events
    user = int(events["user_id"].value_counts().index[0])
    movies = [int(m) for m in events.loc[events["user_id"] == user, "movie_id"].unique()[:10]]
    with background.start_course_api(profile, profile.repo_dir / "logs" / "api.log") as api:
        response = httpx.post(f"{api.url}/recommendations", json={"user_id": user, "movie_ids": movies, "k": 10},
                              timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """`course data`, `apply` and `train` on the local profile in a fresh work folder."""
    profile = resolve_profile("local", isolated_env(tmp_path_factory.mktemp("readme"),
                                                    FEAST_PROJECT="course_test_readme"))
    course(profile, "data", *SMALL)
    course(profile, "apply")
    course(profile, "train")
    return profile


def test_the_readme_sequence_serves_features(trained: Profile) -> None:
    course(trained, "materialize")
    body = recommend(trained)
    newest = max(datasets.load(trained.raw_dir).watch_events["event_timestamp"])
    as_of = pd.Timestamp(body["features_as_of"])
    assert as_of == pd.Timestamp(data_end(trained)) and as_of - newest <= pd.Timedelta(days=1), body
    used = [r["features_used"] for r in body["recommendations"]]
    assert used and all(u["avg_rating"] is not None and u["vote_average"] is not None for u in used), used
    assert any(u["watch_count"] is not None for u in used), used  # the user watched every candidate


def test_an_end_of_now_serves_nulls(trained: Profile) -> None:
    """The wall clock (`--end now`) puts every value past its TTL: the failure the data clock prevents."""
    course(trained, "materialize", "--end", "now")
    used = [r["features_used"] for r in recommend(trained)["recommendations"]]
    assert used and all(value is None for u in used for value in u.values()
                        if not isinstance(value, bool)), used


def test_the_data_clock_is_one_second_after_the_newest_offline_event(trained: Profile) -> None:
    tables = {view: pd.read_parquet(trained.offline_location(view)) for view in
              ("user_profile_features", "movie_metadata_features", "user_movie_interaction_features")}
    newest = max(table["event_timestamp"].max() for table in tables.values())
    assert pd.Timestamp(data_end(trained)) == newest + pd.Timedelta(seconds=1)


def test_the_readme_documents_the_default_end() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "`--end` defaults to the data's own present" in readme and "`--end now` uses the wall clock" in readme
