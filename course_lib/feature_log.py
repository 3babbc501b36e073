"""Served-feature logging (notebook 09): what every recommendation was scored on, recorded off the request path.

A `POST /recommendations` hands its `recommender.Recommendations` (the model input matrix, the scores) and
a request id to `FeatureLogger.log`, which only puts them on a bounded queue: it never blocks and never
does I/O. One background thread takes whatever is queued, at most every COURSE_FEATURE_LOG_FLUSH_S
seconds, turns it into one Arrow table (one row per candidate: LOG_COLUMNS, then one column per model
feature, null where the model saw a missing value) and hands it to the profile's sink:
- `local`: Feast's own feature logging. The ranker service carries a `LoggingConfig` with a
  `FileLoggingDestination` (`definitions.feature_logging`), and `FeatureStore.write_logged_features`
  writes the table as parquet into that folder (DuckDB's offline store implements it).
- `enterprise`: Feast's PostgreSQL offline store has no `write_logged_features` (and Feast 0.67 has no
  PostgreSQL logging destination), so the course appends to its own table `<offline schema>.served_features`
  with one COPY per batch.
- `scaleout`: Spark's offline store lacks it too; the course writes the same parquet files itself.

Accounting (`course_feature_log_records_total{outcome}`, one record per response): `written`; `dropped`
when the queue is full (the request is answered anyway); `failed` when the sink raised (logged once per
batch). `close()` writes everything queued before it returns, so a clean shutdown loses nothing.
Columns use Feast's system names (`__request_id`, `__log_timestamp`, `__log_date`), so the local log is a
`FileLoggingDestination` Feast can read back (`to_data_source()`); features keep the ranker's names.
"""
from __future__ import annotations

import io
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as pa_ds
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.feature_logging import LOG_DATE_FIELD, LOG_TIMESTAMP_FIELD, REQUEST_ID_FIELD
from psycopg import sql

from course_lib.config import Profile
from course_lib.errors import reason
from course_lib.monitoring import Metrics
from course_lib.recommender import Recommendations, ranked
from feature_repo.definitions import build_realtime
from feature_repo.names import RANKER_SERVICE

LOG = logging.getLogger(__name__)

TABLE = "served_features"  # the enterprise profile's log table, in its offline schema
AS_OF = "features_as_of"  # the moment the served values stand for: TTLs were applied as of it
# The columns before the features: Feast's system columns, then what identifies a candidate's row.
LOG_COLUMNS = (REQUEST_ID_FIELD, LOG_TIMESTAMP_FIELD, LOG_DATE_FIELD, AS_OF, "user_id", "movie_id", "rank",
               "score", "model_version")
SQL_TYPES = {REQUEST_ID_FIELD: "text", LOG_TIMESTAMP_FIELD: "timestamptz", LOG_DATE_FIELD: "date",
             AS_OF: "timestamptz", "user_id": "bigint", "movie_id": "bigint", "rank": "integer",
             "score": "double precision", "model_version": "text"}
OUTCOMES = ("written", "dropped", "failed")
_STOP = object()


def new_request_id() -> str:
    """A request id: 32 hex digits of a random UUID."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Served:
    """One response to log: its id, when it was answered, the model's version and what it scored."""

    request_id: str
    logged_at: datetime
    model_version: str
    found: Recommendations


def ranks(found: Recommendations) -> np.ndarray:
    """Each candidate's rank in the response's order (1 = best: `recommender.ranked`), in candidate order."""
    out = np.empty(len(found.movie_ids), dtype="int32")
    out[ranked(found.movie_ids, found.scores, len(found.movie_ids))] = np.arange(1, len(out) + 1, dtype="int32")
    return out


def to_table(batch: Sequence[Served]) -> pa.Table:
    """One Arrow row per candidate of every response in `batch`: LOG_COLUMNS then the model's features."""
    sizes = [len(s.found.movie_ids) for s in batch]
    stamps = pd.DatetimeIndex([s.logged_at for s in batch])

    def repeat(values: Sequence[object]) -> np.ndarray:
        return np.repeat(np.asarray(values), sizes)

    columns: dict[str, pa.Array] = {
        REQUEST_ID_FIELD: pa.array(repeat([s.request_id for s in batch]), pa.string()),
        LOG_TIMESTAMP_FIELD: pa.array(repeat(stamps.as_unit("us").asi8), pa.int64()).cast(pa.timestamp("us", "UTC")),
        LOG_DATE_FIELD: pa.array(repeat(stamps.date), pa.date32()),
        AS_OF: pa.array(repeat(pd.DatetimeIndex([s.found.as_of for s in batch]).as_unit("us").asi8),
                        pa.int64()).cast(pa.timestamp("us", "UTC")),
        "user_id": pa.array(repeat([s.found.user_id for s in batch]), pa.int64()),
        "movie_id": pa.array(np.concatenate([np.asarray(s.found.movie_ids, dtype="int64") for s in batch]), pa.int64()),
        "rank": pa.array(np.concatenate([ranks(s.found) for s in batch]), pa.int32()),
        "score": pa.array(np.concatenate([s.found.scores for s in batch]).astype("float64"), pa.float64()),
        "model_version": pa.array(repeat([s.model_version for s in batch]), pa.string()),
    }
    inputs = np.vstack([s.found.inputs for s in batch]).astype("float64")
    for i, name in enumerate(batch[0].found.features):
        columns[name] = pa.array(inputs[:, i], pa.float64(), from_pandas=True)  # NaN (missing) -> null
    return pa.table(columns)


# --- sinks ------------------------------------------------------------------------------------

Sink = Callable[[pa.Table], None]


def feast_sink(store: FeatureStore, profile: Profile) -> Sink:
    """Feast's own feature logging: `write_logged_features` through the ranker service's FileLoggingDestination."""
    service = next(s for s in build_realtime(profile).feature_services if s.name == RANKER_SERVICE)
    Path(profile.feature_log_dir).mkdir(parents=True, exist_ok=True)
    return lambda table: store.write_logged_features(table, source=service)


def parquet_sink(profile: Profile) -> Sink:
    """The course's own parquet files in the profile's feature-log folder (one per batch)."""
    folder = Path(profile.feature_log_dir)

    def write(table: pa.Table) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"{uuid.uuid4().hex}.parquet")
    return write


def postgres_sink(profile: Profile) -> Sink:
    """The course's own log table on PostgreSQL: created (or given new feature columns) on first use, then
    one COPY per batch in one transaction, so a batch is stored whole or not at all."""
    target = sql.Identifier(profile.offline_schema, TABLE)
    ready: set[str] = set()

    def write(table: pa.Table) -> None:
        buffer = io.BytesIO()
        pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
        names = sql.SQL(", ").join(map(sql.Identifier, table.column_names))
        with psycopg.connect(profile.pg_conninfo(bounded=True)) as conn, conn.cursor() as cur:
            if set(table.column_names) - ready:
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(profile.offline_schema)))
                cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(target, sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(SQL_TYPES[c])) for c in LOG_COLUMNS)))
                for column in table.column_names[len(LOG_COLUMNS):]:
                    cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} double precision").format(
                        target, sql.Identifier(column)))
                ready.update(table.column_names)
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, names)) as copy:
                copy.write(buffer.getvalue())
    return write


def sink_for(store: FeatureStore, profile: Profile) -> Sink:
    """The profile's sink: Feast's logging where its offline store writes logs (local), else the course's own."""
    if profile.name == "local":
        return feast_sink(store, profile)
    return parquet_sink(profile) if profile.offline_is_parquet else postgres_sink(profile)


def read_log(profile: Profile) -> pd.DataFrame:
    """Every logged row of the profile, oldest first (an empty frame when nothing was logged)."""
    if profile.offline_is_parquet:
        folder = Path(profile.feature_log_dir)
        files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        frame = pa_ds.dataset(files, format="parquet").to_table().to_pandas() if files else pd.DataFrame()
    else:
        with psycopg.connect(profile.pg_conninfo()) as conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", [f"{profile.offline_schema}.{TABLE}"])
            if cur.fetchone()[0] is None:  # type: ignore[index]
                return pd.DataFrame(columns=list(LOG_COLUMNS))
            cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(profile.offline_schema, TABLE)))
            frame = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or []])
    if frame.empty:
        return pd.DataFrame(columns=list(LOG_COLUMNS))
    for column in (LOG_TIMESTAMP_FIELD, AS_OF):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    for column in ["score", *frame.columns[len(LOG_COLUMNS):]]:  # PostgreSQL's NULLs come back as None
        frame[column] = frame[column].astype("float64")
    return frame.sort_values([LOG_TIMESTAMP_FIELD, REQUEST_ID_FIELD, "rank"], kind="stable", ignore_index=True)


def clear_log(profile: Profile) -> None:
    """Delete the profile's logged rows (a fresh start for a notebook or a test)."""
    if profile.offline_is_parquet:
        for file in Path(profile.feature_log_dir).glob("*.parquet"):
            file.unlink()
        return
    with psycopg.connect(profile.pg_conninfo()) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(profile.offline_schema, TABLE)))


# --- the logger ---------------------------------------------------------------------------------

class FeatureLogger:
    """A bounded queue of served responses and the one thread that writes them in batches."""

    def __init__(self, sink: Sink, metrics: Metrics | None = None, capacity: int = 10_000,
                 flush_s: float = 1.0) -> None:
        self._sink, self._metrics, self._flush_s = sink, metrics, flush_s
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._closed = False
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self._thread = threading.Thread(target=self._run, name="feature-log", daemon=True)
        self._thread.start()

    def log(self, served: Served) -> None:
        """Queue one response without blocking; counted as dropped when the queue is full or closed."""
        try:
            if self._closed:
                raise queue.Full
            self._queue.put_nowait(served)
        except queue.Full:
            self._count("dropped", 1)

    def close(self) -> None:
        """Write everything queued, then stop the thread (nothing queued before this call is lost)."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)  # behind every queued record; waits for room if the queue is full
            self._thread.join()

    def _count(self, outcome: str, records: int) -> None:
        """Add to one outcome's count and its metric."""
        with self._lock:
            self.counts[outcome] += records
        if self._metrics is not None:
            self._metrics.count_feature_log(outcome, records, self._queue.qsize())

    def _take(self) -> tuple[list[Served], bool]:
        """What is queued now (waiting up to the flush interval for the first record) and whether to stop."""
        batch: list[Served] = []
        try:
            item = self._queue.get(timeout=self._flush_s)
            while item is not _STOP:
                batch.append(item)  # type: ignore[arg-type]
                item = self._queue.get_nowait()
        except queue.Empty:
            return batch, False
        return batch, True

    def _run(self) -> None:
        """Write batches until close() queues the stop marker."""
        stop = False
        while not stop:
            batch, stop = self._take()
            if batch:
                self._write(batch)

    def _write(self, batch: list[Served]) -> None:
        """One sink call for a batch of responses sharing a feature list (a new model may change it)."""
        groups: dict[tuple[str, ...], list[Served]] = {}
        for served in batch:
            groups.setdefault(tuple(served.found.features), []).append(served)
        for group in groups.values():
            try:
                self._sink(to_table(group))
            except Exception as exc:  # noqa: BLE001 - a sink failure must never stop the logger: counted and logged
                LOG.warning("served-feature log: %d records not written: %s", len(group), reason(exc))
                self._count("failed", len(group))
            else:
                self._count("written", len(group))


def open_logger(store: FeatureStore, profile: Profile, metrics: Metrics | None) -> FeatureLogger | None:
    """The profile's logger, or None when COURSE_FEATURE_LOG is off."""
    settings = profile.settings
    if not settings.feature_log:
        return None
    return FeatureLogger(sink_for(store, profile), metrics, settings.feature_log_queue, settings.feature_log_flush_s)
