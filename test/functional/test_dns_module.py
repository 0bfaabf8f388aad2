"""chatmail.dns_zone / chatmail.dns_check through Salt's loader.

dns_zone runs on a DKIM key made by Debian's ``opendkim-genkey`` in a tmp
dir; the expected DKIM value is read from the ``opendkim.txt`` that tool
writes, independently of the module's ``openssl rsa -pubout`` path.
dns_check asks a real authoritative server, NSD, that the test starts on
127.0.0.1 (a free port) and feeds with zone files; nothing leaves
loopback.  Every call passes ``acme_state`` (an empty tmp dir) or an
explicit account URL, so acmetool never contacts a CA.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import dns.zone
import pytest

from support.freeports import free_tcp_udp_port as free_port

DOMAIN = "chat.example.org"
ZONE = "example.org"
V4, V6 = "203.0.113.5", "2001:db8::5"


class NSD:
    """NSD serving one zone on 127.0.0.1:port; ``serve(records)`` swaps the zone."""

    def __init__(self, workdir: Path, zone: str = ZONE):
        self.dir = workdir
        self.zone = zone
        self.port = free_port()
        self.serial = 1
        self.proc: subprocess.Popen | None = None

    def zone_text(self, records: str) -> str:
        origin = self.zone + "."
        return (
            f"$TTL 60\n{origin} IN SOA ns.{origin} hostmaster.{origin} {self.serial} 60 60 600 60\n"
            f"{origin} IN NS ns.{origin}\nns.{origin} IN A 127.0.0.1\n{records}"
        )

    def start(self, records: str) -> NSD:
        d = self.dir
        (d / "nsd.conf").write_text(
            f'server:\n  ip-address: 127.0.0.1\n  port: {self.port}\n  do-ip6: no\n  username: ""\n  chroot: ""\n'
            f'  zonesdir: "{d}"\n  database: ""\n  zonelistfile: "{d}/zone.list"\n  xfrdfile: "{d}/xfrd.state"\n'
            f'  xfrdir: "{d}"\n  pidfile: "{d}/nsd.pid"\n  logfile: "{d}/nsd.log"\n  server-count: 1\n'
            f'remote-control:\n  control-enable: no\nzone:\n  name: {self.zone}\n  zonefile: "{d}/zone"\n'
        )
        self._write(records)
        self.proc = subprocess.Popen(
            ["nsd", "-d", "-c", str(d / "nsd.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait()
        return self

    def serve(self, records: str) -> None:
        self.serial += 1
        self._write(records)
        os.kill(self.proc.pid, signal.SIGHUP)
        self._wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # nsd forks; end the group it leads
            self.proc.wait(10)

    def _write(self, records: str) -> None:
        path = self.dir / "zone"
        path.write_text(self.zone_text(records))
        os.utime(path, (time.time(), time.time() + self.serial))  # NSD reloads on a newer mtime

    def _wait(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (
                (self.dir / "nsd.log").read_text() if (self.dir / "nsd.log").exists() else "nsd died"
            )
            try:
                reply = dns.query.udp(
                    dns.message.make_query(self.zone + ".", "SOA"), "127.0.0.1", port=self.port, timeout=0.3
                )
                if reply.answer and reply.answer[0][0].serial == self.serial:
                    return
            except Exception:  # not up yet
                pass
            time.sleep(0.05)
        raise RuntimeError(f"nsd does not serve serial {self.serial}")


@pytest.fixture(scope="module")
def dkim_dir(tmp_path_factory) -> Path:
    if not shutil.which("opendkim-genkey"):
        pytest.skip("opendkim-genkey (package opendkim-tools) not installed")
    keydir = tmp_path_factory.mktemp("dkimkeys")
    subprocess.run(["opendkim-genkey", "-D", str(keydir), "-d", DOMAIN, "-s", "opendkim"], check=True)
    return keydir


@pytest.fixture
def chatmail(salt_loaders):
    return salt_loaders.modules.chatmail


@pytest.fixture
def zone(chatmail, dkim_dir, tmp_path):
    return chatmail.dns_zone(
        ipv4=[V4, "127.0.0.1", "169.254.1.1"],
        ipv6=f"{V6},::1,fe80::1",
        pillar={"mail_domain": DOMAIN},
        dkim_keydir=str(dkim_dir),
        acme_state=str(tmp_path),
        zonefile=str(tmp_path / "relay.zone"),
    )


def by(records, name, rtype):
    return [r for r in records if r["name"] == name and r["type"] == rtype]


def opendkim_txt_value(dkim_dir: Path) -> str:
    """The record opendkim-genkey wrote, its quoted pieces joined, whitespace removed."""
    text = (dkim_dir / "opendkim.txt").read_text()
    return "".join(re.findall(r'"([^"]*)"', text)).replace(" ", "")


def test_zone_has_every_record_with_its_level(zone, dkim_dir):
    d = DOMAIN + "."
    recs = zone["records"]
    assert [r["value"] for r in by(recs, d, "A")] == [V4]  # loopback and link-local left out
    assert [r["value"] for r in by(recs, d, "AAAA")] == [V6]
    expected = {
        (d, "MX", "10 " + d, "required"),
        (f"mta-sts.{d}", "CNAME", d, "required"),
        (f"www.{d}", "CNAME", d, "required"),
        (d, "TXT", '"v=spf1 a ~all"', "recommended"),
        (f"_dmarc.{d}", "TXT", '"v=DMARC1;p=reject;adkim=s;aspf=s"', "recommended"),
        (f"_adsp._domainkey.{d}", "TXT", '"dkim=discardable"', "recommended"),
        (f"_submission._tcp.{d}", "SRV", f"0 1 587 {d}", "recommended"),
        (f"_submissions._tcp.{d}", "SRV", f"0 1 465 {d}", "recommended"),
        (f"_imap._tcp.{d}", "SRV", f"0 1 143 {d}", "recommended"),
        (f"_imaps._tcp.{d}", "SRV", f"0 1 993 {d}", "recommended"),
    }
    have = {(r["name"], r["type"], r["value"], r["level"]) for r in recs}
    assert expected <= have
    (sts,) = by(recs, f"_mta-sts.{d}", "TXT")
    assert sts["level"] == "required" and sts["value"] == f'"v=STSv1; id={zone["mta_sts_id"]}"'
    assert re.fullmatch(r"[A-Za-z0-9]{1,32}", zone["mta_sts_id"])
    assert not by(recs, d, "CAA")  # no ACME account in the empty state dir
    assert any("no ACME account" in n for n in zone["notes"])

    (dkim,) = by(recs, f"opendkim._domainkey.{d}", "TXT")
    assert dkim["level"] == "required"
    pieces = re.findall(r'"([^"]*)"', dkim["value"])
    assert len(pieces) >= 2 and all(len(p) <= 255 for p in pieces)
    joined = "".join(pieces)
    assert joined.startswith("v=DKIM1;k=rsa;p=") and joined.endswith(";s=email;t=s")
    genkey_p = re.search(r"p=([A-Za-z0-9+/=]+)", opendkim_txt_value(dkim_dir)).group(1)
    assert joined.split("p=")[1].split(";")[0] == genkey_p


def test_zone_text_parses_to_the_same_records(zone):
    assert open(zone["zonefile"]).read() == zone["zone"]
    parsed = dns.zone.from_text(zone["zone"], origin=ZONE + ".", relativize=False, check_origin=False)
    texts = {
        (str(name), dns.rdatatype.to_text(rdataset.rdtype), rdata.to_text())
        for name, rdataset in parsed.iterate_rdatasets()
        for rdata in rdataset
    }
    for record in zone["records"]:
        assert (record["name"], record["type"], record["value"]) in texts, record
    assert len(texts) == len(zone["records"])


def test_mta_sts_id_is_stable_and_follows_the_policy(chatmail, dkim_dir, tmp_path):
    def sts(domain):
        return chatmail.dns_zone(
            ipv4=V4, pillar={"mail_domain": domain}, dkim_keydir=str(dkim_dir), acme_state=str(tmp_path)
        )["mta_sts_id"]

    first = sts(DOMAIN)
    assert sts(DOMAIN) == first
    assert sts("other.example.org") != first  # the policy names the MX, so it differs


def test_caa_carries_the_acme_account_and_only_for_acme(chatmail, dkim_dir, tmp_path):
    url = "https://acme-v02.api.letsencrypt.org/acme/acct/123456"
    acme = chatmail.dns_zone(ipv4=V4, pillar={"mail_domain": DOMAIN}, dkim_keydir=str(dkim_dir), acme_account_url=url)
    (caa,) = by(acme["records"], DOMAIN + ".", "CAA")
    assert caa["value"] == f'0 issue "letsencrypt.org;accounturi={url}"' and caa["level"] == "recommended"
    selfsigned = chatmail.dns_zone(
        ipv4=V4,
        pillar={"mail_domain": DOMAIN, "tls_mode": "self_signed"},
        dkim_keydir=str(dkim_dir),
        acme_account_url=url,
    )
    assert not by(selfsigned["records"], DOMAIN + ".", "CAA")


def test_caa_names_the_ca_of_acme_directory_never_a_wrong_one(chatmail, dkim_dir):
    """A CAA record for the wrong CA would stop renewals: the issuer follows acme_directory."""
    url = "https://acme.example.net/acct/7"

    def caa(**pillar):
        zone = chatmail.dns_zone(
            ipv4=V4, pillar={"mail_domain": DOMAIN, **pillar}, dkim_keydir=str(dkim_dir), acme_account_url=url
        )
        return [r["value"] for r in by(zone["records"], DOMAIN + ".", "CAA")], zone["notes"]

    assert caa(acme_directory="https://acme.zerossl.com/v2/DV90")[0] == [f'0 issue "sectigo.com;accounturi={url}"']
    values, notes = caa(acme_directory="https://pebble.lab.test:14000/dir")
    assert values == [] and any("set acme_caa_issuer" in n and "pebble.lab.test" in n for n in notes)
    values, _ = caa(acme_directory="https://pebble.lab.test:14000/dir", acme_caa_issuer="ca.lab.test")
    assert values == [f'0 issue "ca.lab.test;accounturi={url}"']


def test_disable_ipv6_drops_aaaa_and_default_addresses_skip_loopback(chatmail, dkim_dir, tmp_path):
    zone = chatmail.dns_zone(
        pillar={"mail_domain": DOMAIN, "disable_ipv6": True}, dkim_keydir=str(dkim_dir), acme_state=str(tmp_path)
    )
    assert not by(zone["records"], DOMAIN + ".", "AAAA")
    for record in by(zone["records"], DOMAIN + ".", "A"):  # from grains
        assert not record["value"].startswith(("127.", "169.254."))


def test_missing_dkim_key_is_a_note_not_an_error(chatmail, tmp_path):
    zone = chatmail.dns_zone(
        ipv4=V4, pillar={"mail_domain": DOMAIN}, dkim_keydir=str(tmp_path), acme_state=str(tmp_path)
    )
    assert not [r for r in zone["records"] if "opendkim._domainkey" in r["name"]]
    assert any("no DKIM key" in n for n in zone["notes"])


# -- dns_check against NSD -------------------------------------------------------


@pytest.fixture
def nsd(tmp_path):
    if not shutil.which("nsd"):
        pytest.skip("nsd not installed")
    server = NSD(tmp_path / "nsd")
    server.dir.mkdir()
    yield server
    server.stop()


def zone_lines(zone: dict, drop: set[tuple[str, str]] = frozenset()) -> str:
    return "".join(
        f"{r['name']} IN {r['type']} {r['value']}\n" for r in zone["records"] if (r["name"], r["type"]) not in drop
    )


def test_check_reports_exactly_the_missing_records_then_clean(chatmail, zone, nsd, dkim_dir, tmp_path):
    www, imaps = (f"www.{DOMAIN}.", "CNAME"), (f"_imaps._tcp.{DOMAIN}.", "SRV")
    nsd.start(zone_lines(zone, drop={www, imaps}))
    args = dict(
        nameserver="127.0.0.1",
        port=nsd.port,
        timeout=2,
        ipv4=V4,
        ipv6=V6,
        pillar={"mail_domain": DOMAIN},
        dkim_keydir=str(dkim_dir),
        acme_state=str(tmp_path),
    )
    result = chatmail.dns_check(**args)
    assert result["unreachable"] is False and result["ok"] is False
    assert [(r["name"], r["type"], r["problem"]) for r in result["required"]] == [www + ("missing",)]
    assert [(r["name"], r["type"], r["problem"]) for r in result["recommended"]] == [imaps + ("missing",)]
    assert result["checked"] == len(zone["records"])

    nsd.serve(zone_lines(zone))
    result = chatmail.dns_check(**args)
    assert result["ok"] is True and result["required"] == [] and result["recommended"] == []


def test_check_tells_different_values_and_joins_split_txt(chatmail, zone, nsd, dkim_dir, tmp_path):
    """A wrong MX is "different" with what DNS has; a DKIM key split at other places is fine."""
    d = DOMAIN + "."
    (dkim,) = by(zone["records"], f"opendkim._domainkey.{d}", "TXT")
    text = "".join(re.findall(r'"([^"]*)"', dkim["value"]))
    resplit = " ".join(f'"{text[i : i + 100]}"' for i in range(0, len(text), 100))
    records = zone_lines(zone, drop={(d, "MX"), (dkim["name"], "TXT")})
    records += f"{d} IN MX 20 mx.elsewhere.example.\n{dkim['name']} IN TXT {resplit}\n"
    nsd.start(records)
    result = chatmail.dns_check(
        nameserver="127.0.0.1",
        port=nsd.port,
        timeout=2,
        ipv4=V4,
        ipv6=V6,
        pillar={"mail_domain": DOMAIN},
        dkim_keydir=str(dkim_dir),
        acme_state=str(tmp_path),
    )
    assert [(r["type"], r["problem"], r["found"]) for r in result["required"]] == [
        ("MX", "different", ["20 mx.elsewhere.example."])
    ]
    assert result["recommended"] == []


def test_unreachable_dns_is_a_clear_result(chatmail, dkim_dir, tmp_path):
    closed = free_port()  # nothing listens there
    result = chatmail.dns_check(
        nameserver="127.0.0.1",
        port=closed,
        timeout=0.5,
        ipv4=V4,
        pillar={"mail_domain": DOMAIN},
        dkim_keydir=str(dkim_dir),
        acme_state=str(tmp_path),
    )
    assert result["unreachable"] is True and result["ok"] is False
    assert f"127.0.0.1 port {closed}" in result["reason"]
    assert result["required"] == [] and result["recommended"] == []
