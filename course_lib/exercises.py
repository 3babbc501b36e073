"""Learner notebooks from the solution notebooks (`make exercises`).

Solutions live in the course notebooks themselves, inside code cells, between a
`# BEGIN SOLUTION` line and an `# END SOLUTION` line. The learner copy replaces each such
block with a `# YOUR CODE HERE` stub that raises NotImplementedError (indented like the
block), wraps the check cell that follows it in `with checks.keep_going("<label>"):` (a failing
check then prints what is wrong and *Run All* goes on; the solution notebooks still stop), clears
every output, execution count and execution timestamp, and drops widget state. The output depends
only on the source cells, so it is byte-for-byte reproducible.

Usage: python -m course_lib.exercises [--out exercises] [NOTEBOOK_DIR]
"""
from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_lib.config import REPO_ROOT
from course_lib.errors import CourseError
from course_lib.messages import say

BEGIN, END, STUB = "# BEGIN SOLUTION", "# END SOLUTION", "# YOUR CODE HERE"
KEEP_GOING = ("# Learner copy: if the check fails, it prints what is wrong and Run All goes on.",
              'with checks.keep_going("{label}"):')
NOTEBOOK_METADATA = ("kernelspec", "language_info")  # everything else (widget state, ...) is dropped


class ExerciseError(CourseError):
    """A notebook's solution markers are malformed; the message names the notebook and cell."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: a code cell with solution blocks, its learner stub, and the check cell after it."""

    notebook: str
    label: str  # "<notebook number>.<n>", e.g. "2.1"
    cell: int  # index of the exercise cell
    solution: str
    stub: str
    check: str  # source of the next code cell, which calls course_lib.checks
    check_cell: int  # index of that cell (-1: none)


def notebook_number(path: Path) -> str:
    """The section number in a notebook's file name: `02_data_sources.ipynb` -> `2`."""
    match = re.match(r"(\d+)_", path.name)
    if not match:
        raise ExerciseError(say("exercises.unnumbered", notebook=path.name))
    return str(int(match.group(1)))


def stub_lines(indent: str, label: str) -> list[str]:
    """The learner's placeholder for one solution block."""
    return [f"{indent}{STUB}", f'{indent}raise NotImplementedError("Exercise {label}: write your solution here")']


def strip_solutions(source: str, label: str, where: str | None = None) -> str:
    """The cell source with every solution block replaced by a stub; `where` names the cell in errors."""
    where = where or say("exercises.a_cell")
    out: list[str] = []
    inside = False
    for line in source.split("\n"):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ExerciseError(say("exercises.nested_solution", where=where, begin=BEGIN))
            inside = True
            out += stub_lines(line[: len(line) - len(line.lstrip())], label)
        elif marker == END:
            if not inside:
                raise ExerciseError(say("exercises.end_without_begin", where=where, end=END, begin=BEGIN))
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ExerciseError(say("exercises.unclosed_solution", where=where, begin=BEGIN, end=END))
    return "\n".join(out)


def has_solution(cell: nbformat.NotebookNode) -> bool:
    """Whether a cell is a code cell holding a solution block."""
    return cell.cell_type == "code" and any(line.strip() == BEGIN for line in cell.source.split("\n"))


def exercises(path: Path) -> list[Exercise]:
    """The exercises of one notebook, in order, each with the check cell that follows it."""
    notebook = nbformat.read(path, as_version=4)
    number, found = notebook_number(path), list[Exercise]()
    for index, cell in enumerate(notebook.cells):
        if not has_solution(cell):
            continue
        label = f"{number}.{len(found) + 1}"
        later = [i for i in range(index + 1, len(notebook.cells)) if notebook.cells[i].cell_type == "code"]
        found.append(Exercise(notebook=path.name, label=label, cell=index, solution=cell.source,
                              stub=strip_solutions(cell.source, label,
                                                   say("exercises.cell_at", notebook=path.name, index=index)),
                              check=notebook.cells[later[0]].source if later else "",
                              check_cell=later[0] if later else -1))
    return found


def keep_going(check: str, label: str) -> str:
    """The learner's check cell: its leading comments, then its code inside `checks.keep_going`."""
    lines = check.split("\n")
    head = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), len(lines))
    body = textwrap.indent("\n".join(lines[head:]), "    ")
    return "\n".join([*lines[:head], KEEP_GOING[0], KEEP_GOING[1].format(label=label), body])


def learner_notebook(path: Path) -> nbformat.NotebookNode:
    """The learner version of a notebook: solutions stubbed, outputs and run metadata cleared."""
    notebook = nbformat.read(path, as_version=4)
    found = exercises(path)
    learner = {exercise.cell: exercise.stub for exercise in found}
    learner |= {e.check_cell: keep_going(e.check, e.label) for e in found if e.check_cell >= 0}
    for index, cell in enumerate(notebook.cells):
        if "id" not in cell:
            raise ExerciseError(say("exercises.cell_without_id", notebook=path.name, index=index))
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.source = learner.get(index, cell.source)
            cell.outputs, cell.execution_count = [], None
    notebook.metadata = {key: notebook.metadata[key] for key in NOTEBOOK_METADATA if key in notebook.metadata}
    return notebook


def render(path: Path) -> str:
    """The learner notebook's file content (nbformat's sorted-key JSON, one trailing newline)."""
    return nbformat.writes(learner_notebook(path)).rstrip("\n") + "\n"


def write_exercises(notebook_dir: Path, out_dir: Path) -> dict[str, int]:
    """Write the learner version of every notebook to `out_dir`, removing stale ones; name -> exercises."""
    sources = sorted(notebook_dir.glob("*.ipynb"))
    if not sources:
        raise ExerciseError(say("exercises.no_notebooks", folder=notebook_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in set(out_dir.glob("*.ipynb")) - {out_dir / path.name for path in sources}:
        stale.unlink()
    counts = {}
    for path in sources:
        target = out_dir / path.name
        text = render(path)
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        counts[path.name] = len(exercises(path))
    return counts


def main(argv: list[str] | None = None) -> int:
    """Generate the learner notebooks and print how many exercises each has."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.exercises", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="?", type=Path, default=REPO_ROOT / "notebooks",
                        help="folder of solution notebooks (default: notebooks/)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "exercises",
                        help="folder for the learner notebooks (default: exercises/)")
    args = parser.parse_args(argv)
    if args.out.resolve() == args.notebooks.resolve():
        parser.error("--out must differ from the notebook folder: the solutions would be overwritten")
    try:
        counts = write_exercises(args.notebooks, args.out)
    except ExerciseError as exc:
        print(f"exercises: {exc}", file=sys.stderr)
        return 1
    for name, count in counts.items():
        print(f"{args.out.name}/{name}: {count} exercise{'' if count == 1 else 's'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
