"""What each of the guide's completion criteria (완료 기준) measures, on a prepared project.

`course_lib.verify` runs these in order and turns each into rows of its table. Every function
returns the figures it measured (a dict that goes into the JSON as is); none decides pass or
fail on a file's mere existence: documents are checked for what they link and name, the API for
what it answers, the schedule for runs that really happened.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml
from feast import FeatureStore

from course_lib import datasets, doctor, monitoring, ranker, realtime, serving
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.caches import OnlineFeatureCache
from course_lib.config import Profile, load_store
from course_lib.events import enable as enable_events
from course_lib.offline import offline_query, read_offline, table_expr
from course_lib.pit import historical_features_tuned
from course_lib.redis_reader import online_reader
from course_lib.reset import reset_online
from course_lib.settings import REPO_ROOT
from course_lib.timing import latency, time_calls
from feature_repo.definitions import FEATURE_VIEWS, USER_VIEW
from feature_repo.names import FEATURE_SERVICE

BATCH = 100  # entities per batched online lookup
PIT_ROWS = 5_000  # entity rows of the offline point-in-time throughput
SCHEDULE_RUNS = 3
EVENT_PROBES = 100  # new watch events sent one at a time to measure event-to-online


@dataclass
class Stage:
    """The verification's own project, prepared from scratch: its store, data (real-time state included),
    users and 100 candidate movies."""

    profile: Profile
    store: FeatureStore
    dataset: datasets.Dataset
    users: list[int]
    movies: list[int]
    data_end: datetime
    prepare_s: float


def prepare(profile: Profile, seed: int = 42) -> Stage:
    """Data offline, definitions applied (the real-time ones too), features and event state materialized up to
    the data's end, the ranker trained."""
    started = time.perf_counter()
    size = datasets.SIZES["small"]
    dataset = datasets.synthetic(seed=seed, n_users=size["n_users"], n_movies=size["n_movies"],
                                 n_events=size["n_events"])
    dataset.save(profile.raw_dir)
    write_offline(build_feature_tables(dataset), profile)
    store = load_store(profile)
    serving.apply(store, profile)
    reset_online(store, profile)
    events = dataset.watch_events
    end = events["event_timestamp"].max().to_pydatetime()
    serving.materialize(store, profile, end=end)
    enable_events(store, profile, dataset, end)  # POST /events updates state online from here on
    ranker.train_and_save(profile)
    rng = np.random.default_rng(seed)
    users = [int(u) for u in rng.choice(events["user_id"].unique(), 500)]
    movies = sorted(int(m) for m in events["movie_id"].value_counts().index[:BATCH])
    return Stage(profile, store, dataset, users, movies, end, time.perf_counter() - started)


# --- functional ---------------------------------------------------------------------------------

def installation(profile: Profile) -> dict[str, Any]:
    """`course doctor`'s checks on this machine (Python, packages, kernel, services, registry)."""
    checks = doctor.run_checks(profile)
    return {"checks": len(checks), "failed": [f"{c.name}: {c.detail}" for c in checks if not c.ok]}


def definitions(store: FeatureStore) -> dict[str, Any]:
    """What the registry holds after `apply`: feature views, their features, the feature service."""
    views = {v.name: len(v.features) for v in store.list_feature_views()}
    services = [s.name for s in store.list_feature_services()]
    return {"views": views, "missing_views": [v for v in FEATURE_VIEWS if v not in views],
            "feature_service": FEATURE_SERVICE in services, "entities": sorted(e.name for e in store.list_entities())}


def data_sources(profile: Profile) -> dict[str, Any]:
    """Rows, entities and time range of each offline table the adapter wrote."""
    out = {}
    for view in FEATURE_VIEWS:
        rows, first, last = offline_query(profile, "SELECT count(*), min(event_timestamp), max(event_timestamp) "
                                                   f"FROM {table_expr(profile, view)}", [])
        out[view] = {"rows": int(rows), "first": str(first), "last": str(last)}
    return out


def same_value(online: Any, offline: Any) -> bool:
    """An online value equals the offline one: both missing, equal, or equal as Float32 features are stored
    (to 1e-6 relative: the offline table holds float64, the online store the view's Float32)."""
    if online is None or offline is None or pd.isna(offline):
        return online is None and bool(pd.isna(offline))
    if isinstance(online, (int, float)) and not isinstance(online, bool):
        return bool(np.isclose(float(online), float(offline), rtol=1e-6, atol=0))
    return bool(online == offline)


def online_matches_offline(stage: Stage, n: int = 20) -> dict[str, Any]:
    """Users' online features against their newest offline row at or before the materialization end, value
    for value (read straight from the offline table, independently of Feast)."""
    users = list(dict.fromkeys(stage.users))[:n]
    table = read_offline(stage.profile, [USER_VIEW])[USER_VIEW]
    table = table[table["user_id"].isin(users)
                  & (pd.to_datetime(table["event_timestamp"], utc=True) <= pd.Timestamp(stage.data_end))]
    newest = table.sort_values("event_timestamp").groupby("user_id").tail(1).set_index("user_id")
    compared = differing = 0
    for user in users:
        online = serving.user_features(stage.store, user).values
        for name, value in online.items():
            compared += 1
            differing += int(not same_value(value, newest.loc[user, name] if user in newest.index else None))
    return {"users": len(users), "values_compared": compared, "values_differing": differing}


def api_answers(url: str, stage: Stage) -> dict[str, Any]:
    """One recommendation and one feature read from the running API, as a client sees them."""
    user = stage.users[0]
    rec = httpx.post(f"{url}/recommendations", json={"user_id": user, "movie_ids": stage.movies, "k": 10}, timeout=30)
    features = httpx.get(f"{url}/users/{user}/features", timeout=30)
    body = rec.json() if rec.status_code == 200 else {}
    items = body.get("recommendations", [])
    used = [v for item in items for v in item.get("features_used", {}).values()]
    return {"recommendations_status": rec.status_code, "recommended": len(items),
            "features_used_non_null": sum(v is not None for v in used), "features_used": len(used),
            "user_features_status": features.status_code,
            "user_found": features.json().get("status") if features.status_code == 200 else None}


# --- technical ----------------------------------------------------------------------------------

def batch_lookups(stage: Stage) -> dict[str, Any]:
    """Online lookups per second when read in batches of 100 users: the course's reader and Feast's SDK."""
    read = online_reader(stage.store, stage.profile)
    batches = [[{"user_id": u} for u in stage.users[i:i + BATCH]] for i in range(0, len(stage.users), BATCH)] * 8
    out = {}
    for name, call in (("optimized", lambda rows: read([USER_VIEW], rows)),
                       ("feast_sdk", lambda rows: serving.online_rows(stage.store, [USER_VIEW], rows))):
        lat = time_calls(call, batches, warmup=2)
        out[name] = {"batches": lat.n, "batch_p99_ms": lat.p99_ms, "lookups_per_s": BATCH * 1000 / lat.mean_ms}
    return out


def offline_rows_per_second(stage: Stage) -> dict[str, Any]:
    """Point-in-time rows per second for real watch events (the tuned join on PostgreSQL, Feast's on local)."""
    events = stage.dataset.watch_events
    entity_df = (events.sample(min(PIT_ROWS, len(events)), random_state=1)
                 [["user_id", "movie_id", "event_timestamp"]].reset_index(drop=True))
    refs = serving.feature_refs()
    tuned = stage.profile.name == "enterprise"
    store = load_store(stage.profile, tuned=True) if tuned else stage.store
    retrieve = historical_features_tuned if tuned else serving.historical_features
    retrieve(store, entity_df.iloc[:100], refs)  # warm-up: registry, connections
    start = time.perf_counter()
    frame = retrieve(store, entity_df, refs)
    seconds = time.perf_counter() - start
    return {"rows": len(frame), "seconds": seconds, "rows_per_s": len(frame) / seconds,
            "path": "course_lib.pit (tuned LATERAL join)" if tuned else "Feast get_historical_features"}


def cache_on_replay(stage: Stage, requests: int = 2_000) -> dict[str, Any]:
    """Replay a skewed request log through the online LRU cache: hit rate, and answers equal to uncached reads."""
    rng = np.random.default_rng(7)
    weights = 1 / np.arange(1, len(stage.users) + 1)
    log = rng.choice(stage.users, requests, p=weights / weights.sum())
    cache = OnlineFeatureCache(stage.store, fetch=online_reader(stage.store, stage.profile))
    cached = time_calls(lambda u: cache.online_rows([USER_VIEW], [{"user_id": int(u)}]), list(log), warmup=0)
    sample = sorted({int(u) for u in log[:50]})
    same = all(cache.online_rows([USER_VIEW], [{"user_id": u}])[0][USER_VIEW].values
               == serving.user_features(stage.store, u).values for u in sample)
    total = cache.hits + cache.misses
    return {"requests": requests, "distinct_users": len(set(log.tolist())), "hits": cache.hits,
            "misses": cache.misses, "hit_rate": cache.hits / total if total else 0.0,
            "p50_ms": cached.p50_ms, "identical_to_store": same}


def metrics_exact(url: str, stage: Stage, requests: int = 120) -> dict[str, Any]:
    """Scrape /metrics around a burst of known requests: each (endpoint, status) counter moves by exactly what
    was sent."""
    def counts() -> pd.Series:
        frame = monitoring.parse_metrics(httpx.get(f"{url}/metrics", timeout=60).text)
        return monitoring.sample_values(frame, "course_requests_total", ["endpoint", "status"])
    sent: Counter[tuple[str, str]] = Counter()
    before = counts()
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(requests):
            user = stage.users[i % len(stage.users)]
            if i % 3 == 0:
                status = client.post("/recommendations", json={"user_id": user, "movie_ids": stage.movies[:20]})
                sent[("/recommendations", str(status.status_code))] += 1
            elif i % 3 == 1:
                sent[("/users/{user_id}/features", str(client.get(f"/users/{user}/features").status_code))] += 1
            else:  # an invalid id: a 422 counted under the same route
                sent[("/users/{user_id}/features", str(client.get("/users/0/features").status_code))] += 1
    after = counts()
    moved = {key: int(after.get(key, 0) - before.get(key, 0)) for key in sent}
    return {"sent": {f"{e} {s}": n for (e, s), n in sorted(sent.items())},
            "counted": {f"{e} {s}": n for (e, s), n in sorted(moved.items())},
            "exact": all(moved[key] == n for key, n in sent.items()),
            "families": int(after.index.size)}


def freshness_endpoint(url: str) -> dict[str, Any]:
    """GET /freshness: every feature view with its pipeline and data freshness, and the same in /metrics."""
    answer = httpx.get(f"{url}/freshness", timeout=60)
    views = answer.json().get("views", {}) if answer.status_code == 200 else {}
    frame = monitoring.parse_metrics(httpx.get(f"{url}/metrics", timeout=60).text)
    gauges = monitoring.sample_values(frame, "course_pipeline_freshness_seconds", ["feature_view"])
    return {"status": answer.status_code,
            "views": {v: {k: views[v][k]["status"] for k in ("pipeline", "data")} for v in views},
            "missing_views": [v for v in FEATURE_VIEWS if not {"pipeline", "data"} <= set(views.get(v, {}))],
            "gauges": {v: float(gauges[v]) for v in FEATURE_VIEWS if v in gauges}}


def event_to_online(url: str, stage: Stage, probes: int = EVENT_PROBES) -> dict[str, Any]:
    """Milliseconds from `POST /events` to the new value through `GET /users/{id}/features`, one new first
    watch at a time (`realtime.event_to_online`); the first probe warms the ingestor up and is not counted."""
    sent = realtime.new_events(stage.dataset, stage.users, probes + 1, seed=3)
    measured = latency(realtime.event_to_online(url, sent)[1:])
    return {"n": measured.n, "p50_ms": measured.p50_ms, "p99_ms": measured.p99_ms}


def schedule_runs(profile: Profile, every_s: float = 2.0, runs: int = SCHEDULE_RUNS,
                  timeout_s: float = 300.0) -> dict[str, Any]:
    """Run `course materialize --every` as a real process until it reports `runs` runs; read the registry
    after each (materialization intervals recorded, pipeline freshness)."""
    store = load_store(profile)

    def observe() -> dict[str, Any]:
        store.refresh_registry()
        now = pd.Timestamp.now(tz="UTC")
        views = {v: store.get_feature_view(v).materialization_intervals for v in FEATURE_VIEWS}
        ends = {v: max(end for _, end in ivs) if ivs else None for v, ivs in views.items()}
        return {"at": now.isoformat(), "intervals": {v: len(ivs) for v, ivs in views.items()},
                "pipeline_age_s": {v: (now - pd.Timestamp(e)).total_seconds() if e else None
                                   for v, e in ends.items()}}
    observations = [observe()]
    command = [sys.executable, "-m", "course_lib", "materialize", "--profile", profile.name, "--incremental",
               "--every", f"{every_s:g}s"]
    process = subprocess.Popen(command, env={**os.environ, **profile.env()}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    outcomes: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        for line in process.stdout or []:
            if line.startswith("materialize "):
                outcomes.append(line.split()[1])
                observations.append(observe())
            if len(outcomes) >= runs or time.monotonic() > deadline:
                break
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    grew = {v: observations[-1]["intervals"][v] - observations[0]["intervals"][v] for v in FEATURE_VIEWS}
    return {"every_s": every_s, "outcomes": outcomes, "ok_runs": outcomes.count("ok"), "intervals_added": grew,
            "observations": observations, "exit_code": process.returncode}


# --- documents ----------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
VERB = re.compile(r"`course ([a-z]+)")


def cli_verbs() -> set[str]:
    """The verbs the real `course` command offers, read from its `--help`."""
    usage = subprocess.run([sys.executable, "-m", "course_lib", "--help"], capture_output=True, text=True,
                           check=True, timeout=120).stdout
    match = re.search(r"\{([a-z,]+)\}", usage)
    return set(match.group(1).split(",")) if match else set()


def document(path: str, verbs: set[str]) -> dict[str, Any]:
    """A document's links that do not resolve, `course` verbs it names that do not exist, who links to it,
    and whether it names `course verify`."""
    file = REPO_ROOT / path
    text = file.read_text(encoding="utf-8") if file.is_file() else ""
    broken = sorted({link for link in LINK.findall(text) if "://" not in link
                     and not (file.parent / link).exists()})
    linked_from = sorted(str(p.relative_to(REPO_ROOT)) for p in [REPO_ROOT / "README.md", *REPO_ROOT.glob("docs/*.md")]
                         if p != file and Path(path).name in p.read_text(encoding="utf-8"))
    return {"path": path, "exists": file.is_file(), "lines": text.count("\n"), "broken_links": broken,
            "unknown_verbs": sorted(set(VERB.findall(text)) - verbs), "linked_from": linked_from,
            "names_course_verify": "course verify" in text}


def runbook(verbs: set[str]) -> dict[str, Any]:
    """docs/runbook.md as `document`, plus every alert of ops/alert-rules.yml with its own section."""
    out = document("docs/runbook.md", verbs)
    rules = yaml.safe_load((REPO_ROOT / "ops" / "alert-rules.yml").read_text(encoding="utf-8"))
    alerts = [r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r]
    text = (REPO_ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    out["alerts"] = len(alerts)
    out["alerts_without_section"] = [a for a in alerts if not re.search(rf"^## {a}\b", text, re.MULTILINE)]
    return out
