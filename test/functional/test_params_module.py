"""chatmail.params: the constants table every SLS (map.jinja) and every module reads.

It is chatmail/parameters/defaults.yaml with the release's
osfinger/<grains.osfinger>.yaml merged over it: a mapping merges key by
key, anything else (a list, a value) is replaced.  Compared here with that
rule applied to the files by hand, for each supported release and for one
the formula does not support (which gets the defaults; preflight stops it).
"""

from __future__ import annotations

import pytest
import yaml

from support.salt import REPO, call, minion_dir

PARAMETERS = REPO / "chatmail" / "parameters"


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def expected(osfinger: str) -> dict:
    defaults = yaml.safe_load((PARAMETERS / "defaults.yaml").read_text())
    if osfinger not in defaults["releases"]:
        return defaults
    return merged(defaults, yaml.safe_load((PARAMETERS / "osfinger" / f"{osfinger}.yaml").read_text()))


@pytest.mark.parametrize("osfinger", ["Debian-12", "Debian-13", "Debian-11"])
def test_params_is_the_release_file_over_the_defaults(osfinger, tmp_path):
    grains = {"os": "Debian", "os_family": "Debian", "osfinger": osfinger, "osarch": "amd64"}
    conf = minion_dir(tmp_path, {"mail_domain": "chat.example.org"}, grains=grains)
    got = call(conf, "chatmail.params", timeout=300, check=True).data
    assert got == expected(osfinger)
    assert got["postfix"]["unit"] == {"Debian-13": "postfix"}.get(osfinger, "postfix@-")
