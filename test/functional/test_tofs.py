"""TOFS (docs/tofs.md): an operator's template in an earlier file root wins.

Everything is rendered through a real masterless Salt (support.salt): the
operator's files live in a tmp file root served before this repository,
exactly as docs/tofs.md tells an operator to set it up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.salt import REPO, Rendered, render

DOMAIN = "chat.example.org"
MAIN_CF = "/etc/postfix/main.cf"
MASTER_CF = "/etc/postfix/master.cf"
MAIN_CF_ID = "chatmail-postfix-main-cf-file-managed"
# Two pillar variants that between them take every branch with a template.
TREE_VARIANTS = {
    "acme": {
        "mail_domain": DOMAIN,
        "mtail_address": "127.0.0.1",
        "selfheal": "masterless",
        "dns_forward_zones": {"test.": ["10.0.0.1"]},
    },
    "external": {
        "mail_domain": DOMAIN,
        "tls_mode": "external",
        "tls_cert_file": "/etc/c.pem",
        "tls_key_file": "/etc/k.pem",
        "selfheal": "master",
    },
}
# Copied as code, not looked up through TOFS (docs/tofs.md, what cannot be overridden).
CODE = "salt://chatmail/chatmaild/files/chatmaild/"


def write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


@pytest.fixture(scope="module")
def overrides(tmp_path_factory) -> Path:
    """An operator's file root: relay1's own main.cf, a default for every relay, a site tree."""
    root = tmp_path_factory.mktemp("site")
    write(root, "chatmail/postfix/files/relay1/main.cf.j2", "# relay1's main.cf for {{ chatmail.mail_domain }}\n")
    write(root, "chatmail/postfix/files/default/main.cf.j2", "# every relay's main.cf\n")
    write(root, "chatmail/postfix/files/default/master.cf.j2", "# every relay's master.cf\n")
    write(
        root,
        "site/chatmail/postfix/files/default/main-small.cf.j2",
        "# small main.cf, max {{ chatmail.max_message_size }}\n",
    )
    write(root, "site/chatmail/postfix/files/eu/master.cf.j2", "# eu relays' master.cf\n")
    return root


@pytest.fixture(scope="module")
def postfix(tmp_path_factory, overrides):
    """chatmail.postfix rendered as minion ``id`` with the overrides root (and ``tofs`` pillar, grains)."""
    cache: dict[str, Rendered] = {}

    def get(minion_id: str, tofs: dict | None = None, grains: dict | None = None) -> Rendered:
        key = json.dumps([minion_id, tofs, grains], sort_keys=True)
        if key not in cache:
            pillar = {"mail_domain": DOMAIN, **({"tofs": tofs} if tofs else {})}
            cache[key] = render(
                "chatmail.postfix", pillar, tmp_path_factory.mktemp(minion_id), [overrides], minion_id, grains
            )
        return cache[key]

    return get


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The whole relay of a TREE_VARIANTS entry, rendered without any tofs pillar or override root."""
    cache: dict[str, Rendered] = {}

    def get(variant: str) -> Rendered:
        if variant not in cache:
            cache[variant] = render("chatmail", TREE_VARIANTS[variant], tmp_path_factory.mktemp(f"plain-{variant}"))
        return cache[variant]

    return get


def formula_file(source: str) -> Path:
    return REPO / source.removeprefix("salt://")


def files_text(r: Rendered) -> str:
    """Every rendered file, with the render's own tmp dir (in the minion config path) blanked."""
    return json.dumps(r.files, sort_keys=True).replace(str(r.root), "<tmp>")


def managed_sources(r: Rendered) -> dict[str, object]:
    """State ID -> source of every file.managed that has one."""
    return {
        sid: body["file.managed"]["source"]
        for sid, body in r.states.items()
        if body.get("file.managed", {}).get("source") is not None
    }


def tofs_sources(r: Rendered) -> dict[str, str]:
    """State ID -> source of every file.managed whose template goes through TOFS."""
    return {
        sid: source
        for sid, source in managed_sources(r).items()
        if str(source).startswith("salt://chatmail/") and not str(source).startswith(CODE)
    }


def component(source: str) -> str:
    """salt://<prefix>/<component>/files/... -> component (prefix here: chatmail)."""
    return source.removeprefix("salt://chatmail/").split("/")[0]


@pytest.mark.parametrize("variant", sorted(TREE_VARIANTS))
def test_every_file_managed_gets_one_source_so_salt_never_lists_the_fileserver_per_state(variant, plain):
    """A list of salt:// sources makes file.managed list the whole fileserver
    twice per state (file.source_list): seconds per apply.  The override is
    chosen at render time instead; a list coming back must fail here."""
    sources = managed_sources(plain(variant))
    assert len(sources) > 15
    lists = {sid: source for sid, source in sources.items() if not isinstance(source, str)}
    assert lists == {}


@pytest.mark.parametrize("variant", sorted(TREE_VARIANTS))
def test_without_overrides_every_template_is_the_formulas_and_each_state_id_is_its_own(variant, plain, tmp_path):
    """No operator file: every state's source is the formula's own file.

    source_files keyed by each state's own ID must reach exactly that state,
    else an ID passed to files_switch has drifted from the state's real ID:
    a probe file per state ID in a site root must become that state's source.
    """
    sources = tofs_sources(plain(variant))
    assert len(sources) > 15
    for sid, source in sources.items():
        assert formula_file(source).is_file(), (sid, source)
        assert source.startswith(f"salt://chatmail/{component(source)}/files/"), (sid, source)

    site = tmp_path / "site"
    for sid, source in sources.items():
        write(site, f"chatmail/{component(source)}/files/default/probe-{sid}", f"# probe {sid}\n")
    probes = {sid: [f"probe-{sid}"] for sid in sources}
    probed = render(
        "chatmail", {**TREE_VARIANTS[variant], "tofs": {"source_files": probes}}, tmp_path / "probed", [site]
    )
    for sid, source in sources.items():
        assert probed.state(sid)["source"] == f"salt://chatmail/{component(source)}/files/default/probe-{sid}", sid
        assert probed.files[probed.state(sid)["name"]] == f"# probe {sid}\n", sid


def test_a_tofs_pillar_without_override_files_renders_byte_identical_files(plain, tmp_path):
    """Names and folders that do not exist fall back to the formula's own file."""
    sids = tofs_sources(plain("acme"))
    tofs = {
        "path_prefix": "site/chatmail",
        "files_switch": ["id", "os_family"],
        "source_files": {sid: [f"missing-{sid}"] for sid in sids},
    }
    r = render("chatmail", {**TREE_VARIANTS["acme"], "tofs": tofs}, tmp_path)
    assert tofs_sources(r) == sids
    assert files_text(r) == files_text(plain("acme"))


def test_per_minion_override_is_used_for_that_minion_only(postfix):
    relay1 = postfix("relay1")
    assert relay1.files[MAIN_CF] == f"# relay1's main.cf for {DOMAIN}\n"
    assert postfix("relay2").files[MAIN_CF] != relay1.files[MAIN_CF]
    # show_sls names the template each relay uses
    assert relay1.state(MAIN_CF_ID)["source"] == "salt://chatmail/postfix/files/relay1/main.cf.j2"
    # state arguments other than the source stay the formula's
    assert relay1.state(MAIN_CF_ID)["check_cmd"] == "/usr/local/sbin/chatmail-postfix-check main.cf"


def test_default_override_applies_when_there_is_no_per_minion_one(postfix):
    assert postfix("relay2").files[MAIN_CF] == "# every relay's main.cf\n"
    assert postfix("relay2").state(MAIN_CF_ID)["source"] == "salt://chatmail/postfix/files/default/main.cf.j2"
    assert postfix("relay1").files[MASTER_CF] == "# every relay's master.cf\n"
    # files nobody overrode are the formula's
    assert postfix("relay1").files["/etc/postfix/login_map"] == (REPO / "chatmail/postfix/files/login_map").read_text()
    assert postfix("relay1").state("chatmail-postfix-login-map-file-managed")["source"] == (
        "salt://chatmail/postfix/files/login_map"
    )


def test_source_files_rename_with_another_path_prefix_and_grain(postfix):
    """A list grain tries each item; path_prefix moves the whole lookup."""
    tofs = {
        "path_prefix": "site/chatmail",
        "files_switch": ["roles"],
        "source_files": {MAIN_CF_ID: ["main-small.cf.j2"]},
    }
    r = postfix("relay1", tofs, {"roles": ["edge", "eu"]})
    assert r.files[MAIN_CF] == "# small main.cf, max 31457280\n"
    assert r.state(MAIN_CF_ID)["source"] == "salt://site/chatmail/postfix/files/default/main-small.cf.j2"
    assert r.files[MASTER_CF] == "# eu relays' master.cf\n"
    # relay1/ and default/ under the old prefix are no longer looked at
    assert (
        postfix("relay1", tofs, {"roles": ["edge"]})
        .files[MASTER_CF]
        .startswith("# Managed by the chatmail Salt formula")
    )


def test_bad_tofs_pillar_fails_the_render_naming_key_value_and_form(tmp_path):
    with pytest.raises(RuntimeError) as info:
        render("chatmail.postfix", {"mail_domain": DOMAIN, "tofs": {"files_switch": "id"}}, tmp_path)
    assert "pillar chatmail:tofs: got" in str(info.value)
    assert "tofs:files_switch: got 'id'; expected a list of grain names" in str(info.value)
