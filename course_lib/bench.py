"""`course bench`: every speed figure of the course measured in one process against real stores.

Online reads (Feast SDK, the optimized path, a raw-Redis floor), HTTP loads (the course API and
`feast serve`), point-in-time retrieval (Feast's defaults and the tuned join) and
materialization (default and tuned), in the benchmark's own Feast project; each speed goal is
reported next to the figure measured in that run (`goals`), never asserted in tests.
"""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import pandas as pd
import redis
from feast import FeatureStore
from feast.feature_logging import REQUEST_ID_FIELD

from course_lib import datasets, feature_log, ranker, realtime_bench, serving
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.background import start_course_api, start_feast_serve
from course_lib.caches import RecommendationFeatures
from course_lib.config import PROFILES, Profile, load_store, resolve_profile
from course_lib.monitoring import parse_metrics, sample_values
from course_lib.pit import historical_features_tuned
from course_lib.redis_format import hash_fields, redis_key
from course_lib.redis_reader import online_reader, standalone_redis
from course_lib.reset import reset_online
from course_lib.settings import Settings
from course_lib.timing import Latency, http_load, time_calls
from course_lib.verify import EVENT_TO_ONLINE_GOAL_MS
from feature_repo.definitions import MOVIE_VIEW, PAIR_VIEW, USER_VIEW, VIEWS

# --- the benchmark: `course bench` -----------------------------------------------------------

class BenchSize(NamedTuple):
    """How much one `course bench` size measures."""

    preset: str  # the synthetic dataset's size preset (datasets.SIZES)
    historical_rows: int  # entity rows for historical retrieval
    requests: int  # requests per HTTP load
    max_seconds: float  # the cap on each HTTP load
    freshness_probes: int  # events whose event-to-online time is measured
    on_demand_users: int  # users (100 candidates each) read with and without the on-demand view


SIZES = {"small": BenchSize("small", 5_000, 1_500, 5.0, 50, 120),
         "full": BenchSize("full", 100_000, 20_000, 30.0, 200, 500)}
PG_DEFAULT_CAP = 10_000  # untuned PostgreSQL point-in-time joins are quadratic: time at most this many rows


@dataclass
class Bench:
    """One prepared benchmark project on a profile: its store, users, movies and pairs."""

    profile: Any
    store: Any
    users: list[int]
    movies: list[int]
    pairs: Any  # DataFrame of real (user_id, movie_id, event_timestamp) watch events


def bench_profile(name: str, workdir: str | None = None) -> Any:
    """The benchmark's own Feast project and offline schema on a profile (never the learner's)."""
    project = Settings.from_env(os.environ).bench_project
    env = {**os.environ, "FEAST_PROJECT": project, "FEAST_OFFLINE_SCHEMA": project}
    if workdir:
        env["COURSE_WORKDIR"] = workdir
    return resolve_profile(name, env)


def prepare(profile: Any, size: str) -> tuple[Bench, dict[str, Any]]:
    """Write the data, then materialize it twice (default, then tuned) and compare the online values."""
    preset = datasets.SIZES[SIZES[size].preset]
    dataset = datasets.synthetic(n_users=preset["n_users"], n_movies=preset["n_movies"], n_events=preset["n_events"])
    dataset.save(profile.raw_dir)
    write_offline(build_feature_tables(dataset), profile)
    events = dataset.watch_events
    rng = np.random.default_rng(0)
    users = rng.choice(events["user_id"].unique(), 500).tolist()
    movies = sorted(int(m) for m in events["movie_id"].value_counts().index[:100])
    bench = Bench(profile, None, [int(u) for u in users], movies, events)
    timings, snapshots = {}, {}
    for mode in ("default", "tuned"):
        store = load_store(profile, tuned=mode == "tuned")
        serving.apply(store, profile)
        reset_online(store, profile)
        start = time.perf_counter()
        report = serving.materialize(store, profile, end=events["event_timestamp"].max().to_pydatetime())
        timings[mode] = time.perf_counter() - start
        snapshots[mode] = [serving.candidate_features(store, u, movies[:20]) for u in users[:50]]
    bench.store = load_store(profile)
    ranker.train_and_save(profile)
    materialize = {"rows": sum(report.rows.values()), "default_s": timings["default"], "tuned_s": timings["tuned"],
                   "speedup": timings["default"] / timings["tuned"],
                   "identical_online_values": snapshots["default"] == snapshots["tuned"]}
    return bench, materialize


def raw_floor(store: FeatureStore, profile: Profile) -> Callable[[list[tuple[str, dict[str, Any]]]], Any] | None:
    """One raw redis-py pipeline of HMGETs on Feast's own keys, no decoding (None off Redis)."""
    if not standalone_redis(store):
        return None
    client = redis.Redis(**profile.redis_client_kwargs())
    fields = {view: list(hash_fields(view)) for view in VIEWS}

    def read(keys: list[tuple[str, dict[str, Any]]]) -> Any:
        with client.pipeline(transaction=False) as pipe:
            for view, row in keys:
                pipe.hmget(redis_key(row, store.project), fields[view])  # type: ignore[arg-type] # bytes keys work
            return pipe.execute()
    return read


def online_figures(bench: Bench) -> dict[str, Any]:
    """In-process online reads: the Feast SDK, the optimized path and the raw-Redis floor."""
    store, users, movies = bench.store, bench.users, bench.movies
    fast = RecommendationFeatures(store, bench.profile)
    read_user = online_reader(store, bench.profile)
    floor = raw_floor(store, bench.profile)
    single = {
        "sdk": time_calls(lambda u: serving.user_features(store, u), users),
        "optimized": time_calls(lambda u: read_user([USER_VIEW], [{"user_id": u}]), users),
    }
    many = {
        "sdk": time_calls(lambda u: serving.candidate_features(store, u, movies), users[:300]),
        "optimized": time_calls(lambda u: fast.recommendation_features(u, movies), users[:300]),
    }
    if floor:
        single["raw_redis"] = time_calls(lambda u: floor([(USER_VIEW, {"user_id": u})]), users)
        many["raw_redis"] = time_calls(lambda u: floor(
            [(USER_VIEW, {"user_id": u})] + [(MOVIE_VIEW, {"movie_id": m}) for m in movies]
            + [(PAIR_VIEW, {"user_id": u, "movie_id": m}) for m in movies]), users[:300])
    return {"user_1": single, "user_x_100": many}


def http_figures(bench: Bench, size: str, log_dir: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """The same requests against the course API (one worker without and with the served-feature log, then two)
    and `feast serve`, in this run, on loopback; and the log's accounting of the logged one-worker run.

    `feast_serve_user_x_100` asks Feast's server for what a recommendation needs before scoring:
    one user's features and the same 100 candidates' movie and interaction features.
    """
    n, seconds = SIZES[size].requests, SIZES[size].max_seconds
    users, movies = bench.users, bench.movies
    user_refs, candidate_refs = serving.feature_refs([USER_VIEW]), serving.feature_refs()
    recommend = [("POST", "/recommendations", {"user_id": users[i % len(users)], "movie_ids": movies, "k": 10})
                 for i in range(n)]
    out = {}
    unlogged = Profile(bench.profile.name, bench.profile.settings.model_copy(update={"feature_log": False}))
    with start_course_api(unlogged, log_dir / "course-api-no-log.log") as api:
        out["course_api_recommendations_no_log"] = http_load(
            [(m, api.url + path, b) for m, path, b in recommend], max_seconds=seconds, server_cpu=api.cpu_seconds)
    feature_log.clear_log(bench.profile)
    with start_course_api(bench.profile, log_dir / "course-api.log") as api:
        out["course_api_user_1"] = http_load(
            [("GET", f"{api.url}/users/{users[i % len(users)]}/features", None) for i in range(n)],
            max_seconds=seconds, server_cpu=api.cpu_seconds)
        out["course_api_recommendations"] = http_load([(m, api.url + path, b) for m, path, b in recommend],
                                                      max_seconds=seconds, server_cpu=api.cpu_seconds)
        answered = served_responses(api.url)
    accounting = log_accounting(bench.profile, answered)  # after the clean shutdown wrote the queue
    with start_course_api(bench.profile, log_dir / "course-api-2-workers.log", workers=2) as api:
        out["course_api_recommendations_2_workers"] = http_load(
            [(m, api.url + path, b) for m, path, b in recommend], max_seconds=seconds, server_cpu=api.cpu_seconds)
    # One worker, like the course API: gunicorn forks workers after Feast opened its SQL-registry
    # connections, and two workers sharing them failed at boot ("unexpected result EMPTY_QUERY").
    with start_feast_serve(bench.profile, log_dir / "feast-serve.log", workers=1, max_requests=0) as feast:
        url = f"{feast.url}/get-online-features"
        out["feast_serve_user_1"] = http_load(
            [("POST", url, {"entities": {"user_id": [users[i % len(users)]]}, "features": user_refs})
             for i in range(n)], max_seconds=seconds, server_cpu=feast.cpu_seconds)
        out["feast_serve_user_x_100"] = http_load(
            [("POST", url, {"entities": {"user_id": [users[i % len(users)]] * len(movies), "movie_id": movies},
                            "features": candidate_refs}) for i in range(n)],
            max_seconds=seconds, server_cpu=feast.cpu_seconds)
    return out, accounting


def served_responses(url: str) -> dict[str, float]:
    """The API's own counts so far: recommendations answered 200, and log records dropped or failed."""
    frame = parse_metrics(httpx.get(f"{url}/metrics", timeout=10).text)
    requests = sample_values(frame, "course_requests_total", ["endpoint", "status"])
    records = sample_values(frame, "course_feature_log_records_total", ["outcome"])
    return {"responses": float(requests.get(("/recommendations", "200"), 0.0)),
            **{outcome: float(records.get(outcome, 0.0)) for outcome in ("dropped", "failed")}}


def log_accounting(profile: Profile, answered: dict[str, float]) -> dict[str, int]:
    """Every response answered against the distinct request ids the served-feature log holds."""
    logged = int(feature_log.read_log(profile)[REQUEST_ID_FIELD].nunique())
    responses = int(answered["responses"])
    return {"responses": responses, "logged": logged, "dropped": int(answered["dropped"]),
            "failed": int(answered["failed"]), "lost": responses - logged}


def historical_figures(name: str, size: str, bench: Bench, workdir: str | None) -> dict[str, Any]:
    """Point-in-time retrieval of real watch events: Feast defaults vs the tuned path."""
    profile = bench.profile if bench.profile.name == name else bench_profile(name, workdir)
    if bench.profile.name != name:
        write_offline(build_feature_tables(datasets.load(bench.profile.raw_dir)), profile)
        serving.apply(load_store(profile), profile)
    rows = SIZES[size].historical_rows
    events = bench.pairs.sample(min(rows, len(bench.pairs)), random_state=1)
    entity_df = events[["user_id", "movie_id", "event_timestamp"]].reset_index(drop=True)
    default_rows = min(len(entity_df), PG_DEFAULT_CAP) if profile.name == "enterprise" else len(entity_df)
    default_store, tuned_store = load_store(profile), load_store(profile, tuned=True)
    for store, retrieve in ((default_store, serving.historical_features), (tuned_store, historical_features_tuned)):
        retrieve(store, entity_df.iloc[:100], serving.feature_refs())  # warm-up: registry, connections, engines
    start = time.perf_counter()
    plain = serving.historical_features(default_store, entity_df.iloc[:default_rows], serving.feature_refs())
    default_s = time.perf_counter() - start
    start = time.perf_counter()
    tuned = historical_features_tuned(tuned_store, entity_df, serving.feature_refs())
    tuned_s = time.perf_counter() - start
    same = tuned.iloc[:0].columns.equals(plain.columns)
    if same:
        key = ["user_id", "movie_id", "event_timestamp"]
        check = tuned.merge(plain[key], on=key).sort_values(key, ignore_index=True)
        try:
            pd.testing.assert_frame_equal(check, plain.sort_values(key, ignore_index=True)[check.columns],
                                          check_exact=False, rtol=1e-6)
        except AssertionError:
            same = False
    return {"rows": len(entity_df), "default_rows": default_rows, "default_s": default_s, "tuned_s": tuned_s,
            "default_rows_per_s": default_rows / default_s, "tuned_rows_per_s": len(entity_df) / tuned_s,
            "identical_results": bool(same)}


def run(profile_name: str, size: str = "small", workdir: str | None = None) -> dict[str, Any]:
    """Every benchmark figure in one process against real stores; returns the JSON document."""
    profile = bench_profile(profile_name, workdir)
    started = time.perf_counter()
    bench, materialize = prepare(profile, size)
    result: dict[str, Any] = {
        "profile": profile_name, "size": size, "measured_at": datetime.now(timezone.utc).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "materialize": materialize,
        "model": {"scoring": ranker.load(profile).runtime},  # compiled trees, or scikit-learn without a C compiler
        "online": {k: dict(v.items()) for k, v in online_figures(bench).items()},
    }
    result["http"], result["feature_log"] = http_figures(bench, size, Path(profile.repo_dir) / "logs")
    result["historical"] = {name: historical_figures(name, size, bench, workdir) for name in PROFILES}
    result["realtime"] = realtime_bench.figures(bench, SIZES[size], Path(profile.repo_dir) / "logs")
    result["seconds"] = time.perf_counter() - started
    return result


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """The speed-ups the course claims, each computed from this run's figures."""
    online, http = result["online"], result["http"]
    out = {
        "user_1: sdk p99 / optimized p99": online["user_1"]["sdk"].p99_ms / online["user_1"]["optimized"].p99_ms,
        "user_x_100: sdk p99 / optimized p99":
            online["user_x_100"]["sdk"].p99_ms / online["user_x_100"]["optimized"].p99_ms,
        "http user_1: course API rps / feast serve rps":
            http["course_api_user_1"].rps / http["feast_serve_user_1"].rps,
        "http user x 100: recommendations rps / feast serve features rps":
            http["course_api_recommendations"].rps / http["feast_serve_user_x_100"].rps,
        "http recommendations: 2 workers rps / 1 worker rps":
            http["course_api_recommendations_2_workers"].rps / http["course_api_recommendations"].rps,
        "materialize: default / tuned": result["materialize"]["speedup"],
        "http recommendations: p99 with the feature log / without":
            http["course_api_recommendations"].p99_ms / http["course_api_recommendations_no_log"].p99_ms,
    }
    out.update({f"historical {name}: default rows/s -> tuned rows/s": h["tuned_rows_per_s"] / h["default_rows_per_s"]
                for name, h in result["historical"].items()})
    return out


def goals(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The course's speed goals, each with the measured figure and whether this run met it."""
    online, http = result["online"]["user_x_100"], result["http"]
    checks = {
        "online user_x_100: optimized p99 <= raw Redis p99":
            (online["optimized"].p99_ms, online["raw_redis"].p99_ms if "raw_redis" in online else None, "<="),
        "online user_x_100: sdk p99 >= 4x optimized p99":
            (online["sdk"].p99_ms / online["optimized"].p99_ms, 4.0, ">="),
        "http user_1: course API rps >= 2x feast serve rps":
            (http["course_api_user_1"].rps / http["feast_serve_user_1"].rps, 2.0, ">="),
        "http user_1: course API p99 <= 10 ms": (http["course_api_user_1"].p99_ms, 10.0, "<="),
        "http recommendations (1 worker): p99 <= 10 ms": (http["course_api_recommendations"].p99_ms, 10.0, "<="),
        "http recommendations (1 worker): server CPU <= 3 ms per request":
            (http["course_api_recommendations"].server_cpu_ms, 3.0, "<="),
        "http recommendations: rps >= 3x feast serve user_x_100 rps":
            (http["course_api_recommendations"].rps / http["feast_serve_user_x_100"].rps, 3.0, ">="),
        "http recommendations: rps >= 0.25x course API user_1 rps":
            (http["course_api_recommendations"].rps / http["course_api_user_1"].rps, 0.25, ">="),
        "http recommendations: p99 with the feature log <= 1.1x without": (
            http["course_api_recommendations"].p99_ms / http["course_api_recommendations_no_log"].p99_ms, 1.1, "<="),
        "feature log: every response logged (responses - logged records)": (result["feature_log"]["lost"], 0, "<="),
        "materialize: tuned >= 3x faster": (result["materialize"]["speedup"], 3.0, ">="),
        "historical enterprise: tuned >= 50k rows/s": (result["historical"]["enterprise"]["tuned_rows_per_s"],
                                                         50_000.0, ">="),
        "ingest: POST /events events/s >= 2x feast serve POST /push": (
            result["realtime"]["course_api_events"].rps / result["realtime"]["feast_serve_push"].rps, 2.0, ">="),
        "event to online (under recommendation load): p99 < 10 ms":
            (result["realtime"]["event_to_online"].p99_ms, EVENT_TO_ONLINE_GOAL_MS, "<="),
    }
    return {name: {"measured": value, "goal": goal, "met": None if goal is None else
                   (value <= goal if op == "<=" else value >= goal)}
            for name, (value, goal, op) in checks.items()}


def to_json(result: dict[str, Any]) -> dict[str, Any]:
    """The result with every Latency reduced to its figures, plus ratios and goals."""
    def plain(value: Any) -> Any:
        if isinstance(value, Latency):
            return value.summary()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return {**plain(result), "ratios": ratios(result), "goals": goals(result)}


def plot(result: dict[str, Any], folder: Any) -> list[Any]:
    """Latency CDFs and a bar chart of the measured speed-ups, saved as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    panels = [("online user x 100 candidates", result["online"]["user_x_100"]),
              ("online one user", result["online"]["user_1"]),
              ("HTTP one user", {k: v for k, v in result["http"].items() if k.endswith("user_1")}),
              ("HTTP user x 100 candidates", {k: v for k, v in result["http"].items()
                                              if "recommendations" in k or k.endswith("x_100")})]
    fig, axes = plt.subplots(1, len(panels), figsize=(20, 3.8))
    for ax, (title, figures) in zip(axes, panels):
        for name, lat in figures.items():
            values = np.sort(lat.samples_ms)
            ax.plot(values, np.linspace(0, 1, len(values)), label=f"{name} (p99 {lat.p99_ms:.2f} ms)")
        ax.set(xscale="log", xlabel="latency (ms, log scale)", ylabel="share of requests", title=title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    cdf = folder / "latency_cdf.png"
    fig.savefig(cdf, dpi=110)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    measured = ratios(result)
    ax.barh(list(measured), list(measured.values()), color="steelblue")
    ax.axvline(1, color="gray", lw=1)
    ax.set(xscale="log", xlabel="speed-up (x, log scale)",
           title=f"measured speed-ups ({result['size']}, {result['profile']})")
    fig.tight_layout()
    bars = folder / "speedups.png"
    fig.savefig(bars, dpi=110)
    plt.close("all")
    return [cdf, bars]
