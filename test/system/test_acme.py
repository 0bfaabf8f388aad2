"""tls_mode acme against a real ACME server: pebble on the bridge, real HTTP-01.

Pebble (acmeserver.py) runs on the host, bound to the bridge address, and
resolves names through the lab's test DNS, where D, mta-sts.D and www.D
point at the relay container.  The relay's acmetool talks to pebble's
directory at ``acme.test`` over HTTPS, trusting the throwaway CA of that
API through the formula setting ``acme_ca_file``; pebble then fetches the
HTTP-01 tokens from the relay's port 80 (the acmetool redirector) for each
of the three names.  The tests check that the certificate under
/var/lib/acme/live/D is pebble's for all three names, that Postfix (25
STARTTLS, 465), Dovecot (993) and nginx (443) serve it with its chain, that
a second apply changes nothing, and that a renewal through the formula's
reconcile unit reaches the daemons through the hook.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from harness import changed_states, check_target, failed_states
from support.acmeserver import TERMS_OF_SERVICE, Pebble
from support.relays import require_converged

pytestmark = pytest.mark.system

ACME_CA_FILE = "/etc/chatmail-test/acme-api-ca.pem"
ACME_NAME = "acme"  # acme.test: pebble's directory, on the bridge address


@pytest.fixture(scope="module")
def pebble(lab, test_dns, tmp_path_factory):
    server = Pebble(
        lab.bridge.address, test_dns.address, tmp_path_factory.mktemp("pebble"), test_dns.fqdn(ACME_NAME).rstrip(".")
    )
    test_dns.a(ACME_NAME, lab.bridge.address)
    server.start()
    yield server
    server.stop()
    test_dns.remove(ACME_NAME)


@pytest.fixture(scope="module")
def box(relay, pebble, test_dns):
    # pebble's terms URL is not one the formula knows: acme_terms_url lets acmetool agree
    container = relay(
        "acme1",
        tls_mode="acme",
        acme_directory=pebble.directory,
        acme_ca_file=ACME_CA_FILE,
        acme_email="postmaster@acme1.test",
        acme_terms_url=TERMS_OF_SERVICE,
        acme_caa_issuer=pebble.name,
    )
    domain = container.pillar["mail_domain"]
    for name in (f"mta-sts.{domain}", f"www.{domain}"):
        test_dns.a(name, container.address)
    container.write_file(ACME_CA_FILE, pebble.ca.read_text())
    # The base image preinstalls nginx (for speed), and Debian starts it with
    # its default site on :80, which a fresh host would not have: the
    # pre-flight rightly refuses a foreign listener on the redirector's port.
    container.run(["systemctl", "disable", "--now", "nginx.service"])
    return container


@pytest.fixture(scope="module")
def domain(box) -> str:
    return box.pillar["mail_domain"]


@pytest.fixture(scope="module")
def applied(box, pebble):
    result = box.apply(box.pillar)
    failed = failed_states(result)
    if failed:
        print(pebble.log()[-3000:])
    return result


@pytest.fixture(scope="module")
def live(box, applied):
    return require_converged(box, applied)


@pytest.fixture(scope="module")
def pebble_root(pebble, live, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pebble-root") / "root.pem"
    path.write_text(pebble.root_pem())
    return path


# -- helpers ---------------------------------------------------------------------------


def live_cert(box, domain: str, name: str = "cert") -> str:
    return box.read_file(f"/var/lib/acme/live/{domain}/{name}")


def pem_to_der(pem: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem[: pem.index("-----END CERTIFICATE-----") + 25])


def client_context(cafile: Path) -> ssl.SSLContext:
    """Verifies the chain up to pebble's root and the name D."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)  # pebble's test root is not RFC 5280-strict
    return context


def served_der(address: str, port: int, server_name: str, context: ssl.SSLContext) -> bytes:
    """The leaf certificate a daemon presents (after STARTTLS on port 25), verified by ``context``."""
    check_target(address)
    with socket.create_connection((address, port), timeout=15) as raw:
        if port == 25:
            starttls(raw)
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True)


def starttls(sock: socket.socket) -> None:
    """The plain-text part of an SMTP session up to the TLS handshake."""
    reader = sock.makefile("rb")

    def reply() -> str:
        while True:
            line = reader.readline().decode()
            if line[3:4] != "-":
                return line

    assert reply().startswith("220")
    for command, code in ((b"EHLO client.test\r\n", "250"), (b"STARTTLS\r\n", "220")):
        sock.sendall(command)
        line = reply()
        assert line.startswith(code), line
    reader.close()  # the socket stays open for the handshake


def openssl_text(pem: str, *args: str) -> str:
    return subprocess.run(
        ["openssl", "x509", "-noout", *args], input=pem, capture_output=True, text=True, check=True
    ).stdout


TLS_PORTS = {25: "postfix STARTTLS", 465: "postfix submissions", 993: "dovecot imaps", 443: "nginx https"}


# -- tests --------------------------------------------------------------------------------


def test_first_apply_converges(applied):
    assert failed_states(applied) == []
    assert applied.retcode == 0


def test_certificate_is_pebbles_and_covers_all_names(live, domain, pebble_root, tmp_path):
    cert = live_cert(live, domain)
    sans = openssl_text(cert, "-ext", "subjectAltName")
    names = {part.strip().removeprefix("DNS:") for part in sans.splitlines()[1].split(",")}
    assert names == {domain, f"mta-sts.{domain}", f"www.{domain}"}
    assert "Pebble Intermediate CA" in openssl_text(cert, "-issuer")

    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "chain.pem").write_text(live_cert(live, domain, "chain"))
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            str(pebble_root),
            "-untrusted",
            str(tmp_path / "chain.pem"),
            str(tmp_path / "cert.pem"),
        ],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # the path the daemons are configured with is acmetool's live chain
    assert live.read_file(f"/var/lib/acme/live/{domain}/fullchain").startswith(cert.strip())


def test_the_http01_validation_was_real(pebble, domain):
    """pebble fetched a token from the relay for each name (no PEBBLE_VA_ALWAYS_VALID)."""
    log = pebble.log()
    for name in (domain, f"mta-sts.{domain}", f"www.{domain}"):
        assert f"Attempting to validate w/ HTTP: http://{name}:80/.well-known/acme-challenge/" in log, name
    assert log.count("set VALID by completed challenge") >= 3


@pytest.mark.parametrize("port", sorted(TLS_PORTS))
def test_daemons_serve_the_acme_certificate(live, domain, pebble_root, port):
    served = served_der(live.address, port, domain, client_context(pebble_root))
    assert served == pem_to_der(live_cert(live, domain)), TLS_PORTS[port]


def test_redirector_answers_on_port_80(live, domain):
    check_target(live.address)
    with socket.create_connection((live.address, 80), timeout=10) as sock:
        sock.sendall(f"GET /some/page HTTP/1.0\r\nHost: {domain}\r\n\r\n".encode())
        head = sock.recv(4096).decode(errors="replace")
    status = head.split("\r\n", 1)[0]
    assert status.split()[1] in ("301", "302", "307", "308"), head
    assert f"Location: https://{domain}/some/page" in head


def test_second_apply_changes_nothing(live):
    again = live.apply(live.pillar)
    assert failed_states(again) == []
    assert changed_states(again) == []


def test_renewal_through_the_reconcile_unit_reaches_every_daemon(live, domain, pebble_root):
    """A new certificate (old one and key gone) via the unit the daily timer starts; the hook reloads."""
    before = pem_to_der(live_cert(live, domain))
    live.run(f"rm -rf /var/lib/acme/certs/* /var/lib/acme/keys/* /var/lib/acme/live/{domain}")
    live.run(["systemctl", "start", "acmetool-reconcile.service"])
    after = pem_to_der(live_cert(live, domain))
    assert after != before
    context = client_context(pebble_root)
    deadline = time.monotonic() + 20
    stale = dict(TLS_PORTS)
    while stale and time.monotonic() < deadline:
        for port in list(stale):
            if served_der(live.address, port, domain, context) == after:
                del stale[port]
        time.sleep(0.5)
    assert stale == {}, "still serving the old certificate"


def test_status_of_an_acme_relay(live):
    status = live.salt_call("chatmail.status")
    assert status.retcode == 0, status.stderr
    status = status["local"]
    rows = {row["unit"]: row for row in status["services"]}
    for unit in ("acmetool-redirector.service", "acmetool-reconcile.timer"):
        assert rows[unit]["expected"] == "active" and rows[unit]["ok"], rows[unit]
    assert status["certificate"]["state"] == "valid", status["certificate"]
    assert status["ok"] is True, [row for row in status["services"] + status["ports"] if not row["ok"]]


def test_dns_zone_has_the_caa_record_of_the_acme_account(live, domain, pebble):
    result = live.salt_call("chatmail.dns_zone")
    assert result.retcode == 0, result.stderr
    caa = [r for r in result["local"]["records"] if r["type"] == "CAA"]
    assert len(caa) == 1, result["local"]["notes"]
    assert caa[0]["name"] == f"{domain}." and caa[0]["level"] == "recommended"
    assert caa[0]["value"].startswith(f'0 issue "{pebble.name};accounturi=https://{pebble.name}:')
    assert "/my-account/" in caa[0]["value"]
