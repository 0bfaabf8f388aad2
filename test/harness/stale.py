"""Clean up after test sessions that died without running their teardown.

Each Lab keeps everything it starts under one session folder
``/var/tmp/chatmail-test/session-<pid>-*/`` (container overlays, proxy and
DNS work dirs with their pid files).  When that pid no longer runs, the
folder's processes are stopped (after checking each pid still is the
program we started), its mounts are unmounted and the folder removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

STATE_ROOT = Path("/var/tmp/chatmail-test")


def session_dir() -> Path:
    """A new session folder for this process."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"session-{os.getpid()}-", dir=STATE_ROOT))


def remove_stale_sessions() -> list[Path]:
    removed = []
    for folder in STATE_ROOT.glob("session-*"):
        match = re.match(r"session-(\d+)-", folder.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            clean_session(folder)
            removed.append(folder)
    return removed


def clean_session(folder: Path) -> None:
    for state_file in folder.glob("*/state.json"):
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            continue
        _kill_if(state.get("init_pid"), "systemd", signal.SIGKILL, group=False)
        _kill_if(state.get("nspawn_pid"), "systemd-nspawn", signal.SIGKILL, group=False)
    for pid_file, comm in (("proxy/tinyproxy.pid", "tinyproxy"), ("dns/server.pid", "nsd")):
        try:
            pid = int((folder / pid_file).read_text())
        except (OSError, ValueError):
            continue
        _kill_if(pid, comm, signal.SIGKILL, group=True)
    for mount in reversed(_mounts_under(folder)):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def _kill_if(pid: int | None, comm: str, sig: int, group: bool) -> None:
    if not pid:
        return
    try:
        if not Path(f"/proc/{pid}/comm").read_text().startswith(comm):
            return  # gone, or the pid now belongs to something else
        (os.killpg if group else os.kill)(pid, sig)
    except OSError:
        pass


def _mounts_under(folder: Path) -> list[str]:
    prefix = str(folder) + "/"
    return [
        line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1].startswith(prefix)
    ]
