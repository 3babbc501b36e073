"""Messages of the ranker: training and loading it (course_lib.ranker), its compiled trees
(course_lib.scoring) and the features a candidate matrix serves it (course_lib.candidate_matrix)."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "skew.empty_log": Message(
        en="the served-feature log is empty: serve some recommendations first (`course serve`, then POST "
           "/recommendations) with COURSE_FEATURE_LOG on",
        ko="서빙 피처 로그가 비어 있습니다. COURSE_FEATURE_LOG를 켠 채 먼저 추천을 서빙하십시오(`course serve` 후 "
           "POST /recommendations)"),
    "ranker.frame_lacks_features": Message(
        en="frame lacks feature columns {missing}; build it with training_frame() or candidate_frame()",
        ko="프레임에 피처 열 {missing}이(가) 없습니다. training_frame() 또는 candidate_frame()으로 만드십시오"),
    "ranker.frame_lacks_on_demand": Message(
        en="frame lacks the on-demand feature {name!r}; add it with serving.with_on_demand()",
        ko="프레임에 온디맨드 피처 {name!r}이(가) 없습니다. serving.with_on_demand()로 추가하십시오"),
    "ranker.test_one_label": Message(
        en="the {count} held-out rows need both labels to compute AUC; use more data or a larger test_fraction",
        ko="AUC를 계산하려면 떼어 둔 평가용 행 {count}개에 두 라벨이 모두 있어야 합니다. 데이터를 늘리거나 "
           "test_fraction을 키우십시오"),
    "ranker.test_fraction": Message(
        en="test_fraction must lie strictly between 0 and 1, got {test_fraction}",
        ko="test_fraction은 0보다 크고 1보다 작아야 합니다. 받은 값: {test_fraction}"),
    "ranker.train_one_label": Message(
        en="the {count} training rows before {split} need both labels; use more data or a smaller test_fraction",
        ko="{split} 이전의 훈련 행 {count}개에 두 라벨이 모두 있어야 합니다. 데이터를 늘리거나 test_fraction을 "
           "줄이십시오"),
    "ranker.retrain": Message(
        en="run `course train --profile {profile}`",
        ko="`course train --profile {profile}` 명령을 실행하십시오"),
    "ranker.not_trained": Message(
        en="no trained ranker at {path}; {retrain} first",
        ko="{path}에 훈련된 랭커가 없습니다. 먼저 {retrain}"),
    "ranker.checksum": Message(
        en="{path} does not match the SHA-256 recorded when it was trained ({recorded}), so it was not loaded (a "
           "model file is code: it is unpickled); {retrain} to replace it",
        ko="{path}이(가) 훈련 때 기록한 SHA-256({recorded})과 일치하지 않아 불러오지 않았습니다(모델 파일은 "
           "unpickle되므로 코드와 같습니다). 교체하려면 {retrain}"),
    "ranker.features_changed": Message(
        en="{path} was saved with different model features; retrain it with `course train --profile {profile}`",
        ko="{path}은(는) 다른 모델 피처로 저장되었습니다. `course train --profile {profile}` 명령으로 다시 "
           "훈련하십시오"),
    "scoring.compile_failed": Message(
        en="compiling the ranker with {compiler} failed ({error}); fix the compiler or unset CC to let `course train` "
           "pick gcc/clang. Log: {log}",
        ko="{compiler}(으)로 랭커를 컴파일하지 못했습니다({error}). 컴파일러를 고치거나, CC를 해제해 `course "
           "train`이 gcc/clang을 고르게 하십시오. 로그: {log}"),
    "scoring.load_failed": Message(
        en="cannot load the compiled ranker {path} ({error}); retrain it on this machine with `course train`",
        ko="컴파일된 랭커 {path}을(를) 불러올 수 없습니다({error}). 이 머신에서 `course train` 명령으로 다시 "
           "훈련하십시오"),
    "scoring.feature_count": Message(
        en="{path} reads {compiled} features, the model {model}; retrain with `course train`",
        ko="{path}은(는) 피처 {compiled}개를 읽지만 모델은 {model}개를 읽습니다. `course train` 명령으로 다시 "
           "훈련하십시오"),
    "candidate_matrix.unknown_features": Message(
        en="the model reads features the course does not serve: {unknown}; retrain it with `course train`",
        ko="모델이 코스가 서빙하지 않는 피처를 읽습니다: {unknown}. `course train` 명령으로 다시 훈련하십시오"),
}
