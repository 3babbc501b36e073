"""Every `course` verb fails cleanly: one line naming the problem and its fix, a non-zero exit, no traceback.

Each case runs the real command line against a real misconfiguration: a port nothing listens on,
database names that do not exist, a project never applied, a model never trained. `--debug` and
COURSE_DEBUG=1 bring the traceback back.

Each kind of outcome is shown by a real `python -m course_lib` process (its exit status and whole stderr):
exit 1 with one line (a verb before its prerequisite), exit 2 (a bad profile, argparse's usage error), the
traceback of `--debug` and COURSE_DEBUG=1, and a `serve` that gives up on PostgreSQL and exits. The other
cases run the same `cli.main` in the test's process (support.course_in_process, output read at the file
descriptors): a process each cost 5-10 s of interpreter start and Feast imports and showed nothing more.
"""
from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import course_in_process, isolated_env

from course_lib import cli, materialize
from course_lib.background import free_port

TINY = ["--users", "60", "--movies", "30", "--events", "1500", "--days", "20"]


def course(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `course ARGS` in a subprocess with `env`."""
    return subprocess.run([sys.executable, "-m", "course_lib", *args], env=env, capture_output=True, text=True,
                          timeout=300)


Course = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(capfd: pytest.CaptureFixture[str]) -> Course:
    """`run(env, *args)`: `course ARGS` in this process (support.course_in_process)."""
    return functools.partial(course_in_process, capfd)


def one_line(result: subprocess.CompletedProcess[str], verb: str, code: int = 1) -> str:
    """The single `course VERB:` line (`course:` when verb is empty) of a failed run (progress bars aside),
    checked for no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in re.split(r"[\r\n]", result.stderr) if line.startswith("course")]
    assert len(lines) == 1 and lines[0].startswith(f"course{' ' if verb else ''}{verb}:"), result.stderr
    return lines[0]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An isolated environment with no COURSE_DEBUG."""
    out = isolated_env(tmp_path, FEAST_PROJECT="course_test_cli", FEAST_OFFLINE_SCHEMA="course_test_cli")
    out.pop("COURSE_DEBUG", None)
    return out


def test_local_verbs_before_their_prerequisites(env: dict[str, str], run: Course) -> None:
    line = one_line(course(env, "materialize", "--profile", "local"), "materialize")  # a real process: exit 1
    assert "no offline data" in line and "`course data --profile local`" in line
    assert "`course data`" in one_line(run(env, "train", "--profile", "local"), "train")
    assert run(env, "data", "--profile", "local", *TINY).returncode == 0
    assert run(env, "apply", "--profile", "local").returncode == 0
    assert run(env, "materialize", "--profile", "local").returncode == 0
    line = one_line(run(env, "serve", "--profile", "local", "--port", str(free_port())), "serve")
    assert "no trained ranker" in line and "`course train --profile local`" in line


def test_bad_options_and_profiles_exit_2(env: dict[str, str], run: Course) -> None:
    for result in (run({**env, "COURSE_PROFILE": "bogus"}, "train"),
                   course({**env, "COURSE_PROFILE": "bogus"}, "doctor")):  # a real process (doctor starts fast): exit 2
        line = one_line(result, "", code=2)
        assert line.startswith("course: configuration error: unknown profile 'bogus'") and "COURSE_PROFILE" in line
    wrong = course(env, "train", "--profile", "bogus")  # argparse: its usage line, then the error
    assert wrong.returncode == 2 and "invalid choice: 'bogus'" in wrong.stderr and "Traceback" not in wrong.stderr
    line = one_line(run(env, "materialize", "--profile", "local", "--end", "yesterday"), "", code=2)
    assert "--end 'yesterday' is not a time" in line
    line = one_line(run(env, "materialize", "--profile", "local", "--attempts", "0"), "", code=2)
    assert "--attempts must be at least 1, got 0" in line


def test_debug_shows_the_traceback(env: dict[str, str], run: Course) -> None:
    """`--debug` and COURSE_DEBUG=1 let the error out of main; a real process then prints its traceback, exit 1."""
    for environ, debug in ((env, ["--debug"]), ({**env, "COURSE_DEBUG": "1"}, [])):
        with pytest.raises(Exception, match="no saved dataset") as raised:
            run(environ, "train", "--profile", "local", *debug)
        assert type(raised.value).__name__ == "DatasetError"
    for environ, debug in (({**env, "COURSE_PROFILE": "bogus"}, ["--debug"]),
                           ({**env, "COURSE_PROFILE": "bogus", "COURSE_DEBUG": "1"}, [])):
        result = course(environ, "doctor", *debug)
        assert result.returncode == 1 and "Traceback" in result.stderr and "ConfigError" in result.stderr


def test_an_unexpected_error_is_one_line_that_points_at_debug(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A bug (a KeyError inside a verb) prints one line saying how to see its traceback; --debug raises it."""
    def broken(args: object) -> int:
        raise KeyError("an internal bug")

    monkeypatch.delenv("COURSE_DEBUG", raising=False)
    monkeypatch.setattr(cli, "cmd_train", broken)
    assert cli.main(["train", "--profile", "local"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("course train: unexpected error: KeyError: 'an internal bug'") and "--debug" in err
    assert "\n" not in err
    with pytest.raises(KeyError, match="an internal bug"):
        cli.main(["train", "--profile", "local", "--debug"])


# --- the enterprise profile: services down, databases missing, registry never applied ----------------

@pytest.mark.enterprise
def test_missing_databases_name_the_database_and_make_services(env: dict[str, str], run: Course) -> None:
    missing = {**env, "FEAST_REGISTRY_DB": "course_test_no_registry", "FEAST_OFFLINE_DB": "course_test_no_offline"}
    # `course data` first takes the project's write lock in the registry database, then writes the offline one:
    # the first missing database it meets is named.
    line = one_line(run(missing, "data", "--profile", "enterprise", *TINY), "data")
    assert "database course_test_no_registry does not exist" in line and "`make services`" in line
    only_offline = {**env, "FEAST_OFFLINE_DB": "course_test_no_offline"}
    line = one_line(run(only_offline, "data", "--profile", "enterprise", *TINY), "data")
    assert "database course_test_no_offline does not exist" in line and "`make services`" in line
    line = one_line(run(missing, "apply", "--profile", "enterprise"), "apply")
    assert "database course_test_no_registry does not exist" in line and "createdb" in line


@pytest.mark.enterprise
@pytest.mark.parametrize("verb", ["apply", "materialize", "reset", "serve"])
def test_postgres_unreachable(env: dict[str, str], verb: str, run: Course) -> None:
    """`serve` runs as a real process: it must exit, no server or background thread left holding it open."""
    port = free_port()
    line = one_line((course if verb == "serve" else run)({**env, "FEAST_PG_PORT": str(port)}, verb,
                                                         "--profile", "enterprise"), verb)
    assert f"PostgreSQL at 127.0.0.1:{port} is unreachable" in line and "`make services`" in line


@pytest.mark.enterprise
def test_unapplied_registry_and_redis_down(env: dict[str, str], run: Course, monkeypatch: pytest.MonkeyPatch) -> None:
    # The SQL registry outlives the run: start from a project with nothing registered (an earlier run applied it).
    assert run(env, "reset", "--profile", "enterprise").returncode == 0
    assert run(env, "data", "--profile", "enterprise", *TINY).returncode == 0
    line = one_line(run(env, "materialize", "--profile", "enterprise"), "materialize")
    assert "not registered in project course_test_cli" in line and "`course apply --profile enterprise`" in line
    assert run(env, "apply", "--profile", "enterprise").returncode == 0
    # The retry waits a tenth of a second instead of the 5 s the command line's policy starts with.
    monkeypatch.setattr(materialize, "RetryPolicy", functools.partial(materialize.RetryPolicy, first_delay_s=0.1))
    port = free_port()
    for verb, *options in (("reset",), ("materialize", "--attempts", "2")):  # materialize retries, then gives up
        line = one_line(run({**env, "FEAST_REDIS_PORT": str(port)}, verb, "--profile", "enterprise", *options),
                        verb)
        assert f"Redis at 127.0.0.1:{port} is unreachable" in line and "FEAST_REDIS_PORT" in line


def test_the_library_errors_are_recognised_through_their_chain() -> None:
    """A psycopg error wrapped by SQLAlchemy, wrapped again by a course error, still names the database."""
    import psycopg
    import sqlalchemy.exc

    from course_lib.config import resolve_profile
    from course_lib.diagnose import diagnose

    profile = resolve_profile("enterprise", {**os.environ, "FEAST_PG_PORT": "5999"})
    inner = psycopg.OperationalError('connection failed: FATAL:  database "nope" does not exist')
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, inner)
    try:
        try:
            raise wrapped
        except sqlalchemy.exc.OperationalError as exc:
            raise RuntimeError("while opening the registry") from exc
    except RuntimeError as outer:
        found = diagnose(outer, profile)
    assert found is not None and found.problem == "PostgreSQL database nope does not exist on 127.0.0.1:5999"
    assert diagnose(RuntimeError("something else"), profile) is None
