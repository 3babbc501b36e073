"""`course doctor` against the real services: all OK when they run, clear FAILs when not."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from support import isolated_env

from course_lib.config import load_store, resolve_profile
from course_lib.doctor import check_kernel, check_package, check_postgres, check_redis, format_report, run_checks
from course_lib.serving import apply


def enterprise_checks(env: dict[str, str]) -> set[str]:
    """The names of the checks `course doctor --profile enterprise` runs in this environment."""
    databases = {f"database {db}" for db in resolve_profile("enterprise", env).pg_databases}
    return {"python", "package feast", "kernel", "redis", "postgres", "feast registry", *databases}


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run `course doctor --profile enterprise` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "course_lib", "doctor", "--profile", "enterprise", *args],
                          env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def enterprise_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An isolated enterprise environment whose registry holds the course definitions."""
    env = isolated_env(str(tmp_path_factory.mktemp("doctor")))
    profile = resolve_profile("enterprise", env)
    apply(load_store(profile), profile)
    return env


@pytest.mark.enterprise
def test_doctor_passes_against_the_running_services(enterprise_env: dict[str, str]) -> None:
    result = doctor(enterprise_env)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("OK   ") for line in lines), report
    assert enterprise_checks(enterprise_env) <= {line[5:].split("  ")[0].strip() for line in lines}, report


@pytest.mark.enterprise
def test_doctor_json_reports_an_unreachable_redis(enterprise_env: dict[str, str]) -> None:
    port = free_port()
    result = doctor({**enterprise_env, "FEAST_REDIS_PORT": str(port)}, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    checks = {check["name"]: check for check in json.loads(result.stdout)}
    assert enterprise_checks(enterprise_env) <= set(checks)
    assert not checks["redis"]["ok"] and f":{port} " in checks["redis"]["detail"]
    assert "FEAST_REDIS_PORT" in checks["redis"]["fix"]
    assert [name for name, check in checks.items() if not check["ok"]] == ["redis"]


@pytest.mark.enterprise
def test_report_line_for_a_failed_check_carries_the_fix(enterprise_env: dict[str, str]) -> None:
    check = check_redis(resolve_profile("enterprise", {**enterprise_env, "FEAST_REDIS_PORT": str(free_port())}))
    line = format_report([check])
    assert line.startswith("FAIL redis  ") and line.endswith(f" -> {check.fix}") and check.fix


@pytest.mark.enterprise
def test_missing_database_gets_a_createdb_hint(enterprise_env: dict[str, str]) -> None:
    profile = resolve_profile("enterprise", {**enterprise_env, "FEAST_OFFLINE_DB": "course_test_no_such_db"})
    checks = {check.name: check for check in check_postgres(profile)}
    assert checks["postgres"].ok and checks[f"database {profile.registry_database}"].ok
    missing = checks["database course_test_no_such_db"]
    assert not missing.ok and "createdb -h 127.0.0.1" in missing.fix and missing.fix.split("`")[1].endswith(
        " course_test_no_such_db")


def test_unapplied_local_repo_fails_with_the_apply_hint(tmp_path: Path) -> None:
    checks = run_checks(resolve_profile("local", isolated_env(str(tmp_path))))
    assert not {"redis", "postgres"} & {check.name for check in checks}
    registry = checks[-1]
    assert registry.name == "feast registry" and not registry.ok
    assert registry.fix == "`course apply --profile local`"


@pytest.mark.parametrize(("requirement", "problem"), [
    ("feast==0.1.*", "does not match ==0.1.*"),
    ("course-test-no-such-package>=1", "not installed"),
])
def test_package_check_fails_on_a_pin_that_is_not_met(requirement: str, problem: str) -> None:
    check = check_package(Requirement(requirement))
    assert not check.ok and problem in check.detail and check.fix == f"pip install '{requirement}'"


def test_kernel_from_another_environment_fails_with_the_install_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other)], check=True)
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(other / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (other)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))  # searched before this environment
    check = check_kernel()
    assert not check.ok and f"in {other}, not in {sys.prefix}" in check.detail
    assert check.fix.startswith(f"`{sys.executable} -m ipykernel install --sys-prefix`")
