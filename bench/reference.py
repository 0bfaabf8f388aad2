"""Reference figures the benchmarks print next to their own: the upstream relay, measured.

Where they come from: the upstream relay (chatmail/relay as of its 1.9
release, with Debian 12's Dovecot 2.3.19, a test CA, TURN and iroh left out)
was deployed by its own deployer into a systemd container on a 2-core
machine of the kind this project is developed on, and driven by the same
kind of clients as ``bench/`` uses, everything on one host (November 2026).
A second sitting (December 2026) ran it side by side with this formula's
relay, alternating, three rounds per figure; the client shared the 2 cores,
so its absolute figures are lower than the first sitting's: compare ratios
within one sitting, not figures across sittings.

Figures depend on what else the machine is doing: compare on a quiet
machine, and against the sitting whose setup matches the run.
"""

from __future__ import annotations

from typing import NamedTuple

FIRST = "upstream (its relay in a container, or its chatmaild services alone), 2-core machine, Nov 2026"
SIDE_BY_SIDE = "upstream vs. this formula, same machine and sitting, Dec 2026 (client on the same cores)"


class Figure(NamedTuple):
    what: str
    value: str
    sitting: str


# One table: benchmark name -> the figures to compare its output with.
REFERENCE: dict[str, tuple[Figure, ...]] = {
    "relay": (
        # upstream's latency ends when IMAP shows the message (polled), ours when the
        # file is in new/: close, but upstream's includes an IMAP round trip
        Figure("5 senders x 10 msgs to 5 recipients", "50/50 accepted, 89 msg/s, p50 57 ms, p99 109 ms", FIRST),
        Figure("20 senders x 10 msgs", "147-200/200 accepted, 90-122 msg/s, p50 310-500 ms, p99 640-900 ms", FIRST),
        Figure("40 senders x 10 msgs", "356-400/400 accepted, 103-109 msg/s, p50 440-490 ms, p99 740-975 ms", FIRST),
        Figure(
            "refused under load (20-40 senders)",
            "11-27 % as permanent 500 in half the runs "
            "(OpenDKIM crashed, the filter turned Postfix's 451 into a 5xx); nothing accepted was lost",
            FIRST,
        ),
        Figure("5 senders, delivered msg/s, p50", "upstream 40.5, 161 ms / this formula 54.3, 149 ms", SIDE_BY_SIDE),
        Figure("20 senders, delivered msg/s, p50", "upstream 47.1, 481 ms / this formula 74.6, 661 ms", SIDE_BY_SIDE),
        Figure("40 senders, delivered msg/s, p50", "upstream 50.7, 975 ms / this formula 66.1, 1237 ms", SIDE_BY_SIDE),
        Figure(
            "relay CPU per delivered message (20 senders)", "upstream 34-38 ms / this formula 25-27 ms", SIDE_BY_SIDE
        ),
    ),
    "fleet": (
        Figure(
            "Delta Chat, 2 s between messages, send -> peer event", "p50 0.58-0.64 s (one relay and across two)", FIRST
        ),
        Figure("submission -> IMAP IDLE notification", "0.52 s, nearly all Dovecot 2.3.19's fixed 0.5 s delay", FIRST),
    ),
    "filtermail": (
        Figure("outgoing filter, SMTP in + reinjection, mixed corpus, 1 connection", "181 msg/s", FIRST),
        Figure("the same, 8 connections", "212 msg/s", FIRST),
    ),
    "doveauth": (
        Figure("passdb+userdb lookups of existing accounts, 1 client", "3,500 lookups/s", FIRST),
        Figure("the same, 16 clients (thread per connection)", "1,300 lookups/s", FIRST),
    ),
    "storage": (
        Figure("10,000 mailboxes / 95,557 files, hot cache: expire dry run", "0.5 s, 21 MB RSS", FIRST),
        Figure("the same: fsreport", "0.5 s", FIRST),
        Figure(
            "same store, this formula's wall time relative to upstream", "expire 0.75x, fsreport 0.69x", SIDE_BY_SIDE
        ),
    ),
}


# The issue-14 table (bench/bench_table.py): upstream's figures, row key -> (upstream, this
# formula then).  One sitting: SIDE_BY_SIDE_TABLE says where and how they were measured.
SIDE_BY_SIDE_TABLE = (
    "Dec 2026, same 2-core machine, same client, three rounds each (median): upstream at the seed's "
    "commit, deployed by its own deployer with Debian 12's Dovecot, vs. this formula's demo relay "
    "re-applied without forward zones; N senders x 10 OpenPGP-shaped messages over 465; latency = "
    "the 250 at the client until the message is visible over IMAP"
)
TABLE: dict[str, tuple[str, str]] = {
    "delivered/s 5": ("40.5", "54.3"),
    "delivered/s 20": ("47.1", "74.6"),
    "delivered/s 40": ("50.7", "66.1"),
    "p50 5": ("161 ms", "149 ms"),
    "p50 20": ("481 ms", "661 ms"),
    "p50 40": ("975 ms", "1237 ms"),
    "cpu/msg 20": ("34-38 ms", "25-27 ms"),
    "deltachat p50": ("608 ms", "600 ms"),
    "idle pss": ("418 MB", "174 MB"),
    "re-apply": ("12.7 s (cmdeploy)", "4.95 s, 0 changes"),
}


def print_reference(bench: str) -> None:
    """Print the reference figures of one benchmark, each with the sitting it was measured in."""
    sittings: list[str] = []
    print(f"reference figures ({bench}):")
    for figure in REFERENCE[bench]:
        if figure.sitting not in sittings:
            sittings.append(figure.sitting)
        print(f"  [{sittings.index(figure.sitting) + 1}] {figure.what}: {figure.value}")
    for n, sitting in enumerate(sittings, 1):
        print(f"  [{n}] {sitting}")
