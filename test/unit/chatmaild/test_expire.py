"""chatmail-expire on the seeded store: exactly the expected files go."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from chatmaild.config import read_config
from chatmaild.expire import run_expire
from test_mailstore import DOMAIN, MAILBOXES, NOT_MAILBOXES, NOW, all_files, dovecot_name, seed_store, write_file

CHATMAILD_SRC = Path(__file__).resolve().parents[3] / "chatmail" / "chatmaild" / "files"
INACTIVE = f"inactive@{DOMAIN}"


def make_config(tmp_path: Path, root: Path, **settings):
    ini = tmp_path / "chatmail.ini"
    lines = ["[params]", f"mail_domain = {DOMAIN}", f"mailboxes_dir = {root}"]
    lines += [f"{k} = {v}" for k, v in settings.items()]
    ini.write_text("\n".join(lines) + "\n")
    return ini, read_config(ini)


@pytest.fixture
def seeded(tmp_path):
    root = tmp_path / "mail" / DOMAIN
    messages = seed_store(root)
    ini, config = make_config(tmp_path, root)
    return root, messages, ini, config


def expected_removals(messages):
    return {p for p, row in messages.items() if row["fate"] in ("old", "large")}


def test_dry_run_counts_but_removes_nothing(seeded):
    root, messages, _, config = seeded
    before = all_files(root)
    result = run_expire(config, now=NOW)
    assert all_files(root) == before
    assert (root / f"empty@{DOMAIN}").is_dir()
    removals = expected_removals(messages)
    assert result["dry_run"] is True
    assert result["files_examined"] == len(messages)
    assert result["files_removed"] == len(removals)
    assert result["mailboxes_removed"] == 1
    assert result["empty_mailboxes_removed"] == 1
    assert result["mailboxes_examined"] == len(MAILBOXES) + 2
    in_inactive = [row["size"] for row in messages.values() if row["fate"] == "mailbox"]
    assert result["files_in_removed_mailboxes"] == len(in_inactive)
    assert result["bytes_freed"] == sum(messages[p]["size"] for p in removals) + sum(in_inactive)
    assert result["now"] == NOW.isoformat()


def test_remove_takes_exactly_the_expected_files(seeded):
    root, messages, _, config = seeded
    before = all_files(root)
    log = []
    result = run_expire(config, remove=True, now=NOW, log=log.append)
    after = all_files(root)
    removed = before - after
    inactive_files = {p for p in before if p.startswith(str(root / INACTIVE) + "/")}
    expected = expected_removals(messages) | inactive_files | {str(root / f"active@{DOMAIN}" / "maildirsize")}
    # nopass@ lost a message too, but has no maildirsize to drop
    assert removed == expected
    assert not (root / INACTIVE).exists()
    assert not (root / f"empty@{DOMAIN}").exists()
    assert (root / f"fresh@{DOMAIN}").is_dir()  # may be mid-creation
    assert (root / f"nopass@{DOMAIN}").is_dir()  # no password: never removed as inactive
    assert (root / f"quiet@{DOMAIN}" / "maildirsize").exists()  # nothing removed there
    for rel in NOT_MAILBOXES:
        assert (root / rel).exists()
    assert result["dry_run"] is False and result["errors"] == 0
    assert result["files_removed"] == len(expected_removals(messages))
    assert any(line.startswith("removing inactive mailbox") for line in log)
    assert sum(1 for line in log if line.startswith("removing 20")) == result["files_removed"]
    # idempotent: a second run finds nothing more
    again = run_expire(config, remove=True, now=NOW)
    assert again["files_removed"] == again["mailboxes_removed"] == 0
    assert all_files(root) == after


def test_days_offset_ages_the_store(seeded):
    root, messages, _, config = seeded
    result = run_expire(config, remove=True, now=NOW, days=200)
    # every mailbox with a password is now inactive, fresh@ is now an old empty dir;
    # nopass@ loses all messages but stays
    survivors = sorted(p.name for p in root.iterdir() if "@" in p.name)
    assert survivors == [f"nopass@{DOMAIN}"]
    assert result["mailboxes_removed"] == sum(1 for age in MAILBOXES.values() if age is not None)
    left = {os.path.relpath(p, root) for p in all_files(root)}
    assert left == {f"nopass@{DOMAIN}/dovecot.index", *NOT_MAILBOXES}


def test_settings_come_from_the_config(tmp_path):
    root = tmp_path / "mb"
    seed_store(root)
    _, config = make_config(
        tmp_path, root, delete_mails_after=60, delete_large_after=40, delete_inactive_users_after=400
    )
    result = run_expire(config, now=NOW)
    assert result["files_removed"] == 0 and result["mailboxes_removed"] == 0


def test_maxnum_limits_mailboxes(seeded):
    _, _, _, config = seeded
    assert run_expire(config, now=NOW, maxnum=3)["mailboxes_examined"] == 3


def test_missing_store_is_not_an_error(tmp_path):
    _, config = make_config(tmp_path, tmp_path / "absent")
    log = []
    result = run_expire(config, remove=True, log=log.append)
    assert result["mailboxes_examined"] == 0 and log == [f"no mailboxes found at {tmp_path / 'absent'}"]


def run_cli(*args, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(CHATMAILD_SRC), **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "chatmaild.expire", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_cli_json_and_text(tmp_path):
    # seeded relative to the real clock: the CLI has no --now
    root = tmp_path / "mail"
    messages = seed_store(root, now=datetime.now(timezone.utc))
    ini, _ = make_config(tmp_path, root)
    proc = run_cli(str(ini), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["files_removed"] == len(expected_removals(messages)) and result["dry_run"] is True
    proc = run_cli(str(ini), "-v", "--remove")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Removed 1 of {len(MAILBOXES) + 2} mailboxes")
    assert "removing inactive mailbox" in proc.stderr
    assert not (root / INACTIVE).exists()
    assert all(not os.path.exists(p) for p in expected_removals(messages))


@pytest.mark.parametrize("tz", ["Etc/GMT-14", "Etc/GMT+12"])
def test_age_does_not_depend_on_host_timezone(tmp_path, tz):
    """Spec 9 #10: a naive-UTC 'now' is off by the host's UTC offset."""
    root = tmp_path / "mail"
    t = datetime.now(timezone.utc).timestamp()
    box = root / f"tz@{DOMAIN}"
    write_file(box / "password", 5, t)
    hours = 3600
    for seq, age in enumerate((20 * 86400 - 6 * hours, 20 * 86400 + 6 * hours)):
        write_file(box / "cur" / dovecot_name(int(t - age), seq, 10, "cur"), 10, t - age)
    ini, _ = make_config(tmp_path, root)
    proc = run_cli(str(ini), "--json", env_extra={"TZ": tz})
    assert json.loads(proc.stdout)["files_removed"] == 1


def test_days_offset_spares_a_mailbox_dir_being_created_right_now(tmp_path):
    root = tmp_path / "mail"
    (root / f"new@{DOMAIN}").mkdir(parents=True)  # doveauth is about to write the password
    _, config = make_config(tmp_path, root)
    result = run_expire(config, remove=True, days=30)
    assert result["empty_mailboxes_removed"] == 0 and (root / f"new@{DOMAIN}").is_dir()
