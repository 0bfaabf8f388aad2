"""The rebuilt Dovecot .debs (dovecot_source: rebuilt), built once per Debian source version.

The formula's own build script (chatmail/dovecot/files/chatmail-dovecot-rebuild,
the one a relay or a fleet master runs) runs inside a throwaway overlay of
the release's base image, with the host's network (deb.debian.org only:
source package and build dependencies).  The result is cached under
/var/cache/chatmail-test/dovecot-rebuilt-<release>/<source version>/, so a
test session reads the key from the image (the version of the image's dovecot-core: no network
needed to find the key); a new version means one new build.  The folder is laid out as the formula's file server expects it
(chatmail-dovecot/<codename>/<arch>/<version>/), so a test binds it into
the relay's file roots as a fleet master would serve it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .image import CACHE, MIRROR, _clean_env, base_image, mount_overlay, suite

SCRIPT = Path(__file__).resolve().parents[2] / "chatmail/dovecot/files/chatmail-dovecot-rebuild"
SCRIPT_MOUNT = "/usr/local/sbin/chatmail-dovecot-rebuild"
OUT_MOUNT = "/var/cache/chatmail/dovecot-rebuilt"


def file_root(release: str) -> Path:
    """The folder to add to a relay's file_roots: it holds chatmail-dovecot/<codename>/<arch>/."""
    return CACHE / f"dovecot-rebuilt-{release}"


def arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def rebuilt_debs(release: str = "12", log=print, build: bool = True) -> Path:
    """The folder with the rebuilt .debs and SHA256SUMS of the image's dovecot source version.

    Not cached and ``build`` false: LookupError naming the command that builds it.
    """
    codename = suite(release)
    out = file_root(release) / "chatmail-dovecot" / codename / arch()
    image = base_image(log=log, release=release)
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock-dovecot", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out.mkdir(parents=True, exist_ok=True)
        version = image_version(image)
        folder = out / version.split(":", 1)[-1]
        if (folder / "SHA256SUMS").exists():
            return folder
        if not build:
            raise LookupError(
                f"no rebuilt dovecot {version} cached in {out}; build it with"
                f" `cd test && python -m harness.dovecotbuild {release}` or run with -m dovecot_rebuild"
            )
        started = time.monotonic()
        log(f"harness: building the rebuilt dovecot {version} for Debian {release}")
        with _overlay(image) as root:
            _run(root, "build", OUT_MOUNT, version, out=out)
        log(f"harness: dovecot {version} built in {time.monotonic() - started:.0f} s")
    return folder


def image_version(image: Path) -> str:
    """The version of the image's dovecot-core: the source version the tests rebuild.

    The image's own version, not the newest in Debian's lists: a test relay
    then differs from Debian's only by the patch, and the key needs no
    network (a new image, e.g. after a Debian point release, means a new build).
    """
    status = (image / "var/lib/dpkg/status").read_text()
    for stanza in status.split("\n\n"):
        if "Package: dovecot-core\n" in stanza + "\n":
            for line in stanza.splitlines():
                if line.startswith("Version: "):
                    return line.split(" ", 1)[1]
    raise RuntimeError(f"{image} has no dovecot-core installed")


class _overlay:
    """A writable overlay of ``image`` with deb-src lines and updated apt lists; removed on exit.

    Its folder is not named ``.build-*``: image.py's _prune removes those after
    an hour, and a build takes longer, with /dev and /proc bound inside.
    """

    def __init__(self, image: Path):
        self.image = image

    def __enter__(self) -> Path:
        self.tmp = Path(tempfile.mkdtemp(prefix="dovecot-build-", dir=CACHE))
        root = self.tmp / "root"
        mount_overlay(self.image, self.tmp, root)
        self.root = root
        codename = (root / "etc/os-release").read_text().split("VERSION_CODENAME=", 1)[1].split()[0]
        (root / "etc/resolv.conf").write_text(Path("/etc/resolv.conf").read_text())
        (root / "etc/apt/sources.list.d/dovecot-src.list").write_text(
            f"deb-src {MIRROR} {codename} main\n"
            f"deb-src {MIRROR} {codename}-updates main\n"
            f"deb-src http://deb.debian.org/debian-security {codename}-security main\n"
        )
        for mount in ("proc", "dev"):
            subprocess.run(["mount", "--rbind", f"/{mount}", str(root / mount)], check=True, capture_output=True)
        _chroot(root, "apt-get", "update", "-qq")
        return root

    def __exit__(self, *exc) -> None:
        for mount in ("dev", "proc"):
            subprocess.run(["umount", "-R", "-l", str(self.root / mount)], capture_output=True)
        subprocess.run(["umount", str(self.root)], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _run(root: Path, *args: str, out: Path | None = None) -> subprocess.CompletedProcess:
    """Run the formula's build script in ``root`` (``out`` bound at OUT_MOUNT)."""
    target = root / SCRIPT_MOUNT.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SCRIPT, target)
    if out is not None:
        inside = root / OUT_MOUNT.lstrip("/")
        inside.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", str(out), str(inside)], check=True, capture_output=True)
    try:
        return _chroot(root, SCRIPT_MOUNT, *args)
    finally:
        if out is not None:
            subprocess.run(["umount", str(root / OUT_MOUNT.lstrip("/"))], capture_output=True)


def _chroot(root: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = {**_clean_env(), "DEBIAN_FRONTEND": "noninteractive", "JOBS": str(os.cpu_count() or 1)}
    proc = subprocess.run(["chroot", str(root), *cmd], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"rebuilt dovecot: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return proc


if __name__ == "__main__":
    import sys

    t0 = time.monotonic()
    print(rebuilt_debs(sys.argv[1] if len(sys.argv) > 1 else "12"), f"{time.monotonic() - t0:.1f} s")
