"""Issue "foundation": the formula applies cleanly, idempotently, and refuses bad pillar.

One relay container for the module: the first apply is done once (fixture
``applied``), every other test builds on that state.  "Changes nothing" is
checked on the container's filesystem itself: the overlay's upper dir lists
every file written since boot (``Container.written_files``).
"""

from __future__ import annotations

import pytest

from harness import changed_states, failed_states

pytestmark = pytest.mark.system

INI = "/usr/local/lib/chatmaild/chatmail.ini"
READ_CONFIG = (
    "import sys;"
    "from chatmaild.config import read_config;"
    "c = read_config(sys.argv[1]); print(c.mail_domain, c.max_user_send_per_minute, c.mailboxes_dir)"
)


@pytest.fixture(scope="module")
def found(relay):
    return relay("found1")


@pytest.fixture(scope="module")
def applied(found):
    return found.apply(found.pillar)


def test_first_apply_has_no_failed_states(found, applied):
    assert failed_states(applied) == []
    assert applied.retcode == 0
    assert changed_states(applied), "a fresh container must get something from the formula"
    domain = found.pillar["mail_domain"]
    assert found.read_file("/etc/mailname").strip() == domain
    # the services' own reader accepts what the formula rendered (Debian's python3 inside)
    out = found.run(
        ["/usr/bin/env", "PYTHONPATH=/usr/local/lib/chatmaild", "/usr/bin/python3", "-c", READ_CONFIG, INI]
    ).stdout.split()
    assert out == [domain, "60", f"/home/vmail/mail/{domain}"]


def test_second_apply_changes_nothing(found, applied):
    before = found.written_files()
    again = found.apply(found.pillar)
    assert failed_states(again) == []
    assert changed_states(again) == []
    assert _diff(before, found.written_files()) == []


def test_dry_run_reports_a_pillar_change_but_changes_nothing(found, applied):
    before = found.written_files()
    ini_before = found.read_file(INI)
    dry = found.apply({**found.pillar, "max_user_send_per_minute": 77}, test=True)
    assert failed_states(dry) == []
    assert "chatmail-chatmaild-ini-file-managed" in changed_states(dry)
    assert found.read_file(INI) == ini_before
    assert "max_user_send_per_minute = 60" in ini_before
    assert _diff(before, found.written_files()) == []


BAD_PILLAR = {
    # case: (pillar changes, None = remove the key), words the message must contain
    "missing mail_domain": ({"mail_domain": None}, ["mail_domain", "missing", "required"]),
    "unknown key": (
        {"max_user_send_per_minut": 5},
        ["max_user_send_per_minut", "unknown key", "did you mean max_user_send_per_minute"],
    ),
    "wrong type": (
        {"max_user_send_per_minute": "lots"},
        ["max_user_send_per_minute", "'lots'", "expected a whole number"],
    ),
    "malformed size": ({"max_mailbox_size": "500X"}, ["max_mailbox_size", "'500X'", "expected a size like 500M"]),
    "negative number": ({"delete_mails_after": -3}, ["delete_mails_after", "-3", "expected a whole number >= 0"]),
    "invalid domain": (
        {"mail_domain": "relay_1..test"},
        ["mail_domain", "relay_1..test", "expected a lower-case domain name"],
    ),
    "upstream privacy contact": (
        {"privacy_mail": "privacy@testrun.org"},
        ["privacy_mail", "privacy@testrun.org", "expected your own contact"],
    ),
}


@pytest.mark.parametrize("case", BAD_PILLAR, ids=list(BAD_PILLAR))
def test_bad_pillar_fails_naming_the_key_and_changes_nothing(found, applied, case):
    changes, words = BAD_PILLAR[case]
    pillar = {**found.pillar, **changes}
    pillar = {key: value for key, value in pillar.items() if value is not None}
    mailname, ini = found.read_file("/etc/mailname"), found.read_file(INI)
    before = found.written_files()

    result = found.apply(pillar)

    assert result.retcode != 0
    failures = "\n".join(failed_states(result))
    for word in words:
        assert word in failures, f"{case}: {word!r} not in:\n{failures[:2000]}"
    assert changed_states(result) == []
    # read again from the container, not from anything cached
    assert (found.read_file("/etc/mailname"), found.read_file(INI)) == (mailname, ini)
    assert _diff(before, found.written_files()) == []


def _diff(before: dict, after: dict) -> list[str]:
    """Paths written, changed or removed between two ``written_files`` snapshots."""
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
