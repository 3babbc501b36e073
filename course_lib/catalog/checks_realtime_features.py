"""Messages of notebook 08's checks (course_lib.checks.realtime_features): merging a late watch, the favourite
genre."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "realtime_features.not_a_tuple": Message(
        en="merge_watch_times returned {got!r}; return a tuple (latest, previous)",
        ko="merge_watch_times가 {got!r} 값을 돌려주었습니다. 튜플 (latest, previous)를 돌려주십시오"),
    "realtime_features.hint_newer": Message(
        en="a newer watch makes the old latest the previous one",
        ko="더 새로운 시청이 오면 기존의 latest가 previous가 됩니다"),
    "realtime_features.hint_older": Message(
        en="an older watch can still become the previous one: compare it with `previous`",
        ko="latest보다 오래된 시청도 previous가 될 수 있습니다. `previous`와 비교하십시오"),
    "realtime_features.hint_oldest": Message(
        en="a watch older than both changes neither",
        ko="두 값보다 모두 오래된 시청은 어느 쪽도 바꾸지 않습니다"),
    "realtime_features.merge_wrong": Message(
        en="merge_watch_times({latest}, {previous}, {at}) returned {got}, expected {want}: {hint}",
        ko="merge_watch_times({latest}, {previous}, {at})의 결과는 {got}이고, 기대한 값은 {want}입니다. {hint}"),
    "realtime_features.order_wrong": Message(
        en="watches arriving in the order {times} gave (latest, previous) = {got}, expected {want}",
        ko="시청이 {times} 순서로 도착했을 때 결과 (latest, previous)는 {got}입니다. 기대한 값은 {want}입니다"),
    "realtime_features.merge_passed": Message(
        en="{count} random arrival orders give the two newest watch times",
        ko="무작위 도착 순서 {count}가지 모두에서 가장 최근 시청 시각 두 개를 얻습니다"),
    "realtime_features.hint_none": Message(
        en="with no watches there is no favourite: return None",
        ko="시청 기록이 없으면 가장 좋아하는 장르도 없습니다. None을 돌려주십시오"),
    "realtime_features.hint_ties": Message(
        en="ties go to the alphabetically first genre",
        ko="동률이면 알파벳순으로 가장 앞선 장르를 고릅니다"),
    "realtime_features.hint_highest": Message(
        en="pick the genre with the highest count",
        ko="시청 횟수가 가장 많은 장르를 고르십시오"),
    "realtime_features.genre_wrong": Message(
        en="favorite_genre({counts}) returned {got!r}, expected {want!r}: {hint}",
        ko="favorite_genre({counts})의 결과는 {got!r}이고, 기대한 값은 {want!r}입니다. {hint}"),
    "realtime_features.genre_passed": Message(
        en="{count} genre counts, ties and the empty case included",
        ko="동률과 빈 딕셔너리를 포함한 장르별 시청 횟수 {count}개 모두 맞습니다"),
}
