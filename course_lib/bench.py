"""Measurement tools for 2.7.5: latency statistics, in-process timing and a bounded HTTP load.

Every figure the course reports about speed comes from these functions, in that run.
Loads are closed-loop, bounded in requests and seconds, and only ever target 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import numpy as np

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Latency:
    """Latency percentiles of one measured operation (and throughput for HTTP loads)."""

    n: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    samples_ms: list[float] = field(repr=False, default_factory=list)
    rps: float | None = None
    errors: int | None = None
    error_kinds: dict[str, int] | None = None
    server_cpu_ms: float | None = None  # server CPU time per request (user + system), for HTTP loads

    def summary(self) -> dict[str, Any]:
        """The figures without the raw samples, for JSON and tables."""
        return {k: v for k, v in asdict(self).items() if k != "samples_ms" and v is not None}


def latency(samples_ms: Iterable[float], seconds: float | None = None, errors: int | None = None,
            error_kinds: dict[str, int] | None = None) -> Latency:
    """Percentiles of raw samples; `seconds` (wall time of a load) adds requests per second."""
    values = np.asarray(list(samples_ms), dtype=float)
    if values.size == 0:
        raise ValueError("no samples: the measured operation never completed")
    rps = None if seconds is None else (values.size + (errors or 0)) / seconds
    return Latency(n=int(values.size), p50_ms=float(np.percentile(values, 50)),
                   p99_ms=float(np.percentile(values, 99)), mean_ms=float(values.mean()),
                   samples_ms=values.round(4).tolist(), rps=rps, errors=errors, error_kinds=error_kinds)


def time_calls(call: Callable[[Any], Any], inputs: list[Any], warmup: int = 20) -> Latency:
    """Time `call(x)` for each input in process (the first `warmup` calls are discarded)."""
    for x in inputs[:warmup]:
        call(x)
    samples = []
    for x in inputs[warmup:]:
        start = time.perf_counter_ns()
        call(x)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return latency(samples)


def ensure_loopback(url: str) -> None:
    """Refuse any load target that is not this machine."""
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"load tests only target 127.0.0.1, not {host!r}")


HTTP_TIMEOUT_S = 10.0


def encode_request(method: str, url: str, body: Any = None) -> bytes:
    """One HTTP/1.1 keep-alive request as bytes (a JSON body if given)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    payload = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(payload)}\r\n"
    if body is not None:
        head += "Content-Type: application/json\r\n"
    return (head + "\r\n").encode() + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one whole HTTP/1.1 response (Content-Length framed); return its status and whether the connection stays open."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.rstrip("\r\n").split("\r\n")
    headers = {name.strip().lower(): value.strip().lower() for name, value in (line.split(":", 1) for line in lines)}
    if "content-length" not in headers:
        raise ValueError(f"response without Content-Length ({headers.get('transfer-encoding', 'no framing')}): "
                         "the load client reads Content-Length framed responses only")
    await reader.readexactly(int(headers["content-length"]))
    version, status = status_line.split(" ", 2)[:2]
    keep_alive = headers.get("connection", "keep-alive" if version == "HTTP/1.1" else "close") == "keep-alive"
    return int(status), keep_alive


# A raw asyncio client, not httpx: httpx spends about a millisecond of CPU per request, so on a
# 2-core machine the load generator, not the server, would set the measured throughput.
async def _closed_loop(requests: list[tuple[str, str, Any]], concurrency: int,
                       max_seconds: float) -> tuple[list[float], Counter, float]:
    """Send requests over `concurrency` keep-alive connections, each waiting for its answer before the next."""
    queue = iter([(url, encode_request(method, url, body)) for method, url, body in requests])
    samples: list[float] = []
    errors: Counter = Counter()
    deadline = time.monotonic() + max_seconds

    async def worker() -> None:
        connection = None
        for url, request in queue:
            if time.monotonic() > deadline:
                break
            start = time.perf_counter_ns()
            try:
                if connection is None:
                    parts = urlsplit(url)
                    connection = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port),
                                                        HTTP_TIMEOUT_S)
                connection[1].write(request)
                status, keep_alive = await asyncio.wait_for(read_response(connection[0]), HTTP_TIMEOUT_S)
                failure = f"HTTP {status}" if status >= 400 else None
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                failure, keep_alive = type(exc).__name__, False
            if not keep_alive and connection is not None:
                connection[1].close()
                connection = None
            if failure:
                errors[failure] += 1
            else:
                samples.append((time.perf_counter_ns() - start) / 1e6)
        if connection is not None:
            connection[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, errors, time.perf_counter() - started


def http_load(requests: list[tuple[str, str, Any]], concurrency: int = 4, max_seconds: float = 20,
              warmup: int = 50, server_cpu: Callable[[], float] | None = None) -> Latency:
    """A bounded closed-loop load: (method, url, json body) requests, at most `max_seconds`.

    `server_cpu()` (the server's CPU seconds so far), if given, adds its CPU time per request.
    """
    for _, url, _ in requests:
        ensure_loopback(url)
    asyncio.run(_closed_loop(requests[:warmup], concurrency, max_seconds))
    cpu_before = server_cpu() if server_cpu else 0.0
    samples, errors, seconds = asyncio.run(_closed_loop(requests[warmup:], concurrency, max_seconds))
    result = latency(samples, seconds=seconds, errors=sum(errors.values()), error_kinds=dict(errors))
    if server_cpu:
        result = replace(result, server_cpu_ms=1000 * (server_cpu() - cpu_before) / (result.n + result.errors))
    return result


# --- the benchmark: `course bench` -----------------------------------------------------------

# size -> (dataset size preset, entity rows for historical retrieval, requests per HTTP load, seconds cap)
SIZES = {"small": ("small", 5_000, 1_500, 10.0), "full": ("full", 100_000, 20_000, 30.0)}
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
    import os

    from course_lib.config import ENV_DEFAULTS, resolve_profile

    project = os.environ.get("COURSE_BENCH_PROJECT", ENV_DEFAULTS["COURSE_BENCH_PROJECT"])
    env = {**os.environ, "FEAST_PROJECT": project, "FEAST_OFFLINE_SCHEMA": project}
    if workdir:
        env["COURSE_WORKDIR"] = workdir
    return resolve_profile(name, env)


def prepare(profile: Any, size: str) -> tuple[Bench, dict]:
    """Write the data, then materialize it twice (default, then tuned) and compare the online values."""
    from course_lib import datasets, ranker, serving
    from course_lib.adapter import build_feature_tables, write_offline
    from course_lib.config import load_store

    dataset = datasets.synthetic(**datasets.SIZES[SIZES[size][0]])
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
        serving.reset_online(store, profile)
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


def raw_floor(store: Any) -> Callable[[list[tuple[str, dict]]], Any] | None:
    """One raw redis-py pipeline of HMGETs on Feast's own keys, no decoding (None off Redis)."""
    from course_lib.optimization import standalone_redis
    from course_lib.redis_format import redis_field, redis_key
    from feature_repo.definitions import VIEWS

    if not standalone_redis(store):
        return None
    import redis as redis_py

    from feast.infra.online_stores.redis import RedisOnlineStore

    nodes, params = RedisOnlineStore._parse_connection_string(store.config.online_store.connection_string)
    client = redis_py.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **params)
    fields = {v: [redis_field(v, f.name) for f in schema] + [f"_ts:{v}".encode()] for v, (_, _, schema) in VIEWS.items()}

    def read(keys: list[tuple[str, dict]]) -> Any:
        with client.pipeline(transaction=False) as pipe:
            for view, row in keys:
                pipe.hmget(redis_key(view, row, store.project), fields[view])
            return pipe.execute()
    return read


def online_figures(bench: Bench) -> dict:
    """In-process online reads: the Feast SDK, the optimized path and the raw-Redis floor."""
    from course_lib import serving
    from course_lib.optimization import RecommendationFeatures, online_reader

    store, users, movies = bench.store, bench.users, bench.movies
    fast = RecommendationFeatures(store, bench.profile)
    read_user = online_reader(store)
    floor = raw_floor(store)
    single = {
        "sdk": time_calls(lambda u: serving.user_features(store, u), users),
        "optimized": time_calls(lambda u: read_user(["user_profile_features"], [{"user_id": u}]), users),
    }
    many = {
        "sdk": time_calls(lambda u: serving.candidate_features(store, u, movies), users[:300]),
        "optimized": time_calls(lambda u: fast.recommendation_features(u, movies), users[:300]),
    }
    if floor:
        single["raw_redis"] = time_calls(lambda u: floor([("user_profile_features", {"user_id": u})]), users)
        many["raw_redis"] = time_calls(lambda u: floor(
            [("user_profile_features", {"user_id": u})] + [("movie_metadata_features", {"movie_id": m}) for m in movies]
            + [("user_movie_interaction_features", {"user_id": u, "movie_id": m}) for m in movies]), users[:300])
    return {"user_1": single, "user_x_100": many}


def http_figures(bench: Bench, size: str, log_dir: Any) -> dict:
    """The same requests against the course API (one worker, then two) and `feast serve`, in this run, on loopback.

    `feast_serve_user_x_100` asks Feast's server for what a recommendation needs before scoring:
    one user's features and the same 100 candidates' movie and interaction features.
    """
    from course_lib.background import start_course_api, start_feast_serve
    from course_lib.serving import feature_refs

    _, _, n, seconds = SIZES[size]
    users, movies = bench.users, bench.movies
    user_refs = [f"user_profile_features:{f}" for f in
                 ("age", "avg_rating", "total_movies_watched", "favorite_genre", "account_created_days")]
    recommend = [("POST", "/recommendations", {"user_id": users[i % len(users)], "movie_ids": movies, "k": 10})
                 for i in range(n)]
    out = {}
    with start_course_api(bench.profile, log_dir / "course-api.log") as api:
        out["course_api_user_1"] = http_load(
            [("GET", f"{api.url}/users/{users[i % len(users)]}/features", None) for i in range(n)],
            max_seconds=seconds, server_cpu=api.cpu_seconds)
        out["course_api_recommendations"] = http_load([(m, api.url + path, b) for m, path, b in recommend],
                                                      max_seconds=seconds, server_cpu=api.cpu_seconds)
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
                            "features": feature_refs()}) for i in range(n)],
            max_seconds=seconds, server_cpu=feast.cpu_seconds)
    return out


def historical_figures(name: str, size: str, bench: Bench | None, workdir: str | None) -> dict:
    """Point-in-time retrieval of real watch events: Feast defaults vs the tuned path."""
    from course_lib import serving
    from course_lib.config import load_store
    from course_lib.optimization import historical_features_tuned

    profile = bench.profile if bench and bench.profile.name == name else bench_profile(name, workdir)
    if not (bench and bench.profile.name == name):
        from course_lib import datasets
        from course_lib.adapter import build_feature_tables, write_offline

        write_offline(build_feature_tables(datasets.load(bench.profile.raw_dir)), profile)
        serving.apply(load_store(profile), profile)
    rows = SIZES[size][1]
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
        import pandas as pd

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


def run(profile_name: str, size: str = "small", workdir: str | None = None) -> dict:
    """Every benchmark figure in one process against real stores; returns the JSON document."""
    import platform
    from datetime import datetime, timezone
    from pathlib import Path

    from course_lib.config import PROFILES

    profile = bench_profile(profile_name, workdir)
    started = time.perf_counter()
    bench, materialize = prepare(profile, size)
    result: dict[str, Any] = {
        "profile": profile_name, "size": size, "measured_at": datetime.now(timezone.utc).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "materialize": materialize,
        "model": {"scoring": ranker_runtime(profile)},
        "online": {k: {m: lat for m, lat in v.items()} for k, v in online_figures(bench).items()},
        "http": http_figures(bench, size, Path(profile.repo_dir) / "logs"),
        "historical": {name: historical_figures(name, size, bench, workdir) for name in PROFILES},
    }
    result["seconds"] = time.perf_counter() - started
    return result


def ranker_runtime(profile: Any) -> str:
    """What scores the benchmark's recommendations: compiled trees, or scikit-learn without a C compiler."""
    from course_lib import ranker

    return ranker.load(profile).runtime


def ratios(result: dict) -> dict[str, float]:
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
    }
    out.update({f"historical {name}: default rows/s -> tuned rows/s": h["tuned_rows_per_s"] / h["default_rows_per_s"]
                for name, h in result["historical"].items()})
    return out


def goals(result: dict) -> dict[str, dict]:
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
        "materialize: tuned >= 3x faster": (result["materialize"]["speedup"], 3.0, ">="),
        "historical enterprise: tuned >= 50k rows/s": (result["historical"]["enterprise"]["tuned_rows_per_s"],
                                                         50_000.0, ">="),
    }
    return {name: {"measured": value, "goal": goal, "met": None if goal is None else
                   (value <= goal if op == "<=" else value >= goal)}
            for name, (value, goal, op) in checks.items()}


def to_json(result: dict) -> dict:
    """The result with every Latency reduced to its figures, plus ratios and goals."""
    def plain(value: Any) -> Any:
        if isinstance(value, Latency):
            return value.summary()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return {**plain(result), "ratios": ratios(result), "goals": goals(result)}


def plot(result: dict, folder: Any) -> list[Any]:
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
    ax.set(xscale="log", xlabel="speed-up (x, log scale)", title=f"measured speed-ups ({result['size']}, {result['profile']})")
    fig.tight_layout()
    bars = folder / "speedups.png"
    fig.savefig(bars, dpi=110)
    plt.close("all")
    return [cdf, bars]
