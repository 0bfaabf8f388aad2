"""A salt-master on the host that drives relay containers: the fleet of test_fleet.py and bench_fleet.py.

The master runs from the Salt venv, bound to the lab's bridge address, from
a tmp config that serves this repo as an operator's master would (state
tree, reactor, extension modules); :func:`join` makes a relay container a
minion of it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from harness import check_target, lifecycle

REPO = Path(__file__).resolve().parents[2]
VENV = (REPO / ".venv").resolve()  # a worktree may link the venv of another checkout
# what the master serves: the state tree, the reactor file and the extension modules
SERVED = ("chatmail", "reactor", "_modules", "_states", "_utils")


class SaltMaster:
    """A salt-master on the host, for the containers on one bridge, from a tmp config."""

    def __init__(self, address: str, workdir: Path | None = None):
        self.address = check_target(address)
        # short: the master's unix sockets live below it (sun_path holds 107 bytes)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="cm-master-"))
        self.conf = self.workdir / "conf"
        self.pillar = self.workdir / "pillar"
        self.process: subprocess.Popen | None = None
        self.publish_port, self.ret_port = _free_ports(address, 2)
        self._handle = None

    def start(self) -> SaltMaster:
        roots = self.workdir / "roots"
        for d in (self.conf / "master.d", self.pillar, roots):
            d.mkdir(parents=True, exist_ok=True)
        for top in SERVED:  # symlinks: the repo without .git and .venv (walking those is slow)
            (roots / top).symlink_to(REPO / top)
        config = {
            "root_dir": str(self.workdir / "root"),
            "interface": self.address,
            "publish_port": self.publish_port,
            "ret_port": self.ret_port,
            "auto_accept": True,  # test fleet: every minion on our own bridge is ours
            "file_roots": {"base": [str(roots)]},
            "pillar_roots": {"base": [str(self.pillar)]},
            "log_level_logfile": "info",  # root_dir/var/log/salt/master
            "keep_jobs_seconds": 3600,
        }
        (self.conf / "master").write_text(yaml.safe_dump(config))
        # the reactor config operators drop into master.d, as shipped
        shutil.copy(REPO / "reactor/master.d/chatmail-reactor.conf", self.conf / "master.d/")
        self.process = subprocess.Popen(
            [str(VENV / "bin/salt-master"), "-c", str(self.conf), "--log-level=quiet"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "master.err", "ab"),
            start_new_session=True,
            preexec_fn=lifecycle.die_with_parent,
            env=_clean_env(),
        )
        self._handle = lifecycle.register("salt-master", self.stop)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        lifecycle.unregister(self._handle)

    def set_pillar(self, relays: dict[str, dict]) -> None:
        """Pillar ``chatmail`` per minion id."""
        top = {"base": {minion: [minion] for minion in relays}}
        (self.pillar / "top.sls").write_text(yaml.safe_dump(top))
        for minion, pillar in relays.items():
            (self.pillar / f"{minion}.sls").write_text(json.dumps({"chatmail": pillar}))

    def salt(self, target: str | list[str], *args: str, timeout: int = 900) -> dict:
        """``salt --out=json --static TARGET ARGS`` (a list target: ``-L``): {minion id: return}."""
        tgt = ["-L", ",".join(target)] if isinstance(target, list) else [target]
        proc = subprocess.run(
            [
                str(VENV / "bin/salt"),
                "-c",
                str(self.conf),
                "--out=json",
                "--static",
                f"--timeout={timeout}",
                "--log-level=quiet",
                *tgt,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout + 60,
            env=_clean_env(),
        )
        if "No minions matched the target" in proc.stdout:
            return {}
        try:
            return json.loads(proc.stdout) if proc.stdout.strip() else {}
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"salt {target} {args}: {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            ) from exc

    def wait_for(self, minions: list[str], timeout: float = 90) -> float:
        """Seconds until every minion answers test.ping."""
        started = time.monotonic()
        while True:
            answered = self.salt("*", "test.ping", timeout=5)
            if all(answered.get(m) is True for m in minions):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"minions {minions} did not answer; got {answered}\n{self.log()[-3000:]}")
            time.sleep(1)

    def log(self) -> str:
        try:
            return (self.workdir / "root/var/log/salt/master").read_text(errors="replace")
        except OSError:
            return ""


def join(box, master: SaltMaster) -> None:
    """Run a salt-minion daemon (from the bind-mounted venv) in ``box`` that serves ``master``."""
    config = {
        "id": box.name,
        "master": master.address,
        "master_port": master.ret_port,
        "publish_port": master.publish_port,
        "grains_cache": True,
        "enable_fqdns_grains": False,
        "loop_interval": 1,
    }
    # replaces the harness's masterless config (file_client local)
    box.write_file("/etc/salt/minion.d/chatmail.conf", yaml.safe_dump(config))
    box.write_file(
        "/etc/systemd/system/salt-minion.service",
        (
            "[Unit]\nDescription=Salt minion of the test fleet\nAfter=network.target\n\n"
            f"[Service]\nExecStart={VENV}/bin/salt-minion -c /etc/salt\nKillMode=process\nRestart=on-failure\n\n"
            "[Install]\nWantedBy=multi-user.target\n"
        ),
    )
    box.run(["systemctl", "daemon-reload"])
    box.run(["systemctl", "enable", "--now", "salt-minion"])


def publish_dkim(lab, master: SaltMaster, minions: list[str]) -> dict[str, dict]:
    """Each relay's DKIM TXT record (from chatmail.dkim_record on the relay) into the test DNS."""
    records = master.salt(minions, "chatmail.dkim_record")
    for minion in minions:
        record = records[minion]
        assert isinstance(record, dict), record
        lab.dns.txt(record["name"], record["value"])
    return records


def apply_all(master: SaltMaster, minions: list[str]) -> dict:
    """``salt <minions> saltutil.sync_all`` then ``state.apply chatmail`` (and chatmail.selfheal if
    the top file does not include it yet); returns the state.apply result per minion."""
    synced = master.salt(minions, "saltutil.sync_all")
    assert set(synced) == set(minions), synced
    result = master.salt(minions, "state.apply", "chatmail")
    if "chatmail.selfheal" not in (REPO / "chatmail/init.sls").read_text():
        extra = master.salt(minions, "state.apply", "chatmail.selfheal")
        for minion in minions:
            if isinstance(result.get(minion), dict) and isinstance(extra.get(minion), dict):
                result[minion].update(extra[minion])
    return result


def failures(states) -> list[str]:
    if not isinstance(states, dict):
        return [str(states)[:2000]]
    return [
        f"{s.get('__id__', k)}: {s.get('comment', '')}"[:600] for k, s in states.items() if s.get("result") is False
    ]


def _free_ports(address: str, count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((address, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _clean_env() -> dict[str, str]:
    return {"PATH": f"{VENV}/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
