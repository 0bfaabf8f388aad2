"""The chatmail.ini of cmdeploy 1.12 (test/data/chatmail-1.12.ini) renders as it is.

The file goes through the chatmail_ini ext_pillar's reader unchanged (values
stay strings), and the configs it yields are judged by Postfix's and
Dovecot's own checkers: each upstream key lands where 1.12's docs say.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from chatmaild.config import parse_ini
from support.salt import REPO, render

INI = REPO / "test" / "data" / "chatmail-1.12.ini"
pytestmark = pytest.mark.skipif(
    not (shutil.which("postconf") and shutil.which("doveconf")), reason="needs Debian's postfix and dovecot-core"
)


@pytest.fixture(scope="module")
def pillar():
    return parse_ini(INI.read_text())


def run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def test_postfix(pillar, tmp_path):
    r = render("chatmail.postfix", pillar, tmp_path / "render")
    for name in ("main.cf", "master.cf"):
        r.write(f"/etc/postfix/{name}", tmp_path / name)
    run("postfix", "-c", str(tmp_path), "check")
    main = dict(
        line.split(" = ", 1) for line in run("postconf", "-c", str(tmp_path), "-n").splitlines() if " = " in line
    )
    assert main["message_size_limit"] == "20971520"
    assert main["inet_protocols"] == "ipv4"
    assert (main["smtpd_tls_cert_file"], main["smtpd_tls_key_file"]) == (
        "/etc/ssl/chat/fullchain.pem",
        "/etc/ssl/chat/privkey.pem",
    )
    rows = {
        f"{r[0]}/{r[1]}": r
        for r in (line.split() for line in run("postconf", "-c", str(tmp_path), "-Mf").splitlines())
        if r
    }
    assert rows["submission/inet"][6] == rows["smtps/inet"][6] == "500"
    params = run("postconf", "-c", str(tmp_path), "-P")
    assert "submission/inet/smtpd_client_connection_count_limit = 100" in params
    assert "smtps/inet/smtpd_client_connection_count_limit = 100" in params


def test_dovecot(pillar, tmp_path):
    r = render("chatmail.dovecot", pillar, tmp_path / "render")
    conf = r.write("/etc/dovecot/dovecot.conf", tmp_path / "dovecot.conf")
    doveconf = lambda *a: run("doveconf", "-c", str(conf), *a)  # noqa: E731
    assert "process_limit = 4000" in doveconf("service/imap")
    assert doveconf("-h", "mail_server_admin").strip() == "mailto:privacy@example.org"
    assert doveconf("-h", "ssl_cert").strip() == "</etc/ssl/chat/fullchain.pem"
    assert "quota_rule = *:storage=1G" in doveconf("plugin")


def test_tls_is_external_and_services_get_the_ini(pillar, tmp_path):
    r = render("chatmail.tls", pillar, tmp_path / "tls")
    assert r.state("chatmail-tls-external-cert-file-exists")["name"] == "/etc/ssl/chat/fullchain.pem"
    assert r.state("chatmail-tls-external-key-file-exists")["name"] == "/etc/ssl/chat/privkey.pem"
    assert "acmetool" not in " ".join(r.states)
    ini = render("chatmail.chatmaild", pillar, tmp_path / "chatmaild").state("chatmail-chatmaild-ini-file-managed")[
        "contents"
    ]
    services = parse_ini(ini)
    assert (services["max_user_send_per_minute"], services["max_user_send_burst_size"]) == ("30", "5")
    assert (services["max_load_1m"], services["min_available_memory"], services["min_free_disk_space"]) == (
        "2.5",
        "300M",
        "2G",
    )


def test_appversions_file_default_and_from_pillar(tmp_path):
    """The formula's index by default; the operator's mapping from pillar, checked as JSON."""
    import json

    default = render("chatmail.chatmaild", {"mail_domain": "chat.example.org"}, tmp_path / "default")
    path = "/usr/local/lib/chatmaild/appversions.json"
    shipped = json.loads((REPO / "chatmail/chatmaild/files/appversions.json").read_text())
    assert json.loads(default.files[path]) == shipped
    own = {
        "clients": [
            {
                "clientId": "deltachat",
                "sources": [
                    {
                        "sourceId": "fdroid",
                        "versionInteger": 800,
                        "versionString": "3.0.0",
                        "downloadUrl": "https://example.org/dc.apk",
                    }
                ],
            }
        ]
    }
    r = render("chatmail.chatmaild", {"mail_domain": "chat.example.org", "appversions": own}, tmp_path / "own")
    args = r.state("chatmail-chatmaild-appversions-file-managed")
    assert json.loads(args["contents"]) == own
    candidate = tmp_path / "candidate.json"
    candidate.write_text(args["contents"])
    run(*args["check_cmd"].split(), str(candidate))


def test_underscore_domain_is_self_signed_and_postfix_accepts_it(tmp_path):
    """Upstream's convention: a mail_domain starting with '_' gets a self-signed certificate."""
    domain = "_chat.example.org"
    r = render("chatmail.tls", {"mail_domain": domain}, tmp_path / "tls")
    cmd = r.state("chatmail-tls-self-signed-cmd-run")
    assert f"DNS:{domain}" in cmd["name"]
    assert not any(k.startswith("/var/lib/acme") for k in r.files) and "acmetool" not in " ".join(r.states)
    p = render("chatmail.postfix", {"mail_domain": domain}, tmp_path / "postfix")
    for name in ("main.cf", "master.cf"):
        p.write(f"/etc/postfix/{name}", tmp_path / name)
    run("postfix", "-c", str(tmp_path), "check")
    main = run("postconf", "-c", str(tmp_path), "-h", "myhostname", "smtpd_tls_cert_file").split()
    assert main == [domain, "/etc/ssl/certs/mailserver.pem"]
