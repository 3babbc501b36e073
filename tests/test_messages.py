"""The exercise checks speak the learner's language (course_lib.messages): every catalog entry has an English
and a Korean template with the same placeholders, every entry is used, every check message goes through `say`
(an ast scan, shown to catch a raw f-string), the language follows COURSE_LANG and the Korean notebooks, and
a check run in Korean fails in Korean. The catalog tests cover the command line's error entries too
(tests/test_cli_messages.py holds the rest of theirs)."""
from __future__ import annotations

import ast
import binascii
import re
import string
from datetime import timedelta
from pathlib import Path

import pytest
from sklearn.metrics import ndcg_score

from course_lib import checks, messages
from course_lib.catalog import CATALOG, MODULES
from course_lib.config import REPO_ROOT
from course_lib.translation_store import has_hangul

PACKAGE = REPO_ROOT / "course_lib"
CATALOG_DIR = PACKAGE / "catalog"
CHECK_MODULES = sorted((PACKAGE / "checks").glob("*.py"))
# Calls whose message argument (by position) must be a say(...) call.
MESSAGE_ARGUMENT = {"CheckFailed": 0, "passed": 1}
KOREAN_NOTEBOOK = "/home/learner/feast-course/notebooks_ko/03_realtime_serving.ipynb"


def placeholders(template: str) -> set[tuple[str, str | None, str]]:
    """(name, conversion, format spec) of every replacement field of a str.format template."""
    return {(name, conversion, spec or "") for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None}


class Shown:
    """A stand-in value that renders under any conversion and format spec."""

    def __format__(self, spec: str) -> str:
        return "<value>"

    def __repr__(self) -> str:
        return "<value>"


# --- the catalog -------------------------------------------------------------------------------------

def test_every_entry_has_english_and_korean_with_the_same_placeholders() -> None:
    problems = []
    for key, message in CATALOG.items():
        if not message.en.strip() or not message.ko.strip():
            problems.append(f"{key}: an empty template")
        elif not has_hangul(message.ko) or has_hangul(message.en):
            problems.append(f"{key}: the Korean template has no Korean, or the English one has")
        elif placeholders(message.en) != placeholders(message.ko):
            problems.append(f"{key}: English {sorted(placeholders(message.en))} != Korean "
                            f"{sorted(placeholders(message.ko))}")
        elif not all(name.isidentifier() for name, _, _ in placeholders(message.en)):
            problems.append(f"{key}: placeholders must be names (no positional, index or attribute fields)")
        else:
            values = {name: Shown() for name, _, _ in placeholders(message.en)}
            for template in message:  # renders: the braces are well formed, no field is missing
                assert template.format(**values), key
    assert problems == []


def test_no_two_entries_have_the_same_english() -> None:
    keys_by_text: dict[str, list[str]] = {}
    for key, message in CATALOG.items():
        keys_by_text.setdefault(message.en, []).append(key)
    assert {text: keys for text, keys in keys_by_text.items() if len(keys) > 1} == {}


def namespace(key: str) -> str:
    """A key's first part: the module that says it (`common` of `common.not_done`)."""
    return key.split(".", 1)[0]


def test_each_module_holds_its_own_keys_and_no_key_is_lost_when_merged() -> None:
    """`checks_X` holds the keys of course_lib/checks/X.py; a namespace lives in one module only."""
    holders: dict[str, set[str]] = {}
    for module in MODULES:
        name = module.__name__.rsplit(".", 1)[1]
        assert name.startswith(("checks_", "errors_")), name
        if name.startswith("checks_"):
            assert {namespace(key) for key in module.MESSAGES} == {name.removeprefix("checks_")}, name
        for key in module.MESSAGES:
            holders.setdefault(namespace(key), set()).add(name)
    assert {space: names for space, names in holders.items() if len(names) > 1} == {}
    assert sum(len(module.MESSAGES) for module in MODULES) == len(CATALOG)


def test_a_key_names_the_module_that_says_it() -> None:
    """`diagnose.pg_unreachable` is said in course_lib/diagnose.py, `scale_out.hint_modulo` in
    course_lib/checks/scale_out.py; `common.*`, what every check shares, in any checks module."""
    problems = []
    for key in CATALOG:
        homes = [PACKAGE / f"{namespace(key)}.py", PACKAGE / "checks" / f"{namespace(key)}.py"]
        if namespace(key) == "common":
            homes = CHECK_MODULES
        if not any(home.is_file() and key in _string_constants(home) for home in homes):
            problems.append(key)
    assert problems == []


def _source_files() -> list[Path]:
    """The course_lib modules that use the catalog: all but the catalog itself."""
    return [path for path in sorted(PACKAGE.rglob("*.py")) if CATALOG_DIR not in path.parents]


def _string_constants(path: Path) -> set[str]:
    """Every string literal of a module."""
    return {node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_every_entry_is_used_and_every_key_named_exists() -> None:
    """No dead entries: each key appears in course_lib outside the catalog; each key-like literal is in it."""
    found = set().union(*(_string_constants(path) for path in _source_files()))
    assert sorted(set(CATALOG) - found) == []
    namespaces = "|".join(sorted({namespace(key) for key in CATALOG}))
    looks_like_key = re.compile(rf"^({namespaces})\.[a-z0-9_]+$")
    file_names = {"materialize.lock", "ranker.joblib", "ranker.so"}  # files that happen to look like keys
    assert sorted(text for text in found - file_names if looks_like_key.match(text) and text not in CATALOG) == []


def _say_calls(tree: ast.AST) -> list[ast.Call]:
    """Every call of `say` (and of `render`, which takes the language after the key) in a module."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _name(node.func) in ("say", "render")]


def test_say_gets_exactly_the_placeholders_of_its_message() -> None:
    """A literal key gets its placeholders as keywords; a key chosen at run time (a hint picked from a list)
    has placeholders that some run-time call of its module supplies."""
    problems = []
    for path in _source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = _say_calls(tree)
        literal = {call.args[0].value for call in calls if call.args and isinstance(call.args[0], ast.Constant)}
        supplied = [{kw.arg for kw in call.keywords} for call in calls
                    if not (call.args and isinstance(call.args[0], ast.Constant))]
        for call in calls:
            if call.args and isinstance(call.args[0], ast.Constant) and call.args[0].value in CATALOG:
                want = {name for name, _, _ in placeholders(CATALOG[call.args[0].value].en)}
                if {kw.arg for kw in call.keywords} != want:
                    problems.append(f"{path.name}:{call.lineno} {call.args[0].value} needs {sorted(want)}")
            elif call.args and isinstance(call.args[0], ast.Constant):
                problems.append(f"{path.name}:{call.lineno} no message {call.args[0].value!r}")
        for key in (_string_constants(path) & CATALOG.keys()) - literal:
            want = {name for name, _, _ in placeholders(CATALOG[key].en)}
            if not any(want <= names for names in supplied):
                problems.append(f"{path.name}: no say(key, ...) call supplies {sorted(want)} for {key}")
    assert problems == []


# --- every check message goes through say ------------------------------------------------------------

def _name(func: ast.expr) -> str:
    """The called name: `f` of f(...) and of module.f(...)."""
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def raw_messages(source: str) -> list[int]:
    """Lines of CheckFailed(...) and passed(...) calls whose message is not a say(...) call."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _name(node.func) in MESSAGE_ARGUMENT:
            position = MESSAGE_ARGUMENT[_name(node.func)]
            argument = node.args[position] if len(node.args) > position else None
            if not (isinstance(argument, ast.Call) and _name(argument.func) == "say"):
                found.append(node.lineno)
    return found


@pytest.mark.parametrize("path", CHECK_MODULES, ids=lambda path: path.name)
def test_every_check_message_goes_through_say(path: Path) -> None:
    assert raw_messages(path.read_text(encoding="utf-8")) == [], f"{path.name}: use say(key, ...) at these lines"


@pytest.mark.parametrize("path", [path for path in CHECK_MODULES if path.stem not in ("__init__", "common")],
                         ids=lambda path: path.name)
def test_the_scan_sees_the_calls_it_judges(path: Path) -> None:
    """Every notebook's check module raises CheckFailed and reports success (else the scan passes vacuously)."""
    called = {_name(node.func) for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
              if isinstance(node, ast.Call)}
    assert set(MESSAGE_ARGUMENT) <= called


@pytest.mark.parametrize(("source", "raw"), [
    ('raise CheckFailed(say("common.not_done", name=name))', False),
    ('passed("f", say("realtime_features.genre_passed", count=3))', False),
    ('raise checks.CheckFailed(messages.say(key, got=got))', False),
    ('raise CheckFailed(f"your `{name}` returned {got}")', True),
    ('raise CheckFailed("you computed " + say("common.day", number=1))', True),
    ('raise CheckFailed(problem) from failure', True),
    ('raise CheckFailed()', True),
    ('passed("f", f"{len(cases)} cases")', True),
    ('passed("f", detail)', True),
], ids=["say", "passed with say", "qualified", "f-string", "concatenation", "variable", "no message",
        "passed f-string", "passed variable"])
def test_the_scan_tells_raw_messages_from_catalog_ones(source: str, raw: bool) -> None:
    assert bool(raw_messages(source)) is raw


def test_the_scan_fails_on_a_check_module_with_a_raw_message(tmp_path: Path) -> None:
    """A real check module with one message turned back into an f-string is caught at that line."""
    original = (PACKAGE / "checks" / "realtime_features.py").read_text(encoding="utf-8")
    call = 'CheckFailed(say("realtime_features.not_a_tuple", got=got))'
    assert original.count(call) == 1
    modified = tmp_path / "realtime_features.py"
    modified.write_text(original.replace(call, 'CheckFailed(f"merge_watch_times returned {got!r}")'),
                        encoding="utf-8")
    line = next(i for i, text in enumerate(original.splitlines(), 1) if call in text)
    assert raw_messages(original) == [] and raw_messages(modified.read_text(encoding="utf-8")) == [line]


# --- the language -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "en"),
    ({"COURSE_LANG": "ko"}, "ko"),
    ({"COURSE_LANG": "en"}, "en"),
    ({"COURSE_LANG": "fr"}, "en"),
    ({"JPY_SESSION_NAME": KOREAN_NOTEBOOK}, "ko"),
    ({"JPY_SESSION_NAME": "exercises_ko/03_realtime_serving.ipynb"}, "ko"),
    ({"JPY_SESSION_NAME": r"C:\Users\learner\feast-course\exercises_ko\01_feast_setup.ipynb"}, "ko"),
    ({"JPY_SESSION_NAME": "notebooks/03_realtime_serving.ipynb"}, "en"),
    ({"JPY_SESSION_NAME": "exercises/03_realtime_serving.ipynb"}, "en"),
    ({"JPY_SESSION_NAME": "old_notebooks_ko/03_realtime_serving.ipynb"}, "en"),
    ({"JPY_SESSION_NAME": "notebooks_ko.ipynb"}, "en"),
    ({"JPY_SESSION_NAME": ""}, "en"),
    ({"COURSE_LANG": "en", "JPY_SESSION_NAME": KOREAN_NOTEBOOK}, "en"),
    ({"COURSE_LANG": "ko", "JPY_SESSION_NAME": "notebooks/03_realtime_serving.ipynb"}, "ko"),
    ({"COURSE_LANG": "", "JPY_SESSION_NAME": KOREAN_NOTEBOOK}, "ko"),
], ids=["nothing set", "COURSE_LANG=ko", "COURSE_LANG=en", "another language", "Korean notebook",
        "Korean learner copy", "Korean learner copy on Windows", "English notebook", "English learner copy",
        "a folder that only ends in _ko", "a file, not a folder", "empty session", "COURSE_LANG=en wins",
        "COURSE_LANG=ko wins", "COURSE_LANG empty counts as unset"])
def test_the_language_follows_course_lang_then_the_notebook(environ: dict[str, str], expected: str) -> None:
    assert messages.language(environ) == expected


@pytest.fixture
def korean(monkeypatch: pytest.MonkeyPatch) -> None:
    """COURSE_LANG=ko for one test."""
    monkeypatch.setenv("COURSE_LANG", "ko")


def test_say_reads_the_environment_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COURSE_LANG", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert messages.say("common.days", number="7") == "7 days"
    monkeypatch.setenv("JPY_SESSION_NAME", KOREAN_NOTEBOOK)
    assert messages.say("common.days", number="7") == "7일"
    monkeypatch.setenv("COURSE_LANG", "en")
    assert checks.common.show(timedelta(days=7)) == "7 days"


# --- checks run in Korean ------------------------------------------------------------------------------

def _failure(check, *args) -> str:
    """The message of the CheckFailed a check raises."""
    with pytest.raises(checks.CheckFailed) as failure:
        check(*args)
    return str(failure.value)


def _stub(*args):
    raise NotImplementedError("Exercise 3.2: write your solution here")


def _modulo_forgotten(key: bytes) -> int:
    """key_slot without the modulo: CRC16/XMODEM of the whole key."""
    return binascii.crc_hqx(key, 0)


@pytest.mark.usefixtures("korean")
def test_a_stub_fails_in_korean() -> None:
    message = _failure(checks.ndcg_at_k, _stub)
    assert has_hangul(message) and "`ndcg_at_k`" in message and "`# YOUR CODE HERE`" in message
    assert "is not written yet" not in message and "Replace the" not in message


@pytest.mark.usefixtures("korean")
def test_a_wrong_answer_fails_in_korean_with_a_korean_hint() -> None:
    message = _failure(checks.key_slot, _modulo_forgotten, "course")
    hint = messages.say("scale_out.hint_modulo")
    assert has_hangul(message) and message.endswith(hint) and has_hangul(hint)
    assert "Redis Cluster puts it in slot" not in message and "take the CRC modulo" not in message


def test_the_same_failure_in_english_has_no_korean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_LANG", "en")
    message = _failure(checks.key_slot, _modulo_forgotten, "course")
    assert not has_hangul(message) and "take the CRC modulo 16384: slots run from 0 to 16383" in message


def test_a_korean_notebook_fails_in_korean_without_course_lang(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COURSE_LANG", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", KOREAN_NOTEBOOK)
    assert has_hangul(_failure(checks.ndcg_at_k, _stub))


@pytest.mark.usefixtures("korean")
def test_success_and_the_learner_copy_verdict_in_korean(capsys: pytest.CaptureFixture[str]) -> None:
    checks.ndcg_at_k(lambda relevance, scores, k: float(ndcg_score([relevance], [scores], k=k)))
    out = capsys.readouterr().out
    assert out.startswith("✓ ndcg_at_k: ") and has_hangul(out)
    with checks.keep_going("3.2"):
        checks.ndcg_at_k(_stub)
    err = capsys.readouterr().err
    assert err.startswith("✗ 연습 문제 3.2") and "is not solved yet" not in err


def test_the_capacity_figures_message_says_what_their_source_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """The masters check shows a case's figures through the catalog; in English they read as the data's `source`."""
    monkeypatch.setenv("COURSE_LANG", "en")
    assert [checks.scale_out.figures(inputs) for inputs in checks.scale_out.CAPACITY_FIGURES] == \
        [inputs.source for inputs in checks.scale_out.CAPACITY_FIGURES]
