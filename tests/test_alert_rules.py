"""The alert rules, run by Prometheus's own rule engine: `promtool check rules` validates ops/alert-rules.yml and
`promtool test rules` runs ops/alert-rules.test.yml, where every alert fires on a synthetic series once its `for:`
has passed and stays silent on a healthy one. The series are the ones the course API exports.

The tests that run promtool carry the marker `promtool`. CI (`.ci/run`) installs it (Debian package `prometheus`);
a machine without it fails them, never skips: `sudo apt-get install prometheus`, or leave them out with
`-m "not promtool"` (README, Prerequisites).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from course_lib.config import REPO_ROOT
from course_lib.drift_watch import drift_features
from course_lib.feature_log import OUTCOMES as LOG_OUTCOMES
from course_lib.freshness import FRESHNESS_KINDS, FRESHNESS_STATUSES
from course_lib.health import HEALTH_COMPONENTS
from course_lib.monitoring import DRIFT_STATISTICS, ENTITY_TYPES, FAMILIES, FEATURE_SERVICES
from feature_repo.names import FEATURE_VIEWS

OPS = REPO_ROOT / "ops"
RULES = OPS / "alert-rules.yml"
RULE_TESTS = OPS / "alert-rules.test.yml"
SCRAPE = yaml.safe_load((OPS / "prometheus.yml").read_text())["scrape_configs"][0]
TARGET = {"job": SCRAPE["job_name"], "instance": SCRAPE["static_configs"][0]["targets"][0]}
# Label values the API can export (the rest, e.g. endpoint and status codes, are open-ended).
KNOWN_VALUES = {"component": HEALTH_COMPONENTS, "entity_type": ENTITY_TYPES, "feature_service": tuple(FEATURE_SERVICES),
                "feature_view": FEATURE_VIEWS, "kind": FRESHNESS_KINDS, "feature": tuple(drift_features())}
# Label values one family can export, where the label name alone does not say (`outcome` differs by family).
FAMILY_VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "course_feature_drift": {"statistic": tuple(DRIFT_STATISTICS)},
    "course_feature_log_records_total": {"outcome": LOG_OUTCOMES},
}
INSTALL = ("`sudo apt-get install prometheus` (Debian/Ubuntu), or put promtool from a Prometheus 2.x release "
           "tarball (https://prometheus.io/download/) on PATH")


def alert_rules() -> dict[str, dict]:
    """Alert name -> its rule, from ops/alert-rules.yml."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def rule_tests() -> list[dict]:
    """The test groups of ops/alert-rules.test.yml."""
    return yaml.safe_load(RULE_TESTS.read_text())["tests"]


def seconds(duration: str) -> int:
    """A Prometheus duration such as `5m15s` in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)([smh])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"unsupported duration {duration!r}"
    return sum(int(n) * units[u] for n, u in parts)


def exported_labels() -> dict[str, set[str]]:
    """Sample name -> its label names, for every sample the API exports, plus Prometheus's own `up`."""
    out: dict[str, set[str]] = {"up": set()}
    for family in FAMILIES:
        if family.kind == "histogram":
            out[f"{family.name}_bucket"] = {*family.labels, "le"}
            out.update({f"{family.name}{suffix}": set(family.labels) for suffix in ("_sum", "_count")})
        else:
            out[family.name] = set(family.labels)
    return out


def run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """promtool with these arguments, its output captured."""
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool's path; fails (never skips) when it is not installed."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is not on PATH although CI=true: .ci/run installs it (Debian package "
                        "prometheus) before `make test`; see its output")
        pytest.fail(f"promtool is not installed: {INSTALL}. Without it, leave these tests out with "
                    "`-m \"not promtool\"`")
    return path


@pytest.mark.promtool
def test_promtool_checks_the_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout, result.stdout


@pytest.mark.promtool
def test_promtool_unit_tests_of_every_alert_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


@pytest.mark.promtool
@pytest.mark.parametrize(("alert", "field", "old", "new"), [
    ("CourseErrorRateHigh", "expr", "> 0.01", "> 0.1"),  # 5% of 503s no longer fires
    ("CourseP99LatencyHigh", "expr", "> 0.1", "> 0.09"),  # the just-below case (p99 about 94 ms) fires
    ("CourseApiDown", "for", "1m", "0s"),  # fires while it should still be pending
    ("CourseFeatureDrift", "expr", "== 1", "== 0"),  # fires for the features no report flagged
    ("CourseFeatureDrift", "for", "15m", "10m"),  # a flag of 14 minutes, or one that lapsed for a report, fires
    ("CourseFeatureLogDropping", "expr", '"dropped|failed"', '"dropped"'),  # a failing sink no longer fires
    ("CourseFeatureLogDropping", "expr", "> 0", "> 1"),  # 0.2 dropped records a second no longer fire
    ("CourseFeatureLogDropping", "for", "5m", "3m"),  # one burst of dropped records fires
], ids=["threshold-raised", "threshold-lowered", "for-removed", "drift-inverted", "drift-for-shortened",
        "log-failed-ignored", "log-threshold-raised", "log-for-shortened"])
def test_a_broken_rule_fails_its_unit_tests(promtool: str, tmp_path: Path, alert: str, field: str, old: str,
                                            new: str) -> None:
    """The unit tests can fail: a copy of the rules with one rule changed, beside a copy of the test file
    (whose rule_files are relative to it), makes `promtool test rules` exit non-zero and name that alert.
    `old` is a threshold at the end of the expression, or any text it holds exactly once; a `for` is replaced."""
    groups = yaml.safe_load(RULES.read_text())
    rule = next(rule for group in groups["groups"] for rule in group["rules"] if rule["alert"] == alert)
    if field == "for":
        assert rule[field] == old, rule[field]
        rule[field] = new
    elif rule[field].endswith(old):
        rule[field] = rule[field][: -len(old)] + new
    else:
        assert rule[field].count(old) == 1, rule[field]
        rule[field] = rule[field].replace(old, new)
    (tmp_path / RULES.name).write_text(yaml.safe_dump(groups, sort_keys=False))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    assert run(promtool, "check", "rules", tmp_path / RULES.name).returncode == 0  # still valid, only wrong
    result = run(promtool, "test", "rules", tmp_path / RULE_TESTS.name)
    assert result.returncode != 0, result.stdout
    assert f"alertname: {alert}," in result.stdout + result.stderr, result.stdout + result.stderr


def test_every_alert_is_tested_firing_after_its_for_and_silent_on_a_healthy_series() -> None:
    rules, groups = alert_rules(), rule_tests()
    assert yaml.safe_load(RULE_TESTS.read_text())["rule_files"] == [RULES.name]
    firing: dict[str, list[int]] = {name: [] for name in rules}
    healthy: dict[str, list[str]] = {name: [] for name in rules}
    for group in groups:
        cases = group["alert_rule_test"]
        assert {case["alertname"] for case in cases} <= set(rules), group["name"]
        for case in cases:
            for alert in case.get("exp_alerts") or []:
                assert alert["exp_labels"]["severity"] == rules[case["alertname"]]["labels"]["severity"]
                assert set(alert["exp_annotations"]) == set(rules[case["alertname"]]["annotations"]), group["name"]
                firing[case["alertname"]].append(seconds(case["eval_time"]))
        for name in {case["alertname"] for case in cases}:
            if not any(case.get("exp_alerts") for case in cases if case["alertname"] == name):
                healthy[name].append(group["name"])
    for name, rule in rules.items():
        after_for = [at for at in firing[name] if at >= seconds(rule["for"])]
        assert after_for, f"{name}: no case where it fires after for: {rule['for']}"
        assert healthy[name], f"{name}: no group where it stays silent"


def test_input_series_are_series_the_api_exports() -> None:
    exported = exported_labels()
    buckets = {f"{family.name}_bucket": {*map(floatToGoString, family.buckets), "+Inf"}
               for family in FAMILIES if family.kind == "histogram"}
    series = [item["series"] for group in rule_tests() for item in group["input_series"]]
    assert series
    for text in series:
        [sample] = [s for family in text_string_to_metric_families(f"{text} 0\n") for s in family.samples]
        labels = dict(sample.labels)
        assert sample.name in exported, f"not exported: {text}"
        assert set(labels) == exported[sample.name] | {"job", "instance"}, text
        if sample.name != "up":
            assert {key: labels[key] for key in TARGET} == TARGET, f"not the target of ops/prometheus.yml: {text}"
        for key, allowed in KNOWN_VALUES.items():
            assert labels.get(key, allowed[0]) in allowed, text
        if sample.name == "course_freshness_status":
            assert labels["status"] in FRESHNESS_STATUSES, text
        for key, allowed in FAMILY_VALUES.get(sample.name, {}).items():
            assert labels[key] in allowed, text
        if sample.name in buckets:
            assert labels["le"] in buckets[sample.name], text
