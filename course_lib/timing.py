"""Measurement tools (2.7.5): latency statistics, in-process timing and a bounded HTTP load.

Every figure the course reports about speed comes from these functions, in that run.
Loads are closed-loop, bounded in requests and seconds, and only ever target 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from course_lib.config import LOOPBACK


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
    """Read one whole HTTP/1.1 response (Content-Length framed); return its status and whether the connection
    stays open."""
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
                       max_seconds: float) -> tuple[list[float], Counter[str], float]:
    """Send requests over `concurrency` keep-alive connections, each waiting for its answer before the next."""
    queue = iter([(url, encode_request(method, url, body)) for method, url, body in requests])
    samples: list[float] = []
    errors: Counter[str] = Counter()
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
        sent = result.n + sum(errors.values())
        result = replace(result, server_cpu_ms=1000 * (server_cpu() - cpu_before) / sent)
    return result
