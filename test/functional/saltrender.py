"""Render SLS files of this formula through a real masterless Salt, without applying them.

Render tests need two things: the state data Salt compiles from an SLS
(`state.show_sls`) and the text every `file.managed` would write.  Both come
from one `salt-call --local` run against a throw-away minion config whose
file_roots is this repository and whose pillar is the test's ``chatmail``
dict.  A tiny execution module (written into the tmp config, see
``_RENDER_MODULE``) walks the compiled states and renders each managed
file's template with `cp.get_template`, the same templating path
`file.managed` uses.

A subprocess is used on purpose: it starts in ~2 s, while building
saltfactories' in-process Loaders took minutes on a loaded host.

Usage::

    r = render("chatmail.nginx", {"mail_domain": "chat.example.org"}, tmp_path)
    r.states["chatmail-nginx-conf-file-managed"]   # {"file.managed": {...args}}
    r.files["/etc/nginx/nginx.conf"]               # rendered text
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SALT_CALL = REPO / ".venv" / "bin" / "salt-call"

_RENDER_MODULE = textwrap.dedent(
    '''
    """Test-only: compiled states of an SLS plus the text of each managed file."""
    import os
    import tempfile

    __virtualname__ = "rendertest"


    def __virtual__():
        return __virtualname__


    def _args(body):
        """{"file.managed": {arg: value}} from show_sls' [fun, {k: v}, ...] form."""
        out = {}
        for module, chunk in body.items():
            if module.startswith("__"):
                continue
            fun = [c for c in chunk if isinstance(c, str)][0]
            args = {}
            for item in chunk:
                if isinstance(item, dict):
                    args.update(item)
            out[module + "." + fun] = args
        return out


    def _text(args):
        if "contents" in args:
            contents = args["contents"]
            if isinstance(contents, list):
                contents = "\\n".join(contents)
            return str(contents)
        source = args.get("source")
        if isinstance(source, list):
            # file.managed would list the whole fileserver to choose (docs/tofs.md, Cost)
            raise RuntimeError("a list of sources: the formula gives file.managed one: " + str(source))
        if not source:
            return None
        if not str(source).startswith("salt://"):
            # never fetch http(s)/ftp sources: tests send no traffic off-host
            return None
        if not args.get("template"):
            return __salt__["cp.get_file_str"](source)
        fd, dest = tempfile.mkstemp()
        os.close(fd)
        try:
            kwargs = {"context": args.get("context") or {}, "defaults": args.get("defaults") or {}}
            if not __salt__["cp.get_template"](source, dest, template=args["template"], **kwargs):
                raise RuntimeError("template did not render: " + str(source))
            with open(dest, encoding="utf-8") as fh:
                return fh.read()
        finally:
            os.unlink(dest)


    def render(mods):
        high = __salt__["state.show_sls"](mods)
        if isinstance(high, list):
            raise RuntimeError("\\n".join(map(str, high)))
        states, files = {}, {}
        for sid, body in high.items():
            if sid.startswith("__"):
                continue
            states[sid] = _args(body)
            managed = states[sid].get("file.managed")
            if managed is not None:
                files[managed.get("name", sid)] = _text(managed)
        return {"states": states, "files": files}
    '''
)


@dataclass
class Rendered:
    states: dict[str, dict[str, dict[str, Any]]]
    files: dict[str, str | None]
    root: Path = field(default=Path("."))

    def state(self, sid: str) -> dict[str, Any]:
        """The one function's args of state ``sid`` (e.g. file.managed args)."""
        (args,) = self.states[sid].values()
        return args

    def write(self, path: str, dest: Path) -> Path:
        """Write the rendered text of managed file ``path`` to ``dest``."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(self.files[path])
        return dest


def minion_dir(
    tmp: Path,
    pillar: dict[str, Any],
    file_roots: list[Path] = (),
    minion_id: str = "render-test",
    grains: dict[str, Any] | None = None,
) -> Path:
    """A relocatable minion config in ``tmp`` serving this repo with ``pillar``.

    ``file_roots`` are served before this repo (an operator's overrides);
    ``minion_id`` is the minion's id (and its grain ``id``); ``grains`` are
    static grains of the minion config (e.g. roles an operator sets).
    """
    conf = tmp / "salt"
    (conf / "pillar").mkdir(parents=True, exist_ok=True)
    (conf / "modules").mkdir(exist_ok=True)
    (conf / "modules" / "rendertest.py").write_text(_RENDER_MODULE)
    (conf / "pillar" / "top.sls").write_text("base:\n  '*':\n    - chatmail\n")
    (conf / "pillar" / "chatmail.sls").write_text(yaml.safe_dump({"chatmail": pillar}))
    minion = {
        "id": minion_id,
        "root_dir": str(conf / "root"),
        "file_client": "local",
        "file_roots": {"base": [*map(str, file_roots), str(REPO)]},
        "pillar_roots": {"base": [str(conf / "pillar")]},
        "module_dirs": [str(REPO / "_modules"), str(conf / "modules")],
        "states_dirs": [str(REPO / "_states")],
        "utils_dirs": [str(REPO / "_utils")],
        "fileserver_list_cache_time": 0,
        "log_level_logfile": "quiet",
        **({"grains": grains} if grains else {}),
    }
    (conf / "minion").write_text(yaml.safe_dump(minion))
    return conf


def render(
    sls: str,
    pillar: dict[str, Any],
    tmp: Path,
    file_roots: list[Path] = (),
    minion_id: str = "render-test",
    grains: dict[str, Any] | None = None,
    timeout: int = 120,
) -> Rendered:
    """Compile ``sls`` with ``pillar`` and render its managed files (nothing is applied)."""
    conf = minion_dir(tmp, pillar, file_roots, minion_id, grains)
    proc = subprocess.run(
        [str(SALT_CALL), "--local", "-c", str(conf), "--out=json", "--retcode-passthrough", "rendertest.render", sls],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"salt-call failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(proc.stdout)["local"]
    return Rendered(states=data["states"], files=data["files"], root=tmp)


def self_signed_cert(dirpath: Path, domain: str, days: int, alt_names: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """(cert.pem, key.pem) in ``dirpath``: a P-256 self-signed certificate for ``domain``, as the relay's TLS
    tests need it (openssl req, the same call the relay's self_signed mode makes)."""
    cert, key = dirpath / "cert.pem", dirpath / "key.pem"
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    cmd += ["-days", str(days), "-subj", f"/CN={domain}", "-keyout", str(key), "-out", str(cert)]
    if alt_names:
        cmd += ["-addext", "subjectAltName=" + ",".join(f"DNS:{name}" for name in alt_names)]
    subprocess.run(cmd, check=True, capture_output=True)
    return cert, key
