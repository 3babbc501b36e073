"""Messages of notebook 05's checks (course_lib.checks.optimization): cache invalidation, a cache-aside read of
movie features."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "optimization.case_nothing_ran": Message(
        en="nothing ran",
        ko="아무것도 실행되지 않았을 때"),
    "optimization.case_further": Message(
        en="one view materialized further",
        ko="피처 뷰 하나가 더 나중 시각까지 실체화되었을 때"),
    "optimization.case_first": Message(
        en="a view materialized for the first time",
        ko="피처 뷰 하나가 처음으로 실체화되었을 때"),
    "optimization.case_rebuilt": Message(
        en="the registry was rebuilt with an earlier end",
        ko="레지스트리가 더 이른 끝 시각으로 다시 만들어졌을 때"),
    "optimization.case_added": Message(
        en="a view was added to the registry",
        ko="레지스트리에 피처 뷰가 추가되었을 때"),
    "optimization.case_removed": Message(
        en="a view was removed from the registry",
        ko="레지스트리에서 피처 뷰가 삭제되었을 때"),
    "optimization.hint_inverted": Message(
        en="you returned the views that did *not* change; drop the ones whose end changed",
        ko="바뀌지 *않은* 피처 뷰를 돌려주었습니다. 끝 시각이 바뀐 피처 뷰를 버리십시오"),
    "optimization.hint_one_poll": Message(
        en="a view present in only one poll changed too: treat a missing view as never materialized (None)",
        ko="두 번의 조회 중 한쪽에만 있는 피처 뷰도 바뀐 것입니다. 없는 피처 뷰는 한 번도 실체화되지 않은 것(None)으로 "
           "다루십시오"),
    "optimization.hint_first": Message(
        en="a first materialization (None -> an end) also makes cached rows stale",
        ko="첫 실체화(None -> 끝 시각)도 캐시된 행을 낡은 값으로 만듭니다"),
    "optimization.hint_backwards": Message(
        en="any change of the end counts, also a move backwards: the cached rows no longer match the store",
        ko="끝 시각이 과거로 옮겨진 경우를 포함해 모든 변화가 해당됩니다. 캐시된 행이 더는 스토어와 맞지 않습니다"),
    "optimization.hint_only_changed": Message(
        en="only views whose end changed must be dropped; the others keep their entries",
        ko="끝 시각이 바뀐 피처 뷰만 버려야 합니다. 나머지는 캐시 항목을 유지합니다"),
    "optimization.not_a_set": Message(
        en="views_to_invalidate returned {type}; return a set of view names",
        ko="views_to_invalidate의 반환값이 {type} 타입입니다. 피처 뷰 이름의 집합(set)을 돌려주십시오"),
    "optimization.drop_wrong": Message(
        en="when {situation}, you drop {got}; the cache must drop {want} — {hint}",
        ko="{situation} 작성한 코드가 버리는 피처 뷰는 {got}이지만, 캐시가 버려야 하는 피처 뷰는 {want}입니다. "
           "{hint}"),
    "optimization.invalidation_passed": Message(
        en="the right views dropped in all {count} situations",
        ko="상황 {count}가지 모두에서 올바른 피처 뷰를 버립니다"),
    "optimization.read_when_cached": Message(
        en="every id was in the cache, yet you called get_online_features {calls} time(s): read only the ids missing "
           "from the cache, and skip the call when none is",
        ko="모든 id가 캐시에 있었는데도 get_online_features를 {calls}번 호출했습니다. 캐시에 없는 id만 읽고, 없는 "
           "id가 하나도 없으면 호출을 건너뛰십시오"),
    "optimization.never_read": Message(
        en="{missing} were not in the cache, and you never called store.get_online_features: read the missing ids "
           "through the online store",
        ko="캐시에 없는 id({missing})가 있었는데도 store.get_online_features를 한 번도 호출하지 않았습니다. 캐시에 "
           "없는 id는 온라인 스토어에서 읽으십시오"),
    "optimization.many_reads": Message(
        en="you made {calls} get_online_features calls for {missing} missing ids: use one call for all missing ids",
        ko="캐시에 없는 id {missing}개를 읽으려고 get_online_features를 {calls}번 호출했습니다. 캐시에 없는 id 전부를 "
           "한 번의 호출로 읽으십시오"),
    "optimization.no_movie_id": Message(
        en="every entity row needs a movie_id: entity_rows=[{{'movie_id': m}} for m in missing]",
        ko="모든 엔티티 행에 movie_id가 있어야 합니다: entity_rows=[{{'movie_id': m}} for m in missing]"),
    "optimization.read_again": Message(
        en="cached ids read again: {again} were already in the cache; ask the store only for ids not in cache",
        ko="캐시된 id를 다시 읽었습니다. 이미 캐시에 있던 id: {again}. 캐시에 없는 id만 스토어에 요청하십시오"),
    "optimization.asked_wrong": Message(
        en="you asked the store for {asked}; the ids missing from the cache were {missing}",
        ko="스토어에 요청한 id는 {asked}이고, 캐시에 없던 id는 {missing}입니다"),
    "optimization.frame_columns": Message(
        en="cached_movie_features must return a DataFrame with the columns {columns}; got columns {got}",
        ko="cached_movie_features는 {columns} 열이 있는 DataFrame을 돌려주어야 합니다. 돌려준 열: {got}"),
    "optimization.frame_type": Message(
        en="cached_movie_features must return a DataFrame with the columns {columns}; got {type}",
        ko="cached_movie_features는 {columns} 열이 있는 DataFrame을 돌려주어야 합니다. 돌려준 값의 타입: {type}"),
    "optimization.frame_order": Message(
        en="your movie_id column is {got}; the request was {want}: keep the requested order, one row per requested "
           "movie (cached and read alike)",
        ko="돌려준 movie_id 열은 {got}이고, 요청은 {want}입니다. 요청한 순서를 유지하고, 요청한 영화마다 한 행씩 "
           "돌려주십시오(캐시에서 가져온 영화와 스토어에서 읽은 영화 모두)"),
    "optimization.frame_value": Message(
        en="movie {movie}: your {name} is {got}; the online store holds {want}",
        ko="영화 {movie}: 돌려준 {name} 값은 {got}이고, 온라인 스토어에 있는 값은 {want}입니다"),
    "optimization.cache_empty": Message(
        en="the cache is still empty after your call: store every row you read in "
           "cache[movie_id] = {{'vote_average': ..., 'popularity': ...}}",
        ko="호출한 뒤에도 캐시가 비어 있습니다. 읽은 행을 모두 "
           "cache[movie_id] = {{'vote_average': ..., 'popularity': ...}} 형태로 저장하십시오"),
    "optimization.cache_entry": Message(
        en="cache[{movie}] is {entry!r:.100}; after the call it must be {want} (unknown movies too, with nulls)",
        ko="cache[{movie}]의 값이 {entry!r:.100}입니다. 호출한 뒤에는 다음 값이 있어야 합니다: {want}(알 수 없는 "
           "영화도 null 값으로 저장합니다)"),
    "optimization.cache_passed": Message(
        en="{count} requests: one online read per request for only the uncached ids (none when all were cached), "
           "values and order as the online store gives",
        ko="요청 {count}개: 요청마다 캐시에 없는 id만 온라인 스토어에서 한 번에 읽고(모두 캐시에 있으면 읽지 않음), "
           "값과 순서가 온라인 스토어가 주는 것과 같습니다"),
}
