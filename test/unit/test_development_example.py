"""docs/development.md's worked example is the smallest component as it is in the repository.

The "Adding a component" section shows fcgiwrap's files whole; a change to
one of them that the page does not follow would teach the next component
an old pattern.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES = ["init.sls", "package.sls", "config.sls", "service.sls", "clean.sls"]


def blocks() -> list[str]:
    text = (REPO / "docs" / "development.md").read_text().split("## Adding a component", 1)[1]
    return re.findall(r"^```(?:sls|yaml)\n(.*?)^```$", text, re.M | re.S)


def test_every_file_of_the_smallest_component_is_shown_as_it_is():
    shown = blocks()
    for name in FILES:
        assert (REPO / "chatmail" / "fcgiwrap" / name).read_text() in shown, f"chatmail/fcgiwrap/{name}"


def test_its_table_entry_is_shown_as_it_is():
    (entry,) = [b for b in blocks() if b.startswith("fcgiwrap:")]
    assert entry in (REPO / "chatmail" / "parameters" / "defaults.yaml").read_text()


def test_it_is_the_smallest_component():
    """No other component with a service has fewer lines of SLS."""

    def size(folder: Path) -> int:
        return sum(len(p.read_text().splitlines()) for p in folder.glob("*.sls"))

    with_service = [p.parent for p in (REPO / "chatmail").glob("*/service.sls")]
    assert min(with_service, key=size).name == "fcgiwrap"
