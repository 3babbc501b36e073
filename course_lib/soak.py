"""The availability soak behind `course verify` (완료 기준: 피처 서비스 가용성 99.9% 이상).

A bounded, paced loopback load of recommendations and feature reads against a running API,
with outages injected on a schedule (`Drill`: a Redis server stopped and restarted, PostgreSQL cut
behind a forwarder). Every request is recorded as a `Sample` (when it was sent, when it finished,
its status); `summarize` turns samples and the outage windows into the figures: availability
outside the windows, status codes inside them, recovery after each. The accounting is pure
functions over samples, so tests check it on synthetic samples computed by hand.
"""
from __future__ import annotations

import asyncio
import gc
import itertools
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from course_lib.errors import CourseError
from course_lib.messages import say
from course_lib.timing import encode_request, ensure_loopback, latency, read_response

OK = 200
NO_ANSWER = 0  # status of a request that got no HTTP answer (refused, reset, timed out)
REQUEST_TIMEOUT_S = 5.0
RECOVERY_HORIZON_S = 10.0  # failures this long after an outage (or until the next one) count against its recovery
KINDS = {"recommendations": "POST /recommendations (user + 100 candidates)",
         "user_features": "GET /users/{id}/features"}
Clock = Callable[[], float]


class SoakError(CourseError):
    """An outage drill could not break or restore its service; the message names it."""


# --- samples, windows and their accounting -------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """One request of the soak: its kind, when it was sent and answered (seconds since the start), its status."""

    kind: str
    sent_s: float
    done_s: float
    status: int  # NO_ANSWER when no HTTP response came back

    @property
    def latency_ms(self) -> float:
        """Time from sending to the answer (or the failure)."""
        return (self.done_s - self.sent_s) * 1000


@dataclass(frozen=True)
class Window:
    """An injected outage: from the moment the service went away until it answered again."""

    name: str  # "redis" or "postgres"
    start_s: float
    end_s: float
    expected: tuple[int, ...]  # the only statuses acceptable for requests sent while the service was down
    detail: str = ""
    down_s: float | None = None  # when the service was certainly down (default: start_s) ...
    up_s: float | None = None  # ... until it was being restarted (default: end_s)

    @property
    def down(self) -> tuple[float, float]:
        """The span in which every request must get an expected status."""
        return (self.start_s if self.down_s is None else self.down_s, self.end_s if self.up_s is None else self.up_s)


def status_label(status: int) -> str:
    """A status as the tables show it."""
    return "no answer" if status == NO_ANSWER else str(status)


def overlaps(sample: Sample, window: Window) -> bool:
    """Whether the request was in flight at any moment of the window."""
    return sample.sent_s < window.end_s and sample.done_s > window.start_s


def outside(samples: Sequence[Sample], windows: Sequence[Window]) -> list[Sample]:
    """The requests that overlap no outage window."""
    return [s for s in samples if not any(overlaps(s, w) for w in windows)]


def recovery_s(samples: Sequence[Sample], window: Window, until: float) -> float | None:
    """Seconds from the window's end until the first answer 200 after which every request sent before `until`
    succeeded (`summarize` uses the next window's start or `RECOVERY_HORIZON_S`); None when none succeeded."""
    after = [s for s in samples if window.end_s <= s.sent_s < until]
    last_failure = max((s.sent_s for s in after if s.status != OK), default=-math.inf)
    good = [s.done_s for s in after if s.status == OK and s.sent_s > last_failure]
    return max(0.0, min(good) - window.end_s) if good else None


@dataclass(frozen=True)
class WindowReport:
    """What the API answered to the requests sent during one outage, and how fast it recovered."""

    name: str
    start_s: float
    end_s: float
    detail: str
    requests: int  # sent while the service was down (`Window.down`)
    statuses: dict[str, int]  # of those requests
    in_flight: dict[str, int]  # statuses of requests sent before the window and still running at its start
    expected: list[int]
    only_expected: bool
    recovery_s: float | None


@dataclass
class SoakReport:
    """Every figure of one soak; `samples` keeps the raw requests for plots."""

    seconds: float
    rate: float
    requests: int
    statuses: dict[str, int]
    outside_requests: int  # requests in flight during no outage window
    outside_ok: int
    availability: float | None  # share of 200s among the requests outside every window
    windows: list[WindowReport]
    latency: dict[str, dict[str, Any]]  # per kind, requests outside the windows that answered 200
    samples: list[Sample] = field(repr=False, default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures, without the raw samples."""
        out = asdict(self)
        del out["samples"]
        return out

    def window(self, name: str) -> WindowReport | None:
        """The report of the named window, if it was injected."""
        return next((w for w in self.windows if w.name == name), None)


def count_statuses(samples: Sequence[Sample]) -> dict[str, int]:
    """Requests per status label, in status order."""
    counts = Counter(s.status for s in samples)
    return {status_label(code): counts[code] for code in sorted(counts)}


def acceptable(sample: Sample, window: Window) -> bool:
    """A request sent while the service was down got an expected status, or a 200 answered after it came back."""
    return sample.status in window.expected or (sample.status == OK and sample.done_s >= window.down[1])


def window_report(samples: Sequence[Sample], window: Window, until: float) -> WindowReport:
    """The statuses of the requests sent while the service was down (judged), those in flight at the window's start,
    the recovery after it."""
    first, last = window.down
    sent = [s for s in samples if first <= s.sent_s < last]
    running = [s for s in samples if s.sent_s < window.start_s < s.done_s]
    return WindowReport(name=window.name, start_s=window.start_s, end_s=window.end_s, detail=window.detail,
                        requests=len(sent), statuses=count_statuses(sent), in_flight=count_statuses(running),
                        expected=list(window.expected), only_expected=all(acceptable(s, window) for s in sent),
                        recovery_s=recovery_s(samples, window, until))


def summarize(samples: Sequence[Sample], windows: Sequence[Window], seconds: float, rate: float) -> SoakReport:
    """Availability outside the windows, statuses inside them, recovery after each, latency of the good answers."""
    ordered = sorted(windows, key=lambda w: w.start_s)
    ends = [min(w.end_s + RECOVERY_HORIZON_S, later) for w, later in
            zip(ordered, [w.start_s for w in ordered[1:]] + [math.inf])]
    calm = outside(samples, ordered)
    ok = [s for s in calm if s.status == OK]
    latencies = {kind: latency([s.latency_ms for s in ok if s.kind == kind]).summary()
                 for kind in KINDS if any(s.kind == kind for s in ok)}
    return SoakReport(seconds=seconds, rate=rate, requests=len(samples), statuses=count_statuses(samples),
                      outside_requests=len(calm), outside_ok=len(ok),
                      availability=len(ok) / len(calm) if calm else None,
                      windows=[window_report(samples, w, until) for w, until in zip(ordered, ends)],
                      latency=latencies, samples=list(samples))


def per_second(samples: Sequence[Sample], seconds: float) -> dict[str, np.ndarray]:
    """Requests sent in each whole second of the soak, per status label."""
    bins = max(1, math.ceil(seconds))
    out: dict[str, np.ndarray] = {}
    for status in sorted({s.status for s in samples}):
        sent = [s.sent_s for s in samples if s.status == status]
        out[status_label(status)] = np.histogram(sent, bins=bins, range=(0, bins))[0]
    return out


# --- outages ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Drill:
    """An outage to inject `at_s` seconds into the soak: `run(clock)` breaks a service, restores it and returns
    the window it measured with `clock` (seconds since the soak started)."""

    name: str
    at_s: float
    run: Callable[[Clock], Window]


def run_drills(drills: Sequence[Drill], clock: Clock, windows: list[Window], errors: list[str]) -> threading.Thread:
    """Run the drills in order in a background thread, each at its time; windows and errors are appended."""
    def schedule() -> None:
        for drill in sorted(drills, key=lambda d: d.at_s):
            time.sleep(max(0.0, drill.at_s - clock()))
            try:
                windows.append(drill.run(clock))
            except Exception as exc:  # noqa: BLE001 - reported in the soak's result, the load goes on
                errors.append(say("soak.drill_failed", drill=drill.name, error=type(exc).__name__, detail=exc))
    thread = threading.Thread(target=schedule, name="soak-drills", daemon=True)
    thread.start()
    return thread


# --- the load ---------------------------------------------------------------------------------

Request = tuple[str, str, str, Any]  # kind, method, path, JSON body


def mixed_requests(users: Sequence[int], movies: Sequence[int]) -> Callable[[int], Request]:
    """The soak's i-th request: recommendations (100 candidates) and user feature reads, alternating."""
    def request(i: int) -> Request:
        user = int(users[(i // 2) % len(users)])
        if i % 2 == 0:
            return "recommendations", "POST", "/recommendations", {"user_id": user, "movie_ids": list(movies), "k": 10}
        return "user_features", "GET", f"/users/{user}/features", None
    return request


async def _send(connection: Any, url: str, method: str, path: str, body: Any) -> tuple[Any, int]:
    """One request on a keep-alive connection (opened if needed); returns the connection to reuse and the status."""
    parts = urlsplit(url)
    try:
        if connection is None:
            connection = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port),
                                                REQUEST_TIMEOUT_S)
        connection[1].write(encode_request(method, url + path, body))
        status, keep_alive = await asyncio.wait_for(read_response(connection[0]), REQUEST_TIMEOUT_S)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
        status, keep_alive = NO_ANSWER, False
    if not keep_alive and connection is not None:
        connection[1].close()
        connection = None
    return connection, status


async def _paced(url: str, request: Callable[[int], Request], rate: float, seconds: float, concurrency: int,
                 clock: Clock, samples: list[Sample]) -> None:
    """Send request i at `i / rate` seconds (or as soon as a connection is free), for `seconds`."""
    slots = itertools.count()
    total = int(rate * seconds)

    async def worker() -> None:
        connection = None
        for i in slots:
            if i >= total:
                break
            await asyncio.sleep(max(0.0, i / rate - clock()))
            kind, method, path, body = request(i)
            sent = clock()
            connection, status = await _send(connection, url, method, path, body)
            samples.append(Sample(kind, sent, clock(), status))
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _watch(samples: list[Sample], seconds: float, clock: Clock, show: Callable[[int, dict[str, int]], None]
                 ) -> None:
    """Call `show(second, statuses so far)` once a second while the load runs."""
    for second in range(1, math.ceil(seconds) + 1):
        await asyncio.sleep(max(0.0, second - clock()))
        show(second, count_statuses(samples))


def progress_bar(seconds: float) -> Callable[[int, dict[str, int]], None]:
    """A tqdm bar over the soak's seconds, showing the statuses counted so far."""
    from tqdm.auto import tqdm

    bar = tqdm(total=math.ceil(seconds), unit="s", desc="soak", leave=True)

    def show(second: int, statuses: dict[str, int]) -> None:
        bar.update(second - bar.n)
        bar.set_postfix_str(", ".join(f"{label}: {n}" for label, n in statuses.items()), refresh=True)
        if second >= bar.total:
            bar.close()
    return show


def run_async(main: Callable[[], Any]) -> None:
    """`asyncio.run(main())`, in a thread of its own when this thread already runs an event loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(main())).result()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the load generator's own garbage collector out of the measured latencies.

    The process that sends the soak also holds the prepared data (pandas frames, a FeatureStore):
    a full collection walks all of it and paused every worker for 20-240 ms, which the samples
    counted as server latency (user-feature p99 38 ms with this, 3.5 ms without, on the 2-core
    machine). `gc.freeze` moves what exists now out of the collector's reach until the soak ends.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_soak(url: str, users: Sequence[int], movies: Sequence[int], seconds: float, rate: float = 200.0,
             drills: Sequence[Drill] = (), concurrency: int = 16,
             show: Callable[[int, dict[str, int]], None] | None = None) -> SoakReport:
    """A paced soak of `rate` requests per second for `seconds` against a loopback API, drills injected on time."""
    ensure_loopback(url)
    if seconds <= 0 or rate <= 0:
        raise ValueError(f"a soak needs positive seconds and rate, got {seconds} s at {rate}/s")
    started = 0.0

    def clock() -> float:
        return time.perf_counter() - started
    samples: list[Sample] = []
    windows: list[Window] = []
    errors: list[str] = []

    async def main() -> None:
        watch = asyncio.ensure_future(_watch(samples, seconds, clock, show or (lambda second, statuses: None)))
        await _paced(url, mixed_requests(users, movies), rate, seconds, concurrency, clock, samples)
        await watch
    with frozen_heap():  # collected and frozen before the clock starts: request i is due at i / rate
        started = time.perf_counter()
        thread = run_drills(drills, clock, windows, errors)
        run_async(main)
    thread.join()
    if errors:
        raise SoakError("; ".join(errors))
    return summarize(samples, windows, seconds, rate)


# --- the picture ------------------------------------------------------------------------------

def plot(report: SoakReport, goal_ms: float = 10.0) -> Any:
    """Requests per second by status and every request's latency over time, outage windows shaded."""
    import matplotlib.pyplot as plt

    fig, (rates, delays) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    counts = per_second(report.samples, report.seconds)
    bottom = np.zeros(max(1, math.ceil(report.seconds)))
    for label, values in counts.items():
        rates.bar(np.arange(len(values)) + 0.5, values, width=1.0, bottom=bottom, label=label,
                  color={"200": "tab:green", "503": "tab:orange", "no answer": "black"}.get(label))
        bottom = bottom + values
    rates.set(ylabel="requests per second", title=f"soak: {report.requests:,} requests, {report.rate:g}/s offered")
    rates.legend(title="status", fontsize=8, loc="lower left")
    for kind, marker in zip(KINDS, ("o", "s")):
        chosen = [s for s in report.samples if s.kind == kind]
        delays.scatter([s.sent_s for s in chosen], [max(s.latency_ms, 0.05) for s in chosen], s=3, marker=marker,
                       alpha=0.4, label=KINDS[kind])
    delays.axhline(goal_ms, color="red", lw=1, ls="--", label=f"{goal_ms:g} ms goal")
    delays.set(yscale="log", ylabel="latency (ms, log)", xlabel="seconds since the soak started")
    delays.legend(fontsize=8, loc="upper left")
    for window in report.windows:
        for ax in (rates, delays):
            ax.axvspan(window.start_s, window.end_s, color="grey" if window.name == "redis" else "tab:blue",
                       alpha=0.2)
        rates.annotate(f"{window.name} outage", (window.start_s, rates.get_ylim()[1] * 0.92), fontsize=8)
    fig.tight_layout()
    return fig
