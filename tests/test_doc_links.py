"""Every relative link in the README and the guides points at a file that exists and, with a `#fragment`,
at a heading that exists there (GitHub's anchors), so a renamed section or document fails here."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from course_lib.config import REPO_ROOT

DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "exercises" / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file, repeated headings numbered as GitHub does."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", path.read_text(encoding="utf-8")), re.M):
        base = slug(heading)
        found.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def relative_links(path: Path) -> list[str]:
    """The document's links outside code blocks that are not URLs."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return [link for link in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", link)]


def test_slugs_follow_github() -> None:
    assert slug("17. `/recommendations` use no features after `course materialize`") == (
        "17-recommendations-use-no-features-after-course-materialize")
    assert slug("Korean edition (한국어판)") == "korean-edition-한국어판"
    assert slug("15. Deleting a feature view also deletes a *similarly named* project's Redis rows") == (
        "15-deleting-a-feature-view-also-deletes-a-similarly-named-projects-redis-rows")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    broken = []
    for link in relative_links(document):
        target, _, fragment = link.partition("#")
        path = (document.parent / target).resolve() if target else document
        if not path.exists():
            broken.append(f"{link}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{link}: {path.name} has no heading with that anchor")
    assert not broken, f"{document.relative_to(REPO_ROOT)}: " + "; ".join(broken)
