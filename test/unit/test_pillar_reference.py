"""docs/pillar.md is what scripts/pillar-reference makes of the settings table, key for key."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

from chatmail_config import SETTINGS

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "pillar-reference"


def generator():
    loader = importlib.machinery.SourceFileLoader("pillar_reference", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_doc_is_the_generated_reference():
    doc = (REPO / "docs" / "pillar.md").read_text()
    assert doc == generator().render(), "docs/pillar.md drifted from the settings table: run scripts/pillar-reference"


def test_every_setting_has_its_row_with_default_and_meaning():
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in generator().render().splitlines()
        if line.startswith("| `")
    }
    assert list(rows) == list(SETTINGS)
    assert "**required**" in rows["mail_domain"] and "`60`" in rows["max_user_send_per_minute"]
    assert "one of: acme, self_signed, external" in rows["tls_mode"]
