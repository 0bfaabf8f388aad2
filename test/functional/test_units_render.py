"""chatmaild systemd units: generated from one table, verified by systemd-analyze, commands really run."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

import pytest

from support.salt import REPO, render

LIB = "/usr/local/lib/chatmaild"
INI = f"{LIB}/chatmail.ini"
DAEMONS = {
    # Dovecot's three dict services, one process; each socket in its own runtime directory
    "chatmail-dicts": (
        "dictservices",
        f"{INI} doveauth=/run/doveauth/doveauth.socket lastlogin=/run/chatmail-lastlogin/lastlogin.socket "
        "metadata=/run/chatmail-metadata/metadata.socket",
        "doveauth chatmail-lastlogin chatmail-metadata",
        "0077",
    ),
    "filtermail": ("filtermail", f"{INI} outgoing incoming", None, None),  # both filters, one process
}
TEXTFILE_DIR = "/var/lib/chatmail-fsreport/"
JOBS = {
    "chatmail-expire": ("expire", f"{INI} --remove -v", "*-*-* 00:02:00"),
    "chatmail-fsreport": ("fsreport", f"{INI} --textfile {TEXTFILE_DIR}", "*-*-* 08:02:00"),
}


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    return render("chatmail.chatmaild.service", {"mail_domain": "chat.example.org"}, tmp_path_factory.mktemp("units"))


def unit_text(units, name):
    return units.files[f"/etc/systemd/system/{name}"]


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize("name", sorted(DAEMONS))
def test_daemon_units(units, name):
    module, args, runtime, umask = DAEMONS[name]
    d = directives(unit_text(units, f"{name}.service"))
    assert d["ExecStart"] == [f"/usr/bin/python3 -m chatmaild.{module} {args}"]
    # chatmail-metadata hands out TURN credentials made from the secret the turn state writes
    secret = ["CHATMAIL_TURN_SECRET=/etc/chatmail-turn/secret"] if name == "chatmail-dicts" else []
    # filtermail stores local mail through Dovecot's socket for it (the one the Dovecot state makes)
    # (and two malloc arenas for its 64 worker threads: idle memory, see units.yaml)
    lmtp = ["CHATMAIL_LMTP_SOCKET=/run/dovecot/chatmail-lmtp", "MALLOC_ARENA_MAX=2"] if module == "filtermail" else []
    assert d["Environment"] == [f"PYTHONPATH={LIB}", *secret, *lmtp]
    assert d["User"] == ["vmail"] and d["Restart"] == ["always"] and d["WantedBy"] == ["multi-user.target"]
    assert d.get("RuntimeDirectory") == ([runtime] if runtime else None)
    assert d.get("UMask") == ([umask] if umask else None)
    svc = units.state(f"chatmail-chatmaild-{name}-service-running")
    assert {"sls": "chatmail.chatmaild.config"} in svc["watch"] and {"sls": "chatmail.chatmaild.package"} in svc[
        "watch"
    ]
    assert {"file": f"chatmail-chatmaild-{name}-service-file-managed"} in svc["watch"]


@pytest.mark.parametrize("name", sorted(JOBS))
def test_daily_jobs(units, name):
    module, args, calendar = JOBS[name]
    service = directives(unit_text(units, f"{name}.service"))
    assert service["Type"] == ["oneshot"] and service["ExecStart"] == [f"/usr/bin/python3 -m chatmaild.{module} {args}"]
    assert "WantedBy" not in service  # started by its timer only
    timer = directives(unit_text(units, f"{name}.timer"))
    assert timer["OnCalendar"] == [calendar] and timer["Persistent"] == ["true"]
    assert units.state(f"chatmail-chatmaild-{name}-timer-service-running")["name"] == f"{name}.timer"
    assert f"chatmail-chatmaild-{name}-service-running" not in units.states


def test_fsreport_textfile_directory_is_its_own(units):
    """systemd makes /var/lib/chatmail-fsreport for vmail, readable by node_exporter."""
    service = directives(unit_text(units, "chatmail-fsreport.service"))
    assert service["StateDirectory"] == ["chatmail-fsreport"] and service["StateDirectoryMode"] == ["0755"]
    assert "StateDirectory" not in directives(unit_text(units, "chatmail-expire.service"))


def test_systemd_analyze_verify(units, tmp_path):
    names = [p.rsplit("/", 1)[1] for p in units.files if p.startswith("/etc/systemd/system/")]
    for name in names:
        units.write(f"/etc/systemd/system/{name}", tmp_path / name)
    proc = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in names)], capture_output=True, text=True
    )
    # Unknown users are fine on a host without vmail; anything else is a unit error.
    problems = [line for line in proc.stderr.splitlines() if line.strip() and "vmail" not in line]
    assert not problems, proc.stderr


def test_job_commands_really_run(units, tmp_path):
    """The jobs' ExecStart, with the ini moved to tmp, parses its arguments and succeeds."""
    (tmp_path / "mail").mkdir()
    ini = tmp_path / "chatmail.ini"
    ini.write_text(f"[params]\nmail_domain = chat.example.org\nmailboxes_dir = {tmp_path}/mail\n")
    env = dict(os.environ, PYTHONPATH=str(REPO / "chatmail/chatmaild/files"))
    (tmp_path / "state").mkdir()
    for name in JOBS:
        cmd = directives(unit_text(units, f"{name}.service"))["ExecStart"][0].replace(INI, str(ini))
        cmd = cmd.replace(TEXTFILE_DIR, f"{tmp_path}/state/")
        proc = subprocess.run(shlex.split(cmd), capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, (name, proc.stdout, proc.stderr)
    assert "chatmail_mailboxes 0" in (tmp_path / "state" / "fsreport.prom").read_text()


def test_stages_split_units_and_services(tmp_path):
    r = render("chatmail.chatmaild.service", {"mail_domain": "chat.example.org", "stages": ["configure"]}, tmp_path)
    assert "chatmail-chatmaild-services-skipped" in r.states and "/etc/systemd/system/chatmail-dicts.service" in r.files


def test_iroh_and_mtail_off_unless_wanted(tmp_path):
    """iroh_relay set -> no download, relay stopped; no mtail_address -> mtail stopped (design.md §9 #14)."""
    r = render("chatmail.iroh", {"mail_domain": "chat.example.org", "iroh_relay": ""}, tmp_path / "a")
    assert "chatmail-iroh-release-archive-extracted" not in r.states
    assert r.state("chatmail-iroh-service-dead") == {
        "name": "iroh-relay",
        "enable": False,
        "order": r.state("chatmail-iroh-service-dead")["order"],
    }
    r = render("chatmail.iroh", {"mail_domain": "chat.example.org"}, tmp_path / "b")  # render only: no download here
    src = r.state("chatmail-iroh-release-archive-extracted")
    assert src["source"].endswith("-unknown-linux-musl.tar.gz") and src["source_hash"].startswith("sha256=")
    assert "chatmail-iroh-service-running" in r.states
    r = render("chatmail.mtail", {"mail_domain": "chat.example.org"}, tmp_path / "c")
    assert "chatmail-mtail-service-dead" in r.states and not r.files


@pytest.mark.skipif(not shutil.which("mtail"), reason="needs Debian's mtail")
def test_mtail_program_counts_relay_log_lines(tmp_path):
    r = render("chatmail.mtail", {"mail_domain": "chat.example.org", "mtail_address": "127.0.0.1"}, tmp_path)
    assert "--address=127.0.0.1 --port=3903" in r.files["/etc/systemd/system/mtail.service"]
    progs = tmp_path / "progs"
    r.write("/etc/mtail/delivered_mail.mtail", progs / "delivered_mail.mtail")
    log = tmp_path / "journal.log"
    log.write_text(
        "t h doveauth[1]: Created address: ci-abc@x\nt h doveauth[1]: Created address: bob@x\n"
        "t h filtermail[1]: Outgoing: Filtering encrypted mail.\nt h dovecot: lmtp(bob@x)<1>: saved mail to INBOX\n"
        "t h filtermail[1]: Incoming: Filtering unencrypted mail.\n"
        "t h filtermail[1]: Incoming: cleartext accepted (mailer-daemon report).\n"
    )
    out = subprocess.run(
        ["mtail", "--one_shot", "--one_shot_format=prometheus", "--progs", str(progs), "--logs", str(log)],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    values = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in out.splitlines()
        if line and not line.startswith("#")
    }
    assert (
        values["created_accounts"] == 2 and values["created_ci_accounts"] == 1 and values["created_nonci_accounts"] == 1
    )
    assert values["encrypted_mail_count"] == 1 and values["filtered_mail_count"] == 2 and values["delivered_mail"] == 1
    assert values["incoming_mailer_daemon_mail_count"] == 1 and values["unencrypted_mail_count"] == 1
