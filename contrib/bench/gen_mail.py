#!/usr/bin/env python3
"""gen_mail.py - larger multipart customer mail for the benchmark, generated deterministically

Usage: gen_mail.py N OUTDIR      writes OUTDIR/big-NNN.eml (N messages; same N, same bytes)

The dev corpus is short mail (a few KB). Real inbound support mail also brings HTML
alternatives, long quoted threads and attachments, and that is what these add:
  multipart/mixed
    multipart/alternative
      text/plain (8bit or quoted-printable): 1-8 KB of new text in one of the five scripts,
                  then an "On ... wrote:" line and 2-30 KB of quoted history ("> " lines)
      text/html  (base64): the same text in <p> paragraphs with a style block
    application/pdf (base64): 20-200 KB of pseudo-random bytes
    image/png (base64, one message in three): 10-80 KB
Messages come from 12 senders, so the tally sees repeat complainers and drafts get written.
"""
import base64
import os
import quopri
import random
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vocab import FILLER, WORDS  # noqa: E402

LANGS = ["en", "ro", "ar", "pa", "hi"]
SENDERS = ["customer%02d@example.%s" % (i, ("com", "net", "org", "pk", "in", "ir")[i % 6])
           for i in range(12)]


def sentence(rng, lang):
    n = rng.randint(6, 16)
    words = [rng.choice(WORDS[lang]) if rng.random() < 0.3 else rng.choice(FILLER[lang])
             for _ in range(n)]
    s = " ".join(words)
    return (s[0].upper() + s[1:] if lang in ("en", "ro") else s) + "."


def paragraphs(rng, lang, target_bytes):
    out, size = [], 0
    while size < target_bytes:
        p = " ".join(sentence(rng, lang) for _ in range(rng.randint(2, 6)))
        out.append(p)
        size += len(p.encode("utf-8")) + 2
    return out


def wrap(text, width=76):
    lines, line = [], ""
    for w in text.split(" "):
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = w if not line else line + " " + w
    if line:
        lines.append(line)
    return lines


def b64_lines(data):
    s = base64.b64encode(data).decode("ascii")
    return [s[i:i + 76] for i in range(0, len(s), 76)]


def message(rng, k):
    lang = LANGS[k % len(LANGS)]
    sender = SENDERS[rng.randrange(len(SENDERS))]
    boundary_mixed = "=_bench_mixed_%03d" % k
    boundary_alt = "=_bench_alt_%03d" % k
    new = paragraphs(rng, lang, rng.randint(1000, 8000))
    quoted = paragraphs(rng, lang, rng.randint(2000, 30000))
    plain_lines = []
    for p in new:
        plain_lines += wrap(p) + [""]
    plain_lines.append("On Mon, 12 Oct 2026 at 09:%02d, Support <support@shop.example> wrote:"
                       % (k % 60))
    for p in quoted:
        plain_lines += ["> " + line for line in wrap(p, 74)] + [">"]
    plain = "\n".join(plain_lines) + "\n"
    html = ("<html><head><style>p{font-family:sans-serif;margin:0 0 1em}"
            "blockquote{border-left:2px solid #ccc;padding-left:1em}</style></head><body>"
            + "".join("<p>%s</p>" % p for p in new)
            + "<blockquote>" + "".join("<p>%s</p>" % p for p in quoted) + "</blockquote>"
            + "</body></html>")
    subject = " ".join(rng.choice(WORDS[lang]) for _ in range(4))
    out = [
        "From: Customer %d <%s>" % (k, sender),
        "To: support@shop.example",
        "Subject: =?UTF-8?B?%s?=" % base64.b64encode(("Re: " + subject).encode()).decode(),
        "Date: Tue, 13 Oct 2026 %02d:%02d:00 +0000" % (k % 24, k % 60),
        "Message-ID: <bench-%03d@%s>" % (k, sender.split("@")[1]),
        "In-Reply-To: <reply-%03d@shop.example>" % k,
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="%s"' % boundary_mixed,
        "",
        "--" + boundary_mixed,
        'Content-Type: multipart/alternative; boundary="%s"' % boundary_alt,
        "",
        "--" + boundary_alt,
    ]
    if k % 2:
        out += ['Content-Type: text/plain; charset="utf-8"',
                "Content-Transfer-Encoding: quoted-printable", "",
                quopri.encodestring(plain.encode("utf-8")).decode("ascii").rstrip("\n")]
    else:
        out += ['Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: 8bit",
                "", plain.rstrip("\n")]
    out += ["--" + boundary_alt, 'Content-Type: text/html; charset="utf-8"',
            "Content-Transfer-Encoding: base64", ""] + b64_lines(html.encode("utf-8"))
    out += ["--" + boundary_alt + "--", ""]
    out += ["--" + boundary_mixed, 'Content-Type: application/pdf; name="invoice-%03d.pdf"' % k,
            'Content-Disposition: attachment; filename="invoice-%03d.pdf"' % k,
            "Content-Transfer-Encoding: base64", ""]
    out += b64_lines(b"%PDF-1.4\n" + rng.randbytes(rng.randint(20000, 200000)))
    if k % 3 == 0:
        out += ["--" + boundary_mixed, 'Content-Type: image/png; name="photo-%03d.png"' % k,
                'Content-Disposition: attachment; filename="photo-%03d.png"' % k,
                "Content-Transfer-Encoding: base64", ""]
        out += b64_lines(b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randint(10000, 80000)))
    out += ["--" + boundary_mixed + "--", ""]
    return "\n".join(out)


def main():
    if len(sys.argv) != 3 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        sys.stderr.write("usage: gen_mail.py N OUTDIR\n")
        return 2
    n, outdir = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(20261013)
    os.makedirs(outdir, exist_ok=True)
    for k in range(n):
        with open(os.path.join(outdir, "big-%03d.eml" % k), "w", encoding="utf-8") as f:
            f.write(message(rng, k))
    return 0


if __name__ == "__main__":
    sys.exit(main())
