"""Run the course notebooks headless and report each one's status and measured time (`make course`).

Usage: python -m course_lib.notebooks [--out build/executed] [--timeout S] [NOTEBOOK_OR_FOLDER ...]
Executed copies go to the output folder; the committed notebooks are never rewritten.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from tqdm import tqdm

from course_lib.config import REPO_ROOT

KERNEL_NAME = "python3"


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of executing one notebook."""

    name: str
    seconds: float
    error: str = ""

    @property
    def status(self) -> str:
        """`ok`, or `failed` when a cell raised or the kernel could not run."""
        return "failed" if self.error else "ok"


def notebooks_in(folder: Path) -> list[Path]:
    """The folder's notebooks in course order (sorted by file name)."""
    return sorted(folder.glob("*.ipynb"))


def describe(exc: Exception) -> str:
    """`ErrorName: message` for a failed run, on one line."""
    if isinstance(exc, CellExecutionError):
        name, message = exc.ename, exc.evalue
    else:
        name, message = type(exc).__name__, str(exc)
    return " ".join(f"{name}: {message}".split())


def run_one(path: Path, out_dir: Path, timeout: int) -> NotebookRun:
    """Execute one notebook with its folder as working directory and save the executed copy."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name=KERNEL_NAME,
                            resources={"metadata": {"path": str(path.parent)}})
    error = ""
    start = time.perf_counter()
    try:
        client.execute()
    except Exception as exc:  # noqa: BLE001 - any failure (cell error, timeout, dead kernel) is reported, not raised
        error = describe(exc)
    seconds = time.perf_counter() - start
    nbformat.write(notebook, out_dir / path.name)
    return NotebookRun(name=path.name, seconds=seconds, error=error)


def run_notebooks(paths: list[Path], out_dir: Path, timeout: int = 1200) -> list[NotebookRun]:
    """Execute every notebook in order, whatever fails, with a progress bar."""
    if any(path.parent.resolve() == out_dir.resolve() for path in paths):
        raise ValueError(f"--out {out_dir} is a notebook folder: executed copies would overwrite the sources")
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    with tqdm(paths, unit="notebook", file=sys.stderr) as bar:
        for path in bar:
            bar.set_postfix_str(path.name)
            runs.append(run_one(path, out_dir, timeout))
    return runs


def run_all(notebook_dir: Path, out_dir: Path, timeout: int = 1200) -> list[NotebookRun]:
    """Execute every notebook of `notebook_dir` in sorted order (per-cell `timeout` in seconds)."""
    return run_notebooks(notebooks_in(notebook_dir), out_dir, timeout)


def format_table(runs: list[NotebookRun]) -> str:
    """A plain-text table of notebook, status, seconds and error, with a totals line."""
    width = max([len("notebook"), *(len(run.name) for run in runs)])
    lines = [f"{'notebook':<{width}}  status  seconds  error"]
    lines += [f"{run.name:<{width}}  {run.status:<6}  {run.seconds:7.1f}  {run.error}".rstrip() for run in runs]
    failed = sum(1 for run in runs if run.error)
    total = sum(run.seconds for run in runs)
    lines.append(f"total: {len(runs) - failed} ok, {failed} failed, {total:.1f} s")
    return "\n".join(lines)


def expand(targets: list[Path]) -> list[Path]:
    """Notebook files from the command line, folders replaced by their notebooks."""
    return [nb for target in targets for nb in (notebooks_in(target) if target.is_dir() else [target])]


def main(argv: list[str] | None = None) -> int:
    """Run the notebooks, print the table, and return 1 if any failed or none was found."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", type=Path, default=[REPO_ROOT / "notebooks"],
                        help="notebooks or folders of notebooks (default: the course's notebooks/)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "executed",
                        help="folder for the executed copies (default: build/executed)")
    parser.add_argument("--timeout", type=int, default=1200, help="per-cell timeout in seconds (default: 1200)")
    args = parser.parse_args(argv)
    missing = [str(target) for target in args.targets if not target.exists()]
    if missing:
        parser.error(f"no such notebook or folder: {', '.join(missing)}")
    paths = expand(args.targets)
    if not paths:
        print(f"no notebooks found in {', '.join(map(str, args.targets))}", file=sys.stderr)
        return 1
    try:
        runs = run_notebooks(paths, args.out, args.timeout)
    except ValueError as exc:
        parser.error(str(exc))
    print(format_table(runs))
    return 1 if any(run.error for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
