"""chatmail.migrate_copy / migrate_adopt through Salt's loader, with a real rsync.

The old relay is a tmp root seeded like the backup test's; ``to`` is a
local directory standing for the new relay's root (rsync over SSH is the
same program with a host in front of the path).
"""

from __future__ import annotations

import shutil

import pytest

from support.relayfiles import MAILBOXES, PILLAR, put, seed, tree

pytestmark = pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync not installed")


@pytest.fixture
def chatmail(salt_loaders, tmp_path):
    old = tmp_path / "old"
    seed(old)
    salt_loaders.opts["chatmail.backup_root"] = str(old)
    yield salt_loaders.modules.chatmail
    salt_loaders.opts.pop("chatmail.backup_root", None)


def test_precopy_takes_mailboxes_then_final_copy_takes_everything_and_checks(chatmail, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    pre = chatmail.migrate_copy(to=str(new), pillar=PILLAR)
    assert set(pre["items"]) == {"mailboxes"} and pre["verified"] is False
    assert not (new / "etc/dkimkeys").exists()

    # mail arrives and is expunged between the two copies
    put(old, f"{MAILBOXES}/bob000002@chat.example.org/new/19000000.M1P1.relay,S=5", b"later")
    (old / MAILBOXES.lstrip("/") / "alice0001@chat.example.org/.DeltaChat/cur/17000001.M9P1.relay,S=10:2,S").unlink()
    final = chatmail.migrate_copy(to=str(new), final=True, pillar=PILLAR)
    assert final["verified"] is True and final["mail"] == "skipped (not the live system)"
    assert "disable_mail" in final["mail_on_again"]
    assert {"mailboxes", "dkim", "turn", "tls/cert", "tls/key", "postfix-queue/deferred"} == set(final["items"])
    assert tree(new) == tree(old)  # the half-delivered tmp/ files too: rsync mirrors, nothing is lost


def test_adopt_needs_the_users_and_says_how(chatmail, tmp_path, salt_loaders):
    from salt.exceptions import CommandExecutionError

    chatmail.migrate_copy(to=str(tmp_path / "new"), final=True, pillar=PILLAR)
    salt_loaders.opts["chatmail.backup_root"] = str(tmp_path / "new")
    with pytest.raises(CommandExecutionError, match=r"users .*vmail.* missing: apply the install stage first"):
        chatmail.migrate_adopt(pillar=PILLAR)


def _orch_runner():
    """The orchestration's runner module, loaded from its file (its checks are plain functions)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "_runners" / "chatmail_orch.py"
    spec = importlib.util.spec_from_file_location("chatmail_orch_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inventory_counts_messages_per_folder_and_the_orchestration_sees_a_lost_one(chatmail, tmp_path, salt_loaders):
    """What chatmail.orch.migrate compares after the final sync: equal after a copy, a missing message named."""
    compare = _orch_runner()._compare
    old_inv = chatmail.migrate_inventory(pillar=PILLAR)
    assert old_inv["accounts"] == 2
    assert old_inv["mailboxes"]["alice0001@chat.example.org"] == {".": 3, ".DeltaChat": 1}
    assert old_inv["messages"] == 6 and old_inv["queue_files"] == 1
    assert {"dkim", "turn", "tls/cert", "tls/key"} == set(old_inv["items"])

    chatmail.migrate_copy(to=str(tmp_path / "new"), final=True, pillar=PILLAR)
    salt_loaders.opts["chatmail.backup_root"] = str(tmp_path / "new")
    new_inv = chatmail.migrate_inventory(pillar=PILLAR)
    assert compare(old_inv, new_inv, exact=True) == []

    (
        tmp_path
        / "new"
        / MAILBOXES.lstrip("/")
        / "alice0001@chat.example.org/.DeltaChat/cur/17000001.M9P1.relay,S=10:2,S"
    ).unlink()
    (tmp_path / "new/etc/chatmail-turn/secret").write_text("another secret\n")
    problems = compare(old_inv, chatmail.migrate_inventory(pillar=PILLAR), exact=True)
    assert problems == [
        "alice0001@chat.example.org/.DeltaChat: 1 messages on the old relay, 0 on the new",
        "turn differs",
    ]
    # after activation new mail may have arrived: more is fine, less is not
    put(tmp_path / "new", f"{MAILBOXES}/bob000002@chat.example.org/new/19.M1P1.relay,S=5", b"new mail")
    assert compare(new_inv, chatmail.migrate_inventory(pillar=PILLAR), exact=False) == [
        "alice0001@chat.example.org/.DeltaChat: 1 messages on the old relay, 0 on the new"
    ]


def test_a_failed_step_prints_the_command_that_turns_mail_back_on(tmp_path):
    """Once mail is off on the old relay, every failing step names the one command that undoes that."""
    orch = _orch_runner()
    orch.__opts__ = {"cachedir": str(tmp_path)}

    def mail_off_then_fail(state):
        state["mail_off_at"] = 1.0
        raise orch.StepFailed("the copy differs")

    ret = orch._step("final_sync", "old-relay", "new-relay", mail_off_then_fail)
    assert ret["Error"].startswith("step final_sync failed: the copy differs. Mail is off on old-relay")
    assert ret["Error"].endswith('salt old-relay state.apply chatmail pillar=\'{"chatmail": {"disable_mail": false}}\'')
    before = orch._step("precopy", "a", "b", lambda state: (_ for _ in ()).throw(orch.StepFailed("rsync failed")))
    assert "a still takes mail; nothing to undo there" in before["Error"]
    assert "needs 'from' and 'to'" in orch._step("connect", "", "b", lambda s: {})["Error"]


def test_the_upgrade_probe_is_a_message_the_relays_filter_accepts(salt_loaders):
    """The health check's probe passes filtermail's rules (a Secure-Join request), and nothing else would:
    the same message without its Secure-Join header is cleartext the filter refuses."""
    from chatmaild import mimecheck

    probe = salt_loaders.modules.chatmail.probe_message("probeab12@one.test", ["probecd34@two.test"], "probe-01ab")
    mail = mimecheck.Mail(probe)
    assert mimecheck.is_securejoin_request(mail) and mail.from_address == "probeab12@one.test"
    assert b"Message-ID: <probe-01ab@one.test>" in probe
    assert not mimecheck.is_securejoin_request(
        mimecheck.Mail(probe.replace(b"Secure-Join: vc-request\r\nMIME", b"MIME"))
    )
