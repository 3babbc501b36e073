"""The measurement tools: percentiles, bounded loads, and the loopback-only rule."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from course_lib.timing import http_load, latency, time_calls


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive: 200 on /ok, /close (which then closes the connection) and POST /echo; 500 elsewhere."""

    protocol_version = "HTTP/1.1"
    connections: set[int] = set()

    def reply(self, status: int, body: bytes = b"", close: bool = False) -> None:
        """Send a Content-Length framed response."""
        Handler.connections.add(self.client_address[1])
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.reply(200 if self.path in ("/ok", "/close") else 500, close=self.path == "/close")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.reply(200 if self.path == "/echo" and body == {"user_id": 7} else 500, json.dumps(body).encode())

    def log_message(self, *args) -> None:
        """Keep the test output quiet."""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A tiny HTTP server on a free loopback port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_latency_percentiles_match_numpy() -> None:
    samples = np.random.default_rng(0).exponential(3.0, 1000)
    got = latency(samples, seconds=2.0, errors=10)
    assert got.n == 1000 and got.p50_ms == pytest.approx(np.percentile(samples, 50))
    assert got.p99_ms == pytest.approx(np.percentile(samples, 99)) and got.rps == pytest.approx(505.0)
    with pytest.raises(ValueError, match="no samples"):
        latency([])


def test_time_calls_discards_warmup() -> None:
    seen = []
    result = time_calls(seen.append, list(range(50)), warmup=20)
    assert result.n == 30 and seen == list(range(50))


def test_http_load_counts_every_request(server: str) -> None:
    """Successes and errors add up to the requests sent after warm-up."""
    requests = [("GET", f"{server}/ok" if i % 4 else f"{server}/fail", None) for i in range(250)]
    result = http_load(requests, concurrency=4, max_seconds=30, warmup=50)
    assert result.n + result.errors == 200 and result.error_kinds == {"HTTP 500": 50} and result.rps > 0


def test_http_load_keeps_connections_open_and_sends_json_bodies(server: str) -> None:
    """One connection per worker, a POST body arrives intact, and a closing server is reconnected to."""
    Handler.connections.clear()
    result = http_load([("POST", f"{server}/echo", {"user_id": 7})] * 150, concurrency=3, warmup=0)
    assert (result.n, result.errors, len(Handler.connections)) == (150, 0, 3)
    Handler.connections.clear()
    result = http_load([("GET", f"{server}/close", None)] * 20, concurrency=2, warmup=0)
    assert (result.n, result.errors, len(Handler.connections)) == (20, 0, 20)


def test_http_load_reports_server_cpu_per_request(server: str) -> None:
    """The server's CPU clock is read around the measured requests only (not the warm-up)."""
    readings = iter([10.0, 10.3])
    result = http_load([("GET", f"{server}/ok", None)] * 150, warmup=50, server_cpu=lambda: next(readings))
    assert result.n == 100 and result.server_cpu_ms == pytest.approx(3.0)


def test_http_load_refuses_non_loopback_targets() -> None:
    with pytest.raises(ValueError, match="only target 127.0.0.1"):
        http_load([("GET", "http://192.0.2.1/ok", None)])
