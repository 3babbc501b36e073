"""The ops artefacts (Prometheus config, alert rules, Grafana dashboard, compose services, runbook)
are valid and only name metrics the course API really exports."""
from __future__ import annotations

import json
import re

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from course_lib.config import REPO_ROOT
from course_lib.drift import PSI_DRIFT
from course_lib.health import HEALTH_COMPONENTS
from course_lib.monitoring import Metrics

OPS = REPO_ROOT / "ops"
RUNBOOK = (REPO_ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
# PromQL functions, aggregations and keywords the artefacts may use; any other identifier is a metric.
PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "rate", "increase", "histogram_quantile", "clamp_min",
                "by", "without", "and", "or", "unless", "on", "ignoring", "bool", "offset"}
PROMETHEUS_OWN = {"up"}  # series Prometheus itself records for each scrape target
REQUIRED_ALERTS = {"CoursePipelineStale", "CourseP99LatencyHigh", "CourseErrorRateHigh", "CourseComponentDown",
                   "CourseFeatureDrift", "CourseFeatureLogDropping"}


def exported_series() -> dict[str, str]:
    """Series name -> family type, for every sample name the API's exposition can contain."""
    out = {}
    for family in text_string_to_metric_families(Metrics().render()[0].decode()):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        out.update({family.name + suffix: family.type for suffix in suffixes})
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside strings, label matchers,
    range selectors and `by (...)` clauses that are not PromQL words."""
    stripped = re.sub(r'"[^"]*"', "", expr)
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", stripped)
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", stripped)
    words = set(re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", stripped))
    return words - PROMQL_WORDS


def alert_rules() -> list[dict]:
    """Every rule of the alert-rules file."""
    return [rule for group in yaml.safe_load((OPS / "alert-rules.yml").read_text())["groups"]
            for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the Grafana dashboard."""
    panels = json.loads((OPS / "grafana-dashboard.json").read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_metric_name_extraction_finds_names_and_skips_syntax() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, endpoint) (rate(course_request_duration_seconds_bucket'
            '{endpoint!~"/metrics|/health"}[5m]))) > 0.1 and on (job) up')
    assert metric_names(expr) == {"course_request_duration_seconds_bucket", "up"}


@pytest.mark.parametrize("source", ["alert rules", "dashboard"])
def test_every_metric_named_is_exported(source: str) -> None:
    exprs = [rule["expr"] for rule in alert_rules()] if source == "alert rules" else dashboard_exprs()
    exported = exported_series()
    named = set().union(*(metric_names(expr) for expr in exprs))
    assert named, f"no metric names found in the {source}"
    assert named - PROMETHEUS_OWN <= set(exported), f"not exported: {sorted(named - PROMETHEUS_OWN - set(exported))}"
    for expr in exprs:
        for quantile_of in re.findall(r"histogram_quantile\([^,]+,.*?\((?:rate|increase)\((\w+)", expr):
            assert quantile_of.endswith("_bucket") and exported[quantile_of] == "histogram", expr


def test_prometheus_scrapes_the_course_api_on_loopback() -> None:
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["course-api"]
    assert api["metrics_path"] == "/metrics"
    assert api["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    assert all((OPS / path).is_file() for path in config["rule_files"])
    seconds = {key: int(config["global"][key].rstrip("s")) for key in ("scrape_interval", "scrape_timeout")}
    assert seconds["scrape_timeout"] <= seconds["scrape_interval"]


def test_alert_rules_are_complete_and_link_the_runbook() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)) and REQUIRED_ALERTS <= set(names)
    anchors = {slug(heading) for heading in re.findall(r"^#{2,3} (.+)$", RUNBOOK, re.MULTILINE)}
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "docs/runbook.md" and anchor == rule["alert"].lower() and anchor in anchors, rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_dashboard_shows_rate_latency_errors_and_freshness() -> None:
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    datasource = yaml.safe_load((OPS / "grafana-datasource.yml").read_text())["datasources"][0]
    assert all(p["datasource"]["uid"] == datasource["uid"] for p in panels)
    assert all(t["expr"].count("(") == t["expr"].count(")") for p in panels for t in p["targets"])
    exprs = "\n".join(dashboard_exprs())
    assert "rate(course_requests_total[" in exprs
    for quantile in ("0.5", "0.99"):
        quantile_expr = (f"histogram_quantile({quantile}, sum by (le, endpoint) "
                         "(rate(course_request_duration_seconds_bucket")
        assert quantile_expr in exprs
    assert 'course_requests_total{status=~"5.."}' in exprs
    assert "course_pipeline_freshness_seconds" in exprs and "course_data_freshness_seconds" in exprs
    assert "cache hit-rate panel" in dashboard["description"]  # promised for 2.7.5, not faked now


def panel_showing(panels: list[dict], expr: str) -> dict:
    """The one panel with a target whose expression holds `expr`."""
    [panel] = [p for p in panels if any(expr in t["expr"] for t in p["targets"])]
    return panel


def test_dashboard_shows_drift_against_its_threshold_and_the_served_feature_log() -> None:
    panels = json.loads((OPS / "grafana-dashboard.json").read_text())["panels"]
    drift = panel_showing(panels, 'course_feature_drift{statistic="psi"}')
    assert "{{feature}}" in [t["legendFormat"] for t in drift["targets"]]  # one line per feature
    defaults = drift["fieldConfig"]["defaults"]
    assert defaults["custom"]["thresholdsStyle"]["mode"] in {"line", "dashed", "line+area", "dashed+area"}
    assert [step["value"] for step in defaults["thresholds"]["steps"]][1:] == [PSI_DRIFT]  # drift.py's rule
    log = panel_showing(panels, "sum by (outcome) (rate(course_feature_log_records_total[")
    assert log is panel_showing(panels, "course_feature_log_queue_depth")


def test_dashboard_panels_fit_the_grid_without_overlapping() -> None:
    panels = json.loads((OPS / "grafana-dashboard.json").read_text())["panels"]
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["y"] >= 0 and grid["w"] > 0 and grid["h"] > 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than Grafana's 24 columns"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_monitoring_services_are_optional_pinned_and_loopback_only() -> None:
    main = yaml.safe_load((REPO_ROOT / "docker-compose.feast.yml").read_text())
    assert "ops/docker-compose.monitoring.yml" in main["include"]
    compose = yaml.safe_load((OPS / "docker-compose.monitoring.yml").read_text())
    services = compose["services"]
    assert set(services) == {"prometheus", "grafana"}
    for name, service in services.items():
        assert service["profiles"] == ["monitoring"], name
        assert ":" in service["image"] and not service["image"].endswith(":latest"), name
        assert service["network_mode"] == "host" and "ports" not in service, name
        assert service["healthcheck"]["test"][0] == "CMD-SHELL", name
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            assert not source.startswith(".") or (OPS / source).is_file(), f"{name} mounts missing {source}"
    assert "--web.listen-address=127.0.0.1:9090" in services["prometheus"]["command"]
    assert services["grafana"]["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"


def test_runbook_covers_every_failure_and_feasts_own_metrics_caveats() -> None:
    for scenario in ("Redis down", "PostgreSQL down", "Materialization failing or stale", "p99 latency regression",
                     "Unknown-entity spike", "Bad deploy of feature definitions", "Feature drift alert",
                     "Served-feature log losing records"):
        section = re.search(rf"^### {re.escape(scenario)}.*?(?=^##|\Z)", RUNBOOK, re.MULTILINE | re.DOTALL)
        assert section, f"runbook has no '### {scenario}' section"
        for part in ("Symptoms", "Shows in", "First checks", "Fix", "Confirm recovery"):
            assert f"**{part}**" in section.group(0), f"{scenario}: missing **{part}**"
    assert all(f"`{component}`" in RUNBOOK for component in HEALTH_COMPONENTS)
    assert "port 8000" in RUNBOOK and "all interfaces" in RUNBOOK and "negative" in RUNBOOK
