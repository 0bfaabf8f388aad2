"""The whole relay rendered for the test pillars, compared with a stored snapshot.

A refactoring of the formula's tables (chatmail/parameters/, map.jinja)
must not change what a Debian 12 relay gets: every state's arguments and
the text of every managed file are compared with
``snapshots/<release>/<pillar>/`` (states.json and the
files, at their paths on the relay), taken before the refactoring.  A
change that is meant (a new setting, a fixed template) refreshes the
snapshot on purpose::

    CHATMAIL_SNAPSHOT_UPDATE=1 .venv/bin/pytest -q test/functional/test_render_snapshot.py

and the diff of the snapshot shows what changed for an operator.

The grains that pick per-release values are pinned (``RELEASES``), so the
snapshot does not depend on the host the test runs on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from support.salt import render

HERE = Path(__file__).parent / "snapshots"
D = "chat.example.org"
PILLARS = {
    "defaults": {"mail_domain": D},
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
    },
    "self-signed, self-healing from a master": {"mail_domain": D, "tls_mode": "self_signed", "selfheal": "master"},
    "remote iroh, no mail": {"mail_domain": D, "iroh_relay": "https://iroh.example.org", "disable_mail": True},
}
# the grains that select per-release values, per release and architecture
RELEASES = {
    "debian12": {
        "os": "Debian",
        "os_family": "Debian",
        "osfinger": "Debian-12",
        "oscodename": "bookworm",
        "osmajorrelease": 12,
        "osarch": "amd64",
    },
    "debian12-arm64": {
        "os": "Debian",
        "os_family": "Debian",
        "osfinger": "Debian-12",
        "oscodename": "bookworm",
        "osmajorrelease": 12,
        "osarch": "arm64",
    },
    "debian13": {
        "os": "Debian",
        "os_family": "Debian",
        "osfinger": "Debian-13",
        "oscodename": "trixie",
        "osmajorrelease": 13,
        "osarch": "amd64",
    },
}
# per release: the pillars rendered (arm64 differs only in the pinned downloads)
RENDERED = {"debian12": list(PILLARS), "debian12-arm64": ["everything"], "debian13": ["defaults", "everything"]}
# grains that differ between hosts and say nothing about the release
HOST = {
    "id": "render-test",
    "pythonexecutable": "/usr/bin/python3",
    "ipv6": ["::1", "2001:db8::25", "fe80::1"],
    "num_cpus": 2,
}
# the version marker names the checkout's commit (and its uncommitted diff): it changes with
# every commit, so the snapshot holds a placeholder (test_version_marker.py tests the marker)
VERSION_MARKER = ("chatmail-version-marker-file-managed", "/etc/chatmail-version")
VERSION_PLACEHOLDER = "<the formula's version>\n"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def rendered(release: str, tmp: Path) -> dict[str, str]:
    """{snapshot file: text} of `chatmail` rendered for ``release`` and each pillar.

    Per pillar: ``states.json`` (every state's arguments, without Salt's run
    order number, which moves whenever a state is added anywhere) and each
    managed file's text under ``files/`` at its path on the relay.
    """
    out = {}
    for i, name in enumerate(RENDERED[release]):
        r = render(
            "chatmail", PILLARS[name], tmp / str(i), grains={**RELEASES[release], **HOST}, timeout=600
        )  # the whole relay: ~20 s alone, minutes on a loaded host
        for body in r.states.values():
            for args in body.values():
                args.pop("order", None)
        for args in r.states.get(VERSION_MARKER[0], {}).values():
            if "contents" in args:
                args["contents"] = VERSION_PLACEHOLDER
        if VERSION_MARKER[1] in r.files:
            r.files[VERSION_MARKER[1]] = VERSION_PLACEHOLDER
        text = json.dumps(r.states, sort_keys=True, indent=1).replace(str(tmp / str(i)), "<tmp>")
        out[f"{slug(name)}/states.json"] = text + "\n"
        for path, content in r.files.items():
            path = path.replace(str(tmp / str(i)), "/<tmp>")
            out[f"{slug(name)}/files{path}"] = "<not rendered: remote source>\n" if content is None else content
    return out


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_render_matches_snapshot(release, tmp_path):
    got = rendered(release, tmp_path / "render")
    root = HERE / release
    if os.environ.get("CHATMAIL_SNAPSHOT_UPDATE") or not root.exists():
        shutil.rmtree(root, ignore_errors=True)
        for name, text in got.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        if not os.environ.get("CHATMAIL_SNAPSHOT_UPDATE"):
            pytest.fail(f"snapshots/{release} did not exist; written now, commit it")
    want = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}
    assert sorted(got) == sorted(want), f"files added/removed: {sorted(set(got) ^ set(want))}"
    for name in sorted(want):
        assert got[name] == want[name], f"{release}/{name} differs from the snapshot"
