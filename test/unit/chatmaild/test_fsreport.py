"""chatmail-fsreport figures checked against the seed's own tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatmaild.config import read_config
from chatmaild.fsreport import human_size, render, run_fsreport
from support.storeseed import DOMAIN, EXTRAS, MAILBOXES, MESSAGES, NOW, PASSWORD_TEXT, seed_store, write_ini

CHATMAILD_SRC = Path(__file__).resolve().parents[3] / "chatmail" / "chatmaild" / "files"


@pytest.fixture
def seeded(tmp_path):
    root = tmp_path / "mail" / DOMAIN
    seed_store(root)
    ini = write_ini(tmp_path / "chatmail.ini", root)
    return root, ini, read_config(ini)


def message_bytes(min_size=0, mdir=None, min_login_age=0):
    """Sum from the seed table: mailboxes with a login at least min_login_age days back."""
    return sum(
        size
        for mailbox, folder, _, _, size, _ in MESSAGES
        if size >= min_size
        and MAILBOXES[mailbox] is not None
        and MAILBOXES[mailbox] >= min_login_age
        and (mdir is None or folder.rsplit("/", 1)[-1] == mdir)
    )


def test_totals_match_the_seed(seeded):
    _, _, config = seeded
    report = run_fsreport(config, now=NOW)
    size_messages = sum(row[4] for row in MESSAGES)
    passwords = sum(1 for age in MAILBOXES.values() if age is not None)
    size_extra = sum(size for _, _, size in EXTRAS) + passwords * len(PASSWORD_TEXT)
    assert report["mailboxes"] == len(MAILBOXES) + 2  # + empty@ and fresh@
    assert report["messages"] == len(MESSAGES)
    assert report["messages_by_mdir"] == {
        d: sum(1 for row in MESSAGES if row[1].endswith(d)) for d in ("cur", "new", "tmp")
    }
    assert report["size_messages"] == size_messages
    assert report["size_extra"] == size_extra
    assert report["size_total"] == size_messages + size_extra
    assert report["extra_files"] == len(EXTRAS) + passwords
    assert report["extra_percent"] == round(size_extra / (size_messages + size_extra) * 100, 2)


def test_size_buckets(seeded):
    _, _, config = seeded
    report = run_fsreport(config, now=NOW)
    total = report["size_messages"]
    buckets = {b["min_size"]: b for b in report["size_buckets"]}
    assert list(buckets) == [0, 160000, 500000, 2000000]
    for minsize, bucket in buckets.items():
        assert bucket["bytes"] == message_bytes(minsize)
        assert bucket["percent"] == round(bucket["bytes"] / total * 100, 2)
    # nopass@ has no login, so its messages are in no bucket
    assert buckets[0]["bytes"] < total


def test_mdir_and_min_login_age_filter_the_buckets(seeded):
    _, _, config = seeded
    cur = run_fsreport(config, now=NOW, mdir="cur")
    assert [b["bytes"] for b in cur["size_buckets"]] == [message_bytes(s, "cur") for s in (0, 160000, 500000, 2000000)]
    old = run_fsreport(config, now=NOW, min_login_age=30)
    assert old["size_buckets"][0]["bytes"] == message_bytes(0, min_login_age=30) > 0
    assert old["size_buckets"][0]["bytes"] < message_bytes(0)
    with pytest.raises(ValueError):
        run_fsreport(config, mdir="Trash")


def test_login_stats(seeded):
    _, _, config = seeded
    logins = run_fsreport(config, now=NOW)["logins"]
    assert logins["all"] == 4 and logins["ci"] == 1 and logins["nonci"] == 3
    # non-CI logins 1, 35 and 100 days ago
    active = {w["days"]: w["count"] for w in logins["active"]}
    assert active == {1: 1, 10: 1, 30: 1, 40: 2, 80: 2, 100: 3, 150: 3}
    assert logins["active"][0]["percent"] == round(100 / 3, 2)
    # ten days later, yesterday's login is 11 days old
    later = {w["days"]: w["count"] for w in run_fsreport(config, now=NOW, days=10)["logins"]["active"]}
    assert later[1] == 0 and later[30] == 1 and later[40] == 1


def test_render_is_readable(seeded):
    _, _, config = seeded
    text = render(run_fsreport(config, now=NOW, mdir="cur"))
    assert "Mailbox data total size:" in text
    assert "[cur] at least 500.00K" not in text  # sizes use the decimal formatter
    assert f"[cur] at least {human_size(500000)}" in text
    assert "last 150 days: 3 (100.00%)" in text


def test_human_size():
    assert human_size(999) == " 1.00K"
    assert human_size(160000) == "  160K"
    assert human_size(2_500_000) == "    2M"
    assert human_size(3_210_000_000) == " 3.21G"


def test_cli_json(seeded, tmp_path):
    _, ini, _ = seeded
    env = dict(os.environ, PYTHONPATH=str(CHATMAILD_SRC))
    proc = subprocess.run(
        [sys.executable, "-m", "chatmaild.fsreport", str(ini), "--json", "--mdir", "new"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["messages"] == len(MESSAGES) and report["mdir"] == "new"
    proc = subprocess.run(
        [sys.executable, "-m", "chatmaild.fsreport", str(ini)], capture_output=True, text=True, env=env, timeout=60
    )
    assert "## Login stats" in proc.stdout


def test_missing_store(tmp_path):
    ini = tmp_path / "chatmail.ini"
    ini.write_text(f"[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {tmp_path / 'absent'}\n")
    report = run_fsreport(read_config(ini))
    assert report["mailboxes"] == 0 and report["size_total"] == 0


def test_cli_writes_prometheus_textfile_beside_the_text_report(seeded, tmp_path):
    """--textfile DIR: the text report still goes to stdout, DIR/fsreport.prom parses as Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    _, ini, config = seeded
    outdir = tmp_path / "textfile"
    outdir.mkdir()
    env = dict(os.environ, PYTHONPATH=str(CHATMAILD_SRC))
    proc = subprocess.run(
        [sys.executable, "-m", "chatmaild.fsreport", str(ini), "--textfile", str(outdir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "## Login stats" in proc.stdout
    prom = outdir / "fsreport.prom"
    assert oct(prom.stat().st_mode & 0o777) == "0o644" and list(outdir.iterdir()) == [prom]  # no temp file left
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(prom.read_text())
        for s in family.samples
    }
    report = run_fsreport(config)
    assert samples[("chatmail_storage_bytes", (("kind", "total"),))] == report["size_total"]
    assert samples[("chatmail_mailboxes", ())] == len(MAILBOXES) + 2
    assert samples[("chatmail_accounts", (("kind", "user"),))] == 3
    assert samples[("chatmail_accounts", (("kind", "ci"),))] == 1
    assert samples[("chatmail_messages_bytes", (("min_size", "160000"),))] == message_bytes(160000)
    counted = sum(1 for m, _, _, _, size, _ in MESSAGES if size >= 160000 and MAILBOXES[m] is not None)
    assert samples[("chatmail_messages_count", (("min_size", "160000"),))] == counted
    active = {w["days"]: w["count"] for w in report["logins"]["active"]}  # relative to the real clock
    assert samples[("chatmail_accounts_active", (("days", "150"),))] == active[150]
