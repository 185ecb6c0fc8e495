#!/usr/bin/env python3
"""make_nasties.py - generate the hostile seed inputs of the fuzz targets at run time

Usage: make_nasties.py OUTDIR [--shared CORPUS_DIR] [--small]

Writes OUTDIR/<target>/<name> for the targets mime, milter, draft, normalize, rules, config,
callbacks and redis:
the hand-made nasties of RELIABILITY.md section 8.3 (deep nesting, 10,000 and 50,000 parts,
1 MiB header lines, 500,000 header lines, NULs, bare CR/LF, invalid UTF-8 and UTF-16 surrogates,
broken base64/QP, base64 bombs, RFC 2047 words with unknown charsets and malformed ones, HTML with
unterminated tags and 1e6 nested elements, 1 MB of ':' in From, a 1 MB boundary, duplicate
boundary= and Content-Type, 100,000 RFC 2231 params), the draft header-injection matrix (R8.3),
and hostile rule and config files. With --shared, every message under CORPUS_DIR/{dev,public}
is added as a seed too (nothing is copied into the source tree).

Each target reads its input its own way, so seeds get that target's prefix:
  mime: the message; milter: 2 bytes (mode raw) + the message; draft: 2 bytes (mode parse) +
  the message, or a raw-mode field list; normalize: 1 flag byte + text; callbacks: a program of
  milter callbacks (fuzz_callbacks.c; each message of up to 256 KiB as one session, plus
  interleaved, out-of-order, capped and flooded sessions); redis: 1 byte + RESP replies
  (fuzz_redis.c).
--small leaves out the inputs over 2 MiB (make check under valgrind).
The output is deterministic: the same files every run.
"""
import argparse
import base64
import hashlib
import os
import sys

MiB = 1024 * 1024


def hdr(extra=b"", ctype=b"text/plain; charset=utf-8", cte=None):
    h = (b"From: Customer <customer@example.com>\r\n"
         b"To: support@shop.example\r\n"
         b"Subject: my order\r\n"
         b"Message-ID: <nasty@example.com>\r\n"
         b"Date: Tue, 05 Mar 2024 10:15:00 +0500\r\n"
         b"MIME-Version: 1.0\r\n")
    h += extra
    if ctype is not None:
        h += b"Content-Type: " + ctype + b"\r\n"
    if cte:
        h += b"Content-Transfer-Encoding: " + cte + b"\r\n"
    return h + b"\r\n"


BODY = b"My parcel never arrived and I want a refund.\r\n"


def multipart_chain(levels):
    """levels of nested multipart/mixed, each with its own boundary."""
    out = []
    for i in range(levels):
        out.append(b"--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n" % (i, i + 1))
    out.append(b"--b%d\r\nContent-Type: text/plain\r\n\r\n" % levels + BODY)
    for i in range(levels, -1, -1):
        out.append(b"--b%d--\r\n" % i)
    return hdr(ctype=b'multipart/mixed; boundary="b0"') + b"".join(out)


def rfc822_chain(levels):
    inner = b"Content-Type: message/rfc822\r\n\r\n"
    return hdr(ctype=b"message/rfc822") + inner * levels + b"Content-Type: text/plain\r\n\r\n" + BODY


def many_parts(n, empty=False):
    part = b"--p\r\n\r\n" if empty else b"--p\r\nContent-Type: text/plain\r\n\r\ncancel my account\r\n"
    return hdr(ctype=b'multipart/mixed; boundary="p"') + part * n + b"--p--\r\n"


def messages(small):
    m = {}
    m["deep-multipart-100000"] = multipart_chain(100000)
    m["deep-multipart-65"] = multipart_chain(65)
    m["deep-rfc822-100000"] = rfc822_chain(100000)
    m["deep-rfc822-65"] = rfc822_chain(65)
    m["parts-10000"] = many_parts(10000)
    m["parts-50000-empty"] = many_parts(50000, empty=True)
    m["parts-1001"] = many_parts(1001)
    m["header-line-1MiB"] = hdr(b"X-Long: " + b"a" * MiB + b"\r\n") + BODY
    m["subject-1MiB"] = hdr(b"Subject: " + b"refund " * (MiB // 7) + b"\r\n") + BODY
    m["header-folded-1MiB"] = hdr(b"X-Folded: x" + b"\r\n y" * (MiB // 4) + b"\r\n") + BODY
    m["headers-500000"] = hdr(b"X-H: v\r\n" * 500000) + BODY
    m["headers-1001"] = hdr(b"X-H: v\r\n" * 1001) + BODY
    m["nul-bytes"] = hdr(b"X-Nul: a\x00b\r\nSubject: re\x00fund\r\n") + b"I want\x00 a refund\x00\r\n" * 10
    m["nul-only"] = b"\x00" * 4096
    m["bare-cr"] = hdr().replace(b"\r\n", b"\r") + b"line one\rline two\r" * 100
    m["bare-lf"] = hdr().replace(b"\r\n", b"\n") + b"line one\nline two\n" * 100
    m["mixed-eol"] = b"Subject: a\rFrom: b@c\n\r\nbody\r\r\n\n\rx"
    m["no-body"] = b"Subject: x\r\nFrom: a@b"
    m["empty"] = b""
    m["invalid-utf8"] = hdr(b"Subject: \xff\xfe\xc0\xaf refund \xed\xa0\x80\r\n", ctype=b"text/plain; charset=utf-8") + \
        b"\xc3\x28 \xa0\xa1 \xe2\x28\xa1 \xf0\x28\x8c\xbc \xf8\xa1\xa1\xa1\xa1 \xed\xa0\x80\xed\xb0\x80\r\n" * 50
    m["utf16-surrogates"] = hdr(ctype=b"text/plain; charset=utf-16le") + \
        b"\x00\xd8\x41\x00\x00\xdc\x00\xdc\x00\xd8" * 200 + b"\x00\xd8"
    m["utf16be-odd"] = hdr(ctype=b"text/plain; charset=utf-16be") + b"\xd8\x00\x00" * 333
    m["utf16-bom-only"] = hdr(ctype=b"text/plain; charset=utf-16") + b"\xff\xfe"
    m["utf7"] = hdr(ctype=b"text/plain; charset=utf-7") + b"+AGEAYgBj- +ZeVnLIqe- +/v8-" * 50
    m["base64-broken"] = hdr(cte=b"base64") + b"SGVsbG8=gd29y!!bGQ=\r\n====\r\nA\r\nQUJD\x00RA==\r\n" * 50
    m["base64-10MB-one-line"] = hdr(cte=b"base64") + base64.b64encode(b"a" * (10 * MiB * 3 // 4))
    m["base64-bomb-5MB-A"] = hdr(cte=b"base64") + b"A" * (5 * MiB)
    m["qp-broken"] = hdr(cte=b"quoted-printable") + b"=\r\n=4=ZZ=\r=\n=C3=A9=C3= =E2=80\r\nref=\r\nund=" * 100 + b"="
    m["qp-soft-breaks"] = hdr(cte=b"quoted-printable") + b"=\r\n" * 100000
    m["cte-unknown"] = hdr(cte=b"x-uuencode") + b"begin 644 x\r\n#86)C\r\nend\r\n"
    words = [b"=?x-unknown?Q?refund?=", b"=?ISO-2022-JP?B?GyRCJDMbKEI=?=", b"=?utf-8?X?abc?=",
             b"=??", b"=?x?Q?=", b"=?utf-8?Q?unterminated", b"=?utf-8?B?////?=", b"=?utf-8*en?Q?a?=",
             b"=?UTF-8?Q?a=0D=0ABcc:_x@evil?=", b"=?UTF-8?B?YQ0KQmNjOiB4QGV2aWw=?=", b"=?utf-8?B?=?=",
             b"=?utf-16?B?2ADcAA==?=", b"=?utf-8?Q?=ED=A0=80?=", b"=?" + b"x" * 5000 + b"?Q?a?="]
    m["rfc2047-unknown-charsets"] = hdr(b"Subject: " + b" ".join(words) + b"\r\n"
                                        b"From: " + b" ".join(words) + b" <a@example.com>\r\n") + BODY
    m["rfc2047-10000-words"] = hdr(b"Subject: " + b"=?utf-8?B?YQ==?= " * 10000 + b"\r\n") + BODY
    charsets = [b"iso-2022-kr", b"x-unknown", b"utf-32", b"ucs-2", b"iso-2022-jp-3", b"ibm-1047",
                b"cp1255", b"x-mac-arabic", b"", b"../../etc/passwd", b"utf-8\x00x", b"a" * 1000]
    m["charset-zoo"] = hdr(ctype=b'multipart/mixed; boundary="c"') + b"".join(
        b"--c\r\nContent-Type: text/plain; charset=\"" + c + b"\"\r\n\r\n\x1b$)C\x0e!!\xff\xfe refund\r\n"
        for c in charsets) + b"--c--\r\n"
    m["html-unterminated"] = hdr(ctype=b"text/html") + b"<p>refund <a href='x <b <script>alert( <!-- <![CDATA[ <style>x"
    m["html-nested-1e6"] = hdr(ctype=b"text/html") + b"<div>" * 1000000 + b"refund"
    m["html-nested-mixed"] = hdr(ctype=b"text/html") + b"<table><tr><td><b><i><font>" * 100000
    m["html-entities"] = hdr(ctype=b"text/html") + b"&#0; &#xD800; &#x110000; &#99999999999; &amp &lt;script" * 1000
    m["from-1MB-colons"] = hdr(b"From: " + b":" * MiB + b"\r\n") + BODY
    m["from-1MB-angles"] = hdr(b"From: " + b"<" * (MiB // 2) + b"\"" * (MiB // 2) + b"\r\n") + BODY
    m["addresses-100000"] = hdr(b"To: " + b"a@b, " * 100000 + b"\r\n") + BODY
    big = b"B" * MiB
    m["boundary-1MB"] = hdr(ctype=b'multipart/mixed; boundary="' + big + b'"') + \
        b"--" + big + b"\r\nContent-Type: text/plain\r\n\r\nrefund\r\n--" + big + b"--\r\n"
    m["boundary-duplicate"] = hdr(b"Content-Type: multipart/alternative; boundary=x\r\n",
                                  ctype=b'multipart/mixed; boundary="y"; boundary="z"') + \
        b"--y\r\n\r\nyy\r\n--z\r\n\r\nzz\r\n--x\r\n\r\nxx\r\n--x--\r\n--y--\r\n--z--\r\n"
    m["boundary-gmime165"] = hdr(ctype=b'multipart/mixed; boundary="--"') + \
        b"----\r\n\r\na\r\n------\r\n\r\nb\r\n--------\r\n"
    m["boundary-prefix"] = hdr(ctype=b'multipart/mixed; boundary="a"') + \
        b"--a\r\nContent-Type: multipart/mixed; boundary=\"aa\"\r\n\r\n--aa\r\n\r\nx\r\n--a--\r\n--aa--\r\n"
    m["boundary-empty"] = hdr(ctype=b'multipart/mixed; boundary=""') + b"--\r\n\r\nx\r\n----\r\n"
    m["rfc2231-100000"] = hdr(ctype=b"text/plain; " + b"".join(b"title*%d*=us-ascii''a%%2%d; " % (i, i % 10)
                                                              for i in range(100000))) + BODY
    m["rfc2231-charset"] = hdr(ctype=b"text/plain; charset*=utf-8''%FF%FE%ED%A0%80; charset*0=x") + BODY
    m["content-type-garbage"] = hdr(ctype=b";;;=;\"\\\x00\xff/;a=\"unterminated") + BODY
    m["report-dsn"] = hdr(ctype=b'multipart/report; report-type=delivery-status; boundary="r"') + \
        b"--r\r\n\r\nundeliverable\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n" \
        b"--r\r\nContent-Type: message/rfc822\r\n\r\nSubject: refund now\r\n\r\nrefund\r\n--r--\r\n"
    m["forged-x-amends"] = hdr(b"X-Amends-Status: clean\r\nx-amends-draft: none\r\nX-AMENDS-RULES:\r\n a\r\n"
                               b"X-Amends-Status:\tfolded\r\n\tvalue\r\n") + BODY
    if small:
        m = {k: v for k, v in m.items() if len(v) <= 2 * MiB}
    return m


def injection_fields():
    """R8.3: raw-mode draft inputs (fields split at NUL, see fuzz_draft.c)."""
    subjects = [b"hi\r\nBcc: x@evil", b"hi\rBcc: x@evil", b"hi\nBcc: x@evil", b"a\x00b",
                b"=?UTF-8?Q?a=0D=0ABcc:_x?=", b"=?UTF-8?B?YQ0KQmNjOiB4?=", b"s" * 100000,
                b"\xff\xfe\xc3\x28", b"\xe2\x80\xaerefund\xe2\x80\xac", b"Re: Re: Fwd: AW: \t",
                "ناراض".encode() * 3000, b"\x1b[31m\x7f\x85\xc2\x85", b"\r\n\r\n\r\n", b" " * 5000,
                b"=?" * 1000, "\u2028\u2029".encode() * 100]
    names = [b'"Evil" <x@evil>, y@evil', b"a,b", b"<x@evil>", b"\\\"\\", b'"' * 300,
             b"Name\r\nBcc: x@evil", "\u202eKhan".encode(), b"n" * 10000, b"=?utf-8?Q?a=0A?="]
    addrs = [b"customer@example.com", b"a@b\r\nBcc: x@evil", b"x@evil, y@evil", b"<a@b>",
             b"a" * 300 + b"@example.com", b"\xff@example.com", b"@", b"a@b@c", b"\"a b\"@example.com"]
    ids = [b"abc@example.com", b"<abc@example.com>", b"a\r\nBcc: x@evil", b"<>", b"x" * 5000,
           b"a>b<c@d"]
    refs = [b" ".join(b"<id%d@example.com>" % i for i in range(500)), b"<a@b>\r\nBcc: x@evil",
            b"<" * 1000, b"<a@b><c@d>" * 100, b""]
    out = {}
    k = 0
    def add(subj, name, addr, mid, ref, body=b"text", hist=(b"old subject",)):
        nonlocal k
        fields = [subj, name, addr, mid, ref, b"<irt@example.com>", b"Tue, 05 Mar 2024 10:15:00 +0500",
                  body, b"> quoted\r\n"] + list(hist)
        for flags in (0x00, 0x08 * 1 | 0x02, 0x08 * 3 | 0x04):   # en apology, ur winback, fa partways
            out["inject-%03d" % k] = bytes([flags, k % 12]) + b"\x00".join(fields)
            k += 1
    for s in subjects:
        add(s, b"Ayesha Khan", addrs[0], ids[0], refs[4])
    for n in names:
        add(b"late", n, addrs[0], ids[0], refs[4])
    for a in addrs:
        add(b"late", b"A", a, ids[0], refs[4])
    for i in ids:
        add(b"late", b"A", addrs[0], i, refs[0])
    for r in refs:
        add(b"late", b"A", addrs[0], ids[0], r)
    add(b"x", b"y", addrs[0], ids[0], refs[4], body=b"\xe2\x80\xae" * 10000 + b"a\r" * 10000,
        hist=(subjects[0], subjects[6], subjects[8]))
    return out


def rules_nasties():
    r = {}
    base = b"rule R%d\ncategory complaint\nmatch /%s/\n"
    r["redos"] = base % (1, b"(a+)+$") + base % (2, b"(\\w+\\s?)*$") + base % (3, b"(a|a)*b") + \
        b"\n# " + (b"a" * 13 + b"!") * 500 + b"\n" + b"a" * 28 + b"!"
    r["nested-parens"] = base % (1, b"(" * 5000 + b"a" + b")" * 5000)
    r["nested-classes"] = base % (1, b"[[:alpha:][" * 1000 + b"]" * 2000)
    r["long-pattern"] = base % (1, b"a" * 5000)
    r["many-errors"] = b"bogus line\n" * 1000
    r["many-rules"] = b"".join(base % (i, b"word%d" % i) for i in range(5000))
    r["nul"] = base % (1, b"a\x00b") + b"\x00rule\x00"
    r["invalid-utf8"] = base % (1, b"\xff\xfe\xed\xa0\x80") + b"describe \xc3\x28\n"
    r["bom-crlf"] = b"\xef\xbb\xbf" + (base % (1, b"refund")).replace(b"\n", b"\r\n")
    r["long-line"] = b"# " + b"x" * MiB + b"\n" + base % (1, b"a")
    r["delimiters"] = b"".join(b"rule D%d\ncategory refund\nmatch %s\n" % (i, d)
                               for i, d in enumerate([b"(a)", b"[a]", b"{a}", b"<a>", b"|a|", b"#a#",
                                                      b"\\a\\", b"/a", b"/", b"//", b"/a/zz", b"(a", b")a("]))
    r["verbs"] = base % (1, b"(*LIMIT_MATCH=1)(*UTF)(*NO_JIT)(*CR)a") + base % (2, b"\\C\\G(?C1)(?{x})")
    r["unicode"] = ("rule U1\ncategory abuse\nmatch /ناراض\u200cی|ਗੁੱਸਾ|ज़रूर|（a）[ا-ی\u200c]/\n"
                    "describe فارسی\n").encode()
    r["keywords"] = b"rule A\nrule B\ncategory\ncategory nope\nscore 1e999\nscore -1001\nscore nan\n" \
        b"target header:\ntarget header:" + b"X" * 10000 + b"\ntarget bogus\nmatch\ndescribe\n" \
        b"rule " + b"N" * 200 + b"\nrule A\n"
    return r


def config_nasties():
    c = {}
    c["deep-groups"] = b"a = " + b"{ b = " * 100000 + b"1" + b"; }" * 100000 + b";"
    c["deep-lists"] = b"a = " + b"(" * 100000 + b")" * 100000 + b";"
    c["deep-arrays"] = b"a = " + b"[" * 100000 + b"]" * 100000 + b";"
    c["include"] = b'@include "/dev/zero"\n'
    c["long-string"] = b'state_dir = "' + b"x" * MiB + b'";'
    c["many-strings"] = b'state_dir = ' + b'"x" ' * 100000 + b';'
    c["escapes"] = b'state_dir = "\\x00\\xff\\q\\"\\\\' + b'\\' + b'";'
    c["nul"] = b'state_dir = "a";\x00milter = { x = 1; };'
    c["numbers"] = (b"limits = { mime_depth = 99999999999999999999; mime_parts = -1; header_bytes = 0x7fffffffffffffff;"
                    b" part_text_bytes = 1e308; header_count = 0L; };\nrules = { deadline_ms = -9223372036854775808; };")
    c["categories"] = b"categories = (" + b'{ name = "c"; threshold = 1.0; },' * 40 + b'{ name = ""; });'
    c["identities"] = b"drafts = { identities = (" + b'{ lang = "en"; from_addr = "@"; },' * 20 + b"); };"
    c["types"] = b"milter = 1; limits = \"x\"; rules = ( 1, 2 ); policy = [ 1 ]; drafts = { identities = 5; };"
    c["socket"] = b'milter = { socket = "inet:99999@"; socket_mode = "999"; };'
    c["invalid-utf8"] = b'state_dir = "\xff\xfe";\n# \xc3\x28\n'
    return c


def normalize_texts(msgs):
    t = {}
    t["mixed-scripts"] = ("ناراض\u200cی  ਗੁੱਸਾ ज़रूर क़\u093c ﻻ ﷺ ﷽ ＡＢＣ （a） "
                          "\u0640\u064b\u0670 ٤٥٦ ۴ ੪ \u2028\u2029\u0085\r\n\t\x0b\x0c"
                          "\u200b\u200d\u2066\u202e\ufeff\ufe0f ß ẞ İ ı ǅ ﬃ").encode()
    t["combining-long"] = b"a" + "\u0301".encode() * 100000
    t["invalid"] = b"\xff\xfe\xc0\xaf\xed\xa0\x80\xed\xbf\xbf\xf4\x90\x80\x80\xc3" * 1000
    t["pattern-syntax"] = ("\\Q（ا\\E[ي-ك\u200c]{2,}(?x) # ك\n(?<ن>ی)\\k<ن>\\p{Arabic}\\x{643}"
                           "[[:alpha:]ﻻ]\u200c+ﬃ?(?#ك)").encode()
    t["expansion"] = "ﷺ".encode() * 20000 + "\u0390".encode() * 20000
    t["nuls"] = b"\x00" * 1000 + b"a\x00b"
    out = {}
    for k, v in t.items():
        for flags in (0, 1, 2, 3):
            out["%s-%d" % (k, flags)] = bytes([flags]) + v
    for k, v in msgs.items():
        if len(v) <= 2 * MiB:
            out["msg-" + k] = b"\x01" + v
    return out


# ---- callbacks: programs for fuzz_callbacks.c (the encoding is in its header comment) -------
CB = dict(negotiate=0, connect=1, helo=2, envfrom=3, envrcpt=4, header=5, eoh=6, body=7, eom=8,
          abort=9, close=10, reload=11, faults=12, header_named=13, flood=14, subject=15)
# what Postfix offers: add/change headers; SKIP, NR_HDR, NR_BODY and the usual NO* steps
CB_OFFER_ACTIONS = 0x01 | 0x10
CB_OFFER_PROTOCOL = 0x1FF7FF


def cb_str(b):
    if len(b) < 255:
        return bytes([len(b)]) + b
    b = b[:65535]
    return b"\xff" + len(b).to_bytes(2, "little") + b


def cb_op(name, conn=0, *args):
    """one op on connection conn; bytes args are strings, ints are single bytes"""
    out = bytes([(conn << 4) | CB[name]])
    for a in args:
        out += cb_str(a) if isinstance(a, bytes) else bytes([a])
    return out


def cb_negotiate(conn=0, actions=CB_OFFER_ACTIONS, protocol=CB_OFFER_PROTOCOL):
    return cb_op("negotiate", conn, actions, protocol & 0xFF, (protocol >> 8) & 0xFF,
                 (protocol >> 16) & 0xFF)


def cb_body(chunk, conn=0):
    return bytes([(conn << 4) | CB["body"]]) + len(chunk).to_bytes(2, "little") + chunk


def cb_headers(msg):
    """the header fields of a raw message as (name, value) pairs, and the body"""
    for sep in (b"\r\n\r\n", b"\n\n"):
        if sep in msg:
            head, body = msg.split(sep, 1)
            break
    else:
        head, body = msg, b""
    fields = []
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1] += b"\n" + line
        elif b":" in line:
            n, v = line.split(b":", 1)
            fields.append([n, v.lstrip(b" ")])
    return fields, body


def cb_session(msg, conn=0, sender=b"<customer@example.com>"):
    """a message as libmilter delivers it: MAIL FROM, the headers, EOH, 64 KiB body chunks, EOM"""
    fields, body = cb_headers(msg)
    out = cb_op("envfrom", conn, sender) + cb_op("envrcpt", conn, b"<support@shop.example>")
    for n, v in fields:
        out += cb_op("header", conn, n[:254], v)
    out += cb_op("eoh", conn)
    for i in range(0, len(body), 65535):
        out += cb_body(body[i:i + 65535], conn)
    return out + cb_op("eom", conn)


def cb_connection(msgs, conn=0):
    out = cb_negotiate(conn) + cb_op("connect", conn, b"mx.example") + cb_op("helo", conn, b"mx")
    for m in msgs:
        out += cb_session(m, conn)
    return out + cb_op("close", conn)


def callbacks_programs(msgs):
    p = {}
    for name, data in msgs.items():
        if len(data) <= 256 * 1024:
            p["session-" + name] = cb_connection([data])
    forged = hdr(b"X-Amends-Status: clean\r\n") + BODY
    # two connections, their messages interleaved, a reload in the middle
    p["interleaved-reload"] = (cb_negotiate(0) + cb_negotiate(1) + cb_op("envfrom", 0, b"<a@x>") +
                               cb_op("envfrom", 1, b"<b@y>") + cb_op("header", 0, b"Subject", b"refund") +
                               cb_op("reload", 0, 2) + cb_op("header_named", 1, b"forged", 0) +
                               cb_op("eoh", 0) + cb_op("eoh", 1) + cb_op("reload", 0, 0) +
                               cb_op("eom", 1) + cb_body(b"I want a refund", 0) + cb_op("eom", 0) +
                               cb_op("envfrom", 0, b"<a@x>") + cb_op("reload", 0, 1) +
                               cb_op("envfrom", 0, b"<a@x>") + cb_op("abort", 0) + cb_op("close", 1))
    # every callback before MAIL FROM, twice, and after close
    p["out-of-order"] = b"".join(cb_op(k, 0) if k in ("eoh", "eom", "abort", "close") else b""
                                 for k in ("eom", "eoh", "abort", "close", "eom")) + \
        cb_op("header", 0, b"X-Amends-Status", b"x") + cb_body(b"body first") + \
        cb_op("envfrom", 0, b"") + cb_op("envfrom", 0, b"<>") + cb_body(b"no eoh") + \
        cb_op("header", 0, b"X-Amends-Rules", b"after body") + cb_op("eom", 0) + cb_op("eom", 0)
    # the 700-byte cap: headers past it still tracked, body past it SKIPped or NOREPLYed
    p["capped"] = cb_op("reload", 0, 2) + cb_negotiate(0) + cb_op("envfrom", 0, b"<c@x>") + \
        cb_op("header", 0, b"X-Long", b"a" * 900) + cb_op("header_named", 0, b"late", 1) + \
        cb_op("eoh", 0) + cb_body(b"refund " * 200) + cb_body(b"more") + cb_op("eom", 0)
    # 300 distinct forged names, then ours: ours must still be deleted
    p["flood-then-ours"] = cb_op("envfrom", 0, b"<f@x>") + cb_op("flood", 0, 150) + \
        b"".join(cb_op("header_named", 0, b"forged", i) for i in range(10)) + \
        cb_op("eoh", 0) + cb_op("eom", 0)
    # an MTA that refuses things: setpriv, header changes, no queue id
    p["faults"] = cb_op("faults", 0, 1) + cb_op("connect", 0, b"h") + cb_op("envfrom", 0, b"<a@b>") + \
        cb_op("faults", 0, 0) + cb_op("envfrom", 0, b"<a@b>") + cb_op("faults", 0, 14) + \
        cb_session(forged) + cb_op("faults", 0, 1) + cb_op("close", 0)
    # two Subjects: no subject tag; NR_HDR only
    p["two-subjects-nr-hdr"] = cb_negotiate(0, protocol=0x80) + cb_op("envfrom", 0, b"<s@x>") + \
        cb_op("subject", 0, b"refund please") + cb_op("subject", 0, b"cancel") + cb_op("eom", 0)
    p["three-connections"] = b"".join(cb_negotiate(c) for c in range(3)) + \
        b"".join(cb_session(forged, c) for c in (2, 0, 1)) + cb_op("close", 1)
    return p


# ---- redis: replies for fuzz_redis.c --------------------------------------------------------
def resp(v):
    """a Python value as RESP: bytes -> bulk, int -> integer, None -> nil, list -> array,
    ("+", s) status, ("-", s) error"""
    if v is None:
        return b"$-1\r\n"
    if isinstance(v, int):
        return b":%d\r\n" % v
    if isinstance(v, bytes):
        return b"$%d\r\n%s\r\n" % (len(v), v)
    if isinstance(v, tuple):
        return v[0].encode() + v[1] + b"\r\n"
    return b"*%d\r\n" % len(v) + b"".join(resp(e) for e in v)


def incident(ts, mid=b"<m@x>", subj=b"refund", cats=b"refund", rules=b"EN_REFUND_01"):
    return b"\x1f".join([ts, mid, subj, cats, rules])


def redis_replies():
    r = {}
    r["huge-array"] = b"\x00*2147483647\r\n"
    r["array-limit"] = b"\x00*100001\r\n"
    r["nested-7"] = b"\x00" + b"*1\r\n" * 7 + b":1\r\n"
    r["nested-8"] = b"\x00" + b"*1\r\n" * 8 + b":1\r\n"
    r["bulk-huge-length"] = b"\x00$3000000000\r\nabc"
    r["bulk-negative"] = b"\x00$-5\r\n"
    r["integer-overflow"] = b"\x00:99999999999999999999\r\n"
    r["bulk-1MiB"] = b"\x00" + resp([b"refund", b"1" * MiB, b"1", b"2"])
    r["counts-weird-numbers"] = b"\x00" + b"".join(resp([b"refund", n, b"1", b"2"]) for n in (
        b"nan", b"inf", b"-inf", b"0x10", b" 1", b"+1", b"1e400", b"1e-400", b"1.5", b"9e18",
        b"9.3e18", b"-1", b"2147483648", b"", b"1\x00", b"00012"))
    r["history-foreign"] = b"\x0f" + resp([incident(b"1700000000"), b"plain", 5, None,
                                            incident(b"abc"), incident(b"1\x00"),
                                            incident(b"1700000001", rules=b"a\x1fb"),
                                            incident(b"99999999999999999999"), [b"x"]] * 3)
    r["counts-second-bad"] = b"\x00" + resp([b"refund", 3, b"1", b"2", b"cancel", b"x", b"1", b"2"])
    r["top-second-bad"] = b"\x00" + resp([b"a@x", 3, b"1", b"b\x00@x", 1, b"2"])
    r["split-byte-by-byte"] = b"\x10" + resp([b"refund", 3, b"1700000000", b"1700000000"])
    return r


def write(outdir, target, name, data):
    d = os.path.join(outdir, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def shared_messages(corpus):
    for sub in ("dev", "public"):
        top = os.path.join(corpus, sub)
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for fn in sorted(files):
                if fn.endswith((".md", ".json", ".tsv", ".py", ".sh")):
                    continue
                p = os.path.join(root, fn)
                try:
                    with open(p, "rb") as f:
                        data = f.read(4 * MiB)
                except OSError:
                    continue
                yield "shared-" + hashlib.sha1(p.encode()).hexdigest()[:12], data


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--shared", help="the shared corpus directory (with dev/ and public/)")
    ap.add_argument("--small", action="store_true", help="leave out inputs over 2 MiB")
    a = ap.parse_args()
    msgs = messages(a.small)
    for name, data in msgs.items():
        write(a.outdir, "mime", name, data)
        write(a.outdir, "milter", name, b"\x00\x00" + data)
        if len(data) <= 2 * MiB:
            write(a.outdir, "draft", name, b"\x01\x00" + data)
    # milter session mode: the same headers as name/value pairs, plus forged X-Amends-*
    session = [b"<customer@example.com>", b"From", b"Customer <customer@example.com>",
               b"Subject", b"=?UTF-8?Q?a=0D=0ABcc:_x?= refund now", b"X-Amends-Status", b"forged",
               b"x-AMENDS-rules", b"a\n\tb", b"", b"I want my money back.\r\n", b"Cancel it.\r\n"]
    write(a.outdir, "milter", "session-basic", b"\x01\x00" + b"\x00".join(session))
    write(a.outdir, "milter", "session-capped", b"\x01\x02" + b"\x00".join(session))
    write(a.outdir, "milter", "session-10000-headers",
          b"\x01\x00" + b"\x00".join([b"<>"] + [b"X-H", b"v"] * 10000 + [b"", b"body"]))
    for name, data in injection_fields().items():
        write(a.outdir, "draft", name, data)
    for name, data in rules_nasties().items():
        write(a.outdir, "rules", name, data)
    for name, data in config_nasties().items():
        write(a.outdir, "config", name, data)
    for name, data in normalize_texts(msgs).items():
        write(a.outdir, "normalize", name, data)
    for name, data in callbacks_programs(msgs).items():
        write(a.outdir, "callbacks", name, data)
    for name, data in redis_replies().items():
        write(a.outdir, "redis", name, data)
    if a.shared:
        if not os.path.isdir(a.shared):
            print("make_nasties.py: %s: not a directory, shared corpus left out" % a.shared,
                  file=sys.stderr)
        else:
            for name, data in shared_messages(a.shared):
                write(a.outdir, "mime", name, data)
                write(a.outdir, "milter", name, b"\x00\x00" + data)
                write(a.outdir, "draft", name, b"\x01\x00" + data)
                write(a.outdir, "normalize", name, b"\x01" + data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
