"""What a relay in a container spends: CPU per unit and per process, and memory (PSS).

Read from the host's ``/proc``, so measuring costs the relay nothing: the
relay's processes are the container init's descendants (the host sees
them), each with its unit (the ``name=systemd`` cgroup line), its own CPU
(user + system, all threads) and the CPU of its children that exited and
were reaped.  The total over a window is exact, short-lived processes
included: every process alive at the end counts its own and its reaped
children's CPU since the start, and a process that existed at the start
and exited during the window has its CPU from before the window taken
off again (its parent's children figure holds its whole life).  By name,
processes are seen by sampling every ``interval`` seconds; what ran in
processes that started and exited between two samples is printed as
"exited between samples".  The clock tick is 10 ms.

(This host's cgroup tree is no help: the CPU controller is not delegated,
and all containers share one systemd cgroup root.)
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    """One process at one moment."""

    ppid: int
    comm: str
    started: int  # start time in ticks after boot: with the pid, a process's identity
    own: float  # user + system CPU seconds
    children: float  # reaped children's user + system CPU seconds


def read_stat(pid: int) -> Stat | None:
    """``/proc/<pid>/stat``, or None once the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    f = raw[raw.rindex(")") + 2 :].split()
    # f[0] is field 3 (state): ppid 4, utime 14, stime 15, cutime 16, cstime 17, starttime 22
    return Stat(int(f[1]), comm, int(f[19]), (int(f[11]) + int(f[12])) / TICK, (int(f[13]) + int(f[14])) / TICK)


def tree(init_pid: int) -> dict[int, Stat]:
    """Every process whose ancestry reaches ``init_pid`` (itself included)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None:
                stats[int(entry)] = stat
    inside: dict[int, bool] = {init_pid: True}

    def within(pid: int) -> bool:
        chain = []
        while pid not in inside:
            stat = stats.get(pid)
            if stat is None or pid <= 1:
                break
            chain.append(pid)
            pid = stat.ppid
        verdict = inside.get(pid, False)
        for p in chain:
            inside[p] = verdict
        return verdict

    return {pid: stat for pid, stat in stats.items() if pid in stats and within(pid)}


def unit_of(pid: int) -> str:
    """The systemd unit (or scope) a process of the container runs in."""
    try:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            if ":name=systemd:" in line or line.startswith("0::"):
                return line.rsplit("/", 1)[-1] or "-"
    except OSError:
        pass
    return "-"


def process_name(pid: int, comm: str) -> str:
    """``comm``, except for Python services: the chatmaild module (filtermail runs both modes in one process)."""
    if not comm.startswith("python"):
        return comm
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return comm
    words = [a.decode(errors="replace") for a in argv if a]
    for word in words:
        if word.startswith("chatmaild."):
            return word.removeprefix("chatmaild.")
    return comm


@dataclass
class CpuWindow:
    """CPU the container spends between :meth:`start` and :meth:`stop`: in total, and per (unit, name)."""

    init_pid: int
    interval: float = 0.2
    processes: dict[tuple[str, str], float] = field(default_factory=dict)  # (unit, name) -> CPU s
    total: float = 0.0
    wall: float = 0.0

    def __post_init__(self) -> None:
        self._start: dict[tuple[int, int], Stat] = {}
        self._seen: dict[tuple[int, int], tuple[str, str, Stat]] = {}  # last sample: unit, name, stat
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> dict[tuple[int, int], Stat]:
        now = {(pid, st.started): st for pid, st in tree(self.init_pid).items()}
        for key, st in now.items():
            known = self._seen.get(key)
            unit, name = (known[0], known[1]) if known else (unit_of(key[0]), process_name(key[0], st.comm))
            self._seen[key] = (unit, name, st)
        return now

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            self._sample()

    def start(self) -> CpuWindow:
        self._wall0 = time.monotonic()
        self._start = self._sample()
        self._thread.start()
        return self

    def stop(self) -> CpuWindow:
        self._halt.set()
        self._thread.join(5)
        end = self._sample()
        self.wall = time.monotonic() - self._wall0
        zero = Stat(0, "", 0, 0.0, 0.0)
        total = 0.0
        for key, st in end.items():
            first = self._start.get(key, zero)
            total += st.own - first.own + st.children - first.children
        for key, first in self._start.items():
            if key not in end:  # exited: its parent's children figure holds its whole life
                total -= first.own + first.children
        per: dict[tuple[str, str], float] = defaultdict(float)
        for key, (unit, name, st) in self._seen.items():
            per[(unit, name)] += st.own - self._start.get(key, zero).own
        named = sum(per.values())
        if total - named > 0.005:
            per[("-", "exited between samples")] += total - named
        self.total = total
        self.processes = {k: v for k, v in per.items() if v > 0.0005}
        return self

    @property
    def units(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for (unit, _), cpu in self.processes.items():
            out[unit] += cpu
        return dict(out)


def pss_kib(init_pid: int) -> dict[tuple[str, str], int]:
    """Proportional set size (KiB) of every process in the container, summed per (unit, name)."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for pid, st in tree(init_pid).items():
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                out[(unit_of(pid), process_name(pid, st.comm))] += int(line.split()[1])
                break
    return dict(out)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
