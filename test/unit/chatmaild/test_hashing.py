"""chatmaild.hashing gives the hashes Python's `crypt` module gave.

Relays on Debian 12 stored ``{SHA512-CRYPT}$6$...`` values made with
Python 3.11's `crypt`; Debian 13's Python 3.13 has no `crypt`, and
chatmaild calls libcrypt itself.  Existing accounts keep logging in only
if both give the same hash for the same password and salt: the vectors
below are the SHA-crypt specification's and one made by Python 3.11's
``crypt.crypt`` on Debian 12.
"""

from __future__ import annotations

import pytest

from chatmaild import hashing

VECTORS = [
    # the SHA-crypt specification's test vector (default 5000 rounds)
    (
        "Hello world!",
        "$6$saltstring",
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    ),
    # crypt.crypt() of Python 3.11 on Debian 12, non-ASCII password, 16-character salt as chatmaild makes
    (
        "pässwörd-of-a-chatmail-user",
        "$6$Xk3aQ9bL1mN7pR2s",
        "$6$Xk3aQ9bL1mN7pR2s$kqqDmumSqonDb0.5Eeq7Cc1jsnl/dirQ1SlI1VTfYBbhO.Tawx8/LuzlVn6OeFsy0JAR9JQC9qttBj4u9gkzE0",
    ),
]


@pytest.mark.parametrize(("password", "setting", "want"), VECTORS)
def test_crypt_matches_known_hashes(password, setting, want):
    assert hashing.crypt(password, setting) == want


@pytest.mark.parametrize(("password", "setting", "want"), VECTORS)
def test_stored_hash_from_before_verifies(password, setting, want):
    stored = hashing.SCHEME + want
    assert hashing.verify_password(password, stored)
    assert not hashing.verify_password(password + "x", stored)


def test_new_hash_has_the_stored_format():
    stored = hashing.hash_password("a new password")
    scheme, six, salt, digest = stored.split("$")
    assert (scheme, six, len(salt), len(digest)) == ("{SHA512-CRYPT}", "6", 16, 86)
    assert hashing.verify_password("a new password", stored)
