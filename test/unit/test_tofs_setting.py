"""The formula-scope setting ``tofs`` (template override and files switch, docs/tofs.md).

A typo here would silently turn an operator's override off, so every wrong
shape must fail the run with the sub-key, the value and the expected form.
"""

import pytest

from chatmail_config import SettingsError, parse_ini, render_ini, validate

BASE = {"mail_domain": "chat.example.org"}


def tofs_problem(tofs):
    with pytest.raises(SettingsError) as info:
        validate({**BASE, "tofs": tofs}, source="pillar chatmail")
    (problem,) = info.value.problems
    return problem


def test_default_looks_up_by_minion_id_under_chatmail():
    assert validate(BASE)["tofs"] == {"path_prefix": "chatmail", "files_switch": ["id"], "source_files": {}}


def test_each_sub_key_is_optional_and_the_others_keep_their_default():
    tofs = validate({**BASE, "tofs": {"path_prefix": "site/chatmail/"}})["tofs"]
    assert tofs == {"path_prefix": "site/chatmail", "files_switch": ["id"], "source_files": {}}
    tofs = validate(
        {
            **BASE,
            "tofs": {
                "files_switch": ["id", "os_family", "roles:mail"],
                "source_files": {"chatmail-postfix-main-cf-file-managed": ["main-relay.cf.j2"]},
            },
        }
    )["tofs"]
    assert tofs["path_prefix"] == "chatmail"
    assert tofs["files_switch"] == ["id", "os_family", "roles:mail"]
    assert tofs["source_files"] == {"chatmail-postfix-main-cf-file-managed": ["main-relay.cf.j2"]}


def test_empty_files_switch_leaves_only_default_and_the_formula():
    assert validate({**BASE, "tofs": {"files_switch": []}})["tofs"]["files_switch"] == []


# a table: one case per line: not reformatted
# fmt: off
@pytest.mark.parametrize(
    "tofs, names, expected",
    [
        ({"files_swich": ["id"]}, "tofs:files_swich", "did you mean files_switch?"),
        ({"files_switch": "id"}, "tofs:files_switch: got 'id'", "expected a list of grain names"),
        ({"files_switch": [{"id": 1}]}, "tofs:files_switch: got [{'id': 1}]", "expected a list of grain names"),
        ({"path_prefix": "salt://chatmail"}, "tofs:path_prefix: got 'salt://chatmail'", "no salt://"),
        ({"path_prefix": "/srv/salt/chatmail"}, "tofs:path_prefix: got '/srv/salt/chatmail'", "no leading /"),
        ({"path_prefix": "../chatmail"}, "tofs:path_prefix: got '../chatmail'", "no .."),
        ({"path_prefix": ""}, "tofs:path_prefix: got ''", "a folder in the file roots"),
        ({"source_files": ["main.cf.j2"]}, "tofs:source_files: got ['main.cf.j2']", "state IDs mapped to lists of file names"),
        ({"source_files": {"postfix-main-cf": ["m.j2"]}}, "'postfix-main-cf' is not a state ID", "chatmail-postfix-main-cf-file-managed"),
        ({"source_files": {"chatmail-postfix-main-cf-file-managed": "m.j2"}},
         "chatmail-postfix-main-cf-file-managed: got 'm.j2'", "lists of file names"),
        ({"source_files": {"chatmail-postfix-main-cf-file-managed": []}},
         "chatmail-postfix-main-cf-file-managed: got []", "lists of file names"),
        ({"source_files": {"chatmail-postfix-main-cf-file-managed": ["../etc/shadow"]}},
         "got ['../etc/shadow']", "lists of file names"),
        ("path_prefix=site", "got 'path_prefix=site'", "expected a mapping (pillar only, not chatmail.ini)"),
    ],
)
# fmt: on
def test_bad_tofs_names_key_value_and_expected_form(tofs, names, expected):
    problem = tofs_problem(tofs)
    assert problem.startswith("pillar chatmail:tofs: got "), problem
    assert names in problem and expected in problem, problem


def test_every_bad_sub_key_is_reported_at_once():
    problem = tofs_problem({"path_prefix": "/abs", "files_switch": "id", "extra": 1})
    for key in ("tofs:path_prefix", "tofs:files_switch", "tofs:extra"):
        assert key in problem, problem


def test_chatmail_ini_never_carries_it():
    ini = render_ini(validate({**BASE, "tofs": {"path_prefix": "site/chatmail"}}))
    assert "tofs" not in parse_ini(ini) and "site/chatmail" not in ini
