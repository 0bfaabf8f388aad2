"""The formula's parameters table (chatmail/parameters/defaults.yaml) for tests that run without Salt.

The states get it through map.jinja and the modules through
``chatmail.params``; a unit test that calls the settings functions directly
(``chatmail_config.derived``) passes the same values from here.
"""

from __future__ import annotations

from pathlib import Path

import yaml

DEFAULTS = Path(__file__).resolve().parents[2] / "chatmail/parameters/defaults.yaml"
TABLE = yaml.safe_load(DEFAULTS.read_text())
TLS = TABLE["tls"]
