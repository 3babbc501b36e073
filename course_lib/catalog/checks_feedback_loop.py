"""Messages of notebook 09's checks (course_lib.checks.feedback_loop): labelling a served-feature log, the skew of
one feature."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "feedback_loop.not_a_frame": Message(
        en="label_log returned {got}; return a DataFrame with the columns __request_id, movie_id and label",
        ko="label_log가 {got} 값을 돌려주었습니다. __request_id, movie_id, label 열이 있는 DataFrame을 돌려주십시오"),
    "feedback_loop.label_wrong": Message(
        en="label_log gave the rows {got} (request id, movie_id, label), expected {want}: {hint}",
        ko="label_log의 결과 행은 {got}(요청 id, movie_id, label)이고, 기대한 행은 {want}입니다. {hint}"),
    "feedback_loop.hint_served_moment": Message(
        en="the window starts at features_as_of, the moment the served values stand for, not at __log_timestamp "
           "(when the log was written)",
        ko="구간은 서빙한 값이 기준으로 삼는 시각인 features_as_of에서 시작합니다. 로그를 쓴 시각인 "
           "__log_timestamp가 아닙니다"),
    "feedback_loop.hint_strictly_after": Message(
        en="a rating at or before features_as_of was already there when the values were served: only ratings strictly "
           "after it count",
        ko="features_as_of 이전이나 그 시각의 평점은 값을 서빙할 때 이미 있던 것입니다. 그 시각보다 엄격하게 뒤에 남긴 "
           "평점만 셉니다"),
    "feedback_loop.hint_first": Message(
        en="keep one row per logged candidate (request id, movie): the first rating within the horizon gives its label",
        ko="로그의 후보(요청 id, 영화)마다 행을 하나만 남기십시오. 레이블은 구간 안의 첫 번째 평점으로 정합니다"),
    "feedback_loop.hint_horizon": Message(
        en="the window is (features_as_of, features_as_of + horizon]: its end included, later ratings not",
        ko="구간은 (features_as_of, features_as_of + horizon]입니다. 끝 시각은 포함하고, 그보다 늦은 평점은 "
           "포함하지 않습니다"),
    "feedback_loop.hint_label": Message(
        en="label = 1 when that rating is >= 4, else 0",
        ko="그 평점이 4 이상이면 label = 1, 아니면 0입니다"),
    "feedback_loop.hint_random": Message(
        en="on a random log with a horizon of {horizon}; use the horizon you are given",
        ko="무작위 로그에서 horizon이 {horizon}일 때의 결과입니다. 인자로 받은 horizon을 쓰십시오"),
    "feedback_loop.label_passed": Message(
        en="{count} logs labelled, the window's edges, repeated ratings and a 12-hour horizon included",
        ko="구간의 경계, 반복된 평점, 12시간 horizon을 포함한 로그 {count}개 모두 레이블이 맞습니다"),
    "feedback_loop.not_a_count": Message(
        en="count_mismatches returned {got!r}; return the number of rows that differ (an int)",
        ko="count_mismatches가 {got!r} 값을 돌려주었습니다. 값이 다른 행의 개수(int)를 돌려주십시오"),
    "feedback_loop.count_wrong": Message(
        en="count_mismatches(served={served}, expected={expected}) returned {got}, expected {want}: {hint}",
        ko="count_mismatches(served={served}, expected={expected})의 결과는 {got}이고, 기대한 값은 {want}입니다. "
           "{hint}"),
    "feedback_loop.hint_both_missing": Message(
        en="a value missing on both sides is a match (NaN != NaN in numpy and pandas: test np.isnan on both sides)",
        ko="양쪽 모두 값이 없으면 일치로 봅니다(numpy와 pandas에서 NaN != NaN입니다. 양쪽에 np.isnan을 확인하십시오)"),
    "feedback_loop.hint_one_missing": Message(
        en="a value against a missing one is a mismatch",
        ko="한쪽에만 값이 있고 다른 쪽에 없으면 불일치입니다"),
    "feedback_loop.hint_rounding": Message(
        en="values equal up to rounding match: compare with np.isclose, not ==",
        ko="반올림 오차만큼만 다른 값은 일치로 봅니다. ==가 아니라 np.isclose로 비교하십시오"),
    "feedback_loop.hint_tolerance": Message(
        en="use the skew report's tolerances, np.isclose(..., rtol=skew.RTOL, atol=skew.ATOL): the defaults hide a "
           "real difference",
        ko="스큐 보고서의 허용 오차를 쓰십시오: np.isclose(..., rtol=skew.RTOL, atol=skew.ATOL). 기본값은 실제 차이를 "
           "가립니다"),
    "feedback_loop.hint_random_count": Message(
        en="random values with missing ones, rounding and real differences",
        ko="값이 없는 경우, 반올림 오차, 실제 차이가 섞인 무작위 값에서의 결과입니다"),
    "feedback_loop.count_passed": Message(
        en="{count} pairs of columns, missing values, rounding and the report's tolerances included",
        ko="값이 없는 경우, 반올림 오차, 보고서의 허용 오차를 포함한 열 쌍 {count}개 모두 맞습니다"),
}
