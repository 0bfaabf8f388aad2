"""The read-only Debian base image every test container boots from.

Building it (debootstrap with all the relay's packages) takes a minute or
more, so it is cached under /var/cache/chatmail-test/base-<key>/ where the
key is the sha256 of everything that goes into it: the Debian release, the
package list, the host CA files copied in, and RECIPE (bump it when the
recipe changes).  One image per release (RELEASES: "12" bookworm, "13"
trixie), built and cached the same way.
A build goes to a temporary folder that is renamed into place only when
complete, under a file lock, so a crashed or concurrent build never leaves
a half image behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CACHE = Path("/var/cache/chatmail-test")
HERE = Path(__file__).resolve().parent
PACKAGE_LIST = HERE / "base-packages.txt"
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
MIRROR = "http://deb.debian.org/debian"
# Debian release (major version) -> suite; "12" is the default everywhere
RELEASES = {"12": "bookworm", "13": "trixie"}
DEFAULT_RELEASE = "12"
RECIPE = "3"

# what every container needs to boot and be driven by the harness
CORE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "python3",
    "ca-certificates",
    "procps",
    "less",
)


# debootstrap does not resolve virtual packages: their providers, per release
# (Debian 13's python3-nacl, pulled by python3-dkim, depends on the virtual
# python3-cffi-backend-api-min/-max of python3-cffi-backend)
PROVIDERS = {"13": ("python3-cffi-backend",)}


def sources(suite: str) -> str:
    """The image's apt sources.list for ``suite``."""
    return (
        f"deb {MIRROR} {suite} main\n"
        f"deb {MIRROR} {suite}-updates main\n"
        f"deb http://deb.debian.org/debian-security {suite}-security main\n"
    )


# files written into the image after debootstrap: path -> content
# (etc/apt/sources.list is added per release, see build)
IMAGE_FILES = {
    # the harness writes the real one per container; this one points nowhere
    "etc/resolv.conf": "# set per container by the test harness\n",
    # no apt caches or docs wasted in the image
    "etc/dpkg/dpkg.cfg.d/01-nodoc": "path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\n",
    # a static address, no DHCP, no default route: see network.py
    "etc/systemd/network/05-host0.network": (
        "[Match]\nName=host0\n\n[Network]\nDHCP=no\nLinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\n# Address= is added per container in host0.network.d/\n"
    ),
}

# units switched on or off in the image: (unit, enable?)
IMAGE_UNITS = (
    ("systemd-networkd.service", True),
    # waits up to 2 min for "online"; containers have no uplink
    ("systemd-networkd-wait-online.service", False),
    ("apt-daily.timer", False),
    ("apt-daily-upgrade.timer", False),
    ("e2scrub_all.timer", False),
    ("fstrim.timer", False),
)


def package_list(path: Path = PACKAGE_LIST, release: str = DEFAULT_RELEASE) -> list[str]:
    """Core packages, the release's PROVIDERS and the words of base-packages.txt, sorted, unique."""
    words = set(CORE_PACKAGES) | set(PROVIDERS.get(str(release), ()))
    for line in path.read_text().splitlines():
        words.update(line.split("#", 1)[0].split())
    return sorted(words)


def host_ca_files() -> list[Path]:
    if not HOST_CA_DIR.is_dir():
        return []
    return sorted(p for p in HOST_CA_DIR.rglob("*.crt") if p.is_file())


def suite(release: str) -> str:
    """The Debian suite of ``release`` ("12", "13"); a clear error for any other."""
    try:
        return RELEASES[str(release)]
    except KeyError:
        raise ValueError(f"Debian release {release!r} has no test image; expected one of {sorted(RELEASES)}") from None


def image_key(packages: list[str], release: str = DEFAULT_RELEASE) -> str:
    digest = hashlib.sha256()
    digest.update(f"recipe {RECIPE} {suite(release)}\n".encode())
    digest.update(("\n".join(packages) + "\n").encode())
    for ca in host_ca_files():
        digest.update(ca.name.encode() + b"\0" + ca.read_bytes())
    return digest.hexdigest()


def base_image(log=print, release: str = DEFAULT_RELEASE) -> Path:
    """The path of the cached base image of Debian ``release``, built first if needed."""
    return cached_image("base", package_list(release=release), log, release)


def core_image(log=print, release: str = DEFAULT_RELEASE) -> Path:
    """A plain Debian with systemd and none of the relay's packages: an ordinary host.

    test_host_clean.py boots it to run scripts/bootstrap as on a fresh
    machine (the base image has the relay's daemons running already).
    """
    return cached_image("core", sorted(CORE_PACKAGES), log, release)


def cached_image(kind: str, packages: list[str], log=print, release: str = DEFAULT_RELEASE) -> Path:
    """The image ``kind`` of Debian ``release`` with ``packages`` under CACHE, built first if needed."""
    target = CACHE / f"{kind}-{image_key(packages, release)}"
    if (target / "usr/bin/systemctl").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it
        if (target / "usr/bin/systemctl").exists():
            return target
        started = time.monotonic()
        log(f"harness: building Debian {release} {kind} image {target.name} ({len(packages)} packages)")
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE))
        try:
            build(tmp, packages, suite(release))
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"harness: {kind} image built in {time.monotonic() - started:.0f} s")
    _prune(keep=target)
    return target


def build(root: Path, packages: list[str], suite: str) -> None:
    """debootstrap of ``suite`` + the image files + the host's CA certificates."""
    proc = subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, str(root), MIRROR],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**_clean_env(), "DEBIAN_FRONTEND": "noninteractive"},
    )
    if proc.returncode != 0:
        log = root / "debootstrap/debootstrap.log"
        detail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"debootstrap failed ({proc.returncode}): {proc.stderr[-2000:]}\n{detail}")
    for rel, text in {"etc/apt/sources.list": sources(suite), **IMAGE_FILES}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(text)
    ca_dir = root / "usr/local/share/ca-certificates"
    ca_dir.mkdir(parents=True, exist_ok=True)
    for ca in host_ca_files():
        shutil.copy2(ca, ca_dir / ca.name)
    _chroot(root, "update-ca-certificates")
    for unit, enable in IMAGE_UNITS:
        _chroot(root, "systemctl", "enable" if enable else "disable", "--quiet", unit, check=False)
    # an empty machine-id: each container gets its own at boot
    (root / "etc/machine-id").write_text("")
    for item in (root / "var/cache/apt/archives").glob("*.deb"):
        item.unlink()


def mount_overlay(lower: Path, state: Path, root: Path) -> None:
    """Mount a writable overlay of ``lower`` at ``root``; its changes go to ``state``/upper (and ``state``/work)."""
    upper, work = state / "upper", state / "work"
    for d in (upper, work, root):
        d.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", str(root)],
        check=True,
        capture_output=True,
    )


def _chroot(root: Path, *cmd: str, check: bool = True) -> None:
    subprocess.run(
        ["chroot", str(root), *cmd],
        check=check,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if not check else None,
        env=_clean_env(),
    )


def _clean_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _prune(keep: Path) -> None:
    """Remove half-built folders of dead builds (older than an hour)."""
    for item in CACHE.glob(".build-*"):
        if item != keep and time.time() - item.stat().st_mtime > 3600:
            shutil.rmtree(item, ignore_errors=True)


# The Salt venv of a release whose Python differs from the host's (13:
# Python 3.13): built once inside that release's base image, cached next
# to it as salt-venv-<key>/ and bound read-only at SALT_VENV_MOUNT (the
# path it was built at, which its scripts' shebangs name).  Release 12
# containers use the host's .venv (same Python 3.11).
SALT_VENV_MOUNT = "/opt/salt-venv"
SALT_VENV_RECIPE = "2"
REQUIREMENTS = HERE.parent / "requirements.txt"


def salt_pin(path: Path = REQUIREMENTS) -> str:
    """The ``salt==<version>`` line of test/requirements.txt (the host venv's Salt)."""
    for line in path.read_text().splitlines():
        if line.strip().startswith("salt=="):
            return line.strip()
    raise RuntimeError(f"{path} pins no salt== version")


def salt_venv(image: Path, log=print) -> Path:
    """The cached Salt venv built inside base ``image``, built first if needed."""
    pin = salt_pin()
    key = hashlib.sha256(f"{SALT_VENV_RECIPE} {Path(image).name} {pin}\n".encode()).hexdigest()
    target = CACHE / f"salt-venv-{key}"
    if (target / "bin/salt-call").exists():
        return target
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "bin/salt-call").exists():
            return target
        started = time.monotonic()
        log(f"harness: building the Salt venv ({pin}) in {Path(image).name}")
        tmp = Path(tempfile.mkdtemp(prefix=".build-venv-", dir=CACHE))
        root, upper, work = tmp / "root", tmp / "upper", tmp / "work"
        for d in (root, upper, work):
            d.mkdir()
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={image},upperdir={upper},workdir={work}", str(root)],
            check=True,
            capture_output=True,
        )
        try:
            # the image's resolv.conf points nowhere (set per container)
            (root / "etc/resolv.conf").write_text(Path("/etc/resolv.conf").read_text())
            env = {**_clean_env(), "DEBIAN_FRONTEND": "noninteractive"}
            for cmd in (
                ["apt-get", "update", "-qq"],
                # gcc and the headers: Salt's timelib has no wheel for Python 3.13;
                # they stay in this throwaway overlay, not in the image or the venv
                [
                    "apt-get",
                    "install",
                    "-qq",
                    "-y",
                    "--no-install-recommends",
                    "python3-venv",
                    "python3-dev",
                    "gcc",
                    "libc6-dev",
                ],
                # as scripts/bootstrap builds .venv: the formula's modules use
                # Debian's libraries (python3-dnspython) from the image
                ["python3", "-m", "venv", "--system-site-packages", SALT_VENV_MOUNT],
                [f"{SALT_VENV_MOUNT}/bin/pip", "install", "-q", "--no-cache-dir", pin],
            ):
                proc = subprocess.run(["chroot", str(root), *cmd], capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    raise RuntimeError(f"Salt venv: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
            os.rename(upper / SALT_VENV_MOUNT.lstrip("/"), target)
        finally:
            subprocess.run(["umount", str(root)], capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)
        log(f"harness: Salt venv built in {time.monotonic() - started:.0f} s")
    return target


def container_venv(release: str, image: Path, log=print) -> dict:
    """Container() keywords for the Salt venv of ``release``: none for the
    default (the host's .venv), else the venv built inside ``image``."""
    if str(release) == DEFAULT_RELEASE:
        return {}
    return {"venv": salt_venv(image, log=log), "venv_mount": SALT_VENV_MOUNT}


if __name__ == "__main__":
    import sys

    t0 = time.monotonic()
    print(base_image(release=sys.argv[1] if len(sys.argv) > 1 else DEFAULT_RELEASE), f"{time.monotonic() - t0:.1f} s")
