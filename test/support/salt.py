"""The one Salt driver of the tests: a throw-away masterless minion of this repository.

Every test that runs the formula's Salt code on the host goes through the
options :func:`minion_options` builds (file roots, extension modules, pillar),
in one of two ways:

* in a ``salt-call --local`` subprocess (:func:`minion_dir` writes the config,
  :func:`call` runs it): what an operator's relay runs, and what compiles an
  SLS (:func:`render`, :func:`low_chunks`) or applies one.  A subprocess
  starts in ~2 s;
* in-process, through saltfactories' Loaders (:func:`loaders`, the session
  fixture ``salt_loaders`` of test/conftest.py): the formula's execution and
  state modules called as Python functions, with options a test can change.

The file roots serve what scripts/install-relay copies onto a relay
(:data:`SERVED`), not the checkout: walking .git and .venv on every file
list costs seconds and, under pytest's log capture, gigabytes.

:func:`render` gives the state data Salt compiles from an SLS
(``state.show_sls``) and the text every ``file.managed`` would write: a tiny
execution module (``_RENDER_MODULE``, written into the config) walks the
compiled states and renders each managed file's template with
``cp.get_template``, the templating path ``file.managed`` uses::

    r = render("chatmail.nginx", {"mail_domain": "chat.example.org"}, tmp_path)
    r.states["chatmail-nginx-conf-file-managed"]   # {"file.managed": {...args}}
    r.files["/etc/nginx/nginx.conf"]               # rendered text
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import REPO

SALT_CALL = REPO / ".venv" / "bin" / "salt-call"
# the parts of the repo salt:// reaches on a relay (scripts/install-relay copies these and
# the extension module folders, which the minion gets through module_dirs & co. here)
SERVED = ("FORMULA", "chatmail", "reactor")

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


def served_tree(tmp: Path) -> Path:
    """A file root in ``tmp`` holding :data:`SERVED` as links into this repo."""
    served = tmp / "file_root"
    served.mkdir(parents=True, exist_ok=True)
    for part in SERVED:
        if not (served / part).is_symlink():
            (served / part).symlink_to(REPO / part)
    return served


def minion_options(
    tmp: Path,
    file_roots: Sequence[Path] = (),
    minion_id: str = "render-test",
    grains: dict[str, Any] | None = None,
    serve_repo: bool = True,
) -> dict[str, Any]:
    """The options of a masterless minion of this repo, its state in ``tmp``.

    ``file_roots`` are served before this repo (an operator's overrides), or
    instead of it with ``serve_repo=False``; ``minion_id`` is the minion's id
    (and its grain ``id``); ``grains`` are static grains of the minion config
    (e.g. roles an operator sets).  The pillar comes from ``tmp/pillar``.
    """
    roots = [*map(str, file_roots), *([str(served_tree(tmp))] if serve_repo else [])]
    return {
        "id": minion_id,
        "root_dir": str(tmp / "root"),
        "file_client": "local",
        "file_roots": {"base": roots},
        "pillar_roots": {"base": [str(tmp / "pillar")]},
        "module_dirs": [str(REPO / "_modules"), str(tmp / "modules")],
        "states_dirs": [str(REPO / "_states")],
        "utils_dirs": [str(REPO / "_utils")],
        "pillar_dirs": [str(REPO / "_pillar")],
        "fileserver_list_cache_time": 0,
        "log_level_logfile": "quiet",
        **({"grains": grains} if grains else {}),
    }


def minion_dir(
    tmp: Path,
    pillar: dict[str, Any],
    file_roots: Sequence[Path] = (),
    minion_id: str = "render-test",
    grains: dict[str, Any] | None = None,
    serve_repo: bool = True,
) -> Path:
    """A minion config in ``tmp/salt`` (for ``salt-call -c``) with pillar ``chatmail: pillar``.

    The other arguments: :func:`minion_options`.
    """
    conf = tmp / "salt"
    (conf / "pillar").mkdir(parents=True, exist_ok=True)
    (conf / "modules").mkdir(exist_ok=True)
    (conf / "modules" / "rendertest.py").write_text(_RENDER_MODULE)
    (conf / "pillar" / "top.sls").write_text("base:\n  '*':\n    - chatmail\n")
    (conf / "pillar" / "chatmail.sls").write_text(yaml.safe_dump({"chatmail": pillar}))
    minion = minion_options(conf, file_roots, minion_id, grains, serve_repo)
    (conf / "minion").write_text(yaml.safe_dump(minion))
    return conf


@dataclass
class CallResult:
    """A ``salt-call --out=json`` run: the parsed ``local`` return, the exit code, what it printed."""

    data: Any
    returncode: int
    stdout: str
    stderr: str


def call(
    conf: Path,
    *args: str,
    timeout: float = 120,
    wrap: Callable[[list[str]], list[str]] | None = None,
    check: bool = False,
) -> CallResult:
    """``salt-call --local -c conf --out=json --retcode-passthrough ARGS``.

    ``wrap`` turns the command into another one (harness.imagetools.wrap: run
    it with the relay's programs); ``check`` raises with salt-call's output
    when it exits non-zero.  ``data`` is None when salt-call printed no JSON.
    """
    command = [str(SALT_CALL), "--local", "-c", str(conf), "--out=json", "--retcode-passthrough", *args]
    proc = subprocess.run(wrap(command) if wrap else command, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"salt-call {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    try:
        data = json.loads(proc.stdout)["local"]
    except (ValueError, KeyError, TypeError):
        data = None
    return CallResult(data, proc.returncode, proc.stdout, proc.stderr)


def render(
    sls: str,
    pillar: dict[str, Any],
    tmp: Path,
    file_roots: Sequence[Path] = (),
    minion_id: str = "render-test",
    grains: dict[str, Any] | None = None,
    timeout: int = 120,
    serve_repo: bool = True,
) -> Rendered:
    """Compile ``sls`` with ``pillar`` and render its managed files (nothing is applied)."""
    conf = minion_dir(tmp, pillar, file_roots, minion_id, grains, serve_repo)
    data = call(conf, "rendertest.render", sls, timeout=timeout, check=True).data
    return Rendered(states=data["states"], files=data["files"], root=tmp)


def low_chunks(sls: str, pillar: dict[str, Any], tmp: Path, timeout: int = 120) -> list[dict[str, Any]]:
    """The low chunks of ``sls`` (``state.show_low_sls``) in the order a run takes them."""
    chunks = call(minion_dir(tmp, pillar), "state.show_low_sls", sls, timeout=timeout, check=True).data
    if not all(isinstance(chunk, dict) for chunk in chunks):
        raise RuntimeError("\n".join(map(str, chunks)))
    return sorted(chunks, key=lambda chunk: chunk["order"])


def loader_options(tmp: Path) -> dict[str, Any]:
    """Salt's minion defaults with :func:`minion_options` over them, for in-process Loaders."""
    import salt.config

    opts = salt.config.minion_config(None)
    opts.update(minion_options(tmp))
    root = Path(opts["root_dir"])
    # minion_config(None) derived these from the default root; point them into tmp
    opts.update(cachedir=str(root / "cache"), pki_dir=str(root / "pki"), sock_dir=str(root / "sock"), pillar={})
    (root / "cache").mkdir(parents=True, exist_ok=True)
    return opts


def loaders(opts: dict[str, Any]):
    """saltfactories' Loaders (``.modules``, ``.states``, ``.opts``) for ``opts`` of :func:`loader_options`."""
    from saltfactories.utils.functional import Loaders

    return Loaders(opts)


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
