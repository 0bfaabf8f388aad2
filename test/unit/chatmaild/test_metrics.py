"""chatmail-metrics: account counts in Prometheus text format."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from chatmaild.metrics import count_accounts, render

CHATMAILD_SRC = Path(__file__).resolve().parents[3] / "chatmail" / "chatmaild" / "files"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*) ([0-9]+)$")


def parse_exposition(text: str) -> dict[str, dict]:
    """A strict reader of the text format subset we emit."""
    metrics: dict[str, dict] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert doc, line
            metrics.setdefault(name, {})["help"] = doc
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("gauge", "counter"), line
            metrics.setdefault(name, {})["type"] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            entry = metrics[match.group(1)]  # HELP/TYPE came first
            entry["value"] = int(match.group(2))
    return metrics


def make_store(root: Path) -> None:
    for name in ("a1@x.org", "b2@x.org", "ci-x@x.org", "ac_y@x.org"):
        (root / name / "cur").mkdir(parents=True)
    (root / "nocur@x.org").mkdir()  # never opened by Dovecot: not counted
    (root / "pending_notifications").mkdir()
    (root / "file@x.org").write_text("")


def test_counts_and_format(tmp_path):
    make_store(tmp_path)
    metrics = parse_exposition(render(count_accounts(tmp_path)))
    assert {k: v["value"] for k, v in metrics.items()} == {"accounts": 4, "ci_accounts": 2, "nonci_accounts": 2}
    assert all(v["type"] == "gauge" and v["help"] for v in metrics.values())


def test_cli_with_dir_and_with_ini(tmp_path):
    root = tmp_path / "mb"
    make_store(root)
    ini = tmp_path / "chatmail.ini"
    ini.write_text(f"[params]\nmail_domain = x.org\nmailboxes_dir = {root}\n")
    env = dict(os.environ, PYTHONPATH=str(CHATMAILD_SRC))
    outputs = []
    for arg in (root, ini):
        proc = subprocess.run(
            [sys.executable, "-m", "chatmaild.metrics", str(arg)], capture_output=True, text=True, env=env, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert parse_exposition(outputs[0])["accounts"]["value"] == 4


def test_missing_dir_counts_zero(tmp_path):
    assert count_accounts(tmp_path / "absent") == {"accounts": 0, "ci_accounts": 0, "nonci_accounts": 0}
