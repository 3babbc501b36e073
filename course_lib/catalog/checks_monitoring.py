"""Messages of notebook 04's checks (course_lib.checks.monitoring): a request count from /metrics, incremental
catch-up materialization."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "monitoring.hint_absent": Message(
        en="an endpoint nobody called has no sample at all: its count is 0",
        ko="아무도 호출하지 않은 엔드포인트는 샘플 자체가 없습니다. 그 요청 수는 0입니다"),
    "monitoring.hint_status": Message(
        en="count every status code (404, 422, ...), not only 200",
        ko="200만이 아니라 모든 상태 코드(404, 422, ...)를 세십시오"),
    "monitoring.hint_endpoint": Message(
        en="keep only the samples whose endpoint label is {endpoint!r}",
        ko="endpoint 레이블이 {endpoint!r}인 샘플만 남기십시오"),
    "monitoring.hint_sum": Message(
        en="sum the values of the course_requests_total samples with that endpoint label",
        ko="그 endpoint 레이블을 가진 course_requests_total 샘플의 값을 모두 더하십시오"),
    "monitoring.count_wrong": Message(
        en="for {endpoint!r} you counted {got} requests; the exposition holds {want:g} — {hint}",
        ko="{endpoint!r}의 요청 수를 {got}(으)로 셌습니다. /metrics 출력에는 {want:g}건이 기록되어 있습니다. {hint}"),
    "monitoring.count_passed": Message(
        en="matches prometheus_client's parse for all {count} endpoints",
        ko="엔드포인트 {count}개 모두에서 prometheus_client의 파싱 결과와 일치합니다"),
    "monitoring.nothing_materialized": Message(
        en="nothing was materialized: after your call the registry records no new interval for {view}; call "
           "store.materialize_incremental(end_date=end)",
        ko="아무것도 실체화되지 않았습니다. 함수를 호출한 뒤에도 레지스트리에 {view}의 새 실체화 구간이 기록되지 "
           "않았습니다. store.materialize_incremental(end_date=end)를 호출하십시오"),
    "monitoring.wrong_end": Message(
        en="{view}'s newest interval ends at {stop}; materialize up to `end` ({end}): "
           "store.materialize_incremental(end_date=end)",
        ko="{view}의 가장 최근 실체화 구간이 {stop}에 끝납니다. `end`({end})까지 실체화하십시오: "
           "store.materialize_incremental(end_date=end)"),
    "monitoring.wrong_start": Message(
        en="{view}'s new interval starts at {start}, but the previous run ended at {previous}: each run must start "
           "where the last one ended — store.materialize_incremental(end_date=end), not "
           "store.materialize(start_date=...)",
        ko="{view}의 새 실체화 구간이 {start}에 시작하지만 이전 실행은 {previous}에 끝났습니다. 각 실행은 지난 실행이 "
           "끝난 곳에서 시작해야 합니다. store.materialize(start_date=...)가 아니라 "
           "store.materialize_incremental(end_date=end)를 쓰십시오"),
    "monitoring.hint_length": Message(
        en="return the (start, end) pair itself, not its length",
        ko="구간의 길이가 아니라 (start, end) 쌍 자체를 돌려주십시오"),
    "monitoring.hint_types": Message(
        en="return the two datetimes the registry holds, not strings or numbers",
        ko="문자열이나 숫자가 아니라 레지스트리에 있는 datetime 두 개를 돌려주십시오"),
    "monitoring.hint_older": Message(
        en="that is an older interval; return the newest one, with the latest end",
        ko="그것은 이전 구간입니다. 끝 시각이 가장 늦은 최신 구간을 돌려주십시오"),
    "monitoring.hint_read_back": Message(
        en="read it back with store.get_feature_view(view).materialization_intervals and return the newest",
        ko="store.get_feature_view(view).materialization_intervals로 다시 읽어서 가장 최근 구간을 돌려주십시오"),
    "monitoring.not_a_dict": Message(
        en="catch_up returned {type}; return a dict {{view name: (start, end)}}",
        ko="catch_up의 반환값이 {type} 타입입니다. 딕셔너리 {{view name: (start, end)}}를 돌려주십시오"),
    "monitoring.view_missing": Message(
        en="your dict has no entry for {view}; return one (start, end) per feature view",
        ko="돌려준 딕셔너리에 {view} 항목이 없습니다. 피처 뷰마다 (start, end)를 하나씩 돌려주십시오"),
    "monitoring.interval_wrong": Message(
        en="for {view} you returned {shown}; the registry's newest interval is ({start}, {end}) — {hint}",
        ko="{view}에 대해 돌려준 값은 {shown}이고, 레지스트리의 가장 최근 구간은 ({start}, {end})입니다. {hint}"),
    "monitoring.online_wrong": Message(
        en="after your runs the online store holds {name}={got} for {keys}; the newest offline row at or before "
           "{end} has {want}: every run must materialize every view up to `end` — "
           "store.materialize_incremental(end_date=end)",
        ko="실행을 마친 뒤 온라인 스토어에는 {keys}의 {name}={got} 값이 있지만, {end} 이전(같은 시각 포함)의 가장 "
           "최근 오프라인 행에는 {want} 값이 있습니다. 매번 모든 피처 뷰를 `end`까지 실체화해야 합니다: "
           "store.materialize_incremental(end_date=end)"),
    "monitoring.catch_up_passed": Message(
        en="two runs, to {first} then {second}, each continued every view from its previous end; your intervals are "
           "the registry's newest, and the online store holds the offline rows as of the second end",
        ko="{first}까지, 이어서 {second}까지 두 번 실행했고, 매번 모든 피처 뷰를 이전 끝 시각부터 이어서 "
           "실체화했습니다. 돌려준 구간은 레지스트리의 최신 구간과 같고, 온라인 스토어에는 두 번째 끝 시각 기준의 "
           "오프라인 행이 들어 있습니다"),
}
