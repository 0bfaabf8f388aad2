"""chatmail.postfix rendered through Salt, then judged by Postfix's own tools.

Each pillar variant is compiled once (salt-call state.show_sls + template
rendering, nothing applied); the rendered main.cf/master.cf pair is checked
with `postfix -c DIR check` and read back with `postconf -c DIR -n/-P/-M`
from Debian's postfix package (in the test base image: harness/imagetools.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.imagetools import wrap
from support.salt import REPO, Rendered, render

pytestmark = pytest.mark.skipif(
    shutil.which("postconf") is None, reason="needs Debian's postfix (apt-get install postfix)"
)

DOMAIN = "chat.example.org"
VARIANTS = {
    "default": {"mail_domain": DOMAIN},
    "ipv4_nomail": {"mail_domain": DOMAIN, "disable_ipv6": True, "disable_mail": True},
    "ports": {
        "mail_domain": DOMAIN,
        "filtermail_smtp_port": 11080,
        "postfix_reinject_port": 11025,
        "filtermail_smtp_port_incoming": 11081,
        "postfix_reinject_port_incoming": 11026,
        "max_message_size": 1048576,
    },
}
CHECK_SCRIPT = REPO / "chatmail/postfix/files/chatmail-postfix-check"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Rendered]:
    cache: dict[str, Rendered] = {}

    def get(variant: str) -> Rendered:
        if variant not in cache:
            cache[variant] = render("chatmail.postfix", VARIANTS[variant], tmp_path_factory.mktemp(variant))
        return cache[variant]

    return get


def confdir(r: Rendered, tmp_path: Path) -> Path:
    for name in ("main.cf", "master.cf"):
        r.write(f"/etc/postfix/{name}", tmp_path / name)
    return tmp_path


def run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def main_cf(d: Path) -> dict[str, str]:
    return dict(
        line.split(" = ", 1) if " = " in line else (line.rstrip(" ="), "")
        for line in run("postconf", "-c", str(d), "-n").splitlines()
    )


def service_params(d: Path) -> dict[str, dict[str, str]]:
    """postconf -P: {"service/type": {param: value}}."""
    out: dict[str, dict[str, str]] = {}
    for line in run("postconf", "-c", str(d), "-P").splitlines():
        key, _, value = line.partition(" =")  # an empty value has no blank after "="
        service, type_, param = key.rsplit("/", 2)
        out.setdefault(f"{service}/{type_}", {})[param] = value.removeprefix(" ")
    return out


def master_rows(d: Path) -> list[list[str]]:
    """postconf -Mf: the service lines of master.cf, split into their fields."""
    lines = run("postconf", "-c", str(d), "-Mf").splitlines()
    return [line.split() for line in lines if line and not line[0].isspace()]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pair_passes_postfix_check(rendered, variant, tmp_path):
    d = confdir(rendered(variant), tmp_path)
    run("postfix", "-c", str(d), "check")


def test_main_cf_values(rendered, tmp_path):
    conf = main_cf(confdir(rendered("default"), tmp_path))
    assert conf["myhostname"] == conf["myorigin"] == conf["virtual_mailbox_domains"] == DOMAIN
    assert conf["inet_protocols"] == "all"
    assert conf["message_size_limit"] == "31457280"
    assert conf["smtpd_tls_cert_file"] == f"/var/lib/acme/live/{DOMAIN}/fullchain"
    assert conf["smtpd_tls_key_file"] == f"/var/lib/acme/live/{DOMAIN}/privkey"
    assert conf["smtp_tls_security_level"] == "verify"
    assert conf["virtual_transport"] == "lmtp:unix:private/dovecot-lmtp"
    assert conf["mydestination"] == ""
    assert conf["smtpd_sender_login_maps"] == "regexp:/etc/postfix/login_map"
    assert "permit_mynetworks" not in conf["mua_client_restrictions"] + conf["mua_sender_restrictions"]
    # undeliverable mail and its bounces give up after 2 days (upstream 1.12)
    assert conf["maximal_queue_lifetime"] == conf["bounce_queue_lifetime"] == "2d"
    assert conf["disable_mime_input_processing"] == "yes"


def test_disable_ipv6_and_message_size(rendered, tmp_path):
    assert main_cf(confdir(rendered("ipv4_nomail"), tmp_path / "a"))["inet_protocols"] == "ipv4"
    assert main_cf(confdir(rendered("ports"), tmp_path / "b"))["message_size_limit"] == "1048576"


@pytest.mark.parametrize(
    "variant, filter_out, reinject, filter_in, reinject_in",
    [("default", 10080, 10025, 10081, 10026), ("ports", 11080, 11025, 11081, 11026)],
)
def test_master_cf_mail_paths(rendered, tmp_path, variant, filter_out, reinject, filter_in, reinject_in):
    params = service_params(confdir(rendered(variant), tmp_path))
    # before-queue filters
    assert params["smtp/inet"]["smtpd_proxy_filter"] == f"127.0.0.1:{filter_in}"
    for public in ("submission/inet", "smtps/inet"):
        assert params[public]["smtpd_proxy_filter"] == f"127.0.0.1:{filter_out}"
        assert params[public]["smtpd_tls_mandatory_protocols"] == ">=TLSv1.3"
        assert params[public]["smtpd_sasl_path"] == "private/auth"
        assert params[public]["smtpd_client_connection_count_limit"] == "200"  # a fifth of max_smtp_connections
        assert "permit_mynetworks" not in params[public]["smtpd_relay_restrictions"]
    assert params["smtp/inet"]["smtpd_tls_security_level"] == "encrypt"
    # OpenDKIM signs what the outgoing reinject smtpd hands it; the incoming path has no milter
    outgoing, incoming = f"127.0.0.1:{reinject}/inet", f"127.0.0.1:{reinject_in}/inet"
    originating = sorted(s for s, p in params.items() if p.get("milter_macro_daemon_name") == "ORIGINATING")
    assert originating == [outgoing]
    assert params[outgoing]["smtpd_milters"] == "unix:opendkim/opendkim.sock"
    assert "smtpd_milters" not in params[incoming]
    assert params[outgoing]["cleanup_service_name"] == "authclean"
    assert params[incoming]["cleanup_service_name"] == "inclean"
    assert params["authclean/unix"]["header_checks"] == "regexp:/etc/postfix/submission_header_cleanup"
    assert params["inclean/unix"]["header_checks"] == "regexp:/etc/postfix/incoming_header_cleanup"


@pytest.mark.parametrize("variant", ["default", "ports"])
def test_every_smtpd_has_its_own_relay_restrictions_ending_in_reject(rendered, tmp_path, variant):
    """No smtpd falls back to main.cf's smtpd_relay_restrictions (upstream 1.12)."""
    d = confdir(rendered(variant), tmp_path)
    rows = master_rows(d)
    smtpds = sorted(f"{r[0]}/{r[1]}" for r in rows if r[7] == "smtpd")
    reinject, reinject_in = (10025, 10026) if variant == "default" else (11025, 11026)
    outgoing, incoming = f"127.0.0.1:{reinject}/inet", f"127.0.0.1:{reinject_in}/inet"
    public = ("submission/inet", "smtps/inet", "127.0.0.1:8465/inet")  # 8465: 443's SMTP clients, via nginx
    assert smtpds == sorted([outgoing, incoming, "smtp/inet", *public])
    params = service_params(d)
    relay = {s: params[s]["smtpd_relay_restrictions"].split(",") for s in smtpds}
    for service in smtpds:
        assert relay[service][-1] == "reject", service
        assert params[service]["smtpd_recipient_restrictions"] == "", service
    # port 25: mail for mail_domain only, whoever connects (nginx and filtermail are on loopback too)
    assert relay["smtp/inet"] == ["permit_auth_destination", "reject"]
    # reinject ports: loopback only; the incoming one also only for mail_domain
    assert relay[outgoing] == ["permit_mynetworks", "reject"]
    assert relay[incoming] == ["reject_unauth_destination", "permit_mynetworks", "reject"]
    for service in public:
        assert relay[service] == ["permit_sasl_authenticated", "reject"]
        assert params[service]["smtpd_sasl_auth_enable"] == "yes"


def test_master_cf_services_and_limits(rendered, tmp_path):
    d = confdir(rendered("default"), tmp_path)
    rows = master_rows(d)
    by_name = {f"{r[0]}/{r[1]}": r for r in rows}
    assert by_name["submission/inet"][6] == by_name["smtps/inet"][6] == "1000"  # max_smtp_connections
    assert by_name["127.0.0.1:10025/inet"][4] == "n"  # not chrooted: reaches opendkim socket path as is
    for unwanted in ("maildrop/unix", "uucp/unix", "local/unix", "virtual/unix", "filter/unix"):
        assert unwanted not in by_name


@pytest.mark.parametrize(
    "table, query, expected",
    [
        ("submission_header_cleanup", "Received: from [203.0.113.7] by x", "IGNORE"),
        ("submission_header_cleanup", "X-Originating-IP: 203.0.113.7", "IGNORE"),
        ("submission_header_cleanup", "X-Mailer: foo", "IGNORE"),
        ("submission_header_cleanup", "User-Agent: foo", "IGNORE"),
        ("submission_header_cleanup", "Subject: very secret", "REPLACE Subject: [...]"),
        ("submission_header_cleanup", "From: a@b", None),
        ("incoming_header_cleanup", "DKIM-Signature: v=1; a=rsa-sha256; d=elsewhere.net", "IGNORE"),
        ("incoming_header_cleanup", "Authentication-Results: mx.elsewhere.net; dkim=pass", "IGNORE"),
        ("incoming_header_cleanup", "Received: from mx.elsewhere.net ([203.0.113.7])", "IGNORE"),
        ("incoming_header_cleanup", "Autocrypt: addr=a@elsewhere.net; keydata=x", None),
        ("incoming_header_cleanup", "From: a@elsewhere.net", None),
        ("login_map", "alice@chat.example.org", "alice@chat.example.org"),
    ],
)
def test_regexp_tables(table, query, expected):
    path = REPO / "chatmail/postfix/files" / table
    proc = subprocess.run(["postmap", "-q", query, f"regexp:{path}"], capture_output=True, text=True)
    if expected is None:
        assert proc.returncode == 1 and proc.stdout == ""
    else:
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == expected


def test_check_script_accepts_the_pair_and_rejects_broken_candidates(rendered, tmp_path):
    live = confdir(rendered("default"), tmp_path / "live")
    env = {"CHATMAIL_POSTFIX_LIVE": str(live), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}

    def check(which: str, text: str) -> int:
        candidate = tmp_path / f"candidate-{which}"
        candidate.write_text(text)
        return subprocess.run(wrap(["sh", CHECK_SCRIPT, which, candidate]), env=env, capture_output=True).returncode

    good_main, good_master = (live / "main.cf").read_text(), (live / "master.cf").read_text()
    assert check("main.cf", good_main) == 0
    assert check("master.cf", good_master) == 0
    assert check("main.cf", good_main + "message_size_limit = lots\n") != 0
    assert check("main.cf", good_main + "no_equals_sign_here\n") != 0
    assert check("master.cf", good_master + "broken inet n\n") != 0


def test_states_validate_before_replacing_and_order(rendered):
    r = rendered("default")
    for name in ("main-cf", "master-cf"):
        args = r.state(f"chatmail-postfix-{name}-file-managed")
        assert args["check_cmd"].startswith("/usr/local/sbin/chatmail-postfix-check ")
    master_reqs = r.state("chatmail-postfix-master-cf-file-managed")["require"]
    assert {"file": "chatmail-postfix-main-cf-file-managed"} in master_reqs
    assert (
        r.state("chatmail-postfix-restart-dropin-file-managed")["name"]
        == "/etc/systemd/system/postfix@.service.d/10_restart.conf"
    )
    assert "Restart=always" in r.files["/etc/systemd/system/postfix@.service.d/10_restart.conf"]
    assert r.state("chatmail-postfix-opendkim-group-present")["addusers"] == ["postfix"]
    service = r.state("chatmail-postfix-service-running")
    assert {"sls": "chatmail.dovecot.service"} in service["require"]
    assert {"sls": "chatmail.opendkim.service"} in service["require"]
    assert {"sls": "chatmail.chatmaild.service"} in service["require"]
    assert {"sls": "chatmail.postfix.config"} in service["watch"]


def test_disable_mail_stops_postfix(rendered):
    r = rendered("ipv4_nomail")
    assert "chatmail-postfix-service-running" not in r.states
    dead = r.state("chatmail-postfix-service-dead")
    assert dead["name"] == "postfix" and dead["enable"] is False
