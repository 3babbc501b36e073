"""`course verify`: the guide's fifteen completion criteria (완료 기준), each checked on this machine.

`run` prepares a project of its own (`<FEAST_PROJECT>_verify`), measures every criterion
(`course_lib.criteria`), starts the API and soaks it (`course_lib.soak`) with outages injected on
the enterprise profile: a redis-server this check starts on a free port and stops for a few
seconds, and PostgreSQL cut behind a loopback forwarder (`course_lib.outage`). `judge` turns the
figures into the table: one or more rows per criterion, each with how it is verified, the
figure and PASS, FAIL or N/A (with the reason). Speed goals live here, never in tests.
"""
from __future__ import annotations

import functools
import os
import platform
import tempfile
import time
import unicodedata
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import redis

from course_lib import criteria, soak
from course_lib.background import RedisServer, start_course_api
from course_lib.config import ConfigError, own_project_env, resolve_profile
from course_lib.messages import say
from course_lib.outage import Forwarder

CRITERIA = (
    (1, "기능적", "Feast 설치 및 기본 설정 완료", "Feast installed and configured"),
    (2, "기능적", "영화 추천 도메인 피처 뷰 정의", "Feature views of the movie recommendation domain defined"),
    (3, "기능적", "데이터 소스 통합 및 변환 시스템 구현", "Data sources integrated, transformation implemented"),
    (4, "기능적", "실시간 피처 서빙 API 구축", "Real-time feature serving API built"),
    (5, "기능적", "온라인/오프라인 스토어 연동 확인", "Online and offline stores shown to agree"),
    (6, "기술적", "온라인 피처 조회 응답시간 10ms 이하", "Online feature lookup in 10 ms or less"),
    (7, "기술적", "배치 피처 처리 성능 1000 QPS 이상", "Batch feature processing at 1000 QPS or more"),
    (8, "기술적", "피처 실체화 자동화 구현", "Materialization automated"),
    (9, "기술적", "모니터링 메트릭 수집 시스템", "Monitoring metrics collected"),
    (10, "기술적", "캐싱을 통한 성능 최적화", "Performance optimized with caching"),
    (11, "품질", "피처 서비스 가용성 99.9% 이상", "Feature service availability of 99.9% or more"),
    (12, "품질", "피처 신선도 모니터링 구현", "Feature freshness monitored"),
    (13, "품질", "장애 상황 대응 매뉴얼 작성", "Incident response manual (runbook) written"),
    (14, "품질", "성능 벤치마크 및 부하 테스트", "Performance benchmark and load test"),
    (15, "품질", "Feast 운영 가이드 문서화", "Feast operations guide documented"),
)
PASS, FAIL, NA = "PASS", "FAIL", "N/A"
LATENCY_GOAL_MS = 10.0
QPS_GOAL = 1000.0
AVAILABILITY_GOAL = 0.999
RECOVERY_GOAL_S = 2.0
EVENT_TO_ONLINE_GOAL_MS = 10.0  # the course's goal for real-time features (docs/realtime.md), p99
NOT_LOCAL_EVENTS = ("not judged on local: the goal is the enterprise profile's, where POST /events writes Redis "
                    "directly; on local every event goes through Feast's SDK and SQLite (measured above)")
NOT_LOCAL = ("not applicable to local: the local profile's online store is an SQLite file and its registry a file, "
             "so there is no server to lose; `course verify --profile enterprise` injects this outage")


@dataclass(frozen=True)
class Row:
    """One line of the table: a check of one criterion, how it was verified, the figure and the result."""

    criterion: int
    check: str
    method: str
    figure: str
    status: str  # PASS, FAIL or N/A
    reason: str = ""


@dataclass
class Verification:
    """The whole result: the rows, every measured figure and the soak (for plots)."""

    profile: str
    rows: list[Row]
    figures: dict[str, Any]
    soak: soak.SoakReport | None = field(default=None, repr=False)
    measured_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def criteria(self) -> list[dict[str, Any]]:
        """Each criterion with its overall result: FAIL if any row failed, N/A if none applied, else PASS."""
        out = []
        for number, group, korean, english in CRITERIA:
            statuses = {row.status for row in self.rows if row.criterion == number}
            status = FAIL if FAIL in statuses or not statuses else PASS if PASS in statuses else NA
            out.append({"number": number, "group": group, "ko": korean, "en": english, "status": status})
        return out

    @property
    def passed(self) -> bool:
        """Whether no criterion failed."""
        return all(c["status"] != FAIL for c in self.criteria())

    def to_json(self) -> dict[str, Any]:
        """The JSON document: criteria, rows and every figure."""
        return {"profile": self.profile, "measured_at": self.measured_at, "passed": self.passed,
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                            "load_average": list(os.getloadavg())},
                "criteria": self.criteria(), "rows": [asdict(r) for r in self.rows], "figures": self.figures}

    def frame(self) -> Any:
        """The table as a DataFrame (for notebooks)."""
        import pandas as pd

        names = {n: (ko, en) for n, _, ko, en in CRITERIA}
        return pd.DataFrame([{"#": r.criterion, "완료 기준": names[r.criterion][0], "criterion": names[r.criterion][1],
                              "check": r.check, "how it is verified": r.method, "measured": r.figure,
                              "result": r.status, "reason": r.reason} for r in self.rows]).set_index("#")


# --- judging: figures -> rows ---------------------------------------------------------------------

def verdict(criterion: int, check: str, method: str, figures: dict[str, Any] | None,
            measure: Callable[[dict[str, Any]], tuple[str, bool, str]]) -> Row:
    """A row from a figure: `measure(figures)` gives (figure text, passed, reason); a failed measurement fails."""
    if figures is None:
        return Row(criterion, check, method, "-", FAIL, "not measured")
    if "error" in figures:
        return Row(criterion, check, method, "-", FAIL, figures["error"])
    text, ok, reason = measure(figures)
    return Row(criterion, check, method, text, PASS if ok else FAIL, "" if ok else reason)


def document_rows(criterion: int, check: str, what: str, doc: dict[str, Any] | None) -> Row:
    """A document is present, linked, its links resolve, its commands exist and it names `course verify`."""
    def measure(d: dict[str, Any]) -> tuple[str, bool, str]:
        problems = ([] if d["exists"] else ["missing"]) + [f"broken link {x}" for x in d["broken_links"]] + [
            f"names unknown verb `course {v}`" for v in d["unknown_verbs"]] + (
            [] if d["linked_from"] else ["linked from nowhere"]) + (
            [] if d["names_course_verify"] else ["does not point to `course verify`"]) + [
            f"alert {a} has no section" for a in d.get("alerts_without_section", [])]
        alerts = f", {d['alerts']} alerts each with a section" if "alerts" in d else ""
        text = f"{d['path']}: {d['lines']} lines, linked from {len(d['linked_from'])}{alerts}"
        return text, not problems, "; ".join(problems)
    return verdict(criterion, check, f"{what}: present, linked, links resolve, every `course` verb exists, "
                                     "names `course verify`", doc, measure)


def latency_figure(kind: str, r: dict[str, Any]) -> tuple[str, bool, str]:
    """p99 and p50 of one kind of request in the soak, against the 10 ms goal."""
    if kind not in r["latency"]:
        return "-", False, "no successful request"
    figures = r["latency"][kind]
    return (f"p99 {figures['p99_ms']:.2f} ms, p50 {figures['p50_ms']:.2f} ms (n={figures['n']:,})",
            figures["p99_ms"] <= LATENCY_GOAL_MS, f"p99 above {LATENCY_GOAL_MS:g} ms")


def soak_rows(profile: str, report: dict[str, Any] | None) -> list[Row]:
    """Criteria 6, 11 and 14 from the soak: p99 per kind, availability, each outage window, the load itself."""
    how = "soak: paced loopback load against the running API, requests outside outage windows"
    rows = [verdict(6, f"p99 {kind}", f"{how}; p99 of {label} answered 200 (goal ≤ {LATENCY_GOAL_MS:g} ms)", report,
                    functools.partial(latency_figure, kind)) for kind, label in soak.KINDS.items()]
    rows.append(verdict(11, "availability", f"{how}; share answered 200 (goal 100%, at least 99.9%)", report,
                        lambda r: (f"{r['availability']:.4%} of {r['outside_requests']:,} requests",
                                   (r["availability"] or 0) >= AVAILABILITY_GOAL, "below 99.9%")
                        if r["availability"] is not None else ("-", False, "no request outside the windows")))
    for name, expected in (("redis", "only 503"), ("postgres", "only 200")):
        method = f"{name} outage injected mid-soak: {expected} inside, recovery ≤ {RECOVERY_GOAL_S:g} s after"
        if profile == "local":
            rows.append(Row(11, f"{name} outage", method, "-", NA, NOT_LOCAL))
            continue

        def measure(r: dict[str, Any], name: str = name) -> tuple[str, bool, str]:
            window = next((w for w in r["windows"] if w["name"] == name), None)
            if window is None:
                return "-", False, "the outage was not injected"
            recovery = window["recovery_s"]
            text = (f"{window['end_s'] - window['start_s']:.1f} s: " + ", ".join(
                f"{n}×{s}" for s, n in window["statuses"].items()) + "; recovered in "
                + (f"{recovery:.2f} s" if recovery is not None else "never"))
            problems = ([] if window["only_expected"] else ["unexpected statuses inside"]) + (
                [] if recovery is not None and recovery <= RECOVERY_GOAL_S else ["slow or no recovery"])
            return text, not problems, "; ".join(problems)
        rows.append(verdict(11, f"{name} outage", method, report, measure))
    rows.append(verdict(14, "load test", "the soak as a load test: requests sent against requests offered, "
                                         "`course bench` for the full benchmark", report,
                        load_figure))
    return rows


def load_figure(r: dict[str, Any]) -> tuple[str, bool, str]:
    """The soak as a load test: requests sent against the requests offered."""
    offered = r["rate"] * r["seconds"]
    return (f"{r['requests']:,} requests in {r['seconds']:g} s ({r['requests'] / r['seconds']:.0f}/s of "
            f"{r['rate']:g}/s offered)", r["requests"] >= 0.9 * offered, "the load generator fell behind")


def schedule_figure(d: dict[str, Any]) -> tuple[str, bool, str]:
    """Scheduled runs that succeeded, intervals they recorded, pipeline age after each."""
    ages = [max((a for a in o["pipeline_age_s"].values() if a is not None), default=None) for o in d["observations"]]
    added = min(d["intervals_added"].values())
    text = (f"{d['ok_runs']} runs ok, {added}+ intervals recorded per view, pipeline age "
            + " -> ".join("never" if a is None else f"{a:.0f} s" for a in ages))
    ok = d["ok_runs"] >= criteria.SCHEDULE_RUNS and added >= criteria.SCHEDULE_RUNS
    return text, ok, f"runs: {d['outcomes']}"


def event_row(profile: str, figures: dict[str, Any] | None) -> Row:
    """Criterion 12's real-time row: p99 from `POST /events` to the value online, against the goal; on local
    the figure is shown but not judged (the goal is the enterprise profile's)."""
    row = verdict(12, "event to online", f"{criteria.EVENT_PROBES} new watch events, one at a time: from POST "
                  f"/events accepted to the new value through GET /users/{{id}}/features (goal p99 ≤ "
                  f"{EVENT_TO_ONLINE_GOAL_MS:g} ms)", figures,
                  lambda d: (f"p50 {d['p50_ms']:.1f} ms, p99 {d['p99_ms']:.1f} ms over {d['n']} events",
                             d["p99_ms"] <= EVENT_TO_ONLINE_GOAL_MS, f"p99 above {EVENT_TO_ONLINE_GOAL_MS:g} ms"))
    return replace(row, status=NA, reason=NOT_LOCAL_EVENTS) if profile == "local" and row.figure != "-" else row


def judge(profile: str, f: dict[str, Any]) -> list[Row]:
    """Every row of the table from the measured figures (pure: tests feed it figures)."""
    g = f.get
    rows = [
        verdict(1, "installation", "`course doctor` checks: Python, packages, kernel, services, registry",
                g("installation"), lambda d: (f"{d['checks'] - len(d['failed'])}/{d['checks']} checks pass",
                                              not d["failed"], "; ".join(d["failed"]))),
        verdict(2, "definitions", "registry after `course apply`: the three views and the feature service",
                g("definitions"), lambda d: (", ".join(f"{v} ({n} features)" for v, n in d["views"].items()),
                                             not d["missing_views"] and d["feature_service"],
                                             f"missing {d['missing_views']} or the feature service")),
        verdict(3, "data sources", "raw logs -> point-in-time feature tables in the offline store: rows per table",
                g("data_sources"), lambda d: (", ".join(f"{v}: {x['rows']:,} rows" for v, x in d.items()),
                                              all(x["rows"] > 0 for x in d.values()), "an empty offline table")),
        verdict(4, "serving API", "the running API: POST /recommendations and GET /users/{id}/features",
                g("api"), lambda d: (f"recommendations {d['recommendations_status']} ({d['recommended']} ranked, "
                                     f"{d['features_used_non_null']}/{d['features_used']} features present), user "
                                     f"features {d['user_features_status']} ({d['user_found']})",
                                     d["recommendations_status"] == 200 and d["recommended"] > 0
                                     and d["features_used_non_null"] > 0 and d["user_found"] == "found",
                                     "an endpoint failed or served empty features")),
        verdict(5, "online = offline", "users' online features vs their newest offline rows at the materialization end "
                "(read from the offline table)",
                g("online_offline"), lambda d: (f"{d['values_compared']} values of {d['users']} users, "
                                                f"{d['values_differing']} differ",
                                                d["values_compared"] > 0 and not d["values_differing"],
                                                "online and offline values differ")),
        verdict(7, "batched online lookups", "interpretation 1: entity lookups per second, read in batches of "
                f"{criteria.BATCH} (the course's reader; Feast's SDK alongside)", g("batch_online"),
                lambda d: (f"{d['optimized']['lookups_per_s']:,.0f}/s (SDK {d['feast_sdk']['lookups_per_s']:,.0f}/s)",
                           d["optimized"]["lookups_per_s"] >= QPS_GOAL, "below 1000 lookups/s")),
        verdict(7, "offline point-in-time rows", "interpretation 2: point-in-time-correct training rows per second "
                "from the offline store", g("batch_offline"),
                lambda d: (f"{d['rows_per_s']:,.0f} rows/s ({d['rows']:,} rows in {d['seconds']:.2f} s, {d['path']})",
                           d["rows_per_s"] >= QPS_GOAL, "below 1000 rows/s")),
        verdict(8, "scheduled materialization", f"`course materialize --every` as a process, until "
                f"{criteria.SCHEDULE_RUNS} runs: each records an interval, pipeline freshness read after each",
                g("schedule"), schedule_figure),
        verdict(9, "metrics exact", "scrape /metrics around a burst of known requests: course_requests_total moves "
                "by exactly what was sent, per route and status", g("metrics"),
                lambda d: (f"{sum(d['sent'].values())} requests, counted " + ", ".join(
                    f"{k}: {v}" for k, v in d["counted"].items()), d["exact"], f"sent {d['sent']}")),
        verdict(10, "cache hit rate", "a skewed request log replayed through the online LRU cache; answers compared "
                "with uncached reads", g("cache"),
                lambda d: (f"hit rate {d['hit_rate']:.1%} ({d['hits']:,} hits, {d['misses']:,} misses), "
                           f"p50 {d['p50_ms']:.3f} ms", d["hit_rate"] > 0 and d["identical_to_store"],
                           "no hits, or cached answers differ")),
        verdict(12, "freshness", "GET /freshness: pipeline and data freshness of every view; the gauges in /metrics",
                g("freshness"), lambda d: ("; ".join(f"{v}: pipeline {s['pipeline']}, data {s['data']}"
                                                     for v, s in d["views"].items()),
                                           d["status"] == 200 and not d["missing_views"] and len(d["gauges"]) == 3,
                                           f"status {d['status']}, missing {d['missing_views']}")),
        event_row(profile, g("event_to_online")),
        document_rows(13, "runbook", "docs/runbook.md; every alert of ops/alert-rules.yml has its section",
                      g("runbook")),
        document_rows(15, "operations guide", "docs/operations.md", g("operations")),
    ]
    rows += soak_rows(profile, g("soak"))
    return sorted(rows, key=lambda r: r.criterion)


# --- running it ------------------------------------------------------------------------------------

def measure(figures: dict[str, Any], name: str, call: Callable[[], Any], log: Callable[[str], None]) -> Any:
    """Run one measurement into `figures[name]`; a failure is recorded as its error, never raised."""
    log(f"verify: {name} ...")
    try:
        figures[name] = call()
    except Exception as exc:  # noqa: BLE001 - a failed measurement is a FAIL row naming the error
        figures[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return figures[name]


def redis_drill(server: RedisServer, at_s: float, outage_s: float) -> soak.Drill:
    """Stop the private redis-server for `outage_s` (after a snapshot, so the restart loses nothing)."""
    def run(clock: soak.Clock) -> soak.Window:
        redis.Redis(port=server.port).save()
        start = clock()
        server.stop()
        down = clock()
        time.sleep(max(0.0, outage_s - (down - start)))
        up = clock()
        server.start()
        return soak.Window("redis", start, clock(), (503,), f"redis-server stopped for {outage_s:g} s, restarted",
                           down_s=down, up_s=up)
    return soak.Drill("redis", at_s, run)


def postgres_drill(forwarder: Forwarder, at_s: float, outage_s: float) -> soak.Drill:
    """PostgreSQL behind the forwarder: refused for half the window, then a black hole (accepts, never answers)."""
    def run(clock: soak.Clock) -> soak.Window:
        start = clock()
        forwarder.refuse()
        time.sleep(outage_s / 2)
        forwarder.black_hole()
        time.sleep(max(0.0, outage_s - (clock() - start)))
        forwarder.pass_through()
        return soak.Window("postgres", start, clock(), (200,),
                           f"PostgreSQL refused for {outage_s / 2:g} s, then a black hole for {outage_s / 2:g} s")
    return soak.Drill("postgres", at_s, run)


def run(profile_name: str | None = None, soak_seconds: float = 60.0, rate: float = 200.0,
        log: Callable[[str], None] = print, progress: bool = True) -> Verification:
    """Prepare the verification project, measure every criterion, soak the API; the table and the figures."""
    base = resolve_profile(profile_name)
    if base.name not in ("local", "enterprise"):
        raise ConfigError(say("verify.profile", profile=base.name))
    if soak_seconds < 20:
        raise ConfigError(say("verify.soak_seconds", soak_seconds=soak_seconds))
    figures: dict[str, Any] = {}
    report = None
    with ExitStack() as stack:
        env = own_project_env("verify", {**os.environ, **base.env()})
        drills: list[soak.Drill] = []
        if base.name == "enterprise":
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="course-verify-")))
            server = stack.enter_context(RedisServer(workdir=folder))
            env.update({"FEAST_REDIS_PORT": str(server.port), "FEAST_REDIS_DB": "0"})
            forwarder = stack.enter_context(Forwarder(base.settings.pg_port, base.settings.pg_host))
            drills = [redis_drill(server, 0.25 * soak_seconds, min(5.0, soak_seconds / 8)),
                      postgres_drill(forwarder, 0.55 * soak_seconds, min(10.0, soak_seconds / 6))]
        profile = resolve_profile(base.name, env)
        log(f"verify: preparing project {profile.project} on {profile.name} (data, apply, materialize, train) ...")
        stage = criteria.prepare(profile)
        verbs = criteria.cli_verbs()
        for name, call in (("installation", lambda: criteria.installation(profile)),
                           ("definitions", lambda: criteria.definitions(stage.store)),
                           ("data_sources", lambda: criteria.data_sources(profile)),
                           ("online_offline", lambda: criteria.online_matches_offline(stage)),
                           ("batch_online", lambda: criteria.batch_lookups(stage)),
                           ("batch_offline", lambda: criteria.offline_rows_per_second(stage)),
                           ("cache", lambda: criteria.cache_on_replay(stage)),
                           ("runbook", lambda: criteria.runbook(verbs)),
                           ("operations", lambda: criteria.document("docs/operations.md", verbs))):
            measure(figures, name, call, log)
        served = (resolve_profile(profile.name, {**env, "FEAST_PG_PORT": str(forwarder.port)})
                  if drills else profile)
        log("verify: starting the API under test ...")
        with start_course_api(served, profile.repo_dir / "logs" / "verify-api.log") as api:
            measure(figures, "api", lambda: criteria.api_answers(api.url, stage), log)
            measure(figures, "metrics", lambda: criteria.metrics_exact(api.url, stage), log)
            measure(figures, "freshness", lambda: criteria.freshness_endpoint(api.url), log)
            measure(figures, "event_to_online", lambda: criteria.event_to_online(api.url, stage), log)
            log(f"verify: soak of {soak_seconds:g} s at {rate:g} requests/s"
                + (", outages: " + ", ".join(f"{d.name} at {d.at_s:.0f} s" for d in drills) if drills else ""))
            report = measure(figures, "soak", lambda: soak.run_soak(
                api.url, stage.users, stage.movies, soak_seconds, rate, drills,
                show=soak.progress_bar(soak_seconds) if progress else None), log)
            if isinstance(report, soak.SoakReport):
                figures["soak"] = report.as_dict()
        measure(figures, "schedule", lambda: criteria.schedule_runs(profile), log)
    figures["prepare_s"] = stage.prepare_s
    return Verification(base.name, judge(base.name, figures), figures,
                        report if isinstance(report, soak.SoakReport) else None)


# --- the table --------------------------------------------------------------------------------------

def width(text: str) -> int:
    """Columns a string takes in a terminal (Korean syllables take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, columns: int) -> str:
    """`text` padded with spaces to `columns` terminal columns."""
    return text + " " * max(0, columns - width(text))


def format_table(verification: Verification) -> str:
    """The table for a terminal: per criterion its Korean and English text, then each check's result and figure."""
    names = {n: (ko, en) for n, _, ko, en in CRITERIA}
    status = {c["number"]: c["status"] for c in verification.criteria()}
    lines = [f"course verify --profile {verification.profile}: the guide's completion criteria (완료 기준)", ""]
    for number, (korean, english) in names.items():
        lines.append(f"{number:>2}. {pad(korean, 40)} {english}  [{status[number]}]")
        for row in (r for r in verification.rows if r.criterion == number):
            lines.append(f"    {row.status:<4} {row.check}: {row.figure}")
            lines.append(f"         how: {row.method}")
            if row.reason:
                lines.append(f"         {'why' if row.status == FAIL else 'note'}: {row.reason}")
    counts = {s: sum(c["status"] == s for c in verification.criteria()) for s in (PASS, FAIL, NA)}
    lines += ["", f"criteria: {counts[PASS]} pass, {counts[FAIL]} fail, {counts[NA]} not applicable"]
    return "\n".join(lines)
