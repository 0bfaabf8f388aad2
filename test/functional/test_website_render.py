"""website: pages rendered with the settings; the QR command really encodes the invite URL."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from support.salt import render
from support.webpage import accessibility_problems, page_facts

D = "chat.example.org"
INVITE = f"DCACCOUNT:https://{D}/new"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pillar = {
        "mail_domain": D,
        "privacy_mail": "privacy@example.org",
        "privacy_postal": "Example Ltd\nMain St 1",
        "username_min_length": 8,
    }
    return render("chatmail.website", pillar, tmp_path_factory.mktemp("site"))


def test_pages_name_domain_invite_and_settings(site):
    index = site.files["/var/www/html/index.html"]
    assert f'href="{INVITE}"' in index and f"/qr-chatmail-invite-{D}.svg" in index
    info = site.files["/var/www/html/info.html"]
    assert "eight to nine characters" in info and "60 messages per minute" in info and "500M" in info
    privacy = site.files["/var/www/html/privacy.html"]
    assert "Example Ltd<br>\nMain St 1" in privacy and "privacy@example.org" in privacy
    assert site.files["/var/www/html/robots.txt"].split() == ["User-agent:", "*", "Disallow:", "/"]
    for page in ("index.html", "info.html", "privacy.html"):
        HTMLParser().feed(site.files[f"/var/www/html/{page}"])  # well-formed enough to parse


@pytest.mark.parametrize("page", ["index.html", "info.html", "privacy.html"])
def test_page_has_language_title_and_text_alternatives(site, page):
    """A screen reader needs the language, the title and a text for each image (the QR code)."""
    facts = page_facts(site.files[f"/var/www/html/{page}"])
    assert accessibility_problems(facts) == []
    assert facts.lang == "en" and facts.title.endswith(f" – {D}")


def test_qr_code_text_alternative_names_domain_and_invite(site):
    facts = page_facts(site.files["/var/www/html/index.html"])
    qr = [img for img in facts.images if img["src"] == f"/qr-chatmail-invite-{D}.svg"]
    assert len(qr) == 1 and D in qr[0]["alt"] and INVITE in qr[0]["alt"]
    assert facts.link("cta") == INVITE


@pytest.mark.skipif(not shutil.which("qrencode"), reason="needs Debian's qrencode")
def test_qr_code_encodes_the_invite(site, tmp_path):
    for ext in ("png", "svg"):
        args = site.state(f"chatmail-website-qr-{ext}-cmd-run")
        target = f"/var/www/html/qr-chatmail-invite-{D}.{ext}"
        assert args["creates"] == target
        subprocess.run(["sh", "-c", args["name"].replace(target, str(tmp_path / f"qr.{ext}"))], check=True)
    assert "<svg" in (tmp_path / "qr.svg").read_text()
    if shutil.which("zbarimg"):
        out = subprocess.run(
            ["zbarimg", "-q", "--raw", str(tmp_path / "qr.png")], capture_output=True, text=True
        ).stdout
        assert out.strip() == INVITE


def test_custom_folder_is_copied_instead(tmp_path):
    r = render("chatmail.website", {"mail_domain": D, "www_folder": "/srv/www"}, tmp_path)
    assert not any(p.endswith(".html") for p in r.files)
    cmd = r.state("chatmail-website-custom-cmd-run")
    assert "/srv/www/ /var/www/html/" in cmd["name"] and cmd["onlyif"] == "test -d /srv/www"
    assert "chatmail-website-qr-png-cmd-run" in r.states
