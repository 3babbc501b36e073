"""Messages every check shares (course_lib.checks.common): calling the learner's function, the learner copy's
verdict line, durations as checks show them, and answers of the wrong type."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "common.not_a_function": Message(
        en="expected your function `{name}`, got {got!r}; run the exercise cell first",
        ko="`{name}` 자리에 함수가 아닌 값 {got!r}이(가) 들어왔습니다. 먼저 연습 문제 셀을 실행하십시오"),
    "common.not_done": Message(
        en="`{name}` is not written yet: it still raises NotImplementedError. Replace the `# YOUR CODE HERE` stub "
           "in the exercise cell with your code, run that cell, then this one.",
        ko="`{name}` 함수를 아직 작성하지 않았습니다. 여전히 NotImplementedError를 일으킵니다. 연습 문제 셀의 "
           "`# YOUR CODE HERE` 빈칸을 여러분의 코드로 바꾸고, 그 셀을 실행한 다음 이 셀을 실행하십시오."),
    "common.raised": Message(
        en="your `{name}` raised {error}: {detail}",
        ko="작성한 `{name}` 함수에서 {error} 예외가 발생했습니다: {detail}"),
    "common.not_solved": Message(
        en="✗ Exercise {label} is not solved yet: {failure}\n  (Learner copy: the notebook goes on; no later cell "
           "uses your answer.)",
        ko="✗ 연습 문제 {label}: 아직 풀리지 않았습니다. {failure}\n  (학습자용 사본이므로 노트북은 계속 실행됩니다. "
           "이후의 어떤 셀도 여러분의 답을 쓰지 않습니다.)"),
    "common.not_registered": Message(
        en="the registry has no {name!r} ({error}); register the course definitions first (`course apply`, or run "
           "the notebook from the top)",
        ko="레지스트리에 {name!r} 항목이 없습니다({error}). 먼저 코스 정의를 등록하십시오(`course apply`를 실행하거나 "
           "노트북을 처음부터 실행합니다)"),
    "common.not_a_number": Message(
        en="{function} returned {type}; return one number",
        ko="{function}의 반환값이 {type} 타입입니다. 숫자 하나를 돌려주십시오"),
    "common.not_a_float": Message(
        en="{function} returned {type}; return one number (a float)",
        ko="{function}의 반환값이 {type} 타입입니다. 숫자 하나(float)를 돌려주십시오"),
    "common.day": Message(en="{number} day", ko="{number}일"),
    "common.days": Message(en="{number} days", ko="{number}일"),
    "common.hour": Message(en="{number} hour", ko="{number}시간"),
    "common.hours": Message(en="{number} hours", ko="{number}시간"),
}
