"""/etc/chatmail-version from every way the formula arrives, and never an ERROR line.

``chatmail.version`` is rendered through a real masterless ``salt-call``
whose file_roots is, in turn, this git checkout, a tarball-like copy
(no ``.git``), a copy with the ``chatmail/VERSION`` that
scripts/install-relay writes, and a tree without FORMULA.  Salt's console
log (level warning) goes to stderr: it must hold no ERROR.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from support.salt import REPO, call, minion_dir

MARKER = "/etc/chatmail-version"
PILLAR = {"mail_domain": "chat.example.org"}


def marker(tmp: Path, file_root: Path) -> tuple[str, str]:
    """(text chatmail.version would write, salt-call's stderr) with ``file_root`` as the only file root."""
    conf = minion_dir(tmp, PILLAR, file_roots=[file_root], serve_repo=False)
    result = call(conf, "rendertest.render", "chatmail.version")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.data["files"][MARKER], result.stderr


def tarball_tree(tmp: Path, with_formula: bool = True) -> Path:
    """The formula as a release tarball unpacks: the state tree and FORMULA, no .git."""
    root = tmp / "tree"
    shutil.copytree(REPO / "chatmail", root / "chatmail", ignore=shutil.ignore_patterns("VERSION", "__pycache__"))
    if with_formula:
        shutil.copy(REPO / "FORMULA", root / "FORMULA")
    return root


def formula_version() -> str:
    fields = yaml.safe_load((REPO / "FORMULA").read_text())
    return f"{fields['version']}-{fields['release']}"


def test_git_checkout_gives_its_commit(tmp_path):
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not run from a git checkout")
    text, stderr = marker(tmp_path, REPO)
    assert text.splitlines()[0] == head.stdout.strip()
    assert "ERROR" not in stderr, stderr


def test_tarball_gives_the_formula_version(tmp_path):
    text, stderr = marker(tmp_path, tarball_tree(tmp_path))
    assert text == f"{formula_version()} (FORMULA, no git revision)\n"
    assert "ERROR" not in stderr, stderr


def test_version_file_written_by_the_installer_wins(tmp_path):
    root = tarball_tree(tmp_path)
    (root / "chatmail" / "VERSION").write_text("0123abc\n--- local change\n")
    text, stderr = marker(tmp_path, root)
    assert text == "0123abc\n--- local change\n"
    assert "ERROR" not in stderr, stderr


def test_tree_without_formula_file_says_unknown(tmp_path):
    text, stderr = marker(tmp_path, tarball_tree(tmp_path, with_formula=False))
    assert text == "unknown\n"
    assert "ERROR" not in stderr, stderr
