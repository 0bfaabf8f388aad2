"""chatmail.status / chatmail.ports through Salt's loader, on this host.

This host has no systemd and no relay daemons running, which is what the
test wants to see handled: services come back "unknown" with the reason,
ports as not listening, nothing raises.  The parts with files are pointed
at tmp (a real self-signed certificate made with openssl, a mailbox tree,
the version file), and a real listener (a ``python3`` child) on the
configured filtermail port shows up as a foreign holder.
"""

from __future__ import annotations

import subprocess

import pytest

from support.freeports import free_port
from support.salt import self_signed_cert

DOMAIN = "chat.example.org"
KEYS = {
    "domain",
    "services",
    "ports",
    "certificate",
    "mail_queue",
    "accounts",
    "mail_store",
    "version",
    "privacy",
    "disable_mail",
    "ok",
}


@pytest.fixture
def relay_files(tmp_path) -> dict:
    cert, key = self_signed_cert(tmp_path, DOMAIN, days=30)
    mail = tmp_path / "mail"
    for user in ("a1", "b2", "c3"):
        box = mail / f"{user}@{DOMAIN}" / "cur"
        box.mkdir(parents=True)
        (box / "msg").write_bytes(b"x" * 5000)
    (mail / "not-an-account").mkdir()
    version = tmp_path / "chatmail-version"
    version.write_text("0123abcd\ndiff --git a/x b/x\n")
    return {"cert": cert, "key": key, "mail": mail, "version": version}


@pytest.fixture
def chatmail(salt_loaders, relay_files):
    salt_loaders.opts["chatmail.version_file"] = str(relay_files["version"])
    yield salt_loaders.modules.chatmail
    salt_loaders.opts.pop("chatmail.version_file", None)


def pillar(files: dict, **extra) -> dict:
    return {
        "mail_domain": DOMAIN,
        "tls_mode": "external",
        "tls_cert_file": str(files["cert"]),
        "tls_key_file": str(files["key"]),
        "mailboxes_dir": str(files["mail"]),
        **extra,
    }


@pytest.fixture
def listener():
    """A python3 process listening on a free loopback port; yields (port, process)."""
    port = free_port()
    code = (
        "import socket,sys,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        f"s.bind(('127.0.0.1',{port}));s.listen();print('up',flush=True);time.sleep(300)"
    )
    proc = subprocess.Popen(["python3", "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    yield port, proc
    proc.kill()
    proc.wait()


def test_status_answers_every_item_without_systemd(chatmail, relay_files):
    result = chatmail.status(pillar(relay_files, privacy_mail=f"privacy@{DOMAIN}"))
    assert set(result) == KEYS
    assert result["domain"] == DOMAIN

    units = {row["unit"]: row for row in result["services"]}
    assert {"postfix@-.service", "dovecot.service", "filtermail.service", "coturn.service"} <= set(units)
    assert units["iroh-relay.service"]["expected"] == "active"  # iroh_relay absent: local relay
    assert units["acmetool-redirector.service"]["expected"] == "inactive"  # tls_mode external
    for row in units.values():
        assert row["state"] in {"active", "inactive", "failed", "unknown", "activating", "deactivating"}

    cert = result["certificate"]
    assert cert["state"] == "valid" and cert["days_left"] in (29, 30)
    assert result["accounts"] == {"dir": str(relay_files["mail"]), "state": "ok", "count": 3}
    store = result["mail_store"]
    assert store["state"] == "ok" and store["used_bytes"] >= 3 * 5000
    assert result["version"]["revision"] == "0123abcd" and result["version"]["local_changes"] is True
    assert result["privacy"]["state"] == "present"
    assert result["mail_queue"]["state"] in {"ok", "unknown", "not installed"}
    if result["mail_queue"]["state"] == "ok":
        assert result["mail_queue"]["length"] >= 0


def test_status_degrades_when_things_are_absent(chatmail, tmp_path, salt_loaders):
    salt_loaders.opts["chatmail.version_file"] = str(tmp_path / "nothing")
    result = chatmail.status(
        {
            "mail_domain": DOMAIN,
            "tls_mode": "external",
            "tls_cert_file": str(tmp_path / "none.pem"),
            "tls_key_file": str(tmp_path / "none.key"),
            "mailboxes_dir": str(tmp_path / "nomail"),
        }
    )
    assert set(result) == KEYS
    assert result["certificate"]["state"] == "missing"
    assert result["accounts"]["state"] == "missing" and result["mail_store"]["state"] == "missing"
    assert result["version"]["state"] == "missing"
    assert result["privacy"]["state"] == "missing"
    assert result["ok"] is False


def test_status_names_a_foreign_listener_on_a_relay_port(chatmail, relay_files, listener):
    port, proc = listener
    result = chatmail.status(pillar(relay_files, filtermail_smtp_port=port))
    (row,) = [r for r in result["ports"] if r["port"] == port]
    assert row["listening"] is False and row["ok"] is False
    assert row["foreign"] == ["python3"]
    proc.kill()
    proc.wait()
    (row,) = [r for r in chatmail.status(pillar(relay_files, filtermail_smtp_port=port))["ports"] if r["port"] == port]
    assert row["held_by"] == [] and row["ok"] is False  # free, but filtermail should be there


def test_disable_mail_expects_postfix_and_dovecot_stopped(chatmail, relay_files):
    result = chatmail.status(pillar(relay_files, disable_mail=True))
    units = {row["unit"]: row["expected"] for row in result["services"]}
    assert units["postfix@-.service"] == units["dovecot.service"] == "inactive"
    assert units["nginx.service"] == "active"
    ports = {row["port"]: row for row in chatmail.ports(pillar(relay_files, disable_mail=True))}
    assert ports[25]["expect_listening"] is False and ports[25]["precheck"] is True
    assert ports[443]["expect_listening"] is True


def test_port_table_uses_configured_ports(chatmail, relay_files):
    rows = chatmail.ports(
        pillar(relay_files, postfix_reinject_port=11025, filtermail_smtp_port_incoming=11081, mtail_address="127.0.0.1")
    )
    by_port = {row["port"]: row for row in rows}
    assert (
        by_port[11025]["process_names"] == ["master", "smtpd"] and by_port[11025]["setting"] == "postfix_reinject_port"
    )
    # filtermail.service runs both filters; the incoming filter's old unit may still hold the port
    assert by_port[11081]["units"] == ["filtermail.service", "filtermail-incoming.service"]
    assert 10025 not in by_port and 10081 not in by_port
    assert by_port[3903]["needed"] is True and by_port[3903]["precheck"] is False
    assert by_port[80]["needed"] is False  # no ACME redirector with tls_mode external


@pytest.mark.parametrize(("osfinger", "master"), [("Debian-12", "postfix@-.service"), ("Debian-13", "postfix.service")])
def test_status_expects_the_postfix_master_unit_of_the_release(chatmail, relay_files, salt_loaders, osfinger, master):
    """Debian 12 runs Postfix's master in postfix@-, Debian 13 in postfix.service (no postfix@- there):
    status expects the release's unit active, and lists each unit once."""
    grains = salt_loaders.opts.setdefault("grains", {})
    saved = grains.get("osfinger")
    grains["osfinger"] = osfinger
    try:
        rows = chatmail.status(pillar(relay_files))["services"]
    finally:
        grains["osfinger"] = saved
    units = [row["unit"] for row in rows]
    assert len(units) == len(set(units))
    assert master in units and {row["unit"]: row["expected"] for row in rows}[master] == "active"
    if osfinger == "Debian-13":
        assert "postfix@-.service" not in units
