"""*Run All* on the learner copies: with every exercise left unsolved, each notebook in exercises/
runs top to bottom, the way a learner's JupyterLab does it, and every check prints its failure
and hint instead of stopping the notebook (issue 15). The solution notebooks keep failing hard:
their checks are not wrapped (tests/test_exercises.py runs them against the stubs).

A learner copy differs from its solution notebook only in the exercise cells (stubs) and their
check cells (wrapped), and nbval runs every solution notebook. So Run All reaches the end of every
learner copy when (1) a stub cell only defines, so running it cannot raise, (2) nothing after the
check uses what the exercise defines, (3) each check turns the stub into `CheckFailed`
(tests/test_exercises.py) and (4) `keep_going` prints that and goes on. (1) and (2) are checked
here on every exercise, from the code; (3)+(4) in a real kernel on the first learner copies, after
`course data` and `course apply` as `make course` does. Running every copy took 7.5 minutes of the
CI's 30 (06's Spark, 07's soak) to re-prove what the rest of the suite covers."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from support import course_in_process

from course_lib import checks
from course_lib.config import REPO_ROOT
from course_lib.exercises import KEEP_GOING, Exercise, exercises, keep_going
from course_lib.notebooks import KERNEL_NAME, describe

SOLUTIONS = REPO_ROOT / "notebooks"
LEARNER = REPO_ROOT / "exercises"
PATHS = sorted(LEARNER.glob("*.ipynb"))[:3]  # 00-02: set-up and the first two sections, a minute together
EXERCISES = [exercise for path in sorted(SOLUTIONS.glob("*.ipynb")) for exercise in exercises(path)]
PROJECT = "course_test_learner"


def unsolved(exercise: Exercise) -> str:
    """What a learner copy's check prints for an exercise left as its stub."""
    return f"✗ Exercise {exercise.label} is not solved yet: `"


# --- the check cell of a learner copy, without a kernel -------------------------------------------

def test_keep_going_prints_a_failed_check_and_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    """A CheckFailed inside `checks.keep_going` is printed with its hint; the cell ends normally."""
    with checks.keep_going("9.1"):
        raise checks.CheckFailed("your `f` returned 3; expected 4 — did you include the last event?")
    err = capsys.readouterr().err
    assert err.startswith("✗ Exercise 9.1 is not solved yet: your `f` returned 3; expected 4")
    assert "did you include the last event?" in err


def test_keep_going_lets_other_errors_through() -> None:
    """Only a failed check is caught: a broken service or a bug in the check still stops the notebook."""
    with pytest.raises(ZeroDivisionError), checks.keep_going("9.1"):
        1 / 0  # noqa: B018 - the error is the point


def test_learner_check_cell_keeps_its_comments_and_wraps_the_rest() -> None:
    """`# NBVAL_CHECK_OUTPUT` stays first; the code moves, indented, under `with checks.keep_going(label):`."""
    cell = keep_going("# NBVAL_CHECK_OUTPUT\nchecks.thing(thing,\n             store)", "4.2")
    assert cell.split("\n") == ["# NBVAL_CHECK_OUTPUT", KEEP_GOING[0], 'with checks.keep_going("4.2"):',
                                "    checks.thing(thing,", "                 store)"]
    compile(cell, "check", "exec")


@pytest.mark.parametrize("path", sorted(SOLUTIONS.glob("*.ipynb")), ids=lambda path: path.name)
def test_only_learner_copies_keep_going(path: Path) -> None:
    """Every check cell is wrapped in the learner copy and in no solution notebook."""
    learner = nbformat.read(LEARNER / path.name, as_version=4).cells
    solution = nbformat.read(path, as_version=4).cells
    assert not any("keep_going" in cell.source for cell in solution if cell.cell_type == "code")
    for exercise in exercises(path):
        assert learner[exercise.check_cell].source == keep_going(exercise.check, exercise.label)


# --- every exercise, from its code --------------------------------------------------------------------

def names_bound(source: str) -> set[str]:
    """Names a cell binds at its top level (functions, classes, assignments, imports)."""
    bound: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        else:
            bound |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return bound


def python_line(line: str) -> str:
    """A notebook line as Python: shell lines and cell magics dropped, a line magic's code kept (`%time x = f()`)."""
    stripped = line.lstrip()
    if stripped.startswith(("!", "%%")):
        return ""
    if stripped.startswith("%"):
        return stripped.split(None, 1)[1] if " " in stripped else ""
    return line


def names_used(source: str) -> set[str]:
    """Every name a cell reads."""
    code = "\n".join(python_line(line) for line in source.splitlines())
    return {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.label)
def test_a_stub_cell_only_defines(exercise: Exercise) -> None:
    """Running the stub cannot raise: its top level imports and defines, and calls nothing it defines."""
    tree = ast.parse(exercise.stub)
    allowed = ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Expr
    assert all(isinstance(node, allowed) for node in tree.body), ast.dump(tree)[:300]
    docstrings = [node for node in tree.body if isinstance(node, ast.Expr)]
    assert all(isinstance(node.value, ast.Constant) for node in docstrings), "a top-level call in the stub cell"


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.label)
def test_nothing_after_the_check_uses_the_exercise(exercise: Exercise) -> None:
    """An unsolved exercise cannot break a later cell: no later code cell reads what the exercise defines."""
    cells = nbformat.read(SOLUTIONS / exercise.notebook, as_version=4).cells
    mine = names_bound(exercise.solution) - names_bound("\n".join(
        cell.source for cell in cells[:exercise.cell] if cell.cell_type == "code"))  # re-imports stay shared
    for index, cell in enumerate(cells[exercise.cell + 1:], exercise.cell + 1):
        if cell.cell_type == "code" and index != exercise.check_cell:
            assert not names_used(cell.source) & mine, f"{exercise.notebook} cell {index} uses {mine}"


def test_the_code_checks_catch_a_cell_that_uses_an_exercise() -> None:
    """The two checks above can fail: a top-level call, and a later read of the exercise's function."""
    assert names_bound("from a import b as c\nimport d.e\ndef f(): pass\nx, y = 1, 2") == {"c", "d", "f", "x", "y"}
    assert "f" in names_used("%time z = f(3)\nprint(z)\n!ls")
    assert not all(isinstance(node, ast.FunctionDef) for node in ast.parse("def f(): pass\nf()").body)


# --- Run All ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[nbformat.NotebookNode, str]]:
    """Every learner copy executed in course order, as Run All does: name -> (executed notebook, error)."""
    workdir = tmp_path_factory.mktemp("learner")
    env = {**os.environ, "COURSE_PROFILE": "local", "COURSE_WORKDIR": str(workdir), "FEAST_PROJECT": PROJECT,
           "FEAST_OFFLINE_SCHEMA": PROJECT, "FEAST_REDIS_DB": "15", "PYTHONWARNINGS": "ignore"}
    for command in ("data", "apply"):  # in this process: a `course` process each only adds Feast's imports
        assert course_in_process(None, env, command).returncode == 0, command
    executed, out = {}, workdir / "executed"
    out.mkdir()
    for path in PATHS:
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(notebook, timeout=900, kernel_name=KERNEL_NAME,
                                resources={"metadata": {"path": str(LEARNER)}})
        try:
            client.execute(env=env)
            error = ""
        except CellExecutionError as exc:
            error = f"{describe(exc)} (the executed copy: {out / path.name})"
        nbformat.write(notebook, out / path.name)
        executed[path.name] = (notebook, error)
    return executed


@pytest.mark.timeout(2400)  # the first one runs every notebook (the `runs` fixture)
@pytest.mark.parametrize("path", PATHS, ids=lambda path: path.name)
def test_run_all_reaches_the_last_cell(path: Path, runs: dict[str, tuple[nbformat.NotebookNode, str]]) -> None:
    """No cell raised, the last code cell ran, and each unsolved check printed why it failed."""
    notebook, error = runs[path.name]
    assert not error, f"exercises/{path.name}: Run All stopped: {error}"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code[-1].execution_count is not None, f"exercises/{path.name}: the last cell never ran"
    assert all(cell.execution_count is not None for cell in code)
    for exercise in exercises(SOLUTIONS / path.name):
        printed = "".join(out.get("text", "") for out in notebook.cells[exercise.check_cell].outputs)
        assert unsolved(exercise) in printed and "is not written yet" in printed, (
            f"exercise {exercise.label}'s check printed {printed!r}")
