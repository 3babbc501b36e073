"""A class without internet: `make wheelhouse` collects every locked package (and the build backend of the
course's own editable install) as wheels, and `make venv WHEELHOUSE=...` installs from that folder only
(docs/instructor_guide.md, *Before a class without internet*). Checked on the commands make would run."""
from __future__ import annotations

import shlex
import subprocess

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli is in the dev extra there
    import tomli as tomllib

from course_lib.config import REPO_ROOT

GUIDE = (REPO_ROOT / "docs" / "instructor_guide.md").read_text(encoding="utf-8")


def planned(*args: str) -> list[list[str]]:
    """The commands `make -n -B ARGS` would run, each split into words."""
    run = subprocess.run(["make", "-n", "-B", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                         check=True)
    return [shlex.split(line) for line in run.stdout.splitlines() if line.strip() and not line.startswith("make")]


def pip_commands(*args: str) -> list[list[str]]:
    """The pip commands among them."""
    return [words for words in planned(*args) if words[0].endswith("/pip")]


def test_wheelhouse_builds_wheels_of_the_lock_and_the_build_backend() -> None:
    """One `pip wheel` of requirements.lock into wheelhouse/, plus every [build-system] requirement."""
    [command] = pip_commands("wheelhouse")
    assert command[1] == "wheel"
    assert command[command.index("--wheel-dir") + 1] == "wheelhouse"
    assert command[command.index("-r") + 1] == "requirements.lock"
    build = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert set(build) <= set(command), f"the editable install offline needs {build} in the wheelhouse"


def test_the_dev_lock_and_another_folder_can_be_chosen() -> None:
    [command] = pip_commands("wheelhouse", "WHEELHOUSE_LOCK=requirements-dev.lock", "WHEELHOUSE=/media/usb/wheels")
    assert command[command.index("-r") + 1] == "requirements-dev.lock"
    assert command[command.index("--wheel-dir") + 1] == "/media/usb/wheels"


def test_an_offline_install_reads_only_the_wheelhouse() -> None:
    """With WHEELHOUSE set, every pip install of `make dev` (venv included) uses that folder and no index."""
    installs = [c for c in pip_commands("dev", "WHEELHOUSE=wheelhouse") if c[1] == "install"]
    assert len(installs) == 3  # the runtime lock, the course itself, the dev lock
    for command in installs:
        assert "--no-index" in command and command[command.index("--find-links") + 1] == "wheelhouse", command


def test_an_online_install_is_unchanged() -> None:
    installs = [c for c in pip_commands("dev") if c[1] == "install"]
    assert len(installs) == 3 and not any("--no-index" in c or "--find-links" in c for c in installs)


def test_the_instructor_guide_gives_both_commands() -> None:
    assert "make wheelhouse" in GUIDE and "make venv WHEELHOUSE=wheelhouse" in GUIDE
