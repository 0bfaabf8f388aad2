"""TURN: the rendered coturn config, with the secret assembled by our script, runs a real coturn
that grants an allocation only to credentials minted from that secret (as chatmail-metadata does)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from support.salt import render

D = "chat.example.org"
MAGIC = 0x2112A442
pytestmark = pytest.mark.skipif(not shutil.which("turnserver"), reason="needs Debian's coturn")


@pytest.fixture(scope="module")
def turn(tmp_path_factory):
    return render("chatmail.turn", {"mail_domain": D}, tmp_path_factory.mktemp("turn"))


def test_config_and_secret_handling(turn):
    conf = turn.files["/etc/turnserver.conf"].splitlines()
    assert "listening-port=3478" in conf and f"realm={D}" in conf and "use-auth-secret" in conf
    assert not any(line.startswith("static-auth-secret") for line in conf)
    secret = turn.state("chatmail-turn-secret-cmd-run")
    assert secret["creates"] == "/etc/chatmail-turn/secret"
    assert "chown root:vmail" in secret["name"] and "chmod 0640" in secret["name"]
    dropin = turn.files["/etc/systemd/system/coturn.service.d/chatmail.conf"]
    assert "ExecStart=\nExecStart=/usr/bin/turnserver -c /run/chatmail-turn/turnserver.conf" in dropin
    assert "RestartSec=2" in dropin  # Debian's 100 ms would spend the start limit in half a second


def attr(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def message(kind: int, attrs: bytes, key: bytes | None = None) -> bytes:
    txid = os.urandom(12)
    if key is None:
        return struct.pack("!HHI", kind, len(attrs), MAGIC) + txid + attrs
    header = struct.pack("!HHI", kind, len(attrs) + 24, MAGIC) + txid
    mac = hmac.new(key, header + attrs, hashlib.sha1).digest()
    return header + attrs + attr(0x0008, mac)


def parse(data: bytes) -> tuple[int, dict[int, bytes]]:
    kind, length, _ = struct.unpack("!HHI", data[:8])
    attrs, pos = {}, 20
    while pos < 20 + length:
        t, n = struct.unpack("!HH", data[pos : pos + 4])
        attrs[t] = data[pos + 4 : pos + 4 + n]
        pos += 4 + n + (-n % 4)
    return kind, attrs


def ask(sock, msg: bytes, port: int):
    sock.sendto(msg, ("127.0.0.1", port))
    return parse(sock.recv(2048))


def test_real_coturn_accepts_only_secret_credentials(turn, tmp_path):
    script = turn.write("/usr/local/sbin/chatmail-turn-config", tmp_path / "assemble")
    conf = turn.write("/etc/turnserver.conf", tmp_path / "turnserver.conf")
    (tmp_path / "secret").write_text("s3cret-made-once\n")
    out = tmp_path / "run.conf"
    subprocess.run(["sh", str(script), str(conf), str(tmp_path / "secret"), str(out)], check=True)
    assert "static-auth-secret=s3cret-made-once" in out.read_text().splitlines()
    assert oct(out.stat().st_mode & 0o777) == "0o600"

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            "turnserver",
            "-c",
            str(out),
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--pidfile=",
            "--no-stdout-log",
            "--log-file=/dev/null",
            "--allow-loopback-peers",
            "--no-tcp",
            "--min-port=49152",
            "--max-port=49200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(0.3)
            for _ in range(40):  # STUN binding answers once coturn is up
                try:
                    kind, _ = ask(c, message(0x0001, b""), port)
                    break
                except (TimeoutError, ConnectionRefusedError):
                    time.sleep(0.1)
            assert kind == 0x0101
            udp = attr(0x0019, bytes([17, 0, 0, 0]))
            kind, attrs = ask(c, message(0x0003, udp), port)
            assert kind == 0x0113 and attrs[0x0009][2:4] == bytes([4, 1])  # 401
            realm, nonce = attrs[0x0014], attrs[0x0015]
            assert realm == D.encode()

            def allocate(secret: str) -> int:
                user = f"{int(time.time()) + 3600}:alice"
                password = base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()).decode()
                key = hashlib.md5(f"{user}:{D}:{password}".encode()).digest()
                body = udp + attr(0x0006, user.encode()) + attr(0x0014, realm) + attr(0x0015, nonce)
                return ask(c, message(0x0003, body, key), port)[0]

            assert allocate("wrong-secret") == 0x0113
            assert allocate("s3cret-made-once") == 0x0103  # Allocate success
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _assemble_in_netns(turn, tmp_path, wait: int, then: str = "") -> subprocess.CompletedProcess:
    """Run the assemble script in a new network namespace (loopback only), after ``then`` runs there."""
    script = turn.write("/usr/local/sbin/chatmail-turn-config", tmp_path / "assemble")
    conf = turn.write("/etc/turnserver.conf", tmp_path / "turnserver.conf")
    (tmp_path / "secret").write_text("s3cret\n")
    inner = f"ip link set lo up; {then} CHATMAIL_TURN_ADDRESS_WAIT={wait} sh {script} {conf} {tmp_path / 'secret'} {tmp_path / 'out'}"
    return subprocess.run(["unshare", "--net", "sh", "-c", inner], capture_output=True, text=True, timeout=60)


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for unshare --net")


@needs_root
def test_coturn_start_fails_clearly_on_a_host_with_only_loopback(turn, tmp_path):
    """coturn would exit with 'Cannot configure any meaningful IP listener address'; ours says why first."""
    proc = _assemble_in_netns(turn, tmp_path, wait=1)
    assert proc.returncode == 1
    assert "no global IP address after 1s" in proc.stderr
    assert not (tmp_path / "out").exists()


@needs_root
def test_coturn_start_waits_for_an_address_that_comes_late(turn, tmp_path):
    """An interface configured two seconds after coturn's start (boot, a slow network) is waited for."""
    late = "(sleep 2; ip addr add 192.0.2.7/32 dev lo scope global) &"
    started = time.monotonic()
    proc = _assemble_in_netns(turn, tmp_path, wait=20, then=late)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started >= 2
    assert "static-auth-secret=s3cret" in (tmp_path / "out").read_text().splitlines()
