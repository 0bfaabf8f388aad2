"""pillar.example documents exactly the keys the formula knows, with their defaults."""

from pathlib import Path

import yaml

from chatmail_config import SETTINGS, validate

EXAMPLE = Path(__file__).resolve().parents[2] / "pillar.example"


def test_every_key_is_documented_and_nothing_else():
    text = EXAMPLE.read_text()
    listed = set(yaml.safe_load(text)["chatmail"])
    # iroh_relay and appversions are shown commented out: their absence has a meaning of its own
    assert "# iroh_relay:" in text and "# appversions:" in text
    assert listed | {"iroh_relay", "appversions"} == set(SETTINGS)


def test_example_values_are_the_defaults():
    example = yaml.safe_load(EXAMPLE.read_text())["chatmail"]
    settings = validate(example)
    for key, setting in SETTINGS.items():
        if key != "mail_domain":
            assert settings[key] == setting.default, key
