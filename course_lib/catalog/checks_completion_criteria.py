"""Messages of notebook 07's checks (course_lib.checks.completion_criteria): availability outside outage windows,
recovery time after an outage."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "completion_criteria.hint_percentage": Message(
        en="return a share between 0 and 1, not a percentage",
        ko="백분율이 아니라 0과 1 사이의 비율을 돌려주십시오"),
    "completion_criteria.hint_windows": Message(
        en="leave out the requests in flight during an outage window",
        ko="장애 구간 동안 처리 중이던 요청은 빼십시오"),
    "completion_criteria.hint_straggler": Message(
        en="a request sent before a window and still running when it started is affected too",
        ko="구간이 시작되기 전에 보냈지만 구간이 시작될 때 아직 처리 중이던 요청도 영향을 받습니다"),
    "completion_criteria.hint_availability": Message(
        en="count the requests that overlap no window, and the share of them that answered 200",
        ko="어느 구간과도 겹치지 않는 요청을 세고, 그중 200으로 응답한 비율을 구하십시오"),
    "completion_criteria.availability_wrong": Message(
        en="you computed {got}, expected {want:.4f}: {hint}",
        ko="계산한 값은 {got}이고, 기대한 값은 {want:.4f}입니다. {hint}"),
    "completion_criteria.availability_passed": Message(
        en="{share:.2%} of the requests outside the two windows answered 200",
        ko="두 구간 밖의 요청 중 {share:.2%}가 200으로 응답했습니다"),
    "completion_criteria.hint_first_success": Message(
        en="the first success is not enough: recovery ends after the last failure that followed the outage",
        ko="첫 성공만으로는 부족합니다. 복구는 장애 뒤에 이어진 마지막 실패 이후에야 끝납니다"),
    "completion_criteria.hint_sent": Message(
        en="measure until the answer came back (done_s), not when the request was sent",
        ko="요청을 보낸 시각이 아니라 응답이 돌아온 시각(done_s)까지 재십시오"),
    "completion_criteria.hint_recovery": Message(
        en="find the last failure after the window, then the first 200 after it; subtract the window's end",
        ko="구간이 끝난 뒤의 마지막 실패를 찾고, 그 뒤의 첫 200 응답을 찾은 다음 구간의 끝 시각을 빼십시오"),
    "completion_criteria.recovery_not_number": Message(
        en="recovery_time returned {type}; return seconds as a number",
        ko="recovery_time의 반환값이 {type} 타입입니다. 초 단위의 숫자를 돌려주십시오"),
    "completion_criteria.recovery_wrong": Message(
        en="you computed {got} s, expected {want:.3f} s: {hint}",
        ko="계산한 값은 {got}초이고, 기대한 값은 {want:.3f}초입니다. {hint}"),
    "completion_criteria.recovery_passed": Message(
        en="{seconds:.3f} s after the Redis outage, the flap at 15.5-16 s included",
        ko="Redis 장애가 끝나고 {seconds:.3f}초 뒤에 복구되었습니다(15.5-16초의 일시적인 재실패까지 포함)"),
}
