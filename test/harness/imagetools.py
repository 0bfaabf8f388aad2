"""The relay's own programs (postfix, doveconf, nginx, ...) run from the base image, not the host.

The functional tests feed rendered configs to the daemons' checkers and
start a few of the daemons on loopback.  Installing those packages on the
host would put a mail server on the developer's machine (Debian starts a
daemon on install), so the programs come from the cached base image the
system tests boot (image.py) instead.

Each call runs in a private mount namespace whose root is an overlay of
the image (its changes go to a tmpfs that vanishes with the call), with
/dev, /proc, /sys, /tmp, the repo and the venv bind-mounted at their own
paths: a test's files under /tmp are the same files inside, the network
is the host's (a daemon on 127.0.0.1 is reachable from the test), and
users and groups are the image's (``system_user``).  No container is
booted; a call costs a few milliseconds more than on the host.

``activate()`` puts a folder on PATH in which every name in :data:`TOOLS`
is such a call, so tests, ``shutil.which`` and the Salt modules they drive
find the image's programs; ``wrap(argv)`` runs any other command there
(a script that calls the programs with its own PATH, a ``salt-call`` whose
states need the image's users).
Mounting needs root: without it nothing is activated and the tests that
need a daemon skip, naming it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from .container import REPO, VENV
from .image import CACHE, base_image

# programs of the relay's packages that the functional tests (and the Salt
# modules they run) call by name: each runs from the image
TOOLS = (
    "postfix",
    "postconf",
    "postmap",
    "doveconf",
    "dovecot",
    "opendkim",
    "opendkim-genkey",
    "opendkim-testkey",
    "nginx",
    "fcgiwrap",
    "unbound",
    "unbound-checkconf",
    "luac5.3",
    "luac5.4",
    "turnserver",
    "mtail",
    "acmetool",
    "qrencode",
    # verifies units against the image, where their ExecStart= programs exist
    "systemd-analyze",
)
# host paths seen at the same path inside
BINDS = ("/dev", "/proc", "/sys", "/tmp", str(REPO), str(VENV))
# an empty folder the tmpfs of each call is mounted on (inside its namespace only)
MOUNT_POINT = CACHE / "imagetools"

_ENTER = r"""
image=$1 mnt=$2 cwd=$3; shift 3
mount -t tmpfs -o mode=0755 imagetools "$mnt"
mkdir "$mnt/upper" "$mnt/work" "$mnt/root"
mount -t overlay overlay -o "lowerdir=$image,upperdir=$mnt/upper,workdir=$mnt/work" "$mnt/root"
for path in @BINDS@; do
  mkdir -p "$mnt/root$path"
  mount --rbind "$path" "$mnt/root$path"
done
exec env PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$mnt/root" /bin/sh -c 'cd "$0" 2>/dev/null || cd /; exec "$@"' "$cwd" "$@"
"""

_WRAPPER = """\
#!/bin/sh
# written by test/harness/imagetools.py: run the program named like this link (or "$@") from the base image
[ "${{0##*/}}" = imagetools ] || set -- "${{0##*/}}" "$@"
exec unshare --mount --propagation private /bin/sh -euc '{enter}' imagetools {image} {mnt} "$PWD" "$@"
"""

_active: dict[str, Path] = {}


def available() -> bool:
    """Can this process run programs from the image (root, unshare, debootstrap for the build)?"""
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("unshare", "chroot", "debootstrap"))


def activate(log=print) -> Path | None:
    """Build the image if needed and put the image's :data:`TOOLS` first on PATH; the folder, or None."""
    if "bin" in _active:
        return _active["bin"]
    if not available():
        return None
    image = base_image(log=log)
    MOUNT_POINT.mkdir(parents=True, exist_ok=True)
    bindir = Path(tempfile.mkdtemp(prefix="chatmail-imagetools-"))
    atexit.register(shutil.rmtree, bindir, ignore_errors=True)
    enter = _ENTER.replace("@BINDS@", " ".join(_quote(b) for b in BINDS))
    wrapper = bindir / "imagetools"
    wrapper.write_text(
        _WRAPPER.format(enter=enter.replace("'", "'\\''"), image=_quote(str(image)), mnt=_quote(str(MOUNT_POINT)))
    )
    wrapper.chmod(0o755)
    bindir.chmod(0o755)
    for name in TOOLS:
        (bindir / name).symlink_to("imagetools")
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    _active.update(bin=bindir, image=image)
    return bindir


def wrap(argv: list[str]) -> list[str]:
    """``argv`` as run by the system that has the relay's programs: the image once activated, else the host."""
    if "bin" not in _active:
        return list(map(str, argv))
    return [str(_active["bin"] / "imagetools"), *map(str, argv)]


def system_path(path: str) -> Path:
    """Where that system's ``path`` (e.g. a module nginx loads) is, seen from here."""
    if "image" not in _active:
        return Path(path)
    return _active["image"] / path.lstrip("/")


def system_user(uid: int) -> str | None:
    """The name of ``uid`` on that system (the image's /etc/passwd: the users its programs run as)."""
    for line in system_path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2] == str(uid):
            return fields[0]
    return None


def _quote(word: str) -> str:
    if not word or any(c in word for c in " '\"$`\\\n"):
        raise ValueError(f"imagetools: path {word!r} has characters the wrapper does not quote")
    return word
