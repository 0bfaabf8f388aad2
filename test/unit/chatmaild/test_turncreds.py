"""TURN REST credentials follow coturn's use-auth-secret scheme."""

from __future__ import annotations

import pytest

from chatmaild.turncreds import credentials, read_secret, turn_value
from support.dicts import openssl_hmac_sha1_base64


def test_credentials_match_openssl():
    username, password = credentials(b"north-secret", now=1_700_000_000, validity=86400)
    assert username == "1700086400"
    assert password == openssl_hmac_sha1_base64("north-secret", "1700086400")


def test_turn_value_form(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    value = turn_value("chat.example.org", secret, now=1_700_000_000)
    host, port, username, password = value.split(":")
    assert (host, port) == ("chat.example.org", "3478")
    assert int(username) == 1_700_000_000 + 5 * 86400
    assert password == openssl_hmac_sha1_base64("s3cr3t", username)


def test_empty_or_missing_secret(tmp_path):
    (tmp_path / "secret").write_text("\n")
    with pytest.raises(ValueError):
        read_secret(tmp_path / "secret")
    with pytest.raises(FileNotFoundError):
        read_secret(tmp_path / "missing")
