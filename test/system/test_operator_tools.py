"""Operator tools on a deployed container relay: status, pre-flight, DNS check.

One relay for the module.  dns_check runs inside the relay exactly as an
operator would run it: the relay's unbound finds the ``test.`` zone's name
server (the lab's NSD on the bridge) and the module asks it directly; the
test then publishes the records ``dns_zone`` asked for and expects a clean
check.  AC-10 (DNS finds A) and AC-28 (status says more than five things);
AC-20 (the daily expire job leaves no overdue message).

``chatmail.expire`` runs on a store seeded inside the relay (INBOX and
``.DeltaChat`` messages, inactive and idle accounts, a directory that is not
an account) with a ``days`` offset, and must remove exactly the files the
rules of design.md §5.8 name.
"""

from __future__ import annotations

import json

import pytest

from harness import failed_states

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def ops(relay):
    container = relay("ops1")
    applied = container.apply(container.pillar)
    assert failed_states(applied) == []
    container.applied = applied
    return container


def units_the_formula_runs(applied) -> set[str]:
    """Units of the apply's ``service.running`` states (``<id>_|-<name>_|-running`` keys)."""
    units = set()
    for key in applied.states:
        module, _, name, function = key.split("_|-")
        if module == "service" and function == "running":
            units.add(name if "." in name else name + ".service")
    return units


def call(container, *args):
    result = container.salt_call(*args)
    assert result.retcode == 0, result.stderr
    return result["local"]


def test_status_on_a_deployed_relay(ops):
    status = call(ops, "chatmail.status")
    assert len(status) > 5  # AC-28
    bad = [row for row in status["services"] if not row["ok"]]
    assert bad == []
    assert [row for row in status["ports"] if not row["ok"]] == []
    assert status["certificate"]["state"] == "valid" and status["certificate"]["days_left"] > 300
    assert status["mail_queue"]["state"] == "ok"
    assert status["accounts"]["state"] == "ok" and status["version"]["state"] == "ok"
    assert status["ok"] is True


def test_status_lists_every_service_the_formula_runs(ops):
    expected = units_the_formula_runs(ops.applied)
    assert len(expected) > 10
    rows = {row["unit"]: row for row in call(ops, "chatmail.status")["services"]}
    assert expected - set(rows) == set(), "units the formula starts but status does not list"
    assert {unit: rows[unit]["state"] for unit in expected if rows[unit]["state"] != "active"} == {}
    # and status agrees with systemd on every row it expects running
    wanted = sorted(unit for unit, row in rows.items() if row["expected"] == "active")
    states = ops.run(["systemctl", "is-active", *wanted], check=False).stdout.split()
    assert dict(zip(wanted, states)) == {unit: "active" for unit in wanted}


def test_status_reports_a_stopped_service(ops):
    ops.run(["systemctl", "stop", "chatmail-dicts.service"])
    try:
        status = call(ops, "chatmail.status")
        (row,) = [row for row in status["services"] if row["unit"] == "chatmail-dicts.service"]
        assert row["state"] == "inactive" and row["ok"] is False
        assert status["ok"] is False
    finally:
        ops.run(["systemctl", "start", "chatmail-dicts.service"])
    assert call(ops, "chatmail.status")["ok"] is True


def test_preflight_passes_on_the_relays_own_listeners_and_names_a_foreign_one(ops):
    ok = call(ops, "state.sls", "chatmail.preflight")
    assert all(state["result"] is True and state["changes"] == {} for state in ok.values()), ok

    port = ops.pillar.get("filtermail_smtp_port", 10080)
    ops.run(["systemctl", "stop", "filtermail.service"])
    ops.run(
        [
            "systemd-run",
            "--unit=squatter",
            "/usr/bin/python3",
            "-c",
            f"import socket,time;s=socket.socket();s.bind(('127.0.0.1',{port}));s.listen();time.sleep(600)",
        ]
    )
    try:
        result = ops.salt_call("state.sls", "chatmail.preflight")
        (state,) = [state for key, state in result["local"].items() if "ports" in key]
        assert state["result"] is False
        assert f"port {port} (filtermail_smtp_port) is held by python3" in state["comment"]
        assert "unit squatter.service" in state["comment"]
    finally:
        ops.run(["systemctl", "stop", "squatter.service"], check=False)
        ops.run(["systemctl", "start", "filtermail.service"])


# sign with the relay's key as OpenDKIM would, verify as another relay's incoming filter does
DKIM_ROUND_TRIP = (
    "import dkim; from chatmaild.dkimcheck import DkimCheck; "
    "msg = b'From: a@{domain}\\r\\nTo: b@x.test\\r\\nSubject: x\\r\\n\\r\\nbody\\r\\n'; "
    "key = open('/etc/dkimkeys/opendkim.private', 'rb').read(); "
    "signed = dkim.sign(msg, b'opendkim', b'{domain}', key) + msg; "
    "reply = DkimCheck().refusal(signed, '{domain}'); "
    "print('verified' if reply is None else reply)"
)

SRV_PORTS = {"_submission._tcp": 587, "_submissions._tcp": 465, "_imap._tcp": 143, "_imaps._tcp": 993}


def test_dns_zone_matches_what_the_relay_uses(ops):
    domain = ops.pillar["mail_domain"]
    zone = call(ops, "chatmail.dns_zone")
    records = {(r["name"], r["type"]): r for r in zone["records"]}
    assert [r["value"] for r in zone["records"] if r["type"] == "A"] == [ops.address]
    assert records[(f"{domain}.", "MX")]["value"] == f"10 {domain}."
    assert records[(f"{domain}.", "MX")]["level"] == "required"

    # the DKIM record publishes the key opendkim signs with (its KeyTable's file)
    keytable = ops.read_file("/etc/dkimkeys/KeyTable").split()
    keyfile = keytable[1].split(":")[2]
    public = ops.run(f"openssl pkey -in {keyfile} -pubout -outform DER | base64 -w0").stdout.strip()
    dkim = records[(f"opendkim._domainkey.{domain}.", "TXT")]
    assert f"p={public};" in dkim["value"].replace('" "', "").strip('"')
    assert dkim["level"] == "required"

    # every SRV record names a port the relay really listens on, with the right program
    listening = ops.run(["ss", "-Hltn"]).stdout
    for label, port in SRV_PORTS.items():
        record = records[(f"{label}.{domain}.", "SRV")]
        assert record["value"] == f"0 1 {port} {domain}." and record["level"] == "recommended"
        assert f":{port} " in listening, port


def publish(test_dns, records):
    for record in records:
        test_dns.records.append((record["name"], record["type"], record["value"]))
    test_dns.reload()


def unpublish(test_dns, records):
    gone = {(r["name"], r["type"]) for r in records}
    test_dns.records = [r for r in test_dns.records if (r[0], r[1]) not in gone]
    test_dns.reload()


def test_dns_check_against_the_lab_dns(ops, test_dns):
    domain = ops.pillar["mail_domain"]
    zone = call(ops, "chatmail.dns_zone")
    lab_has = {(f"{domain}.", "A"), (f"{domain}.", "MX")}  # AC-10: the lab publishes A and MX
    first = call(ops, "chatmail.dns_check", "timeout=3")
    assert first["unreachable"] is False, first
    required = {(r["name"], r["type"]) for r in first["required"]}
    recommended = {(r["name"], r["type"]) for r in first["recommended"]}
    assert required == {(r["name"], r["type"]) for r in zone["records"] if r["level"] == "required"} - lab_has
    assert (f"www.{domain}.", "CNAME") in required and (f"opendkim._domainkey.{domain}.", "TXT") in required
    assert {(f"{label}.{domain}.", "SRV") for label in SRV_PORTS} <= recommended
    assert all(r["problem"] == "missing" for r in first["required"] + first["recommended"])
    assert first["ok"] is False

    # everything but one SRV record: required is clean, the SRV is a recommendation
    left_out = next(r for r in zone["records"] if r["name"] == f"_imaps._tcp.{domain}.")
    added = [r for r in zone["records"] if (r["name"], r["type"]) not in lab_has and r is not left_out]
    publish(test_dns, added)
    try:
        almost = call(ops, "chatmail.dns_check", "timeout=3")
        assert almost["required"] == [] and almost["ok"] is True, json.dumps(almost, indent=1)
        assert [(r["name"], r["type"], r["problem"]) for r in almost["recommended"]] == [
            (f"_imaps._tcp.{domain}.", "SRV", "missing")
        ]

        publish(test_dns, [left_out])
        added.append(left_out)
        clean = call(ops, "chatmail.dns_check", "timeout=3")
        assert clean["ok"] is True, json.dumps(clean, indent=1)
        assert clean["required"] == [] and clean["recommended"] == []

        # what a receiving chatmail relay does with the published key: a message signed with
        # the relay's key, verified by the incoming filter's check through the relay's resolver
        verify = ops.run(
            [
                "sh",
                "-c",
                'PYTHONPATH=/usr/local/lib/chatmaild /usr/bin/python3 -c "'
                + DKIM_ROUND_TRIP.format(domain=domain)
                + '"',
            ],
            check=False,
        )
        assert verify.returncode == 0 and verify.stdout.strip() == "verified", verify
    finally:
        unpublish(test_dns, added)


# -- expire on a seeded store ----------------------------------------------------------------

EXPIRE_DAYS = 10  # the clock moved 10 days ahead
# with delete_mails_after 20, delete_large_after 7, delete_inactive_users_after 90 and the
# clock 10 days ahead: messages older than 10 days go, large seen ones go at any age,
# accounts whose last login is older than 80 days go
SEED = r"""
import os, sys, time
root, now, DAY = sys.argv[1], time.time(), 86400
count = 0

def put(rel, size=100, age=0, name_age=None, dovecot_name=True, flags=":2,S"):
    global count
    count += 1
    path = os.path.join(root, rel)
    if dovecot_name:  # rel is the folder; the name is Dovecot's, with its own time
        stamp = int(now - (age if name_age is None else name_age) * DAY)
        path = os.path.join(path, f"{stamp}.M{count}P{count}.ops1,S={size},W={size}{flags}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"x" * size)
    os.utime(path, (now - age * DAY, now - age * DAY))
    print(os.path.relpath(path, root))

# label, where, size, mtime age, name age, dovecot name, flags
for label, rel, size, age, name_age, dovecot, flags in [
    ("gone:old", "keep@D/cur", 100, 15, None, True, ":2,S"),
    ("kept", "keep@D/cur", 100, 5, None, True, ":2,S"),
    ("gone:large-seen", "keep@D/cur", 250000, 5, None, True, ":2,S"),
    ("kept:large-unseen", "keep@D/new", 250000, 5, None, True, ""),
    ("gone:old-tmp", "keep@D/tmp", 100, 25, None, True, ""),
    ("gone:moved-today-received-long-ago", "keep@D/.DeltaChat/cur", 100, 15, 0, True, ":2,S"),
    # saved 15 days ago with a received date 10 days later (a future-dated APPEND): the older time counts
    ("gone:saved-long-ago-dated-later", "keep@D/.DeltaChat/cur", 100, 5, 15, True, ":2,S"),
    ("kept:large-unseen", "keep@D/.DeltaChat/new", 250000, 5, None, True, ""),
    ("gone:maildirsize", "keep@D/maildirsize", 20, 0, None, False, ""),
    ("kept", "keep@D/dovecot-uidlist", 20, 30, None, False, ""),
    ("kept", "keep@D/.DeltaChat/dovecot-uidlist", 20, 30, None, False, ""),
    ("kept", "keep@D/password", 20, 1, None, False, ""),
    ("gone:inactive", "gone@D/password", 20, 85, None, False, ""),
    ("gone:inactive", "gone@D/cur", 100, 1, None, True, ":2,S"),
    ("gone:inactive", "gone@D/.DeltaChat/cur", 100, 1, None, True, ":2,S"),
    ("kept", "idle@D/password", 20, 75, None, False, ""),
    ("kept", "idle@D/cur", 100, 5, None, True, ":2,S"),
    ("kept", "idle@D/maildirsize", 20, 0, None, False, ""),
    ("kept:not-an-account", "notanaccount/cur", 100, 40, None, True, ":2,S"),
]:
    print(label, end=" ")
    put(rel.replace("@D", "@" + sys.argv[2]), size, age, name_age, dovecot, flags)
"""


INDEX = ".chatmail-store-index"  # chatmaild.storeindex: the jobs' own file, rewritten by every run


def store_listing(ops, root: str) -> set[str]:
    out = ops.run(["find", root, "-mindepth", "1", "-printf", "%P\\n"]).stdout
    return set(out.split()) - {INDEX}


def test_expire_with_a_days_offset_removes_exactly_the_expired_files(ops):
    settings = call(ops, "chatmail.settings")
    keys = ("delete_mails_after", "delete_large_after", "delete_inactive_users_after")
    assert tuple(int(settings[key]) for key in keys) == (20, 7, 90)
    root = settings["mailboxes_dir"]
    domain = ops.pillar["mail_domain"]
    ops.run(["install", "-d", "-o", "vmail", "-g", "vmail", root])
    seeded = ops.run(["/usr/bin/python3", "-c", SEED, root, domain]).stdout.split("\n")
    ops.run(["chown", "-R", "vmail:vmail", root])
    labels = dict(line.split(" ", 1)[::-1] for line in seeded if line)
    gone_files = {path for path, label in labels.items() if label.startswith("gone")}
    gone_mailbox = f"gone@{domain}"
    expected = {p for p in gone_files if not p.startswith(gone_mailbox + "/")}
    before = store_listing(ops, root)
    expected |= {p for p in before if p == gone_mailbox or p.startswith(gone_mailbox + "/")}

    dry = call(ops, "chatmail.expire", f"days={EXPIRE_DAYS}")
    assert dry["dry_run"] is True and store_listing(ops, root) == before
    assert (dry["files_removed"], dry["mailboxes_removed"]) == (5, 1), dry

    done = call(ops, "chatmail.expire", f"days={EXPIRE_DAYS}", "remove=True")
    assert done["errors"] == 0 and done["dry_run"] is False
    assert (done["files_removed"], done["mailboxes_removed"], done["files_in_removed_mailboxes"]) == (5, 1, 2), done
    after = store_listing(ops, root)
    assert after <= before, "expire created files"
    assert before - after == expected
    # the store index the runs left is the mailbox owner's and no one else's
    owner = ops.run(["stat", "-c", "%U:%G %a", f"{root}/{INDEX}"]).stdout.split()
    assert owner == ["vmail:vmail", "600"]


# -- AC-20: the daily expire job on the relay ------------------------------------------------

AGED = r"""
import os, sys, time
root, domain, mails_after, large_after = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
now, DAY = time.time(), 86400
for n, (folder, size, days) in enumerate([
    (f"aged@{domain}/{sub}", size, days)
    for sub in ("cur", "new", "tmp", ".DeltaChat/cur", ".DeltaChat/new", ".DeltaChat/tmp")
    for size, days in ((100, mails_after + 2), (100, 1))
] + [(f"aged@{domain}/cur", 250000, large_after + 2), (f"aged@{domain}/new", 250000, large_after + 2)]):
    stamp = int(now - days * DAY)
    path = os.path.join(root, folder, f"{stamp}.M{n}P{n}.ops1,S={size},W={size}:2,S")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"x" * size)
    os.utime(path, (now - days * DAY, now - days * DAY))
with open(os.path.join(root, f"aged@{domain}", "password"), "w") as fh:
    fh.write("{SHA512-CRYPT}x")
"""

# AC-20 as the spec words it, run over a mailbox (the store also holds the seeded leftovers
# of the test above, e.g. a folder that is no account, which expire rightly leaves alone)
OVERDUE = r"""
import os, sys, time
root, mails_after, large_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
now, DAY = time.time(), 86400
for dirpath, dirs, files in os.walk(root):
    leaf = os.path.basename(dirpath)
    if leaf not in ("cur", "new", "tmp"):
        continue
    for name in files:
        st = os.stat(os.path.join(dirpath, name))
        age = (now - st.st_mtime) / DAY
        if age > mails_after + 1 or (leaf == "cur" and st.st_size > 200000 and age > large_after + 1):
            print(os.path.relpath(os.path.join(dirpath, name), root))
"""


def test_daily_expire_job_leaves_no_overdue_message(ops):
    """AC-20: after the timer's job runs, no message in cur/new/tmp (dot-folders too) is older than
    delete_mails_after + 1 days, and no large one in cur older than delete_large_after + 1."""
    settings = call(ops, "chatmail.settings")
    root, domain = settings["mailboxes_dir"], ops.pillar["mail_domain"]
    limits = [str(settings["delete_mails_after"]), str(settings["delete_large_after"])]
    ops.run(["install", "-d", "-o", "vmail", "-g", "vmail", root])
    ops.run(["/usr/bin/python3", "-c", AGED, root, domain, *limits])
    ops.run(["chown", "-R", "vmail:vmail", root])
    mailbox = f"{root}/aged@{domain}"
    overdue = ops.run(["/usr/bin/python3", "-c", OVERDUE, mailbox, *limits]).stdout.split()
    assert len(overdue) == 7, overdue  # six old ones and the large seen one: the check can fail

    assert "chatmail-expire.timer" in ops.run(["systemctl", "list-timers", "--all", "--no-legend"]).stdout
    ops.run(["systemctl", "start", "chatmail-expire.service"])  # oneshot: returns when the job is done
    assert ops.run(["systemctl", "show", "-P", "Result", "chatmail-expire.service"]).stdout.strip() == "success"
    assert ops.run(["/usr/bin/python3", "-c", OVERDUE, mailbox, *limits]).stdout.split() == []
    young = ops.run(["find", mailbox, "-type", "f", "-mtime", "-2", "-name", "*:2,S"]).stdout.split()
    assert len(young) == 6, young  # the day-old messages stay
