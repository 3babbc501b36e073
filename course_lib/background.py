"""Servers the course starts in the background on loopback: the course API, `feast serve`,
and private redis-servers for outage drills. Each object only ever stops what it started.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psutil
import redis

from course_lib.config import Profile
from course_lib.errors import CourseError
from course_lib.messages import say

START_S = 180  # importing Feast and opening a store can take a while on a busy 2-core machine
STOP_S = 30


class ServerError(CourseError):
    """A background server did not start or never became ready; the message carries its output."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class BackgroundServer:
    """One HTTP server process on 127.0.0.1, its base URL and its log file."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server process and its children (workers)."""
        root = psutil.Process(self.process.pid)
        return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, path: str = "/health", timeout_s: float = START_S) -> BackgroundServer:
        """Poll `path` until it answers 200; raise with the server's output if it exits or never does."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}{path}", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise ServerError(say("background.never_healthy", url=self.url, path=path, code=self.process.poll(),
                              output=self.output()[-3000:]))

    def observed(self, path: str, timeout_s: float = START_S) -> httpx.Response:
        """GET an endpoint the course API serves from its background round (/health, /freshness, /metrics),
        once a round that started after this call has ended: the answer reflects everything done before it."""
        since, deadline = datetime.now(timezone.utc), time.monotonic() + timeout_s
        while datetime.fromisoformat(httpx.get(f"{self.url}/health", timeout=5).json()["checked_at"]) < since:
            if time.monotonic() > deadline:
                raise ServerError(say("background.no_health_round", url=self.url, timeout_s=timeout_s,
                                      output=self.output()[-3000:]))
            time.sleep(0.2)
        return httpx.get(f"{self.url}{path}", timeout=30)

    def stop(self) -> int | None:
        """SIGTERM the process (as a process manager would), then kill it if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch(command: list[str], profile: Profile, port: int, log: Path) -> BackgroundServer:
    """Start a command with the profile's settings in its environment, output to a log file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as sink:
        process = subprocess.Popen(command, env={**os.environ, **profile.env()},
                                   stdout=sink, stderr=subprocess.STDOUT)
    return BackgroundServer(process=process, url=f"http://127.0.0.1:{port}", log=log)


def start_course_api(profile: Profile, log: Path, port: int | None = None, workers: int = 1) -> BackgroundServer:
    """Run `course serve` (with `workers` processes) for the profile on a free loopback port and wait until healthy."""
    port = port or free_port()
    command = [sys.executable, "-m", "course_lib", "serve", "--profile", profile.name,
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return launch(command, profile, port, log).wait_ready("/health")


def start_feast_serve(profile: Profile, log: Path, port: int | None = None, workers: int = 1,
                      max_requests: int = 0) -> BackgroundServer:
    """Run Feast's own HTTP feature server on loopback (metrics off: they would bind 0.0.0.0:8000).

    `max_requests=0` stops gunicorn from recycling workers; Feast's default of 1000 restarts a
    worker about every 2 s under load.
    """
    port = port or free_port()
    command = feast_command(profile, "serve", "-h", "127.0.0.1", "-p", str(port),
                            "-w", str(workers), "--max-requests", str(max_requests))
    return launch(command, profile, port, log).wait_ready("/health")


def start_feast_ui(profile: Profile, log: Path, port: int | None = None) -> BackgroundServer:
    """Run Feast's web UI over the profile's registry on a free loopback port (its default host is 0.0.0.0)."""
    port = port or free_port()
    return launch(feast_command(profile, "ui", "-h", "127.0.0.1", "-p", str(port)), profile, port, log
                  ).wait_ready("/health")


def feast_command(profile: Profile, *args: str) -> list[str]:
    """This environment's `feast` CLI on the profile's rendered repo, with `args`."""
    from course_lib.config import render

    return [str(Path(sys.executable).with_name("feast")), "-c", str(render(profile)), *args]


class RedisServer:
    """A private, non-persistent redis-server on a loopback port, for outage drills.

    With `workdir`, a `SAVE` writes its snapshot there and a restart loads it (an outage that loses nothing).
    """

    def __init__(self, port: int | None = None, ready_s: float = 30, workdir: Path | None = None,
                 password: str = "") -> None:
        self.port = port or free_port()
        self.ready_s = ready_s
        self.workdir = workdir
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        """Whether a `redis-server` binary is on PATH."""
        return shutil.which("redis-server") is not None

    def start(self) -> RedisServer:
        """Start the server (again, on the same port) and wait until it answers PING."""
        if not self.available():
            raise ServerError(say("background.redis_missing"))
        # The configuration arrives on stdin (`redis-server -`), so a password never shows in process lists.
        config = f'port {self.port}\nbind 127.0.0.1\nsave ""\nappendonly no\n'
        if self.workdir:
            config += f"dir {json.dumps(str(self.workdir))}\n"
        if self.password:
            config += f"requirepass {json.dumps(self.password)}\n"
        self.process = subprocess.Popen(["redis-server", "-"], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert self.process.stdin is not None
        self.process.stdin.write(config.encode())
        self.process.stdin.close()
        deadline = time.monotonic() + self.ready_s
        while True:
            try:
                if redis.Redis(port=self.port, password=self.password or None, socket_connect_timeout=1).ping():
                    return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise ServerError(say("background.redis_no_start", port=self.port)) from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Terminate this server (only ever the one this object started)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=STOP_S)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
