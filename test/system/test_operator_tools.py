"""Operator tools on a deployed container relay: status, pre-flight, DNS check.

One relay for the module.  dns_check runs inside the relay exactly as an
operator would run it: the relay's unbound finds the ``test.`` zone's name
server (the lab's NSD on the bridge) and the module asks it directly; the
test then publishes the records ``dns_zone`` asked for and expects a clean
check.  AC-10 (DNS finds A) and AC-28 (status says more than five things).
"""

from __future__ import annotations

import json

import pytest

from harness import failed_states

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def ops(relay):
    container = relay("ops1")
    applied = container.apply(container.pillar)
    assert failed_states(applied) == []
    return container


def call(container, *args):
    result = container.salt_call(*args)
    assert result.retcode == 0, result.stderr
    return result["local"]


def test_status_on_a_deployed_relay(ops):
    status = call(ops, "chatmail.status")
    assert len(status) > 5  # AC-28
    bad = [row for row in status["services"] if not row["ok"]]
    assert bad == []
    assert [row for row in status["ports"] if not row["ok"]] == []
    assert status["certificate"]["state"] == "valid" and status["certificate"]["days_left"] > 300
    assert status["mail_queue"]["state"] == "ok"
    assert status["accounts"]["state"] == "ok" and status["version"]["state"] == "ok"
    assert status["ok"] is True


def test_preflight_passes_on_the_relays_own_listeners_and_names_a_foreign_one(ops):
    ok = call(ops, "state.sls", "chatmail.preflight")
    (state,) = ok.values()
    assert state["result"] is True and state["changes"] == {}

    port = ops.pillar.get("filtermail_smtp_port", 10080)
    ops.run(["systemctl", "stop", "filtermail.service"])
    ops.run(["systemd-run", "--unit=squatter", "/usr/bin/python3", "-c",
             f"import socket,time;s=socket.socket();s.bind(('127.0.0.1',{port}));s.listen();time.sleep(600)"])
    try:
        result = ops.salt_call("state.sls", "chatmail.preflight")
        (state,) = result["local"].values()
        assert state["result"] is False
        assert f"port {port} (filtermail_smtp_port) is held by python3" in state["comment"]
        assert "unit squatter.service" in state["comment"]
    finally:
        ops.run(["systemctl", "stop", "squatter.service"], check=False)
        ops.run(["systemctl", "start", "filtermail.service"])


def test_dns_check_against_the_lab_dns(ops, test_dns):
    domain = ops.pillar["mail_domain"]
    zone = call(ops, "chatmail.dns_zone")
    first = call(ops, "chatmail.dns_check", "timeout=3")
    assert first["unreachable"] is False, first
    missing = {(r["name"], r["type"]) for r in first["required"]}
    assert (f"{domain}.", "A") not in missing and (f"{domain}.", "MX") not in missing  # AC-10: the lab has A and MX
    assert (f"www.{domain}.", "CNAME") in missing and (f"opendkim._domainkey.{domain}.", "TXT") in missing

    added = []
    for record in zone["records"]:
        if (record["name"], record["type"]) in {(f"{domain}.", "A"), (f"{domain}.", "MX")}:
            continue
        test_dns.records.append((record["name"], record["type"], record["value"]))
        added.append(record["name"])
    test_dns.reload()
    try:
        clean = call(ops, "chatmail.dns_check", "timeout=3")
        assert clean["ok"] is True, json.dumps(clean, indent=1)
        assert clean["required"] == [] and clean["recommended"] == []
    finally:
        test_dns.records = [r for r in test_dns.records if r[0] not in set(added) or r[0] == f"{domain}."]
        test_dns.records = [r for r in test_dns.records if not (r[0] == f"{domain}." and r[1] == "TXT")]
        test_dns.reload()
