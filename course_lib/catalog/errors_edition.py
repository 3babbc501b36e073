"""Messages of the edition tools: learner copies (course_lib.exercises) and the Korean edition's
translations (course_lib.edition, course_lib.translations, course_lib.translation_store)."""
from __future__ import annotations

from course_lib.catalog.message import Message

MESSAGES: dict[str, Message] = {
    "exercises.unnumbered": Message(
        en="{notebook}: notebook names must start with their number, e.g. 02_name.ipynb",
        ko="{notebook}: 노트북 이름은 번호로 시작해야 합니다(예: 02_name.ipynb)"),
    "exercises.a_cell": Message(
        en="cell",
        ko="셀"),
    "exercises.cell_at": Message(
        en="{notebook} cell {index}",
        ko="{notebook}의 셀 {index}"),
    "exercises.nested_solution": Message(
        en="{where}: {begin} inside another solution block",
        ko="{where}: 다른 풀이 블록 안에 {begin}이(가) 있습니다"),
    "exercises.end_without_begin": Message(
        en="{where}: {end} without a {begin}",
        ko="{where}: {begin} 없이 {end}이(가) 나옵니다"),
    "exercises.unclosed_solution": Message(
        en="{where}: {begin} is never closed by {end}",
        ko="{where}: {begin}이(가) {end}(으)로 닫히지 않았습니다"),
    "exercises.cell_without_id": Message(
        en="{notebook} cell {index} has no id; save it with nbformat >= 4.5 (JupyterLab 3+)",
        ko="{notebook}의 셀 {index}에 id가 없습니다. nbformat >= 4.5(JupyterLab 3 이상)로 저장하십시오"),
    "exercises.no_notebooks": Message(
        en="no notebooks in {folder}",
        ko="{folder}에 노트북이 없습니다"),
    "edition.no_manifest": Message(
        en="{manifest} is missing: it lists every source and its state",
        ko="{manifest}이(가) 없습니다. 이 파일은 모든 원본과 그 상태를 나열합니다"),
    "edition.manifest_not_yaml": Message(
        en="{manifest} is not valid YAML: {error}",
        ko="{manifest}이(가) 올바른 YAML이 아닙니다: {error}"),
    "edition.manifest_shape": Message(
        en="{manifest}: expected a `sources:` mapping of path to state",
        ko="{manifest}: 경로와 상태를 잇는 `sources:` 매핑이 필요합니다"),
    "edition.unknown_state": Message(
        en="{manifest}: unknown state for {wrong}; use one of {states}",
        ko="{manifest}: {wrong}의 상태를 알 수 없습니다. {states} 중 하나를 쓰십시오"),
    "edition.cell_without_id": Message(
        en="{source} cell {index} has no id; save it with nbformat >= 4.5",
        ko="{source}의 셀 {index}에 id가 없습니다. nbformat >= 4.5로 저장하십시오"),
    "edition.wrong_block_kind": Message(
        en="{where}: {source} is translated per {kind}, but these blocks are not: {wrong}",
        ko="{where}: {source}은(는) `{kind}` 단위로 번역하는데, 다음 블록은 그렇지 않습니다: {wrong}"),
    "translations.unknown_keys": Message(
        en="{source} has no {kind} {keys}; `status {source}` lists its keys",
        ko="{source}에 `{kind}` {keys}이(가) 없습니다. `status {source}`가 키 목록을 보여 줍니다"),
    "translations.no_block": Message(
        en="{path} has no block for {keys}; run `stub {source}` first",
        ko="{path}에 {keys}의 블록이 없습니다. 먼저 `stub {source}`를 실행하십시오"),
    "translations.not_a_source": Message(
        en="not an English source of the Korean edition: {sources} (the sources are listed in {manifest})",
        ko="한국어판의 영어 원본이 아닙니다: {sources}(원본 목록은 {manifest}에 있습니다)"),
    "translation_store.twice": Message(
        en="{where}:{line}: {kind} {key} is translated twice (first on line {first}); keep one block",
        ko="{where}:{line}: {kind} {key}이(가) 두 번 번역되어 있습니다(처음은 {first}번째 줄). 블록 하나만 "
           "남기십시오"),
    "translation_store.malformed": Message(
        en="{where}:{line}: malformed marker {marker!r}; expected '<!-- cell|section KEY en=<{digits} hex digits> "
           "[todo] -->'",
        ko="{where}:{line}: 형식이 잘못된 마커 {marker!r}. 이 형식이어야 합니다: '<!-- cell|section KEY en=<{digits} "
           "hex digits> [todo] -->'"),
}
