"""chatmail.clean and the components' clean.sls, compiled by a real masterless Salt.

What clean must remove is not listed here: it is read from the formula
itself, by compiling ``chatmail`` with the same pillar and collecting every
file its states write (file.managed, file.recurse, file.symlink, archives,
sysctl files, files a cmd.run ``creates``) and every unit it runs.  A file
added to a config.sls without its clean counterpart fails here.  The
exceptions are the relay's data and what belongs to the Debian packages,
which clean keeps on purpose (docs/clean.md).

The same goes for the stale restart (chatmail_service.restarted_if_stale,
docs/stages.md): an activate stage run without configure restarts a daemon
whose files on disk are newer than it.  Every file the configure stage
writes for a daemon must be in that daemon's list (or be read afresh on
each use, ``READ_ON_USE``), and the list names nothing the formula does not
write, on each supported release.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

import pytest
import yaml

from support.salt import REPO, low_chunks

D = "chat.example.org"
PILLARS = {
    # the defaults: ACME certificates, a local iroh relay, no self-healing
    "defaults": {"mail_domain": D},
    # every optional part on, data in a place of the operator's choosing
    "everything": {
        "mail_domain": D,
        "tls_mode": "external",
        "tls_cert_file": "/etc/ssl/chatmail/fullchain.pem",
        "tls_key_file": "/etc/ssl/chatmail/privkey.pem",
        "mailboxes_dir": "/srv/mail",
        "mtail_address": "127.0.0.1",
        "selfheal": "masterless",
        "dovecot_source": "chatmail",
        "dns_forward_zones": {"test.": ["10.0.0.1"]},
        "backup_repository": "/srv/backup/chatmail",
    },
    "self-signed, self-healing from a master": {"mail_domain": D, "tls_mode": "self_signed", "selfheal": "master"},
}
# Removed by no clean: the relay's data, and what belongs to the Debian
# packages (which stay installed): the apt pin and the cached .debs of
# chatmail's Dovecot build.
DATA = ["/home/vmail", "/etc/dkimkeys", "/var/lib/acme", "/etc/chatmail-turn", "/etc/chatmail-backup"]
WITH_PACKAGES = ["/etc/apt/preferences.d/chatmail-dovecot", "/var/cache/chatmail"]
# Put back to Debian's default instead of removed: Postfix needs a master.cf.
RESTORED = {"/etc/postfix/master.cf": "/usr/share/postfix/master.cf.dist"}
# Units the relay uses but does not own: journald is only restarted.
NOT_STOPPED = {"systemd-journald"}
# Units enabled only through another unit (systemd's "indirect"): stopped,
# and disabled by disabling that other unit (fcgiwrap.socket).
INDIRECT = {"fcgiwrap"}


# Written by the configure stage, but read afresh on each use: no restart needed.
READ_ON_USE = {
    "/usr/local/lib/chatmaild/appversions.json": "chatmail-metadata reads it on each lookup",
    "/usr/local/sbin/chatmail-postfix-check": "run by Salt's check_cmd only",
    "/usr/local/sbin/chatmail-flush-queue": "run by the units' ExecStartPost",
    "/var/www/html/.well-known/autoconfig/mail/config-v1.1.xml": "a static file nginx serves",
    "/var/www/html/.well-known/mta-sts.txt": "a static file nginx serves",
    "/etc/sysctl.d/90-chatmail-dovecot.conf": "sysctl.present sets the running kernel's value at once",
    "/etc/systemd/system/chatmail-backup.service": "the backup timer starts this oneshot job afresh",
    "/usr/local/lib/chatmail-backup/salt-call": "run by each backup job",
}
# the grains of each supported release (chatmail/parameters/osfinger/)
RELEASE_GRAINS = {
    "debian12": {"os": "Debian", "os_family": "Debian", "osfinger": "Debian-12", "osarch": "amd64"},
    "debian13": {"os": "Debian", "os_family": "Debian", "osfinger": "Debian-13", "osarch": "amd64"},
}


def fun(chunk: dict) -> str:
    return f"{chunk['state']}.{chunk['fun']}"


def component(chunk: dict) -> str:
    """chatmail.<component>[.<step>]: the component a state belongs to."""
    return chunk["__sls__"].split(".")[1]


def unit(chunk: dict) -> str:
    """A service state's unit, without the default .service suffix."""
    return chunk["name"].removesuffix(".service")


def written_paths(chunk: dict) -> list[str]:
    """Files and trees a state of the formula writes (not directories it only ensures)."""
    kind = fun(chunk)
    if kind == "file.managed":
        return [] if chunk.get("replace") is False else [chunk["name"]]
    if kind in ("file.recurse", "file.symlink", "archive.extracted"):
        return [chunk["name"]]
    if kind == "sysctl.present":
        return [chunk["config"]]
    if kind == "cmd.run" and chunk.get("creates"):
        creates = chunk["creates"]
        return [creates] if isinstance(creates, str) else list(creates)
    return []


def within(path: str, tree: str) -> bool:
    return PurePosixPath(path) == PurePosixPath(tree) or PurePosixPath(tree) in PurePosixPath(path).parents


def protected(pillar: dict) -> list[str]:
    """Trees clean leaves alone: the relay's data and the packages' files."""
    data = DATA + [pillar.get("mailboxes_dir") or f"/home/vmail/mail/{D}"]
    data += [pillar[key] for key in ("tls_cert_file", "tls_key_file") if key in pillar]
    data += ["/etc/ssl/certs/mailserver.pem", "/etc/ssl/private/mailserver.key"]
    return data + WITH_PACKAGES


def kept(path: str, pillar: dict) -> bool:
    return any(within(path, tree) for tree in protected(pillar))


def requisites(chunk: dict, chunks: list[dict], kind: str = "require") -> set[str]:
    """IDs of the states ``chunk`` requires, directly or through the states they require."""
    found: set[str] = set()
    todo = [chunk]
    while todo:
        for req in todo.pop().get(kind, []):
            ((state, target),) = req.items()
            for other in chunks:
                hit = (
                    other["__sls__"] == target
                    if state == "sls"
                    else (other["state"] == state and target in (other["__id__"], other["name"]))
                )
                if hit and other["__id__"] not in found:
                    found.add(other["__id__"])
                    todo.append(other)
    return found


@pytest.fixture(scope="module", params=list(PILLARS), ids=list(PILLARS))
def relay(request, tmp_path_factory):
    """(pillar, states of chatmail, states of chatmail.clean), compiled with that pillar."""
    pillar = PILLARS[request.param]
    tmp = tmp_path_factory.mktemp("clean")
    return pillar, low_chunks("chatmail", pillar, tmp), low_chunks("chatmail.clean", pillar, tmp)


def test_every_file_the_formula_writes_is_removed_by_its_components_clean(relay):
    pillar, apply, clean = relay
    missing = []
    for chunk in apply:
        for path in written_paths(chunk):
            if kept(path, pillar):
                continue
            if path in RESTORED:
                restored_by = [
                    c
                    for c in clean
                    if fun(c) == "file.managed"
                    and c["name"] == path
                    and c["source"] == RESTORED[path]
                    and c["__sls__"] == f"chatmail.{component(chunk)}.clean"
                ]
                assert restored_by, f"{path} is not restored from {RESTORED[path]}"
                continue
            removed_by = [
                c["__id__"]
                for c in clean
                if fun(c) == "file.absent"
                and within(path, c["name"])
                and c["__sls__"] == f"chatmail.{component(chunk)}.clean"
            ]
            if not removed_by:
                missing.append(f"{chunk['__id__']}: {path}")
    assert missing == [], "written by the formula, left by chatmail.<component>.clean:\n" + "\n".join(missing)


def test_data_and_package_files_are_never_removed(relay):
    pillar, _, clean = relay
    for chunk in clean:
        if fun(chunk) == "file.absent":
            # neither inside a kept tree nor a parent of one (e.g. /home or /etc/ssl)
            hits = [tree for tree in protected(pillar) if within(chunk["name"], tree) or within(tree, chunk["name"])]
            assert hits == [], chunk["__id__"]


def test_every_unit_the_relay_runs_is_stopped_and_disabled_by_its_clean(relay):
    _, apply, clean = relay
    dead = {
        (component(c), unit(c))
        for c in clean
        if fun(c) == "service.dead" and (c.get("enable") is False or unit(c) in INDIRECT)
    }
    running = {(component(c), unit(c)) for c in apply if fun(c) == "service.running" and unit(c) not in NOT_STOPPED}
    assert running - dead == set()


def test_units_stop_before_their_files_go(relay):
    """Within each component, every file state requires all its service.dead states."""
    _, _, clean = relay
    for chunk in clean:
        if chunk["state"] != "file":
            continue
        stops = {c["__id__"] for c in clean if fun(c) == "service.dead" and c["__sls__"] == chunk["__sls__"]}
        assert stops <= requisites(chunk, clean), chunk["__id__"]
        assert all(c["order"] < chunk["order"] for c in clean if c["__id__"] in stops)


def test_systemd_reloads_after_unit_files_go(relay):
    _, _, clean = relay
    reloads = [c for c in clean if fun(c) == "module.run" and "service.systemctl_reload" in c]
    triggers = set().union(*(requisites(c, clean, "onchanges") for c in reloads))
    for chunk in clean:
        if fun(chunk) == "file.absent" and chunk["name"].startswith("/etc/systemd/system/"):
            assert chunk["__id__"] in triggers, chunk["__id__"]


def test_clean_only_uses_states_that_converge_and_honour_test(relay):
    """Every state reports what it would do under test=True and does nothing twice; the one
    command (putting the host's resolv.conf back) runs only while there is something to put back."""
    _, _, clean = relay
    allowed = {
        "service.dead",
        "file.absent",
        "file.replace",
        "file.managed",
        "service.running",
        "module.run",
        "beacon.absent",
        "test.nop",
        "cmd.run",
    }
    assert {fun(c) for c in clean} <= allowed
    for chunk in clean:
        if fun(chunk) == "module.run":
            assert chunk.get("onchanges"), chunk["__id__"]
        if fun(chunk) == "cmd.run":
            assert chunk.get("onlyif"), chunk["__id__"]
        if fun(chunk) == "file.managed":  # only Debian's own defaults are written back
            assert RESTORED.get(chunk["name"]) == chunk["source"], chunk["__id__"]
        if fun(chunk) == "service.dead":
            # a unit systemd does not know is skipped, so a dry run on a clean host reports nothing
            assert chunk["onlyif"] == f"systemctl cat -- {chunk['name']}"


def test_whole_clean_is_the_relay_in_reverse(relay):
    _, apply, clean = relay
    relay_order = yaml.safe_load((REPO / "chatmail" / "init.sls").read_text())["include"]
    run = list(dict.fromkeys(c["__sls__"] for c in clean))
    assert run == [f"{sls}.clean" for sls in reversed(relay_order)]
    # self-healing is gone before any mail daemon stops
    first_stop = next(c for c in clean if fun(c) == "service.dead")
    assert first_stop["name"] == "chatmail-selfheal"


@pytest.mark.parametrize("sls", ["chatmail.dovecot.clean", "chatmail.postfix.clean"])
def test_a_mail_daemons_own_clean_stops_self_healing_first(sls, tmp_path):
    """Alone, too: the beacon would otherwise restart the daemon just stopped."""
    clean = low_chunks(sls, PILLARS["everything"], tmp_path)
    (stop,) = [c for c in clean if fun(c) == "service.dead" and c["__sls__"] == sls]
    assert "chatmail-selfheal-chatmail-selfheal-service-dead" in requisites(stop, clean)
    assert {c["__sls__"] for c in clean} == {sls, "chatmail.selfheal.clean"}


def test_a_components_clean_renders_alone(tmp_path):
    clean = low_chunks("chatmail.turn.clean", PILLARS["defaults"], tmp_path)
    assert [(fun(c), c["name"]) for c in clean] == [
        ("service.dead", "coturn"),
        ("file.absent", "/etc/systemd/system/coturn.service.d/chatmail.conf"),
        ("file.absent", "/etc/turnserver.conf"),
        ("file.absent", "/usr/local/sbin/chatmail-turn-config"),
        ("module.run", "chatmail-turn-clean-systemd-reload-module-run"),
    ]


@pytest.fixture(
    scope="module", params=[(p, r) for p in ("defaults", "everything") for r in RELEASE_GRAINS], ids="-".join
)
def staged(request, tmp_path_factory):
    """(states of the install and configure stages, states of the activate stage alone), per pillar and release."""
    name, release = request.param
    pillar, grains = PILLARS[name], RELEASE_GRAINS[release]
    tmp = tmp_path_factory.mktemp("stale")
    with ThreadPoolExecutor(2) as pool:
        configure, activate = pool.map(
            lambda stages: low_chunks("chatmail", {**pillar, "stages": stages}, tmp / stages[-1], 600, grains),
            [["install", "configure"], ["activate"]],
        )
    return configure, activate


def stale_lists(chunks: list[dict]) -> dict[str, list[str]]:
    """{component: every path its stale restarts watch}."""
    lists: dict[str, list[str]] = {}
    for chunk in chunks:
        if fun(chunk) == "chatmail_service.restarted_if_stale":
            lists.setdefault(component(chunk), []).extend(chunk["configs"])
    return lists


def test_every_file_a_daemon_reads_is_in_its_stale_restart(staged):
    """Without it, a daemon that was running before a configure-only run keeps its old config
    when activate follows alone."""
    configure, activate = staged
    lists = stale_lists(activate)
    assert lists, "an activate-only run has no stale restart"
    units = yaml.safe_load((REPO / "chatmail/chatmaild/files/units/units.yaml").read_text())
    # oneshot jobs, started afresh by their timers
    jobs = {f"/etc/systemd/system/{job}.{kind}" for job in units["jobs"] for kind in ("service", "timer")}
    missing = []
    for chunk in configure:
        if component(chunk) not in lists or chunk["__sls__"].endswith(".package"):  # the configure stage's files
            continue
        for path in written_paths(chunk):
            if path in READ_ON_USE or path in jobs:
                continue
            if not any(within(path, tree) for tree in lists[component(chunk)]):
                missing.append(f"{chunk['__id__']}: {path}")
    assert missing == [], "written by configure, not in the component's stale restart:\n" + "\n".join(missing)


def test_a_stale_restart_watches_only_what_the_formula_writes(staged):
    """A path in the list that no state writes (a typo, a file of another release) is a restart
    that never happens."""
    configure, activate = staged
    written = {}
    for chunk in configure:
        ensured = [chunk["name"]] if fun(chunk) == "file.directory" else []
        written.setdefault(component(chunk), []).extend(written_paths(chunk) + ensured)
    for name, paths in stale_lists(activate).items():
        for path in paths:
            assert any(within(file, path) for file in written.get(name, [])), f"{name}: {path} is written by no state"
