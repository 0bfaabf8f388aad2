"""A booted systemd container (systemd-nspawn) on an overlay of the base image.

Each container gets its own overlayfs (upper/work dirs in its state dir)
over the shared read-only base, a veth end on the harness bridge with a
static address (systemd-networkd, no default route), the test DNS as
resolver and the proxy for apt/pip.  The repo is bind-mounted read-only at
/srv/formula and the Salt venv at its own path, so ``<venv>/bin/salt-call``
runs inside on the container's Python 3.11 (a release with another Python
gets a venv built inside its image, ``venv``/``venv_mount``: image.salt_venv).

Commands run inside through ``nsenter -t <init pid> -a systemd-run --wait
--pipe`` (no machined on this host): a clean environment, real exit codes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from . import lifecycle
from .dns import resolv_conf
from .image import mount_overlay
from .stale import STATE_ROOT

REPO = Path(__file__).resolve().parents[2]
VENV = (REPO / ".venv").resolve()  # a worktree may link the venv of another checkout
MINION_CONF = Path(__file__).resolve().parent / "minion.conf"
FORMULA_MOUNT = "/srv/formula"
HIDDEN_IN_FORMULA = (".venv", ".git")
# systemd's exit status when a unit's process cannot join its cgroup (before exec)
EXIT_CGROUP = 219
ATTACH_TRIES = 4
# paths that change by themselves in a running container (see written_files)
NOISE = (
    "var/log",
    "var/cache/salt",
    "var/lib/systemd",
    "var/tmp",
    "tmp",
    "run",
    "srv/pillar",
    "var/cache/ldconfig",
    "etc/machine-id",
    "var/lib/dbus",
    "root/.cache",
)


class Container:
    def __init__(
        self,
        name: str,
        image: Path,
        bridge,
        address: str,
        *,
        dns_address: str | None = None,
        proxy_url: str | None = None,
        state_dir: Path | None = None,
        persistent: bool = False,
        formula: Path = REPO,
        venv: Path = VENV,
        venv_mount: str | None = None,
    ):
        self.name = name
        self.image = Path(image)
        self.bridge = bridge
        self.address = address
        self.dns_address = dns_address or bridge.address
        self.proxy_url = proxy_url
        self.persistent = persistent
        self.formula = Path(formula)  # the repo, or a snapshot of it (see snapshot_formula)
        self.release = "12"  # the Debian release of ``image`` (Lab.boot sets it)
        self.venv = Path(venv)
        self.venv_mount = venv_mount or str(self.venv)  # where inside; its shebangs name it
        # the machine name also names the host's veth end: unique per bridge
        self.machine = f"{name}-{bridge.name}"
        self.state_dir = (
            Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_mkdir(STATE_ROOT)))
        )
        self.root = self.state_dir / "root"
        self.process: subprocess.Popen | None = None
        self.nspawn_pid: int | None = None
        self.init_pid: int | None = None
        self._handle = None
        self.timings: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------------

    def start(self, timeout: float = 90, first_boot: bool = True) -> Container:
        """Mount the overlay, write the per-container files (first boot only), boot, wait for systemd.

        A reboot leaves them as the container left them: a server's
        resolv.conf or hosts file does not change when it restarts, and the
        formula's own resolv.conf must still be there after one."""
        started = time.monotonic()
        if not self.persistent:
            self._handle = lifecycle.register(f"container {self.name}", self.stop)
        self._mount_overlay()
        if first_boot:
            self._write_config_files()
        log = open(self.state_dir / "console.log", "ab")
        cmd = [
            "systemd-nspawn",
            "-D",
            str(self.root),
            "--boot",
            "--register=no",
            "--keep-unit",
            "-M",
            self.machine,
            f"--hostname={self.name}",
            f"--network-bridge={self.bridge.name}",
            "--console=passive",
            "--resolv-conf=off",
            "--timezone=off",
            "--link-journal=no",
            f"--bind-ro={self.formula}:{FORMULA_MOUNT}",
            # Salt's local fileserver walks all of file_roots on every listing
            # (fileserver_list_cache_time 0): hiding the venv and .git there
            # makes a state.apply ~5x faster
            *(
                f"--tmpfs={FORMULA_MOUNT}/{hidden}:mode=0555"
                for hidden in HIDDEN_IN_FORMULA
                if (self.formula / hidden).is_dir()
            ),
        ]
        cmd.append(f"--bind-ro={self.venv}:{self.venv_mount}")  # the path its shebangs name
        self.process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            env=_clean_env(),
            preexec_fn=None if self.persistent else lifecycle.die_with_parent,
        )
        self.nspawn_pid = self.process.pid
        self.init_pid = self._find_init(timeout)
        self._save_state()
        self._wait_booted(started + timeout)
        self.timings["boot"] = time.monotonic() - started
        return self

    def stop(self, timeout: float = 30, graceful: bool = False) -> None:
        """Kill the container and wait for nspawn; unmount; remove the state dir.

        By default the container's init gets SIGKILL (the kernel then kills
        every process of its PID namespace at once: ~0.1 s); ``graceful``
        asks nspawn for a clean poweroff instead (seconds: dovecot is slow).
        """
        started = time.monotonic()
        if graceful and self.nspawn_pid and _alive(self.nspawn_pid):
            os.kill(self.nspawn_pid, signal.SIGTERM)
        elif self.init_pid and _alive(self.init_pid):
            os.kill(self.init_pid, signal.SIGKILL)
        if self.nspawn_pid:
            if not _wait_gone(self.nspawn_pid, self.process, timeout):
                os.kill(self.nspawn_pid, signal.SIGKILL)
                _wait_gone(self.nspawn_pid, self.process, 5)
        if self.init_pid and _alive(self.init_pid):
            os.kill(self.init_pid, signal.SIGKILL)
            _wait_gone(self.init_pid, None, 5)
        self._unmount_overlay()
        shutil.rmtree(self.state_dir, ignore_errors=True)
        lifecycle.unregister(self._handle)
        self.timings["stop"] = time.monotonic() - started

    def reboot(
        self,
        timeout: float = 90,
        venv: Path | None = None,
        venv_mount: str | None = None,
        poweroff_timeout: float = 45,
    ) -> Container:
        """Power the container off cleanly and boot it again on the same overlay (its files stay).

        What ``reboot`` is on a server: every daemon stops the way systemd
        stops it and starts from the files on disk.  ``venv``/``venv_mount``
        swap the Salt venv bound in (a dist-upgrade changes the Python the
        venv must be built for: image.salt_venv)."""
        started = time.monotonic()
        if self.nspawn_pid and _alive(self.nspawn_pid):
            os.kill(self.nspawn_pid, signal.SIGTERM)  # nspawn asks the container's systemd to power off
            if not _wait_gone(self.nspawn_pid, self.process, poweroff_timeout):
                # a unit that hangs in its stop (after a dist-upgrade the old
                # release's systemd/dbus may never finish): the power-off is
                # bounded, then forced the way a hypervisor's reset is.  A second
                # SIGTERM is not enough (nspawn waits for the hung init), so the
                # container's init gets SIGKILL: the kernel ends its PID namespace.
                self.timings["poweroff_forced"] = 1.0
                print(
                    f"harness: {self.name} power-off hung {poweroff_timeout:.0f} s, forced; console:\n{self.console_log()[-4000:]}"
                )
                if self.init_pid and _alive(self.init_pid):
                    os.kill(self.init_pid, signal.SIGKILL)
                if not _wait_gone(self.nspawn_pid, self.process, 15):
                    os.kill(self.nspawn_pid, signal.SIGKILL)
                    if not _wait_gone(self.nspawn_pid, self.process, 10):
                        raise RuntimeError(f"container {self.name} did not power off:\n{self.console_log()}")
        if self.init_pid and _alive(self.init_pid):
            _wait_gone(self.init_pid, None, 5)
        self._unmount_overlay()
        lifecycle.unregister(self._handle)
        if venv is not None:
            self.venv = Path(venv)
            self.venv_mount = venv_mount or str(self.venv)
        self.init_pid = self.nspawn_pid = None
        self.start(timeout, first_boot=False)
        self.timings["reboot"] = time.monotonic() - started
        return self

    @classmethod
    def attach(cls, state_dir: Path, image: Path, **venv) -> Container | None:
        """A handle on a persistent container started by an earlier process, if it still runs."""
        from .network import Bridge

        try:
            state = json.loads((Path(state_dir) / "state.json").read_text())
        except (OSError, ValueError):
            return None
        container = cls(
            state["name"],
            image,
            Bridge.from_dict(state["bridge"]),
            state["address"],
            state_dir=Path(state_dir),
            persistent=True,
            **venv,
        )
        container.machine = state["machine"]
        container.nspawn_pid, container.init_pid = state["nspawn_pid"], state["init_pid"]
        if not (_alive(container.nspawn_pid) and _alive(container.init_pid)):
            return None
        return container

    def __enter__(self) -> Container:
        return self.start() if self.init_pid is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- running things inside ---------------------------------------------------

    def run(
        self,
        cmd: list[str] | str,
        check: bool = True,
        input: str | bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 600,
        text: bool = True,
    ) -> subprocess.CompletedProcess:
        """Run ``cmd`` inside (a list, or a string for ``sh -c``) and return its result."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        wrapper = [
            "nsenter",
            "-t",
            str(self.init_pid),
            "-a",
            "systemd-run",
            "--wait",
            "--pipe",
            "-q",
            "--collect",
            "--service-type=exec",
            f"--property=RuntimeMaxSec={int(timeout)}",
        ]
        for key, value in (env or {}).items():
            wrapper.append(f"--setenv={key}={value}")
        if isinstance(input, str) and not text:
            input = input.encode()
        for attempt in range(ATTACH_TRIES):
            proc = subprocess.run(
                [*wrapper, "--", *argv],
                input=input,
                capture_output=True,
                text=text,
                env=_clean_env(),
                stdin=None if input is not None else subprocess.DEVNULL,
                timeout=timeout + 10,
            )
            # systemd could not put the unit into its cgroup, so the command never ran
            # (seen once right after a boot, while the container's systemd was still busy)
            if proc.returncode != EXIT_CGROUP or attempt == ATTACH_TRIES - 1:
                break
            time.sleep(0.5 * (attempt + 1))
        result = subprocess.CompletedProcess(argv, proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, argv, proc.stdout, proc.stderr)
        return result

    def read_file(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def read_bytes(self, path: str) -> bytes:
        return self.run(["cat", path], text=False).stdout

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0

    def write_file(self, path: str, content: str | bytes, mode: str = "0644") -> None:
        script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'
        self.run(["sh", "-c", script, "sh", path, mode], input=content, text=isinstance(content, str))

    def written_files(self, ignore: tuple[str, ...] = NOISE) -> dict[str, tuple[int, int, int]]:
        """Every file the container has written since boot, with (mtime_ns, size, mode).

        Read from the overlay's upper dir on the host, so it sees the
        whole filesystem at once; two snapshots differ exactly where
        something was written.  ``ignore`` skips paths that change on
        their own (journal, Salt's cache, the pillar the harness writes).
        """
        upper = self.state_dir / "upper"
        found = {}
        for dirpath, dirnames, filenames in os.walk(upper):
            rel_dir = os.path.relpath(dirpath, upper)
            dirnames[:] = [d for d in dirnames if not _ignored(os.path.join(rel_dir, d), ignore)]
            for name in filenames:
                rel = os.path.normpath(os.path.join(rel_dir, name))
                if _ignored(rel, ignore):
                    continue
                st = os.lstat(os.path.join(dirpath, name))
                found["/" + rel] = (st.st_mtime_ns, st.st_size, st.st_mode)
        return found

    def shell_command(self) -> str:
        """How a person gets a shell inside (printed by deploy-local)."""
        return f"nsenter -t {self.init_pid} -a systemd-run --pty -q --wait /bin/bash -l"

    # -- Salt ------------------------------------------------------------------------

    def write_pillar(self, pillar: dict | None) -> None:
        self.write_file("/srv/pillar/top.sls", "base:\n  '*':\n    - chatmail\n")
        self.write_file("/srv/pillar/chatmail.sls", json.dumps({"chatmail": pillar or {}}, indent=1) + "\n", "0600")

    def salt_call(self, *args: str, pillar: dict | None = None, timeout: float = 900) -> SaltResult:
        """``salt-call --local --out=json <args>`` inside; pillar ``chatmail`` set first if given."""
        if pillar is not None:
            self.write_pillar(pillar)
        proc = self.run(
            [
                f"{self.venv_mount}/bin/salt-call",
                "--local",
                "--out=json",
                "--retcode-passthrough",
                "--log-level=quiet",
                *args,
            ],
            check=False,
            timeout=timeout,
        )
        try:
            data = json.loads(proc.stdout) if proc.stdout.strip() else {}
        except json.JSONDecodeError:
            data = {"local": [proc.stdout]}
        return SaltResult(data, proc.returncode, proc.stderr)

    def apply(self, pillar: dict | None = None, *args: str, test: bool = False) -> SaltResult:
        """``state.apply chatmail`` with ``pillar`` (and ``test=True``)."""
        extra = ["test=True"] if test else []
        return self.salt_call("state.apply", "chatmail", *args, *extra, pillar=pillar)

    # -- internals ---------------------------------------------------------------------

    def _mount_overlay(self) -> None:
        if not os.path.ismount(self.root):
            mount_overlay(self.image, self.state_dir, self.root)

    def _unmount_overlay(self) -> None:
        for _ in range(50):
            if not os.path.ismount(self.root):
                return
            if subprocess.run(["umount", str(self.root)], capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        subprocess.run(["umount", "-l", str(self.root)], capture_output=True)

    def _write_config_files(self) -> None:
        """Files that differ per container, written into the overlay before boot."""
        files = {
            "etc/resolv.conf": resolv_conf(self.dns_address),
            "etc/hostname": f"{self.name}\n",
            "etc/systemd/network/05-host0.network.d/address.conf": f"[Network]\nAddress={self.address}/{self.bridge.prefixlen}\n",
            "etc/salt/minion.d/chatmail.conf": MINION_CONF.read_text() + f"id: {self.name}\n",
            "etc/hosts": f"127.0.0.1 localhost\n127.0.1.1 {self.name}\n{self.address} {self.name}\n",
        }
        if self.proxy_url:
            files["etc/apt/apt.conf.d/80proxy"] = (
                f'Acquire::http::Proxy "{self.proxy_url}";\nAcquire::https::Proxy "{self.proxy_url}";\n'
            )
            files["etc/pip.conf"] = f"[global]\nproxy = {self.proxy_url}\ncert = /etc/ssl/certs/ca-certificates.crt\n"
            files["etc/environment"] = (
                f"http_proxy={self.proxy_url}\nhttps_proxy={self.proxy_url}\n"
                f"HTTP_PROXY={self.proxy_url}\nHTTPS_PROXY={self.proxy_url}\nno_proxy=localhost,127.0.0.1,.test\n"
            )
        for rel, text in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                path.unlink()
            path.write_text(text)
        for mount in (FORMULA_MOUNT, self.venv_mount):
            (self.root / mount.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def _find_init(self, timeout: float) -> int:
        """The host PID of the container's systemd: a descendant of nspawn that is PID 1 inside."""
        deadline = time.monotonic() + min(timeout, 30)
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited with {self.process.returncode}:\n{self.console_log()}")
            for pid in _descendants(self.nspawn_pid):
                nspid = _status_field(pid, "NSpid")
                if nspid and nspid.split()[-1] == "1" and len(nspid.split()) > 1:
                    return pid
            time.sleep(0.02)
        raise RuntimeError(f"no container init below nspawn {self.nspawn_pid}:\n{self.console_log()}")

    def _wait_booted(self, deadline: float) -> None:
        state = ""
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"container {self.name} died while booting:\n{self.console_log()}")
            proc = self.run(["systemctl", "is-system-running"], check=False, timeout=10)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                if self._has_address():
                    return
            elif state in ("maintenance", "stopping", "offline"):
                break
            time.sleep(0.1)
        failed = self.run(["systemctl", "--failed", "--no-legend"], check=False).stdout
        raise RuntimeError(f"container {self.name} did not boot (state {state!r}); failed units:\n{failed}")

    def _has_address(self) -> bool:
        out = self.run(["ip", "-4", "-o", "addr", "show", "dev", "host0"], check=False).stdout
        return f" {self.address}/" in out

    def failed_units_log(self, lines: int = 25) -> str:
        """What a failed apply leaves to read: each failed unit's last journal lines."""
        units = self.run(["systemctl", "--failed", "--no-legend", "--plain"], check=False).stdout.split()
        units = [u for u in units if "." in u and not u.startswith(("loaded", "failed"))]
        parts = []
        for unit in units:
            journal = self.run(
                ["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "short-monotonic"], check=False
            ).stdout
            parts.append(f"--- {self.name}: {unit}\n{journal}")
        return "\n".join(parts)

    def console_log(self) -> str:
        try:
            return (self.state_dir / "console.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _save_state(self) -> None:
        state = {
            "name": self.name,
            "machine": self.machine,
            "address": self.address,
            "nspawn_pid": self.nspawn_pid,
            "init_pid": self.init_pid,
            "root": str(self.root),
            "bridge": self.bridge.to_dict(),
            "owner": os.getpid(),
        }
        (self.state_dir / "state.json").write_text(json.dumps(state, indent=1))


class SaltResult(dict):
    """The parsed ``salt-call --out=json`` output, plus its exit code and stderr."""

    def __init__(self, data: dict, retcode: int, stderr: str):
        super().__init__(data)
        self.retcode = retcode
        self.stderr = stderr

    @property
    def states(self) -> dict:
        """State id -> result dict; empty when the run failed before any state (render error)."""
        local = self.get("local")
        return local if isinstance(local, dict) else {}

    @property
    def errors(self) -> list[str]:
        """Render/compile errors (``local`` is a list of messages then)."""
        local = self.get("local")
        if isinstance(local, list):
            return [str(x) for x in local]
        if isinstance(local, str):
            return [local]
        return []


def failed_states(result: SaltResult) -> list[str]:
    """Each failure as 'id: comment', including errors that stopped the run before states."""
    failed = list(result.errors)
    for key, state in result.states.items():
        if state.get("result") is False:
            failed.append(f"{state.get('__id__', key)}: {state.get('comment', '')}")
    return failed


def changed_states(result: SaltResult) -> list[str]:
    """State ids that changed something (or, with test=True, would: result None)."""
    return [
        state.get("__id__", key)
        for key, state in result.states.items()
        if state.get("changes") or state.get("result") is None
    ]


def snapshot_formula(target: Path) -> Path:
    """A copy of the repo as it is now, without .venv, .git and caches.

    Test sessions bind this instead of the live tree, so files edited
    while a session runs (several people share one working tree) cannot
    make a second apply differ from the first.
    """
    skip = shutil.ignore_patterns(*HIDDEN_IN_FORMULA, "__pycache__", "*.pyc", ".pytest_cache", ".cache", "build")
    shutil.copytree(REPO, target, symlinks=True, ignore=skip)
    return target


def _ignored(rel: str, prefixes: tuple[str, ...]) -> bool:
    rel = os.path.normpath(rel)
    return any(rel == p or rel.startswith(p + "/") for p in prefixes)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _status_field(int(entry), "PPid")
            if ppid:
                children.setdefault(int(ppid), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _status_field(pid: int, field: str) -> str | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _wait_gone(pid: int, process: subprocess.Popen | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return True
        elif not _alive(pid):
            return True
        time.sleep(0.02)
    return False


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _clean_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
