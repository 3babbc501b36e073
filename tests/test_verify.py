"""`course verify`'s table (course_lib.verify): rows judged from figures, N/A on local, the JSON, the CLI's errors.

The figures here are made by hand; the measurements themselves run in `course verify` (speed goals live there)."""
from __future__ import annotations

import json

import pytest

from course_lib import verify
from course_lib.cli import main
from course_lib.verify import FAIL, NA, PASS, Verification, judge


def window(name: str, statuses: dict[str, int], ok: bool, recovery: float | None) -> dict:
    return {"name": name, "start_s": 15.0, "end_s": 20.0, "detail": "", "requests": sum(statuses.values()),
            "statuses": statuses, "in_flight": {}, "expected": [503 if name == "redis" else 200],
            "only_expected": ok, "recovery_s": recovery}


def figures(**changes: object) -> dict:
    """A complete set of figures in which every criterion passes (enterprise)."""
    doc = {"path": "docs/x.md", "exists": True, "lines": 10, "broken_links": [], "unknown_verbs": [],
           "linked_from": ["README.md"], "names_course_verify": True}
    out = {
        "installation": {"checks": 5, "failed": []},
        "definitions": {"views": {"a": 5, "b": 10, "c": 5}, "missing_views": [], "feature_service": True,
                        "entities": ["movie", "user"]},
        "data_sources": {"a": {"rows": 3}, "b": {"rows": 4}, "c": {"rows": 5}},
        "api": {"recommendations_status": 200, "recommended": 10, "features_used_non_null": 5, "features_used": 6,
                "user_features_status": 200, "user_found": "found"},
        "online_offline": {"users": 2, "values_compared": 10, "values_differing": 0},
        "batch_online": {"optimized": {"lookups_per_s": 50_000.0}, "feast_sdk": {"lookups_per_s": 3_000.0}},
        "batch_offline": {"rows": 5000, "seconds": 0.5, "rows_per_s": 10_000.0, "path": "tuned"},
        "schedule": {"ok_runs": 3, "outcomes": ["ok"] * 3, "intervals_added": {"a": 3, "b": 3, "c": 3},
                     "observations": [{"pipeline_age_s": {"a": 100.0}}, {"pipeline_age_s": {"a": 1.0}}]},
        "metrics": {"sent": {"/r 200": 3}, "counted": {"/r 200": 3}, "exact": True},
        "cache": {"hit_rate": 0.8, "hits": 8, "misses": 2, "p50_ms": 0.01, "identical_to_store": True},
        "freshness": {"status": 200, "views": {"a": {"pipeline": "fresh", "data": "fresh"}}, "missing_views": [],
                      "gauges": {"a": 1.0, "b": 1.0, "c": 1.0}},
        "event_to_online": {"n": 100, "p50_ms": 4.0, "p99_ms": 9.0},
        "runbook": {**doc, "alerts": 7, "alerts_without_section": []},
        "operations": doc,
        "soak": {"seconds": 60, "rate": 200, "requests": 12_000, "statuses": {"200": 11_000, "503": 1_000},
                 "outside_requests": 9_000, "outside_ok": 9_000, "availability": 1.0,
                 "windows": [window("redis", {"503": 1000}, True, 0.2), window("postgres", {"200": 2000}, True, 0.1)],
                 "latency": {"recommendations": {"n": 4500, "p50_ms": 3.0, "p99_ms": 8.0},
                             "user_features": {"n": 4500, "p50_ms": 2.0, "p99_ms": 6.0}}},
    }
    out.update(changes)
    return out


def statuses(verification: Verification) -> dict[int, str]:
    return {c["number"]: c["status"] for c in verification.criteria()}


def test_every_criterion_of_the_guide_has_a_row_and_passes_when_its_figures_do() -> None:
    rows = judge("enterprise", figures())
    assert {r.criterion for r in rows} == set(range(1, 16)) == {n for n, *_ in verify.CRITERIA}
    assert all(r.status == PASS for r in rows), [r for r in rows if r.status != PASS]
    assert {r.check for r in rows if r.criterion == 7} == {"batched online lookups", "offline point-in-time rows"}
    assert all(c["ko"] and c["en"] for c in Verification("enterprise", rows, figures()).criteria())


@pytest.mark.parametrize(("change", "criterion"), [
    ({"availability": 0.998}, 11),  # 99.8% < 99.9%
    ({"latency": {"recommendations": {"n": 1, "p50_ms": 3.0, "p99_ms": 10.5},
                  "user_features": {"n": 1, "p50_ms": 2.0, "p99_ms": 6.0}}}, 6),
    ({"windows": [window("redis", {"500": 1, "503": 9}, False, 0.2), window("postgres", {"200": 9}, True, 0.1)]}, 11),
    ({"windows": [window("redis", {"503": 9}, True, 2.5), window("postgres", {"200": 9}, True, 0.1)]}, 11),
    ({"windows": [window("redis", {"503": 9}, True, 0.5)]}, 11),  # the PostgreSQL outage never ran
    ({"requests": 1_000}, 14),  # the load fell far behind 200/s for 60 s
])
def test_a_soak_figure_off_its_goal_fails_its_criterion_and_only_that_one(change: dict, criterion: int) -> None:
    good = figures()
    result = Verification("enterprise", judge("enterprise", figures(soak={**good["soak"], **change})), good)
    failed = {n for n, s in statuses(result).items() if s == FAIL}
    assert failed == {criterion} and not result.passed


def test_a_measurement_that_raised_fails_with_its_error_and_a_missing_one_fails_too() -> None:
    changed = figures(cache={"error": "ConnectionError: refused"})
    del changed["metrics"]
    rows = {r.check: r for r in judge("enterprise", changed)}
    assert rows["cache hit rate"].status == FAIL and rows["cache hit rate"].reason == "ConnectionError: refused"
    assert rows["metrics exact"].status == FAIL and rows["metrics exact"].reason == "not measured"


def test_local_marks_the_outages_not_applicable_and_passes_the_rest() -> None:
    local = figures()
    local["soak"] = {**local["soak"], "windows": []}
    result = Verification("local", judge("local", local), local)
    na = [r for r in result.rows if r.status == NA]
    assert {r.check for r in na} == {"redis outage", "postgres outage", "event to online"}
    assert all(r.reason.startswith(("not applicable to local", "not judged on local")) for r in na)
    assert statuses(result)[11] == PASS and result.passed  # availability applies and passed
    assert "N/A" in verify.format_table(result)


def test_a_document_that_does_not_point_to_course_verify_fails_with_the_reason() -> None:
    doc = {**figures()["operations"], "names_course_verify": False, "broken_links": ["gone.md"]}
    row = next(r for r in judge("enterprise", figures(operations=doc)) if r.criterion == 15)
    assert row.status == FAIL and "broken link gone.md" in row.reason and "course verify" in row.reason


def test_the_json_holds_every_criterion_row_and_figure() -> None:
    result = Verification("enterprise", judge("enterprise", figures()), figures())
    document = json.loads(json.dumps(result.to_json()))
    assert set(document) >= {"profile", "measured_at", "passed", "machine", "criteria", "rows", "figures"}
    assert [c["number"] for c in document["criteria"]] == list(range(1, 16))
    assert document["figures"]["soak"]["windows"][0]["recovery_s"] == 0.2
    assert {"criterion", "check", "method", "figure", "status", "reason"} <= set(document["rows"][0])


def test_the_terminal_table_aligns_korean_text() -> None:
    assert verify.width("가용성 99.9%") == 6 + 6 and verify.width(verify.pad("기준", 8)) == 8


def test_course_verify_rejects_a_short_soak_and_scaleout_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--profile", "local", "--soak-seconds", "5"]) == 2
    assert main(["verify", "--profile", "scaleout"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--soak-seconds must be at least 20" in err[0] and "local and enterprise" in err[1]


@pytest.mark.parametrize(("p99", "status"), [(10.0, PASS), (10.5, FAIL)])
def test_event_to_online_passes_at_the_goal_and_fails_above_it(p99: float, status: str) -> None:
    """Criterion 12 gains the real-time row: p99 from POST /events to the value online, against 10 ms."""
    rows = judge("enterprise", figures(event_to_online={"n": 100, "p50_ms": 4.0, "p99_ms": p99}))
    row = next(r for r in rows if r.check == "event to online")
    assert (row.criterion, row.status) == (12, status) and f"p99 {p99:.1f} ms over 100 events" in row.figure
    assert statuses(Verification("enterprise", rows, figures()))[12] == status


def test_event_to_online_is_shown_but_not_judged_on_local() -> None:
    """On local the SDK and SQLite carry every event: the figure is reported, the 10 ms goal is enterprise's."""
    rows = judge("local", figures(event_to_online={"n": 100, "p50_ms": 20.0, "p99_ms": 70.0}))
    row = next(r for r in rows if r.check == "event to online")
    assert (row.status, row.figure) == (NA, "p50 20.0 ms, p99 70.0 ms over 100 events") and "enterprise" in row.reason
    failed = judge("local", figures(event_to_online={"error": "TimeoutError: event not visible"}))
    assert next(r for r in failed if r.check == "event to online").status == FAIL  # a broken ingest still fails

