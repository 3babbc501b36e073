"""Materialization at scale (2.7.5): a parallel compute engine with a bulk Redis writer, and
scheduled runs under a lock with retries.

- `ParallelLocalComputeEngine` (the tuned `batch_engine`): Feast's local engine with each
  feature view in its own thread, whose plan ends in `RedisBulkOutputNode`, writing whole arrow
  columns as one RESP stream (`course_lib.redis_format`) where that is exactly Feast's write;
- `materialize_once`: `serving.materialize` under the project's write lock (`exclusive_lock`,
  `course_lib.store_lock`: a PostgreSQL advisory lock, or a file lock on `local`),
  retrying transient store failures with backoff (`RetryPolicy`);
- `materialize_every`: that on a fixed-rate schedule (`course materialize --every 5m`).
"""
from __future__ import annotations

import math
import re
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
import redis
import sqlalchemy.exc
from feast import FeatureStore
from feast.infra.common.materialization_job import MaterializationJob, MaterializationTask
from feast.infra.compute_engines.dag.context import ExecutionContext
from feast.infra.compute_engines.local.arrow_table_value import ArrowTableValue
from feast.infra.compute_engines.local.compute import LocalComputeEngineConfig
from feast.infra.compute_engines.local.nodes import LocalOutputNode
from feast.infra.online_stores.redis import RedisOnlineStore, RedisType
from feast.infra.registry.base_registry import BaseRegistry

from course_lib.compat import ComputeEngine, PlanBuilder, context_online_client
from course_lib.config import ConfigError, Profile
from course_lib.messages import say
from course_lib.redis_format import BATCH_ROWS, UnsupportedColumns, ViewLayout, hset_commands, send_commands
from course_lib.serving import MaterializeReport, latest_interval, materialize
from course_lib.store_lock import project_lock
from feature_repo.definitions import VIEWS

Clock = Callable[[], float]


# --- the bulk writer at the end of Feast's plan -----------------------------------------------

def bulk_write_ok(context: ExecutionContext) -> bool:
    """Whether Feast's write is a blind HSET of each row: standalone Redis, skip_dedup, no key TTL, no versioning."""
    online = context.repo_config.online_store
    return (isinstance(context.online_store, RedisOnlineStore) and online.redis_type == RedisType.redis
            and online.skip_dedup and not online.key_ttl_seconds
            and not context.repo_config.registry.enable_online_feature_view_versioning)


class RedisBulkOutputNode(LocalOutputNode):
    """Feast's output node, writing online rows with `hset_commands` where that is exactly Feast's write."""

    def execute(self, context: ExecutionContext) -> ArrowTableValue:
        """Bulk-write the online rows, then the offline ones as Feast does; anything else goes to Feast's node."""
        table = self.get_single_table(context).data
        if table.num_rows == 0 or not self.feature_view.online or not bulk_write_ok(context):
            return super().execute(context)
        try:
            layout = ViewLayout.of(self.feature_view)
            layout.check(table)
        except UnsupportedColumns:
            return super().execute(context)
        client = context_online_client(context)
        if not isinstance(client, redis.Redis):  # bulk_write_ok saw a standalone Redis: never a cluster client
            return super().execute(context)
        rows = context.repo_config.materialization_config.online_write_batch_size or BATCH_ROWS
        for batch in table.to_batches(max_chunksize=rows):
            send_commands(client, hset_commands(batch, layout, context.project))  # checked again: cheap
        output = ArrowTableValue(data=table)
        context.node_outputs[self.name] = output
        if self.feature_view.offline:
            context.offline_store.offline_write_batch(config=context.repo_config, feature_view=self.feature_view,
                                                      table=table, progress=lambda x: None)
        return output


class BulkFeatureBuilder(PlanBuilder):
    """Feast's local materialization plan (read, filter, dedup), ending in `RedisBulkOutputNode`."""

    output_node = RedisBulkOutputNode


# --- the parallel engine ---------------------------------------------------------------------

class ParallelLocalComputeEngineConfig(LocalComputeEngineConfig):
    """`batch_engine` settings of `ParallelLocalComputeEngine` in feature_store.yaml."""

    # Feast picks the engine class from this literal; pydantic allows narrowing the base's literal, mypy does not
    type: Literal["course_lib.materialize.ParallelLocalComputeEngine"] = (
        "course_lib.materialize.ParallelLocalComputeEngine")  # type: ignore[assignment]
    workers: int = 3


# Feast hands all views to a batch-capable engine in one call and records each view's interval
# in the registry afterwards, one at a time, so the registry is never written concurrently.
class ParallelLocalComputeEngine(ComputeEngine):
    """Feast's local compute engine: each feature view in its own thread, online rows written in bulk.

    On a standalone Redis with `skip_dedup` (Feast's write is then a blind HSET per entity),
    `RedisBulkOutputNode` encodes whole columns into one RESP stream instead of
    Feast's per-row protobuf objects; elsewhere Feast's own output node writes, unchanged.
    """

    plan_builder = BulkFeatureBuilder

    def __init__(self, workers: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workers = workers

    @property
    def supports_batch(self) -> bool:
        """Ask Feast for all views at once, so they can run in parallel."""
        return True

    def materialize(self, registry: BaseRegistry, tasks: MaterializationTask | list[MaterializationTask],
                    **kwargs: Any) -> list[MaterializationJob]:
        """Materialize the tasks in up to `workers` threads; jobs come back in task order."""
        tasks = [tasks] if isinstance(tasks, MaterializationTask) else tasks
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(tasks)))) as pool:
            return list(pool.map(lambda task: self.materialize_task(registry, task), tasks))


# --- lock, retries and schedule ----------------------------------------------------------------

# Failures worth retrying: the stores were unreachable or busy, not misconfigured.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, psycopg.OperationalError,
    sqlalchemy.exc.OperationalError, sqlite3.OperationalError, ConnectionError, TimeoutError)


exclusive_lock = project_lock  # the project's write lock, shared with `course data` and `course reset`


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try a run, and the exponential backoff between tries."""

    attempts: int = 3
    first_delay_s: float = 5.0
    factor: float = 2.0
    max_delay_s: float = 120.0

    def __post_init__(self) -> None:
        """Reject policies that could never run."""
        if self.attempts < 1 or self.first_delay_s < 0 or self.factor < 1:
            raise ValueError(f"invalid {self}: need attempts >= 1, first_delay_s >= 0 and factor >= 1")

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after the given failed attempt (1-based)."""
        return min(self.first_delay_s * self.factor ** (failed_attempt - 1), self.max_delay_s)


@dataclass(frozen=True)
class RunOutcome:
    """What one scheduled materialization did."""

    status: Literal["ok", "locked", "failed"]
    attempts: int
    seconds: float
    report: MaterializeReport | None = None
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)  # the last failure

    def lines(self) -> list[str]:
        """Human-readable summary."""
        head = f"materialize {self.status} after {self.attempts} attempt(s) in {self.seconds:.1f} s"
        if self.status == "locked":
            head += " (another materialization holds the lock; this run was skipped)"
        if self.error:
            head += f": {self.error}"
        return [head, *(self.report.lines() if self.report else [])]


def materialize_once(store: FeatureStore, profile: Profile, incremental: bool = True, end: datetime | None = None,
                     retry: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep,
                     clock: Clock = time.monotonic, force: bool = False) -> RunOutcome:
    """`serving.materialize` under the project's write lock, retrying transient failures with backoff;
    `force` lets a tuned run move the online store back to an older `end` (`serving.check_end`)."""
    started = clock()
    with exclusive_lock(profile) as acquired:
        if not acquired:
            return RunOutcome(status="locked", attempts=0, seconds=clock() - started)
        for attempt in range(1, retry.attempts + 1):
            try:
                # Full while any view was never materialized: a first run loads all history,
                # not only the last TTL as Feast's incremental default would.
                ready = incremental and all(latest_interval(store, view) for view in VIEWS)
                report = materialize(store, profile, end=end, incremental=ready, force=force, lock=False)
                return RunOutcome(status="ok", attempts=attempt, seconds=clock() - started, report=report)
            except TRANSIENT_ERRORS as exc:
                error, failure = f"{type(exc).__name__}: {exc}", exc
                if attempt < retry.attempts:
                    sleep(retry.delay(attempt))
    return RunOutcome(status="failed", attempts=retry.attempts, seconds=clock() - started,
                      error=f"{error}; check that the stores answer (course doctor)", exception=failure)


def materialize_every(store: FeatureStore, profile: Profile, every: timedelta, runs: int | None = None,
                      incremental: bool = True, retry: RetryPolicy = RetryPolicy(),
                      on_outcome: Callable[[RunOutcome], None] = lambda outcome: None,
                      sleep: Callable[[float], None] = time.sleep, clock: Clock = time.monotonic,
                      ) -> list[RunOutcome]:
    """`materialize_once` every `every` (fixed rate, overrun ticks skipped), `runs` times or until interrupted."""
    period = every.total_seconds()
    if period <= 0:
        raise ConfigError(say("materialize.interval_not_positive", every=every))
    outcomes: list[RunOutcome] = []
    next_tick = clock()
    while runs is None or len(outcomes) < runs:
        outcome = materialize_once(store, profile, incremental=incremental, retry=retry, sleep=sleep, clock=clock)
        outcomes.append(outcome)
        on_outcome(outcome)
        if runs is not None and len(outcomes) >= runs:
            break
        now = clock()
        next_tick += period * max(1, math.ceil((now - next_tick) / period))
        sleep(max(0.0, next_tick - now))
    return outcomes


def parse_every(text: str) -> timedelta:
    """A schedule interval such as `90s`, `5m`, `1h` or `1d` (a bare number means seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(say("materialize.bad_interval", text=text))
    unit = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})
