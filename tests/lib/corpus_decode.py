#!/usr/bin/env python3
"""corpus_decode.py - check amends' MIME decoding against the dev corpus sources.

    corpus_decode.py MSGDUMP CORPUS_DEV_DIR

Runs MSGDUMP (tests/tools/msgdump) over every message of the dev corpus (messages/*.eml and
the scenario messages) and compares its JSON with tools/sources.json the way the corpus's own
`build_corpus.py check` does:
  - Subject and the From display name / address decode exactly to the sources;
  - every text part, in document order, decodes to its source text: text/plain equal after
    trailing newlines are stripped, text/html equal after the corpus's whitespace and
    quote-marker normalisation (`loose`);
  - body_new (the customer's new text) equals `new_text` where the message quotes or forwards
    older text, and the whole text otherwise (whitespace-trimmed; `loose` for HTML-only mail);
    older text (quotes, forwards, message/rfc822) must be in body_quoted, not in body_new.
Python 3 standard library only. Exit 0 when every message passes, 1 otherwise.
"""

import json
import os
import re
import subprocess
import sys


def loose(text):
    """Same normalisation as build_corpus.py: quote markers at line starts removed, every run
    of white space one space."""
    text = "\n".join(re.sub(r"^(\s*>)+ ?", "", ln) for ln in text.split("\n"))
    return " ".join(text.split())


def spec_text_parts(m):
    """The text parts the corpus builder wrote, in document order (as build_corpus.py)."""
    def rec(spec, default_text):
        t = spec["type"]
        if t == "text":
            yield spec.get("subtype", "plain"), spec.get("text", default_text)
        elif t in ("alternative", "mixed", "related"):
            for sub in spec["parts"]:
                yield from rec(sub, default_text)
        elif t == "rfc822":
            inner = spec["message"]
            yield from rec(inner["body"], inner.get("text", ""))
        elif t == "report":
            yield from rec(spec["notice"], default_text)
            yield from rec(spec["returned"]["body"], spec["returned"].get("text", ""))
    return list(rec(m["body"], m.get("text", "")))


def has_plain(spec):
    if spec["type"] == "text":
        return spec.get("subtype", "plain") == "plain"
    return any(has_plain(p) for p in spec.get("parts", []))


def check(m, got, problems):
    mid = m["id"]
    h = m["headers"]

    def bad(msg):
        problems.append("%s: %s" % (mid, msg))

    if got["subject"] != h["subject"]:
        bad("subject %r != %r" % (got["subject"], h["subject"]))
    if h["from"][1] and (got["from_name"] != h["from"][0] or got["from_addr"] != h["from"][1]):
        bad("from %r != %r" % ((got["from_name"], got["from_addr"]), tuple(h["from"])))
    want = spec_text_parts(m)
    parts = got["parts"]
    if len(parts) != len(want):
        bad("%d text parts, expected %d" % (len(parts), len(want)))
        return
    for i, (p, (sub, wtext)) in enumerate(zip(parts, want)):
        if p["content_type"] != "text/" + sub:
            bad("part %d type %s != text/%s" % (i, p["content_type"], sub))
        if sub == "html":
            if loose(p["text"]) != loose(wtext):
                bad("part %d HTML text differs:\n  got  %r\n  want %r" % (i, loose(p["text"])[:300], loose(wtext)[:300]))
        elif p["text"].rstrip("\n") != wtext.rstrip("\n"):
            bad("part %d text differs:\n  got  %r\n  want %r" % (i, p["text"][:300], wtext[:300]))
    expect_new = m.get("new_text")
    older = expect_new is not None or m["body"]["type"] in ("report",) or \
        any(s.get("type") == "rfc822" for s in m["body"].get("parts", []))
    if expect_new is None:
        expect_new = m.get("text", "")
    if h["from"][1].lower().startswith("mailer-daemon@"):
        # a bounce: the notice is new text, the returned message (inline or attached) is not
        ok = bool(got["body_new"].strip()) and expect_new.startswith(got["body_new"].strip())
        older = True
    elif has_plain(m["body"]):
        ok = got["body_new"].strip() == expect_new.strip()
    else:
        ok = loose(got["body_new"]) == loose(expect_new)
    if not ok:
        bad("body_new differs:\n  got  %r\n  want %r" % (got["body_new"][:400], expect_new.strip()[:400]))
    if older and not got["body_quoted"].strip():
        bad("quoted/forwarded text expected in body_quoted, it is empty")


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: corpus_decode.py MSGDUMP CORPUS_DEV_DIR\n")
        return 2
    msgdump, corpus = argv[1], argv[2]
    with open(os.path.join(corpus, "tools", "sources.json"), encoding="utf-8") as f:
        src = json.load(f)
    items = [(m, os.path.join(corpus, "messages", m["id"] + ".eml")) for m in src["messages"]]
    for sc in src.get("scenarios", []):
        items += [(m, os.path.join(corpus, "scenarios", m["id"] + ".eml")) for m in sc["messages"]]
    out = subprocess.run([msgdump, "-n"] + [p for _, p in items], stdout=subprocess.PIPE, check=False)
    lines = out.stdout.decode("utf-8").splitlines()
    problems = []
    if out.returncode != 0:
        problems.append("msgdump exited with %d" % out.returncode)
    if len(lines) != len(items):
        problems.append("msgdump printed %d results for %d files" % (len(lines), len(items)))
    for (m, path), line in zip(items, lines):
        got = json.loads(line)
        if got["file"] != path:
            problems.append("%s: result out of order" % path)
            continue
        check(m, got, problems)
    for p in problems:
        print(p)
    print("corpus_decode: %d messages, %d problems" % (len(items), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
