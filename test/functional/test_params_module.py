"""The constants table as the Python modules read it is the one the states read.

``chatmail.params`` (``_utils/chatmail_params.py``) and map.jinja's
``params`` both merge chatmail/parameters/ for the minion's release; a
module that looked for the DKIM key or acmetool's state anywhere else than
where the states put them would fail only on a relay.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from saltrender import SALT_CALL, minion_dir

GRAINS = {
    "debian12": {"os": "Debian", "os_family": "Debian", "osfinger": "Debian-12", "osarch": "amd64"},
    "debian13": {"os": "Debian", "os_family": "Debian", "osfinger": "Debian-13", "osarch": "amd64"},
}
JINJA = '{%- from "chatmail/map.jinja" import params with context %}{{ params | json }}'


def salt_call(conf, *args) -> object:
    proc = subprocess.run(
        [str(SALT_CALL), "--local", "-c", str(conf), "--out=json", "--retcode-passthrough", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)["local"]


@pytest.mark.parametrize("release", sorted(GRAINS))
def test_modules_read_the_table_the_states_read(release, tmp_path):
    conf = minion_dir(tmp_path, {"mail_domain": "chat.example.org"}, grains=GRAINS[release])
    from_python = salt_call(conf, "chatmail.params")
    from_jinja = json.loads(salt_call(conf, "slsutil.renderer", f"string={JINJA}", "default_renderer=jinja"))
    assert from_python == from_jinja
    assert from_python["opendkim"]["keydir"] == "/etc/dkimkeys"
    assert from_python["postfix"]["unit"] == {"debian12": "postfix@-", "debian13": "postfix"}[release]
