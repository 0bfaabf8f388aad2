"""chatmail.backup (the timer SLS) rendered by a real masterless Salt."""

from __future__ import annotations

import json
import shlex

from support.salt import render

D = "chat.example.org"


def test_no_repository_no_timer(tmp_path):
    r = render("chatmail.backup", {"mail_domain": D}, tmp_path)
    assert not r.files
    assert "chatmail-backup-restic-pkg-installed" not in r.states
    assert "chatmail-backup-timer-service-dead" in r.states


def test_repository_gives_restic_a_timer_and_a_job_with_the_settings(tmp_path):
    pillar = {
        "mail_domain": D,
        "backup_repository": "sftp:backup@store.example.net:/srv/chatmail",
        "backup_schedule": "*-*-* 03:30:00",
        "backup_keep": 30,
        "tls_mode": "self_signed",
    }
    r = render("chatmail.backup", pillar, tmp_path)
    assert "chatmail-backup-restic-pkg-installed" in r.states
    assert "OnCalendar=*-*-* 03:30:00" in r.files["/etc/systemd/system/chatmail-backup.timer"]
    unit = r.files["/etc/systemd/system/chatmail-backup.service"]
    (exec_start,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start.partition("=")[2])
    assert argv[0] == "/usr/local/lib/chatmail-backup/salt-call" and "chatmail.backup" in argv
    settings = json.loads(argv[-1].partition("=")[2])
    assert settings["backup_repository"] == pillar["backup_repository"] and settings["backup_keep"] == 30
    assert settings["mail_domain"] == D and settings["tls_mode"] == "self_signed"
    assert r.files["/usr/local/lib/chatmail-backup/salt-call"].startswith("#!/")


def test_bad_schedule_and_repository_are_refused_by_name(salt_loaders):
    import pytest
    from salt.exceptions import CommandExecutionError

    with pytest.raises(CommandExecutionError) as err:
        salt_loaders.modules.chatmail.settings(
            {"mail_domain": D, "backup_repository": "backups/here", "backup_schedule": "daily; rm -rf /"}
        )
    assert "backup_repository: got 'backups/here'; expected an absolute directory or a restic repository URL" in str(
        err.value
    )
    assert "backup_schedule" in str(err.value) and "systemd calendar expression" in str(err.value)
