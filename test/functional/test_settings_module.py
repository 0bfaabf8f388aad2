"""chatmail.settings / init_ini / ini_to_pillar and the chatmail_ini ext_pillar, through Salt's loader."""

import pytest
import salt.loader
import salt.utils.yaml
from salt.exceptions import CommandExecutionError


def test_settings_validates_pillar_and_adds_derived_values(salt_loaders):
    salt_loaders.opts["pillar"] = {"chatmail": {"mail_domain": "chat.example.org", "max_mailbox_size": "1g"}}
    salt_loaders.refresh_pillar() if hasattr(salt_loaders, "refresh_pillar") else None
    result = salt_loaders.modules.chatmail.settings({"mail_domain": "chat.example.org", "max_mailbox_size": "1g"})
    assert result["max_mailbox_size"] == "1G"
    assert result["mailboxes_dir"] == "/home/vmail/mail/chat.example.org"
    assert result["tls_cert_path"] == "/var/lib/acme/live/chat.example.org/fullchain"
    assert "mail_domain = chat.example.org" in result["ini"]


def test_settings_error_names_key_value_and_form(salt_loaders):
    with pytest.raises(CommandExecutionError) as info:
        salt_loaders.modules.chatmail.settings({"mail_domain": "chat.example.org", "max_message_size": "-5"})
    assert "pillar chatmail:max_message_size: got '-5'" in str(info.value)
    assert "whole number" in str(info.value)


def test_init_ini_writes_once_and_refuses_to_overwrite(salt_loaders, tmp_path):
    path = tmp_path / "chatmail.ini"
    result = salt_loaders.modules.chatmail.init_ini("chat.example.org", path=str(path))
    assert result["written"] is True
    text = path.read_text()
    assert "mail_domain = chat.example.org" in text and "max_mailbox_size = 500M" in text
    path.write_text(text + "# operator edit\n")
    with pytest.raises(CommandExecutionError, match="exists; pass force=True"):
        salt_loaders.modules.chatmail.init_ini("chat.example.org", path=str(path))
    assert path.read_text().endswith("# operator edit\n")
    salt_loaders.modules.chatmail.init_ini("other.example.org", path=str(path), force=True)
    assert "mail_domain = other.example.org" in path.read_text()


def test_ini_to_pillar_gives_yaml_that_validates_the_same(salt_loaders, tmp_path):
    path = tmp_path / "chatmail.ini"
    path.write_text("[params]\nmail_domain = chat.example.org\nmax_user_send_per_minute = 30\ndisable_ipv6 = true\n")
    text = salt_loaders.modules.chatmail.ini_to_pillar(str(path))
    pillar = salt.utils.yaml.safe_load(text)
    assert pillar["chatmail"]["max_user_send_per_minute"] == "30"
    settings = salt_loaders.modules.chatmail.settings(pillar["chatmail"])
    assert settings["max_user_send_per_minute"] == 30 and settings["disable_ipv6"] is True


def test_ini_to_pillar_refuses_a_bad_file(salt_loaders, tmp_path):
    path = tmp_path / "chatmail.ini"
    path.write_text("[params]\nmail_domain = chat.example.org\nmax_mailbox_size = huge\n")
    with pytest.raises(CommandExecutionError, match="max_mailbox_size: got 'huge'"):
        salt_loaders.modules.chatmail.ini_to_pillar(str(path))


def _ext_pillar(opts, loaders):
    pillars = salt.loader.pillars(opts, loaders.modules)
    return pillars["chatmail_ini"]


def test_ext_pillar_reads_the_minions_own_file(salt_loaders, tmp_path):
    (tmp_path / "relay1.ini").write_text("[params]\nmail_domain = relay1.example.org\ndelete_mails_after = 5\n")
    (tmp_path / "relay2.ini").write_text("[params]\nmail_domain = relay2.example.org\n")
    ext = _ext_pillar(salt_loaders.opts, salt_loaders)
    template = str(tmp_path / "{minion_id}.ini")
    assert ext("relay1", {}, template) == {"chatmail": {"mail_domain": "relay1.example.org", "delete_mails_after": "5"}}
    assert ext("relay2", {}, template)["chatmail"]["mail_domain"] == "relay2.example.org"
    assert ext("relay3", {}, template) == {}
