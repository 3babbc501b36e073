"""The Korean edition (한국어판): translations that record what they translate, and the notebooks made from them.

English is the source. Each translation block records a hash of the English text it was made
from (course_lib.translation_store), so an English change makes it stale until it is revised.

  notebooks/NN.ipynb     -> translations/ko/NN.md       one block per markdown cell, by cell id
                         -> notebooks_ko/NN.ipynb       generated: the English notebook, outputs included,
                                                        with its markdown cells in Korean
                         -> exercises_ko/NN.ipynb       generated learner copy (course_lib.exercises)
  README.md, docs/X.md   -> README.ko.md, docs/X.ko.md  one block per section, in the document itself
  exercises/README.md    -> exercises_ko/README.md

translations/ko/manifest.yml says, for every English source, whether its translation must be
complete. The Korean folders sit beside the English ones, so relative paths in code cells
(`../bench`, `../../shared`) resolve the same in both editions.

The translators' commands are in course_lib.translations.
"""
from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

from course_lib.exercises import write_exercises
from course_lib.messages import say
from course_lib.translation_store import (
    Block,
    BlockFile,
    TranslationFormatError,
    digest,
    has_hangul,
    literal_emphasis,
    parse_blocks,
    sections,
)

LANGUAGE = "ko"
STORE = f"translations/{LANGUAGE}"
MANIFEST = f"{STORE}/manifest.yml"
FOLDERS = {"notebooks": f"notebooks_{LANGUAGE}", "exercises": f"exercises_{LANGUAGE}"}
NOTEBOOK_GLOB = "notebooks/*.ipynb"
DOCUMENT_GLOBS = ("README.md", "docs/*.md", "exercises/*.md")
STATES = ("complete", "pending", "bilingual")
# Problem kinds, one per cell or section at most, most urgent first; `orphaned` is a block without English.
KINDS = ("missing", "stale", "todo", "no-korean", "markup", "orphaned")
EXPLAIN = {
    "missing": "no translation",
    "stale": "the English changed after it was translated",
    "todo": "a stub: still the English text (remove `todo` from its marker once translated)",
    "no-korean": "the translation has no Korean in it",
    "markup": "bold or emphasis that does not close; CommonMark needs a space or letter, not a Korean "
              "particle, right after a closing ** that follows punctuation or code (write `**FAIL** 상태`)",
    "orphaned": "translates a cell or section the English no longer has: delete the block",
}
PENDING_NOTE = ("> **번역 진행 중** · 이 노트북의 설명 셀 {total}개 중 {left}개는 아직 한국어 번역이 없거나 "
                "번역한 뒤 영어 원문이 바뀌어서, 영어 원문을 그대로 보여 줍니다.")
HEADERS = {
    "cell": "<!-- 한국어 번역: {source}의 마크다운 셀. 셀마다 블록 하나, 블록마다 영어 원문의 해시(en=)를 "
            "기록합니다. 작업 방법: translations/README.md -->",
    "section": "<!-- 한국어판: {source}의 번역. 섹션마다 블록 하나, 블록마다 영어 원문의 해시(en=)를 "
               "기록합니다. 작업 방법: translations/README.md -->",
}


# --- sources and where their translations live ------------------------------------------------

def is_notebook(source: str) -> bool:
    """Whether a source is a notebook (translated per markdown cell) rather than a document (per section)."""
    return source.endswith(".ipynb")


def block_kind(source: str) -> str:
    """The kind of translation block a source has: `cell` or `section`."""
    return "cell" if is_notebook(source) else "section"


def edition_path(source: str) -> str:
    """The Korean edition of an English source, relative to the repository."""
    folder, _, name = source.rpartition("/")
    if folder in FOLDERS:
        return f"{FOLDERS[folder]}/{name}"
    return f"{source.removesuffix('.md')}.{LANGUAGE}.md"


def translation_path(source: str) -> str:
    """Where a source's translation blocks live: the notebook's store file, or the Korean document itself."""
    return f"{STORE}/{Path(source).stem}.md" if is_notebook(source) else edition_path(source)


def english_sources(root: Path) -> list[str]:
    """Every English notebook and document that the Korean edition follows, notebooks first."""
    def found(pattern: str) -> list[str]:
        return sorted(path.relative_to(root).as_posix() for path in root.glob(pattern)
                      if not path.name.endswith(f".{LANGUAGE}.md"))
    return found(NOTEBOOK_GLOB) + [source for pattern in DOCUMENT_GLOBS for source in found(pattern)]


def load_manifest(root: Path) -> dict[str, str]:
    """Source -> `complete`, `pending` or `bilingual`, from translations/ko/manifest.yml."""
    path = root / MANIFEST
    if not path.exists():
        raise TranslationFormatError(say("edition.no_manifest", manifest=MANIFEST))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TranslationFormatError(say("edition.manifest_not_yaml", manifest=MANIFEST,
                                         error=" ".join(str(exc).split()))) from exc
    sources = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(sources, dict):
        raise TranslationFormatError(say("edition.manifest_shape", manifest=MANIFEST))
    wrong = {source: state for source, state in sources.items() if state not in STATES}
    if wrong:
        raise TranslationFormatError(say("edition.unknown_state", manifest=MANIFEST, wrong=wrong,
                                         states=", ".join(STATES)))
    return {str(source): str(state) for source, state in sources.items()}


def manifest_problems(root: Path, manifest: dict[str, str]) -> list[str]:
    """Sources the manifest forgets, and entries for files that do not exist."""
    expected = english_sources(root)
    problems = [f"{source} is not in {MANIFEST}: add `{source}: pending` (or `complete`, with its translation)"
                for source in expected if source not in manifest]
    problems += [f"{MANIFEST} lists {source}, which is not an English source here: remove it"
                 for source in manifest if source not in expected]
    return problems


# --- English units and their translations ---------------------------------------------------

@dataclass(frozen=True)
class Unit:
    """One translatable piece of English: a markdown cell (key: cell id) or a section (key: anchor)."""

    key: str
    text: str


def units(root: Path, source: str) -> list[Unit]:
    """The English markdown cells or sections of a source, in order."""
    if not is_notebook(source):
        return [Unit(section.key, section.text) for section in sections((root / source).read_text(encoding="utf-8"))]
    notebook = nbformat.read(root / source, as_version=4)
    found = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            if "id" not in cell:
                raise TranslationFormatError(say("edition.cell_without_id", source=source, index=index))
            found.append(Unit(cell.id, cell.source))
    return found


def translations(root: Path, source: str) -> BlockFile:
    """A source's translation blocks (none when its translation file does not exist yet)."""
    where = translation_path(source)
    path = root / where
    if not path.exists():
        return BlockFile(header="", blocks=())
    file = parse_blocks(path.read_text(encoding="utf-8"), where)
    wrong = [block.key for block in file.blocks if block.kind != block_kind(source)]
    if wrong:
        raise TranslationFormatError(say("edition.wrong_block_kind", where=where, source=source,
                                         kind=block_kind(source), wrong=wrong))
    return file


def current(unit: Unit, block: Block | None) -> bool:
    """Whether a block is a finished translation of the unit's English text as it is now."""
    return block is not None and not block.todo and block.english == digest(unit.text)


@dataclass(frozen=True)
class Problem:
    """What is wrong with one cell's or section's translation."""

    kind: str
    key: str
    english: str  # the English text now ("" for an orphaned block)
    recorded: str = ""  # the English digest the translation recorded


def problem(unit: Unit, block: Block | None) -> Problem | None:
    """The most urgent problem of one unit's translation, or None when it is current and sound."""
    kind = ("missing" if block is None else "stale" if block.english != digest(unit.text) else "todo"
            if block.todo else "no-korean" if not has_hangul(block.text) else "markup"
            if literal_emphasis(block.text) > literal_emphasis(unit.text) else "")
    return Problem(kind, unit.key, unit.text, block.english if block else "") if kind else None


@dataclass(frozen=True)
class Report:
    """The translation state of one source: how many cells or sections, and every problem."""

    source: str
    state: str
    total: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Whether nothing is missing, stale, unfinished or orphaned."""
        return not self.problems

    @property
    def translated(self) -> int:
        """Cells or sections with a current, sound translation."""
        return self.total - sum(1 for p in self.problems if p.kind != "orphaned")

    def counts(self) -> Counter[str]:
        """Problems per kind."""
        return Counter(p.kind for p in self.problems)

    def describe(self) -> str:
        """One line: the source, its state, how much is translated, and the keys of each problem kind."""
        unit = "markdown cells" if is_notebook(self.source) else "sections"
        parts = [f"{self.source} ({self.state}): {self.translated} of {self.total} {unit} translated"]
        parts += [f"{kind} ({EXPLAIN[kind]}): {', '.join(p.key for p in self.problems if p.kind == kind)}"
                  for kind in KINDS if any(p.kind == kind for p in self.problems)]
        return "; ".join(parts)


def report(root: Path, source: str, state: str) -> Report:
    """Compare a source's English cells or sections with their translations (a bilingual one has none)."""
    if state == "bilingual":
        return Report(source, state, 0, ())
    english = units(root, source)
    blocks = translations(root, source).by_key()
    problems = [found for unit in english if (found := problem(unit, blocks.get(unit.key)))]
    keys = {unit.key for unit in english}
    problems += [Problem("orphaned", key, "", block.english) for key, block in blocks.items() if key not in keys]
    return Report(source, state, len(english), tuple(problems))


def reports(root: Path) -> list[Report]:
    """Every listed source's report, in the order of english_sources (unlisted sources are left out)."""
    manifest = load_manifest(root)
    return [report(root, source, manifest[source]) for source in english_sources(root) if source in manifest]


# --- generating the Korean notebooks and learner copies --------------------------------------

def korean_notebook(root: Path, source: str) -> nbformat.NotebookNode:
    """The English notebook with each markdown cell replaced by its current translation.

    Code cells, outputs and metadata stay the English ones. Cells without a current translation
    keep their English text, and the first markdown cell then says how many there are.
    """
    english = {unit.key: unit for unit in units(root, source)}  # also refuses cells without ids
    blocks = translations(root, source).by_key()
    notebook = nbformat.read(root / source, as_version=4)
    markdown = [cell for cell in notebook.cells if cell.cell_type == "markdown"]
    left = 0
    for cell in markdown:
        block = blocks.get(cell.id)
        if block is not None and current(english[cell.id], block):
            cell.source = block.text
        else:
            left += 1
    if left:
        markdown[0].source = f"{PENDING_NOTE.format(total=len(markdown), left=left)}\n\n{markdown[0].source}"
    return notebook


def render(notebook: nbformat.NotebookNode) -> str:
    """A notebook's file content (nbformat's JSON, one trailing newline), as course_lib.exercises writes it."""
    return nbformat.writes(notebook).rstrip("\n") + "\n"


def snapshot(folder: Path) -> dict[str, bytes]:
    """The notebooks of a folder, by name, with their bytes."""
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.ipynb"))}


def generate(root: Path, out: Path) -> list[str]:
    """Write the Korean notebooks and their learner copies under `out`; return the files that changed."""
    notebooks, learner = out / FOLDERS["notebooks"], out / FOLDERS["exercises"]
    before = {f"{folder.name}/{name}": data for folder in (notebooks, learner)
              for name, data in snapshot(folder).items()}
    sources = [source for source in english_sources(root) if is_notebook(source)]
    notebooks.mkdir(parents=True, exist_ok=True)
    for stale in set(notebooks.glob("*.ipynb")) - {out / edition_path(source) for source in sources}:
        stale.unlink()
    for source in sources:
        target, text = out / edition_path(source), render(korean_notebook(root, source))
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    if sources:
        write_exercises(notebooks, learner)
    after = {f"{folder.name}/{name}": data for folder in (notebooks, learner)
             for name, data in snapshot(folder).items()}
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def out_of_date(root: Path) -> list[str]:
    """Generated files that differ from a fresh generation (or are missing, or should not exist)."""
    with tempfile.TemporaryDirectory() as scratch:
        generate(root, Path(scratch))
        fresh = {f"{folder}/{name}": data for folder in FOLDERS.values()
                 for name, data in snapshot(Path(scratch) / folder).items()}
    committed = {f"{folder}/{name}": data for folder in FOLDERS.values()
                 for name, data in snapshot(root / folder).items()}
    return sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))


