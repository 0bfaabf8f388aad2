#!/usr/bin/python3
"""CGI script behind ``https://D/new``: suggests a fresh address and password (design.md §5.7).

It creates nothing: the account comes into existence at its first login
(doveauth).  Both parts come from ``secrets`` (a CSPRNG) because whoever
can guess a suggestion before its owner logs in can take the account.
The formula copies this file to the CGI path of its parameters table
(fcgiwrap.cgi in chatmail/parameters/defaults.yaml); nginx only passes POST
requests to it, with ``CHATMAIL_INI`` (a FastCGI parameter, which fcgiwrap
hands over as an environment variable) naming the relay's chatmail.ini.
The chatmaild package lies beside that file (chatmaild.lib of the table):
the copied script, which has no PYTHONPATH, imports it from there.

A relay whose certificate is self-signed by design (an IP-only relay or a
``_`` domain) also answers with a ``dclogin:`` URL: the credentials, the
server for an IP-only relay (``user@[1.2.3.4]`` names no host), and
``ic=3`` (accept an invalid certificate), as upstream does.  Delta Chat
cannot use ``DCACCOUNT:`` there, because it refuses the certificate when it
fetches /new itself.  A browser (its form on the index page asks for
text/html) gets a page with that link and its QR code, drawn by qrencode.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import string
import subprocess
import sys
from urllib.parse import quote

USERNAME_CHARS = string.ascii_lowercase + string.digits
PASSWORD_CHARS = string.ascii_letters + string.digits + string.punctuation
PASSWORD_EXTRA = 3  # a suggested password is this much longer than the minimum


def random_text(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_credentials(config) -> dict[str, str]:
    user = random_text(USERNAME_CHARS, config.username_max_length)
    password = random_text(PASSWORD_CHARS, config.password_min_length + PASSWORD_EXTRA)
    return {"email": f"{user}@{config.mail_domain_address}", "password": password}


def dclogin_url(config, email: str, password: str) -> str:
    """A dclogin: URL (Delta Chat's login QR code) that accepts the relay's self-signed certificate."""
    hosts = f"&ih={config.mail_domain}&sh={config.mail_domain}" if config.ip_relay else ""
    return f"dclogin:{quote(email, safe='@[]')}?p={quote(password, safe='')}&v=1{hosts}&ic=3"


def qr_svg(text: str) -> str:
    """An SVG QR code of ``text`` (qrencode, as for the website's invite code); empty without qrencode."""
    try:
        proc = subprocess.run(["qrencode", "-t", "SVG", "-l", "M", "-o", "-", text], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else ""


def html_page(creds: dict[str, str]) -> str:
    """The page a browser gets: the dclogin link and its QR code (no script needed)."""
    url = html.escape(creds["dclogin_url"], quote=True)
    svg = qr_svg(creds["dclogin_url"])
    svg = svg[svg.find("<svg") :] if "<svg" in svg else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Your chat profile</title></head><body>\n"
        f'<p><a class="cta" href="{url}">Open your new chat profile in Delta Chat</a></p>\n'
        "<p>Or scan this code with Delta Chat on another device. It holds the profile's "
        "password: show it to nobody else.</p>\n"
        f'<div id="qr-code">{svg}</div>\n</body></html>\n'
    )


def cgi_response(status: str, body: dict, as_html: bool = False) -> str:
    kind = "text/html; charset=utf-8" if as_html else "application/json"
    headers = [f"Status: {status}", f"Content-Type: {kind}", "Cache-Control: no-store"]
    text = html_page(body) if as_html else json.dumps(body) + "\n"
    return "\r\n".join(headers) + "\r\n\r\n" + text


def read_relay_config(ini: str):
    """chatmaild's Config of ``ini``; as the copied CGI script, chatmaild is imported from beside it."""
    try:
        from chatmaild.config import read_config
    except ImportError:  # run as the copied CGI script: chatmaild lives beside the ini
        sys.path.insert(0, os.path.dirname(ini))
        from chatmaild.config import read_config
    return read_config(ini)


def main() -> int:
    ini = os.environ.get("CHATMAIL_INI", "")
    try:
        if not ini:
            raise ValueError("CHATMAIL_INI is not set (nginx passes it)")
        config = read_relay_config(ini)
    except (OSError, ValueError) as exc:
        print(f"newemail: cannot read config: {exc}", file=sys.stderr)
        sys.stdout.write(cgi_response("500 Internal Server Error", {"error": "server misconfigured"}))
        return 1
    creds = new_credentials(config)
    if not config.dclogin_accounts:
        sys.stdout.write(cgi_response("200 OK", creds))
        return 0
    creds["dclogin_url"] = dclogin_url(config, creds["email"], creds["password"])
    wants_html = "text/html" in os.environ.get("HTTP_ACCEPT", "")
    sys.stdout.write(cgi_response("200 OK", creds, as_html=wants_html))
    return 0


if __name__ == "__main__":
    sys.exit(main())
