"""chatmail.clean and the components' clean.sls, compiled by a real masterless Salt.

What clean must remove is not listed here: it is read from the formula
itself, by compiling ``chatmail`` with the same pillar and collecting every
file its states write (file.managed, file.recurse, file.symlink, archives,
sysctl files, files a cmd.run ``creates``) and every unit it runs.  A file
added to a config.sls without its clean counterpart fails here.  The
exceptions are the relay's data and what belongs to the Debian packages,
which clean keeps on purpose (docs/clean.md).
"""

from __future__ import annotations

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
