#!/usr/bin/env python3
"""check_corpus.py - `amendsctl check --json` shows the right text and verdict for the dev corpus.

    check_corpus.py AMENDSCTL CONF CORPUS_DEV_DIR

Runs `AMENDSCTL -c CONF check --json` over every dev-corpus message (messages/*.eml, then the
scenario messages) and checks each JSON Lines document (format: the header of src/ctl_check.c)
against tools/sources.json, labels.tsv and the scenarios' expect.tsv:
  - subject, From display name and address, every decoded text part (text), and the customer's
    new text (new_text of the parts, joined) equal the source text: the comparison is
    corpus_decode.check(), imported, so `amendsctl check` is held to exactly what msgdump is;
  - lang equals the label (labels.tsv for messages/, sources.json for scenario messages);
  - the categories equal the labels (labels.tsv / expect.tsv; `none` = no category);
  - X-Amends-Status, the first header it would add, says the same categories and lang;
  - no rule phase was cut short (deadline, PCRE2 limits) and no message limit was hit: any of
    these would make the verdict depend on the host, so each is reported.
Python 3 standard library only. Exit 0 when every message passes, 1 otherwise.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus_decode  # noqa: E402  (the shared comparison: same checks as msgdump's test)


def read_tsv(path):
    """Rows of a TSV with a header line, as dicts."""
    with open(path, encoding="utf-8") as f:
        rows = [ln.rstrip("\n").split("\t") for ln in f if ln.strip()]
    head = rows[0]
    return [dict(zip(head, r)) for r in rows[1:]]


def corpus_items(corpus):
    """(source message, path, lang, categories) for every message, in a fixed order."""
    with open(os.path.join(corpus, "tools", "sources.json"), encoding="utf-8") as f:
        src = json.load(f)
    labels = {r["file"]: r for r in read_tsv(os.path.join(corpus, "labels.tsv"))}
    items = []
    for m in src["messages"]:
        lab = labels[m["id"] + ".eml"]
        items.append((m, os.path.join(corpus, "messages", m["id"] + ".eml"), lab["lang"],
                      lab["categories"]))
    for sc in src.get("scenarios", []):
        for m in sc["messages"]:
            scen, num = m["id"].split("/")
            d = os.path.join(corpus, "scenarios", scen)
            exp = {r["file"]: r for r in read_tsv(os.path.join(d, "expect.tsv"))}
            items.append((m, os.path.join(d, num + ".eml"), m["lang"],
                          exp[num + ".eml"]["categories"]))
    return items


def as_msgdump(doc):
    """The fields corpus_decode.check() reads, from one `amendsctl check --json` document.

    body_new / body_quoted are what message.c joins for the rules: the new (quoted) text of
    every part that counts, joined by "\\n". A part that does not count is the HTML alternative
    of a text/plain part ("shadowed": the same text twice). ctl_check does not print that flag
    (yet); when it is missing, an HTML part outside message/rfc822 is taken as shadowed when the
    message has a text/plain part outside message/rfc822 - true of every corpus message."""
    parts = doc.get("parts", [])
    has_plain = any(p["type"] == "text/plain" and not p["rfc822"] for p in parts)

    def shadowed(p):
        if "shadowed" in p:
            return p["shadowed"]
        return p["html"] and not p["rfc822"] and has_plain

    counted = [p for p in parts if not shadowed(p)]
    return {
        "subject": doc.get("subject", ""),
        "from_name": doc.get("from", {}).get("name", ""),
        "from_addr": doc.get("from", {}).get("addr", ""),
        "parts": [{"content_type": p["type"], "text": p["text"]} for p in parts],
        "body_new": "\n".join(p["new_text"] for p in counted if p["new_text"]),
        "body_quoted": "\n".join(p["quoted_text"] for p in counted if p["quoted_text"]),
    }


def expected_status(cats, lang):
    if cats == "none":
        return "No; lang=%s" % lang
    return "Yes; categories=%s; lang=%s;" % (cats, lang)


def check_verdict(m, doc, lang, cats, problems):
    def bad(msg):
        problems.append("%s: %s" % (m["id"], msg))

    got_cats = ",".join(doc.get("categories", [])) or "none"
    if doc.get("lang") != lang:
        bad("lang %r, label %r" % (doc.get("lang"), lang))
    if got_cats != cats:
        hits = ", ".join("%s(%s:%r)" % (h["rule"], h["target"], h["match"]) for h in doc.get("hits", []))
        bad("categories %r, label %r; hits: %s" % (got_cats, cats, hits or "none"))
    status = [h["value"] for h in doc.get("headers", []) if h["name"] == "X-Amends-Status"]
    want = expected_status(got_cats, doc.get("lang"))
    if len(status) != 1 or not (status[0] == want or status[0].startswith(want)):
        bad("X-Amends-Status %r does not say %r" % (status, want))
    if doc.get("deadline_hit") or doc.get("rules_skipped"):
        bad("rule deadline hit: %s rule(s) not run" % doc.get("rules_skipped"))
    if doc.get("rules_limited"):
        bad("rules stopped by a PCRE2 limit: %s" % ", ".join(doc["rules_limited"]))
    if doc.get("limits"):
        bad("message limits hit: %s" % ",".join(doc["limits"]))


def main(argv):
    if len(argv) != 4:
        sys.stderr.write("usage: check_corpus.py AMENDSCTL CONF CORPUS_DEV_DIR\n")
        return 2
    ctl, conf, corpus = argv[1:]
    items = corpus_items(corpus)
    out = subprocess.run([ctl, "-c", conf, "check", "--json"] + [p for _, p, _, _ in items],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    lines = out.stdout.decode("utf-8").splitlines()
    problems = []
    if out.returncode != 0:
        problems.append("amendsctl check exited with %d: %s" %
                        (out.returncode, out.stderr.decode("utf-8", "replace")[:2000]))
    if len(lines) != len(items):
        problems.append("amendsctl check printed %d documents for %d files" % (len(lines), len(items)))
    for (m, path, lang, cats), line in zip(items, lines):
        doc = json.loads(line)
        if doc.get("file") != path:
            problems.append("%s: result out of order (got %s)" % (path, doc.get("file")))
            continue
        corpus_decode.check(m, as_msgdump(doc), problems)
        check_verdict(m, doc, lang, cats, problems)
    for p in problems:
        print(p)
    print("check_corpus: %d messages, %d problems" % (len(items), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
