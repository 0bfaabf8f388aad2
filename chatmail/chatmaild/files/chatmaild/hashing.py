"""SHA512-CRYPT password hashes through the system's libcrypt.

Python 3.13 dropped the ``crypt`` module and the relay may not use PyPI, so
the hash comes from ``libcrypt.so.1`` (libxcrypt, part of every Debian
system) via ctypes.  ``crypt_rn`` is the reentrant variant: it writes into
a caller-owned buffer, so concurrent calls need no lock, and ctypes drops
the GIL for the duration of the call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hmac
import secrets
import string

SCHEME = "{SHA512-CRYPT}"
_SALT_CHARS = "./" + string.digits + string.ascii_uppercase + string.ascii_lowercase
_CRYPT_DATA_SIZE = 32768  # sizeof(struct crypt_data) in libxcrypt


def _load_libcrypt() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_rn.restype = ctypes.c_char_p
    lib.crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    return lib


_libcrypt = _load_libcrypt()


def crypt(password: str, setting: str) -> str:
    """crypt(3) of ``password`` with ``setting`` (e.g. ``$6$<salt>``)."""
    phrase = password.encode("utf-8")
    if b"\x00" in phrase:
        raise ValueError("password contains a NUL byte")
    data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    result = _libcrypt.crypt_rn(phrase, setting.encode("ascii"), data, _CRYPT_DATA_SIZE)
    if not result or result.startswith(b"*"):
        raise ValueError(f"libcrypt rejected setting {setting!r}")
    return result.decode("ascii")


def sha512_crypt(password: str, salt: str | None = None) -> str:
    """``$6$<salt>$<hash>`` with 5000 rounds (the crypt default Dovecot expects)."""
    if salt is None:
        salt = "".join(secrets.choice(_SALT_CHARS) for _ in range(16))
    return crypt(password, "$6$" + salt)


def hash_password(password: str) -> str:
    """The value stored in ``MB/<addr>/password``."""
    return SCHEME + sha512_crypt(password)


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches a stored ``{SHA512-CRYPT}$6$...`` value."""
    if not stored.startswith(SCHEME + "$6$"):
        return False
    hashed = stored[len(SCHEME) :]
    try:
        candidate = crypt(password, hashed)
    except ValueError:
        return False
    return hmac.compare_digest(candidate, hashed)
