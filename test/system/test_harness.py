"""The harness itself: boot, run, files, guard, test DNS, proxy, Salt, teardown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import harness
from harness import TargetRefused, check_target, network, stale

pytestmark = pytest.mark.system

# a child Python that imports the harness the way the tests do (pytest.ini pythonpath)
HARNESS_ENV = dict(os.environ, PYTHONPATH=str(Path(harness.__file__).resolve().parents[1]))


@pytest.fixture(scope="module")
def box(relay):
    return relay("hbox")


def test_container_is_booted_systemd(box):
    state = box.run(["systemctl", "is-system-running"], check=False).stdout.strip()
    assert state in ("running", "degraded")
    assert box.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    assert box.run(["hostname"]).stdout.strip() == "hbox"


def test_exit_codes_and_output_pass_through(box):
    result = box.run("echo out; echo err >&2; exit 7", check=False)
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
    with pytest.raises(subprocess.CalledProcessError) as failed:
        box.run(["false"])
    assert failed.value.returncode == 1
    assert box.run(["cat"], input="fed through stdin").stdout == "fed through stdin"


def test_commands_get_a_clean_environment(box):
    env = box.run(["env"], env={"CHATMAIL_PROBE": "1"}).stdout
    assert "CHATMAIL_PROBE=1" in env
    assert not [line for line in env.splitlines() if line.startswith(("PIP_", "VIRTUAL_ENV", "PYTEST"))]


def test_write_and_read_files(box):
    box.write_file("/srv/probe/dir/file.txt", "line one\nline two\n", mode="0600")
    assert box.read_file("/srv/probe/dir/file.txt") == "line one\nline two\n"
    assert box.run(["stat", "-c", "%a", "/srv/probe/dir/file.txt"]).stdout.strip() == "600"
    assert box.exists("/srv/probe/dir") and not box.exists("/srv/probe/nothing")


def test_network_only_the_bridge(box, lab):
    routes = box.run(["ip", "-4", "route"]).stdout
    assert "default" not in routes
    assert f"{lab.bridge.network} dev host0" in routes
    assert f"{box.address}/24" in box.run(["ip", "-4", "-o", "addr", "show", "dev", "host0"]).stdout


def test_guard_refuses_what_the_harness_did_not_create(box, lab):
    for addr in ("192.0.2.1", "10.0.0.1", "8.8.8.8", "fd00::1", "relay1.test"):
        with pytest.raises(TargetRefused):
            check_target(addr)
    assert check_target(lab.bridge.address) == lab.bridge.address
    assert check_target(box.address) == box.address
    assert check_target("127.0.0.1") and check_target("::1")


def test_test_dns_answers_records_added_now(box, test_dns):
    test_dns.a("probe-a", "10.213.255.77")
    test_dns.txt("_probe.hbox", "v=probe " + "x" * 300)
    assert box.run(["getent", "hosts", "probe-a.test"]).stdout.split()[0] == "10.213.255.77"
    assert box.run(["getent", "hosts", "hbox.test"]).stdout.split()[0] == box.address
    lookup = textwrap.dedent("""
        import dns.resolver, sys
        answer = dns.resolver.resolve(sys.argv[1], sys.argv[2])
        print("".join(b.decode() for r in answer for b in r.strings) if sys.argv[2] == "TXT" else answer[0].to_text())
    """)
    assert box.run(["python3", "-c", lookup, "_probe.hbox.test", "TXT"]).stdout.strip() == "v=probe " + "x" * 300
    assert box.run(["python3", "-c", lookup, "hbox.test", "MX"]).stdout.strip() == "10 hbox.test."
    test_dns.remove("probe-a")
    assert box.run(["getent", "hosts", "probe-a.test"], check=False).returncode != 0


def test_proxy_reaches_registries_only(box, lab):
    curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", "-x", lab.proxy.url]
    assert box.run([*curl, "http://deb.debian.org/debian/dists/bookworm/Release"]).stdout == "200"
    # filtered by name inside tinyproxy: nothing is looked up or contacted
    assert box.run([*curl, "http://blocked.invalid/"], check=False).stdout == "403"
    assert lab.proxy.url in box.read_file("/etc/apt/apt.conf.d/80proxy")
    assert lab.proxy.url in box.read_file("/etc/pip.conf")


def test_salt_call_runs_the_repo_venv_inside(box):
    result = box.salt_call("test.ping")
    assert result.retcode == 0 and result["local"] is True
    grains = box.salt_call("grains.item", "init", "osrelease")["local"]
    assert grains["init"] == "systemd" and str(grains["osrelease"]).startswith("12")
    assert box.read_file("/srv/formula/chatmail/init.sls")  # the repo, bind-mounted
    assert box.run(["touch", "/srv/formula/x"], check=False).returncode != 0  # read-only


def test_stopping_a_container_leaves_nothing(lab):
    gone = lab.boot("hgone")
    pids, root, state_dir = (gone.nspawn_pid, gone.init_pid), str(gone.root), gone.state_dir
    lab.discard(gone)
    assert not any(Path(f"/proc/{pid}").exists() and _not_zombie(pid) for pid in pids)
    assert root not in Path("/proc/mounts").read_text()
    assert not state_dir.exists()
    assert gone.timings["stop"] < 10


def test_killed_session_cleans_up(tmp_path):
    """A session that gets SIGTERM mid-run still removes bridge, daemons, container and mount."""
    script = textwrap.dedent("""
        import json, os, signal
        from harness import Lab
        lab = Lab().start()
        box = lab.boot("hkill")
        print(json.dumps({"bridge": lab.bridge.name, "root": str(box.root), "address": box.address,
                          "pids": [box.nspawn_pid, box.init_pid, lab.proxy.process.pid, lab.dns.process.pid]}),
              flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=HARNESS_ENV)
    assert proc.returncode == -15, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert not Path(f"/sys/class/net/{seen['bridge']}").exists()
    assert seen["root"] not in Path("/proc/mounts").read_text()
    assert not [pid for pid in seen["pids"] if Path(f"/proc/{pid}").exists() and _not_zombie(pid)]
    with pytest.raises(TargetRefused):  # its route is gone: the guard no longer lets anything go there
        check_target(seen["address"])


def test_sigkilled_session_is_cleaned_up_by_the_next_one():
    """SIGKILL runs no handler: children die with their parent, the next start removes the rest."""
    script = textwrap.dedent("""
        import json, os, signal
        from harness import Lab
        lab = Lab().start()
        box = lab.boot("hkill9")
        print(json.dumps({"bridge": lab.bridge.name, "session": str(lab.session), "root": str(box.root),
                          "pids": [box.nspawn_pid, box.init_pid, lab.proxy.process.pid, lab.dns.process.pid]}),
              flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=HARNESS_ENV)
    assert proc.returncode == -9, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert Path(seen["session"]).exists()  # left behind: nothing ran at exit

    stale.remove_stale_sessions()  # (a concurrent session may have done it already)
    network.remove_stale_bridges()
    assert not Path(seen["session"]).exists()
    assert seen["root"] not in Path("/proc/mounts").read_text()
    assert not Path(f"/sys/class/net/{seen['bridge']}").exists()
    deadline = time.monotonic() + 30
    while [pid for pid in seen["pids"] if _not_zombie(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in seen["pids"] if _not_zombie(pid)]


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
