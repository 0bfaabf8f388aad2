"""What a relay in a container spends: CPU per unit and per process, and memory (PSS).

Read from the host, so measuring costs the relay nothing: the container's
cgroup tree (``/sys/fs/cgroup``, one directory per systemd unit, whose
``cpu.stat`` counts every process the unit ever ran, exited ones included)
and ``/proc/<pid>`` of the processes in it (the host sees them; its clock
ticks are 10 ms).  A process that starts and exits between two samples is
missed by the per-process view; the unit's total still holds it, and the
difference is printed as that unit's "exited, unsampled".
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
TICK = os.sysconf("SC_CLK_TCK")
PYTHON_MODULE_NAMES = {"doveauth", "metadata", "lastlogin", "filtermail", "expire", "fsreport"}


def container_cgroup(init_pid: int) -> Path:
    """The cgroup directory that holds every process of the container whose init is ``init_pid``."""
    line = Path(f"/proc/{init_pid}/cgroup").read_text().splitlines()[0]
    rel = line.split("::", 1)[1].lstrip("/")
    path = CGROUP_ROOT / rel
    return path.parent if path.name == "init.scope" else path


def unit_usage(root: Path) -> dict[str, float]:
    """CPU seconds so far of each unit (``*.service``/``*.scope``) under ``root``."""
    usage: dict[str, float] = {}
    for stat in root.rglob("cpu.stat"):
        unit = stat.parent.name
        if not unit.endswith((".service", ".scope")):
            continue
        for line in stat.read_text().splitlines():
            if line.startswith("usage_usec "):
                usage[unit] = usage.get(unit, 0.0) + int(line.split()[1]) / 1e6
    return usage


def total_usage(root: Path) -> float:
    for line in (root / "cpu.stat").read_text().splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1]) / 1e6
    return 0.0


def pids_by_unit(root: Path) -> dict[int, str]:
    found: dict[int, str] = {}
    for procs in root.rglob("cgroup.procs"):
        try:
            pids = procs.read_text().split()
        except OSError:
            continue
        for pid in pids:
            found[int(pid)] = procs.parent.name
    return found


def process_name(pid: int, comm: str) -> str:
    """``comm``, except for Python services: the chatmaild module and its mode (``filtermail incoming``)."""
    if not comm.startswith("python"):
        return comm
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return comm
    words = [a.decode(errors="replace") for a in argv if a]
    for word in words:
        if word.startswith("chatmaild."):
            module = word.removeprefix("chatmaild.")
            if module == "filtermail" and words[-1] in ("incoming", "outgoing"):
                return f"filtermail {words[-1]}"
            return module
    return comm


def read_stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, start time in ticks, user + system CPU seconds) of ``pid``, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime is field 14, stime 15, starttime 22
    return comm, int(fields[19]), (int(fields[11]) + int(fields[12])) / TICK


@dataclass
class CpuWindow:
    """CPU the container spends between :meth:`start` and :meth:`stop`, per unit and per process."""

    init_pid: int
    interval: float = 0.2
    root: Path = field(init=False)
    units: dict[str, float] = field(default_factory=dict)  # unit -> CPU s in the window
    processes: dict[tuple[str, str], float] = field(default_factory=dict)  # (unit, name) -> CPU s
    total: float = 0.0
    wall: float = 0.0

    def __post_init__(self) -> None:
        self.root = container_cgroup(self.init_pid)
        self._first: dict[tuple[int, int], float] = {}
        self._last: dict[tuple[int, int], tuple[str, str, float]] = {}
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, initial: bool = False) -> None:
        for pid, unit in pids_by_unit(self.root).items():
            stat = read_stat(pid)
            if stat is None:
                continue
            comm, started, cpu = stat
            key = (pid, started)
            if initial:
                self._first[key] = cpu
            self._last[key] = (unit, process_name(pid, comm), cpu)

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            self._sample()

    def start(self) -> CpuWindow:
        self._units0 = unit_usage(self.root)
        self._total0 = total_usage(self.root)
        self._wall0 = time.monotonic()
        self._sample(initial=True)
        self._thread.start()
        return self

    def stop(self) -> CpuWindow:
        self._halt.set()
        self._thread.join(5)
        self._sample()
        self.wall = time.monotonic() - self._wall0
        self.total = total_usage(self.root) - self._total0
        after = unit_usage(self.root)
        self.units = {u: after[u] - self._units0.get(u, 0.0) for u in after}
        per: dict[tuple[str, str], float] = defaultdict(float)
        for key, (unit, name, cpu) in self._last.items():
            per[(unit, name)] += cpu - self._first.get(key, 0.0)
        sampled: dict[str, float] = defaultdict(float)
        for (unit, _), cpu in per.items():
            sampled[unit] += cpu
        for unit, cpu in self.units.items():
            rest = cpu - sampled.get(unit, 0.0)
            if rest > 0.005:
                per[(unit, "exited, unsampled")] += rest
        self.processes = {k: v for k, v in per.items() if v > 0}
        return self


def pss_kib(init_pid: int) -> dict[tuple[str, str], int]:
    """Proportional set size (KiB) of every process in the container, summed per (unit, name)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for pid, unit in pids_by_unit(container_cgroup(init_pid)).items():
        stat = read_stat(pid)
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        if stat is None:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                out[(unit, process_name(pid, stat[0]))] += int(line.split()[1])
                break
    return dict(out)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
