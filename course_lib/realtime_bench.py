"""`course bench`'s real-time figures (notebook 08), measured in the benchmark's own project:

- ingest throughput: the same watch events sent to the course API's `POST /events` and, as
  precomputed interaction rows, to `feast serve`'s `POST /push`, in batches of the same size;
- event-to-online freshness: `POST /events` sent to the value readable through
  `GET /users/{id}/features`, while a concurrent `/recommendations` load runs;
- the on-demand view's added latency: Feast's online read of 100 candidates with and without it.
"""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

from course_lib import datasets, event_state, events, realtime, serving
from course_lib.background import start_course_api, start_feast_serve
from course_lib.realtime import new_events
from course_lib.timing import Latency, http_load, latency
from feature_repo.definitions import PAIR_VIEW, TIMESTAMP_FIELD
from feature_repo.names import GENRE_MATCH, GENRE_MATCH_VIEW, PUSH_SOURCES

BATCH = 10  # events per request, for both servers
WARMUP = 20  # calls per variant discarded before timing


def push_rows(batch: list[dict[str, Any]], movies: dict[int, event_state.Movie]) -> dict[str, list[Any]]:
    """The interaction rows of a batch as `feast serve`'s `/push` takes them (first watches, so no state needed)."""
    rows = []
    for event in batch:
        pair = event_state.PairState(latest_us=1, count=1, rating=event["rating"], watch_seconds=event["watch_seconds"])
        rows.append({"user_id": event["user_id"], "movie_id": event["movie_id"],
                     TIMESTAMP_FIELD: event["event_timestamp"],
                     **event_state.pair_features(pair, movies[event["movie_id"]])})
    return {column: [row[column] for row in rows] for column in rows[0]}


def ingest_figures(profile: Any, dataset: datasets.Dataset, sent: list[dict[str, Any]], seconds: float,
                   log_dir: Path) -> dict[str, Latency]:
    """Events/s of `feast serve`'s `POST /push` and of `POST /events` on the same events, BATCH per request.

    `feast serve` goes first: Redis skips a row not newer than the stored one, so the second
    server to write the same rows would be spared writes; the course API writes anyway (its
    version times are one microsecond past the stored rows).
    """
    batches = [sent[i:i + BATCH] for i in range(0, len(sent), BATCH)]
    movies = event_state.catalogue(dataset.movies)
    out = {}
    with start_feast_serve(profile, log_dir / "feast-serve-push.log", workers=1, max_requests=0) as feast:
        out["feast_serve_push"] = http_load(
            [("POST", f"{feast.url}/push", {"push_source_name": PUSH_SOURCES[PAIR_VIEW], "df": push_rows(b, movies),
                                            "to": "online"}) for b in batches],
            max_seconds=seconds, server_cpu=feast.cpu_seconds)
    with start_course_api(profile, log_dir / "course-api-events.log") as api:
        out["course_api_events"] = http_load([("POST", f"{api.url}/events", {"events": b}) for b in batches],
                                             max_seconds=seconds, server_cpu=api.cpu_seconds)
    return out


def background_load(requests: list[tuple[str, str, Any]], running: Any) -> None:
    """`http_load` in a process of its own until it is stopped, `running` set once its warm-up is done
    (`freshness_figures`)."""
    http_load(requests[:WARMUP], warmup=0)
    running.set()
    http_load(requests[WARMUP:], warmup=0, max_seconds=3_600)


def freshness_figures(profile: Any, probes: list[dict[str, Any]], users: list[int], movies: list[int],
                      log_dir: Path) -> Latency:
    """Event-to-online milliseconds (`realtime.event_to_online`) under a concurrent `/recommendations` load.

    The first probe warms up (it opens the API's event ingestor) and is not counted. The load runs in
    a process of its own, and the probes start once it runs: in a thread beside the probes, a probe
    waited for the GIL behind the load's event loop (Python hands it over every 5 ms), which the
    server never saw.
    """
    with start_course_api(profile, log_dir / "course-api-freshness.log") as api:
        realtime.event_to_online(api.url, probes[:1])
        load = [("POST", f"{api.url}/recommendations", {"user_id": users[i % len(users)], "movie_ids": movies, "k": 10})
                for i in range(100_000)]
        spawn = multiprocessing.get_context("spawn")
        running = spawn.Event()
        background = spawn.Process(target=background_load, args=(load, running), daemon=True)
        background.start()
        try:
            if not running.wait(timeout=60):
                raise RuntimeError("the background recommendation load did not start within 60 s")
            samples = realtime.event_to_online(api.url, probes[1:])
        finally:
            background.terminate()
            background.join()
    return latency(samples)


def on_demand_figures(store: Any, users: list[int], movies: list[int]) -> dict[str, Any]:
    """Feast's online read of one user and 100 candidates, without and with the on-demand view, the two
    calls alternating per user (so drift on a shared machine hits both alike)."""
    plain = serving.feature_refs()
    refs = {"without_on_demand": plain, "with_on_demand": [*plain, f"{GENRE_MATCH_VIEW}:{GENRE_MATCH}"]}
    samples: dict[str, list[float]] = {name: [] for name in refs}
    for i, user in enumerate(users):
        rows = [{"user_id": user, "movie_id": m} for m in movies[:100]]
        for name, features in refs.items():
            started = time.perf_counter()
            store.get_online_features(features=features, entity_rows=rows)
            if i >= WARMUP:
                samples[name].append((time.perf_counter() - started) * 1000)
    without, added = latency(samples["without_on_demand"]), latency(samples["with_on_demand"])
    return {"without_on_demand": without, "with_on_demand": added,
            "added_p50_ms_per_100": added.p50_ms - without.p50_ms,
            "added_p99_ms_per_100": added.p99_ms - without.p99_ms}


def figures(bench: Any, size: Any, log_dir: Path) -> dict[str, Any]:
    """Every real-time figure at a `bench.BenchSize`: the real-time definitions registered first (state online as
    of the log's end)."""
    dataset = datasets.load(bench.profile.raw_dir)
    end = dataset.watch_events[TIMESTAMP_FIELD].max().to_pydatetime()
    events.enable(bench.store, bench.profile, dataset, end)
    n, seconds = max(size.requests // BATCH, 100) * BATCH, size.max_seconds
    sent = new_events(dataset, bench.users, n + 1 + size.freshness_probes, seed=1)  # every event a first watch
    ingest = ingest_figures(bench.profile, dataset, sent[:n], seconds, log_dir)
    return {"batch_events": BATCH, **ingest,
            "events_per_s": {name: lat.rps * BATCH for name, lat in ingest.items() if lat.rps},
            "event_to_online": freshness_figures(bench.profile, sent[n:], bench.users, bench.movies, log_dir),
            "on_demand": on_demand_figures(bench.store, bench.users[:size.on_demand_users], bench.movies)}
