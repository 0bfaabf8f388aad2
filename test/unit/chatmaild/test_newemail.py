"""newemail CGI: run as a real process, its output parsed like a CGI gateway would."""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
import sys
from pathlib import Path

import pytest

from chatmaild.config import read_config
from chatmaild.newemail import PASSWORD_CHARS, USERNAME_CHARS, new_credentials

CHATMAILD_DIR = Path(__file__).resolve().parents[3] / "chatmail" / "chatmaild" / "files" / "chatmaild"
SCRIPT = CHATMAILD_DIR / "newemail.py"


def write_ini(tmp_path: Path, **settings) -> Path:
    ini = tmp_path / "chatmail.ini"
    lines = ["[params]", "mail_domain = chat.example.org"] + [f"{k} = {v}" for k, v in settings.items()]
    ini.write_text("\n".join(lines) + "\n")
    return ini


def run_cgi(ini: Path, script: Path = SCRIPT, pythonpath: str | None = str(CHATMAILD_DIR.parent)):
    env = {"PATH": os.environ["PATH"], "REQUEST_METHOD": "POST", "CHATMAIL_INI": str(ini)}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    # bytes: text mode would turn the CGI's CRLF into LF
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, env=env, timeout=60)
    head, sep, body = proc.stdout.decode().partition("\r\n\r\n")
    assert sep, f"no header/body separator in {proc.stdout!r}"
    headers = dict(line.split(": ", 1) for line in head.split("\r\n"))
    return proc.returncode, headers, body


def test_cgi_output_is_json_with_headers(tmp_path):
    code, headers, body = run_cgi(write_ini(tmp_path))
    assert code == 0
    assert headers["Content-Type"] == "application/json"
    assert headers["Status"].startswith("200")
    assert headers["Cache-Control"] == "no-store"
    creds = json.loads(body)
    user, _, domain = creds["email"].partition("@")
    assert domain == "chat.example.org"
    assert len(user) == 9 and set(user) <= set(USERNAME_CHARS)
    assert len(creds["password"]) == 12 and set(creds["password"]) <= set(PASSWORD_CHARS)


@pytest.mark.parametrize("umax,pmin", [(12, 9), (20, 30), (1, 1)])
def test_lengths_follow_the_config(tmp_path, umax, pmin):
    config = read_config(write_ini(tmp_path, username_min_length=1, username_max_length=umax, password_min_length=pmin))
    creds = new_credentials(config)
    assert len(creds["email"].split("@")[0]) == umax
    # AC-8: longer than password_min_length
    assert len(creds["password"]) == pmin + 3 > pmin


def test_suggestions_differ_and_use_the_whole_alphabet(tmp_path):
    config = read_config(write_ini(tmp_path))
    many = [new_credentials(config) for _ in range(400)]
    assert len({c["email"] for c in many}) == 400
    chars = set("".join(c["password"] for c in many))
    # 400 * 12 draws from 94 symbols: each class shows up
    for cls in (string.ascii_lowercase, string.ascii_uppercase, string.digits, string.punctuation):
        assert chars & set(cls)


def test_copied_script_finds_chatmaild_by_itself(tmp_path):
    """As /usr/lib/cgi-bin/newemail.py it has no PYTHONPATH; it adds the install dir.

    Here the install dir does not exist, so the import must fail loudly rather
    than pick up something else.
    """
    copy = tmp_path / "cgi-bin" / "newemail.py"
    copy.parent.mkdir()
    shutil.copy(SCRIPT, copy)
    proc = subprocess.run(
        [sys.executable, "-I", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "CHATMAIL_INI": str(write_ini(tmp_path))},
    )
    if Path("/usr/local/lib/chatmaild/chatmaild").is_dir():
        pytest.skip("chatmaild is installed on this host")
    assert proc.returncode != 0 and "No module named 'chatmaild'" in proc.stderr


def test_copied_script_imports_chatmaild_from_beside_the_ini(tmp_path):
    """On a relay chatmail.ini and the chatmaild package share one folder (chatmaild.lib):
    the copied script, run without PYTHONPATH, imports chatmaild from the folder of CHATMAIL_INI."""
    lib = tmp_path / "lib"
    shutil.copytree(CHATMAILD_DIR, lib / "chatmaild", ignore=shutil.ignore_patterns("__pycache__"))
    copy = tmp_path / "cgi-bin" / "newemail.py"
    copy.parent.mkdir()
    shutil.copy(SCRIPT, copy)
    code, headers, body = run_cgi(write_ini(lib), script=copy, pythonpath=None)
    assert code == 0 and headers["Status"].startswith("200")
    assert json.loads(body)["email"].endswith("@chat.example.org")


def test_without_chatmail_ini_answers_500(tmp_path):
    """nginx passes CHATMAIL_INI; without it the script has no relay to describe."""
    env = {"PATH": os.environ["PATH"], "REQUEST_METHOD": "POST", "PYTHONPATH": str(CHATMAILD_DIR.parent)}
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, env=env, timeout=60)
    assert proc.returncode == 1 and b"500" in proc.stdout.split(b"\r\n", 1)[0]
    assert b"CHATMAIL_INI is not set" in proc.stderr


def test_unreadable_config_answers_500(tmp_path):
    code, headers, body = run_cgi(tmp_path / "missing.ini")
    assert code == 1 and headers["Status"].startswith("500")
    assert json.loads(body) == {"error": "server misconfigured"}
