"""Translators' commands for the Korean edition (course_lib.edition): status, stub, accept, generate.

Usage: python -m course_lib.translations status [SOURCE ...] | generate [--check] | stub SOURCE ... |
       accept SOURCE KEY ...
"""

from __future__ import annotations

import argparse
import difflib
import json
import subprocess
import sys
from pathlib import Path

from course_lib.config import REPO_ROOT
from course_lib.edition import (
    HEADERS,
    MANIFEST,
    Report,
    block_kind,
    english_sources,
    generate,
    is_notebook,
    load_manifest,
    manifest_problems,
    out_of_date,
    reports,
    translation_path,
    translations,
    units,
)
from course_lib.exercises import ExerciseError
from course_lib.messages import say
from course_lib.translation_store import Block, BlockFile, TranslationFormatError, digest, format_blocks, sections

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
        raise TranslationFormatError(say("translations.unknown_keys", source=source, kind=block_kind(source),
                                         keys=", ".join(unknown)))
    absent = [key for key in keys if key not in have]
    if absent:
        raise TranslationFormatError(say("translations.no_block", path=translation_path(source),
                                         keys=", ".join(absent), source=source))
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
        raise TranslationFormatError(say("translations.not_a_source", sources=", ".join(unknown), manifest=MANIFEST))
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
