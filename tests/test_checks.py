"""The pieces the exercise checks are built from: failures are assertions with the learner's
own error named, and the probe cases really separate right answers from the usual mistakes."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from course_lib import checks, datasets, monitoring, skew
from course_lib.adapter import build_feature_tables, table_dtypes
from feature_repo.definitions import VIEWS


@pytest.fixture(scope="module")
def dataset() -> datasets.Dataset:
    """A small synthetic log."""
    return datasets.synthetic(seed=3, n_users=60, n_movies=30, n_events=2000, days=40)


def test_check_failed_is_an_assertion() -> None:
    assert issubclass(checks.common.CheckFailed, AssertionError)


def test_a_stub_is_reported_as_not_written() -> None:
    def stub(*args):
        raise NotImplementedError("Exercise 9.1: write your solution here")

    with pytest.raises(checks.common.CheckFailed, match="`mine` is not written yet"):
        checks.common.answer(stub, "mine")


def test_errors_in_learner_code_name_the_function_and_the_error() -> None:
    with pytest.raises(checks.common.CheckFailed, match=r"your `mine` raised KeyError: 'user_id'"):
        checks.common.answer(lambda: {}["user_id"], "mine")
    with pytest.raises(checks.common.CheckFailed, match="run the exercise cell first"):
        checks.common.answer(None, "mine")


def test_missing_values_compare_equal_and_numbers_with_float32_tolerance() -> None:
    assert checks.common.same_value(None, float("nan")) and checks.common.same_value(pd.NA, None)
    assert checks.common.same_value(np.float32(3.7), 3.7)
    assert not checks.common.same_value(0.0, None) and not checks.common.same_value(3.7, 3.8)
    assert checks.common.same_value("Drama", "Drama") and not checks.common.same_value("Drama", "Comedy")


def test_durations_are_shown_in_days_or_hours() -> None:
    assert checks.common.show(timedelta(days=1)) == "1 day"
    assert checks.common.show(timedelta(days=7)) == "7 days"
    assert checks.common.show(timedelta(hours=36)) == "36 hours"


def test_tiny_tables_have_every_key_at_both_times_with_distinct_values() -> None:
    tables = checks.common.tiny_tables()
    for view, table in tables.items():
        assert {c: str(t) for c, t in table.dtypes.items()} == table_dtypes(view)
        assert len(table) == len(checks.common.TINY_KEYS[view]) * len(checks.common.TINY_TIMES)
        for field in VIEWS[view][2]:
            assert table[field.name].is_unique, (view, field.name)


def test_interaction_probes_separate_a_one_day_ttl_from_longer_and_shorter_ones() -> None:
    """Some probe gets a row under a 1-day TTL but none under 1 hour, and one the other way round for 7 days."""
    table = checks.common.tiny_tables()["user_movie_interaction_features"]
    probes = [{"user_id": u, "movie_id": m, "event_timestamp": t} for u, m, t in checks.feast_setup.INTERACTION_PROBES]

    def found(ttl: timedelta) -> list[bool]:
        return [checks.common.pit_expected(table, ["movie_id", "user_id"], p, ttl) is not None for p in probes]

    day = found(timedelta(days=1))
    assert day != found(timedelta(days=7)) and day != found(timedelta(hours=1))
    by_user_only = [checks.common.pit_expected(table, ["user_id"], p, timedelta(days=1)) is not None for p in probes]
    assert day != by_user_only  # a view keyed by user alone answers differently


def test_avg_rating_cases_catch_the_usual_mistakes(dataset) -> None:
    """Including the event at as_of, counting unrated events as 0 and peeking ahead each change some answer."""
    events = dataset.watch_events
    cases = checks.data_sources.avg_rating_cases(events)

    def answers(select) -> list[float]:
        return [select(events[events["user_id"] == user], at) for user, at in cases]

    right = answers(lambda mine, at: mine.loc[mine["event_timestamp"] <= at, "rating"].mean())
    mistakes = {
        "strict": answers(lambda mine, at: mine.loc[mine["event_timestamp"] < at, "rating"].mean()),
        "zeros": answers(lambda mine, at: mine.loc[mine["event_timestamp"] <= at, "rating"].fillna(0).mean()),
        "future": answers(lambda mine, at: mine["rating"].mean()),
    }
    avg = checks.data_sources._avg_rating
    assert all(checks.common.same_value(value, avg(events, user, at)) for value, (user, at) in zip(right, cases))
    for name, values in mistakes.items():
        caught = not all(checks.common.same_value(a, b) for a, b in zip(values, right))
        assert caught, f"no case catches the {name} mistake"
    assert any(np.isnan(value) for value in right), "no case expects NaN"


def test_pit_probes_cover_the_edges_in_random_order(dataset) -> None:
    table = build_feature_tables(dataset)["user_profile_features"]
    ttl = VIEWS["user_profile_features"][1]
    probes = checks.data_sources.pit_probes(table, ttl)
    assert not probes["event_timestamp"].is_monotonic_increasing
    outcomes = {"none": 0, "exact": 0, "expired": 0}
    for _, probe in probes.iterrows():
        row = checks.common.pit_expected(table, ["user_id"], probe, ttl)
        earlier = checks.common.pit_expected(table, ["user_id"], probe, timedelta(0))
        outcomes["none"] += earlier is None
        outcomes["exact"] += row is not None and row["event_timestamp"] == probe["event_timestamp"]
        outcomes["expired"] += row is None and earlier is not None
    assert all(outcomes.values()), outcomes


def test_ndcg_cases_have_no_score_ties_and_include_nothing_relevant() -> None:
    cases = checks.realtime_serving.ndcg_cases()
    assert all(len(set(scores)) == len(scores) >= 2 for _, scores, _ in cases)
    assert any(not any(relevance) for relevance, _, _ in cases)
    assert any(k > len(relevance) for relevance, _, k in cases)
    assert any(max(relevance) > 1 for relevance, _, _ in cases if relevance)


def test_candidates_mix_watched_unwatched_and_unknown_movies(dataset) -> None:
    tables = build_feature_tables(dataset)
    interactions, movies = tables["user_movie_interaction_features"], tables["movie_metadata_features"]
    user = int(interactions["user_id"].value_counts().index[0])
    candidates = checks.realtime_serving.candidate_list(interactions, movies, user)
    watched = set(interactions.loc[interactions["user_id"] == user, "movie_id"])
    assert len(candidates) == len(set(candidates)) == 6
    assert sum(m in watched for m in candidates) == 3
    assert sum(m not in set(movies["movie_id"]) for m in candidates) == 1


def test_metrics_text_holds_the_request_mix_and_separates_the_usual_mistakes() -> None:
    text = checks.monitoring.metrics_text()
    frame = monitoring.parse_metrics(text)
    counted = monitoring.sample_values(frame, "course_requests_total", ["endpoint", "status"])
    assert {(e, str(s)): n for (e, s), n in checks.monitoring.REQUEST_MIX.items()} == counted.to_dict()
    endpoints = {endpoint for endpoint, _ in checks.monitoring.REQUEST_MIX}
    requests = checks.monitoring._requests
    assert checks.monitoring.UNREQUESTED not in endpoints and requests(text, checks.monitoring.UNREQUESTED) == 0
    assert any(requests(text, e, "200") != requests(text, e) for e in endpoints)
    assert all(requests(text, None) != requests(text, e) for e in endpoints)


def test_invalidation_cases_catch_the_usual_mistakes() -> None:
    """Every partial rule drops the wrong views in some case; some case drops nothing."""
    rules = {
        "forward only":
            lambda p, c: {v for v, end in c.items() if end is not None and (p.get(v) is None or end > p[v])},
        "ignores a first materialization":
            lambda p, c: {v for v, end in p.items() if end is not None and end != c.get(v)},
        "shared views only": lambda p, c: {v for v in p.keys() & c.keys() if p[v] != c[v]},
    }
    cases = checks.optimization.INVALIDATION_CASES
    for name, rule in rules.items():
        assert any(rule(p, c) != checks.optimization._to_drop(p, c) for _, p, c in cases), f"no case catches '{name}'"
    assert any(not checks.optimization._to_drop(p, c) for _, p, c in cases)


# --- notebook 08 -----------------------------------------------------------------------------------

def test_merge_watch_times_accepts_the_solution_and_catches_an_in_order_only_answer(capsys) -> None:
    def right(latest, previous, at):
        if latest is None or at > latest:
            return at, latest
        return latest, at if previous is None or at > previous else previous

    checks.merge_watch_times(right)
    assert "✓ merge_watch_times" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match="older watch can still become the previous"):
        checks.merge_watch_times(lambda latest, previous, at: (at, latest) if latest is None or at > latest
                                 else (latest, previous))


def test_favorite_genre_accepts_the_solution_and_catches_wrong_tie_breaks(capsys) -> None:
    checks.favorite_genre(lambda counts: min(counts, key=lambda g: (-counts[g], g)) if counts else None)
    assert "✓ favorite_genre" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match="ties go to the alphabetically first"):
        checks.favorite_genre(lambda counts: max(counts, key=lambda g: (counts[g], g)) if counts else None)


# --- notebook 09 -----------------------------------------------------------------------------------

def _label(log, ratings, horizon, start="features_as_of"):
    """The solution of exercise 9.1, its window starting at `start`."""
    joined = log.merge(ratings, on=["user_id", "movie_id"])
    after = joined["event_timestamp"] - joined[start]
    first = (joined[(after > pd.Timedelta(0)) & (after <= horizon)].sort_values("event_timestamp")
             .drop_duplicates(["__request_id", "movie_id"]))
    return first.assign(label=(first["rating"] >= 4).astype(int))


def test_label_log_accepts_the_solution_and_catches_the_log_timestamp(capsys) -> None:
    checks.label_log(_label)
    assert "✓ label_log" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match="not at __log_timestamp"):
        checks.label_log(lambda log, ratings, horizon: _label(log, ratings, horizon, start="__log_timestamp"))


def test_label_cases_each_separate_one_mistake_from_the_solution() -> None:
    """Each named case's rows differ between the solution and the mistake its hint names (else the hint lies)."""
    from course_lib.checks import feedback_loop

    day = pd.Timedelta(days=1)
    mistakes = {
        "feedback_loop.hint_served_moment": lambda log, r: _label(log, r, day, start="__log_timestamp"),
        "feedback_loop.hint_strictly_after": lambda log, r: _label(log.assign(features_as_of=log["features_as_of"]
                                                                              - pd.Timedelta(microseconds=1)), r, day),
        "feedback_loop.hint_horizon": lambda log, r: _label(log, r, day - pd.Timedelta(microseconds=1)),
    }
    for log, ratings, hint in feedback_loop._label_cases():
        if hint in mistakes:
            assert feedback_loop._labels(log, ratings, day) != sorted(
                (str(a), int(b), int(c)) for a, b, c in mistakes[hint](log, ratings)[
                    ["__request_id", "movie_id", "label"]].itertuples(index=False)), hint


def test_count_mismatches_accepts_the_solution_and_catches_nan_against_nan(capsys) -> None:
    def right(served, expected):
        a, b = served.to_numpy(float), expected.to_numpy(float)
        return int((~(np.isclose(a, b, rtol=skew.RTOL, atol=skew.ATOL) | (np.isnan(a) & np.isnan(b)))).sum())

    checks.count_mismatches(right)
    assert "✓ count_mismatches" in capsys.readouterr().out
    with pytest.raises(checks.CheckFailed, match="missing on both sides is a match"):
        checks.count_mismatches(lambda served, expected: int((served != expected).sum()))
    assert checks.feedback_loop._mismatches([1.0, np.nan, np.nan, 0.1 + 0.2], [1.5, np.nan, 2.0, 0.3]) == 2
