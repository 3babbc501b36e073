"""The command line's one-line errors speak the learner's language (course_lib.messages, course_lib.catalog).

Every expected failure the course raises (a `CourseError` subclass anywhere in course_lib), every diagnosis
of a library's failure (course_lib.diagnose) and every option check of the command line gets its message
from the catalog through `say`: an ast scan holds each constructor call to that, and is shown to catch a raw
f-string in a real module. A `course` run with COURSE_LANG=ko fails in one Korean line with the exit
code of the English run (each case in the test's process, one also as a real `python -m course_lib`
process). The hints the API's bodies share with the command line stay English there.
(tests/test_messages.py checks every catalog entry: both languages, the same placeholders, each one used.)
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import course_in_process, isolated_env

from course_lib import catalog, health
from course_lib.catalog import CATALOG
from course_lib.config import REPO_ROOT, resolve_profile
from course_lib.messages import render
from course_lib.translation_store import has_hangul

PACKAGE = REPO_ROOT / "course_lib"
SOURCES = [path for path in sorted(PACKAGE.rglob("*.py")) if PACKAGE / "catalog" not in path.parents]
# Constructor calls that keep a raw message, each for a reason; the test below fails when one is no longer needed.
ENGLISH_ONLY = {
    ("events.py", "EventError"): "its message is the 422 body of POST /events (api_errors.invalid_event), "
                                 "an API contract like the other bodies",
    ("health.py", "ComponentError"): "shown only in GET /health's JSON body (an API contract) and in "
                                     "`course doctor`'s report, which is English throughout",
    ("soak.py", "SoakError"): "joins the drills' failures, each rendered by say (soak.drill_failed)",
}


def _name(func: ast.expr) -> str:
    """The called name: `f` of f(...) and of module.f(...)."""
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def course_errors() -> set[str]:
    """The names of CourseError and of every class deriving from it, directly or not, in course_lib."""
    bases: dict[str, set[str]] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = {_name(base) for base in node.bases}
    found = {"CourseError"}
    while grown := {name for name, parents in bases.items() if parents & found} - found:
        found |= grown
    return found


def _is_say(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Call) and _name(node.func) == "say"


def raw_messages(source: str, errors: set[str]) -> list[tuple[int, str]]:
    """(line, class) of each constructor call of a course error whose message is not a say(...) call."""
    return sorted((node.lineno, _name(node.func)) for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Call) and _name(node.func) in errors
                  and not _is_say(node.args[0] if node.args else None))


ERRORS = course_errors()


def _raw_sites() -> dict[tuple[str, str], list[int]]:
    """Every raw message in course_lib, by (file, class)."""
    found: dict[tuple[str, str], list[int]] = {}
    for path in SOURCES:
        for line, error in raw_messages(path.read_text(encoding="utf-8"), ERRORS):
            found.setdefault((path.name, error), []).append(line)
    return found


# --- the scan -------------------------------------------------------------------------------------------

def test_the_scan_finds_every_course_error_and_its_constructor_calls() -> None:
    """The scan sees all of them (else it would pass vacuously): the classes, and the calls it judges."""
    assert {"ConfigError", "DatasetError", "RankerError", "ClusterError", "StoreBusyError", "MissingOfflineData",
            "ApiStartupError", "TranslationFormatError", "ExerciseError", "ComponentError"} <= ERRORS
    calls = sum(1 for path in SOURCES for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.Call) and _name(node.func) in ERRORS)
    assert calls >= 90


def test_every_course_error_message_goes_through_say() -> None:
    raw = {site: lines for site, lines in _raw_sites().items() if site not in ENGLISH_ONLY}
    assert raw == {}, "use say(key, ...) at these lines, or add the call to ENGLISH_ONLY with its reason"


def test_every_english_only_exception_is_still_needed() -> None:
    assert sorted(set(ENGLISH_ONLY) - set(_raw_sites())) == []


@pytest.mark.parametrize(("source", "raw"), [
    ('raise ConfigError(say("cli.attempts", attempts=n))', False),
    ('raise config.ConfigError(messages.say("cli.end_with_every")) from None', False),
    ('error = RankerError(say("ranker.not_trained", path=p, retrain=r))', False),
    ('raise ConfigError(f"--attempts must be at least 1, got {n}")', True),
    ('raise DatasetError("no saved dataset")', True),
    ('raise AdapterError("refusing to write:\\n- " + say("adapter.missing_table", view=v))', True),
    ('raise SoakError("; ".join(errors))', True),
    ('raise RankerError(message)', True),
    ('raise ClusterError()', True),
    ('raise ValueError(f"chunk_rows must be >= 1, got {n}")', False),
], ids=["say", "qualified", "not raised", "f-string", "literal", "concatenation", "join", "variable", "no message",
        "not a course error"])
def test_the_scan_tells_raw_messages_from_catalog_ones(source: str, raw: bool) -> None:
    assert bool(raw_messages(source, ERRORS)) is raw


def test_the_scan_fails_on_a_module_with_a_raw_message(tmp_path: Path) -> None:
    """course_lib/config.py with its unknown-profile message turned back into an f-string is caught at that line."""
    original = (PACKAGE / "config.py").read_text(encoding="utf-8")
    call = 'ConfigError(say("config.unknown_profile", name=name, profiles=", ".join(ALL_PROFILES)))'
    assert original.count(call) == 1
    modified = tmp_path / "config.py"
    modified.write_text(original.replace(call, 'ConfigError(f"unknown profile {name!r}")'), encoding="utf-8")
    line = next(i for i, text in enumerate(original.splitlines(), 1) if call in text)
    assert raw_messages(original, ERRORS) == []
    assert raw_messages(modified.read_text(encoding="utf-8"), ERRORS) == [(line, "ConfigError")]


def test_every_diagnosis_and_option_check_has_no_literal_message() -> None:
    """course_lib.diagnose builds its problems and fixes with say (a CourseError's own message passes as is)."""
    tree = ast.parse((PACKAGE / "diagnose.py").read_text(encoding="utf-8"))
    literal = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call) and _name(node.func) == "Diagnosis"
               for argument in [*node.args[:2], *(kw.value for kw in node.keywords if kw.arg in ("problem", "fix"))]
               if isinstance(argument, (ast.JoinedStr, ast.Constant, ast.BinOp))]
    assert literal == []


def test_the_error_entries_are_in_the_catalog() -> None:
    """The `errors_*` modules are merged into CATALOG, so tests/test_messages.py checks each of their entries."""
    errors = [module for module in catalog.MODULES if module.__name__.rsplit(".", 1)[1].startswith("errors_")]
    assert len(errors) == 5 and sum(len(module.MESSAGES) for module in errors) > 140
    assert all(key in CATALOG for module in errors for key in module.MESSAGES)


# --- messages in Korean ----------------------------------------------------------------------------------

@pytest.fixture
def korean(monkeypatch: pytest.MonkeyPatch) -> None:
    """COURSE_LANG=ko for one test."""
    monkeypatch.setenv("COURSE_LANG", "ko")


@pytest.mark.usefixtures("korean")
def test_a_library_failure_is_diagnosed_in_korean() -> None:
    import psycopg

    from course_lib.diagnose import diagnose

    profile = resolve_profile("enterprise", {"FEAST_PG_PORT": "5999"})
    found = diagnose(psycopg.OperationalError('FATAL:  database "nope" does not exist'), profile)
    assert found is not None
    line = found.line("apply")
    assert line.startswith("course apply: ") and has_hangul(line) and "해결 방법: `make services`" in line
    assert "nope" in line and "127.0.0.1:5999" in line and "createdb" in line and "Fix:" not in line


@pytest.mark.usefixtures("korean")
def test_a_bad_setting_is_reported_in_korean_down_to_the_rule() -> None:
    """The validator's own rule (a ValueError inside pydantic) is Korean too, inside the ConfigError."""
    from course_lib.settings import ConfigError, Settings

    with pytest.raises(ConfigError) as failure:
        Settings.from_env({"FEAST_PROJECT": "Movie-Recs"})
    message = str(failure.value)
    assert message.startswith("FEAST_PROJECT='Movie-Recs' 값이 잘못되었습니다: 소문자로 시작하고")
    assert "(기본값: 'movie_recommendation')" in message


@pytest.mark.usefixtures("korean")
def test_the_api_bodies_hints_stay_english(tmp_path: Path) -> None:
    """The registry hint is English for the API's bodies and /health whatever COURSE_LANG says; `course serve`
    asks for the learner's language."""
    for name in ("local", "enterprise"):
        profile = resolve_profile(name, isolated_env(tmp_path))
        assert not has_hangul(health.registry_hint(profile)) and has_hangul(health.registry_hint(profile, "ko"))
    assert not has_hangul(health.REDIS_FIX + health.SERVICES_FIX)
    assert health.REDIS_FIX == render("health.redis_fix", "en") == CATALOG["health.redis_fix"].en


# --- a `course` run ---------------------------------------------------------------------------------------

def course(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `course ARGS` in a subprocess with `env`."""
    return subprocess.run([sys.executable, "-m", "course_lib", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def cli_env(tmp_path: Path, setting: dict[str, str]) -> dict[str, str]:
    """An isolated environment with `setting` and no COURSE_DEBUG."""
    env = {**isolated_env(tmp_path, FEAST_PROJECT="course_test_cli_ko", FEAST_OFFLINE_SCHEMA="course_test_cli_ko"),
           **setting}
    env.pop("COURSE_DEBUG", None)
    return env


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `course...` line of a failed run, checked for no traceback."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in re.split(r"[\r\n]", result.stderr) if line.startswith("course")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(("setting", "args", "prefix", "code", "kept"), [
    ({"COURSE_PROFILE": "bogus"}, ("train",), "course: 설정 오류: 알 수 없는 프로필 'bogus'", 2, "COURSE_PROFILE"),
    ({}, ("materialize", "--profile", "local", "--attempts", "0"), "course: 설정 오류: --attempts는", 2, "0"),
    ({}, ("materialize", "--profile", "local"), "course materialize: ", 1, "`course data --profile local`"),
], ids=["unknown profile", "bad option", "materialize before data"])
def test_a_failed_run_prints_one_korean_line_with_the_english_exit_code(
        tmp_path: Path, capfd: pytest.CaptureFixture[str], setting: dict[str, str], args: tuple[str, ...],
        prefix: str, code: int, kept: str) -> None:
    """`cli.main` in this process (support.course_in_process); the test below runs one case as a real process."""
    env = cli_env(tmp_path, setting)
    english = course_in_process(capfd, {**env, "COURSE_LANG": "en"}, *args)
    korean = course_in_process(capfd, {**env, "COURSE_LANG": "ko"}, *args)
    assert korean.returncode == english.returncode == code, (korean.stderr, english.stderr)
    line, english_line = one_line(korean), one_line(english)
    assert line.startswith(prefix) and has_hangul(line) and kept in line, line
    assert not has_hangul(english_line) and kept in english_line


def test_a_real_course_process_fails_in_one_korean_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """`python -m course_lib` with COURSE_LANG=ko: the process's exit status is the English run's, its stderr one
    Korean line (nothing printed at start-up or exit besides it)."""
    env = cli_env(tmp_path, {})
    args = ("materialize", "--profile", "local")
    korean = course({**env, "COURSE_LANG": "ko"}, *args)
    english = course_in_process(capfd, {**env, "COURSE_LANG": "en"}, *args)
    assert korean.returncode == english.returncode == 1, (korean.stderr, english.stderr)
    line = one_line(korean)
    assert line.startswith("course materialize: ") and has_hangul(line), line
    assert "`course data --profile local`" in line and "`course data --profile local`" in one_line(english)
