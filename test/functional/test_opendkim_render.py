"""chatmail.opendkim rendered through Salt, then loaded by OpenDKIM itself.

`opendkim -n -x FILE` parses the config, opens the KeyTable/SigningTable
and compiles the Lua policy scripts, so a passing run means OpenDKIM would
start with these files.  Paths are moved into a tmp dir for the check.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from saltrender import REPO, Rendered, render

pytestmark = pytest.mark.skipif(shutil.which("opendkim") is None, reason="needs Debian's opendkim and opendkim-tools")

DOMAIN = "chat.example.org"
LUA = REPO / "chatmail/opendkim/files"


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


def install_tree(r: Rendered, root: Path, final_lua: str | None = None) -> Path:
    """The rendered files under ``root`` with a real key; returns the conf path."""
    (root / "dkimkeys").mkdir(parents=True)
    (root / "opendkim").mkdir()
    subprocess.run(["opendkim-genkey", "-D", str(root / "dkimkeys"), "-d", DOMAIN, "-s", "opendkim"], check=True)
    moves = {"/etc/dkimkeys/": f"{root}/dkimkeys/", "/etc/opendkim/": f"{root}/opendkim/",
             "/var/spool/postfix/opendkim/": f"{root}/"}
    for path, text in r.files.items():
        if path.startswith(("/etc/dkimkeys/", "/etc/opendkim/")):
            for old, new in moves.items():
                text = text.replace(old, new)
            dest = Path(path.replace("/etc/dkimkeys/", f"{root}/dkimkeys/").replace("/etc/opendkim/", f"{root}/opendkim/"))
            dest.write_text(text)
    if final_lua is not None:
        (root / "opendkim/final.lua").write_text(final_lua)
    conf = r.files["/etc/opendkim.conf"]
    for old, new in moves.items():
        conf = conf.replace(old, new)
    (root / "opendkim.conf").write_text(conf)
    return root / "opendkim.conf"


def test_opendkim_accepts_config_tables_and_lua(rendered, tmp_path):
    conf = install_tree(rendered, tmp_path)
    proc = subprocess.run(["opendkim", "-n", "-x", str(conf)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_opendkim_check_rejects_broken_lua(rendered, tmp_path):
    conf = install_tree(rendered, tmp_path, final_lua="if odkim then\n")
    assert subprocess.run(["opendkim", "-n", "-x", str(conf)], capture_output=True).returncode != 0


def test_sign_verify_decided_by_daemon_name(rendered):
    values = conf_values(rendered.files["/etc/opendkim.conf"])
    conf = dict(values)
    assert conf["MTA"] == "ORIGINATING"
    assert conf["InternalHosts"] == "-"
    assert conf["Domain"] == DOMAIN and conf["Selector"] == "opendkim"
    assert conf["KeyTable"] == "/etc/dkimkeys/KeyTable"
    assert conf["SigningTable"] == "refile:/etc/dkimkeys/SigningTable"
    assert conf["Socket"] == "local:/var/spool/postfix/opendkim/opendkim.sock"
    assert conf["UMask"] == "007" and conf["DNSTimeout"] == "60"
    assert [k for k, _ in values].count("OversignHeaders") == 1
    assert conf["OversignHeaders"].startswith("from,reply-to,subject,") and conf["OversignHeaders"].endswith(",autocrypt")
    assert rendered.files["/etc/dkimkeys/KeyTable"].strip() == f"opendkim._domainkey.{DOMAIN} {DOMAIN}:opendkim:/etc/dkimkeys/opendkim.private"
    assert rendered.files["/etc/dkimkeys/SigningTable"].strip() == f"*@{DOMAIN} opendkim._domainkey.{DOMAIN}"


def test_lua_compiles_with_opendkims_lua():
    luac = shutil.which("luac5.3") or pytest.skip("needs luac5.3 (Debian lua5.3; opendkim links liblua5.3)")
    subprocess.run([luac, "-p", str(LUA / "screen.lua"), str(LUA / "final.lua")], check=True)


def test_final_lua_follows_the_seed():
    text = (LUA / "final.lua").read_text()
    assert 'odkim.get_mtasymbol(ctx, "{daemon_name}") == "ORIGINATING"' in text
    assert "for i = nsigs - 1, 0, -1 do" in text and 'odkim.del_header(ctx, "DKIM-Signature", i)' in text
    assert "for _ = 1, 10 do" in text and 'odkim.del_header(ctx, "Authentication-Results", 0)' in text
    assert 'odkim.set_reply(ctx, "554", "5.7.1", error_msg)' in text
    assert '"No valid DKIM signature found."' in text
    assert "internal_ip" not in text


def test_directories_key_and_dropin(rendered):
    dirs = {rendered.state(sid)["name"]: rendered.state(sid) for sid, body in rendered.states.items() if "file.directory" in body}
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


def test_forward_zones_reach_opendkims_own_resolver_only_when_set(rendered, tmp_path):
    """OpenDKIM resolves keys itself: forwarded zones need its resolver.conf (and nothing else does)."""
    assert "ResolverConfiguration" not in rendered.files["/etc/opendkim.conf"]
    assert "/etc/opendkim/resolver.conf" not in rendered.files
    zones = {"mail_domain": DOMAIN, "dns_forward_zones": {"lab.test.": ["10.213.7.1@5353"]}}
    forwarded = render("chatmail.opendkim", zones, tmp_path / "fwd")
    assert "ResolverConfiguration   /etc/opendkim/resolver.conf" in forwarded.files["/etc/opendkim.conf"]
    resolver = forwarded.files["/etc/opendkim/resolver.conf"]
    assert 'name: "lab.test."' in resolver and "10.213.7.1@5353" in resolver
