#!/usr/bin/env python3
"""check_drafts.py - the second, strict parser of the drafts fuzz_draft wrote (RELIABILITY R2.4)

Usage: check_drafts.py DIR
Every DIR/*.eml (written by tests/fuzz/replay_draft or fuzz_draft with FUZZ_DRAFT_DUMP=DIR) must
parse with Python's email.policy.strict (any defect raises) into exactly the template's header
set (Date From To Subject Message-ID MIME-Version Content-Type Content-Transfer-Encoding
Content-Language X-Amends-Draft-Kind once each, In-Reply-To and References at most once), with
one To address, ASCII-only header lines of at most 998 octets and CRLF line ends.
Exit 0 when all pass, 1 otherwise (each failure named), 77 when DIR holds no drafts.
"""
import email
import email.policy
import os
import sys

REQUIRED = ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type",
            "Content-Transfer-Encoding", "Content-Language", "X-Amends-Draft-Kind"]
OPTIONAL = ["In-Reply-To", "References"]


def check(data):
    """Return the reason data fails, or None."""
    head = data.split(b"\r\n\r\n", 1)[0]
    for line in data.split(b"\r\n"):
        if len(line) > 998:
            return "a line of %d octets" % len(line)
        if b"\n" in line or b"\r" in line:
            return "a bare CR or LF"
    if any(b > 0x7E or (b < 0x20 and b not in (0x09, 0x0D, 0x0A)) for b in head):
        return "a non-ASCII or control byte in the header"
    try:
        msg = email.message_from_bytes(data, policy=email.policy.strict)
        names = [k for k in msg.keys()]
        to = msg["To"]
        addresses = to.addresses if to is not None else ()
    except Exception as e:  # strict: every defect raises
        return "strict parser: %s: %s" % (type(e).__name__, e)
    for n in names:
        if n not in REQUIRED + OPTIONAL:
            return "a header outside the template's set: %r" % n
        if names.count(n) > 1:
            return "header %s appears %d times" % (n, names.count(n))
    for n in REQUIRED:
        if n not in names:
            return "header %s missing" % n
    if len(addresses) != 1:
        return "To holds %d addresses" % len(addresses)
    return None


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    d = sys.argv[1]
    files = sorted(f for f in os.listdir(d) if f.endswith(".eml")) if os.path.isdir(d) else []
    if not files:
        print("check_drafts: no drafts in %s" % d)
        return 77
    bad = 0
    for f in files:
        with open(os.path.join(d, f), "rb") as fp:
            why = check(fp.read())
        if why:
            bad += 1
            print("FAIL: %s: %s" % (f, why))
    print("check_drafts: %d drafts, %d failed the strict parser" % (len(files), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
