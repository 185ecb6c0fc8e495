#!/usr/bin/env python3
"""corpus_texts.py - write (file, lang, text) rows from a corpus' tools/sources.json as TSV.

Usage: corpus_texts.py SOURCES_JSON OUT_TSV

The text is the customer's new text (`new_text`) when the message quotes or forwards older text,
else `text`: what language detection must judge. Backslash, tab, CR and newline in the text are
written as \\\\, \\t, \\r and \\n so each message is one line. Python 3 standard library only.
"""
import json
import sys


def escape(s):
    return (s.replace("\\", "\\\\").replace("\t", "\\t")
             .replace("\r", "\\r").replace("\n", "\\n"))


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: corpus_texts.py SOURCES_JSON OUT_TSV\n")
        return 2
    with open(argv[1], encoding="utf-8") as f:
        src = json.load(f)
    rows = []
    for m in src["messages"]:
        text = m.get("new_text") or m.get("text") or ""
        rows.append("%s.eml\t%s\t%s\n" % (m["id"], m["lang"], escape(text)))
    tmp = argv[2] + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.writelines(rows)
    import os
    os.replace(tmp, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
