"""tls: each tls_mode renders what it promises; the self-signed command really makes a usable cert."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from support.salt import call, minion_dir, render

D = "chat.example.org"


@pytest.fixture(scope="module")
def acme(tmp_path_factory):
    pillar = {"mail_domain": D, "acme_email": "admin@example.org", "acme_directory": "https://127.0.0.1:14000/dir"}
    return render("chatmail.tls", pillar, tmp_path_factory.mktemp("acme"))


def test_acme_desired_names_target_and_responses(acme):
    desired = yaml.safe_load(acme.files[f"/var/lib/acme/desired/{D}"])
    assert desired == {"satisfy": {"names": [D, f"mta-sts.{D}", f"www.{D}"]}}
    target = yaml.safe_load(acme.files["/var/lib/acme/conf/target"])
    assert target["request"]["provider"] == "https://127.0.0.1:14000/dir"
    assert target["request"]["key"] == {"type": "ecdsa", "ecdsa-curve": "nistp256"}
    responses = yaml.safe_load(acme.files["/var/lib/acme/conf/responses"])
    assert responses["acme-enter-email"] == "admin@example.org"
    agreed = [k for k, v in responses.items() if k.startswith("acme-agreement:") and v is True]
    assert "acme-agreement:https://letsencrypt.org/documents/LE-SA-v1.6-August-18-2025.pdf" in agreed


def test_acme_terms_url_is_agreed_to_besides_lets_encrypts(tmp_path):
    terms = "https://ca.example.net/terms-2026.pdf"
    r = render("chatmail.tls", {"mail_domain": D, "acme_terms_url": terms}, tmp_path)
    responses = yaml.safe_load(r.files["/var/lib/acme/conf/responses"])
    agreed = {k.removeprefix("acme-agreement:") for k, v in responses.items() if k.startswith("acme-agreement:") and v}
    assert agreed == {terms, "https://letsencrypt.org/documents/LE-SA-v1.6-August-18-2025.pdf"}


def test_acme_without_email_answers_no_email(tmp_path):
    r = render("chatmail.tls", {"mail_domain": D}, tmp_path)
    assert yaml.safe_load(r.files["/var/lib/acme/conf/responses"])["acme-enter-email"] == "-"


def test_acme_hook_only_handles_live_updated(acme, tmp_path):
    hook = acme.write("/etc/acme/hooks/chatmail-reload", tmp_path / "hook")
    assert acme.state("chatmail-tls-hook-file-managed")["mode"] == "0755"
    assert subprocess.run(["sh", str(hook), "challenge-http-start"]).returncode == 42
    text = hook.read_text()
    assert "try-reload-or-restart nginx.service dovecot.service postfix.service" in text


@pytest.mark.skipif(not shutil.which("acmetool"), reason="needs Debian's acmetool for unit verification")
def test_acme_units_verify(acme, tmp_path):
    units = ["acmetool-redirector.service", "acmetool-reconcile.service", "acmetool-reconcile.timer"]
    for unit in units:
        acme.write(f"/etc/systemd/system/{unit}", tmp_path / unit)
    proc = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / u) for u in units)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "ExecStart=/usr/bin/acmetool redirector --service.uid=daemon"
        in acme.files["/etc/systemd/system/acmetool-redirector.service"]
    )


def test_acme_reconcile_runs_only_when_needed_and_after_redirector(acme):
    args = acme.state("chatmail-tls-reconcile-cmd-run")
    assert "--batch" in args["name"] and "SSL_CERT_FILE" not in args["name"]
    assert f"/var/lib/acme/live/{D}/fullchain -nt /var/lib/acme/desired/{D}" in args["unless"]
    assert "-checkend" in args["unless"]
    assert {"service": "chatmail-tls-redirector-service-running"} in args["require"]
    dead = acme.state("chatmail-tls-debian-timer-service-dead")
    assert dead["name"] == "acmetool.timer" and dead["enable"] is False


def test_self_signed_is_made_once_with_all_names(tmp_path):
    r = render("chatmail.tls", {"mail_domain": D, "tls_mode": "self_signed"}, tmp_path)
    args = r.state("chatmail-tls-self-signed-cmd-run")
    cert, key = "/etc/ssl/certs/mailserver.pem", "/etc/ssl/private/mailserver.key"
    assert sorted(args["creates"]) == sorted([cert, key])
    assert not any(k.startswith("/var/lib/acme") for k in r.files)
    # run the real command with the paths moved into tmp
    root = tmp_path / "root"
    tcert, tkey = root / cert.lstrip("/"), root / key.lstrip("/")
    cmd = args["name"].replace("/etc/ssl/", f"{root}/etc/ssl/")
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    san = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(tcert)], capture_output=True, text=True
    ).stdout
    assert f"DNS:{D}, DNS:mta-sts.{D}, DNS:www.{D}" in san
    assert oct(tkey.stat().st_mode & 0o777) == "0o600"
    # the key belongs to the certificate
    pub = lambda args: subprocess.run(args, capture_output=True, text=True).stdout  # noqa: E731
    assert pub(["openssl", "x509", "-noout", "-pubkey", "-in", str(tcert)]) == pub(
        ["openssl", "pkey", "-pubout", "-in", str(tkey)]
    )


def test_external_checks_files_and_watches_them(tmp_path):
    pillar = {
        "mail_domain": D,
        "tls_mode": "external",
        "tls_cert_file": "/srv/tls/chain.pem",
        "tls_key_file": "/srv/tls/key.pem",
    }
    r = render("chatmail.tls", pillar, tmp_path)
    assert r.state("chatmail-tls-external-cert-file-exists")["name"] == "/srv/tls/chain.pem"
    assert r.state("chatmail-tls-external-key-file-exists")["name"] == "/srv/tls/key.pem"
    path_unit = r.files["/etc/systemd/system/chatmail-tls-reload.path"]
    assert "PathChanged=/srv/tls/chain.pem" in path_unit and "PathChanged=/srv/tls/key.pem" in path_unit
    assert "acmetool" not in " ".join(r.states)


def test_external_missing_file_fails_clearly(tmp_path):
    """The real file.exists state on a missing path fails and names the path."""
    missing = tmp_path / "nope.pem"
    result = call(minion_dir(tmp_path, {"mail_domain": D}), "state.single", "file.exists", str(missing))
    assert result.returncode != 0 and result.data[next(iter(result.data))]["result"] is False
    assert str(missing) in result.stdout
