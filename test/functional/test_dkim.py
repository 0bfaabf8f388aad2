"""chatmail_dkim.key_present and chatmail.dkim_record through a real salt-call.

Runs Debian's opendkim-genkey (as user opendkim) on a throw-away key
directory and reads the key back with Python's cryptography package, which
is independent of the openssl CLI the module uses.  (saltfactories'
in-process Loaders were too slow to build on the shared test host, so each
call is one `salt-call --local`.)
"""

from __future__ import annotations

import base64
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from harness.imagetools import system_user, wrap
from support.salt import call, minion_dir

pytestmark = pytest.mark.skipif(
    shutil.which("opendkim-genkey") is None or os.geteuid() != 0,
    reason="needs root and Debian's opendkim-tools (user opendkim)",
)

DOMAIN = "chat.example.org"


@pytest.fixture(scope="module")
def conf(tmp_path_factory) -> Path:
    return minion_dir(tmp_path_factory.mktemp("dkim"), {"mail_domain": DOMAIN})


@pytest.fixture
def keydir():
    # opendkim-genkey runs as user opendkim, which must reach the directory
    # (pytest's tmp_path lives under a root-only 0700 directory).
    base = Path(tempfile.mkdtemp(prefix="chatmail-dkim-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base / "dkimkeys"
    finally:
        shutil.rmtree(base)


def salt_call(conf: Path, *args: str):
    # in the image with the relay's programs: the key's owner is its user opendkim
    result = call(conf, *args, wrap=wrap, timeout=180)
    assert result.data is not None, result.stderr
    return result.data, result.returncode


def key_present(conf: Path, keydir: Path, test: bool = False) -> dict:
    args = ["state.single", "chatmail_dkim.key_present", "name=opendkim", f"domain={DOMAIN}", f"keydir={keydir}"]
    if test:
        args.append("test=True")
    out, _ = salt_call(conf, *args)
    (result,) = out.values()
    return result


def test_key_generated_once_and_kept(conf, keydir):
    dry = key_present(conf, keydir, test=True)
    assert dry["result"] is None and dry["changes"] == {"generated": f"{keydir}/opendkim.private"}
    assert not keydir.exists()

    first = key_present(conf, keydir)
    assert first["result"] is True, first["comment"]
    private = keydir / "opendkim.private"
    st = private.stat()
    assert system_user(st.st_uid) == "opendkim"
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(keydir.stat().st_mode) == 0o700
    original = private.read_bytes()
    assert b"PRIVATE KEY" in original

    second = key_present(conf, keydir)
    assert second["result"] is True and second["changes"] == {}
    assert private.read_bytes() == original

    private.chmod(0o644)
    dry_fix = key_present(conf, keydir, test=True)
    assert dry_fix["result"] is None and "permissions" in dry_fix["changes"]
    assert stat.S_IMODE(private.stat().st_mode) == 0o644
    fixed = key_present(conf, keydir)
    assert fixed["result"] is True and fixed["changes"]
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes() == original


def test_dkim_record_matches_the_key(conf, keydir):
    assert key_present(conf, keydir)["result"] is True
    # domain from pillar chatmail:mail_domain
    record, rc = salt_call(conf, "chatmail.dkim_record", f"keydir={keydir}")
    assert rc == 0, record
    assert record["name"] == f"opendkim._domainkey.{DOMAIN}."
    assert record["type"] == "TXT"
    assert all(len(s) <= 255 for s in record["strings"]) and len(record["strings"]) >= 2
    assert "".join(record["strings"]) == record["value"]
    assert record["zone"] == f"{record['name']} TXT " + " ".join(f'"{s}"' for s in record["strings"])

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key((keydir / "opendkim.private").read_bytes(), password=None)
    assert key.key_size == 2048
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert record["value"] == f"v=DKIM1;k=rsa;p={base64.b64encode(der).decode()};s=email;t=s"


def test_dkim_record_without_key_fails(conf, keydir):
    result = call(conf, "chatmail.dkim_record", f"keydir={keydir}", wrap=wrap, timeout=180)
    assert result.returncode != 0
    assert "no DKIM key" in result.stdout + result.stderr
