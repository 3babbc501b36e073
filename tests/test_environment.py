"""pyproject.toml and environment.yml pin the same packages."""
from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

from packaging.requirements import Requirement

from course_lib.config import REPO_ROOT
from course_lib.doctor import environment_requirements


def pyproject_requirements() -> list[Requirement]:
    """The `[project].dependencies` of pyproject.toml."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def test_pyproject_and_environment_yml_list_the_same_requirements() -> None:
    pyproject = {str(req) for req in pyproject_requirements()}
    conda = {str(req) for req in environment_requirements()}
    assert pyproject == conda, (f"only in pyproject.toml: {sorted(pyproject - conda)}; "
                                f"only in environment.yml: {sorted(conda - pyproject)}")


def test_feast_is_pinned_to_0_67_with_the_course_extras() -> None:
    for requirements in (pyproject_requirements(), environment_requirements()):
        (feast,) = [req for req in requirements if req.name == "feast"]
        assert str(feast.specifier) == "==0.67.*"
        assert feast.extras == {"redis", "postgres", "duckdb", "spark"}
