"""The Korean edition (한국어판): every translation records the English text it translates; the sources
that translations/ko/manifest.yml requires complete are, and the others report what remains; the Korean
notebooks and learner copies are exactly what the generator makes, with the English code cells and
outputs; and each of these checks fails on a modified copy of the repository."""
from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feast
import feast.types
import nbformat
import pytest
from feast.cli.cli import cli
from feast.repo_config import RepoConfig
from jupyterlab_server.translation_utils import get_language_packs

from course_lib import edition
from course_lib import translations as tr
from course_lib.config import REPO_ROOT
from course_lib.translation_store import (
    Block,
    BlockFile,
    TranslationFormatError,
    digest,
    format_blocks,
    has_hangul,
    parse_blocks,
    sections,
)

MANIFEST = edition.load_manifest(REPO_ROOT)
SOURCES = edition.english_sources(REPO_ROOT)
NOTEBOOKS = [source for source in SOURCES if edition.is_notebook(source)]
PILOT = "notebooks/00_check_setup.ipynb"
PILOT_FILES = [PILOT, "translations/ko/00_check_setup.md", "notebooks_ko/00_check_setup.ipynb",
               "exercises_ko/00_check_setup.ipynb"]
GLOSSARY = REPO_ROOT / "docs" / "glossary.md"


class TranslationPending(UserWarning):
    """A source whose translation is under way, with exactly what remains untranslated."""


# --- the checks, as functions, so the tests below can also run them on modified copies ------------

def assert_translation_state(root: Path, source: str, state: str | None) -> None:
    """complete: nothing missing, stale, unfinished or orphaned; pending: something remains (warned)."""
    assert state is not None, f"{source} is not in {edition.MANIFEST}: add it as `pending` or `complete`"
    found = edition.report(root, source, state)
    if state == "complete":
        assert found.ok, f"{found.describe()}. `python -m course_lib.translations status {source}` shows the English"
    elif state == "pending":
        assert not found.ok, f"{source} is fully translated: set it to `complete` in {edition.MANIFEST}"
        warnings.warn(TranslationPending(found.describe()), stacklevel=2)
    else:
        assert has_hangul((root / source).read_text(encoding="utf-8")), f"{source} is marked bilingual"


def assert_generated(root: Path) -> None:
    """notebooks_ko/ and exercises_ko/ hold exactly what a fresh generation writes."""
    stale = edition.out_of_date(root)
    assert not stale, f"out of date: {stale}; run `make translations` (or `make exercises`) and commit the result"


def cells_of(path: Path) -> list[dict[str, Any]]:
    """A notebook's cells, straight from its JSON."""
    cells: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return cells


def assert_same_code(english: Path, korean: Path) -> None:
    """Same cells in the same order, code cells identical (source, outputs, counts, metadata), markdown ids kept."""
    ours, theirs = json.loads(english.read_text(encoding="utf-8")), json.loads(korean.read_text(encoding="utf-8"))
    assert ours["metadata"] == theirs["metadata"], f"{korean.name}: notebook metadata differs from the English"
    assert [(c["id"], c["cell_type"]) for c in ours["cells"]] == [(c["id"], c["cell_type"]) for c in theirs["cells"]]
    for en, ko in zip(ours["cells"], theirs["cells"], strict=True):
        if en["cell_type"] == "code":
            assert en == ko, f"{korean.name} code cell {en['id']} differs from the English one"
        else:
            assert {k: v for k, v in en.items() if k != "source"} == {k: v for k, v in ko.items() if k != "source"}


# --- the repository as it is -------------------------------------------------------------

def test_manifest_lists_every_source_once() -> None:
    assert not edition.manifest_problems(REPO_ROOT, MANIFEST)


@pytest.mark.parametrize("source", SOURCES)
def test_translation_state(source: str) -> None:
    """Required-complete sources are complete; pending ones warn with what remains (see the warnings summary)."""
    assert_translation_state(REPO_ROOT, source, MANIFEST.get(source))


def test_korean_notebooks_and_learner_copies_are_generated() -> None:
    assert_generated(REPO_ROOT)


@pytest.mark.parametrize("source", NOTEBOOKS)
def test_korean_code_cells_and_outputs_are_the_english_ones(source: str) -> None:
    """Checked on the files themselves, independently of the generator; learner copies likewise."""
    name = Path(source).name
    assert_same_code(REPO_ROOT / source, REPO_ROOT / "notebooks_ko" / name)
    assert_same_code(REPO_ROOT / "exercises" / name, REPO_ROOT / "exercises_ko" / name)


@pytest.mark.parametrize("source", [s for s in NOTEBOOKS if MANIFEST.get(s) == "complete"])
def test_complete_korean_notebooks_are_in_korean(source: str) -> None:
    """Every markdown cell of a complete Korean notebook has Korean in it, and no pending note."""
    for cell in cells_of(REPO_ROOT / edition.edition_path(source)):
        if cell["cell_type"] == "markdown":
            text = "".join(cell["source"])
            assert has_hangul(text), f"{source} cell {cell['id']} has no Korean: {text[:80]!r}"
            assert "번역 진행 중" not in text, f"{source} cell {cell['id']} carries the pending note"


@pytest.mark.parametrize("folder", ["notebooks", "notebooks_ko"])
def test_notebook_00_links_the_glossary(folder: str) -> None:
    first = "".join(cells_of(REPO_ROOT / folder / "00_check_setup.ipynb")[0]["source"])
    assert "](../docs/glossary.md)" in first
    assert GLOSSARY.exists()


# --- the checks fail on modified copies --------------------------------------------------------

def copy_repo(tmp_path: Path, files: list[str]) -> Path:
    """A scratch repository holding copies of some of the course's files."""
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, tmp_path / name)
    return tmp_path


def edit_cell(path: Path, index: int, change: Callable[[nbformat.NotebookNode], object]) -> str:
    """Apply `change` to one cell of a notebook file; the cell's id."""
    notebook = nbformat.read(path, as_version=4)
    change(notebook.cells[index])
    nbformat.write(notebook, path)
    return str(notebook.cells[index].id)


@pytest.fixture
def pilot(tmp_path: Path) -> Path:
    """A scratch copy of notebook 00, its translation and its Korean editions, all current."""
    root = copy_repo(tmp_path, PILOT_FILES)
    (root / edition.MANIFEST).write_text(f"sources:\n  {PILOT}: complete\n", encoding="utf-8")
    assert_translation_state(root, PILOT, "complete")
    assert_generated(root)
    return root


def markdown_index(root: Path, nth: int = 1) -> int:
    """The index of the notebook's nth markdown cell."""
    cells = nbformat.read(root / PILOT, as_version=4).cells
    return [i for i, cell in enumerate(cells) if cell.cell_type == "markdown"][nth]


def test_an_english_edit_without_its_translation_fails(pilot: Path) -> None:
    cell = edit_cell(pilot / PILOT, markdown_index(pilot), lambda c: setattr(c, "source", c.source + " New."))
    with pytest.raises(AssertionError, match=f"stale.*{cell}"):
        assert_translation_state(pilot, PILOT, "complete")
    with pytest.raises(AssertionError, match="notebooks_ko/00_check_setup.ipynb"):
        assert_generated(pilot)
    korean = edition.korean_notebook(pilot, PILOT)
    shown = next(c for c in korean.cells if c.id == cell)
    assert shown.source.endswith(" New.")  # the English is shown...
    assert "번역 진행 중" in korean.cells[0].source  # ...and the notebook says so


def test_trailing_spaces_do_not_make_a_translation_stale(pilot: Path) -> None:
    edit_cell(pilot / PILOT, markdown_index(pilot), lambda c: setattr(c, "source", c.source.replace("\n", "  \n")))
    assert_translation_state(pilot, PILOT, "complete")


def test_a_new_english_cell_is_missing(pilot: Path) -> None:
    notebook = nbformat.read(pilot / PILOT, as_version=4)
    notebook.cells.insert(2, nbformat.v4.new_markdown_cell("A new paragraph."))
    nbformat.write(notebook, pilot / PILOT)
    with pytest.raises(AssertionError, match=f"missing.*{notebook.cells[2].id}"):
        assert_translation_state(pilot, PILOT, "complete")


def test_a_deleted_translation_is_missing(pilot: Path) -> None:
    store = pilot / "translations/ko/00_check_setup.md"
    file = parse_blocks(store.read_text(encoding="utf-8"), "store")
    store.write_text(format_blocks(BlockFile(file.header, file.blocks[:-1])), encoding="utf-8")
    with pytest.raises(AssertionError, match=f"missing.*{file.blocks[-1].key}"):
        assert_translation_state(pilot, PILOT, "complete")


def test_an_edited_korean_notebook_or_learner_copy_fails(pilot: Path) -> None:
    korean = pilot / "notebooks_ko/00_check_setup.ipynb"
    code = next(i for i, c in enumerate(nbformat.read(korean, as_version=4).cells) if c.get("outputs"))
    edit_cell(korean, code, lambda c: c.outputs.clear())
    with pytest.raises(AssertionError, match="notebooks_ko/00_check_setup.ipynb"):
        assert_generated(pilot)
    with pytest.raises(AssertionError, match="code cell"):
        assert_same_code(pilot / PILOT, korean)
    shutil.copy2(REPO_ROOT / "notebooks_ko/00_check_setup.ipynb", korean)
    edit_cell(pilot / "exercises_ko/00_check_setup.ipynb", 0, lambda c: setattr(c, "source", "hand edit"))
    with pytest.raises(AssertionError, match="exercises_ko/00_check_setup.ipynb"):
        assert_generated(pilot)


def test_new_english_outputs_must_reach_the_korean_notebook(pilot: Path) -> None:
    """Re-executing an English notebook changes its outputs; the Korean one must be regenerated."""
    code = next(i for i, c in enumerate(nbformat.read(pilot / PILOT, as_version=4).cells) if c.get("outputs"))
    edit_cell(pilot / PILOT, code, lambda c: c.outputs[0].__setitem__("text", "a new run\n"))
    with pytest.raises(AssertionError, match="notebooks_ko/00_check_setup.ipynb"):
        assert_generated(pilot)
    edition.generate(pilot, pilot)
    assert_generated(pilot)
    assert_same_code(pilot / PILOT, pilot / "notebooks_ko/00_check_setup.ipynb")


def test_pending_warns_with_what_remains_and_fails_once_complete(pilot: Path) -> None:
    with pytest.raises(AssertionError, match="fully translated: set it to `complete`"):
        assert_translation_state(pilot, PILOT, "pending")
    (pilot / "translations/ko/00_check_setup.md").unlink()
    with pytest.warns(TranslationPending, match=r"0 of 5 markdown cells translated; missing .*87b7f0a9"):
        assert_translation_state(pilot, PILOT, "pending")


def test_a_new_notebook_must_be_listed_and_is_generated_without_code_changes(pilot: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 07 · Completion criteria\n\nExercise 7.1"),
        nbformat.v4.new_code_cell("def answer():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION"),
        nbformat.v4.new_code_cell("print(answer())")])
    nbformat.write(notebook, pilot / "notebooks/07_completion_criteria.ipynb")
    problems = edition.manifest_problems(pilot, edition.load_manifest(pilot))
    assert any("notebooks/07_completion_criteria.ipynb is not in translations/ko/manifest.yml: add" in p
               for p in problems)
    assert "notebooks_ko/07_completion_criteria.ipynb" in edition.out_of_date(pilot)
    edition.generate(pilot, pilot)
    learner = nbformat.read(pilot / "exercises_ko/07_completion_criteria.ipynb", as_version=4)
    assert "번역 진행 중" in learner.cells[0].source
    assert "NotImplementedError" in learner.cells[1].source
    assert_same_code(pilot / "notebooks/07_completion_criteria.ipynb",
                     pilot / "notebooks_ko/07_completion_criteria.ipynb")


# --- documents: per section -------------------------------------------------------------------

ENGLISH_DOC = """# Runbook

Intro.

## Redis down

```sh
# not a heading: a shell comment
redis-cli ping
```

## Redis down

Second section with the same heading.
"""


@pytest.fixture
def document(tmp_path: Path) -> Path:
    """A scratch repository with one English document and its complete Korean edition."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/runbook.md").write_text(ENGLISH_DOC, encoding="utf-8")
    assert tr.stub(tmp_path, "docs/runbook.md") == 3
    korean = tmp_path / "docs/runbook.ko.md"
    file = parse_blocks(korean.read_text(encoding="utf-8"), "runbook.ko.md")
    translated = tuple(Block(b.kind, b.key, b.english, f"## 한국어 {b.key}", todo=b.todo) for b in file.blocks)
    korean.write_text(format_blocks(BlockFile(file.header, translated)), encoding="utf-8")
    tr.accept(tmp_path, "docs/runbook.md", [b.key for b in file.blocks])
    assert_translation_state(tmp_path, "docs/runbook.md", "complete")
    return tmp_path


def test_sections_follow_headings_outside_code_fences() -> None:
    assert [s.key for s in sections(ENGLISH_DOC)] == ["#runbook", "#redis-down", "#redis-down-1"]
    assert "redis-cli ping" in sections(ENGLISH_DOC)[1].text


def test_document_sections_go_stale_missing_and_orphaned(document: Path) -> None:
    english = document / "docs/runbook.md"
    english.write_text(ENGLISH_DOC.replace("Second section", "The second section"), encoding="utf-8")
    with pytest.raises(AssertionError, match="stale.*#redis-down-1"):
        assert_translation_state(document, "docs/runbook.md", "complete")
    english.write_text(ENGLISH_DOC + "\n## Postgres down\n\nNew.\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="missing.*#postgres-down"):
        assert_translation_state(document, "docs/runbook.md", "complete")
    english.write_text(ENGLISH_DOC.split("## Redis down")[0], encoding="utf-8")
    with pytest.raises(AssertionError, match="orphaned.*#redis-down, #redis-down-1"):
        assert_translation_state(document, "docs/runbook.md", "complete")


def test_a_translation_in_english_or_with_broken_bold_is_not_done(document: Path) -> None:
    korean = document / "docs/runbook.ko.md"
    text = korean.read_text(encoding="utf-8")
    korean.write_text(text.replace("## 한국어 #runbook", "# Runbook\n\nIntro."), encoding="utf-8")
    with pytest.raises(AssertionError, match="no-korean.*#runbook"):
        assert_translation_state(document, "docs/runbook.md", "complete")
    korean.write_text(text.replace("## 한국어 #runbook", "**`FAIL`**이면 다시"), encoding="utf-8")
    with pytest.raises(AssertionError, match="markup.*#runbook"):
        assert_translation_state(document, "docs/runbook.md", "complete")
    korean.write_text(text.replace("## 한국어 #runbook", "**`FAIL`** 상태이면 다시"), encoding="utf-8")
    assert_translation_state(document, "docs/runbook.md", "complete")


def test_stub_keeps_translations_word_for_word_and_adds_todo_blocks(document: Path) -> None:
    korean = document / "docs/runbook.ko.md"
    before = korean.read_text(encoding="utf-8")
    assert tr.stub(document, "docs/runbook.md") == 0
    assert korean.read_text(encoding="utf-8") == before
    (document / "docs/runbook.md").write_text(ENGLISH_DOC.replace("Intro.", "Intro.\n\n## Scope\n\nAll."),
                                              encoding="utf-8")
    assert tr.stub(document, "docs/runbook.md") == 1
    blocks = parse_blocks(korean.read_text(encoding="utf-8"), "runbook.ko.md").blocks
    assert [b.key for b in blocks] == ["#runbook", "#scope", "#redis-down", "#redis-down-1"]
    assert blocks[1] == Block("section", "#scope", digest("## Scope\n\nAll."), "## Scope\n\nAll.", todo=True)
    with pytest.raises(AssertionError, match="todo.*#scope"):
        assert_translation_state(document, "docs/runbook.md", "complete")


def test_accept_refuses_unknown_keys_and_untranslated_sections(document: Path) -> None:
    with pytest.raises(TranslationFormatError, match="has no section #nowhere"):
        tr.accept(document, "docs/runbook.md", ["#nowhere"])
    (document / "docs/runbook.ko.md").unlink()
    with pytest.raises(TranslationFormatError, match="run `stub docs/runbook.md` first"):
        tr.accept(document, "docs/runbook.md", ["#runbook"])


# --- the file format ----------------------------------------------------------------------------

def test_blocks_round_trip() -> None:
    file = BlockFile("<!-- header -->", (Block("cell", "a1", "0123456789ab", "# 제목\n\n본문"),
                                         Block("cell", "b2", "ba9876543210", "둘째", todo=True)))
    assert parse_blocks(format_blocks(file), "x") == file


@pytest.mark.parametrize(("text", "message"), [
    ("<!-- cell a1 en=0123 -->\n본문", r"x:1: malformed marker"),
    ("<!-- cell a1 en=0123456789ab -->\n하나\n<!-- cell a1 en=0123456789ab -->\n둘",
     r"x:3: cell a1 is translated twice"),
])
def test_malformed_files_name_the_line(text: str, message: str) -> None:
    with pytest.raises(TranslationFormatError, match=message):
        parse_blocks(text, "x")


def test_digest_ignores_trailing_whitespace_only() -> None:
    assert digest("a  \nb\n\n") == digest("a\nb") != digest("a\nb.")


# --- the command line ---------------------------------------------------------------------------

def git(root: Path, *args: str) -> None:
    """Run git in a scratch repository."""
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


def test_status_shows_what_to_translate_and_the_english_change(pilot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tr.main(["--root", str(pilot), "generate", "--check"]) == 0
    assert tr.main(["--root", str(pilot), "status"]) == 0
    git(pilot, "init", "-q")
    git(pilot, "add", ".")
    git(pilot, "commit", "-qm", "translated")
    cell = edit_cell(pilot / PILOT, markdown_index(pilot), lambda c: setattr(c, "source", c.source + " Added."))
    capsys.readouterr()
    assert tr.main(["--root", str(pilot), "status", PILOT]) == 0
    out = capsys.readouterr().out
    assert f"stale cell {cell}" in out
    assert "+++ English now" in out  # the change since it was translated, from git history
    assert out.count(" Added.") == 2  # in the diff and in the English to translate
    assert tr.main(["--root", str(pilot), "status"]) == 1  # a complete source is stale
    assert f"FAIL {PILOT} (complete)" in capsys.readouterr().err


def test_bad_input_gets_one_line_and_nothing_is_written(pilot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tr.main(["--root", str(pilot), "stub", "docs/nowhere.md"]) == 1
    assert capsys.readouterr().err == ("translations: not an English source of the Korean edition: docs/nowhere.md "
                                       "(the sources are listed in translations/ko/manifest.yml)\n")
    store = pilot / "translations/ko/00_check_setup.md"
    broken = store.read_text(encoding="utf-8").replace(" en=", " en=zz", 1)
    store.write_text(broken, encoding="utf-8")
    assert tr.main(["--root", str(pilot), "stub", PILOT]) == 1
    assert re.fullmatch(r"translations: translations/ko/00_check_setup.md:3: malformed marker .*\n",
                        capsys.readouterr().err)
    assert store.read_text(encoding="utf-8") == broken


@pytest.mark.parametrize(("manifest", "message"), [
    ("sources: [unclosed", "translations/ko/manifest.yml is not valid YAML: "),
    (f"sources:\n  {PILOT}: done\n",
     "translations/ko/manifest.yml: unknown state for {'notebooks/00_check_setup.ipynb': 'done'}"),
])
def test_a_bad_manifest_gets_one_line(pilot: Path, capsys: pytest.CaptureFixture[str], manifest: str,
                                      message: str) -> None:
    (pilot / edition.MANIFEST).write_text(manifest, encoding="utf-8")
    assert tr.main(["--root", str(pilot), "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"translations: {message}")
    assert err.count("\n") == 1


def make(*args: str) -> subprocess.CompletedProcess[str]:
    """`make -n` in the repository: what a target would run."""
    return subprocess.run(["make", "-n", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False)


def test_make_course_runs_the_korean_edition() -> None:
    assert "course_lib.notebooks --out build/executed/ko notebooks_ko" in make("course", "COURSE_LANG=ko").stdout
    assert "course_lib.notebooks --out build/executed notebooks\n" in make("course", "COURSE_LANG=en").stdout
    wrong = make("course", "COURSE_LANG=fr")
    assert wrong.returncode != 0
    assert 'COURSE_LANG must be en or ko, not "fr"' in wrong.stderr


# --- the glossary and JupyterLab in Korean -----------------------------------------------------------

def glossary_rows() -> list[list[str]]:
    """The glossary's table rows (Korean, English, Feast API, description), header rows left out."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in GLOSSARY.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    return [row for row in rows if row[0] != "한국어" and not set(row[0]) <= set("- ")]


def api_exists(name: str) -> bool:
    """Whether one name of the glossary's Feast API column exists in the installed Feast."""
    if name.startswith("feast ") and " " not in name[6:]:
        return name[6:] in cli.commands
    if name.startswith("feature_store.yaml: "):
        key = name.split(": ", 1)[1]
        return any(key in (field, info.alias) for field, info in RepoConfig.model_fields.items())
    if name.startswith("feast.types."):
        return hasattr(feast.types, name.rsplit(".", 1)[1])
    match = re.fullmatch(r"(store\.)?(\w+)(?:\((\w+=)?\))?", name)
    if not match:
        return False
    owner = feast.FeatureStore if match[1] else feast
    target = getattr(owner, match[2], None)
    if target is None or not match[3]:
        return target is not None
    return match[3][:-1] in inspect.signature(target).parameters


def test_glossary_names_real_feast_apis_and_the_guides_terms() -> None:
    rows = glossary_rows()
    assert all(len(row) == 4 and has_hangul(row[0]) and row[1] and row[3] for row in rows), rows
    names = [name for row in rows for name in re.findall(r"`([^`]+)`", row[2])]
    assert len(names) >= 30
    assert not [name for name in names if not api_exists(name)]
    terms = {re.sub(r"\s*†", "", row[0]) for row in rows}
    required = {"피처 뷰", "피처 서비스", "실체화", "신선도", "가용성", "온라인 스토어", "오프라인 스토어", "엔티티",
                "시점 정확 조인", "레지스트리", "TTL(유효 기간)", "푸시 소스", "온디맨드 피처 뷰"}
    assert required <= terms, required - terms


def test_glossary_api_check_can_fail() -> None:
    assert not any(api_exists(name) for name in ["FeatureViw", "store.materialise()", "feast materialise",
                                                 "FeatureView(tll=)", "feature_store.yaml: online_stor"])


def test_jupyterlab_has_the_korean_language_pack() -> None:
    lock = (REPO_ROOT / "requirements.lock").read_text(encoding="utf-8").lower()
    assert re.search(r"^jupyterlab-language-pack-ko-kr==", lock, re.MULTILINE), "the language pack is not locked"
    packs, error = get_language_packs("en")
    assert not error
    assert packs["ko_KR"]["nativeName"].startswith("한국어")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "Settings > Language" in readme
