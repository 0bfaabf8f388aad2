"""Teardown that always runs: on normal exit, on exceptions and on SIGTERM/SIGHUP.

Fixture finalizers are the normal path; this is the safety net for a
session that dies between setup and finalizer.  Everything the harness
starts (bridge, daemons, containers, mounts) registers its cleanup here and
unregisters it when it was cleaned up the normal way.  Cleanups run in
reverse order of registration; a failing one does not stop the others.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable

_lock = threading.RLock()
_cleanups: dict[int, tuple[str, Callable[[], None]]] = {}
_counter = 0
_installed = False


def register(what: str, cleanup: Callable[[], None]) -> int:
    """Remember ``cleanup``; returns a handle for :func:`unregister`."""
    global _counter
    _install()
    with _lock:
        _counter += 1
        _cleanups[_counter] = (what, cleanup)
        return _counter


def unregister(handle: int | None) -> None:
    with _lock:
        _cleanups.pop(handle, None)


def run_all() -> None:
    """Run every registered cleanup, newest first."""
    with _lock:
        items = sorted(_cleanups.items(), reverse=True)
        _cleanups.clear()
    for _, (what, cleanup) in items:
        try:
            cleanup()
        except Exception as exc:  # keep tearing down the rest
            print(f"harness: cleanup of {what} failed: {exc}", file=sys.stderr)


def _on_signal(signum, frame) -> None:
    run_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(run_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when this process dies, even by SIGKILL.

    For nspawn, SIGTERM means a clean poweroff of the container; what is
    left after that (the overlay mount, the state dir) is removed by
    stale.remove_stale_sessions() at the next start.
    """
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_daemon(cmd: list[str], log_path, pid_path, persistent: bool):
    """Start a harness daemon (nsd, tinyproxy) in the foreground of its own session, logging
    to ``log_path``; it dies with this process unless ``persistent`` (deploy-local keeps it)."""
    import subprocess

    log = open(log_path, "ab")
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        preexec_fn=None if persistent else die_with_parent,
    )
    pid_path.write_text(str(process.pid))
    return process


def stop_process(process, group: int | None = None, grace: float = 5) -> None:
    """Stop a daemon the harness started: SIGTERM (to process group ``group`` when the
    daemon forks, as nsd does), then SIGKILL if it is still there after ``grace`` seconds."""
    import subprocess

    if group:
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            pass
    elif process is not None and process.poll() is None:
        process.terminate()
    if process is None:
        return
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
