"""Headless Chromium (Debian's ``chromium``) confined to the test bridge, to look at the relay's pages.

Chromium knows many hosts of its own (updates, safe browsing, sync, field
trials) and would call them, so it never runs on the host's network: it
runs in a :class:`dcclient.ClientNamespace`, whose only link is the test
bridge, with no default route, and whose hosts file names only the relays.
The flags below switch off what calls home anyway, so nothing is even
tried.  Each run gets a fresh profile (``--user-data-dir``), so no state
carries over between pages or test sessions.

The relays' certificates are self-signed (or from the test CA), which
Chromium is told to accept: the test is about what a reader sees, not
about PKI.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness import lifecycle

CHROMIUM = "chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--ignore-certificate-errors",
    "--hide-scrollbars",
)
# a page of the relay loads in well under a second; 2 shared cores and a cold start
TIMEOUT = 60
WINDOW = (1024, 1000)  # holds the index page with its QR code at once (it ends at ~650 px)


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    if shutil.which(CHROMIUM) is None:
        return "needs Debian's chromium (scripts/bootstrap installs it)"
    return None


class Browser:
    """One headless Chromium run per call, inside ``namespace`` (a ClientNamespace)."""

    def __init__(self, namespace, workdir: Path | None = None):
        self.namespace = namespace
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="browser-"))
        wait_for_settled_addresses(namespace.name)

    def visit(self, url: str, screenshot: Path, window: tuple[int, int] = WINDOW) -> str:
        """The document Chromium built from ``url``, serialised; a PNG of the page as it shows in a
        ``window`` sized viewport goes to ``screenshot`` (one browser run for both)."""
        proc = self._run(f"--window-size={window[0]},{window[1]}", f"--screenshot={screenshot}", "--dump-dom", url)
        if not screenshot.is_file() or screenshot.stat().st_size == 0:
            # (what happens when the page does not load, e.g. net::ERR_NAME_NOT_RESOLVED)
            raise AssertionError(f"chromium wrote no screenshot of {url} to {screenshot}:\n{_complaints(proc)}")
        return proc.stdout

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        profile = Path(tempfile.mkdtemp(prefix="profile-", dir=self.workdir))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(profile)}
        argv = self.namespace.command(CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args)
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, env=env, timeout=TIMEOUT, preexec_fn=lifecycle.die_with_parent
            )
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        if proc.returncode != 0:
            raise AssertionError(f"chromium {' '.join(args)} exited {proc.returncode}:\n{_complaints(proc)}")
        return proc


def wait_for_settled_addresses(netns: str, timeout: float = 15) -> None:
    """Wait until no address in ``netns`` is tentative (IPv6 duplicate address detection, a second
    or two after the link came up).  Chromium watches its network: an address that settles while a
    page loads aborts the load with net::ERR_NETWORK_CHANGED."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            ["ip", "-n", netns, "addr", "show", "tentative"], capture_output=True, text=True, check=True
        ).stdout
        if not out.strip():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"addresses in {netns} still tentative after {timeout} s:\n{out}")
        time.sleep(0.2)


def _complaints(proc: subprocess.CompletedProcess) -> str:
    """Chromium's stderr without the D-Bus lines (there is no bus in the namespace, and none is needed)."""
    return "\n".join(line for line in proc.stderr.splitlines() if "dbus" not in line.lower())[-2000:]


def decode_qr(image: Path) -> list[str]:
    """Every QR code ``zbarimg`` finds in ``image`` (a screenshot), as text."""
    proc = subprocess.run(
        ["zbarimg", "-q", "--raw", "-Sdisable", "-Sqrcode.enable", str(image)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    # zbarimg exits 4 when it finds no code: an empty list, for the caller to judge
    if proc.returncode not in (0, 4):
        raise AssertionError(f"zbarimg {image} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout.splitlines()
