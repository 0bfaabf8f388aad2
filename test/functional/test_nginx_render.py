"""nginx: rendered config passes `nginx -t`, and a real nginx with it routes by ALPN and serves /new."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.imagetools import system_path
from support.freeports import free_ports
from support.salt import REPO, render, self_signed_cert

D = "chat.example.org"
CONF = "/etc/nginx/nginx.conf"
pytestmark = pytest.mark.skipif(
    not (shutil.which("nginx") and system_path("/usr/share/nginx/modules/ngx_stream_module.so").exists()),
    reason="needs Debian's nginx and libnginx-mod-stream",
)


def self_signed(dirpath: Path) -> tuple[Path, Path]:
    return self_signed_cert(dirpath, D, days=2, alt_names=(D, f"www.{D}"))


def pillar(certdir: Path, **extra):
    cert, key = self_signed(certdir)
    return {"mail_domain": D, "tls_mode": "external", "tls_cert_file": str(cert), "tls_key_file": str(key), **extra}


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nginx")
    return render("chatmail.nginx", pillar(tmp), tmp)


def nginx_t(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["nginx", "-t", "-q", "-c", str(path)], capture_output=True, text=True)


def test_config_passes_nginx_t_and_is_checked_before_install(nginx, tmp_path):
    assert nginx.state("chatmail-nginx-conf-file-managed")["check_cmd"] == "nginx -t -q -c"
    proc = nginx_t(nginx.write(CONF, tmp_path / "nginx.conf"))
    assert proc.returncode == 0, proc.stderr


def test_alpn_map_listeners_and_servers(nginx):
    text = nginx.files[CONF]
    stream = text[text.index("stream {") : text.index("http {")]
    assert "default 127.0.0.1:8443;" in stream
    # the PROXY-protocol listeners of Postfix and Dovecot (master.cf, dovecot.conf)
    assert r"~\bsmtp\b 127.0.0.1:8465;" in stream and r"~\bimap\b 127.0.0.1:8993;" in stream
    assert "proxy_protocol on;" in stream
    assert text.count("listen 127.0.0.1:8443 ssl") == text.count("listen 127.0.0.1:8443 ssl") == 2
    assert text.count("proxy_protocol;") == 2  # both HTTPS servers expect the header
    assert "limit_req_zone $proxy_protocol_addr zone=newemail:10m rate=120r/m;" in text
    assert text.count("limit_req zone=newemail burst=5 nodelay;") == 2
    assert "listen 443;" in stream and "listen [::]:443;" in stream
    assert f"server_name {D} mta-sts.{D};" in text  # www.D only in the redirect server (defect #4)
    assert f"server_name www.{D};\n        return 301 https://{D}$request_uri;" in text
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    for path in ("/new", "/cgi-bin/newemail.py"):
        assert f"location = {path} {{" in text
    assert text.count(f"return 301 dcaccount:https://{D}/new;") == 2
    assert "location /relay {" in text  # iroh_relay absent: local relay proxied
    assert "location = /ping {" in text and "location = /generate_204 {" in text  # both iroh probe paths


def test_newemail_limit_settings(tmp_path):
    r = render("chatmail.nginx", pillar(tmp_path, newemail_per_minute=30, newemail_burst=2), tmp_path)
    text = r.files[CONF]
    assert "rate=30r/m;" in text and text.count("limit_req zone=newemail burst=2 nodelay;") == 2
    assert nginx_t(r.write(CONF, tmp_path / "nginx.conf")).returncode == 0


def test_ipv4_only_remote_iroh_no_new_limit(tmp_path):
    r = render(
        "chatmail.nginx",
        pillar(tmp_path, disable_ipv6=True, iroh_relay="https://iroh.example.org", newemail_per_minute=0),
        tmp_path,
    )
    text = r.files[CONF]
    assert "limit_req" not in text  # 0: no limit on /new
    assert "listen 443;" in text and "[::]" not in text
    assert "/relay" not in text and "3340" not in text
    assert nginx_t(r.write(CONF, tmp_path / "nginx.conf")).returncode == 0


def test_nginx_waits_for_certificates(nginx):
    assert {"sls": "chatmail.tls.service"} in nginx.state("chatmail-nginx-conf-file-managed")["require"]
    svc = nginx.state("chatmail-nginx-service-running")
    assert {"sls": "chatmail.tls.service"} in svc["require"] and {"sls": "chatmail.nginx.config"} in svc["watch"]
    assert "libnginx-mod-stream" in nginx.state("chatmail-nginx-packages-pkg-installed")["pkgs"]


def test_autoconfig_names_domain_and_ports(nginx):
    root = ET.fromstring(nginx.files["/var/www/html/.well-known/autoconfig/mail/config-v1.1.xml"].encode())
    provider = root.find("emailProvider")
    assert provider.get("id") == D and provider.findtext("domain") == D
    servers = {
        (s.tag, s.get("type"), int(s.findtext("port")), s.findtext("socketType"))
        for s in provider
        if s.tag.endswith("Server")
    }
    assert ("incomingServer", "imap", 993, "SSL") in servers and ("outgoingServer", "smtp", 465, "SSL") in servers
    assert len(servers) == 6
    assert {s.findtext("hostname") for s in provider if s.tag.endswith("Server")} == {D}


def test_mta_sts_policy(nginx):
    assert nginx.files["/var/www/html/.well-known/mta-sts.txt"].splitlines() == [
        "version: STSv1",
        "mode: enforce",
        f"mx: {D}",
        "max_age: 2419200",
    ]


class Recorder(threading.Thread):
    """Stands in for Dovecot's 993: records that nginx forwarded a TLS ClientHello."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.first_bytes = b""

    def run(self):
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(5)
            while b"\r\n" not in self.first_bytes or self.first_bytes.endswith(b"\r\n"):
                data = conn.recv(4096)
                if not data:
                    break
                self.first_bytes += data


@pytest.fixture
def running_nginx(tmp_path):
    """The rendered nginx.conf on free loopback ports, with a real fcgiwrap and newemail.py."""
    r = render("chatmail.nginx", pillar(tmp_path), tmp_path)
    front, https = free_ports(2)
    pub = Path(tempfile.mkdtemp(prefix="chatmail-nginx-"))  # reachable by nginx's www-data workers
    pub.chmod(0o755)
    www, cgi_sock = pub / "www", pub / "fcgiwrap.sock"
    imap = Recorder()
    imap.start()
    r.write("/var/www/html/.well-known/mta-sts.txt", www / ".well-known" / "mta-sts.txt")
    for path in [www, *www.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    ini = tmp_path / "chatmail.ini"
    ini.write_text(f"[params]\nmail_domain = {D}\n")
    text = r.files[CONF]
    for old, new in [
        ("listen 443;", f"listen 127.0.0.1:{front};"),
        ("listen [::]:443;", ""),
        ("127.0.0.1:8443", f"127.0.0.1:{https}"),
        ("127.0.0.1:8993", f"127.0.0.1:{imap.port}"),
        ("pid /run/nginx.pid;", f"pid {tmp_path}/nginx.pid;"),
        ("error_log syslog:server=unix:/dev/log,facility=local3;", f"error_log {tmp_path}/error.log;"),
        ("access_log syslog:server=unix:/dev/log,facility=local7;", "access_log off;"),
        # a CGI run takes long on a loaded machine: a rate the flood below outruns
        ("rate=120r/m;", "rate=6r/m;"),
        ("root /var/www/html;", f"root {www};"),
        ("unix:/run/fcgiwrap.socket", f"unix:{cgi_sock}"),
        (
            "fastcgi_param SCRIPT_FILENAME /usr/lib/cgi-bin/newemail.py;",
            f"fastcgi_param SCRIPT_FILENAME {REPO}/chatmail/chatmaild/files/chatmaild/newemail.py;"
            f" fastcgi_param PYTHONPATH {REPO}/chatmail/chatmaild/files;",
        ),
        ("fastcgi_param CHATMAIL_INI /usr/local/lib/chatmaild/chatmail.ini;", f"fastcgi_param CHATMAIL_INI {ini};"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    procs = []
    if shutil.which("fcgiwrap"):
        procs.append(subprocess.Popen(["sh", "-c", f"umask 0; exec fcgiwrap -s unix:{cgi_sock}"]))
    procs.append(subprocess.Popen(["nginx", "-c", str(conf), "-g", "daemon off;"]))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", https), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield {"front": front, "https": https, "imap": imap, "cgi": bool(procs[:-1])}
    for p in procs:
        p.terminate()
        p.wait(timeout=10)
    shutil.rmtree(pub)


class ProxiedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to the backend server as nginx's 443 stream hands it over: PROXY header first."""

    def __init__(self, *args, source: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.source = source

    def connect(self):
        raw = socket.create_connection((self.host, self.port), self.timeout)
        raw.sendall(f"PROXY TCP4 {self.source} 127.0.0.1 40000 443\r\n".encode())
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def https_request(port: int, method: str, path: str, host: str = D, source: str | None = None):
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    if source is None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    else:
        conn = ProxiedHTTPSConnection("127.0.0.1", port, context=ctx, timeout=10, source=source)
    conn.request(method, path, headers={"Host": host})
    resp = conn.getresponse()
    return resp.status, dict(resp.getheaders()), resp.read()


def test_live_alpn_routing_and_web(running_nginx):
    front = running_nginx["front"]
    # ALPN "imap" is passed through, still encrypted, to the IMAPS backend
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["imap"])
    raw = socket.create_connection(("127.0.0.1", front), timeout=5)
    raw.settimeout(1)
    try:
        ctx.wrap_socket(raw, server_hostname=D)
    except (ssl.SSLError, OSError, TimeoutError):
        pass  # the recorder never answers the handshake
    running_nginx["imap"].join(timeout=5)
    # the PROXY header naming the client, then the TLS handshake record
    header, _, rest = running_nginx["imap"].first_bytes.partition(b"\r\n")
    assert header.startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 ")
    assert rest[:1] == b"\x16"
    # no ALPN for mail: the HTTPS server answers
    status, headers, _ = https_request(front, "GET", "/new")
    assert status == 301 and headers["Location"] == f"dcaccount:https://{D}/new"
    status, _, body = https_request(front, "GET", "/.well-known/mta-sts.txt", host=f"mta-sts.{D}")
    assert status == 200 and body.startswith(b"version: STSv1\n")
    status, headers, _ = https_request(front, "GET", "/info.html?x=1", host=f"www.{D}")
    assert status == 301 and headers["Location"] == f"https://{D}/info.html?x=1"
    if running_nginx["cgi"]:
        status, _, body = https_request(front, "POST", "/new")
        assert status == 200, (status, body)
        account = json.loads(body)
        assert status == 200 and re.fullmatch(rf"[a-z0-9]{{9}}@{re.escape(D)}", account["email"])
        assert len(account["password"]) >= 12


def test_new_is_limited_per_client_address(running_nginx):
    """One address flooding POST /new gets 429 after the burst; another address is not affected."""
    https = running_nginx["https"]
    flood = [https_request(https, "POST", "/new", source="192.0.2.10")[0] for _ in range(12)]
    assert 429 not in flood[:6], flood  # 1 + burst 5: a real user never gets near this
    assert flood[-1] == 429 and flood.count(429) >= 4, flood
    assert https_request(https, "POST", "/new", source="198.51.100.20")[0] != 429
    # GET (the browser redirect) is not limited
    assert https_request(https, "GET", "/new", source="192.0.2.10")[0] == 301
    if running_nginx["cgi"]:
        assert https_request(https, "POST", "/new", source="203.0.113.5")[0] == 200


def test_an_ip_only_relay_has_no_www_or_mta_sts_names(tmp_path):
    text = render("chatmail.nginx", {"mail_domain": "192.0.2.7"}, tmp_path).files["/etc/nginx/nginx.conf"]
    assert "server_name 192.0.2.7;" in text
    assert "www." not in text and "mta-sts." not in text
    # DCACCOUNT: cannot work with the self-signed certificate: GET /new goes to the page instead
    assert "dcaccount" not in text and text.count("return 303 /;") == 2
