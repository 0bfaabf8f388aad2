"""chatmail_preflight.ports_free and chatmail/preflight/init.sls.

A real ``python3`` child listens on a free loopback port that the pillar
makes the relay's filtermail port: the state must fail naming the port and
the process, the same under ``test=True``, and pass once the listener is
gone.  The SLS is applied for real with ``salt-call --local state.sls``
(it only reads).
"""

from __future__ import annotations

import subprocess

import pytest

from support.freeports import free_port
from support.salt import call, minion_dir

DOMAIN = "chat.example.org"


def listen(address: str, port: int) -> subprocess.Popen:
    code = (
        "import socket,time;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        f"s.bind(({address!r},{port}));s.listen();print('up',flush=True);time.sleep(300)"
    )
    proc = subprocess.Popen(["python3", "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def listener(port):
    proc = listen("127.0.0.1", port)
    yield proc
    stop(proc)


@pytest.fixture
def ports_free(salt_loaders):
    return salt_loaders.states.chatmail_preflight.ports_free


def test_foreign_listener_fails_naming_port_and_process(ports_free, port, listener, salt_loaders):
    pillar = {"mail_domain": DOMAIN, "filtermail_smtp_port": port}
    ret = ports_free(name="relay ports", ports=[port], pillar=pillar)
    assert ret.result is False and ret.changes == {}
    assert ret.comment.startswith(f"port {port} (filtermail_smtp_port) is held by python3 (pid {listener.pid}")
    assert "expected filtermail (unit filtermail.service) or free" in ret.comment

    salt_loaders.opts["test"] = True
    try:
        dry = ports_free(name="relay ports", ports=[port], pillar=pillar)
    finally:
        salt_loaders.opts["test"] = False
    assert dry.result is False and dry.changes == {} and dry.comment == ret.comment

    stop(listener)
    ret = ports_free(name="relay ports", ports=[port], pillar=pillar)
    assert ret.result is True and ret.changes == {}
    assert f"ports {port} are free" in ret.comment


def test_listener_on_another_address_is_not_in_the_way(ports_free, port):
    """filtermail binds 127.0.0.1; a listener on 127.0.0.2 leaves that free."""
    proc = listen("127.0.0.2", port)
    try:
        ret = ports_free(name="relay ports", ports=[port], pillar={"mail_domain": DOMAIN, "filtermail_smtp_port": port})
        assert ret.result is True, ret.comment
    finally:
        stop(proc)


def test_only_the_relays_ports_can_be_selected(ports_free):
    ret = ports_free(name="relay ports", ports=[1], pillar={"mail_domain": DOMAIN})
    assert ret.result is False and "not ports this relay checks: [1]" in ret.comment


def test_port_conflicts_module_function_lists_the_holder(salt_loaders, port, listener):
    found = salt_loaders.modules.chatmail.port_conflicts(
        ports=str(port), pillar={"mail_domain": DOMAIN, "filtermail_smtp_port_incoming": port}
    )
    (conflict,) = found["conflicts"]
    assert conflict["port"] == port and conflict["setting"] == "filtermail_smtp_port_incoming"
    assert [(p["name"], p["pid"]) for p in conflict["held_by"]] == [("python3", listener.pid)]
    assert "filtermail-incoming.service" in conflict["expected"]


def apply_sls(
    tmp_path, pillar: dict, *extra: str, sls: str = "chatmail.preflight", grains: dict | None = None
) -> tuple[int, dict[str, dict]]:
    """Exit code and {state id: result} of applying ``sls``."""
    conf = minion_dir(tmp_path, pillar, grains=grains)
    result = call(conf, "state.sls", sls, *extra, timeout=300)
    return result.returncode, {ret["__id__"]: ret for ret in result.data.values()}


def test_sls_applies_the_state_and_fails_hard(tmp_path, port, listener):
    code, rets = apply_sls(tmp_path, {"mail_domain": DOMAIN, "filtermail_smtp_port": port})
    ret = rets["chatmail-preflight-ports-free"]
    assert code != 0 and ret["result"] is False
    assert f"port {port} (filtermail_smtp_port) is held by python3" in ret["comment"]
    code, rets = apply_sls(tmp_path, {"mail_domain": DOMAIN, "filtermail_smtp_port": port}, "test=True")
    dry = rets["chatmail-preflight-ports-free"]
    assert dry["result"] is False and f"port {port}" in dry["comment"] and dry["changes"] == {}


DEBIAN_11 = {
    "os": "Debian",
    "os_family": "Debian",
    "osfinger": "Debian-11",
    "oscodename": "bullseye",
    "osmajorrelease": 11,
}
SUPPORTED = "supported: Debian-12 (bookworm), Debian-13 (trixie)"


@pytest.mark.parametrize("mode", [(), ("test=True",)], ids=["apply", "test"])
def test_unsupported_release_stops_the_whole_run_before_anything(tmp_path, mode):
    """The whole relay on Debian 11: the first state fails naming the platform; no other state runs.

    Under test=True Salt ignores failhard and reports the rest (changing
    nothing); the run still fails, with the same comment.
    """
    code, rets = apply_sls(tmp_path, {"mail_domain": DOMAIN}, *mode, sls="chatmail", grains=DEBIAN_11)
    first = rets["chatmail-preflight-platform-supported"]
    assert code != 0 and first["result"] is False and first["changes"] == {}
    assert (
        first["comment"]
        == f"platform Debian-11 is not supported by the chatmail formula; {SUPPORTED}. Nothing was changed."
    )
    if not mode:
        assert [sid for sid, ret in rets.items() if ret["result"] is not False] == []
        assert not any(ret["changes"] for ret in rets.values())


def test_supported_release_passes(tmp_path):
    code, rets = apply_sls(
        tmp_path, {"mail_domain": DOMAIN}, "test=True", grains={**DEBIAN_11, "osfinger": "Debian-12"}
    )
    ret = rets["chatmail-preflight-platform-supported"]
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == "Debian-12 (bookworm) is supported"


def test_debian_13_passes(tmp_path):
    code, rets = apply_sls(
        tmp_path, {"mail_domain": DOMAIN}, "test=True", grains={**DEBIAN_11, "osfinger": "Debian-13"}
    )
    ret = rets["chatmail-preflight-platform-supported"]
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == "Debian-13 (trixie) is supported"
