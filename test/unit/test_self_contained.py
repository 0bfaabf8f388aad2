"""The repository explains itself: no file points outside it, every design citation resolves.

Code, tests and docs cite docs/design.md as ``design.md §N.N`` (or ``§N #M``
for an item of its defects table).  A citation of a section that design.md
does not have, a citation of the old outside document ("spec N.N"), or a path
into a directory beside the checkout leaves a maintainer who cloned only
this repository without an answer.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DESIGN = REPO / "docs" / "design.md"

# Built from pieces so that this file does not match itself.
OUTSIDE = ("../" + "shared", "/work/" + "shared", "shared/" + "notes", "shared/" + "spec")
HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)*)[. ]", re.M)
CITATION = re.compile(r"design\.md\s*§\s*(\d+(?:\.\d+)*)(?:\s*#(\d+))?")
OLD_CITATION = re.compile(r"\bspec(?:\s+section)?\s+\d|\bsection \d+(?:\.\d+)* of the spec")
DEFECT_ROW = re.compile(r"^\| (\d+) \|", re.M)


def tracked_texts() -> dict[str, str]:
    names = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True, text=True
    ).stdout.split("\0")
    texts = {}
    for name in filter(None, names):
        path = REPO / name
        if path.is_symlink() or not path.is_file():
            continue
        try:
            texts[name] = path.read_text()
        except UnicodeDecodeError:
            continue  # binary
    return texts


def design_sections() -> set[str]:
    return set(HEADING.findall(DESIGN.read_text()))


def defect_items() -> set[str]:
    text = DESIGN.read_text()
    chapter = text[text.index("\n## 9.") : text.index("\n## 10.")]
    return set(DEFECT_ROW.findall(chapter))


def test_design_has_the_cited_chapters():
    sections = design_sections()
    assert {"0.4", "2.2", "4.4", "5.0.1", "5.6", "8.5", "8.7", "9"} <= sections
    assert {str(n) for n in range(1, 18)} <= defect_items()


def test_no_file_points_outside_the_repository():
    found = [
        f"{name}:{n}: {line.strip()}"
        for name, text in tracked_texts().items()
        for n, line in enumerate(text.splitlines(), 1)
        if any(marker in line for marker in OUTSIDE)
    ]
    assert not found, "files point outside the repository:\n" + "\n".join(found)


def test_no_citation_of_the_outside_document():
    found = [
        f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)!r}"
        for name, text in tracked_texts().items()
        if name != "test/unit/test_self_contained.py"
        for match in OLD_CITATION.finditer(text)
    ]
    assert not found, "cite docs/design.md (design.md §N.N) instead:\n" + "\n".join(found)


def test_every_design_citation_resolves():
    sections, items = design_sections(), defect_items()
    bad = []
    for name, text in tracked_texts().items():
        if name == "test/unit/test_self_contained.py":
            continue  # its examples are made up on purpose
        for match in CITATION.finditer(text):
            section, item = match.groups()
            if section not in sections or (item and (section != "9" or item not in items)):
                line = text.count("\n", 0, match.start()) + 1
                bad.append(f"{name}:{line}: {match.group(0)}")
    assert not bad, "design.md has no such section:\n" + "\n".join(bad)


def test_citation_pattern_catches_a_missing_section():
    """The check above can fail: a made-up section is reported."""
    sections = design_sections()
    cited = CITATION.search("see design.md §4.99").group(1)
    assert cited not in sections
    assert OLD_CITATION.search("as in spec 4.4")
