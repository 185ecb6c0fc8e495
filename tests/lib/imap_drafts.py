#!/usr/bin/env python3
# imap_drafts.py - check one draft in an IMAP Drafts folder, as a mail client would see it
#
# Logs in over plain IMAP (loopback test servers only), waits (bounded) until the mailbox holds
# --count messages, then finds the one draft whose In-Reply-To is --irt and checks: the \Draft
# flag; raw header block ASCII only (non-ASCII only as RFC 2047) with no line over 998 octets;
# Subject, To display name and address, References, Content-Language, X-Amends-Draft-Kind as
# decoded by Python's email package; a quoted-printable UTF-8 text/plain body that carries the
# agent name the config gives for that language and the customer's text quoted with "> ".
# Exit 0 and one "ok" line when all hold; 1 and the first broken check otherwise.
# Used by tests/integration/postfix_dovecot.sh.
import argparse
import email
import email.header
import email.policy
import email.utils
import imaplib
import re
import sys
import time


def agent_of(conf_path, lang):
    conf = open(conf_path, encoding="utf-8").read()
    agents = dict(re.findall(r'\b([a-z]{2})\s*=\s*\{[^}]*?agent\s*=\s*"([^"]*)"', conf, re.S))
    if lang not in agents:
        sys.exit(f"test bug: no drafts.identities.{lang}.agent in {conf_path}")
    return agents[lang]


def count(imap, mailbox):
    typ, data = imap.select(mailbox, readonly=True)
    return int(data[0]) if typ == "OK" else -1   # -1: no such mailbox yet


def wait_count(a):
    deadline = time.monotonic() + a.wait
    while True:
        imap = imaplib.IMAP4("127.0.0.1", a.port, timeout=5)
        imap.login(a.user, a.password)
        n = count(imap, a.mailbox)
        if n >= a.count or time.monotonic() >= deadline:
            return imap, n
        imap.logout()
        time.sleep(0.2)


def to_of(raw):
    """(display name, address) of the one To mailbox: the structure parsed first, then the name
    decoded per RFC 2047 6.2 (white space between adjacent encoded words is dropped). Not
    email.policy.default: before CPython gh-128110 (3.11 here) its address parser keeps that
    white space, so a name folded inside a word would decode with a stray space."""
    h = email.message_from_bytes(raw, policy=email.policy.compat32)
    pairs = email.utils.getaddresses(h.get_all("To", []))
    check(len(pairs) == 1, f"To has {len(pairs)} addresses: {h.get_all('To')}")
    name, addr = pairs[0]
    return str(email.header.make_header(email.header.decode_header(name))), addr


def check(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}")


def main():
    p = argparse.ArgumentParser()
    for opt in ("port", "count"):
        p.add_argument("--" + opt, type=int, required=True)
    p.add_argument("--wait", type=float, default=0)
    for opt in ("user", "password", "conf", "irt", "kind", "subject", "to-name", "to-addr",
                "lang", "quote"):
        p.add_argument("--" + opt, required=True)
    p.add_argument("--mailbox", default="Drafts")
    p.add_argument("--ref", action="append", default=[])
    a = p.parse_args()

    imap, n = wait_count(a)
    check(n == a.count, f"{a.mailbox} holds {n} messages after {a.wait} s, want {a.count}")
    typ, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[])")
    check(typ == "OK", f"FETCH: {data}")
    found = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        m = email.message_from_bytes(item[1], policy=email.policy.default)
        if str(m.get("In-Reply-To", "")).strip() == a.irt:
            found.append((item[0], item[1], m))
    imap.logout()
    check(len(found) == 1, f"{len(found)} drafts with In-Reply-To {a.irt}, want 1")
    flags, raw, m = found[0]
    check(b"\\Draft" in flags, f"no \\Draft flag: {flags!r}")

    head = raw.split(b"\r\n\r\n", 1)[0]
    check(all(b < 0x80 for b in head), "8-bit bytes in the header block (not RFC 2047 encoded)")
    check(all(len(line) <= 998 for line in raw.split(b"\r\n")), "a line over 998 octets")

    subj = str(m["Subject"])
    check(subj == a.subject, f"Subject {subj!r}, want {a.subject!r}")
    to_name, to_addr = to_of(raw)
    check(to_name == a.to_name, f"To name {to_name!r}, want {a.to_name!r}")
    check(to_addr == a.to_addr, f"To address {to_addr!r}, want {a.to_addr!r}")
    refs = str(m.get("References", "")).split()
    for r in a.ref + [a.irt]:
        check(r in refs, f"References {refs} lacks {r}")
    check(str(m.get("Content-Language", "")).strip() == a.lang,
          f"Content-Language {m.get('Content-Language')!r}, want {a.lang}")
    check(str(m.get("X-Amends-Draft-Kind", "")).strip() == a.kind,
          f"X-Amends-Draft-Kind {m.get('X-Amends-Draft-Kind')!r}, want {a.kind}")
    check(m.get("Message-ID") and m.get("Date"), "no Message-ID or Date")

    check(m.get_content_type() == "text/plain", f"draft is {m.get_content_type()}")
    check(m.get_content_charset() == "utf-8", f"charset {m.get_content_charset()}")
    cte = str(m.get("Content-Transfer-Encoding", "")).lower()
    check(cte == "quoted-printable", f"Content-Transfer-Encoding {cte!r}")
    body = m.get_content()
    agent = agent_of(a.conf, a.lang)
    check(agent in body, f"agent {agent!r} ({a.lang}) not in the body")
    quoted = [ln for ln in body.splitlines() if ln.startswith(">") and a.quote in ln]
    check(quoted, f"customer text {a.quote!r} not quoted with '>' in the body")
    print(f"ok: {a.kind} draft {m['Message-ID']} in {a.mailbox}: \\Draft, Subject {subj!r}, "
          f"To {to_name} <{to_addr}>, {a.lang}, signed {agent}")


if __name__ == "__main__":
    main()
