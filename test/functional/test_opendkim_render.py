"""chatmail.opendkim rendered through Salt, then loaded by OpenDKIM itself.

`opendkim -n -x FILE` parses the config, opens the KeyTable/SigningTable
, so a passing run means OpenDKIM would
start with these files.  Paths are moved into a tmp dir for the check.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from support.salt import Rendered, render

pytestmark = pytest.mark.skipif(shutil.which("opendkim") is None, reason="needs Debian's opendkim and opendkim-tools")

DOMAIN = "chat.example.org"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Rendered:
    return render("chatmail.opendkim", {"mail_domain": DOMAIN}, tmp_path_factory.mktemp("opendkim"))


def conf_values(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            pairs.append((key, value.strip()))
    return pairs


def install_tree(r: Rendered, root: Path) -> Path:
    """The rendered files under ``root`` with a real key; returns the conf path."""
    (root / "dkimkeys").mkdir(parents=True)
    (root / "opendkim").mkdir()
    subprocess.run(["opendkim-genkey", "-D", str(root / "dkimkeys"), "-d", DOMAIN, "-s", "opendkim"], check=True)
    moves = {
        "/etc/dkimkeys/": f"{root}/dkimkeys/",
        "/etc/opendkim/": f"{root}/opendkim/",
        "/var/spool/postfix/opendkim/": f"{root}/",
    }
    for path, text in r.files.items():
        if path.startswith(("/etc/dkimkeys/", "/etc/opendkim/")):
            for old, new in moves.items():
                text = text.replace(old, new)
            dest = Path(
                path.replace("/etc/dkimkeys/", f"{root}/dkimkeys/").replace("/etc/opendkim/", f"{root}/opendkim/")
            )
            dest.write_text(text)
    conf = r.files["/etc/opendkim.conf"]
    for old, new in moves.items():
        conf = conf.replace(old, new)
    (root / "opendkim.conf").write_text(conf)
    return root / "opendkim.conf"


def test_opendkim_accepts_config_and_tables(rendered, tmp_path):
    conf = install_tree(rendered, tmp_path)
    proc = subprocess.run(["opendkim", "-n", "-x", str(conf)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_opendkim_check_rejects_a_broken_config(rendered, tmp_path):
    conf = install_tree(rendered, tmp_path)
    conf.write_text(conf.read_text() + "Mode                    sv-bogus\n")
    assert subprocess.run(["opendkim", "-n", "-x", str(conf)], capture_output=True).returncode != 0


def test_opendkim_only_signs(rendered):
    values = conf_values(rendered.files["/etc/opendkim.conf"])
    conf = dict(values)
    assert conf["MTA"] == "ORIGINATING"
    assert conf["InternalHosts"] == "-"
    assert conf["Domain"] == DOMAIN and conf["Selector"] == "opendkim"
    assert conf["KeyTable"] == "/etc/dkimkeys/KeyTable"
    assert conf["SigningTable"] == "refile:/etc/dkimkeys/SigningTable"
    assert conf["Socket"] == "local:/var/spool/postfix/opendkim/opendkim.sock"
    assert conf["UMask"] == "007" and conf["Mode"] == "s"
    # verification moved into the incoming filter: nothing of it is left here
    for gone in (
        "ScreenPolicyScript",
        "FinalPolicyScript",
        "ResolverConfiguration",
        "TrustAnchorFile",
        "On-BadSignature",
        "On-NoSignature",
        "On-KeyNotFound",
        "DNSTimeout",
    ):
        assert gone not in conf
    assert [k for k, _ in values].count("OversignHeaders") == 1
    assert conf["OversignHeaders"].startswith("from,reply-to,subject,") and conf["OversignHeaders"].endswith(
        ",autocrypt"
    )
    assert (
        rendered.files["/etc/dkimkeys/KeyTable"].strip()
        == f"opendkim._domainkey.{DOMAIN} {DOMAIN}:opendkim:/etc/dkimkeys/opendkim.private"
    )
    assert rendered.files["/etc/dkimkeys/SigningTable"].strip() == f"*@{DOMAIN} opendkim._domainkey.{DOMAIN}"


def test_directories_key_and_dropin(rendered):
    dirs = {
        rendered.state(sid)["name"]: rendered.state(sid)
        for sid, body in rendered.states.items()
        if "file.directory" in body
    }
    assert {d: (a["user"], a["group"], a["mode"]) for d, a in dirs.items()} == {
        "/etc/dkimkeys": ("opendkim", "opendkim", "0700"),
        "/etc/opendkim": ("opendkim", "opendkim", "0750"),
        "/var/spool/postfix/opendkim": ("opendkim", "opendkim", "0750"),
    }
    key = rendered.state("chatmail-opendkim-signing-key-present")
    assert (key["name"], key["domain"], key["keydir"]) == ("opendkim", DOMAIN, "/etc/dkimkeys")
    conf = rendered.state("chatmail-opendkim-conf-file-managed")
    assert conf["check_cmd"] == "opendkim -n -x"
    assert {"chatmail_dkim": "chatmail-opendkim-signing-key-present"} in conf["require"]
    dropin = rendered.files["/etc/systemd/system/opendkim.service.d/10-prevent-memory-leak.conf"]
    assert "Restart=always" in dropin and "RuntimeMaxSec=1d" in dropin
    service = rendered.state("chatmail-opendkim-service-running")
    assert service["watch"] == [{"sls": "chatmail.opendkim.config"}]
    assert service["require"] == [{"sls": "chatmail.chatmaild.service"}]


def test_forward_zones_leave_opendkim_alone(rendered, tmp_path):
    """OpenDKIM makes no DNS queries now: forwarded zones change nothing of it, and old files go."""
    zones = {"mail_domain": DOMAIN, "dns_forward_zones": {"lab.test.": ["10.213.7.1@5353"]}}
    forwarded = render("chatmail.opendkim", zones, tmp_path / "fwd")
    assert forwarded.files["/etc/opendkim.conf"] == rendered.files["/etc/opendkim.conf"]
    absent = {rendered.state(sid)["name"] for sid, body in rendered.states.items() if "file.absent" in body}
    assert absent == {"/etc/opendkim/screen.lua", "/etc/opendkim/final.lua", "/etc/opendkim/resolver.conf"}
