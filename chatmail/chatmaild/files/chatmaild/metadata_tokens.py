"""Push device tokens per account, in MB/<addr>/metadata.json.

File format (shared with upstream relays, so a migrated mailbox keeps its
tokens): ``{"devicetoken": {"<token>": <unix ts>, ...}}``.  A token is
refreshed each time the client sets it; one not refreshed for 90 days is
dropped, as is one stamped in the future (clock skew beyond a minute).

Writes lock ``metadata.json.lock`` and replace the file atomically; reads
take no lock.  Older relays stored a plain list; it is read as tokens
stamped "now" and rewritten as a dict (upstream returned nothing for it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from .config import Config
from .dictproxy_fs import locked, write_atomic

log = logging.getLogger(__name__)

MAX_AGE = 90 * 86400
MAX_FUTURE = 60


class TokenStore:
    def __init__(self, config: Config, clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock

    def _path(self, addr: str) -> Path:
        return self.config.get_user_dir(addr) / "metadata.json"

    def _read(self, path: Path) -> dict:
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (ValueError, OSError) as exc:
            log.error("corrupt token store %s: %s", path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def _tokens(self, data: dict, now: float) -> tuple[dict[str, int], bool]:
        """Valid tokens and whether the stored form needs rewriting."""
        raw = data.get("devicetoken", {})
        if isinstance(raw, list):  # legacy form
            return {str(t): int(now) for t in raw}, True
        if not isinstance(raw, dict):
            return {}, True
        valid = {}
        for token, stamp in raw.items():
            if isinstance(stamp, (int, float)) and now - MAX_AGE < stamp < now + MAX_FUTURE:
                valid[token] = int(stamp)
        return valid, len(valid) != len(raw)

    def get(self, addr: str) -> list[str]:
        """Valid tokens of ``addr`` in insertion order."""
        path = self._path(addr)
        tokens, stale = self._tokens(self._read(path), self.clock())
        if stale and path.exists():
            self._modify(addr, lambda t: None)
        return list(tokens)

    def add(self, addr: str, token: str) -> None:
        def refresh(tokens: dict[str, int]) -> None:
            tokens.pop(token, None)  # re-setting moves it to the end
            tokens[token] = int(self.clock())

        self._modify(addr, refresh)

    def remove(self, addr: str, token: str) -> None:
        self._modify(addr, lambda tokens: tokens.pop(token, None))

    def _modify(self, addr: str, change: Callable[[dict[str, int]], object]) -> None:
        path = self._path(addr)
        if not path.parent.is_dir():
            raise FileNotFoundError(f"no mailbox for {addr}")
        with locked(path.with_name("metadata.json.lock")):
            data = self._read(path)
            tokens, _ = self._tokens(data, self.clock())
            change(tokens)
            data["devicetoken"] = tokens
            write_atomic(path, json.dumps(data))
