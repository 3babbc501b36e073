"""The lock files, pyproject.toml and environment.yml agree, and this environment was installed from the lock."""
from __future__ import annotations

import re
import sys
from importlib import metadata

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli is in the dev extra there
    import tomli as tomllib

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from course_lib.config import REPO_ROOT

LOCK, DEV_LOCK = REPO_ROOT / "requirements.lock", REPO_ROOT / "requirements-dev.lock"


def pyproject() -> dict:
    """The `[project]` table of pyproject.toml."""
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def declared(extra: str | None = None) -> list[Requirement]:
    """pyproject's dependencies (`extra=None`) or one optional-dependency list, for this Python."""
    lines = pyproject()["dependencies"] if extra is None else pyproject()["optional-dependencies"][extra]
    reqs = [Requirement(line) for line in lines]
    return [req for req in reqs if req.marker is None or req.marker.evaluate()]


def pins(path) -> dict[str, str]:
    """name -> version of every line of a lock file that applies to this Python and platform."""
    out = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith((" ", "#", "-")):
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(default_environment()):
            (spec,) = req.specifier
            assert spec.operator == "==", f"{path.name}: {line!r} is not an exact pin"
            out[canonicalize_name(req.name)] = spec.version
    return out


@pytest.mark.parametrize(("lock", "extras"), [(LOCK, []), (DEV_LOCK, ["dev"])])
def test_the_lock_pins_every_declared_requirement_within_its_range(lock, extras: list[str]) -> None:
    pinned = pins(lock)
    for req in [*declared(), *(r for extra in extras for r in declared(extra))]:
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is declared in pyproject.toml but not in {lock.name}: run `make lock`"
        assert req.specifier.contains(pinned[name], prereleases=True), \
            f"{lock.name} pins {req.name}=={pinned[name]}, outside pyproject's {req.specifier}: run `make lock`"


def test_the_dev_lock_keeps_every_runtime_pin() -> None:
    runtime, dev = pins(LOCK), pins(DEV_LOCK)
    assert {name: dev.get(name) for name in runtime} == runtime


def test_the_locks_cover_every_python_the_course_supports() -> None:
    """One universal resolution: every marker-split package has a pin for 3.10, 3.11 and 3.12."""
    supported = pyproject()["requires-python"]
    assert supported == ">=3.10,<3.13"
    for lock in (LOCK, DEV_LOCK):
        for version in ("3.10", "3.11", "3.12"):
            env = {**default_environment(), "python_version": version, "python_full_version": f"{version}.0"}
            names = {canonicalize_name(Requirement(line).name) for line in lock.read_text().splitlines()
                     if line and not line.startswith((" ", "#", "-"))
                     and (Requirement(line).marker is None or Requirement(line).marker.evaluate(env))}
            assert {canonicalize_name(r.name) for r in declared()} <= names, (lock.name, version)


def test_environment_yml_installs_the_dev_lock() -> None:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_lists = [item["pip"] for item in env["dependencies"] if isinstance(item, dict)]
    assert pip_lists == [[f"-r {DEV_LOCK.name}"]]
    python = [item for item in env["dependencies"] if isinstance(item, str) and item.startswith("python=")]
    assert python and f"{sys.version_info.major}.{python[0].split('=')[1].split('.')[1]}" in ("3.10", "3.11", "3.12")


def test_this_environment_was_installed_from_the_lock() -> None:
    """`make venv` / `make dev` install the lock: every pinned package is installed at its pin."""
    wrong = {}
    for name, version in pins(DEV_LOCK).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from the dev lock (pinned, installed): {wrong}; run `make dev`"


def test_every_directly_imported_package_is_declared() -> None:
    """A package the course imports must not arrive only as some other package's dependency."""
    import ast

    distributions = metadata.packages_distributions()
    names = {canonicalize_name(r.name) for r in declared()}
    imported = set()
    for path in [*REPO_ROOT.joinpath("course_lib").rglob("*.py"), *REPO_ROOT.joinpath("feature_repo").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in ("course_lib", "feature_repo")}
    missing = {m: distributions.get(m) for m in third_party
               if not {canonicalize_name(d) for d in distributions.get(m, [])} & names}
    assert not missing, f"imported but not declared in pyproject.toml dependencies: {missing}"


def test_feast_is_pinned_to_0_67_with_the_course_extras() -> None:
    (feast,) = [req for req in declared() if req.name == "feast"]
    # grpcio: `feast ui` (notebook 01) imports grpc for its registry REST API.
    assert str(feast.specifier) == "==0.67.*" and feast.extras == {"redis", "postgres", "duckdb", "spark", "grpcio"}
    assert re.fullmatch(r"0\.67\.\d+", pins(LOCK)["feast"])
