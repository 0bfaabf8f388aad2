"""unbound: the rendered drop-in passes unbound-checkconf and really resolves forwarded test zones."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import dns.message
import dns.query
import dns.rrset
import pytest

from support.freeports import free_ports
from support.salt import render

CONF = "/etc/unbound/unbound.conf.d/chatmail.conf"
pytestmark = pytest.mark.skipif(not shutil.which("unbound-checkconf"), reason="needs Debian's unbound")


@pytest.fixture(scope="module")
def zones_render(tmp_path_factory):
    pillar = {
        "mail_domain": "relay1.test",
        "tls_mode": "self_signed",
        "dns_forward_zones": {"relay.test": ["127.0.0.1@5399"], "corp.example.org": ["192.0.2.53", "192.0.2.54@5353"]},
    }
    return render("chatmail.unbound", pillar, tmp_path_factory.mktemp("unbound"))


def test_config_is_valid_and_checked_before_install(zones_render, tmp_path):
    args = zones_render.state("chatmail-unbound-chatmail-conf-file-managed")
    assert args["check_cmd"].endswith("unbound-checkconf")
    path = zones_render.write(CONF, tmp_path / "chatmail.conf")
    proc = subprocess.run(["unbound-checkconf", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_forward_zones_and_special_use_names(zones_render):
    text = zones_render.files[CONF]
    assert 'name: "relay.test."' in text and "forward-addr: 127.0.0.1@5399" in text
    assert 'name: "corp.example.org."' in text
    assert "forward-addr: 192.0.2.53\n" in text + "\n" and "forward-addr: 192.0.2.54@5353" in text
    # only the special-use zone loses validation and the built-in NXDOMAIN
    assert 'local-zone: "test." nodefault' in text
    assert 'domain-insecure: "relay.test."' in text
    assert "corp.example.org" not in "".join(line for line in text.splitlines(True) if "insecure" in line)
    assert "do-not-query-localhost: no" in text  # a loopback forwarder is allowed
    assert "cache-max-negative-ttl: 0" in text  # upstream 1.12: no negative cache
    assert "interface: ::1" in text


def test_ipv4_only_and_no_zones(tmp_path):
    r = render("chatmail.unbound", {"mail_domain": "chat.example.org", "disable_ipv6": True}, tmp_path)
    text = r.files[CONF]
    assert "interface: 127.0.0.1" in text and "::1" not in text and "do-ip6: no" in text
    assert "forward-zone" not in text and "nodefault" not in text and "do-not-query-localhost" not in text
    assert "nameserver ::1" not in r.state("chatmail-unbound-resolv-conf-file-managed")["contents"]


def test_resolv_conf_waits_for_running_unbound(zones_render):
    args = zones_render.state("chatmail-unbound-resolv-conf-file-managed")
    assert args["contents"].splitlines()[1:3] == ["nameserver 127.0.0.1", "nameserver ::1"]
    assert {"service": "chatmail-unbound-service-running"} in args["require"]
    svc = zones_render.state("chatmail-unbound-service-running")
    assert {"sls": "chatmail.unbound.config"} in svc["watch"]


def test_packages_install_without_autostart(zones_render):
    block = zones_render.state("chatmail-unbound-autostart-block-cmd-run")
    assert block["prereq"] == [{"pkg": "chatmail-unbound-packages-pkg-installed"}]
    assert "exit 101" in block["name"]
    assert "dns-root-data" in zones_render.state("chatmail-unbound-packages-pkg-installed")["pkgs"]


class FakeAuthority(threading.Thread):
    """A test-zone DNS server on loopback: answers every A query with 192.0.2.10."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.stop = False
        self.queries: list[str] = []

    def run(self):
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            qname = query.question[0].name
            self.queries.append(qname.to_text())
            reply.answer.append(dns.rrset.from_text(qname, 60, "IN", "A", "192.0.2.10"))
            self.sock.sendto(reply.to_wire(), peer)


def test_unbound_resolves_a_forwarded_test_zone_with_dnssec_on(tmp_path):
    """Run the real unbound with the rendered drop-in (plus a port) and query it."""
    auth_port, port = free_ports(2, socket.SOCK_DGRAM)
    pillar = {"mail_domain": "relay1.test", "dns_forward_zones": {"relay.test": [f"127.0.0.1@{auth_port}"]}}
    r = render("chatmail.unbound", pillar, tmp_path)
    conf = tmp_path / "unbound.conf"
    conf.write_text(
        r.files[CONF] + "\nserver:\n"
        f'    port: {port}\n    username: ""\n    chroot: ""\n    pidfile: ""\n'
        f'    directory: "{tmp_path}"\n    use-syslog: no\n'
        "    trust-anchor-file: /usr/share/dns/root.key\n"
    )
    authority = FakeAuthority(auth_port)
    authority.start()
    proc = subprocess.Popen(["unbound", "-d", "-c", str(conf)], stderr=subprocess.PIPE, text=True)
    try:
        answer = None
        for _ in range(50):
            try:
                answer = dns.query.udp(
                    dns.message.make_query("mx1.relay.test.", "A"), "127.0.0.1", port=port, timeout=0.5
                )
                break
            except (dns.exception.Timeout, ConnectionRefusedError):
                time.sleep(0.1)
        assert answer is not None, "unbound did not answer"
        assert answer.rcode() == dns.rcode.NOERROR
        assert [rr.address for rrset in answer.answer for rr in rrset] == ["192.0.2.10"]
        assert "mx1.relay.test." in authority.queries
    finally:
        authority.stop = True
        proc.terminate()
        proc.wait(timeout=10)
