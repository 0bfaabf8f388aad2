"""The Python layout stays as docs/development.md describes it: no sys.path edits, helpers only from support.

The import path comes from pytest.ini's ``pythonpath`` (scripts/bench reads
the same line); a file that edits ``sys.path`` itself, or a test or
benchmark that imports another test module for its helpers, brings back
the tangle test/support/ replaced.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SYS_PATH_EDIT = re.compile(r"sys\.path\s*(\.insert|\.append|\.extend|\[[^\]]*\]\s*=|\+=)")
TEST_IMPORT = re.compile(r"^\s*(from|import)\s+test_\w+", re.M)
# the /new CGI runs under fcgiwrap with no PYTHONPATH: on the relay it adds its own install dir
RELAY_CGI = "chatmail/chatmaild/files/chatmaild/newemail.py"


def python_files() -> dict[str, str]:
    names = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "*.py", "scripts/*"], capture_output=True, check=True, text=True
    ).stdout.split("\0")
    found = {}
    for name in filter(None, names):
        path = REPO / name
        if "/snapshots/" in name or path.is_symlink() or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if name.endswith(".py") or text.startswith("#!/usr/bin/python") or "python3" in text.split("\n", 1)[0]:
            found[name] = text
    return found


def test_the_checks_see_the_files():
    files = python_files()
    assert "test/support/salt.py" in files and "scripts/pillar-reference" in files and "bench/fuzz.py" in files
    assert SYS_PATH_EDIT.search(files[RELAY_CGI])  # the one allowed, so the pattern matches what it must


def test_no_file_edits_sys_path():
    offenders = [name for name, text in python_files().items() if name != RELAY_CGI and SYS_PATH_EDIT.search(text)]
    assert offenders == [], "use pytest.ini's pythonpath (tests) or scripts/bench (benchmarks)"


def test_helpers_come_from_support_not_from_test_modules():
    offenders = [name for name, text in python_files().items() if TEST_IMPORT.search(text)]
    assert offenders == [], "move what is shared into test/support/"
