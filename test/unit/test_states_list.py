"""docs/states.md names every SLS a user can apply, and only those; every component has a page.

An SLS that is not in the list is one an operator cannot find; a listed one
that is gone sends them to an error.  Each component folder of the state
tree has its page under docs/components/.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STATES = REPO / "chatmail"
LISTED = re.compile(r"^\| `(chatmail(?:\.[a-z0-9_]+)*)` \|", re.M)


def sls_names() -> set[str]:
    names = set()
    for path in STATES.rglob("*.sls"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "init":
            parts = parts[:-1]
        names.add(".".join(parts))
    return names


def listed_names() -> list[str]:
    return LISTED.findall((REPO / "docs" / "states.md").read_text())


def components() -> set[str]:
    return {path.parent.name for path in STATES.glob("*/init.sls")}


def test_every_sls_is_listed_once_and_nothing_else():
    listed = listed_names()
    assert sorted(set(listed)) == sorted(listed), "listed twice"
    assert sls_names() - set(listed) == set(), "SLS files missing from docs/states.md"
    assert set(listed) - sls_names() == set(), "docs/states.md lists SLS that do not exist"


def test_the_list_finds_the_top_and_the_stage_files():
    """The names are derived as Salt does (init.sls is its folder): the check can fail."""
    names = sls_names()
    assert {"chatmail", "chatmail.clean", "chatmail.postfix", "chatmail.postfix.config"} <= names
    assert "chatmail.postfix.init" not in names


def test_every_component_has_a_page():
    missing = sorted(c for c in components() if not (REPO / "docs" / "components" / f"{c}.md").is_file())
    assert not missing, f"no docs/components/<name>.md for: {missing}"
