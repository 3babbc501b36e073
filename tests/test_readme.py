"""The README, the Makefile and the CI scripts agree with each other and with course_lib/settings.py."""
from __future__ import annotations

import re

from course_lib.config import ENV_DEFAULTS, REPO_ROOT
from course_lib.settings import described

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
EMPTY = "(empty)"  # how the README's variable table writes an empty default


def section(title: str) -> str:
    """The README text under a `## title` heading, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def documented() -> dict[str, tuple[str, str]]:
    """Variable -> (default, meaning) from the README's environment-variable table, `<repo>` expanded."""
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \| (.+?) \|$", section("Environment variables"), re.M)
    return {name: ("" if cell == EMPTY else cell.strip("`").replace("<repo>", str(REPO_ROOT)), meaning)
            for name, cell, meaning in rows}


def quick_start_commands() -> dict[str, str]:
    """Command -> its trailing comment, from the Quick start section's code blocks."""
    blocks = re.findall(r"^```\w*\n(.*?)^```", section("Quick start"), re.M | re.S)
    pairs = (line.partition("#") for block in blocks for line in block.splitlines() if line.strip())
    return {command.strip(): comment.strip() for command, _, comment in pairs}


def ci_make_commands() -> list[str]:
    """The `make TARGET` lines that .ci/run executes (not `make --version`)."""
    lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    return [line.strip() for line in lines if re.match(r"make [^-]", line.strip())]


def makefile_targets() -> set[str]:
    """Every explicit rule target in the Makefile (variable assignments excluded)."""
    rules = re.findall(r"^([\w.\- ]+):(?!=)", (REPO_ROOT / "Makefile").read_text(), re.M)
    return {target for rule in rules for target in rule.split()}


def test_readme_lists_every_setting_with_its_default_and_meaning() -> None:
    """The table is the `Settings` model: same variables, in order, defaults and descriptions."""
    table = documented()
    assert list(table) == list(ENV_DEFAULTS)
    assert {name: default for name, (default, _) in table.items()} == ENV_DEFAULTS
    assert {name: meaning for name, (_, meaning) in table.items()} == described()


def test_ci_runs_the_readme_quick_start_test_command() -> None:
    commands = quick_start_commands()
    test_commands = [command for command, comment in commands.items() if "test" in comment]
    assert len(test_commands) == 1, f"expected one Quick start command described as a test run: {commands}"
    assert ci_make_commands() == test_commands


def test_quick_start_is_make_course_and_make_test() -> None:
    assert list(quick_start_commands()) == ["make course", "make test"]


def test_every_make_target_in_the_readme_exists() -> None:
    mentioned = set(re.findall(r"(?:`|^)make ([\w.-]+)", README, re.M))
    assert mentioned, "the README mentions no make target"
    assert mentioned <= makefile_targets(), f"missing from the Makefile: {sorted(mentioned - makefile_targets())}"


def test_services_script_defaults_are_the_config_defaults() -> None:
    script = (REPO_ROOT / ".ci" / "services.sh").read_text()
    defaults = dict(re.findall(r"\$\{(\w+):-([^}]*)\}", script))
    assert defaults, "no ${VAR:-default} found in .ci/services.sh"
    assert {name: ENV_DEFAULTS.get(name) for name in defaults} == defaults
