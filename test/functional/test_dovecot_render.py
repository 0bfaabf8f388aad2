"""chatmail.dovecot rendered through Salt, then read back with doveconf.

Nothing is applied.  The patched chatmail Dovecot build (dovecot_source:
chatmail) cannot be downloaded in this sandbox, so for it only the rendered
states are checked (hash-pinned URLs, install from the verified files, apt
pin); the container harness covers installation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from support.salt import REPO, Rendered, render

pytestmark = pytest.mark.skipif(shutil.which("doveconf") is None, reason="needs Debian's dovecot-core")

DOMAIN = "chat.example.org"
VARIANTS = {
    "default": {"mail_domain": DOMAIN},
    "compress_ipv4_nomail": {"mail_domain": DOMAIN, "imap_compress": True, "disable_ipv6": True, "disable_mail": True},
    "rawlog_chatmail": {
        "mail_domain": DOMAIN,
        "imap_rawlog": True,
        "dovecot_source": "chatmail",
        "max_mailbox_size": "1G",
    },
    "ip_relay": {"mail_domain": "192.0.2.7"},
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    cache: dict[str, Rendered] = {}

    def get(variant: str) -> Rendered:
        if variant not in cache:
            cache[variant] = render("chatmail.dovecot", VARIANTS[variant], tmp_path_factory.mktemp(variant))
        return cache[variant]

    return get


def doveconf(r: Rendered, tmp_path: Path, *args: str) -> str:
    conf = r.write("/etc/dovecot/dovecot.conf", tmp_path / "dovecot.conf")
    proc = subprocess.run(["doveconf", "-c", str(conf), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def setting(r: Rendered, tmp_path: Path, name: str) -> str:
    return doveconf(r, tmp_path, "-h", name).strip()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_doveconf_accepts(rendered, variant, tmp_path):
    assert "protocols = imap lmtp" in doveconf(rendered(variant), tmp_path, "-n")


def test_core_settings(rendered, tmp_path):
    r = rendered("default")
    text = r.files["/etc/dovecot/dovecot.conf"]
    assert "!include" not in text  # Debian's conf.d is not part of the configuration
    assert setting(r, tmp_path, "mail_location") == f"maildir:/home/vmail/mail/{DOMAIN}/%u"
    assert setting(r, tmp_path, "listen") == "*, ::"
    assert setting(r, tmp_path, "auth_mechanisms") == "plain"
    assert setting(r, tmp_path, "ssl") == "required"
    assert setting(r, tmp_path, "ssl_min_protocol") == "TLSv1.3"
    assert setting(r, tmp_path, "ssl_cert") == f"</var/lib/acme/live/{DOMAIN}/fullchain"
    assert setting(r, tmp_path, "mail_attribute_dict") == "proxy:/run/chatmail-metadata/metadata.socket:metadata"
    assert setting(r, tmp_path, "imap_capability") == "+XDELTAPUSH XCHATMAIL"
    assert setting(r, tmp_path, "mail_uid") == "vmail"
    # no privacy_mail: the admin contact is root@D; no server comment (as upstream 1.12)
    assert setting(r, tmp_path, "mail_server_admin") == f"mailto:root@{DOMAIN}"
    assert setting(r, tmp_path, "mail_server_comment") == ""
    plugin = doveconf(r, tmp_path, "plugin")
    assert "quota_rule = *:storage=500M" in plugin
    assert "quota_max_mail_size = 31457280" in plugin
    assert "quota_grace = 0" in plugin
    assert "zlib_save = gz" in plugin
    assert "last_login_dict = proxy:/run/chatmail-lastlogin/lastlogin.socket:lastlogin" in plugin
    assert "push_notification_driver = lua:file=/etc/dovecot/push_notification.lua" in plugin


@pytest.mark.parametrize("cpus", [1, 8])
def test_one_login_process_per_cpu(tmp_path, cpus):
    """Login processes serve many connections each: as many as CPUs, none idle beyond them."""
    r = render("chatmail.dovecot", VARIANTS["default"], tmp_path / "r", grains={"num_cpus": cpus})
    assert f"process_min_avail = {cpus}" in doveconf(r, tmp_path, "service/imap-login")


def test_services_and_sockets(rendered, tmp_path):
    r = rendered("default")
    lmtp = doveconf(r, tmp_path, "service/lmtp")
    assert "user = vmail" in lmtp and "/var/spool/postfix/private/dovecot-lmtp" in lmtp
    # filtermail's own LMTP socket: vmail's only (filtermail runs as vmail)
    assert "unix_listener /run/dovecot/chatmail-lmtp {\n    group = vmail\n    mode = 0600\n    user = vmail" in lmtp
    auth = doveconf(r, tmp_path, "service/auth")
    assert "/var/spool/postfix/private/auth" in auth and "mode = 0660" in auth
    assert "user = vmail" in doveconf(r, tmp_path, "service/auth-worker")
    assert "process_limit = 10000" in doveconf(r, tmp_path, "service/imap")  # max_imap_connections
    assert "service_count = 0" in doveconf(r, tmp_path, "service/imap-login")
    lmtp_plugins = doveconf(r, tmp_path, "-f", "protocol=lmtp", "-h", "mail_plugins").split()
    assert lmtp_plugins == ["zlib", "quota", "mail_lua", "notify", "push_notification", "push_notification_lua"]
    assert doveconf(r, tmp_path, "-f", "protocol=lmtp", "-h", "lmtp_add_received_header").strip() == "no"


@pytest.mark.parametrize("variant, compress", [("default", False), ("compress_ipv4_nomail", True)])
def test_hibernation_iff_not_compress(rendered, tmp_path, variant, compress):
    r = rendered(variant)
    imap_plugins = doveconf(r, tmp_path, "-f", "protocol=imap", "-h", "mail_plugins").split()
    assert imap_plugins[:4] == ["zlib", "quota", "imap_quota", "last_login"]
    assert ("imap_zlib" in imap_plugins) is compress
    assert setting(r, tmp_path, "imap_hibernate_timeout") == ("0" if compress else "30 secs")
    services = doveconf(r, tmp_path, "-n")
    assert ("service imap-hibernate" in services) is not compress


def test_ipv4_only_listen(rendered, tmp_path):
    assert setting(rendered("compress_ipv4_nomail"), tmp_path, "listen") == "*"


@pytest.mark.parametrize("variant, rawlog", [("default", False), ("rawlog_chatmail", True)])
def test_rawlog(rendered, tmp_path, variant, rawlog):
    r = rendered(variant)
    conf = doveconf(r, tmp_path, "-n")
    assert ("rawlog_dir = %h" in conf) is rawlog
    assert ("executable = script-login -d rawlog" in conf) is rawlog


def test_quota_follows_max_mailbox_size(rendered, tmp_path):
    assert "quota_rule = *:storage=1G" in doveconf(rendered("rawlog_chatmail"), tmp_path, "plugin")


def test_quota_warning_runs_quota_expiry(rendered, tmp_path):
    """Past 75 % Dovecot runs the service's command with the address appended;
    that command, pointed at a seeded store, shrinks the mailbox to 70 %."""
    r = rendered("rawlog_chatmail")  # max_mailbox_size 1G
    assert "quota_warning = storage=75%% quota-warning %u" in doveconf(r, tmp_path, "plugin")
    service = doveconf(r, tmp_path, "service/quota-warning")
    assert "user = vmail" in service and "unix_listener quota-warning" in service and "mode = 0600" in service
    program, *command = setting(r, tmp_path, "service/quota-warning/executable").split()
    assert program == "script"  # Dovecot's helper: runs the command, the client's arguments appended
    lib, ini = "/usr/local/lib/chatmaild", "/usr/local/lib/chatmaild/chatmail.ini"
    assert f"PYTHONPATH={lib}" in command and ini in command
    box = tmp_path / "mail" / f"full@{DOMAIN}"
    old = time.time() - 10 * 86400
    sizes = [100 * 1024**2] * 9  # 900M of 1G; 70 % is 716.8M: the two oldest go
    for seq, size in enumerate(sizes):
        path = box / "cur" / f"{int(old) + seq}.M{seq}P1.relay,S={size},W={size}:2,S"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(1)  # the ,S= size is what counts, as for Dovecot's maildir quota
        os.utime(path, (old + seq, old + seq))
    (tmp_path / "chatmail.ini").write_text(
        f"[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {tmp_path / 'mail'}\nmax_mailbox_size = 1G\n"
    )
    here = {f"PYTHONPATH={lib}": f"PYTHONPATH={REPO / 'chatmail/chatmaild/files'}", ini: str(tmp_path / "chatmail.ini")}
    local = [here.get(a, a) for a in command]
    proc = subprocess.run([*local, f"full@{DOMAIN}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name.split(".")[0] for p in (box / "cur").iterdir()) == [str(int(old) + seq) for seq in range(2, 9)]


def test_auth_conf_and_push_hook():
    auth = (REPO / "chatmail/dovecot/files/auth.conf").read_text()
    assert "uri = proxy:/run/doveauth/doveauth.socket:auth" in auth
    assert 'password_key = passdb/%Ew"%Eu' in auth and "user_key = userdb/%Eu" in auth
    luac = shutil.which("luac5.4") or pytest.skip("needs luac5.4 (Debian lua5.4; Dovecot links liblua5.4)")
    subprocess.run([luac, "-p", str(REPO / "chatmail/dovecot/files/push_notification.lua")], check=True)


def test_host_settings(rendered):
    r = rendered("default")
    tz = r.state("chatmail-dovecot-tz-file-replace")
    assert tz["name"] == "/etc/environment" and tz["repl"] == "TZ=:/etc/localtime" and tz["append_if_not_found"]
    for key in ("max-user-instances", "max-user-watches"):
        sysctl = r.state(f"chatmail-dovecot-inotify-{key}-sysctl-present")
        assert sysctl["value"] == 65535
        assert any(c.startswith("test -w /proc/sys/fs/inotify/") for c in sysctl["onlyif"])
        assert any("-lt 65535" in c for c in sysctl["onlyif"])
    assert "Restart=always" in r.files["/etc/systemd/system/dovecot.service.d/10_restart.conf"]
    assert r.state("chatmail-dovecot-conf-file-managed")["check_cmd"] == "doveconf -n -c"


def test_debian_packages_by_default(rendered):
    r = rendered("default")
    assert r.state("chatmail-dovecot-packages-pkg-installed")["pkgs"] == [
        "dovecot-core",
        "dovecot-imapd",
        "dovecot-lmtpd",
    ]
    assert "chatmail-dovecot-apt-pin-file-absent" in r.states
    service = r.state("chatmail-dovecot-service-running")
    assert service["watch"] == [{"sls": "chatmail.dovecot.config"}]
    assert service["require"] == [{"sls": "chatmail.chatmaild.service"}]


def test_chatmail_build_is_hash_pinned_and_apt_pinned(rendered):
    r = rendered("rawlog_chatmail")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(
        subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    )
    if arch is None:
        pytest.skip("no chatmail build for this architecture")
    sources = r.state("chatmail-dovecot-packages-pkg-installed")["sources"]
    assert [list(s) for s in sources] == [["dovecot-core"], ["dovecot-imapd"], ["dovecot-lmtpd"]]
    for pkg in ("core", "imapd", "lmtpd"):
        deb = r.state(f"chatmail-dovecot-{pkg}-deb-file-managed")
        assert deb["source"] == f"https://download.delta.chat/dovecot/dovecot-{pkg}_2.3.21%2Bdfsg1-3_{arch}.deb"
        assert deb["source_hash"].startswith("sha256=") and len(deb["source_hash"]) == len("sha256=") + 64
        assert {f"dovecot-{pkg}": deb["name"]} in sources
    pin = r.files["/etc/apt/preferences.d/chatmail-dovecot"]
    assert "Pin-Priority: -1" in pin and "Pin: release o=Debian" in pin


def test_disable_mail_stops_dovecot(rendered):
    r = rendered("compress_ipv4_nomail")
    assert "chatmail-dovecot-service-running" not in r.states
    assert r.state("chatmail-dovecot-service-dead")["enable"] is False


# -- Debian 13: Dovecot 2.4's dialect (this host's doveconf is 2.3, so only the
#    text is checked here; test/system/test_debian13.py runs it on Debian 13) --

DEBIAN_13 = {
    "os": "Debian",
    "os_family": "Debian",
    "osfinger": "Debian-13",
    "oscodename": "trixie",
    "osmajorrelease": 13,
}


@pytest.fixture(scope="module")
def rendered13(tmp_path_factory):
    return {
        compress: render(
            "chatmail.dovecot",
            {"mail_domain": DOMAIN, "imap_compress": compress},
            tmp_path_factory.mktemp(f"debian13-{compress}"),
            grains=DEBIAN_13,
        )
        for compress in (False, True)
    }


def test_debian13_gets_the_24_dialect_and_lua_accounts(rendered13):
    r = rendered13[False]
    text = r.files["/etc/dovecot/dovecot.conf"]
    assert text.splitlines()[5:7] == ["dovecot_config_version = 2.4.0", "dovecot_storage_version = 2.4.0"]
    assert "driver = lua" in text and "driver = dict" not in text
    assert "/etc/dovecot/auth.lua" in r.files and "/etc/dovecot/auth.conf" not in r.files
    assert "/run/doveauth/doveauth.socket" in r.files["/etc/dovecot/auth.lua"]
    assert r.state("chatmail-dovecot-packages-pkg-installed")["pkgs"][-2:] == ["dovecot-auth-lua", "lua-socket"]


@pytest.mark.parametrize("compress", [False, True])
def test_debian13_hibernation_iff_not_compress(rendered13, compress):
    text = rendered13[compress].files["/etc/dovecot/dovecot.conf"]
    assert ('"COMPRESS=DEFLATE" = no' in text) is not compress
    assert ("imap_hibernate_timeout = 30s" in text) is not compress


def test_an_ip_only_relay_accepts_logins_with_an_address_literal(rendered, tmp_path):
    """user@[192.0.2.7]: Dovecot's default username characters lack the brackets."""
    r = rendered("ip_relay")
    assert set("[]@") <= set(setting(r, tmp_path, "auth_username_chars"))
    assert setting(r, tmp_path, "mail_server_admin") == "mailto:root@[192.0.2.7]"
    assert "[" not in setting(rendered("default"), tmp_path / "d", "auth_username_chars")


# -- dovecot_source: rebuilt (Debian's source, IDLE notify delay 0) --

REBUILT = {"mail_domain": DOMAIN, "dovecot_source": "rebuilt"}
DOVECOT_PACKAGES = ["dovecot-core", "dovecot-imapd", "dovecot-lmtpd"]


def test_rebuilt_without_a_served_build_builds_on_the_relay(tmp_path):
    """No build on the file server: the relay fetches Debian's source and builds it, once per source version."""
    r = render("chatmail.dovecot", REBUILT, tmp_path)
    script = r.state("chatmail-dovecot-rebuild-script-file-managed")
    assert script["source"] == "salt://chatmail/dovecot/files/chatmail-dovecot-rebuild" and script["mode"] == "0755"
    sources = r.files["/etc/apt/sources.list.d/chatmail-dovecot-src.list"]
    assert "deb-src http://deb.debian.org/debian-security bookworm-security main" in sources
    build = r.state("chatmail-dovecot-rebuilt-cmd-run")
    out = "/var/cache/chatmail/dovecot/rebuilt"
    assert build["name"] == f"/usr/local/sbin/chatmail-dovecot-rebuild install {out} " + " ".join(DOVECOT_PACKAGES)
    # the cache key: nothing runs while the newest source version is built and installed
    assert build["unless"] == f"/usr/local/sbin/chatmail-dovecot-rebuild current {out}"
    assert {"DELAY": "0"} in build["env"]
    pin = r.files["/etc/apt/preferences.d/chatmail-dovecot"]
    assert "Package: dovecot-core dovecot-imapd dovecot-lmtpd\nPin: release o=Debian\nPin-Priority: -1" in pin
    assert r.state("chatmail-dovecot-packages-pkg-installed")["pkgs"] == DOVECOT_PACKAGES


def served_build(root: Path, version: str, packages=DOVECOT_PACKAGES, arch: str = "amd64") -> Path:
    """A file root laid out as chatmail-dovecot-rebuild build leaves it (placeholder .debs: only rendered)."""
    folder = root / "chatmail-dovecot" / "bookworm" / arch / version
    folder.mkdir(parents=True)
    for pkg in packages:
        (folder / f"{pkg}_{version}+chatmail1_{arch}.deb").write_bytes(pkg.encode())
    (folder / "SHA256SUMS").write_text("")
    return root


def dpkg_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip() or "amd64"


def test_rebuilt_from_the_file_server_takes_the_newest_version_verified_by_hash(tmp_path):
    """A fleet master's build: the newest version on salt://, each .deb checked against its SHA256SUMS."""
    arch = dpkg_arch()
    files = tmp_path / "files"
    for version in ("2.3.19.1+dfsg1-2.1+deb12u6", "2.3.19.1+dfsg1-2.1+deb12u10", "2.3.19.1+dfsg1-2.1+deb12u9"):
        served_build(files, version, arch=arch)
    r = render("chatmail.dovecot", REBUILT, tmp_path / "render", file_roots=[files])
    folder = f"chatmail-dovecot/bookworm/{arch}/2.3.19.1+dfsg1-2.1+deb12u10"
    assert "chatmail-dovecot-rebuilt-cmd-run" not in r.states
    sources = r.state("chatmail-dovecot-rebuilt-pkg-installed")["sources"]
    for pkg in DOVECOT_PACKAGES:
        deb = r.state(f"chatmail-dovecot-rebuilt-{pkg}-file-managed")
        assert deb["source"] == f"salt://{folder}/{pkg}_2.3.19.1+dfsg1-2.1+deb12u10+chatmail1_{arch}.deb"
        assert deb["source_hash"] == f"salt://{folder}/SHA256SUMS"
        assert {pkg: deb["name"]} in sources
    assert r.state("chatmail-dovecot-packages-pkg-installed")["pkgs"] == DOVECOT_PACKAGES


def test_rebuilt_with_a_package_missing_on_the_file_server_fails_naming_it(tmp_path):
    files = served_build(tmp_path / "files", "2.3.19.1+dfsg1-2.1+deb12u6", DOVECOT_PACKAGES[:2], arch=dpkg_arch())
    r = render("chatmail.dovecot", REBUILT, tmp_path / "render", file_roots=[files])
    failure = r.state("chatmail-dovecot-rebuilt-debs-test-fail_without_changes")["name"]
    assert "no .deb for dovecot-lmtpd" in failure
    assert "chatmail-dovecot-rebuilt-pkg-installed" not in r.states


def test_rebuilt_on_debian13_pins_and_builds_the_lua_package_too(tmp_path):
    r = render("chatmail.dovecot", REBUILT, tmp_path, grains=DEBIAN_13)
    packages = [*DOVECOT_PACKAGES, "dovecot-auth-lua"]
    assert r.state("chatmail-dovecot-rebuilt-cmd-run")["name"].endswith(" ".join(packages))
    assert f"Package: {' '.join(packages)}\n" in r.files["/etc/apt/preferences.d/chatmail-dovecot"]
    assert "trixie-security" in r.files["/etc/apt/sources.list.d/chatmail-dovecot-src.list"]
    # lua-socket is not Dovecot's: it comes from Debian as before
    assert r.state("chatmail-dovecot-packages-pkg-installed")["pkgs"][-1] == "lua-socket"
