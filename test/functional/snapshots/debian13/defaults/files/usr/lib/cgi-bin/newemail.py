#!/usr/bin/python3
"""CGI script behind ``https://D/new``: suggests a fresh address and password (design.md §5.7).

It creates nothing: the account comes into existence at its first login
(doveauth).  Both parts come from ``secrets`` (a CSPRNG) because whoever
can guess a suggestion before its owner logs in can take the account.
The formula copies this file to ``/usr/lib/cgi-bin/newemail.py``; nginx
only passes POST requests to it.  ``CHATMAIL_INI`` in the environment
replaces the deployed ini path (tests).
"""

from __future__ import annotations

import json
import os
import secrets
import string
import sys

CHATMAILD_DIR = "/usr/local/lib/chatmaild"
CONFIG_PATH = CHATMAILD_DIR + "/chatmail.ini"
USERNAME_CHARS = string.ascii_lowercase + string.digits
PASSWORD_CHARS = string.ascii_letters + string.digits + string.punctuation
PASSWORD_EXTRA = 3  # a suggested password is this much longer than the minimum

try:
    from chatmaild.config import read_config
except ImportError:  # run as the copied CGI script: chatmaild lives beside the ini
    sys.path.insert(0, CHATMAILD_DIR)
    from chatmaild.config import read_config


def random_text(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_credentials(config) -> dict[str, str]:
    user = random_text(USERNAME_CHARS, config.username_max_length)
    password = random_text(PASSWORD_CHARS, config.password_min_length + PASSWORD_EXTRA)
    return {"email": f"{user}@{config.mail_domain}", "password": password}


def cgi_response(status: str, body: dict) -> str:
    headers = [f"Status: {status}", "Content-Type: application/json", "Cache-Control: no-store"]
    return "\r\n".join(headers) + "\r\n\r\n" + json.dumps(body) + "\n"


def main() -> int:
    try:
        config = read_config(os.environ.get("CHATMAIL_INI", CONFIG_PATH))
    except (OSError, ValueError) as exc:
        print(f"newemail: cannot read config: {exc}", file=sys.stderr)
        sys.stdout.write(cgi_response("500 Internal Server Error", {"error": "server misconfigured"}))
        return 1
    sys.stdout.write(cgi_response("200 OK", new_credentials(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
