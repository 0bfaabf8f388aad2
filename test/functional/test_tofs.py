"""TOFS (docs/tofs.md): an operator's template in an earlier file root wins.

Everything is rendered through a real masterless Salt (saltrender): the
operator's files live in a tmp file root served before this repository,
exactly as docs/tofs.md tells an operator to set it up.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from saltrender import REPO, SALT_CALL, Rendered, minion_dir, render

DOMAIN = "chat.example.org"
MAIN_CF = "/etc/postfix/main.cf"
MASTER_CF = "/etc/postfix/master.cf"
MAIN_CF_ID = "chatmail-postfix-main-cf-file-managed"
# Two pillar variants that between them take every branch with a template.
TREE_VARIANTS = {
    "acme": {"mail_domain": DOMAIN, "mtail_address": "127.0.0.1", "selfheal": "masterless",
             "dns_forward_zones": {"test.": ["10.0.0.1"]}},
    "external": {"mail_domain": DOMAIN, "tls_mode": "external", "tls_cert_file": "/etc/c.pem",
                 "tls_key_file": "/etc/k.pem", "selfheal": "master"},
}


def write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


@pytest.fixture(scope="module")
def overrides(tmp_path_factory) -> Path:
    """An operator's file root: relay1's own main.cf, and a default for every relay."""
    root = tmp_path_factory.mktemp("site")
    write(root, "chatmail/postfix/files/relay1/main.cf.j2", "# relay1's main.cf for {{ chatmail.mail_domain }}\n")
    write(root, "chatmail/postfix/files/default/main.cf.j2", "# every relay's main.cf\n")
    write(root, "chatmail/postfix/files/default/master.cf.j2", "# every relay's master.cf\n")
    write(root, "site/chatmail/postfix/files/default/main-small.cf.j2", "# small main.cf, max {{ chatmail.max_message_size }}\n")
    return root


@pytest.fixture(scope="module")
def postfix(tmp_path_factory, overrides):
    """chatmail.postfix rendered as minion ``id`` with the overrides root (and ``tofs`` pillar)."""
    cache: dict[tuple, Rendered] = {}

    def get(minion_id: str, tofs: dict | None = None) -> Rendered:
        key = (minion_id, json.dumps(tofs, sort_keys=True))
        if key not in cache:
            pillar = {"mail_domain": DOMAIN, **({"tofs": tofs} if tofs else {})}
            cache[key] = render("chatmail.postfix", pillar, tmp_path_factory.mktemp(minion_id), [overrides], minion_id)
        return cache[key]

    return get


def formula_file(source: str) -> Path:
    return REPO / source.removeprefix("salt://")


def files_text(r: Rendered) -> str:
    """Every rendered file, with the render's own tmp dir (in the minion config path) blanked."""
    return json.dumps(r.files, sort_keys=True).replace(str(r.root), "<tmp>")


def managed_sources(r: Rendered) -> dict[str, list[str]]:
    """State ID -> source list of every file.managed that goes through TOFS."""
    out = {}
    for sid, body in r.states.items():
        source = body.get("file.managed", {}).get("source")
        if isinstance(source, list):
            out[sid] = source
    return out


@pytest.mark.parametrize("variant", sorted(TREE_VARIANTS))
def test_without_overrides_every_template_is_the_formulas_and_each_state_id_is_its_own(variant, tmp_path):
    """No operator file: Salt can only pick the formula's file, the last source.

    source_files keyed by each state's own ID must reach exactly that state,
    else an ID passed to files_switch has drifted from the state's real ID.
    """
    plain = render("chatmail", TREE_VARIANTS[variant], tmp_path / "plain")
    sources = managed_sources(plain)
    assert len(sources) > 15
    for sid, candidates in sources.items():
        own = candidates[-1]
        assert own.startswith("salt://chatmail/") and formula_file(own).is_file(), (sid, own)
        assert not any(formula_file(c).exists() for c in candidates[:-1]), (sid, candidates)

    probes = {sid: [f"probe-{sid}"] for sid in sources}
    probed = render("chatmail", {**TREE_VARIANTS[variant], "tofs": {"source_files": probes}}, tmp_path / "probed")
    for sid, candidates in managed_sources(probed).items():
        assert f"salt://chatmail/{candidates[-1].split('/')[3]}/files/default/probe-{sid}" in candidates, (sid, candidates)
        assert candidates[-1] == sources[sid][-1], sid
    # a renamed file that does not exist falls back to the formula's own
    assert files_text(probed) == files_text(plain)


def test_per_minion_override_is_used_for_that_minion_only(postfix):
    relay1 = postfix("relay1")
    assert relay1.files[MAIN_CF] == f"# relay1's main.cf for {DOMAIN}\n"
    assert postfix("relay2").files[MAIN_CF] != relay1.files[MAIN_CF]
    # state arguments other than the source stay the formula's
    assert relay1.state(MAIN_CF_ID)["check_cmd"] == "/usr/local/sbin/chatmail-postfix-check main.cf"


def test_default_override_applies_when_there_is_no_per_minion_one(postfix):
    assert postfix("relay2").files[MAIN_CF] == "# every relay's main.cf\n"
    assert postfix("relay1").files[MASTER_CF] == "# every relay's master.cf\n"
    # files nobody overrode are the formula's
    assert postfix("relay1").files["/etc/postfix/login_map"] == (REPO / "chatmail/postfix/files/login_map").read_text()


def test_source_files_rename_with_another_path_prefix_and_grain(postfix):
    tofs = {"path_prefix": "site/chatmail", "files_switch": ["os_family"],
            "source_files": {MAIN_CF_ID: ["main-small.cf.j2"]}}
    r = postfix("relay1", tofs)
    assert r.files[MAIN_CF] == "# small main.cf, max 31457280\n"
    # relay1/ under the old prefix is no longer looked at: master.cf is the formula's
    assert r.files[MASTER_CF].startswith("# Managed by the chatmail Salt formula")
    sources = r.state(MAIN_CF_ID)["source"]
    assert sources[-2:] == ["salt://site/chatmail/postfix/files/default/main-small.cf.j2",
                            "salt://chatmail/postfix/files/main.cf.j2"]
    assert sources[0].startswith("salt://site/chatmail/postfix/files/") and "/default/" not in sources[0]


def test_salt_file_source_list_picks_the_same_override(tmp_path, overrides, postfix):
    """file.managed's own choice (file.source_list) agrees with what the render used."""
    sources = postfix("relay1").state(MAIN_CF_ID)["source"]
    conf = minion_dir(tmp_path, {"mail_domain": DOMAIN}, [overrides], "relay1")
    proc = subprocess.run(
        [str(SALT_CALL), "--local", "-c", str(conf), "--out=json", "file.source_list", json.dumps(sources), "", "base"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["local"][0] == "salt://chatmail/postfix/files/relay1/main.cf.j2"


def test_bad_tofs_pillar_fails_the_render_naming_key_value_and_form(tmp_path):
    with pytest.raises(RuntimeError) as info:
        render("chatmail.postfix", {"mail_domain": DOMAIN, "tofs": {"files_switch": "id"}}, tmp_path)
    assert "pillar chatmail:tofs: got" in str(info.value)
    assert "tofs:files_switch: got 'id'; expected a list of grain names" in str(info.value)
