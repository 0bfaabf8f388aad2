"""Self-healing, rendered: the reactor file through Salt's own Reactor, and chatmail.selfheal's files.

The reactor file is rendered by ``salt.utils.reactor.Reactor.reactions``,
the code a salt-master (and a minion's reactor engine) runs for an event:
it renders the SLS with ``tag``/``data`` and compiles the reactions into
the low chunks the reactor then executes.  Event data have the shapes the
service beacon really produces (docs/selfheal.md): on a master one event
per tag ``salt/beacon/<id>/chatmail_services/<unit>``, in a masterless
minion one ``__beacons_return`` event listing the beacon events.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import salt.utils.beacons
import yaml

from support.salt import REPO, render, served_tree

REACTOR = str(REPO / "reactor" / "restart_service.sls")
MASTER_CONF = REPO / "reactor" / "master.d" / "chatmail-reactor.conf"


@pytest.fixture(scope="module")
def reactor(tmp_path_factory):
    """Salt's Reactor with master options serving this repo (as a master would)."""
    import salt.config
    import salt.utils.reactor

    tmp = tmp_path_factory.mktemp("reactor")
    opts = salt.config.master_config(None)
    opts.update(
        root_dir=str(tmp),
        cachedir=str(tmp / "cache"),
        pki_dir=str(tmp / "pki"),
        sock_dir=str(tmp / "sock"),
        log_file=str(tmp / "log"),
        fileserver_backend=["roots"],
        file_roots={"base": [str(served_tree(tmp))]},
        fileserver_list_cache_time=0,
    )
    opts.update(yaml.safe_load(MASTER_CONF.read_text()))
    reactor = salt.utils.reactor.Reactor(opts)
    yield reactor
    reactor.minion.destroy()


def beacon(minion: str, unit: str, running) -> dict:
    """One service beacon event as Salt builds it: (tag, data)."""
    state = {} if running is None else {"running": running}
    return f"salt/beacon/{minion}/chatmail_services/{unit}", {unit: state, "service_name": unit, "id": minion}


def on_master(minion, unit, running, beacon_name="chatmail_services"):
    tag, data = beacon(minion, unit, running)
    return tag.replace("/chatmail_services/", f"/{beacon_name}/"), {**data, "_stamp": "2026-01-01T00:00:00.000000"}


def masterless(*events):
    """A masterless minion's __beacons_return event for several (unit, running)."""
    beacons = []
    for unit, running in events:
        tag, data = beacon("relay1", unit, running)
        beacons.append({"tag": tag, "data": data, "beacon_name": "service"})
    return "__beacons_return", {"beacons": beacons, "_stamp": "2026-01-01T00:00:00.000000"}


def restarted(relay: str, unit: str) -> list[tuple]:
    """The reactions to ``unit`` reported down on ``relay``: a warning in the log, then its restart."""
    return [
        ("local", "log.warning", relay, f"chatmail selfheal: {unit} on {relay} reported not running; restarting it"),
        ("local", "service.restart", relay, unit),
    ]


# case: (tag, data), reactions expected as (client, function, target, args)
CASES = {
    "master: postfix@- down": (
        on_master("relay1", "postfix@-", False),
        restarted("relay1", "postfix@-"),
    ),
    "master: dovecot down on the other relay": (
        on_master("relay2", "dovecot", False),
        restarted("relay2", "dovecot"),
    ),
    "master: postfix@- running again": (on_master("relay1", "postfix@-", True), []),
    # a Debian 13 relay's beacon watches postfix.service (it runs the master there); a
    # Debian 12 relay's watches postfix@- only, so its wrapper postfix.service is never reported
    "master: postfix down on a Debian 13 relay": (
        on_master("trixie1", "postfix", False),
        restarted("trixie1", "postfix"),
    ),
    "master: another service down": (on_master("relay1", "nginx", False), []),
    "master: an operator's own service beacon": (on_master("relay1", "dovecot", False, "service"), []),
    "master: no running field": (on_master("relay1", "dovecot", None), []),
    "masterless: postfix@- down, dovecot up": (
        masterless(("postfix@-", False), ("dovecot", True)),
        [
            (
                "caller",
                "log.warning",
                None,
                "chatmail selfheal: postfix@- on relay1 reported not running; restarting it",
            ),
            ("caller", "service.restart", None, "postfix@-"),
        ],
    ),
    "masterless: both down": (
        masterless(("postfix@-", False), ("dovecot", False)),
        [
            ("caller", "log.warning", None, "chatmail selfheal: dovecot on relay1 reported not running; restarting it"),
            (
                "caller",
                "log.warning",
                None,
                "chatmail selfheal: postfix@- on relay1 reported not running; restarting it",
            ),
            ("caller", "service.restart", None, "dovecot"),
            ("caller", "service.restart", None, "postfix@-"),
        ],
    ),
    "masterless: all running": (masterless(("postfix@-", True), ("dovecot", True)), []),
    "masterless: another unit down": (
        masterless(
            ("sshd", False),
        ),
        [],
    ),
    "masterless: no beacons": (("__beacons_return", {"beacons": []}), []),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_reactions(reactor, case):
    (tag, data), expected = CASES[case]
    chunks = reactor.reactions(tag, data, [REACTOR])
    got = sorted((c["state"], c["fun"], c.get("tgt"), next(iter(c["args"][0].values()))) for c in chunks)
    assert got == sorted(expected, key=lambda r: (r[0], r[1], r[2] or "", r[3]))


def test_master_config_routes_only_chatmail_beacons_to_the_reactor(reactor):
    """The shipped master.d file: our beacon's tags reach the file, others do not."""
    wanted = ["salt://reactor/restart_service.sls"]
    assert reactor.list_reactors("salt/beacon/relay1/chatmail_services/postfix@-") == wanted
    assert reactor.list_reactors("salt/beacon/relay2.example.org/chatmail_services/dovecot") == wanted
    assert reactor.list_reactors("salt/beacon/relay1/service/postfix@-") == []
    assert reactor.list_reactors("salt/job/123/ret/relay1") == []


# -- chatmail.selfheal -------------------------------------------------------------

DEBIAN13 = {"os": "Debian", "os_family": "Debian", "osfinger": "Debian-13", "osarch": "amd64"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """chatmail.selfheal rendered for each mode (in parallel: each is a salt-call)."""
    cases = {
        "masterless": {"selfheal": "masterless"},
        "master": {"selfheal": "master"},
        "disabled": {},
        "masterless, mail disabled": {"selfheal": "masterless", "disable_mail": True},
        "masterless, Debian 13": {"selfheal": "masterless"},
    }

    def one(name):
        pillar = {"mail_domain": "relay1.test", **cases[name]}
        grains = DEBIAN13 if "Debian 13" in name else None
        return name, render("chatmail.selfheal", pillar, tmp_path_factory.mktemp("selfheal"), grains=grains)

    with ThreadPoolExecutor(len(cases)) as pool:
        return dict(pool.map(one, cases))


MASTERLESS_FILES = {
    "/etc/chatmail-selfheal/minion",
    "/etc/chatmail-selfheal/minion.d/chatmail-beacons.conf",
    "/etc/chatmail-selfheal/reactor/restart_service.sls",
    "/usr/local/lib/chatmail-selfheal/salt-minion",
    "/etc/systemd/system/chatmail-selfheal.service",
}


def test_masterless_minion_reacts_to_its_local_beacon_bus(rendered, reactor):
    r = rendered["masterless"]
    assert set(r.files) == MASTERLESS_FILES
    minion = yaml.safe_load(r.files["/etc/chatmail-selfheal/minion"])
    assert minion["master_type"] == "disable" and minion["file_client"] == "local"
    assert minion["engines"] == [{"reactor": {}}]
    assert minion["loop_interval"] == 1
    # its own keys, cache and sockets: never those of /etc/salt
    for key in ("pki_dir", "cachedir", "sock_dir", "pidfile"):
        assert "chatmail-selfheal" in minion[key], key
    # the reactor map sends __beacons_return to the installed copy of the reactor file
    (route,) = minion["reactor"]
    assert route == {"__beacons_return": ["/etc/chatmail-selfheal/reactor/restart_service.sls"]}
    assert (
        r.files["/etc/chatmail-selfheal/reactor/restart_service.sls"]
        == (REPO / "reactor/restart_service.sls").read_text()
    )
    assert r.state("chatmail-selfheal-service-running")["watch"] == [{"sls": "chatmail.selfheal.config"}]


def test_beacon_config_is_valid_for_salts_service_beacon(rendered):
    import salt.beacons.service
    import salt.utils.beacons

    conf = yaml.safe_load(rendered["masterless"].files["/etc/chatmail-selfheal/minion.d/chatmail-beacons.conf"])
    items = conf["beacons"]["chatmail_services"]
    assert isinstance(items, list), "beacon config must be Salt's list form"
    flat = salt.utils.beacons.list_to_dict(items)
    assert flat["beacon_module"] == "service"
    assert sorted(flat["services"]) == ["dovecot", "postfix@-"]
    assert all(s["onchangeonly"] is True for s in flat["services"].values())
    assert 0 < flat["interval"] <= 5
    assert salt.beacons.service.validate(items) == (True, "Valid beacon configuration")


def test_debian13_watches_the_postfix_unit_that_runs_its_master(rendered):
    """On Debian 13 postfix.service runs the master (params.postfix.unit), postfix@- is gone;
    the master's reactor restarts that name (case "master: postfix down on a Debian 13 relay")."""
    r = rendered["masterless, Debian 13"]
    conf = yaml.safe_load(r.files["/etc/chatmail-selfheal/minion.d/chatmail-beacons.conf"])
    flat = salt.utils.beacons.list_to_dict(conf["beacons"]["chatmail_services"])
    assert sorted(flat["services"]) == ["dovecot", "postfix"]
    assert r.files["/etc/chatmail-selfheal/reactor/restart_service.sls"] == Path(REACTOR).read_text()


def test_launcher_runs_the_salt_that_applied_the_formula(rendered, tmp_path):
    text = rendered["masterless"].files["/usr/local/lib/chatmail-selfheal/salt-minion"]
    python = text.splitlines()[0][2:]
    assert os.path.samefile(python, REPO / ".venv/bin/python3")  # grain pythonexecutable of the render
    launcher = tmp_path / "salt-minion"
    launcher.write_text(text)
    launcher.chmod(0o755)
    proc = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("salt-minion 3"), proc


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_file_verifies(rendered, tmp_path):
    r = rendered["masterless"]
    unit = r.write("/etc/systemd/system/chatmail-selfheal.service", tmp_path / "chatmail-selfheal.service")
    exec_start = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    assert exec_start == [
        "ExecStart=/usr/local/lib/chatmail-selfheal/salt-minion -c /etc/chatmail-selfheal --disable-keepalive"
    ]
    assert "Restart=always" in unit.read_text()
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    # the launcher exists only on a relay
    problems = [
        line for line in proc.stderr.splitlines() if line.strip() and "chatmail-selfheal/salt-minion" not in line
    ]
    assert not problems, proc.stderr


def test_master_mode_drops_beacons_into_the_running_minions_config(rendered):
    r = rendered["master"]
    (path,) = r.files
    assert path.endswith("/salt/minion.d/chatmail-beacons.conf")  # next to the minion's own config file
    items = yaml.safe_load(r.files[path])["beacons"]["chatmail_services"]
    present = r.state("chatmail-selfheal-beacon-present")
    assert present["name"] == "chatmail_services"
    # beacon.present gets the same items as the drop-in (so a restarted minion changes nothing)
    assert [{k: v} for k, v in present.items() if k not in ("name", "require", "order")] == items
    # no masterless daemon in master mode
    assert "chatmail-selfheal-service-dead" in r.states
    assert r.state("chatmail-selfheal-unit-file-absent")["name"] == "/etc/systemd/system/chatmail-selfheal.service"


@pytest.mark.parametrize("mode", ["disabled", "masterless, mail disabled"])
def test_nothing_to_watch_means_no_daemon_and_no_beacon(rendered, mode):
    r = rendered[mode]
    assert r.files == {}
    assert "chatmail-selfheal-service-dead" in r.states
    assert "chatmail-selfheal-master-beacons-file-absent" in r.states
    removed = {args["file.absent"]["name"] for args in r.states.values() if "file.absent" in args}
    assert MASTERLESS_FILES <= removed
    assert not any("beacon.present" in args for args in r.states.values())
