"""Point-in-time retrieval at scale (2.7.5): training frames in chunks, and Feast's point-in-time
join rewritten for PostgreSQL as one LATERAL index lookup per entity row and view.

`historical_features_tuned` returns what `serving.historical_features` returns (tests compare
them on real stores); its cost grows with the entity rows only, where Feast's SQL range-joins
every source row in the frame's time span.
"""
from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from feast import FeatureService, FeatureStore
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import PostgreSQLOfflineStoreConfig
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.infra.offline_stores.offline_utils import FeatureViewQueryContext
from feast.type_map import pg_type_code_to_arrow
from psycopg.sql import Identifier
from tqdm.auto import tqdm

from course_lib.compat import resolve_features
from course_lib.errors import CourseError
from course_lib.messages import say
from course_lib.serving import historical_features, normalize_frame
from feature_repo.definitions import TIMESTAMP_FIELD

# Session settings of `historical_features_tuned`, SET LOCAL to its transaction: no JIT compilation
# (its cost estimate is high, its runtime short), the entity rows' sort in memory, and ISO timestamps
# in the COPY output it parses.


class RetrievalError(CourseError):
    """The entity frame or the requested features cannot be joined by the tuned retrieval; the message says why."""


Cursor = psycopg.Cursor[Any]
PG_PIT_SETTINGS = {"jit": "off", "work_mem": "64MB", "DateStyle": "ISO, MDY"}

Retrieve = Callable[[FeatureStore, pd.DataFrame, "list[str] | FeatureService"], pd.DataFrame]


def historical_features_chunked(store: FeatureStore, entity_df: pd.DataFrame, features: list[str] | FeatureService,
                                chunk_rows: int = 50_000, progress: bool = True,
                                retrieve: Retrieve = historical_features) -> pd.DataFrame:
    """The same training frame as one `retrieve` call, fetched `chunk_rows` entity rows at a time."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    parts = []
    with tqdm(total=len(entity_df), unit="row", desc="historical features", disable=not progress) as bar:
        for start in range(0, len(entity_df), chunk_rows):
            chunk = entity_df.iloc[start:start + chunk_rows]
            parts.append(retrieve(store, chunk, features))
            bar.update(len(chunk))
    return normalize_frame(pd.concat(parts, ignore_index=True))


def q(name: str) -> str:
    """A SQL identifier quoted by psycopg (`sql.Identifier`): entity columns come from the caller's frame."""
    return Identifier(name).as_string(None)


def _pg_type(column: str, dtype: Any) -> str:
    """The PostgreSQL type Feast's own upload gives an entity-frame column (floats become DOUBLE PRECISION)."""
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(dtype):
        return "DOUBLE PRECISION"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "TIMESTAMPTZ"
    if pd.api.types.is_string_dtype(dtype):
        return "TEXT"
    raise RetrievalError(say("pit.unsupported_dtype", column=column, dtype=dtype))


def _entity_table_columns(entity_df: pd.DataFrame) -> str:
    """Column definitions of the uploaded entity table."""
    return ", ".join(f'{q(c)} {_pg_type(c, t)}' for c, t in entity_df.dtypes.items())


def _query_contexts(store: FeatureStore, features: list[str] | FeatureService,
                    entity_df: pd.DataFrame) -> list[FeatureViewQueryContext]:
    """Feast's per-view query contexts (source, join keys, TTL, timestamps, features), resolved as
    `FeatureStore.get_historical_features` resolves them; refuses what the tuned SQL does not cover."""
    registry, project = store.registry, store.project
    refs, views, on_demand = resolve_features(store, features)
    if on_demand:
        raise RetrievalError(say("pit.on_demand", views=", ".join(v.name for v in on_demand)))
    for view in views:
        if not isinstance(view.batch_source, PostgreSQLSource):
            raise RetrievalError(say("pit.not_postgres", view=view.name, source=type(view.batch_source).__name__))
    missing = (offline_utils.get_expected_join_keys(project, views, registry) | {TIMESTAMP_FIELD}) - set(entity_df)
    if missing:
        raise RetrievalError(say("pit.entity_df_lacks", missing=sorted(missing), timestamp=TIMESTAMP_FIELD))
    timestamps = pd.to_datetime(entity_df[TIMESTAMP_FIELD], utc=True)
    contexts = offline_utils.get_feature_view_query_context(refs, views, registry, project,
                                                            (timestamps.min(), timestamps.max()))
    clash = set(entity_df) & {view.field_mapping.get(f, f) for view in contexts for f in view.features}
    if clash:
        raise RetrievalError(say("pit.name_clash", columns=sorted(clash)))
    return contexts


def _source_columns(view: FeatureViewQueryContext) -> list[str]:
    """The source-table columns holding a view's join keys, in `view.entities` order."""
    return [selection.partition(" AS ")[0] for selection in view.entity_selections]


def _unique_in_time(cursor: Cursor, view: FeatureViewQueryContext) -> bool:
    """Whether a unique index proves (join keys, event timestamp) unique in the view's source table.

    Then no two rows can tie for an entity row, and a plain LIMIT 1 (one heap fetch) returns what
    WITH TIES would. Feast renders a query source as "(query)": nothing to look up.
    """
    if view.table_subquery.startswith("("):
        return False
    cursor.execute("SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a "
                   "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
                   "WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indisvalid "
                   "AND i.indpred IS NULL AND i.indexprs IS NULL GROUP BY i.indexrelid", [view.table_subquery])
    allowed = {*_source_columns(view), view.timestamp_field}
    return any(set(columns) <= allowed for (columns,) in cursor.fetchall())


def _lateral_join(view: FeatureViewQueryContext, alias: str, unique: bool) -> str:
    """One view's point-in-time row for each entity row `e`, as Feast's template picks it.

    Feast keeps the source rows with `ts - ttl <= event_timestamp <= ts` (TTL in whole seconds,
    none when 0) and the same join keys, then every row tied at the newest event timestamp (and,
    with a created-timestamp column, at the newest non-null created timestamp among those): ties
    repeat the entity row, as Feast's rejoin does. An index on (join keys, event_timestamp) turns
    this into one short backward index scan per entity row.
    """
    event_ts, entity_ts = f'sub.{q(view.timestamp_field)}', f'e.{q(TIMESTAMP_FIELD)}'
    where = [f'sub.{q(column)} = e.{q(key)}' for column, key in zip(_source_columns(view), view.entities)]
    where.append(f"{event_ts} <= {entity_ts}")
    if view.ttl:
        where.append(f"{event_ts} >= {entity_ts} - {view.ttl} * interval '1' second")
    order = [f"{event_ts} DESC"]
    if view.created_timestamp_column:
        created = f'sub.{q(view.created_timestamp_column)}'
        where.append(f"{created} IS NOT NULL")  # Feast's MAX(created) rejoin never matches a NULL
        order.append(f"{created} DESC")
    columns = ", ".join(f'sub.{q(f)} AS {q(view.field_mapping.get(f, f))}' for f in view.features)
    return (f"LEFT JOIN LATERAL (SELECT {columns} FROM {view.table_subquery} AS sub "
            f"WHERE {' AND '.join(where)} ORDER BY {', '.join(order)} "
            f"{'LIMIT 1' if unique else 'FETCH FIRST 1 ROWS WITH TIES'}) AS {alias} ON true")


def point_in_time_sql(views: list[FeatureViewQueryContext], entity_table: str, entity_columns: list[str],
                      unique: list[bool]) -> str:
    """The point-in-time join of `entity_table` with every view: Feast's output columns, one LATERAL
    per view (`unique[i]`: view i's source cannot hold ties).

    Entity rows are visited in join-key order, so consecutive index lookups touch neighbouring pages.
    """
    keys = list(dict.fromkeys(key for view in views for key in view.entities))
    order = ", ".join(q(c) for c in [*keys, TIMESTAMP_FIELD])
    selected = [f'e.{q(c)}' for c in entity_columns]
    selected += [f'f{i}.{q(view.field_mapping.get(f, f))}' for i, view in enumerate(views) for f in view.features]
    joins = "\n".join(_lateral_join(view, f"f{i}", once) for i, (view, once) in enumerate(zip(views, unique)))
    return f"SELECT {', '.join(selected)}\nFROM (SELECT * FROM {entity_table} ORDER BY {order}) AS e\n{joins}"


def _copy_in(cursor: Cursor, table: str, frame: pd.DataFrame) -> None:
    """COPY a frame into a table, written as CSV by Arrow (quoted empty strings stay strings)."""
    buffer = pa.BufferOutputStream()
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer,
                     pa_csv.WriteOptions(include_header=False))
    columns = ", ".join(q(c) for c in frame.columns)
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
        copy.write(buffer.getvalue())


def _arrow_types(cursor: Cursor, sql: str) -> dict[str, pa.DataType]:
    """Each result column's Arrow type as Feast's PostgreSQL job reads it, or an error for types CSV cannot carry."""
    cursor.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0")
    types = {}
    for column in cursor.description or []:
        arrow = pg_type_code_to_arrow(column.type_code)
        if not (pa.types.is_boolean(arrow) or pa.types.is_integer(arrow) or pa.types.is_floating(arrow)
                or pa.types.is_string(arrow) or pa.types.is_timestamp(arrow)):
            raise RetrievalError(say("pit.not_scalar", column=column.name, oid=column.type_code, arrow=arrow))
        types[column.name] = arrow
    return types


def _copy_out(cursor: Cursor, sql: str) -> pd.DataFrame:
    """A query's rows via COPY TO CSV, parsed by Arrow into the types Feast's job gives them."""
    types = _arrow_types(cursor, sql)
    buffer = io.BytesIO()
    with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    # Timestamps arrive as text with a UTC offset; Feast's job holds them as naive UTC.
    parse = {name: pa.timestamp("us", "UTC") if pa.types.is_timestamp(t) else t for name, t in types.items()}
    table = pa_csv.read_csv(buffer, read_options=pa_csv.ReadOptions(column_names=list(types)),
                            convert_options=pa_csv.ConvertOptions(
                                column_types=parse, true_values=["t"], false_values=["f"],
                                strings_can_be_null=True, quoted_strings_can_be_null=False))
    return table.cast(pa.schema(types.items())).to_pandas()


def connect(offline: PostgreSQLOfflineStoreConfig) -> psycopg.Connection:
    """A connection to the PostgreSQL offline store, as its `feature_store.yaml` section describes it
    (Feast's search path too: the store's schema, then public)."""
    schema = (offline.db_schema or offline.user).strip()
    return psycopg.connect(host=offline.host, port=int(offline.port), dbname=offline.database, user=offline.user,
                           password=offline.password or None, sslmode=offline.sslmode, connect_timeout=10,
                           options=f"-c search_path={q(schema)}" + (",public" if schema != "public" else ""))


def historical_features_tuned(store: FeatureStore, entity_df: pd.DataFrame,
                              features: list[str] | FeatureService) -> pd.DataFrame:
    """`serving.historical_features`, tuned for PostgreSQL (elsewhere, the plain call).

    Feast's point-in-time semantics, by other means: the entity frame is COPYed (Feast sends one
    INSERT per row) into a temporary table that ends with the transaction; each view is joined
    with a LATERAL lookup (`point_in_time_sql`) whose cost grows with entity rows only, where
    Feast's query range-joins every source row in the frame's time span; the result comes back
    through COPY. Session settings (`PG_PIT_SETTINGS`) are SET LOCAL to the transaction.
    Fast only over an index on (join keys, event timestamp): `adapter.write_offline` creates one.
    One deliberate difference: Feast 0.67 joins rows on ids that concatenate keys and time without
    a separator, so entity rows (1, 23) and (12, 3) at the same time get the same features; here
    each row gets its own.
    """
    offline = store.config.offline_store
    if offline.type != "postgres":
        return historical_features(store, entity_df, features)
    views = _query_contexts(store, features, entity_df)
    # Feast's upload truncates timestamps to microseconds (PostgreSQL would round them).
    timestamps = pd.to_datetime(entity_df[TIMESTAMP_FIELD], utc=True).dt.floor("us")
    frame = entity_df.assign(**{TIMESTAMP_FIELD: timestamps})
    table = f"entity_{uuid.uuid4().hex}"
    with connect(offline) as conn, conn.transaction(), conn.cursor() as cur:
        for name, value in PG_PIT_SETTINGS.items():
            cur.execute("SELECT set_config(%s, %s, true)", (name, value))
        cur.execute(f"CREATE TEMPORARY TABLE {table} ({_entity_table_columns(frame)}) ON COMMIT DROP")
        _copy_in(cur, table, frame)
        unique = [_unique_in_time(cur, view) for view in views]
        result = _copy_out(cur, point_in_time_sql(views, table, list(frame.columns), unique))
    return normalize_frame(result)
