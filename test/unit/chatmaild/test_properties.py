"""Property-based tests (hypothesis) of the rules hostile input meets first.

Where the mutation fuzzer (test/support/fuzzing.py) starts from valid inputs and
breaks them byte by byte, these generate inputs from a description of what
is valid and state what must hold for every one: the address and password
rules, the chatmail.ini parser that both the services and the pillar
(`_pillar/chatmail_ini.py` through `chatmail_config.read_ini`) use, and the
MIME/OpenPGP classifier.

CI runs the seeded short slice (profile ``ci``: derandomized, so every run
tries the same examples, no example database).  The long run is
``scripts/bench fuzz --properties N``, which runs this module with N examples
per property (profile ``long``, random).
"""

from __future__ import annotations

import os
import string

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from chatmaild import accountrules
from chatmaild.config import MAX_LOCAL_PART, SettingsError, parse_ini, render_ini, validate
from chatmaild.mimecheck import FIXED_OUTSIDE_LINES, Mail, is_encrypted
from support import mailcorpus as mc
from support import mimereference as reference

settings.register_profile(
    "ci", derandomize=True, database=None, max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long",
    database=None,
    max_examples=int(os.environ.get("CHATMAIL_HYPOTHESIS_EXAMPLES", "10000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("CHATMAIL_HYPOTHESIS_PROFILE", "ci"))

DOMAIN = "chat.example.org"
ATOM_CHARS = string.ascii_lowercase + string.digits + "_-"
CONTROL = [chr(c) for c in range(32)] + ["\x7f"]

atoms = st.text(alphabet=ATOM_CHARS, min_size=1, max_size=12)
dot_atoms = st.lists(atoms, min_size=1, max_size=6).map(".".join).filter(lambda s: len(s) <= MAX_LOCAL_PART)
# anything a login may carry: every plane, surrogates, control bytes, the address syntax
hostile_text = st.text(
    alphabet=st.one_of(
        st.characters(codec=None, exclude_categories=()),
        st.sampled_from(list('@."\\ \t') + CONTROL + ["\u0430", "\u200b", "\ud800", "\xdf", "\u212a"]),
    ),
    max_size=80,
)


# -- address and password rules ------------------------------------------------------


@given(local=dot_atoms, data=st.data())
def test_every_dot_atom_within_the_bounds_is_an_account(local, data):
    lo = data.draw(st.integers(1, len(local)))
    hi = data.draw(st.integers(len(local), 64))
    addr = f"{local}@{DOMAIN}"
    assert accountrules.address_refusal(addr, DOMAIN, lo, hi) is None
    assert not accountrules.impossible_address(addr)


@given(local=dot_atoms, data=st.data())
def test_breaking_the_dot_atom_is_refused(local, data):
    """A leading, trailing or doubled dot, an upper-case letter or any other character makes it no address."""
    i = data.draw(st.integers(0, len(local)))
    broken = data.draw(
        st.sampled_from(
            [
                "." + local,
                local + ".",
                local[:i] + ".." + local[i:],
                local[:i] + data.draw(st.sampled_from(string.ascii_uppercase)) + local[i:],
                local[:i] + data.draw(st.characters(codec=None, exclude_characters=ATOM_CHARS + ".")) + local[i:],
            ]
        )
    )
    assume(broken != local)
    assert accountrules.address_refusal(f"{broken}@{DOMAIN}", DOMAIN, 1, 1000) is not None


@given(addr=hostile_text, domain=st.sampled_from([DOMAIN, "x.org", ""]), lo=st.integers(0, 70), hi=st.integers(0, 70))
@example(addr="x" * 65 + "@" + DOMAIN, domain=DOMAIN, lo=1, hi=70)
@example(addr="abc\x00def@" + DOMAIN, domain=DOMAIN, lo=1, hi=70)
def test_what_the_address_rule_accepts_is_a_lowercase_dot_atom_of_the_domain(addr, domain, lo, hi):
    if accountrules.address_refusal(addr, domain, lo, hi) is not None:
        return
    local, _, rest = addr.partition("@")
    assert rest == domain
    assert lo <= len(local) <= hi and len(local.encode()) <= MAX_LOCAL_PART
    assert local == local.lower() and set(local) <= set(ATOM_CHARS + ".")
    assert local[0] != "." and local[-1] != "." and ".." not in local
    assert not accountrules.impossible_address(addr)  # what may be created can be looked up


@given(addr=st.one_of(hostile_text, st.text(max_size=400)))
def test_an_impossible_address_is_never_creatable(addr):
    if accountrules.impossible_address(addr):
        for domain in (DOMAIN, addr.rpartition("@")[2]):
            assert accountrules.address_refusal(addr, domain, 0, 10_000) is not None


@given(password=hostile_text, minimum=st.integers(0, 30))
@example(password="abcdefghij\x00klmnop", minimum=9)
def test_the_password_rule_is_exactly_length_and_no_control_characters(password, minimum):
    accepted = accountrules.password_refusal(password, minimum) is None
    assert accepted == (len(password) >= minimum and not any(c in CONTROL for c in password))


# -- chatmail.ini / pillar parser --------------------------------------------------------

domains = st.lists(
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12), min_size=2, max_size=4
).map(".".join)
ini_lines = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cs",), exclude_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    max_size=40,
).map(str.strip)
valid_settings = st.fixed_dictionaries(
    {"mail_domain": domains},
    optional={
        "max_user_send_per_minute": st.integers(0, 10**6),
        "delete_mails_after": st.integers(0, 3650),
        "username_min_length": st.integers(1, 9),
        "username_max_length": st.integers(9, 64),
        "imap_rawlog": st.booleans(),
        "max_mailbox_size": st.builds(lambda n, unit: f"{n}{unit}", st.integers(1, 999), st.sampled_from("KMG")),
        # any lines, blank and comment-like ones too: validate refuses or normalizes what ini cannot hold
        "privacy_postal": st.lists(ini_lines, max_size=4).map("\n".join),
        "privacy_mail": ini_lines,
        "passthrough_recipients": st.lists(st.builds("{}@{}".format, atoms, domains), max_size=3),
        "filtermail_smtp_port": st.integers(1, 65535),
    },
)


@given(raw=valid_settings)
@example(raw={"mail_domain": "a.example.org", "privacy_postal": "0\n#"})  # found by the long run
@example(raw={"mail_domain": "a.example.org", "privacy_postal": "0\n\n1"})
def test_rendered_settings_parse_back_to_the_same_settings(raw):
    try:
        settings_ = validate(raw)
    except SettingsError:
        assume(False)  # e.g. a port clash between two generated ports
    assert validate(parse_ini(render_ini(settings_))) == settings_


@given(text=st.text(max_size=300))
@example(text="[params]\nmail_domain\n")
@example(text="mail_domain = x\n")
@example(text="[params]\n  continued\n")
def test_the_ini_parser_refuses_with_settings_error_only(text):
    """Any text: a dict of strings or SettingsError naming the line, never another exception."""
    try:
        params = parse_ini(text)
    except SettingsError as exc:
        assert "chatmail.ini" in str(exc)
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
    try:
        validate(params)
    except SettingsError as exc:
        assert str(exc)


# -- MIME/OpenPGP classifier -------------------------------------------------------------

addresses = st.builds("{}@{}".format, dot_atoms, domains)


@given(
    sender=addresses,
    recipients=st.lists(addresses, min_size=1, max_size=3),
    size=st.integers(50, 6000),
    seed=st.integers(0, 2**31),
)
def test_every_well_formed_encrypted_message_is_encrypted_both_ways(sender, recipients, size, seed):
    mail = Mail(mc.encrypted(sender, recipients, size=size, seed=seed))
    assert is_encrypted(mail, incoming=False) and is_encrypted(mail, incoming=True)
    assert mail.from_address == sender


@given(
    text=ini_lines.filter(lambda t: t and t.encode() not in FIXED_OUTSIDE_LINES),
    where=st.sampled_from(["preamble", "epilogue"]),
)
def test_any_text_outside_the_parts_makes_a_message_cleartext(text, where):
    data = mc.encrypted(seed=5)
    if where == "preamble":
        first = b"\r\n\r\n--b00000005_encrypted\r\n"
        assert first in data
        data = data.replace(first, b"\r\n\r\n" + text.encode() + b"\r\n" + first[2:], 1)
    else:
        data += text.encode() + b"\r\n"
    assert not is_encrypted(Mail(data), incoming=False)
    assert not is_encrypted(Mail(data), incoming=True)


@given(
    prefix=st.binary(max_size=200),
    middle=st.binary(max_size=200),
    suffix=st.binary(max_size=200),
    seed=st.integers(0, 50),
)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_the_classifier_agrees_with_a_full_email_parse_on_spliced_bytes(prefix, middle, suffix, seed):
    base = mc.encrypted(size=400, seed=seed)
    cut = len(base) * (seed + 1) // 52
    data = prefix + base[:cut] + middle + base[cut:] + suffix
    mail = Mail(data)
    for incoming in (False, True):
        assert is_encrypted(mail, incoming=incoming) == reference.reference_is_encrypted(data, incoming)


@pytest.mark.parametrize("profile", ["ci"])
def test_the_ci_profile_is_seeded(profile):
    """The slice CI runs is the same every time: hypothesis derandomizes it and keeps no database."""
    chosen = settings.get_profile(profile)
    assert chosen.derandomize and chosen.database is None
