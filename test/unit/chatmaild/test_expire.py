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
from chatmaild.expire import expire_to_target, run_expire
from support.storeseed import (
    DAY,
    DOMAIN,
    MAILBOXES,
    NOT_MAILBOXES,
    NOW,
    all_files,
    dovecot_name,
    seed_store,
    write_file,
    write_ini,
)

CHATMAILD_SRC = Path(__file__).resolve().parents[3] / "chatmail" / "chatmaild" / "files"
INACTIVE = f"inactive@{DOMAIN}"


def make_config(tmp_path: Path, root: Path, **settings):
    ini = write_ini(tmp_path / "chatmail.ini", root, **settings)
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


KB = 1024


def full_mailbox(tmp_path, now: float, ages_days: list[float], size: int = 10 * KB, folder: str = ""):
    """A mailbox of 100K quota holding one message per age, oldest first in ``ages_days``."""
    root = tmp_path / "mail"
    box = root / f"full@{DOMAIN}"
    write_file(box / "password", 5, now)
    write_file(box / "maildirsize", 20, now)
    paths = []
    for seq, age in enumerate(ages_days):
        when = int(now - age * DAY)
        mdir = "new" if seq % 2 else "cur"
        paths.append(box / folder / mdir / dovecot_name(when, seq, size, mdir))
        write_file(paths[-1], size, when)
    ini, config = make_config(tmp_path, root, max_mailbox_size="100K")
    return box, paths, ini, config


def test_quota_expiry_removes_the_oldest_down_to_the_target(tmp_path):
    now = NOW.timestamp()
    # 9 x 10K = 90K of 100K; 70 % is 71680 bytes: the two oldest go, wherever they sit
    box, paths, _, config = full_mailbox(tmp_path, now, [9, 2, 8, 3, 7, 4, 6, 5, 3.5])
    write_file(box / "tmp" / dovecot_name(int(now - 20 * DAY), 99, 0, "tmp"), 50 * KB, now - 20 * DAY)
    result = expire_to_target(config, f"full@{DOMAIN}", 70, now=now)
    assert result["files_removed"] == 2 and all(p.exists() for p in paths)  # dry run
    result = expire_to_target(config, f"full@{DOMAIN}", 70, remove=True, now=now)
    assert result["bytes_before"] == 90 * KB and result["bytes_after"] == 70 * KB == result["target_bytes"]
    assert [p.exists() for p in paths] == [False, True, False, True, True, True, True, True, True]
    assert not (box / "maildirsize").exists()  # Dovecot recounts
    assert (box / "tmp").is_dir() and any((box / "tmp").iterdir())  # tmp/ is not quota and not touched
    # at the target nothing more goes
    assert expire_to_target(config, f"full@{DOMAIN}", 70, remove=True, now=now)["files_removed"] == 0


def test_quota_expiry_counts_subfolders_and_keeps_the_last_day(tmp_path):
    now = NOW.timestamp()
    box, paths, _, config = full_mailbox(tmp_path, now, [3, 2, 0.9, 0.5, 0.1, 0.05, 0.01, 0, 0], folder=".DeltaChat")
    result = expire_to_target(config, f"full@{DOMAIN}", 70, remove=True, now=now)
    # only the two messages older than a day may go, though 7 x 10K is still above the target
    assert result["files_removed"] == 2 and result["bytes_after"] == 70 * KB
    assert [p.exists() for p in paths] == [False, False] + [True] * 7
    result = expire_to_target(config, f"full@{DOMAIN}", 50, remove=True, now=now)
    assert result["files_removed"] == 0 and result["bytes_after"] == 70 * KB > result["target_bytes"]


def test_quota_expiry_cli_as_dovecot_runs_it(tmp_path):
    now = datetime.now(timezone.utc).timestamp()
    box, paths, ini, _ = full_mailbox(tmp_path, now, [5, 4, 3, 2, 1.5, 1.2, 1.1, 1.05, 0])
    proc = run_cli(str(ini), "--remove", "--target-percent", "70", "--mailbox", f"full@{DOMAIN}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # Dovecot's script service: stdout is the socket, stderr its log
    assert proc.stderr.startswith(f"Removed 2 message files of {box}: 92160 -> 71680 bytes")
    assert [p.exists() for p in paths] == [False, False] + [True] * 7


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mailbox", "../etc"], "expected a mailbox address"),
        (["--mailbox", f"a/b@{DOMAIN}"], "expected a mailbox address"),
        (["--mailbox", f"x@{DOMAIN}", "--target-percent", "170"], "expected a percentage between 0 and 100"),
    ],
)
def test_quota_expiry_cli_refuses_bad_arguments(tmp_path, args, message):
    ini, _ = make_config(tmp_path, tmp_path / "mail")
    proc = run_cli(str(ini), "--remove", *args)
    assert proc.returncode == 2 and message in proc.stderr
