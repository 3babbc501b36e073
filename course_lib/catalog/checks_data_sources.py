"""Messages of notebook 02's checks (course_lib.checks.data_sources): a point-in-time aggregate, a
point-in-time join."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "data_sources.hint_future": Message(
        en="did you include events after the timestamp?",
        ko="그 시각 이후의 이벤트까지 포함하지 않았습니까?"),
    "data_sources.hint_strict": Message(
        en="an event exactly at as_of is already known then: keep event_timestamp <= as_of, not <",
        ko="정확히 as_of 시각의 이벤트는 그때 이미 알려져 있습니다. event_timestamp < as_of가 아니라 "
           "event_timestamp <= as_of로 거르십시오"),
    "data_sources.hint_zeros": Message(
        en="unrated events (rating NaN) must be skipped, not counted as 0",
        ko="평점이 없는 이벤트(rating이 NaN)는 0으로 세지 말고 건너뛰어야 합니다"),
    "data_sources.hint_all_users": Message(
        en="did you filter on user_id?",
        ko="user_id로 걸렀습니까?"),
    "data_sources.hint_no_ratings": Message(
        en="this user has no rated event at or before that time, so the mean is undefined: return float('nan')",
        ko="이 사용자는 그 시각까지 평점을 남긴 이벤트가 없으므로 평균이 정의되지 않습니다. float('nan')을 "
           "돌려주십시오"),
    "data_sources.hint_average": Message(
        en="average the ratings of this user's events at or before as_of",
        ko="이 사용자의 이벤트 중 as_of 시각까지(as_of 포함)의 평점을 평균하십시오"),
    "data_sources.avg_wrong": Message(
        en="your avg_rating for user {user} at {at} is {got}; the point-in-time value is {want} — {hint}",
        ko="사용자 {user}의 {at} 시점 avg_rating을 {got}(으)로 계산했습니다. 그 시점 기준의 정확한 값은 "
           "{want}입니다. {hint}"),
    "data_sources.avg_passed": Message(
        en="matches the point-in-time value at all {count} (user, time) points",
        ko="(사용자, 시각) {count}개 지점 모두에서 그 시점 기준의 정확한 값과 일치합니다"),
    "data_sources.not_a_frame": Message(
        en="pit_join returned {type}; it must return a DataFrame",
        ko="pit_join의 반환값이 {type} 타입입니다. DataFrame을 돌려주어야 합니다"),
    "data_sources.row_count": Message(
        en="pit_join returned {got} rows for {want} entity rows: keep every entity row (a left join), in order",
        ko="엔티티 행 {want}개에 대해 pit_join이 {got}개 행을 돌려주었습니다. 모든 엔티티 행을 순서대로 "
           "유지하십시오(왼쪽 조인)"),
    "data_sources.columns": Message(
        en="pit_join's result lacks the columns {absent}; return entity_df with the feature columns added",
        ko="pit_join의 결과에 {absent} 열이 없습니다. entity_df에 피처 열을 더해서 돌려주십시오"),
    "data_sources.row_order": Message(
        en="row {i} of your result is user {got_user} at {got_at}; entity_df's row {i} is user {user} at {at}: keep "
           "entity_df's row order (merge_asof needs sorted input, so sort back afterwards)",
        ko="결과의 {i}번 행은 사용자 {got_user}, 시각 {got_at}이고, entity_df의 {i}번 행은 사용자 {user}, 시각 "
           "{at}입니다. entity_df의 행 순서를 유지하십시오(merge_asof는 정렬된 입력이 필요하므로, 조인한 뒤 원래 "
           "순서로 되돌려 정렬합니다)"),
    "data_sources.pit_wrong": Message(
        en="row {i} (user {user} at {at}): your {column} is {got}; Feast's point-in-time join gives {want} — {hint}",
        ko="{i}번 행(사용자 {user}, 시각 {at}): 계산한 {column} 값은 {got}이고, Feast의 시점 정확 조인 결과는 "
           "{want}입니다. {hint}"),
    "data_sources.hint_forward": Message(
        en="you used the snapshot from {used}, after the row's time — look backwards only "
           "(merge_asof(..., direction='backward'))",
        ko="행의 시각보다 나중인 {used}의 스냅샷을 썼습니다. 과거 방향으로만 찾으십시오"
           "(merge_asof(..., direction='backward'))"),
    "data_sources.hint_backward": Message(
        en="Feast uses the user's snapshot from {at}, the newest at or before the row and within the TTL — match on "
           "user_id, looking backwards (merge_asof(..., direction='backward'))",
        ko="Feast는 이 사용자의 {at} 스냅샷을 씁니다. 행의 시각 이전(같은 시각 포함)이면서 TTL 안에 있는 가장 최근 "
           "스냅샷입니다. user_id로 맞추고 과거 방향으로 찾으십시오(merge_asof(..., direction='backward'))"),
    "data_sources.hint_expired": Message(
        en="the newest snapshot at or before then is from {at}, older than the view's TTL ({ttl}), so the join "
           "returns null — drop older matches (tolerance=ttl)",
        ko="그 시각 이전(같은 시각 포함)의 가장 최근 스냅샷은 {at}의 것으로, 피처 뷰의 TTL({ttl})보다 오래되었으므로 "
           "조인 결과는 null입니다. 그보다 오래된 매칭은 버리십시오(tolerance=ttl)"),
    "data_sources.hint_no_snapshot": Message(
        en="this user has no snapshot at or before that time, so the join returns null",
        ko="이 사용자는 그 시각 이전(같은 시각 포함)의 스냅샷이 없으므로 조인 결과는 null입니다"),
    "data_sources.hint_exact": Message(
        en="a snapshot taken exactly at the row's time counts (allow_exact_matches=True)",
        ko="행의 시각과 정확히 같은 시각의 스냅샷도 포함됩니다(allow_exact_matches=True)"),
    "data_sources.hint_used": Message(
        en="Feast used the snapshot from {at}",
        ko="Feast는 {at}의 스냅샷을 썼습니다"),
    "data_sources.hint_null": Message(
        en="expected null",
        ko="기대한 값은 null입니다"),
    "data_sources.pit_passed": Message(
        en="identical to Feast's get_historical_features on all {rows} entity rows ({features} features, TTL {ttl})",
        ko="엔티티 행 {rows}개 모두에서 Feast의 get_historical_features 결과와 같습니다(피처 {features}개, "
           "TTL {ttl})"),
}
