"""Measurement tools for 2.7.5: latency statistics, in-process timing and a bounded HTTP load.

Every figure the course reports about speed comes from these functions, in that run.
Loads are closed-loop, bounded in requests and seconds, and only ever target 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import httpx
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

    def summary(self) -> dict[str, Any]:
        """The figures without the raw samples, for JSON and tables."""
        return {k: v for k, v in asdict(self).items() if k != "samples_ms" and v is not None}


def latency(samples_ms: Iterable[float], seconds: float | None = None, errors: int | None = None) -> Latency:
    """Percentiles of raw samples; `seconds` (wall time of a load) adds requests per second."""
    values = np.asarray(list(samples_ms), dtype=float)
    if values.size == 0:
        raise ValueError("no samples: the measured operation never completed")
    rps = None if seconds is None else (values.size + (errors or 0)) / seconds
    return Latency(n=int(values.size), p50_ms=float(np.percentile(values, 50)),
                   p99_ms=float(np.percentile(values, 99)), mean_ms=float(values.mean()),
                   samples_ms=values.round(4).tolist(), rps=rps, errors=errors)


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


async def _closed_loop(requests: list[tuple[str, str, Any]], concurrency: int,
                       max_seconds: float) -> tuple[list[float], int, float]:
    """Send requests with `concurrency` workers, each waiting for its answer before the next."""
    queue = iter(requests)
    samples: list[float] = []
    errors = 0
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        for method, url, body in queue:
            if time.monotonic() > deadline:
                return
            start = time.perf_counter_ns()
            try:
                response = await client.request(method, url, json=body)
                ok = response.status_code < 400
            except httpx.HTTPError:
                ok = False
            if ok:
                samples.append((time.perf_counter_ns() - start) / 1e6)
            else:
                errors += 1

    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return samples, errors, time.perf_counter() - started


def http_load(requests: list[tuple[str, str, Any]], concurrency: int = 8, max_seconds: float = 20,
              warmup: int = 50) -> Latency:
    """A bounded closed-loop load: (method, url, json body) requests, at most `max_seconds`."""
    for _, url, _ in requests:
        ensure_loopback(url)
    asyncio.run(_closed_loop(requests[:warmup], min(concurrency, 4), max_seconds))
    samples, errors, seconds = asyncio.run(_closed_loop(requests[warmup:], concurrency, max_seconds))
    return latency(samples, seconds=seconds, errors=errors)
