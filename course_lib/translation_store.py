"""The translation file format: hashes of English text, marked translation blocks, markdown sections.

A translation is a block of markdown preceded by one marker line that names what it translates
and a hash of the English text it was made from:

    <!-- cell 87b7f0a9 en=3f2a1b9c0d4e -->            a notebook's markdown cell, by cell id
    <!-- section #quick-start en=3f2a1b9c0d4e todo -->  a document's section, by heading anchor

`todo` marks a stub whose text is still the English original. The block's text runs to the next
marker line (blank lines at either end are not part of it). Markers are HTML comments, so a
file of blocks renders as the translated document itself.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, replace

from markdown_it import MarkdownIt

from course_lib.errors import CourseError
from course_lib.messages import say

DIGEST_CHARS = 12
MARKER = re.compile(rf"^<!-- (?P<kind>cell|section) (?P<key>\S+) en=(?P<english>[0-9a-f]{{{DIGEST_CHARS}}})"
                    r"(?P<todo> todo)? -->$")
MARKER_START = re.compile(r"^<!-- (cell|section) ")
HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
PREAMBLE = "#"  # the key of a document's text before its first heading (the link to its top)


class TranslationFormatError(CourseError):
    """A translation file is malformed; the message names the file and line."""


def normalize(text: str) -> str:
    """Text as hashed: Unix line ends, no trailing spaces, no blank lines at either end."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n")).strip("\n")


def digest(text: str) -> str:
    """The short SHA-256 of normalized text that a translation records."""
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def has_hangul(text: str) -> bool:
    """Whether the text contains any Korean letter."""
    return bool(HANGUL.search(text))


@dataclass(frozen=True)
class Block:
    """One translation: what it translates (kind and key), the English hash, its text, and stub flag."""

    kind: str  # "cell" or "section"
    key: str  # a cell id, or a section's anchor ("#quick-start")
    english: str  # digest of the English text this translates
    text: str
    todo: bool = False

    def marker(self) -> str:
        """The block's marker line."""
        return f"<!-- {self.kind} {self.key} en={self.english}{' todo' if self.todo else ''} -->"

    def accepted(self, english: str) -> Block:
        """This block recorded as translating the given English digest, no longer a stub."""
        return replace(self, english=english, todo=False)


@dataclass(frozen=True)
class BlockFile:
    """A translation file: free text before the first marker (kept as is), then its blocks."""

    header: str
    blocks: tuple[Block, ...]

    def by_key(self) -> dict[str, Block]:
        """The blocks by key."""
        return {block.key: block for block in self.blocks}


def strip_blank_lines(lines: list[str]) -> str:
    """The lines joined, without whitespace-only lines at either end."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return "\n".join(lines)


def parse_blocks(text: str, where: str) -> BlockFile:
    """The blocks of a translation file; a malformed marker or repeated key raises with its line."""
    header: list[str] = []
    blocks: list[tuple[re.Match[str], list[str]]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        match = MARKER.match(line.rstrip())
        if match:
            first = seen.setdefault(match["key"], number)
            if first != number:
                raise TranslationFormatError(say("translation_store.twice", where=where, line=number,
                                                 kind=match["kind"], key=match["key"], first=first))
            blocks.append((match, []))
        elif MARKER_START.match(line):
            raise TranslationFormatError(say("translation_store.malformed", where=where, line=number,
                                             marker=line.strip(), digits=DIGEST_CHARS))
        else:
            (blocks[-1][1] if blocks else header).append(line)
    return BlockFile(header=strip_blank_lines(header),
                     blocks=tuple(Block(kind=match["kind"], key=match["key"], english=match["english"],
                                        text=strip_blank_lines(lines), todo=bool(match["todo"]))
                                  for match, lines in blocks))


def format_blocks(file: BlockFile) -> str:
    """A translation file's text: its header, then each block's marker and text, blank-line separated."""
    parts = [file.header] if file.header else []
    parts += [f"{block.marker()}\n\n{block.text}" if block.text else block.marker() for block in file.blocks]
    return "\n\n".join(parts) + "\n"


@dataclass(frozen=True)
class Section:
    """A markdown section: its anchor and its text, from its heading to the next heading of any level."""

    key: str
    text: str


def heading_text(raw: str) -> str:
    """A heading as CommonMark renders it, as plain text (code spans and link texts kept, markup dropped)."""
    tokens = MarkdownIt("commonmark").parseInline(raw)
    return "".join(child.content for token in tokens for child in token.children or []
                   if child.type in ("text", "code_inline"))


def anchor(heading: str, seen: Counter[str]) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    slug = re.sub(r"[^\w\- ]", "", heading_text(heading).strip().lower()).replace(" ", "-")
    count = seen[slug]
    seen[slug] += 1
    return f"#{slug}-{count}" if count else f"#{slug}"


def sections(markdown: str) -> list[Section]:
    """A document's sections in order; `#` lines inside fenced code blocks are not headings."""
    found: list[tuple[str, list[str]]] = [(PREAMBLE, [])]
    seen: Counter[str] = Counter()
    fence = ""
    for line in markdown.replace("\r\n", "\n").split("\n"):
        opening = FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence) \
                    and not line.strip()[len(opening.group(1)):].strip():
                fence = ""
        elif opening:
            fence = opening.group(1)
        else:
            heading = HEADING.match(line)
            if heading:
                found.append((anchor(heading.group(2) or "", seen), []))
        found[-1][1].append(line)
    return [Section(key=key, text=normalize("\n".join(lines))) for key, lines in found
            if key != PREAMBLE or normalize("\n".join(lines))]


def literal_emphasis(markdown: str) -> int:
    """How many `**`/`__` markers CommonMark leaves as literal text (emphasis that did not close)."""
    count = 0
    for token in MarkdownIt("commonmark").parse(markdown):
        for child in token.children or []:
            if child.type == "text":
                count += child.content.count("**") + child.content.count("__")
    return count
