"""The README's "Deploy to a real server" steps, exactly as written, in a container.

Unlike the other system tests (which point Salt straight at the repo's
module folders), this relay is configured the way an operator does it:
file_roots only, modules synced with saltutil.sync_all, settings in a
chatmail.ini read by the chatmail_ini ext_pillar, the ini written by
chatmail.init_ini.
"""

from __future__ import annotations

import json

import pytest

from harness import changed_states, failed_states
from harness.container import VENV

pytestmark = pytest.mark.system

MINION_CONF = """\
file_client: local
file_roots:
  base: [/srv/formula]
ext_pillar:
  - chatmail_ini: /etc/chatmail/chatmail.ini
grains_cache: true
enable_fqdns_grains: false
"""
INI = "/etc/chatmail/chatmail.ini"


def salt_call(container, *args: str, check: bool = True):
    proc = container.run([str(VENV / "bin/salt-call"), "--local", "--out=json", "--log-level=quiet",
                          "--retcode-passthrough", *args], check=False, timeout=900)
    if not check:
        return proc
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)["local"]


@pytest.fixture(scope="module")
def operator_relay(relay):
    container = relay("readme1")
    # the operator's own minion config replaces the harness's one
    container.write_file("/etc/salt/minion.d/chatmail.conf", MINION_CONF)
    container.run(["mkdir", "-p", "/etc/chatmail"])
    return container


def test_sync_then_init_writes_a_chatmail_ini(operator_relay):
    synced = salt_call(operator_relay, "saltutil.sync_all")
    assert "modules.chatmail_settings" in synced["modules"]
    assert "pillar.chatmail_ini" in synced["pillar"]
    domain = operator_relay.pillar["mail_domain"]
    salt_call(operator_relay, "chatmail.init_ini", domain, f"path={INI}")
    text = operator_relay.read_file(INI)
    assert f"mail_domain = {domain}" in text
    refused = salt_call(operator_relay, "chatmail.init_ini", domain, f"path={INI}", check=False)
    assert refused.returncode != 0
    assert f"{INI} exists; pass force=True" in refused.stdout + refused.stderr


def test_ini_settings_reach_the_relay_through_the_ext_pillar(operator_relay):
    pillar = operator_relay.pillar
    zone, servers = next(iter(pillar["dns_forward_zones"].items()))
    # what an operator of this container would add: no ACME CA is reachable here
    extra = f"tls_mode = self_signed\niroh_relay =\ndns_forward_zones = {zone}={','.join(servers)}\n" \
            "max_user_send_per_minute = 42\n"
    operator_relay.write_file(INI, operator_relay.read_file(INI) + extra)
    as_pillar = salt_call(operator_relay, "chatmail.ini_to_pillar", INI)
    assert "max_user_send_per_minute: '42'" in as_pillar

    dry = operator_relay.salt_call("state.apply", "chatmail", "test=True")
    assert failed_states(dry) == []
    applied = operator_relay.salt_call("state.apply", "chatmail")
    assert failed_states(applied) == [] and applied.retcode == 0
    rendered = operator_relay.read_file("/usr/local/lib/chatmaild/chatmail.ini")
    assert "max_user_send_per_minute = 42" in rendered
    again = operator_relay.salt_call("state.apply", "chatmail")
    assert changed_states(again) == []
