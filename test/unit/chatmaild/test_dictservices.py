"""chatmail-dicts: the three dict services in one process, each on its own socket, as the unit runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from chatmaild.config import render_ini
from support import chatmaild_env
from support.dicts import ADDR, PASSWORD, entry, passdb, wait_connect

GUID = "0" * 32
DAY = 1_699_920_000  # 2023-11-14 00:00:00 UTC


@pytest.fixture
def sockets():
    """Three socket paths in a short directory (unix socket paths have 108 bytes at most)."""
    folder = Path(tempfile.mkdtemp(prefix="dicts-"))
    yield {name: folder / f"{name}.socket" for name in ("doveauth", "lastlogin", "metadata")}
    shutil.rmtree(folder, ignore_errors=True)


def write_ini(tmp_path, config) -> Path:
    ini = tmp_path / "chatmail.ini"
    ini.write_text(render_ini(config.settings).replace("/home/vmail/passdb.sqlite", str(tmp_path / "passdb.sqlite")))
    return ini


def test_one_process_serves_all_three(tmp_path, config, sockets):
    ini = write_ini(tmp_path, config)
    args = [f"{name}={path}" for name, path in sockets.items()]
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatmaild.dictservices", str(ini), *args],
        env=chatmaild_env(),
        stderr=subprocess.PIPE,
    )
    try:
        auth = wait_connect(sockets["doveauth"])
        assert entry(passdb(auth, ADDR, PASSWORD))["addr"] == ADDR  # the account is made
        auth.close()
        password = config.mailboxes_dir / ADDR / "password"
        os.utime(password, (1_600_000_000, 1_600_000_000))
        last = wait_connect(sockets["lastlogin"])
        last.hello("lastlogin")
        assert last.transaction("1", ADDR, [(f"shared/last-login/{ADDR}", str(DAY + 3600))]) == "O1"
        assert password.stat().st_mtime == DAY
        last.close()
        meta = wait_connect(sockets["metadata"])
        meta.hello("metadata")
        assert meta.transaction("1", ADDR, [(f"priv/{GUID}/devicetoken", "tok")]) == "O1"
        assert meta.lookup(f"priv/{GUID}/devicetoken", ADDR) == "Otok"
        meta.close()
        assert proc.poll() is None
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    log = err.decode()
    for name in ("doveauth", "lastlogin", "metadata"):
        assert f"serving on {sockets[name]}" in log, log


def test_a_service_that_cannot_start_stops_the_process_before_any_socket(tmp_path, config, sockets):
    """chatmail-metadata needs the mailboxes folder; without it nothing is served (systemd retries)."""
    shutil.rmtree(config.mailboxes_dir)
    ini = write_ini(tmp_path, config)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "chatmaild.dictservices", str(ini), f"metadata={sockets['metadata']}"],
        env=chatmaild_env(),
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 1 and time.monotonic() - started < 30
    assert b"does not exist" in proc.stderr
    assert not sockets["metadata"].exists()


@pytest.mark.parametrize(
    "args",
    [[], ["doveauth"], ["doveauth="], ["nosuch=/tmp/x"], ["doveauth=/tmp/a", "doveauth=/tmp/b"]],
)
def test_usage_error(args):
    proc = subprocess.run(
        [sys.executable, "-m", "chatmaild.dictservices", "x.ini", *args], capture_output=True, env=chatmaild_env()
    )
    assert proc.returncode == 2 and b"usage" in proc.stderr
