"""Hostile IMAP logins against a real Dovecot in front of a real doveauth (issue 13).

Dovecot runs on a free loopback port with the formula's own auth.conf (only
the socket path changed), so the passdb key, its escaping and the client
address field are what the relay uses.  The answers are the ones a client
sees: ``OK``, ``NO [AUTHENTICATIONFAILED]`` (permanent) or
``NO [UNAVAILABLE] Temporary authentication failure``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from chatmaild.doveauth import AuthDict
from support.dicts import make_config, running
from support.freeports import free_port
from support.salt import REPO

pytestmark = pytest.mark.skipif(
    not shutil.which("dovecot") or os.geteuid() != 0, reason="needs Dovecot and root (it runs its own instance)"
)
D = "chat.example.org"
PASSWORD = b"abcdefghijklmnop"


class HostAuthDict(AuthDict):
    """doveauth with the test process's uid/gid: this host has no vmail user."""

    def entry(self, addr, userdir, hashed):
        return (
            super()
            .entry(addr, userdir, hashed)
            .replace('"vmail"', str(os.getuid()), 1)
            .replace('"vmail"', str(os.getgid()), 1)
        )


def dovecot_conf(base: Path, port: int, auth_conf: Path) -> str:
    return f"""base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
passdb {{
  driver = dict
  args = {auth_conf}
}}
userdb {{
  driver = dict
  args = {auth_conf}
}}
mail_location = maildir:{base}/mail/%u
first_valid_uid = 0
first_valid_gid = 0
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service auth {{
  user = root
}}
service auth-worker {{
  user = root
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


@pytest.fixture
def imap(request):
    """(login function, mailbox dir); an indirect parameter sets ``account_creations_per_hour``."""
    budget = getattr(request, "param", None)
    base = Path(tempfile.mkdtemp(prefix="dc-"))  # unix socket paths must stay short
    (base / "mail").mkdir()
    config = make_config(base, **({"account_creations_per_hour": budget} if budget else {}))
    port = free_port()
    with running(HostAuthDict(config, nocreate_path=base / "nocreate")) as sock:
        auth_conf = base / "auth.conf"
        text = (REPO / "chatmail/dovecot/files/auth.conf").read_text()
        auth_conf.write_text(text.replace("/run/doveauth/doveauth.socket", str(sock)))
        conf = base / "dovecot.conf"
        conf.write_text(dovecot_conf(base, port, auth_conf))
        proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)])
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)

            def login(user: bytes, password: bytes) -> bytes:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    f = s.makefile("rb")
                    f.readline()
                    s.sendall(b"a LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(user), user, len(password), password))
                    return f.readline()

            yield login, config.mailboxes_dir
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            shutil.rmtree(base, ignore_errors=True)


def addr(local: str) -> bytes:
    return f"{local}@{D}".encode()


def test_good_first_login_and_again(imap):
    login, mail = imap
    assert login(addr("abcdefghi"), PASSWORD).startswith(b"a OK")
    assert login(addr("abcdefghi"), PASSWORD).startswith(b"a OK")
    assert login(addr("abcdefghi"), b"wrong-password-1").startswith(b"a NO [AUTHENTICATIONFAILED]")


@pytest.mark.parametrize("local", ["xxx..xxxx", "xxxxxxxx.", ".xxxxxxxx"])
def test_addresses_that_are_not_dot_atoms_never_become_accounts(imap, local):
    login, mail = imap
    assert login(addr(local), PASSWORD).startswith(b"a NO [AUTHENTICATIONFAILED]")
    assert not (mail / f"{local}@{D}").exists()


@pytest.mark.parametrize(
    "user,password",
    [
        (addr("x" * 300), PASSWORD),
        (addr("ffffffffa"), b"abcdefghij\xffklmnop"),
        (addr("ctrlctrlc"), b"abcdefghij\x01klmnop"),
    ],
    ids=["300-char local part", "password byte 0xFF", "control byte in password"],
)
def test_permanent_problems_are_permanent_failures(imap, user, password):
    login, mail = imap
    assert login(user, password).startswith(b"a NO [AUTHENTICATIONFAILED]")
    assert [p.name for p in mail.iterdir()] == []


def test_nul_ends_the_password_before_doveauth_sees_it(imap):
    """Dovecot's LOGIN ends a password at NUL; the length rule holds for what it uses."""
    login, mail = imap
    assert login(addr("nulnulnul"), b"abc\0defghijklmnop").startswith(b"a NO [AUTHENTICATIONFAILED]")
    assert not (mail / f"nulnulnul@{D}").exists()


@pytest.mark.parametrize("imap", [2], indirect=True)
def test_creation_budget_per_client_address(imap):
    """The client address reaches doveauth in the passdb key; the third new account waits."""
    login, mail = imap
    assert login(addr("budget001"), PASSWORD).startswith(b"a OK")
    assert login(addr("budget002"), PASSWORD).startswith(b"a OK")
    assert login(addr("budget003"), PASSWORD).startswith(b"a NO [UNAVAILABLE]")
    assert not (mail / f"budget003@{D}").exists()
    assert login(addr("budget001"), PASSWORD).startswith(b"a OK")  # existing accounts are not limited
