"""Background work of the API: one daemon thread running a step on an interval, backing off after failures.

Requests never wait for a `Refresher`: they read what its last successful step left in memory.
A failing step (PostgreSQL down or hung) is retried after 2x, 4x, ... the interval, at most
`MAX_BACKOFF_S` apart, so a long outage costs a few attempts a minute and recovery is noticed
within seconds. `status()` says when the step last succeeded and why it last failed.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from course_lib.errors import reason

LOG = logging.getLogger(__name__)
MAX_BACKOFF_S = 5.0  # longest pause between attempts while a step keeps failing (unless the interval is longer)
STOP_S = 10.0  # how long `stop` waits for a step in progress (each database call has its own timeouts)


@dataclass(frozen=True)
class RefreshStatus:
    """A refresher's record: its last success, its current run of failures and the last failure's reason."""

    name: str
    last_success: datetime | None
    failures: int
    last_error: str | None


def backoff_s(every_s: float, failures: int, cap_s: float = MAX_BACKOFF_S) -> float:
    """Pause before the next attempt: the interval, doubled per consecutive failure, capped."""
    if failures == 0:
        return every_s
    return max(every_s, min(cap_s, every_s * 2 ** failures))


class Refresher:
    """Runs `step` every `every_s` seconds in a daemon thread, with backoff after failures, until stopped."""

    def __init__(self, name: str, step: Callable[[], object], every_s: float) -> None:
        self.name, self._step, self._every = name, step, every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one step at a time, whether run by the thread or by run_once
        self._last_success: datetime | None = None
        self._failures = 0
        self._last_error: str | None = None

    def run_once(self) -> bool:
        """Run the step now, in this thread; record and log the outcome; whether it succeeded."""
        with self._lock:
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - a failed step keeps the previous state; retried later
                self._failures += 1
                self._last_error = reason(exc)
                LOG.warning("%s failed (attempt %d; serving the previous state): %s", self.name, self._failures,
                            self._last_error)
                return False
            if self._failures:
                LOG.warning("%s recovered after %d failed attempts", self.name, self._failures)
            self._failures, self._last_success = 0, datetime.now(timezone.utc)
            return True

    def status(self) -> RefreshStatus:
        """The last success, the current run of failures and the last failure's reason."""
        return RefreshStatus(self.name, self._last_success, self._failures, self._last_error)

    def start(self) -> Refresher:
        """Start the thread; its first step runs one interval from now."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"refresher: {self.name}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        """Step, then wait the interval (or the backoff after a failure), until stopped."""
        while not self._stop.wait(backoff_s(self._every, self._failures)):
            self.run_once()

    def stop(self) -> None:
        """Stop the thread, waiting for a step in progress to end (at most `STOP_S`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_S)
            self._thread = None

    def __enter__(self) -> Refresher:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

