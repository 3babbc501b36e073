"""Messages of notebook 03's checks (course_lib.checks.realtime_serving): candidate features read online through
the feature service, NDCG@k, a point-in-time training set through the feature service."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "realtime_serving.never_materialized": Message(
        en="the online store was never materialized; run the materialization cells first",
        ko="온라인 스토어가 한 번도 실체화되지 않았습니다. 먼저 실체화 셀을 실행하십시오"),
    "realtime_serving.no_online_read": Message(
        en="candidate_features never called store.get_online_features: read the candidates online",
        ko="candidate_features가 store.get_online_features를 한 번도 호출하지 않았습니다. 후보의 피처를 온라인 "
           "스토어에서 읽으십시오"),
    "realtime_serving.candidates_not_service": Message(
        en="ask through the feature service: features=store.get_feature_service({service!r}), not a list of feature "
           "references: the ranker reads exactly what it was trained on",
        ko="피처 참조 목록이 아니라 피처 서비스로 요청하십시오: features=store.get_feature_service({service!r}). "
           "랭커는 훈련할 때 쓴 피처를 그대로 읽어야 합니다"),
    "realtime_serving.many_reads": Message(
        en="you made {calls} get_online_features calls for {candidates} candidates: use one get_online_features "
           "call for all candidates, one entity row per candidate",
        ko="후보 {candidates}개를 읽으려고 get_online_features를 {calls}번 호출했습니다. 모든 후보를 "
           "get_online_features 한 번의 호출로 읽고, 후보마다 엔티티 행을 하나씩 넘기십시오"),
    "realtime_serving.entity_keys": Message(
        en="your entity rows have no {missing}: every row needs user_id and movie_id, as the service reads the user "
           "view (keyed by user_id) and the movie view (keyed by movie_id)",
        ko="넘긴 엔티티 행에 {missing} 키가 없습니다. 피처 서비스는 사용자 피처 뷰(키: user_id)와 영화 피처 뷰"
           "(키: movie_id)를 읽으므로 모든 행에 user_id와 movie_id가 있어야 합니다"),
    "realtime_serving.candidate_columns": Message(
        en="candidate_features must return a DataFrame with movie_id and the service's features; missing {missing}",
        ko="candidate_features는 movie_id와 피처 서비스의 피처가 있는 DataFrame을 돌려주어야 합니다. 빠진 열: "
           "{missing}"),
    "realtime_serving.candidate_type": Message(
        en="candidate_features must return a DataFrame with movie_id and the service's features; got {type}",
        ko="candidate_features는 movie_id와 피처 서비스의 피처가 있는 DataFrame을 돌려주어야 합니다. 돌려준 값의 "
           "타입: {type}"),
    "realtime_serving.candidate_rows": Message(
        en="you returned {got} rows for {count} candidates {movies}: one row per candidate, unknown ones included "
           "(their features are null)",
        ko="후보 {count}개({movies})에 대해 {got}개 행을 돌려주었습니다. 알 수 없는 영화까지 포함해 후보마다 한 행씩 "
           "돌려주십시오(그 피처는 null입니다)"),
    "realtime_serving.candidate_order": Message(
        en="row {i} is movie {got}; it should be movie {movie}: keep the candidates' order {movies}",
        ko="{i}번 행의 movie_id는 {got}이고, 기대한 movie_id는 {movie}입니다. 후보 순서({movies})를 유지하십시오"),
    "realtime_serving.why_user": Message(
        en="did you send user_id={user} with every movie_id?",
        ko="모든 movie_id와 함께 user_id={user} 값을 보냈습니까?"),
    "realtime_serving.why_movie": Message(
        en="did you send movie_id={movie} in this candidate's entity row?",
        ko="이 후보의 엔티티 행에 movie_id={movie} 값을 넣었습니까?"),
    "realtime_serving.candidate_value": Message(
        en="movie {movie}: your {name} is {got}; the online store holds {want} — {why}",
        ko="영화 {movie}: 돌려준 {name} 값은 {got}이고, 온라인 스토어에 있는 값은 {want}입니다. {why}"),
    "realtime_serving.candidates_passed": Message(
        en="one read through {service!r} for {count} candidates of user {user}: every value equals the newest "
           "materialized offline row",
        ko="사용자 {user}의 후보 {count}개를 {service!r} 피처 서비스로 한 번에 읽었고, 모든 값이 실체화된 가장 최근 "
           "오프라인 행과 같습니다"),
    "realtime_serving.hint_ideal": Message(
        en="divide by the ideal DCG@k (the same sum over the relevances sorted high to low)",
        ko="이상적인 DCG@k(관련도를 높은 순으로 정렬했을 때의 같은 합)로 나누십시오"),
    "realtime_serving.hint_discount": Message(
        en="position i (1-based) is discounted by log2(i + 1): the top item by log2(2) = 1",
        ko="(1부터 센) 위치 i의 할인 계수는 log2(i + 1)입니다. 맨 위 항목은 log2(2) = 1로 나눕니다"),
    "realtime_serving.hint_all": Message(
        en="the ideal DCG ranks *all* candidates by relevance, not just your top k",
        ko="이상적인 DCG는 상위 k개만이 아니라 *모든* 후보를 관련도순으로 정렬합니다"),
    "realtime_serving.hint_order": Message(
        en="rank by score from highest to lowest",
        ko="점수가 높은 것부터 낮은 순서로 정렬하십시오"),
    "realtime_serving.hint_top_k": Message(
        en="only the top k positions count",
        ko="상위 k개 위치만 계산에 들어갑니다"),
    "realtime_serving.hint_gain": Message(
        en="use the relevance itself as the gain (scikit-learn's convention), not 2**rel - 1",
        ko="2**rel - 1이 아니라 관련도 자체를 이득(gain)으로 쓰십시오(scikit-learn의 방식)"),
    "realtime_serving.hint_finite": Message(
        en="a finite number is expected; is a discount log2(1) = 0 in a denominator?",
        ko="유한한 숫자가 나와야 합니다. 분모에 할인 계수 log2(1) = 0이 들어가지 않았습니까?"),
    "realtime_serving.hint_ndcg": Message(
        en="NDCG@k = DCG@k of your ranking / DCG@k of the ideal ranking, 0.0 when nothing is relevant",
        ko="NDCG@k = (여러분이 매긴 순위의 DCG@k) / (이상적인 순위의 DCG@k)이고, 관련 있는 항목이 하나도 없으면 "
           "0.0입니다"),
    "realtime_serving.ndcg_wrong": Message(
        en="for relevance {relevance} and scores {scores} with k={k}, your NDCG@{k} is {got:.4f}; scikit-learn's "
           "ndcg_score gives {want:.4f} — {hint}",
        ko="관련도 {relevance}, 점수 {scores}, k={k}일 때 계산한 NDCG@{k}는 {got:.4f}이고, scikit-learn의 "
           "ndcg_score는 {want:.4f}입니다. {hint}"),
    "realtime_serving.ndcg_passed": Message(
        en="equals scikit-learn's ndcg_score on all {count} cases",
        ko="사례 {count}개 모두에서 scikit-learn의 ndcg_score와 같습니다"),
    "realtime_serving.online_for_training": Message(
        en="you read online features: online values are today's, a training row needs the values as of its own "
           "event_timestamp — use store.get_historical_features(entity_df=entity_df, features=...)",
        ko="온라인 피처를 읽었습니다. 온라인 값은 지금의 값이지만, 훈련 행에는 그 행의 event_timestamp 시점의 값이 "
           "필요합니다. store.get_historical_features(entity_df=entity_df, features=...)를 쓰십시오"),
    "realtime_serving.no_historical_read": Message(
        en="training_set never called store.get_historical_features",
        ko="training_set이 store.get_historical_features를 한 번도 호출하지 않았습니다"),
    "realtime_serving.training_type": Message(
        en="training_set returned {type}; return the DataFrame (.to_df())",
        ko="training_set의 반환값이 {type} 타입입니다. DataFrame(.to_df())을 돌려주십시오"),
    "realtime_serving.training_columns": Message(
        en="Missing columns {missing}: keep entity_df's columns and ask through the feature service: "
           "features=store.get_feature_service({service!r})",
        ko="빠진 열: {missing}. entity_df의 열을 유지하고 피처 서비스로 요청하십시오: "
           "features=store.get_feature_service({service!r})"),
    "realtime_serving.training_not_service": Message(
        en="ask through the feature service: features=store.get_feature_service({service!r}), not a list of feature "
           "references: training and serving then read the same features",
        ko="피처 참조 목록이 아니라 피처 서비스로 요청하십시오: features=store.get_feature_service({service!r}). "
           "그래야 훈련과 서빙이 같은 피처를 읽습니다"),
    "realtime_serving.training_rows": Message(
        en="you returned {got} rows for {count} entity rows: one row per entity_df row",
        ko="엔티티 행 {count}개에 대해 {got}개 행을 돌려주었습니다. entity_df의 행마다 한 행씩 돌려주십시오"),
    "realtime_serving.training_first": Message(
        en="your columns start with {first}: put entity_df's columns {columns} first, then the features",
        ko="돌려준 열이 {first}(으)로 시작합니다. entity_df의 열({columns})을 먼저 두고, 그다음에 피처를 두십시오"),
    "realtime_serving.row_differs": Message(
        en="your row {i} is {mine}, entity_df's row {i} is {want} ({columns})",
        ko="돌려준 {i}번 행은 {mine}이고, entity_df의 {i}번 행은 {want}입니다({columns})"),
    "realtime_serving.row_order": Message(
        en="{where}: Feast does not keep entity_df's order; keep entity_df's row order (number the rows in a column "
           "before the call, sort by it after)",
        ko="{where}. Feast는 entity_df의 순서를 유지하지 않습니다. entity_df의 행 순서를 유지하십시오(호출 전에 행 "
           "번호를 열 하나에 매겨 두고, 호출 뒤에 그 열로 정렬합니다)"),
    "realtime_serving.row_time": Message(
        en="{where}: keep each row's own event_timestamp; a training row joined at a later time (now, the data's "
           "end) gets values from after its label was known — leakage",
        ko="{where}. 각 행의 event_timestamp를 그대로 쓰십시오. 더 나중 시각(지금, 데이터의 끝)으로 조인한 훈련 행은 "
           "라벨이 알려진 뒤의 값을 받습니다. 이것이 라벨 누수(leakage)입니다"),
    "realtime_serving.row_changed": Message(
        en="{where}: return one row per entity_df row, with entity_df's columns unchanged",
        ko="{where}. entity_df의 행마다 한 행씩, entity_df의 열은 바꾸지 않고 돌려주십시오"),
    "realtime_serving.hint_leak": Message(
        en="that value is from an offline row after the row's event_timestamp: a training row needs the values as "
           "of its own event_timestamp (leakage)",
        ko="그 값은 행의 event_timestamp보다 나중의 오프라인 행에서 왔습니다. 훈련 행에는 그 행의 event_timestamp "
           "시점의 값이 필요합니다(라벨 누수, leakage)"),
    "realtime_serving.hint_ask": Message(
        en="ask store.get_historical_features(entity_df=entity_df, features=<the service>) and keep each feature "
           "on its own entity row",
        ko="store.get_historical_features(entity_df=entity_df, features=<피처 서비스>)로 요청하고, 각 피처를 "
           "자기 엔티티 행에 그대로 두십시오"),
    "realtime_serving.training_value": Message(
        en="row {i} ({row}): your {name} is {got}, a point-in-time join gives {want} — {hint}",
        ko="{i}번 행({row}): 돌려준 {name} 값은 {got}이고, 시점 정확 조인의 결과는 {want}입니다. {hint}"),
    "realtime_serving.training_passed": Message(
        en="{rows} rows in entity_df's order, its columns first, then the service's {features} features; every view "
           "feature equals a point-in-time join of the offline tables (TTLs applied)",
        ko="entity_df의 순서대로 {rows}개 행이 있고, entity_df의 열 다음에 피처 서비스의 피처 {features}개가 "
           "있습니다. 피처 뷰의 모든 피처가 오프라인 테이블의 시점 정확 조인 결과(TTL 적용)와 같습니다"),
}
