"""The README's "Deploy to a real server", word for word, in a fresh container.

The commands are read from README.md (the indented blocks of that
section) and run as written, only with the container's domain for
chat.example.org.  The container plays the fresh Debian 12 server, and
then a fresh Debian 13 one (Python 3.13: its own hash-pinned set): the
repository arrives as a git clone in /root/chatmail-formula (made from the
bind-mounted tree, as the container has no internet), and
``scripts/install-relay`` installs its own Salt from PyPI through the
harness proxy, places the formula, writes chatmail.ini, shows the dry run,
applies on "y", and later upgrades in place on a newer checkout.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness import changed_states, failed_states

pytestmark = pytest.mark.system

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Deploy to a real server"
EXAMPLE_DOMAIN = "chat.example.org"
CLONE = "/root/chatmail-formula"
INI = "/etc/chatmail/chatmail.ini"
PLACED = "/srv/formulas/chatmail-formula"
SALT_CALL = "/usr/local/bin/salt-call"  # the script links its venv's salt-call there, on root's PATH
RUN_TIMEOUT = 1800  # the first run builds Salt's sdists on a shared 2-core machine
LOGGED_ERROR = re.compile(r"\[(ERROR|CRITICAL)\s*\]|Traceback")


def readme_blocks() -> list[list[str]]:
    """The command blocks (4-space indented lines) of the README's real-server section."""
    text = README.read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    blocks, current = [], []
    for line in section.splitlines():
        if line.startswith("    ") and line.strip():
            current.append(line.strip())
        elif current and line.strip():
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def run_block(container, block: list[str], domain: str, cwd: str, answer: str | None):
    script = "set -e\ncd " + cwd + "\n" + "\n".join(line.replace(EXAMPLE_DOMAIN, domain) for line in block)
    proc = container.run(["bash", "-c", script], check=False, input=answer, timeout=RUN_TIMEOUT)
    proc.output = proc.stdout + proc.stderr
    return proc


def errors_logged(text: str) -> list[str]:
    return [line for line in text.splitlines() if LOGGED_ERROR.search(line)]


def commit(container, message: str) -> str:
    container.run(f"cd {CLONE} && git add -A && git -c user.name=t -c user.email=t@t commit -qm '{message}'")
    return container.run(["git", "-C", CLONE, "rev-parse", "HEAD"]).stdout.strip()


@pytest.fixture(scope="module")
def blocks():
    found = readme_blocks()
    assert len(found) == 2, f"expected the install and the upgrade block, got {found}"
    install, upgrade = found
    assert any("scripts/install-relay " + EXAMPLE_DOMAIN in line for line in install), install
    assert any("scripts/install-relay" in line and "--yes" in line for line in upgrade), upgrade
    return install, upgrade


@pytest.fixture(scope="module", params=["12", "13"])
def server(relay, request):
    """A fresh container of each Debian release with the repository cloned to /root/chatmail-formula (and git to read it)."""
    container = relay(f"readme{request.param}", release=request.param)
    # the base image preinstalls the relay's packages; a fresh server has no nginx on port 80
    # (which ACME needs, so the dry run's pre-flight check would refuse it)
    container.run(["systemctl", "disable", "--now", "nginx"])
    container.run(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git >/dev/null", timeout=600
    )
    container.run(f"cp -a /srv/formula {CLONE} && git -C {CLONE} init -q")
    container.revision = commit(container, "the release")
    return container


@pytest.fixture(scope="module")
def domain(server) -> str:
    return server.pillar["mail_domain"]


@pytest.fixture(scope="module")
def declined(server, blocks, domain):
    """The install block answered "n": everything set up, nothing applied."""
    return run_block(server, blocks[0], domain, "/root", answer="n\n")


@pytest.fixture(scope="module")
def installed(server, blocks, domain, declined):
    """What an operator of this container edits before applying, then the same command answered "y"."""
    zone, servers = next(iter(server.pillar["dns_forward_zones"].items()))
    extra = (
        f"tls_mode = self_signed\niroh_relay =\ndns_forward_zones = {zone}={','.join(servers)}\n"
        "max_user_send_per_minute = 42\n"
    )
    server.write_file(INI, server.read_file(INI) + extra)
    return run_block(server, blocks[0], domain, "/root", answer="y\n")


def test_without_yes_the_dry_run_is_shown_and_nothing_applied(declined, server, domain):
    assert declined.returncode == 0, declined.output[-3000:]
    assert "test=True" in declined.stdout and "Nothing applied" in declined.stdout
    assert f"mail_domain = {domain}" in server.read_file(INI)
    assert server.exists(f"{PLACED}/chatmail/init.sls")
    assert not server.exists("/etc/chatmail-version"), "a declined run applied something"
    assert errors_logged(declined.output) == []


def test_answered_yes_the_relay_converges_and_dns_and_status_are_shown(installed, server, domain):
    assert installed.returncode == 0, installed.output[-5000:]
    assert errors_logged(installed.output) == [], installed.output[-5000:]
    assert f"{domain}." in installed.stdout and " MX " in installed.stdout  # chatmail.dns_zone
    assert "mail_queue:" in installed.stdout  # chatmail.status
    assert server.read_file("/etc/chatmail-version").splitlines()[0] == server.revision
    assert "max_user_send_per_minute = 42" in server.read_file("/usr/local/lib/chatmaild/chatmail.ini")
    status = server.salt_call("chatmail.status")["local"]
    bad = [row for row in status["services"] + status["ports"] if not row["ok"]]
    assert status["ok"], json.dumps({"not ok": bad, "certificate": status["certificate"]}, indent=1)[:3000]


def test_ini_is_refused_twice_and_converts_to_pillar(installed, server, domain):
    refused = server.run([SALT_CALL, "--local", "chatmail.init_ini", domain, f"path={INI}"], check=False)
    assert refused.returncode != 0 and f"{INI} exists; pass force=True" in refused.stdout + refused.stderr
    as_pillar = server.run([SALT_CALL, "--local", "--out=txt", "chatmail.ini_to_pillar", INI]).stdout
    assert "max_user_send_per_minute: '42'" in as_pillar


def test_running_it_again_on_a_newer_checkout_upgrades_in_place(installed, server, blocks):
    formula = server.read_file(f"{CLONE}/FORMULA")
    server.write_file(f"{CLONE}/FORMULA", re.sub(r"(?m)^release: .*$", "release: 99", formula))
    newer = commit(server, "a newer release")
    upgraded = run_block(server, blocks[1], "", CLONE, answer=None)
    assert upgraded.returncode == 0, upgraded.output[-5000:]
    assert errors_logged(upgraded.output) == [], upgraded.output[-5000:]
    assert "release: 99" in server.read_file(f"{PLACED}/FORMULA")
    assert server.read_file("/etc/chatmail-version").splitlines()[0] == newer
    dry = server.salt_call("state.apply", "chatmail", "test=True")
    assert failed_states(dry) == [] and changed_states(dry) == []
