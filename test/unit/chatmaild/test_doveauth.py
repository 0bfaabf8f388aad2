"""doveauth over a real unix socket: passdb/userdb, create-on-login, iterate."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from chatmaild.doveauth import AuthDict, split_key_fields
from chatmaild.hashing import hash_password, sha512_crypt, verify_password
from support.dicts import ADDR, PASSWORD, DictClient, assert_survives_garbage, entry, esc, passdb, running, wait_connect


@pytest.fixture
def nocreate(tmp_path):
    return tmp_path / "chatmail-nocreate"


@pytest.fixture
def auth(config, nocreate):
    proxy = AuthDict(config, nocreate_path=nocreate)
    with running(proxy) as path:
        client = DictClient(path)
        client.hello("auth")
        yield client
        client.close()


def test_first_login_creates_account(auth, config):
    data = entry(passdb(auth, ADDR, PASSWORD))
    userdir = config.mailboxes_dir / ADDR
    assert data["addr"] == ADDR
    assert data["home"] == str(userdir)
    assert (data["uid"], data["gid"]) == ("vmail", "vmail")
    stored = (userdir / "password").read_text()
    assert data["password"] == stored
    assert stored.startswith("{SHA512-CRYPT}$6$") and not stored.endswith("\n")
    assert verify_password(PASSWORD, stored)
    assert (userdir / "enforceE2EEincoming").read_bytes() == b""
    assert not [p for p in userdir.iterdir() if ".tmp" in p.name]


def test_existing_account_keeps_its_password(auth, config):
    first = entry(passdb(auth, ADDR, PASSWORD))["password"]
    again = entry(passdb(auth, ADDR, "another-password-2"))["password"]
    assert again == first
    assert not verify_password("another-password-2", again)


def test_userdb(auth, config):
    assert auth.lookup(f"shared/userdb/{ADDR}", ADDR) == "N"
    passdb(auth, ADDR, PASSWORD)
    data = entry(auth.lookup(f"shared/userdb/{ADDR}", ADDR))
    assert data["addr"] == ADDR and data["home"] == str(config.mailboxes_dir / ADDR)
    # the user field is optional (Dovecot < 2.3.17)
    assert entry(auth.lookup(f"shared/userdb/{ADDR}"))["addr"] == ADDR


def test_other_domain_and_bad_keys(auth):
    assert passdb(auth, "abcdefghi@other.example.org", PASSWORD) == "N"
    assert auth.lookup("shared/userdb/abcdefghi@other.example.org") == "N"
    assert auth.lookup("shared/otherdb/x") == "F"
    assert auth.lookup(f'priv/guid/passdb/{PASSWORD}"{ADDR}') == "F"
    assert auth.lookup("shared/passdb/only-one-field") == "F"
    assert auth.lookup("shared/passdb/pw\\") == "F"


@pytest.mark.parametrize(
    "addr,password,why",
    [
        ("abcdefghi@chat.example.org", "short", "password too short"),
        ("abcdefgh@chat.example.org", PASSWORD, "local part too short"),
        ("abcdefghij@chat.example.org", PASSWORD, "local part too long"),
        ("abcdEfghi@chat.example.org", PASSWORD, "upper case"),
        ("abcd+fghi@chat.example.org", PASSWORD, "plus sign"),
        ("abc@efghi@chat.example.org", PASSWORD, "two @"),
        ("../../etc@chat.example.org", PASSWORD, "path"),
        ("xxx..xxxx@chat.example.org", PASSWORD, "consecutive dots"),
        ("xxxxxxxx.@chat.example.org", PASSWORD, "trailing dot"),
        (".xxxxxxxx@chat.example.org", PASSWORD, "leading dot"),
        ("........a@chat.example.org", PASSWORD, "only dots"),
        (ADDR, "abcdefghij\0klmnop", "NUL in the password (tab-escaped by Dovecot's client)"),
        (ADDR, "abcdefghij\tklmnop", "tab in the password"),
        (ADDR, "abcdefghij\x01klmnop", "control byte in the password"),
        (ADDR, "abcdefghij\x7fklmnop", "DEL in the password"),
        (ADDR, "\n" * 12, "only line breaks"),
    ],
)
def test_creation_rules_refuse(auth, config, addr, password, why):
    assert passdb(auth, addr, password) == "N", why
    assert not (config.mailboxes_dir / addr).exists()


def test_dots_inside_the_local_part_are_fine(auth, config):
    entry(passdb(auth, "abc.de.fg@chat.example.org", PASSWORD))
    assert (config.mailboxes_dir / "abc.de.fg@chat.example.org" / "password").exists()


@pytest.mark.parametrize("local", ["x" * 65, "x" * 300, "x" * 1000])
def test_overlong_local_part_is_a_permanent_refusal(auth, local):
    """N (Dovecot: "Authentication failed"), not F ("Temporary authentication failure")."""
    addr = f"{local}@chat.example.org"
    assert passdb(auth, addr, PASSWORD) == "N"
    assert auth.lookup(f"shared/userdb/{addr}", addr) == "N"


def test_password_not_utf8_is_a_permanent_refusal(auth, config):
    line = b'Lshared/passdb/abcdefghij\xffklmnop"' + ADDR.encode() + b"\t" + ADDR.encode()
    assert auth.request(line) == "N"
    assert not (config.mailboxes_dir / ADDR).exists()
    # the connection keeps serving
    entry(passdb(auth, ADDR, PASSWORD))


def test_existing_account_with_old_style_address_still_logs_in(auth, config):
    """Rules for new accounts do not lock out an account made before they existed."""
    old = "xxx..xxxx@chat.example.org"
    userdir = config.mailboxes_dir / old
    userdir.mkdir(parents=True)
    (userdir / "password").write_text(hash_password(PASSWORD))
    assert entry(passdb(auth, old, PASSWORD))["addr"] == old


def test_password_exactly_min_length_is_enough(auth):
    entry(passdb(auth, ADDR, "x" * 9))


def test_nocreate_file_blocks_creation_only(auth, nocreate):
    passdb(auth, ADDR, PASSWORD)
    nocreate.touch()
    assert passdb(auth, "zyxwvutsr@chat.example.org", PASSWORD) == "N"
    assert entry(passdb(auth, ADDR, PASSWORD))["addr"] == ADDR
    nocreate.unlink()
    entry(passdb(auth, "zyxwvutsr@chat.example.org", PASSWORD))


def test_empty_password_file_recreates(auth, config):
    old = entry(passdb(auth, ADDR, PASSWORD))["password"]
    (config.mailboxes_dir / ADDR / "password").write_text("")
    assert auth.lookup(f"shared/userdb/{ADDR}") == "N"
    new = entry(passdb(auth, ADDR, "new-password-3"))["password"]
    assert new != old and verify_password("new-password-3", new)


def test_password_with_separator_and_escapes(auth, config):
    tricky = 'pa"ss\\wo\'rd x"'
    stored = entry(passdb(auth, ADDR, tricky))["password"]
    assert verify_password(tricky, stored)
    assert entry(passdb(auth, ADDR, tricky))["password"] == stored


def test_same_password_for_two_users(auth):
    a = entry(passdb(auth, "aaaaaaaaa@chat.example.org", PASSWORD))
    b = entry(passdb(auth, "bbbbbbbbb@chat.example.org", PASSWORD))
    assert a["addr"] != b["addr"]
    assert verify_password(PASSWORD, a["password"]) and verify_password(PASSWORD, b["password"])


def test_iterate_userdb(auth, config):
    for local in ("aaaaaaaaa", "bbbbbbbbb"):
        passdb(auth, f"{local}@chat.example.org", PASSWORD)
    (config.mailboxes_dir / "pending_notifications").mkdir()
    rows = auth.iterate("shared/userdb/")
    assert rows == [
        "Oshared/userdb/aaaaaaaaa@chat.example.org\t",
        "Oshared/userdb/bbbbbbbbb@chat.example.org\t",
    ]
    assert auth.iterate("shared/userdb/", max_rows=1) == rows[:1]
    # unknown path: still the terminator (defect #7 upstream)
    assert auth.iterate("shared/other/") == []
    assert auth.lookup(f"shared/userdb/{ADDR}") == "N"  # connection still in step


def test_concurrent_first_logins_make_one_account(config, nocreate):
    """Two servers (as two doveauth processes would) race on one address."""
    proxies = [AuthDict(config, nocreate_path=nocreate) for _ in range(2)]
    results: dict[str, str] = {}
    with running(proxies[0]) as path1, running(proxies[1]) as path2:
        barrier = threading.Barrier(4)

        def login(name, path, password):
            client = DictClient(path)
            barrier.wait()
            results[name] = passdb(client, ADDR, password)
            client.close()

        threads = [
            threading.Thread(target=login, args=("a1", path1, PASSWORD)),
            threading.Thread(target=login, args=("a2", path2, PASSWORD)),
            threading.Thread(target=login, args=("b1", path1, "different-pw-9")),
            threading.Thread(target=login, args=("b2", path2, "different-pw-9")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    stored = (config.mailboxes_dir / ADDR / "password").read_text()
    hashes = {entry(r)["password"] for r in results.values()}
    assert hashes == {stored}, "every login must see the one stored hash"
    # exactly one of the two passwords won; Dovecot accepts only that one
    assert verify_password(PASSWORD, stored) != verify_password("different-pw-9", stored)


def test_hash_matches_openssl():
    expected = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "saltsaltsalt1234", "pässwörd"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert sha512_crypt("pässwörd", "saltsaltsalt1234") == expected
    assert hash_password("x") != hash_password("x")  # random salt


def test_split_key_fields():
    assert split_key_fields('pw"user') == ["pw", "user"]
    assert split_key_fields('p\\"w\\\\"u') == ['p"w\\', "u"]
    with pytest.raises(ValueError):
        split_key_fields("abc\\")


def test_survives_malformed_input(config, nocreate):
    with running(AuthDict(config, nocreate_path=nocreate)) as path:

        def probe(client):
            assert entry(passdb(client, ADDR, PASSWORD))["addr"] == ADDR

        assert_survives_garbage(path, probe)


def test_main_serves_socket(tmp_path, config):
    """python3 -m chatmaild.doveauth <socket> <ini> serves and unlinks a stale socket."""
    import sys
    import tempfile
    from pathlib import Path

    from chatmaild.config import render_ini

    ini = tmp_path / "chatmail.ini"
    ini.write_text(render_ini(config.settings).replace("/home/vmail/passdb.sqlite", str(tmp_path / "passdb.sqlite")))
    sockdir = Path(tempfile.mkdtemp(prefix="dict-"))
    sock = sockdir / "doveauth.socket"
    import socket as socketmod

    stale = socketmod.socket(socketmod.AF_UNIX)
    stale.bind(str(sock))
    stale.close()
    env = dict(os.environ, PYTHONPATH=str(Path(__import__("chatmaild").__file__).parent.parent))
    proc = subprocess.Popen([sys.executable, "-m", "chatmaild.doveauth", str(sock), str(ini)], env=env)
    try:
        client = wait_connect(sock)
        assert entry(passdb(client, ADDR, PASSWORD))["addr"] == ADDR
        client.close()
    finally:
        proc.terminate()
        proc.wait(5)


# -- account creation budget per client address (issue 13) ----------------------


def passdb_from(client: DictClient, addr: str, source: str, password: str = PASSWORD) -> str:
    """The passdb key as auth.conf builds it: password"user"client address."""
    return client.lookup(f'shared/passdb/{esc(password)}"{esc(addr)}"{source}', addr)


@pytest.fixture
def budget_auth(tmp_path, nocreate):
    from support.dicts import make_config

    proxy = AuthDict(make_config(tmp_path, account_creations_per_hour=2), nocreate_path=nocreate)
    with running(proxy) as path:
        client = DictClient(path)
        yield client, proxy
        client.close()


def test_creation_budget_per_source(budget_auth, tmp_path):
    auth, _ = budget_auth
    a, b, c = (f"budget{i:03d}@chat.example.org" for i in range(3))
    assert entry(passdb_from(auth, a, "192.0.2.7"))
    assert entry(passdb_from(auth, b, "192.0.2.7"))
    # the third new account from the same address: temporary failure, nothing created
    assert passdb_from(auth, c, "192.0.2.7") == "F"
    assert not (tmp_path / "mail" / c).exists()
    # existing accounts still log in from there; other addresses still create
    assert entry(passdb_from(auth, a, "192.0.2.7"))["addr"] == a
    assert entry(passdb_from(auth, c, "198.51.100.1"))["addr"] == c


def test_creation_budget_counts_an_ipv6_64_as_one_source(budget_auth):
    auth, _ = budget_auth
    addrs = [f"budget6{i:02d}@chat.example.org" for i in range(3)]
    assert entry(passdb_from(auth, addrs[0], "2001:db8:1:2::1"))
    assert entry(passdb_from(auth, addrs[1], "2001:db8:1:2:ffff::9"))
    assert passdb_from(auth, addrs[2], "2001:db8:1:2::abcd") == "F"
    assert entry(passdb_from(auth, addrs[2], "2001:db8:1:3::1"))


def test_creation_budget_refusals_cost_nothing(budget_auth):
    """A login refused by the rules (bad address) does not use up the budget."""
    auth, _ = budget_auth
    for i in range(5):
        assert passdb_from(auth, f"bad..{i:04d}@chat.example.org", "192.0.2.8") == "N"
    assert entry(passdb_from(auth, "budget100@chat.example.org", "192.0.2.8"))


def test_creation_budget_slides(tmp_path, nocreate):
    from support.dicts import make_config

    now = [1000.0]
    proxy = AuthDict(make_config(tmp_path, account_creations_per_hour=1), nocreate_path=nocreate)
    proxy.creations.clock = lambda: now[0]
    assert proxy.passdb("slide0001@chat.example.org", PASSWORD, "192.0.2.9")
    with pytest.raises(Exception, match="within the last hour"):
        proxy.passdb("slide0002@chat.example.org", PASSWORD, "192.0.2.9")
    now[0] += 3601
    assert proxy.passdb("slide0002@chat.example.org", PASSWORD, "192.0.2.9")


@pytest.mark.parametrize("source", ["", "not-an-address", "127.0.0.1%lo"])
def test_logins_without_an_address_are_not_counted(budget_auth, source):
    auth, _ = budget_auth
    for i in range(3):
        assert entry(passdb_from(auth, f"noaddr{i:03d}@chat.example.org", source))


def test_source_key():
    from chatmaild.doveauth import source_key

    assert source_key("192.0.2.1") == "192.0.2.1"
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_key("2001:db8::1") == "2001:db8::/64"
    assert source_key("") == source_key("x") == ""
