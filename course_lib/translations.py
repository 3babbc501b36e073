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

Usage: python -m course_lib.translations status [SOURCE ...] | generate [--check] | stub SOURCE ... |
       accept SOURCE KEY ...
"""
from __future__ import annotations

import argparse
import difflib
import json
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

from course_lib.config import REPO_ROOT
from course_lib.exercises import ExerciseError, write_exercises
from course_lib.translation_store import (
    Block,
    BlockFile,
    TranslationFormatError,
    digest,
    format_blocks,
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
        raise TranslationFormatError(f"{MANIFEST} is missing: it lists every source and its state")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TranslationFormatError(f"{MANIFEST} is not valid YAML: {' '.join(str(exc).split())}") from exc
    sources = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(sources, dict):
        raise TranslationFormatError(f"{MANIFEST}: expected a `sources:` mapping of path to state")
    wrong = {source: state for source, state in sources.items() if state not in STATES}
    if wrong:
        raise TranslationFormatError(f"{MANIFEST}: unknown state for {wrong}; use one of {', '.join(STATES)}")
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
                raise TranslationFormatError(f"{source} cell {index} has no id; save it with nbformat >= 4.5")
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
        raise TranslationFormatError(f"{where}: {source} is translated per {block_kind(source)}, "
                                     f"but these blocks are not: {wrong}")
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


# --- helping translators ---------------------------------------------------------------------

def write_blocks(root: Path, source: str, file: BlockFile) -> bool:
    """Write a source's translation file if its text changed; whether it did."""
    path = root / translation_path(source)
    text = format_blocks(file)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def stub(root: Path, source: str) -> int:
    """Add a `todo` block holding the English text for every untranslated cell or section; how many.

    Blocks are put in the English order; existing blocks are kept word for word, orphaned ones
    at the end (status reports them).
    """
    file, english = translations(root, source), units(root, source)
    have = file.by_key()
    blocks = [have.get(unit.key) or Block(block_kind(source), unit.key, digest(unit.text), unit.text, todo=True)
              for unit in english]
    keys = {unit.key for unit in english}
    blocks += [block for block in file.blocks if block.key not in keys]
    header = file.header or HEADERS[block_kind(source)].format(source=source)
    write_blocks(root, source, BlockFile(header=header, blocks=tuple(blocks)))
    return sum(1 for unit in english if unit.key not in have)


def accept(root: Path, source: str, keys: list[str]) -> None:
    """Record that the named blocks translate the English as it is now (drops `todo`, updates the hash)."""
    english = {unit.key: unit for unit in units(root, source)}
    file = translations(root, source)
    have = file.by_key()
    unknown = [key for key in keys if key not in english]
    if unknown:
        raise TranslationFormatError(f"{source} has no {block_kind(source)} {', '.join(unknown)}; "
                                     f"`status {source}` lists its keys")
    absent = [key for key in keys if key not in have]
    if absent:
        raise TranslationFormatError(f"{translation_path(source)} has no block for {', '.join(absent)}; "
                                     f"run `stub {source}` first")
    blocks = tuple(block.accepted(digest(english[block.key].text)) if block.key in keys else block
                   for block in file.blocks)
    write_blocks(root, source, BlockFile(header=file.header, blocks=blocks))


def git(root: Path, *args: str) -> str | None:
    """A git command's output in the repository, or None when git or the history is unavailable."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def english_then(root: Path, source: str, key: str, recorded: str, commits: int = 200) -> str | None:
    """The English text of a cell or section as it was when translated (found in git history), or None."""
    for commit in (git(root, "log", f"-{commits}", "--format=%H", "--", source) or "").split():
        text = git(root, "show", f"{commit}:{source}")
        if text is None:
            continue
        if is_notebook(source):
            cells = [cell for cell in json.loads(text).get("cells", []) if cell.get("id") == key]
            candidates = ["".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                          for cell in cells]
        else:
            candidates = [section.text for section in sections(text) if section.key == key]
        for candidate in candidates:
            if digest(candidate) == recorded:
                return candidate
    return None


def indent(text: str, prefix: str = "    ") -> str:
    """Text with every line prefixed."""
    return "\n".join(prefix + line for line in text.split("\n"))


def details(root: Path, found: Report) -> str:
    """Every problem of one source, with the English text to translate (and, for stale ones, what changed)."""
    lines = [found.describe()]
    for item in found.problems:
        lines.append(f"\n  {item.kind} {block_kind(found.source)} {item.key}"
                     + (f" (English now en={digest(item.english)})" if item.english else ""))
        if item.kind == "stale":
            then = english_then(root, found.source, item.key, item.recorded)
            if then is None:
                lines.append(f"    translated from en={item.recorded}, not found in git history; the English now:")
            else:
                diff = difflib.unified_diff(then.split("\n"), item.english.split("\n"), "English when translated",
                                            "English now", lineterm="")
                lines += [indent("\n".join(diff)), "    the English now:"]
        if item.english:
            lines.append(indent(item.english))
    return "\n".join(lines)


def format_table(found: list[Report]) -> str:
    """A plain-text table of every source's state and counts, with a totals line."""
    width = max([len("source"), *(len(item.source) for item in found)])
    lines = [f"{'source':<{width}}  {'state':<9}  {'translated':>10}  missing  stale  todo  other"]
    for item in found:
        counts = item.counts()
        other = sum(counts[kind] for kind in ("no-korean", "markup", "orphaned"))
        done = f"{item.translated}/{item.total}" if item.state != "bilingual" else "-"
        lines.append(f"{item.source:<{width}}  {item.state:<9}  {done:>10}  {counts['missing']:>7}  "
                     f"{counts['stale']:>5}  {counts['todo']:>4}  {other:>5}")
    complete = [item for item in found if item.state != "bilingual" and item.ok]
    left = sum(item.total - item.translated for item in found)
    lines.append(f"Korean edition: {len(complete)} of {sum(item.state != 'bilingual' for item in found)} sources "
                 f"translated; {left} cells and sections left. `status SOURCE` shows their English text.")
    return "\n".join(lines)


def failures(root: Path, found: list[Report]) -> list[str]:
    """What makes the Korean edition fail its tests: manifest gaps, required sources with problems, stale files."""
    broken = [f"{item.describe()}" for item in found if item.state == "complete" and not item.ok]
    finished = [f"{item.source} is fully translated: set it to `complete` in {MANIFEST}"
                for item in found if item.state == "pending" and item.ok]
    generated = out_of_date(root)
    stale = [f"out of date: {', '.join(generated)}; run `make translations`"] if generated else []
    return manifest_problems(root, load_manifest(root)) + broken + finished + stale


def main(argv: list[str] | None = None) -> int:
    """Run one translator command; print one line per error and return 1 when something needs doing."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.translations", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="translation state of every source, or the details of some")
    status.add_argument("sources", nargs="*", help="sources to detail with their English text")
    check = commands.add_parser("generate", help="write notebooks_ko/ and exercises_ko/ from notebooks/")
    check.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    commands.add_parser("stub", help="add todo blocks with the English text").add_argument("sources", nargs="+")
    accepting = commands.add_parser("accept", help="record blocks as translating the current English")
    accepting.add_argument("source")
    accepting.add_argument("keys", nargs="+", help="cell ids or section anchors (#name)")
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (TranslationFormatError, ExerciseError) as exc:
        print(f"translations: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    """The body of main, once the arguments are parsed."""
    root: Path = args.root
    named = [*getattr(args, "sources", []), *([args.source] if args.command == "accept" else [])]
    unknown = [source for source in named if source not in english_sources(root)]
    if unknown:
        raise TranslationFormatError(f"not an English source of the Korean edition: {', '.join(unknown)} "
                                     f"(the sources are listed in {MANIFEST})")
    if args.command == "generate":
        if args.check:
            stale = out_of_date(root)
            print("\n".join(f"out of date: {name}" for name in stale) or "Korean notebooks are up to date")
            return 1 if stale else 0
        changed = generate(root, root)
        print("\n".join(f"wrote {name}" for name in changed) or "Korean notebooks were already up to date")
        return 0
    if args.command == "stub":
        for source in args.sources:
            print(f"{translation_path(source)}: {stub(root, source)} stub(s) added")
        return 0
    if args.command == "accept":
        accept(root, args.source, args.keys)
        print(f"{translation_path(args.source)}: {len(args.keys)} block(s) recorded as current")
        return 0
    found = reports(root)
    if args.sources:
        print("\n\n".join(details(root, item) for item in found if item.source in args.sources))
        return 0
    print(format_table(found))
    problems = failures(root, found)
    for line in problems:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
