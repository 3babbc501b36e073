"""Settings are typed and validated when a profile is resolved; secrets never print; the CLI prints
course errors as one line and lets anything else keep its traceback."""
from __future__ import annotations

from pathlib import Path

import pytest
from support import isolated_env

from course_lib import cli
from course_lib.config import ENV_DEFAULTS, resolve_profile
from course_lib.errors import CourseError
from course_lib.settings import ConfigError, Settings, described, variables


@pytest.mark.parametrize(("variable", "value", "why"), [
    ("FEAST_REDIS_PORT", "six", "valid integer"),
    ("FEAST_REDIS_PORT", "70000", "less than or equal to 65535"),
    ("FEAST_PG_PORT", "0", "greater than or equal to 1"),
    ("FEAST_REDIS_TIMEOUT_S", "-1", "greater than 0"),
    ("COURSE_PIPELINE_STALE_S", "an hour", "valid number"),
    ("FEAST_REGISTRY_CACHE_TTL", "1.5", "valid integer"),
    ("FEAST_PG_SSLMODE", "maybe", "'disable'"),
    ("FEAST_PROJECT", "my-project", "lower-case letter"),
    ("FEAST_OFFLINE_SCHEMA", "a;drop", "lower-case letter"),
    ("FEAST_SPARK_SHUFFLE_PARTITIONS", "0", "greater than or equal to 1"),
    ("FEAST_REDIS_CLUSTER_NODES", "127.0.0.1", "not host:port"),
])
def test_a_bad_setting_fails_when_the_profile_is_resolved(variable: str, value: str, why: str) -> None:
    with pytest.raises(ConfigError) as error:
        resolve_profile("local", {variable: value})
    message = str(error.value)
    assert message.startswith(f"{variable}={value!r} is invalid") and why in message, message
    assert f"(default: {ENV_DEFAULTS[variable]!r})" in message and "\n" not in message


def test_settings_are_typed() -> None:
    settings = resolve_profile("enterprise", {"FEAST_REDIS_PORT": "6390", "COURSE_PIPELINE_STALE_S": "90",
                                              "COURSE_WORKDIR": "/tmp/x"}).settings
    assert settings.redis_port == 6390 and settings.pipeline_stale_s == 90.0 and settings.workdir == Path("/tmp/x")
    with pytest.raises(Exception, match="frozen"):
        settings.redis_port = 1  # type: ignore[misc]


def test_passwords_are_secret_until_a_client_needs_them() -> None:
    profile = resolve_profile("enterprise", {"FEAST_PG_PASSWORD": "pg-s3cret", "FEAST_REDIS_PASSWORD": "r-s3cret"})
    assert "s3cret" not in repr(profile) and "s3cret" not in str(profile.settings)
    assert profile.redis_client_kwargs()["password"] == "r-s3cret" and "password=pg-s3cret" in profile.pg_conninfo()
    assert profile.env()["FEAST_PG_PASSWORD"] == "pg-s3cret"  # a child process gets the real value
    with pytest.raises(ConfigError) as error:
        resolve_profile("enterprise", {"FEAST_PG_PASSWORD": "pg-s3cret", "FEAST_PG_PORT": "x"})
    assert "s3cret" not in str(error.value)


def test_env_round_trips_every_setting(tmp_path: Path) -> None:
    profile = resolve_profile("enterprise", isolated_env(tmp_path, FEAST_REDIS_TIMEOUT_S="1.5"))
    assert resolve_profile("enterprise", profile.env()) == profile
    assert set(profile.env()) == set(ENV_DEFAULTS) and Settings.from_env({}).env() == variables()


def test_every_setting_is_documented() -> None:
    assert set(described()) == set(variables()) and all(described().values())


def test_every_course_error_is_a_course_error() -> None:
    from course_lib.adapter import AdapterError
    from course_lib.api_services import ApiStartupError
    from course_lib.background import ServerError
    from course_lib.cluster import ClusterError
    from course_lib.compat import IncompatibleVersion
    from course_lib.datasets import DatasetError
    from course_lib.exercises import ExerciseError
    from course_lib.health import ComponentError
    from course_lib.pit import RetrievalError
    from course_lib.ranker import RankerError

    for error in (AdapterError, ApiStartupError, ServerError, ClusterError, ConfigError, IncompatibleVersion,
                  DatasetError, ExerciseError, ComponentError, RetrievalError, RankerError):
        assert issubclass(error, CourseError) and not issubclass(error, ValueError), error


def test_the_cli_prints_a_course_error_as_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["data", "--profile", "local", "--source", "movielens", "--path", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("course data: MovieLens folder") and "\n" not in err
    assert cli.main(["materialize", "--profile", "local", "--every", "soon"]) == 2
    assert "invalid interval 'soon'" in capsys.readouterr().err
