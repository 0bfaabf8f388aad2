"""The relay's mail policy, checked over raw SMTP/IMAP against a deployed relay.

One implementation of each check, shared by the system tests of both
releases: test_relay.py (Debian 12) and test_debian13.py (Debian 13) each
have ``class TestMailPolicy(MailPolicy)``, so pytest runs these tests there
with that module's ``live`` (the converged relay), ``domain`` and ``lab``
fixtures.  Each test makes its own accounts.
"""

from __future__ import annotations

import smtplib

import pytest

from support import mailclient as mc

# port 25 takes mail for local users without login (and refuses it for lack of DKIM, below)
NO_LOGIN = [(port, target) for port in (465, 587, 443) for target in ("local", "foreign")] + [(25, "foreign")]
NO_LOGIN_IDS = [f"{p}-{t}" for p, t in NO_LOGIN]
FORGED = ["another local user", "someone@example.org"]
UNSIGNED_SENDERS = ["fake@example.org", "fake@testrun.org"]


def account(box, domain: str) -> mc.Account:
    return mc.created_account(box.address, domain)


class MailPolicy:
    """The tests; a module runs them by subclassing this as ``TestMailPolicy``."""

    @pytest.mark.parametrize("port,target", NO_LOGIN, ids=NO_LOGIN_IDS)
    def test_no_relaying_without_login(self, live, domain, port, target):
        """Connections through nginx come from 127.0.0.1 (inside mynetworks), yet nobody sends
        without logging in; port 25 takes mail for local users only."""
        recipient = account(live, domain).addr if target == "local" else "someone@example.org"
        sender = f"{mc.random_local()}@{domain}"
        with mc.smtp(live.address, port) as conn:
            code, _ = conn.mail(sender)
            if code == 250:
                code, text = conn.rcpt(recipient)
            assert code >= 400, f"port {port} accepted {recipient} without login"

    def test_encrypted_message_arrives_with_hidden_subject_and_no_client_address(self, live, domain, lab):
        sender, recipient = account(live, domain), account(live, domain)
        data = mc.encrypted(sender.addr, [recipient.addr], subject="Unencrypted subject")
        assert sender.send([recipient.addr], data) == {}
        (raw,) = mc.wait_for_messages(recipient, 1)
        message = mc.parse(raw)
        assert message["Subject"] == "[...]"
        assert b"Unencrypted subject" not in raw
        assert lab.bridge.address.encode() not in raw, "the client's address leaked into the delivered message"
        assert message["From"].addresses[0].addr_spec == sender.addr
        assert message.get_content_type() == "multipart/encrypted"
        # mail that stays on the relay is not signed (design.md §0.6: no OpenDKIM round trip)
        assert message["DKIM-Signature"] is None

    def test_cleartext_to_a_protected_recipient_is_refused(self, live, domain):
        sender, recipient = account(live, domain), account(live, domain)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            sender.send([recipient.addr], mc.plain(sender.addr, [recipient.addr]))
        assert refused.value.smtp_code == 523
        assert b"Encryption Needed" in refused.value.smtp_error

    @pytest.mark.parametrize("forged", FORGED)
    def test_forged_from_header_is_refused(self, live, domain, forged):
        """AC-15: envelope sender = login, but the From: header names someone else."""
        sender, recipient = account(live, domain), account(live, domain)
        other = recipient.addr if forged == "another local user" else forged
        data = mc.encrypted(sender.addr, [recipient.addr], from_header=f"From: <{other}>")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            sender.send([recipient.addr], data)
        assert refused.value.smtp_code == 500

    def test_envelope_sender_other_than_login_is_refused(self, live, domain):
        """AC-16."""
        sender, other = account(live, domain), account(live, domain)
        with sender.smtp() as conn, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            conn.sendmail(other.addr, [sender.addr], mc.encrypted(other.addr, [sender.addr]))
        assert [code for code, _ in refused.value.recipients.values()] == [553]

    def test_vrfy_does_not_tell_which_addresses_exist(self, live, domain):
        existing = account(live, domain)
        with mc.smtp(live.address, 25) as conn:
            answers = [conn.verify(name) for name in (existing.addr, f"wrongaddress@{domain}", "echo", "wrongaddress")]
        assert [code for code, _ in answers] == [252] * 4
        assert all(text.startswith(b"2.0.0 ") for _, text in answers)

    @pytest.mark.parametrize("sender", UNSIGNED_SENDERS)
    def test_incoming_mail_without_dkim_signature_is_refused(self, live, domain, sender):
        recipient = account(live, domain)
        with mc.smtp(live.address, 25) as conn, pytest.raises(smtplib.SMTPDataError) as refused:
            conn.sendmail(sender, [recipient.addr], mc.encrypted(sender, [recipient.addr]))
        assert refused.value.smtp_code == 554
        assert b"5.7.1" in refused.value.smtp_error and b"No valid DKIM signature" in refused.value.smtp_error
        assert mc.fetch_all(recipient) == []
