"""The whole relay: one `state.apply chatmail` makes a bare Debian 12 container a chatmail relay.

One relay container for the module (booting is cheap, applying is not).
The tests run in file order: converge, idempotence, checkers, services,
then the protocol acceptance criteria of design.md §8.7 over real IMAP, SMTP and
HTTPS from the host to the container's bridge address, and last
``disable_mail``, which stops the mail daemons.

The relay's pillar sets ``max_user_send_per_minute`` low so the rate
limit can be reached quickly; every test uses fresh accounts, so the
limit of one test never touches another.
"""

from __future__ import annotations

import smtplib
import threading
import time
from urllib.parse import urlsplit

import pytest

from harness import changed_states, failed_states
from support import browser, policy
from support import mailclient as mc
from support.dcclient import ClientNamespace
from support.dicts import openssl_hmac_sha1_base64
from support.policy import account
from support.relays import (
    POSTFIX_UNIT,
    kill_until_systemd_gives_up,
    reapply_on_same_tree,
    require_converged,
    tree_state,
    wait_active,
)
from support.webpage import accessibility_problems, page_facts

pytestmark = pytest.mark.system

SEND_LIMIT = 5

# every long-running service of a relay with tls_mode self_signed and no local iroh relay
RELAY_SERVICES = (
    "chatmail-dicts",  # doveauth, lastlogin, chatmail-metadata
    "dovecot",
    "fcgiwrap.socket",  # fcgiwrap.service starts on the first request (test_fcgiwrap_starts_on_demand)
    "filtermail",
    "nginx",
    "opendkim",
    "postfix@-",
    "systemd-journald",
    "coturn",
    "unbound",
)
MAIL_SERVICES = ("postfix", "postfix@-", "dovecot")
# Dovecot's journal line for an IMAP login, per Debian release (2.3, 2.4)
LOGIN_LINE = {"12": "imap-login: Login", "13": "imap-login: Logged in"}


def on_release(box, units) -> list[str]:
    """``units`` with postfix@- as the unit that runs Postfix's master on ``box``'s release
    (Debian 13 has no postfix@-: postfix.service runs it, listed once)."""
    unit = POSTFIX_UNIT[box.release]
    return list(dict.fromkeys(unit if u == "postfix@-" else u for u in units))


# each daemon's own configuration checker, run on the live configuration
CHECKERS = {
    "postfix": "postconf -n >/dev/null && postfix check",
    "dovecot": "doveconf -n >/dev/null",
    "nginx": "nginx -t",
    "opendkim": "opendkim -n",
    "unbound": "unbound-checkconf",
}


@pytest.fixture(scope="module")
def box(relay):
    return relay("relay1", max_user_send_per_minute=SEND_LIMIT, max_user_send_burst_size=SEND_LIMIT)


@pytest.fixture(scope="module")
def applied(box):
    started = time.monotonic()
    # Salt's console log at its default level, as an operator sees it (stderr)
    result = box.apply(box.pillar, "--log-level=warning")
    result.seconds = time.monotonic() - started
    result.tree = tree_state()
    return result


@pytest.fixture(scope="module")
def live(box, applied):
    """The relay, once the first apply went through (tests that need it error otherwise)."""
    return require_converged(box, applied, width=600)


@pytest.fixture(scope="module")
def domain(box) -> str:
    return box.pillar["mail_domain"]


# -- converge ------------------------------------------------------------------------------


def test_first_apply_converges(box, applied):
    assert failed_states(applied) == []
    assert applied.retcode == 0
    assert len(changed_states(applied)) > 20, "a bare container must get the whole relay"


def test_second_apply_changes_nothing(live, applied):
    again = reapply_on_same_tree(live, live.pillar, applied.tree)
    assert failed_states(again) == []
    changes = {s["__id__"]: str(s.get("changes"))[:300] for s in again.states.values() if s.get("changes")}
    assert changed_states(again) == [], changes


def test_first_apply_logs_no_error(live, applied):
    logged = [
        line for line in applied.stderr.splitlines() if "[ERROR" in line or "[CRITICAL" in line or "Traceback" in line
    ]
    assert logged == [], applied.stderr[-3000:]


def test_dry_run_of_the_converged_relay_is_quiet(live):
    dry = live.apply(live.pillar, "--log-level=warning", test=True)
    assert failed_states(dry) == []
    would = {
        s["__id__"]: s.get("comment", "")[:200]
        for s in dry.states.values()
        if s.get("result") is None or s.get("changes")
    }
    assert would == {}
    assert "[ERROR" not in dry.stderr, dry.stderr[-3000:]


def test_a_leftover_legacy_unit_is_stopped_and_disabled(live):
    """The dry run is quiet because chatmail.legacy skips absent units; a present one still goes."""
    live.write_file(
        "/etc/systemd/system/echobot.service",
        "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n",
    )
    live.run("systemctl daemon-reload && systemctl enable --now echobot.service")
    result = live.salt_call("state.apply", "chatmail.legacy")
    assert failed_states(result) == []
    assert "chatmail-legacy-echobot-service-service-dead" in changed_states(result)
    state = live.run("systemctl is-active echobot.service; systemctl is-enabled echobot.service", check=False)
    assert state.stdout.split() == ["inactive", "disabled"]
    live.run("rm /etc/systemd/system/echobot.service && systemctl daemon-reload")


# the units of formula versions before 2026-12: a filtermail per direction, a unit per dict service
OLD_UNITS = {
    "filtermail-incoming": "chatmaild.filtermail {ini} incoming",
    "doveauth": "chatmaild.doveauth /run/doveauth/doveauth.socket {ini}",
    "lastlogin": "chatmaild.lastlogin /run/chatmail-lastlogin/lastlogin.socket {ini}",
    "chatmail-metadata": "chatmaild.metadata /run/chatmail-metadata/metadata.socket {ini}",
}
OLD_RUNTIME = {"doveauth": "doveauth", "lastlogin": "chatmail-lastlogin", "chatmail-metadata": "chatmail-metadata"}


def test_a_relay_with_the_old_units_ends_with_the_new_ones(live, domain):
    """A relay deployed by an earlier version (the incoming filter and each dict service in a unit
    of its own), deployed again, ends with filtermail.service serving both filter ports and
    chatmail-dicts.service the three dict sockets."""
    lib = "/usr/local/lib/chatmaild"
    live.run(
        "systemctl stop chatmail-dicts && "
        "sed -i 's/ outgoing incoming$/ outgoing/' /etc/systemd/system/filtermail.service"
    )
    for name, command in OLD_UNITS.items():
        runtime = f"RuntimeDirectory={OLD_RUNTIME[name]}\nUMask=0077\n" if name in OLD_RUNTIME else ""
        live.write_file(
            f"/etc/systemd/system/{name}.service",
            f"[Service]\nUser=vmail\nGroup=vmail\nEnvironment=PYTHONPATH={lib}\n{runtime}"
            f"ExecStart=/usr/bin/python3 -m {command.format(ini=lib + '/chatmail.ini')}\n"
            "Restart=always\n[Install]\nWantedBy=multi-user.target\n",
        )
    live.run("systemctl daemon-reload && systemctl restart filtermail && systemctl enable --now " + " ".join(OLD_UNITS))
    try:
        old = live.run(["systemctl", "is-active", *OLD_UNITS], check=False).stdout.split()
        assert old == ["active"] * len(OLD_UNITS)
        # "active" is the process started, not its socket bound: wait for the three listeners
        sockets = [command.split()[1] for name, command in OLD_UNITS.items() if name in OLD_RUNTIME]
        live.run(
            f"for i in $(seq 100); do n=0; for s in {' '.join(sockets)}; do test -S $s && n=$((n+1)); done; "
            f"[ $n = {len(sockets)} ] && exit 0; sleep 0.1; done; exit 1"
        )
        account(live, domain)  # the old doveauth creates accounts
    finally:
        result = live.apply(live.pillar)  # also what puts the relay back for the tests after this one
    assert failed_states(result) == []
    states = live.run(["systemctl", "is-active", *OLD_UNITS, "chatmail-dicts"], check=False).stdout.split()
    assert states == ["inactive"] * len(OLD_UNITS) + ["active"]
    units_dir = live.run(["ls", "/etc/systemd/system/"]).stdout.split()
    assert not [name for name in OLD_UNITS if f"{name}.service" in units_dir]
    status = live.salt_call("chatmail.status")
    assert status.retcode == 0, status.stderr
    status = status["local"]
    assert status["ok"] is True, [row for row in status["services"] + status["ports"] if not row["ok"]]
    pid = live.run(["systemctl", "show", "-p", "MainPID", "--value", "filtermail"]).stdout.strip()
    listeners = live.run(["ss", "-Hltnp"]).stdout
    for port in (
        live.pillar.get("filtermail_smtp_port", 10080),
        live.pillar.get("filtermail_smtp_port_incoming", 10081),
    ):
        (line,) = [line for line in listeners.splitlines() if f"127.0.0.1:{port} " in line]
        assert f"pid={pid}," in line, line
    # accounts are made, mail flows and the push hook reaches the metadata service: all three sockets answer
    sender = register_device(live, domain, "tok-after-upgrade")
    recipient = register_device(live, domain, "tok-after-upgrade-2")
    assert sender.send([recipient.addr], mc.encrypted(sender.addr, [recipient.addr])) == {}
    deadline = time.monotonic() + 20
    while (
        "tok-after-upgrade-2" not in {t for _, _, t in pending_pushes(live, domain)}
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "tok-after-upgrade-2" in {t for _, _, t in pending_pushes(live, domain)}


@pytest.mark.parametrize("daemon", CHECKERS)
def test_live_configuration_passes_its_checker(live, daemon):
    proc = live.run(CHECKERS[daemon], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_relay_service_is_active_and_enabled(live):
    services = on_release(live, RELAY_SERVICES)
    active = live.run(["systemctl", "is-active", *services], check=False).stdout.split()
    assert dict(zip(services, active)) == {name: "active" for name in services}
    units = list(dict.fromkeys([u for u in services if u != "postfix@-"] + ["postfix"]))
    enabled = live.run(["systemctl", "is-enabled", *units], check=False).stdout.split()
    # static: journald; indirect: fcgiwrap, enabled through its socket unit
    assert all(state in ("enabled", "static", "indirect") for state in enabled), dict(zip(units, enabled))
    assert live.run(["systemctl", "--failed", "--no-legend"]).stdout.strip() == ""


def test_opendkim_is_restarted_at_least_daily(live):
    """AC-11: a drop-in restarts the leaking milter daily (active-since < 51 h)."""
    props = live.run(["systemctl", "show", "opendkim", "-p", "Restart,RuntimeMaxUSec"]).stdout.split()
    assert sorted(props) == ["Restart=always", "RuntimeMaxUSec=1d"]


RETRIED = ["dovecot", "postfix@-", "opendkim", "filtermail", "chatmail-dicts", "coturn", "nginx", "unbound"]


def test_a_daemon_that_keeps_failing_is_tried_again_after_systemd_gives_up(live, domain):
    """Dovecot killed again each time it is back: after five quick restarts systemd's start limit
    stops it ("Start request repeated too quickly"), and chatmail-retry@ brings it back half a minute later, as it would
    a daemon that failed for a while (a missing certificate, a full disk)."""
    units = on_release(live, RETRIED)
    handlers = live.run(["systemctl", "show", "-p", "OnFailure", "--value", *units]).stdout.split()
    assert handlers == [f"chatmail-retry@{unit}.service.service" for unit in units]
    kill_until_systemd_gives_up(live, "dovecot", kills=12)
    assert wait_active(live, "dovecot") == "active"
    _imap_login(account(live, domain))  # back for good: accounts log in


# -- accounts (AC-2 .. AC-5, AC-8) ---------------------------------------------------------------


def test_imap_capabilities_announce_chatmail_and_push(live):
    conn = mc.imap(live.address)
    try:
        assert {"XCHATMAIL", "XDELTAPUSH"} <= set(conn.capabilities)
    finally:
        conn.logout()


def _imap_login(acc: mc.Account) -> None:
    acc.imap().logout()


def _smtp_login(acc: mc.Account) -> None:
    acc.smtp().quit()


LOGINS = {"imaps-993": _imap_login, "smtps-465": _smtp_login}
LOGIN_ERRORS = (smtplib.SMTPAuthenticationError, mc.imaplib.IMAP4.error)


@pytest.mark.parametrize("protocol", LOGINS)
def test_first_login_creates_the_account(live, domain, protocol):
    login = LOGINS[protocol]
    acc = mc.new_account(live.address, domain)
    home = f"/home/vmail/mail/{domain}/{acc.addr}"
    assert not live.exists(home)
    login(acc)
    assert live.read_file(f"{home}/password").startswith("{SHA512-CRYPT}$6$")
    login(acc)  # the same password again
    with pytest.raises(LOGIN_ERRORS):
        login(mc.Account(acc.host, acc.addr, acc.password + "x"))


@pytest.mark.parametrize("protocol", LOGINS)
def test_too_short_password_creates_nothing(live, domain, protocol):
    acc = mc.new_account(live.address, domain, password="admin")
    with pytest.raises(LOGIN_ERRORS):
        LOGINS[protocol](acc)
    assert not live.exists(f"/home/vmail/mail/{domain}/{acc.addr}")


def test_two_new_users_may_share_a_password(live, domain):
    first = mc.new_account(live.address, domain)
    second = mc.new_account(live.address, domain, password=first.password)
    _imap_login(first)
    _imap_login(second)


def test_parallel_first_logins_of_one_account(live, domain):
    """AC-5: ten IMAP logins of one new account at once, each with an open SMTP session."""
    acc = mc.new_account(live.address, domain)
    errors: list[BaseException] = []

    def login_pair():
        try:
            with acc.smtp():
                _imap_login(acc)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=login_pair) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


def test_new_account_over_https(live, domain):
    """AC-8: POST /new through nginx's ALPN multiplexer on 443 gives working credentials."""
    acc = mc.new_account_from_web(live.address, domain)
    assert acc.addr.endswith("@" + domain)
    assert len(acc.password) > 9  # password_min_length
    _imap_login(acc)
    _smtp_login(acc)


def test_a_killed_nginx_comes_back_and_serves_443(live, domain):
    """Debian's nginx.service never restarts nginx; the formula's drop-in does (Restart=on-failure):
    a master killed with SIGKILL is back within seconds, and /new over 443 makes accounts."""
    pid = live.run(["systemctl", "show", "-p", "MainPID", "--value", "nginx"]).stdout.strip()
    live.run(["kill", "-9", pid])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        now = live.run(["systemctl", "show", "-p", "MainPID", "--value", "nginx"]).stdout.strip()
        if (
            now not in ("0", pid)
            and not live.run(["systemctl", "is-active", "--quiet", "nginx"], check=False).returncode
        ):
            break
        time.sleep(0.2)
    assert now not in ("0", pid), (
        "nginx did not come back within 20 s:\n" + live.run("journalctl -u nginx --no-pager -n 20", check=False).stdout
    )
    _imap_login(mc.new_account_from_web(live.address, domain))


def test_fcgiwrap_starts_on_demand_and_the_relay_is_ok_without_it(live, domain):
    """As after a reboot: fcgiwrap.service is down until nginx's first CGI request starts it
    through its socket.  Status says ok meanwhile, and /new works."""
    live.run(["systemctl", "stop", "fcgiwrap.service"])
    status = live.salt_call("chatmail.status")
    assert status.retcode == 0 and status["local"]["ok"] is True, status["local"]
    acc = mc.new_account_from_web(live.address, domain)
    _imap_login(acc)
    assert live.run(["systemctl", "is-active", "fcgiwrap.service"]).stdout.strip() == "active"


WEB_PAGES = ("index.html", "info.html", "privacy.html")


def test_web_pages_in_a_browser(live, domain, lab, tmp_path_factory, record_property):
    """The website as a reader sees it in headless Chromium: each page has a language, a title and
    a text for its images; the QR code in the screenshot is the button's invite, and the invite's
    /new gives an account that logs in.  Screenshots are kept (named in the terminal summary)."""
    if browser.missing():
        pytest.skip(browser.missing())
    shots = tmp_path_factory.mktemp("web-screenshots")
    pages = {}
    with ClientNamespace(lab.bridge, {domain: live.address}, tag="w") as namespace:
        chromium = browser.Browser(namespace, tmp_path_factory.mktemp("browser"))
        for page in WEB_PAGES:
            url = f"https://{domain}/{page}"
            shot = shots / page.replace(".html", ".png")
            pages[page] = page_facts(chromium.visit(url, shot))
            record_property("kept", str(shot))
            print(f"screenshot of {url}: {shot}")
    for page, facts in pages.items():
        # (Chromium's own error page is titled with the bare host name)
        assert facts.title.endswith(f" – {domain}"), f"{page} did not load: title {facts.title!r}"
        assert accessibility_problems(facts) == [], page
    invite = pages["index.html"].link("cta")
    assert browser.decode_qr(shots / "index.png") == [invite]
    scheme, _, target = invite.partition(":")
    assert scheme.lower() == "dcaccount" and target == f"https://{domain}/new"
    url = urlsplit(target)
    assert url.hostname == domain  # the relay's address, as the browser's hosts file says
    acc = mc.new_account_from_web(live.address, url.hostname, url.path)
    assert acc.domain == domain
    _imap_login(acc)


@pytest.mark.parametrize("ports", mc.CLIENT_PORTS)
def test_clients_log_in_and_send_on_every_port(live, domain, ports):
    mc.check_client_ports(account(live, domain), account(live, domain), ports)


def test_connections_are_logged(live, domain):
    """AC-13: a fresh IMAP and SMTP connection each leave a journal line."""
    since = live.run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
    acc = account(live, domain)
    acc.smtp().quit()
    assert _wait_for_journal(live, "dovecot", since, LOGIN_LINE[live.release], acc.addr)
    assert _wait_for_journal(live, POSTFIX_UNIT[live.release], since, "connect from")


# -- mail (AC-15 .. AC-19, AC-27) ----------------------------------------------------------------


def test_sending_faster_than_the_limit_is_deferred(live, domain):
    """AC-19: the first max_user_send_burst_size messages pass at once, a later one gets 450 4.7.1.

    Postfix talks to the filter from the first RCPT on, so the filter's
    refusal of MAIL reaches the client as the answer to RCPT.
    """
    sender, recipient = account(live, domain), account(live, domain)
    outcomes = []
    with sender.smtp() as conn:
        for _ in range(SEND_LIMIT + 5):
            try:
                conn.sendmail(sender.addr, [recipient.addr], mc.encrypted(sender.addr, [recipient.addr]))
                outcomes.append(250)
            except smtplib.SMTPSenderRefused as exc:
                outcomes.append((exc.smtp_code, exc.smtp_error.decode()))
            except smtplib.SMTPRecipientsRefused as exc:
                ((code, text),) = exc.recipients.values()
                outcomes.append((code, text.decode()))
    assert outcomes[:SEND_LIMIT] == [250] * SEND_LIMIT
    refusals = [o for o in outcomes if o != 250]
    assert refusals, outcomes
    assert all(code == 450 and "4.7.1" in text and "Too much mail from" in text for code, text in refusals)


# -- mail policy: relaying, encryption, senders, port 25 (AC-6, AC-15 .. AC-17) ---------------


class TestMailPolicy(policy.MailPolicy):
    """Relaying, encryption, forged senders, VRFY, unsigned incoming mail (AC-6, AC-15 .. AC-17):
    support/policy.py, which test_debian13.py runs on Debian 13."""


# -- Dovecot extras (AC-22, AC-24) ------------------------------------------------------------


def test_devicetoken_metadata_round_trip(live, domain):
    """AC-22: SETMETADATA devicetoken then GETMETADATA; a second token is kept beside the first."""
    conn = account(live, domain).imap()
    try:
        key = "/private/devicetoken"
        assert mc.metadata(conn, "INBOX", key)[0] == "OK"
        for token, expected in (("1111", "1111"), ("2222", "1111 2222")):
            typ, data = mc.metadata(conn, "INBOX", f'({key} "{token}")', command="SETMETADATA")
            assert typ == "OK", data
            typ, data = mc.metadata(conn, "INBOX", key)
            assert typ == "OK" and mc.metadata_value(data) == expected, data
    finally:
        conn.logout()


def test_turn_credentials_come_from_the_relays_secret(live, domain):
    """Server metadata ``turn``: ``<domain>:3478:<expiry>:<password>``, the password being the
    HMAC coturn recomputes from the secret the formula made (the unit names its file)."""
    conn = account(live, domain).imap()
    try:
        typ, data = mc.metadata(conn, '""', "/shared/vendor/deltachat/turn")
    finally:
        conn.logout()
    assert typ == "OK", data
    host, port, expiry, password = mc.metadata_value(data).split(":")
    assert (host, port) == (domain, "3478")
    assert int(expiry) > time.time() + 4 * 86400
    secret = live.run(["cat", "/etc/chatmail-turn/secret"]).stdout.strip()
    assert password == openssl_hmac_sha1_base64(secret, expiry)


def register_device(box, domain: str, token: str) -> mc.Account:
    """An account with one device token (SETMETADATA, as Delta Chat does)."""
    owner = account(box, domain)
    conn = owner.imap()
    try:
        typ, data = mc.metadata(conn, "INBOX", f'(/private/devicetoken "{token}")', command="SETMETADATA")
        assert typ == "OK", data
    finally:
        conn.logout()
    return owner


def pending_pushes(box, domain: str) -> list[list[str]]:
    """The notifier's queue: one ``[addr, start, token]`` per push not yet delivered."""
    out = box.run(
        f"for f in /home/vmail/mail/{domain}/pending_notifications/*; do "
        '[ -f "$f" ] && cat "$f" && echo && echo .; done'
    ).stdout
    return [entry.strip("\n").split("\n", 2) for entry in out.split("\n.\n") if entry.strip()]


def test_delivery_wakes_the_recipients_devices_but_not_the_senders(live, domain):
    """Delivery -> Dovecot's Lua push hook -> /private/messagenew -> chatmail-metadata -> a push
    for each registered device token.  The push service is on the internet, out of reach here, so
    the push stays queued for retry: the queue shows it was made.  A copy to the sender's own
    address (another of their devices) wakes nothing."""
    recipient = register_device(live, domain, "tok-recipient-1")
    sender = register_device(live, domain, "tok-sender-1")
    assert sender.send([recipient.addr], mc.encrypted(sender.addr, [recipient.addr])) == {}
    assert sender.send([sender.addr], mc.encrypted(sender.addr, [sender.addr])) == {}
    mc.wait_for_messages(recipient, 1)
    mc.wait_for_messages(sender, 1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tokens = {(addr, token) for addr, _, token in pending_pushes(live, domain)}
        if (recipient.addr, "tok-recipient-1") in tokens:
            break
        time.sleep(0.2)
    assert (recipient.addr, "tok-recipient-1") in tokens
    assert not any(addr == sender.addr for addr, _ in tokens)


def _message_id(data: bytes) -> str:
    return mc.parse(data)["Message-ID"].strip("<>")


def _postfix_saw(box, message_id: str) -> bool:
    """Postfix's cleanup logs the Message-ID of every message it queues."""
    journal = box.run(["journalctl", "--no-pager", "-o", "cat", "-t", "postfix/authclean", "-t", "postfix/cleanup"])
    return message_id in journal.stdout


def test_local_mail_is_stored_without_postfixs_queue(live, domain):
    """filtermail hands mail for the relay's own mailboxes to Dovecot's LMTP: the 250 comes after
    Dovecot stored it, with the headers Postfix's cleanup would have dropped dropped."""
    sender, recipient = account(live, domain), account(live, domain)
    data = mc.encrypted(sender.addr, [recipient.addr], subject="Unencrypted subject")
    assert sender.send([recipient.addr], data) == {}
    files = live.run(["sh", "-c", f"ls /home/vmail/mail/{domain}/{recipient.addr}/new"]).stdout.split()
    assert len(files) == 1, "the message was not in the mailbox when the client got its 250"
    (raw,) = mc.fetch_all(recipient)
    assert mc.parse(raw)["Subject"] == "[...]" and mc.parse(raw)["Received"] is None
    assert not _postfix_saw(live, _message_id(data))


def test_without_dovecot_local_mail_waits_in_postfixs_queue(live, domain):
    """Dovecot away: the message is queued (250 all the same) and delivered when Dovecot is back."""
    sender, recipient = account(live, domain), account(live, domain)
    data = mc.encrypted(sender.addr, [recipient.addr])
    try:
        with sender.smtp() as conn:  # a login needs Dovecot's auth: log in first
            live.run(["systemctl", "stop", "dovecot"])
            assert conn.sendmail(sender.addr, [recipient.addr], data) == {}
        assert _postfix_saw(live, _message_id(data))
    finally:
        live.run(["systemctl", "start", "dovecot"])
    assert len(mc.wait_for_messages(recipient, 1)) == 1


def test_mailbox_over_quota_refuses_delivery(live, domain):
    """AC-24: a mailbox at 100 % of max_mailbox_size takes no more mail."""
    sender, full = account(live, domain), account(live, domain)
    mc.fetch_all(full)  # creates the maildir
    maildir = f"/home/vmail/mail/{domain}/{full.addr}"
    quota = 500 * 1024 * 1024  # max_mailbox_size 500M
    # a message file whose name says S=<quota>: Dovecot's maildir quota counts it at that size
    big = f"{maildir}/cur/1700000000.M1P1.quota,S={quota},W={quota}:2,"
    live.run(["setpriv", "--reuid=vmail", "--regid=vmail", "--clear-groups", "touch", big])
    live.run(["doveadm", "quota", "recalc", "-u", full.addr])
    usage = live.run(["doveadm", "-f", "tab", "quota", "get", "-u", full.addr]).stdout
    storage = next(line.split("\t") for line in usage.splitlines() if "\tSTORAGE\t" in line)
    assert int(storage[-1]) >= 100, usage

    since = live.run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
    assert sender.send([full.addr], mc.encrypted(sender.addr, [full.addr])) == {}
    journal = _wait_for_journal(live, "dovecot", since, f"lmtp({full.addr})", "Quota exceeded")
    assert "Quota exceeded" in journal
    assert live.run(["ls", f"{maildir}/new"]).stdout.strip() == ""


def _wait_for_journal(box, unit: str, since: str, *words: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = box.run(["journalctl", "-u", unit, "--since", since, "--no-pager", "-o", "cat"]).stdout
        hits = [line for line in text.splitlines() if all(w in line for w in words)]
        if hits or time.monotonic() > deadline:
            return "\n".join(hits)
        time.sleep(0.3)


# -- disable_mail (last: it stops the mail daemons) --------------------------------------------


def test_disable_mail_stops_only_postfix_and_dovecot(live):
    result = live.apply({**live.pillar, "disable_mail": True})
    assert failed_states(result) == []
    mail_services = on_release(live, MAIL_SERVICES)
    # a master being stopped (Postfix's instance follows its wrapper) may still be "deactivating"
    deadline = time.monotonic() + 30
    while True:
        mail = live.run(["systemctl", "is-active", *mail_services], check=False).stdout.split()
        if "deactivating" not in mail or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert mail == ["inactive"] * len(mail_services)
    enabled = live.run(["systemctl", "is-enabled", "postfix", "dovecot"], check=False).stdout.split()
    assert enabled == ["disabled", "disabled"]
    others = [s for s in on_release(live, RELAY_SERVICES) if s not in mail_services]
    active = live.run(["systemctl", "is-active", *others], check=False).stdout.split()
    assert dict(zip(others, active)) == {name: "active" for name in others}
