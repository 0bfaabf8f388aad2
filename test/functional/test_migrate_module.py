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
