"""Messages of the data path: datasets and their validation (course_lib.datasets, course_lib.adapter), the
offline store and its clock (course_lib.offline, course_lib.dataclock), the project's write lock
(course_lib.store_lock, with what each writer was about to do), materialization (course_lib.materialize,
course_lib.serving) and the tuned point-in-time join (course_lib.pit)."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "datasets.movielens_source": Message(
        en="the MovieLens files come from https://grouplens.org/datasets/movielens/ (download and unzip "
           "ml-latest-small.zip); they are licensed for research use only and are not redistributed by this course",
        ko="MovieLens 파일은 https://grouplens.org/datasets/movielens/ 에서 받습니다(ml-latest-small.zip을 내려받아 "
           "압축을 푸십시오). 연구용으로만 쓸 수 있는 라이선스이므로 이 코스는 파일을 재배포하지 않습니다"),
    "datasets.movielens_layout": Message(
        en="expected the ml-latest-small layout {columns}: {source}",
        ko="ml-latest-small 형식의 열 {columns}이(가) 필요합니다: {source}"),
    "datasets.no_saved_dataset": Message(
        en="no saved dataset in {folder}; create one with `course data`",
        ko="{folder}에 저장된 데이터셋이 없습니다. `course data` 명령으로 만드십시오"),
    "datasets.synthetic_sizes": Message(
        en="synthetic() needs n_users, n_movies, n_events >= 1 and days >= 2; got n_users={n_users!r}, "
           "n_movies={n_movies!r}, n_events={n_events!r}, days={days!r}",
        ko="synthetic()에는 n_users, n_movies, n_events >= 1, days >= 2가 필요합니다. 받은 값: n_users={n_users!r}, "
           "n_movies={n_movies!r}, n_events={n_events!r}, days={days!r}"),
    "datasets.file_missing": Message(
        en="{path} is missing: {source}. Put ratings.csv and movies.csv from that zip in {folder}.",
        ko="{path} 파일이 없습니다: {source}. 그 zip 파일의 ratings.csv와 movies.csv를 {folder}에 넣으십시오."),
    "datasets.unparsable": Message(
        en="{path} cannot be parsed ({error}); {layout}.",
        ko="{path}을(를) 해석할 수 없습니다({error}). {layout}."),
    "datasets.columns_missing": Message(
        en="{path} lacks columns {missing}; {layout}.",
        ko="{path}에 {missing} 열이 없습니다. {layout}."),
    "datasets.no_folder": Message(
        en="MovieLens folder {folder} does not exist: {source}.",
        ko="MovieLens 폴더 {folder}이(가) 없습니다: {source}."),
    "datasets.unknown_movies": Message(
        en="ratings.csv in {folder} rates {count} movieIds absent from movies.csv (e.g. {examples}); use both files "
           "from the same ml-latest-small.zip.",
        ko="{folder}의 ratings.csv가 movies.csv에 없는 movieId {count}개에 평점을 매깁니다(예: {examples}). 같은 "
           "ml-latest-small.zip에서 나온 두 파일을 쓰십시오."),
    "adapter.invalid_input": Message(
        en="invalid input, nothing was written:\n- {problems}",
        ko="입력이 잘못되어 아무것도 쓰지 않았습니다:\n- {problems}"),
    "adapter.missing_column": Message(
        en="{table}: missing column {column!r} (expected columns: {expected})",
        ko="{table}: {column!r} 열이 없습니다(필요한 열: {expected})"),
    "adapter.not_timestamps": Message(
        en="{table}.{column}: expected timestamps, got {dtype}; convert with pd.to_datetime(..., utc=True)",
        ko="{table}.{column}: 타임스탬프여야 하는데 {dtype} 타입입니다. pd.to_datetime(..., utc=True)로 변환하십시오"),
    "adapter.naive_timestamps": Message(
        en="{table}.{column}: timestamps are timezone-naive; localize them (series.dt.tz_localize('UTC')) or pass "
           "assume_timezone='UTC'",
        ko="{table}.{column}: 타임스탬프에 시간대가 없습니다. 시간대를 지정하거나(series.dt.tz_localize('UTC')) "
           "assume_timezone='UTC'를 넘기십시오"),
    "adapter.not_numbers": Message(
        en="{table}.{column}: expected numbers, got {dtype}",
        ko="{table}.{column}: 숫자여야 하는데 {dtype} 타입입니다"),
    "adapter.infinite_values": Message(
        en="{table}.{column}: {count} infinite values; values must be finite (use NaN when unknown)",
        ko="{table}.{column}: 무한대 값이 {count}개 있습니다. 값은 유한해야 합니다(모르는 값은 NaN으로 두십시오)"),
    "adapter.bad_ids": Message(
        en="{table}.{column}: ids must be positive integers without nulls",
        ko="{table}.{column}: ID는 null이 없는 양의 정수여야 합니다"),
    "adapter.not_text": Message(
        en="{table}.{column}: expected text, got {dtype}",
        ko="{table}.{column}: 텍스트여야 하는데 {dtype} 타입입니다"),
    "adapter.rating_range": Message(
        en="watch_events.rating: {count} ratings outside 0.5..5.0 (first: {first!r}); fix or drop those rows",
        ko="watch_events.rating: 0.5..5.0 범위를 벗어난 평점이 {count}개 있습니다(첫 번째: {first!r}). 그 행을 "
           "고치거나 버리십시오"),
    "adapter.negative_watch_times": Message(
        en="watch_events.watch_seconds: {count} negative watch times; watch time must be >= 0 (use NaN when unknown)",
        ko="watch_events.watch_seconds: 음수 시청 시간이 {count}개 있습니다. 시청 시간은 0 이상이어야 합니다(모르는 "
           "값은 NaN으로 두십시오)"),
    "adapter.duplicate_events": Message(
        en="watch_events: {count} duplicate events (same user_id, movie_id and event_timestamp; first: {first}); "
           "deduplicate before building features",
        ko="watch_events: 중복 이벤트가 {count}개 있습니다(user_id, movie_id, event_timestamp가 같음. 첫 번째: "
           "{first}). 피처를 만들기 전에 중복을 제거하십시오"),
    "adapter.unknown_ids": Message(
        en="watch_events: {count} events name a user_id or movie_id missing from users/movies",
        ko="watch_events: 이벤트 {count}개가 users/movies에 없는 user_id 또는 movie_id를 가리킵니다"),
    "adapter.refused": Message(
        en="refusing to write, nothing was changed:\n- {problems}",
        ko="쓰기를 거부했으며 아무것도 바뀌지 않았습니다:\n- {problems}"),
    "adapter.missing_table": Message(
        en="missing table {view!r}",
        ko="{view!r} 테이블이 없습니다"),
    "adapter.dtypes_differ": Message(
        en="{view}: columns/dtypes {actual} differ from {expected}; build tables with build_feature_tables()",
        ko="{view}: 열과 dtype {actual}이(가) {expected}와(과) 다릅니다. build_feature_tables()로 테이블을 "
           "만드십시오"),
    "adapter.repeated_keys": Message(
        en="{view}: {count} rows share their {key} with another row (e.g. {example}); keep one row per entity and "
           "time (build tables with build_feature_tables())",
        ko="{view}: 행 {count}개가 {key} 값을 다른 행과 공유합니다(예: {example}). 엔티티와 시각마다 한 행만 "
           "남기십시오(build_feature_tables()로 테이블을 만드십시오)"),
    "adapter.unknown_tables": Message(
        en="unknown tables {tables}",
        ko="알 수 없는 테이블 {tables}"),
    "adapter.lock_what": Message(
        en="write the offline tables",
        ko="오프라인 테이블을 쓸"),
    "offline.missing": Message(
        en="no offline data at {path}: `course data --profile {profile}` writes it",
        ko="{path}에 오프라인 데이터가 없습니다. `course data --profile {profile}` 명령으로 만드십시오"),
    "dataclock.no_rows": Message(
        en="the offline store of profile {profile} (project {project}) has no rows; run `course data --profile "
           "{profile}` first",
        ko="프로필 {profile}(프로젝트 {project})의 오프라인 스토어에 행이 없습니다. 먼저 `course data --profile "
           "{profile}` 명령을 실행하십시오"),
    "dataclock.bad_end": Message(
        en="--end {text!r} is not a time: use ISO 8601 (e.g. 2025-04-02T00:00:00), `{wall_clock}` for the wall clock, "
           "or leave it out for the data's own end",
        ko="--end {text!r}은(는) 시각이 아닙니다. ISO 8601(예: 2025-04-02T00:00:00)로 쓰거나, 현재 시각을 쓰려면 "
           "`{wall_clock}`, 데이터 자체의 끝을 쓰려면 생략하십시오"),
    "store_lock.busy": Message(
        en="cannot {what}: another command (course data, materialize or reset) is writing project {project!r} "
           "({profile} profile); nothing was changed. Wait for it to finish, then run this again",
        ko="{what} 수 없습니다: 다른 명령(course data, materialize 또는 reset)이 프로젝트 {project!r}({profile} "
           "프로필)에 쓰는 중이므로 아무것도 바꾸지 않았습니다. 그 명령이 끝나기를 기다린 뒤 다시 실행하십시오"),
    "reset.lock_what": Message(
        en="reset the project",
        ko="프로젝트를 초기화할"),
    "serving.lock_what": Message(
        en="materialize",
        ko="실체화할"),
    "serving.end_older": Message(
        en="--end {end:%Y-%m-%d %H:%M:%S%z} is older than the last materialization end {last:%Y-%m-%d %H:%M:%S%z} of "
           "{view}: a tuned run overwrites online rows without comparing timestamps, so newer values would be "
           "replaced by older ones. Use an end at or after it, or pass --force to roll the online store back on "
           "purpose",
        ko="--end {end:%Y-%m-%d %H:%M:%S%z}이(가) {view}의 마지막 실체화 끝 시각 {last:%Y-%m-%d %H:%M:%S%z}보다 "
           "이릅니다. 튜닝된 실행은 타임스탬프를 비교하지 않고 온라인 행을 덮어쓰므로 새 값이 오래된 값으로 "
           "바뀝니다. 그 시각과 같거나 늦은 끝 시각을 쓰거나, 온라인 스토어를 일부러 되돌리려면 --force를 넘기십시오"),
    "materialize.interval_not_positive": Message(
        en="the schedule interval must be positive, got {every}",
        ko="스케줄 간격은 양수여야 합니다. 받은 값: {every}"),
    "materialize.bad_interval": Message(
        en="invalid interval {text!r}: use a positive number with s, m, h or d, e.g. 5m",
        ko="잘못된 간격 {text!r}: 양수 뒤에 s, m, h, d 중 하나를 붙이십시오(예: 5m)"),
    "pit.unsupported_dtype": Message(
        en="entity_df column {column!r} has dtype {dtype}, which the tuned upload does not handle; convert it to a "
           "number, bool, string or UTC timestamp",
        ko="entity_df의 열 {column!r}의 dtype {dtype}은(는) 튜닝된 업로드가 처리하지 못합니다. 숫자, bool, 문자열 "
           "또는 UTC 타임스탬프로 변환하십시오"),
    "pit.on_demand": Message(
        en="historical_features_tuned does not compute on-demand feature views ({views}); use "
           "serving.historical_features",
        ko="historical_features_tuned는 온디맨드 피처 뷰({views})를 계산하지 않습니다. serving.historical_features를 "
           "쓰십시오"),
    "pit.not_postgres": Message(
        en="feature view {view!r} reads a {source}; historical_features_tuned only joins PostgreSQL sources",
        ko="피처 뷰 {view!r}은(는) {source}을(를) 읽습니다. historical_features_tuned는 PostgreSQL 소스만 조인합니다"),
    "pit.entity_df_lacks": Message(
        en="entity_df lacks the column(s) {missing}: it needs {timestamp!r} and every join key of the requested "
           "feature views",
        ko="entity_df에 열 {missing}이(가) 없습니다. {timestamp!r}와(과) 요청한 피처 뷰의 모든 조인 키가 필요합니다"),
    "pit.name_clash": Message(
        en="entity_df columns {columns} have the names of requested features (Feast's query fails on them too); "
           "rename those columns",
        ko="entity_df의 열 {columns}이(가) 요청한 피처와 이름이 같습니다(Feast의 쿼리도 이 경우 실패합니다). 그 열의 "
           "이름을 바꾸십시오"),
    "pit.not_scalar": Message(
        en="column {column!r} has PostgreSQL type oid {oid} (Arrow {arrow}); historical_features_tuned reads scalar "
           "columns only, use serving.historical_features",
        ko="열 {column!r}의 PostgreSQL 타입 oid가 {oid}입니다(Arrow {arrow}). historical_features_tuned는 스칼라 "
           "열만 읽으므로 serving.historical_features를 쓰십시오"),
    "drift.no_shared_features": Message(
        en="the frames share none of the course's features {features}; pass features={{column: 'numeric' or "
           "'categorical'}}",
        ko="두 프레임에 코스의 피처 {features} 중 공통된 것이 없습니다. features={{column: 'numeric' 또는 "
           "'categorical'}}을(를) 넘기십시오"),
    "drift.bad_features": Message(
        en="features must be columns of both frames with a kind in {kinds}: missing {missing}, bad kinds {bad_kinds}",
        ko="features는 두 프레임 모두에 있는 열이어야 하고 종류는 {kinds} 중 하나여야 합니다. 없는 열: {missing}, "
           "잘못된 종류: {bad_kinds}"),
}
