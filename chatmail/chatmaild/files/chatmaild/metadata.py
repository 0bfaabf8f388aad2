"""chatmail-metadata: Dovecot's IMAP METADATA backend and push trigger.

All IMAP METADATA goes through this dict (``mail_attribute_dict``):

* clients store their push device token (``/private/devicetoken``),
* Dovecot's Lua push hook sets ``/private/messagenew`` on delivery, which
  queues a push per token (see notifier.py),
* clients read the relay's iroh relay URL, TURN credentials, how many
  recipients one message may have and the app version index from the
  server entries ``/shared/vendor/deltachat/{irohrelay,turn,
  maxsmtprecipients,appversions}``.

Run as ``python3 -m chatmaild.metadata <socket> <chatmail.ini>``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from .config import Config
from .dictproxy import DictProxy, Transaction, run_service
from .metadata_tokens import TokenStore
from .notifier import Notifier
from .turncreds import turn_value

log = logging.getLogger(__name__)

SERVER_ENTRY = "vendor/vendor.dovecot/pvt/server/vendor/deltachat/"
# Postfix's smtpd_recipient_limit, which main.cf leaves at its default:
# clients split larger groups into several messages instead of failing.
MAX_SMTP_RECIPIENTS = 1000
# written by chatmail.chatmaild.config (pillar appversions, or the formula's file)
# beside chatmail.ini, in chatmaild.lib of the formula's parameters table
APPVERSIONS_NAME = "appversions.json"
# the TURN secret file; the formula sets it in the unit (chatmail/parameters: turn.secret_dir)
TURN_SECRET_ENV = "CHATMAIL_TURN_SECRET"


def read_appversions(path: Path | None) -> str | None:
    """The app version index as one line of JSON (the dict protocol is line-based), or None."""
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("cannot read app versions from %s: %s", path, exc)
        return None
    return json.dumps(data, separators=(",", ":"))


class MetadataDict(DictProxy):
    name = "chatmail-metadata"

    def __init__(
        self,
        config: Config,
        tokens: TokenStore,
        notifier: Notifier,
        turn_secret: Path | None,
        appversions: Path | None = None,
    ):
        self.config = config
        self.tokens = tokens
        self.notifier = notifier
        self.turn_secret = Path(turn_secret) if turn_secret else None
        self.appversions_path = Path(appversions) if appversions is not None else None
        # server entries: name -> function answering the lookup
        self.server_entries = {
            "irohrelay": self.iroh_relay,
            "turn": self.turn,
            "maxsmtprecipients": lambda: str(MAX_SMTP_RECIPIENTS),
            # read on each lookup: a new file needs no restart
            "appversions": lambda: read_appversions(self.appversions_path),
        }

    def iroh_relay(self) -> str | None:
        return self.config.iroh_relay_url or None

    def turn(self) -> str | None:
        if self.turn_secret is None:
            return None
        try:
            return turn_value(self.config.mail_domain, self.turn_secret)
        except (OSError, ValueError) as exc:
            log.error("no TURN credentials: %s", exc)
            return None

    def lookup(self, key: str, user: str) -> str | None:
        namespace, _, rest = key.partition("/")
        _, _, name = rest.partition("/")  # skip the mailbox guid / shared id
        if namespace == "priv" and name == "devicetoken":
            if not user:
                log.warning("devicetoken lookup without user")
                return None
            try:
                return " ".join(self.tokens.get(user))
            except ValueError:
                return None
        if namespace == "shared" and name.startswith(SERVER_ENTRY):
            answer = self.server_entries.get(name[len(SERVER_ENTRY) :])
            if answer is not None:
                return answer()
        log.info("lookup of unknown metadata key %r", key[:120])
        return None

    def set(self, tx: Transaction, key: str, value: str) -> bool:
        namespace, _, rest = key.partition("/")
        _, _, name = rest.partition("/")
        if namespace != "priv" or not tx.user:
            log.warning("refusing metadata set of %r", key[:120])
            return False
        try:
            if name == "devicetoken":
                if value:
                    self.tokens.add(tx.user, value)
                return True
            if name == "messagenew":
                self.notifier.notify(tx.user, self.tokens.get(tx.user))
                return True
        except (OSError, ValueError) as exc:
            log.warning("metadata set of %r for %s failed: %s", name, tx.user, exc)
            return False
        log.warning("refusing metadata set of %r", key[:120])
        return False


def start(config: Config) -> MetadataDict | None:
    if not config.mailboxes_dir.is_dir():
        log.error("mailbox directory %s does not exist", config.mailboxes_dir)
        return None
    tokens = TokenStore(config)
    notifier = Notifier(config.mailboxes_dir / "pending_notifications", tokens)
    queued = notifier.load()
    log.info("re-queued %d pending notifications", queued)
    notifier.start()
    appversions = config.path.parent / APPVERSIONS_NAME if config.path else None
    turn_secret = os.environ.get(TURN_SECRET_ENV)
    if not turn_secret:
        log.warning("%s is not set: no TURN credentials will be handed out", TURN_SECRET_ENV)
    return MetadataDict(config, tokens, notifier, turn_secret=turn_secret, appversions=appversions)


def main(argv: list[str] | None = None) -> int:
    return run_service("metadata", argv, start)


if __name__ == "__main__":
    sys.exit(main())
