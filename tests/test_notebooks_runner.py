"""The headless runner behind `make course` reports every notebook, failures included."""
from __future__ import annotations

from pathlib import Path

import nbformat

from course_lib.notebooks import format_table, main, run_all


def write_notebook(path: Path, *sources: str) -> Path:
    """A tiny notebook with the given code cells."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_runs_all_in_order_and_reports_failures(tmp_path: Path) -> None:
    """A failing notebook does not stop the run; each gets a status, and copies land in --out."""
    src = tmp_path / "nbs"
    src.mkdir()
    write_notebook(src / "a_ok.ipynb", "import os; print(os.getcwd())")
    write_notebook(src / "b_fail.ipynb", "1 / 0")
    out = tmp_path / "out"
    runs = run_all(src, out, timeout=120)
    assert [(r.name, r.status) for r in runs] == [("a_ok.ipynb", "ok"), ("b_fail.ipynb", "failed")]
    assert runs[1].error.startswith("ZeroDivisionError")
    executed = nbformat.read(out / "a_ok.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].strip() == str(src)  # cwd = the notebook's folder
    assert "1 ok, 1 failed" in format_table(runs)
    assert nbformat.read(src / "a_ok.ipynb", as_version=4).cells[0].outputs == []  # sources untouched


def test_exit_codes(tmp_path: Path) -> None:
    """Exit 1 when nothing is found or something failed, 0 when all ran."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "--out", str(tmp_path / "o1")]) == 1
    ok = tmp_path / "ok"
    ok.mkdir()
    write_notebook(ok / "n.ipynb", "x = 1")
    assert main([str(ok), "--out", str(tmp_path / "o2")]) == 0
