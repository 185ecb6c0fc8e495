#!/bin/bash
# limits.sh - every limit of the `limits` section, at the limit and one past it, through the
# real daemon; memory on a 50 MiB message; catastrophic backtracking; reload under load
#
# 1. For each of mime_depth, mime_parts, header_bytes, header_value_bytes, header_count,
#    part_text_bytes, message_text_bytes and max_scan_bytes (set small in the test config), a
#    generated message exactly AT the limit gets no X-Amends-Limits and is tagged by a rule on
#    its very last allowed text (nothing was cut); the one ONE PAST it is answered CONTINUE,
#    carries exactly the X-Amends-Limits name of that limit, is still tagged by the rule on its
#    first text, and (where the extra is a whole entity: a part, a level, a header, a byte that
#    ends a marker) is not tagged by the rule on what lies past the limit.
# 2. A 50 MiB message (base64 of a complaint text) with max_scan_bytes at its default 10 MiB:
#    CONTINUE, tagged, X-Amends-Limits says "size", peak RSS (VmHWM) of the daemon < 256 MiB.
# 3. ReDoS: rules (a+)+$ and (\w+\s?)*$ plus an ordinary rule. By default (unsafe_rules
#    "refuse", R4.4) the daemon does not start on them and `amendsctl lint` exits 1, both with
#    errors at each rule's file:line. With unsafe_rules = "contain" (R4.2) they load; 70 KB of
#    "aaaaaaaaaaaaa!" and a refund phrase: CONTINUE within 1 s, tagged by the ordinary rule,
#    "regex-limit" in X-Amends-Limits, the rule's file:line in the log; lint exits 0 and warns.
# 4. Reload under 16 connections of load (RELIABILITY R4.5): a rule file with a syntax error is
#    refused and the last good rules stay (a valid rule in the same reload does not appear);
#    a ReDoS rule file is refused the same way; then the configuration switches to "contain"
#    and the same files load, the budgets keeping mail flowing. 0 rejected/tempfailed/failed
#    messages.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"

need_built
PY=${PYTHON3:-python3}
command -v "$PY" >/dev/null 2>&1 || skip "python3 is needed to generate the messages"
AMENDSCTL="$top_builddir/src/amendsctl"
[ -x "$AMENDSCTL" ] || skip "$AMENDSCTL is not built"

SOCK="unix:$T_TMP/amends.sock"
MSG="$T_TMP/msg"
mkdir -p "$MSG" "$T_TMP/state"

# limits_conf FILE RULES_DIR [LIMITS_BODY] [RULES_EXTRA] - a config with the given limits block
# (libconfig settings, without braces) and rules directory; no tally, no drafts.
limits_conf() {
	{
		echo "# written by $T_NAME"
		echo "state_dir = \"$T_TMP/state\";"
		echo "milter = { socket = \"$SOCK\"; log_level = \"debug\"; };"
		[ -n "${3:-}" ] && echo "limits = { $3 };"
		echo "rules = { dir = \"$2\"; ${4:-} };"
		echo "tally = { store = \"none\"; };"
		echo "drafts = { enabled = false; };"
	} >"$1"
}

# block FILE.eml TRANSCRIPT - the transcript lines of one message (run with --basename).
block() {
	awk -v f="$1:" '$1 == f { m = 1; print; next } /^[^ ]+\.eml: [A-Z]+$/ { m = 0 } m' "$2"
}

# header_of BLOCKFILE NAME - the value of the added header NAME, or nothing.
header_of() {
	sed -n "s/^add: $2: //p" "$1" | head -n 1
}

# ---- 1. each limit at and past its value ------------------------------------------------------
mkdir -p "$T_TMP/rules-limits"
cat >"$T_TMP/rules-limits/probe.rules" <<'EOF'
# zqhead: text at the start, inside every limit. zqtail: the last text a limit allows.
# zqout: text only past a limit.
rule T_HEAD
category complaint
score 1.0
match /zqhead/

rule T_TAIL
category refund
score 1.0
match /zqtail/

rule T_OUT
category abuse
score 1.0
match /zqout/

rule T_HDRTAIL
category refund
score 1.0
target header:X-Tail
match /zqtail/

rule T_HDROUT
category abuse
score 1.0
target header:X-Out
match /zqout/
EOF

cat >"$T_TMP/gen_limits.py" <<'EOF'
# Messages exactly at and one past each limit of the test config (see limits.sh).
import base64, os, sys
out = sys.argv[1]
HDR = ["From: Tess Tester <tess@example.com>", "To: support@shop.example",
       "Subject: limits probe", "Message-ID: <limits@example.com>", "MIME-Version: 1.0"]
PLAIN = "Content-Type: text/plain; charset=us-ascii"

def msg(hdrs, body):
    return ("\r\n".join(hdrs) + "\r\n\r\n" + body).encode()

def save(name, data, size=None):
    if size is not None:
        assert len(data) == size, (name, len(data), size)
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)

def text(n, head="zqhead ", tail="zqtail\n"):
    """n bytes of decoded text (LF line ends): head, filler lines, tail."""
    fill = n - len(head) - len(tail)
    s = head
    while fill > 0:
        k = min(fill, 60)
        s += ("x" * (k - 1) + "\n") if k >= 2 else "y"
        fill -= k
    s += tail
    assert len(s) == n
    return s

def crlf(s):
    return s.replace("\n", "\r\n")

def part(t):
    return PLAIN + "\r\n\r\n" + crlf(t)

def multipart(parts, b):
    s = "This is a multi-part message.\r\n"
    for p in parts:
        s += "--" + b + "\r\n" + p + "\r\n"
    return s + "--" + b + "--\r\n"

def mixed(parts, b="B-1"):
    return msg(HDR + ['Content-Type: multipart/mixed; boundary="%s"' % b], multipart(parts, b))

# mime_depth = 4: the message is the first container; the deepest leaf sits in the 4th (5th).
def nest(k, deep):
    inner = part(deep + "\n")
    for lvl in range(k, 1, -1):
        b = "B-%d" % lvl
        inner = 'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n' % b + multipart([inner], b)
    return mixed([part("zqhead at depth one\n"), inner])
save("depth-at.eml", nest(4, "zqtail in the deepest allowed level"))
save("depth-over.eml", nest(5, "zqout one level too deep"))

# mime_parts = 8: the message itself and 7 leaves (8 leaves: one too many).
def parts(n, last):
    ps = [part("zqhead first\n")] + [part("filler %d\n" % i) for i in range(n - 2)] + [part(last + "\n")]
    return mixed(ps)
save("parts-at.eml", parts(7, "zqtail last allowed part"))
save("parts-over.eml", parts(8, "zqout one part too many"))

BASE = HDR + [PLAIN]
BODY = "zqhead in the body\r\n"

# header_count = 20: X-Tail is the 20th header (X-Out the 21st).
def hcount(n, last):
    h = BASE + ["X-Fill-%02d: filler" % i for i in range(n - len(BASE) - 1)] + [last]
    assert len(h) == n
    return h
save("hcount-at.eml", msg(hcount(20, "X-Tail: zqtail"), BODY))
save("hcount-over.eml", msg(hcount(20, "X-Tail: zqtail") + ["X-Out: zqout"], BODY))

# header_bytes = 2048: header lines with their CRLF add up to exactly 2048 (2049: the last
# line, X-Tail, crosses the limit and is left out).
def hbytes(total):
    h = list(BASE)
    tail = "X-Tail: tttttttttt zqtail"
    rest = total - sum(len(x) + 2 for x in h) - (len(tail) + 2)
    i = 0
    while rest > 0:
        k = min(rest, 200)
        if 0 < rest - k < 16:
            k = rest - 16
        name = "X-Pad-%02d: " % i
        h.append(name + "p" * (k - len(name) - 2))
        rest -= k
        i += 1
    h.append(tail)
    assert sum(len(x) + 2 for x in h) == total and len(h) <= 20
    return msg(h, BODY)
save("hbytes-at.eml", hbytes(2048))
save("hbytes-over.eml", hbytes(2049))

# header_value_bytes = 256: X-Tail's value is 256 bytes ending in zqtail (257: the final "l"
# is past the limit, so the marker is cut).
def hval(n):
    v = "v" * (n - 7) + " zqtail"
    return msg(BASE + ["X-Tail: " + v], BODY)
save("hvalue-at.eml", hval(256))
save("hvalue-over.eml", hval(257))

# part_text_bytes = 1024: decoded text of exactly 1024 bytes; 1025 with the marker still
# inside; 1025 with no final newline, so the marker's last byte is the one cut.
save("ptext-at.eml", msg(BASE, crlf(text(1024))))
save("ptext-over.eml", msg(BASE, crlf(text(1025))))
save("ptext-cut.eml", msg(BASE, crlf(text(1025, tail="zqtail"))))

# message_text_bytes = 3072: parts of 1024 + 1024 + 1000 + 24 bytes; then 25 in the last part.
def mtext(sizes, tail="zqtail\n"):
    ps = []
    for i, n in enumerate(sizes):
        last = i == len(sizes) - 1
        ps.append(part(text(n, head="zqhead " if i == 0 else "zqmidd ",
                            tail=tail if last else "zqmidt\n")))
    return mixed(ps)
save("mtext-at.eml", mtext([1024, 1024, 1000, 24]))
save("mtext-over.eml", mtext([1024, 1024, 1000, 25]))
save("mtext-cut.eml", mtext([1024, 1024, 1000, 25], tail="zqtail"))

# max_scan_bytes = 16384: the whole message as the milter collects it ("Name: value" CRLF
# header lines, CRLF, body) is 16384 bytes; then one more byte of attachment.
def scan(total):
    def build(nfill):
        att = ("Content-Type: application/octet-stream\r\n"
               "Content-Transfer-Encoding: base64\r\n\r\n"
               + crlf(base64.encodebytes(b"\0" * nfill).decode()))
        return mixed([part("zqhead first part\n"), att, part("zqtail last part\n")])
    n = max(0, (total - len(build(0))) * 3 // 4)
    while len(build(n)) < total:
        n += 1
    while len(build(n)) > total:
        n -= 1
    m = build(n)
    pad = total - len(m)
    m = m.replace(b"multi-part message.", b"multi-part message." + b"." * pad, 1)
    return m
save("scan-at.eml", scan(16384), 16384)
save("scan-over.eml", scan(16385), 16385)
EOF
"$PY" "$T_TMP/gen_limits.py" "$MSG" || fail "generating the limit messages failed"

limits_conf "$T_TMP/limits.conf" "$T_TMP/rules-limits" \
	"max_scan_bytes = 16384; mime_depth = 4; mime_parts = 8; header_bytes = 2048;
  header_value_bytes = 256; header_count = 20; part_text_bytes = 1024; message_text_bytes = 3072;"
start_daemon "$T_TMP/limits.conf" "$SOCK"

# case FILE LIMITS RULES_WANTED RULES_UNWANTED - LIMITS: the exact X-Amends-Limits value, or ""
# for none; RULES_*: space-separated rule names that must / must not be in X-Amends-Rules.
cases=(
	"depth-at.eml||T_HEAD T_TAIL|"
	"depth-over.eml|depth|T_HEAD|T_OUT"
	"parts-at.eml||T_HEAD T_TAIL|"
	"parts-over.eml|parts|T_HEAD|T_OUT"
	"hcount-at.eml||T_HEAD T_HDRTAIL|"
	"hcount-over.eml|header_count|T_HEAD T_HDRTAIL|T_HDROUT"
	"hbytes-at.eml||T_HEAD T_HDRTAIL|"
	"hbytes-over.eml|header_bytes|T_HEAD|T_HDRTAIL"
	"hvalue-at.eml||T_HEAD T_HDRTAIL|"
	"hvalue-over.eml|header_bytes|T_HEAD|T_HDRTAIL"
	"ptext-at.eml||T_HEAD T_TAIL|"
	"ptext-over.eml|part_text|T_HEAD T_TAIL|"
	"ptext-cut.eml|part_text|T_HEAD|T_TAIL"
	"mtext-at.eml||T_HEAD T_TAIL|"
	"mtext-over.eml|message_text|T_HEAD T_TAIL|"
	"mtext-cut.eml|message_text|T_HEAD|T_TAIL"
	"scan-at.eml||T_HEAD T_TAIL|"
	"scan-over.eml|size|T_HEAD T_TAIL|"
)
files=()
for c in "${cases[@]}"; do files+=("$MSG/${c%%|*}"); done
run_client "$T_TMP/limits.out" -s "$SOCK" --basename "${files[@]}"
status_ok "$T_TMP/limits.out" || fail "a limit message was not accepted: $(cat "$T_TMP/limits.out")"
for c in "${cases[@]}"; do
	IFS='|' read -r f lim want nowant <<<"$c"
	block "$f" "$T_TMP/limits.out" >"$T_TMP/blk"
	grep -Eq "^$f: (CONTINUE|ACCEPT)$" "$T_TMP/blk" || fail "$f: no answer: $(cat "$T_TMP/limits.out")"
	got_lim=$(header_of "$T_TMP/blk" X-Amends-Limits)
	[ "$got_lim" = "$lim" ] ||
		fail "$f: X-Amends-Limits is '$got_lim', expected '${lim:-(none)}': $(cat "$T_TMP/blk")"
	rules=",$(header_of "$T_TMP/blk" X-Amends-Rules),"
	for r in $want; do
		[[ $rules == *",$r,"* ]] || fail "$f: rule $r did not tag it: $(cat "$T_TMP/blk")"
	done
	for r in $nowant; do
		[[ $rules != *",$r,"* ]] || fail "$f: rule $r saw text past the limit: $(cat "$T_TMP/blk")"
	done
	ok "$f: X-Amends-Limits ${lim:-(none)}; tagged by [$want]${nowant:+, not by [$nowant]}"
done
stop_daemon

# ---- 2. memory on a 50 MiB message -----------------------------------------------------------
mkdir -p "$T_TMP/rules-plain"
cat >"$T_TMP/rules-plain/plain.rules" <<'EOF'
rule P_COMPLAINT
category complaint
score 1.0
match /\bunacceptable\b/

rule P_REFUND
category refund
score 1.0
match /\bi\s+want\s+my\s+money\s+back\b/
EOF
"$PY" - "$MSG/big50.eml" <<'EOF' || fail "generating the 50 MiB message failed"
import base64, sys
target = 50 * 1024 * 1024
hdr = ("From: Big Complainer <big@example.com>\r\nTo: support@shop.example\r\n"
       "Subject: my order\r\nMessage-ID: <big50@example.com>\r\nMIME-Version: 1.0\r\n"
       "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n")
unit = b"This is unacceptable. I am very disappointed, the parcel never arrived.\n"
need = (target - len(hdr)) * 57 // 78 + 1
text = (unit * (need // len(unit) + 1))[:need]
with open(sys.argv[1], "wb") as f:
    f.write(hdr.encode())
    f.write(base64.encodebytes(text).replace(b"\n", b"\r\n"))
EOF
size=$(stat -c %s "$MSG/big50.eml")
[ "$size" -ge $((50 * 1024 * 1024)) ] || fail "the big message is only $size bytes"
limits_conf "$T_TMP/big.conf" "$T_TMP/rules-plain" ""
start_daemon "$T_TMP/big.conf" "$SOCK"
hwm0=$(awk '/^VmHWM:/ {print $2}' "/proc/$T_DAEMON_PID/status")
run_client "$T_TMP/big.out" -s "$SOCK" -t 120 --basename "$MSG/big50.eml"
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$T_DAEMON_PID/status")
status_ok "$T_TMP/big.out" || fail "50 MiB: not accepted: $(cat "$T_TMP/big.out")"
assert_grep '^add: X-Amends-Status: Yes; categories=complaint' "$T_TMP/big.out" "50 MiB: tagged complaint"
assert_grep '^add: X-Amends-Limits: .*size' "$T_TMP/big.out" "50 MiB: X-Amends-Limits names size"
[ -n "$hwm" ] && [ "$hwm" -lt $((256 * 1024)) ] ||
	fail "50 MiB: daemon peak RSS ${hwm:-?} kB, limit 262144 kB"
ok "50 MiB ($size bytes): daemon peak RSS $((hwm / 1024)) MiB (VmHWM $hwm kB; $hwm0 kB before)"
stop_daemon

# ---- 3. catastrophic backtracking ------------------------------------------------------------
mkdir -p "$T_TMP/rules-redos"
cat >"$T_TMP/rules-redos/redos.rules" <<'EOF'
rule REDOS_NESTED
category abuse
score 1.0
match /(a+)+$/

rule REDOS_WORDS
category abuse
score 1.0
match /(\w+\s?)*$/
EOF
cp "$T_TMP/rules-plain/plain.rules" "$T_TMP/rules-redos/plain.rules"
"$PY" - "$MSG/redos.eml" <<'EOF' || fail "generating the ReDoS message failed"
import sys
body = "Hello, I want my money back for order 5512.\r\n" + "aaaaaaaaaaaaa!" * 5000 + "\r\n"
hdr = ("From: Rex Ample <rex@example.com>\r\nTo: support@shop.example\r\nSubject: order 5512\r\n"
       "Message-ID: <redos@example.com>\r\n\r\n")
open(sys.argv[1], "w").write(hdr + body)
EOF
# the default refuses them: no start, errors at file:line, and lint fails
limits_conf "$T_TMP/redos-refuse.conf" "$T_TMP/rules-redos" ""
timeout 30 "$AMENDS_MILTER" -c "$T_TMP/redos-refuse.conf" -f -p "$SOCK" >"$T_TMP/refuse.log" 2>&1
rrc=$?
[ "$rrc" != 0 ] && [ "$rrc" != 124 ] || fail "ReDoS rules by default: the daemon exited $rrc (expected to refuse)"
assert_grep 'redos\.rules:4:[0-9]+: error: rule REDOS_NESTED' "$T_TMP/refuse.log" "refused at start: (a+)+\$ named at file:line"
assert_grep 'redos\.rules:9:[0-9]+: error: rule REDOS_WORDS' "$T_TMP/refuse.log" "refused at start: (\\w+\\s?)*\$ named at file:line"
"$AMENDSCTL" -c "$T_TMP/redos-refuse.conf" lint >"$T_TMP/lint-refuse.out" 2>&1
lrc=$?
[ "$lrc" = 1 ] || fail "lint on the ReDoS rules (refuse) exited $lrc: $(cat "$T_TMP/lint-refuse.out")"
assert_grep 'redos\.rules:4:[0-9]+: error: rule REDOS_NESTED' "$T_TMP/lint-refuse.out" "lint rejects (a+)+\$ at file:line"

limits_conf "$T_TMP/redos.conf" "$T_TMP/rules-redos" "" 'unsafe_rules = "contain";'
start_daemon "$T_TMP/redos.conf" "$SOCK"
best=999999
log_from=$(wc -l <"$T_DAEMON_LOG")
for i in 1 2 3; do
	t0=$(date +%s%N)
	run_client "$T_TMP/redos.out" -s "$SOCK" -t 10 --basename "$MSG/redos.eml"
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$ms" -lt "$best" ] && best=$ms
done
status_ok "$T_TMP/redos.out" || fail "ReDoS: not accepted: $(cat "$T_TMP/redos.out")"
[ "$best" -le 1000 ] || fail "ReDoS: the answer took $best ms (best of 3), limit 1000 ms"
assert_grep '^add: X-Amends-Rules: P_REFUND$' "$T_TMP/redos.out" "ReDoS: tagged by the ordinary rule only"
assert_grep '^add: X-Amends-Limits: .*regex-limit' "$T_TMP/redos.out" "ReDoS: X-Amends-Limits names regex-limit"
assert_grep 'REDOS_NESTED \([^)]*redos\.rules:[0-9]+\)' "$T_DAEMON_LOG" "ReDoS: the log names the rule's file:line"
elapsed=$(tail -n +"$((log_from + 1))" "$T_DAEMON_LOG" | sed -n 's/.*verdict: .* elapsed=\([0-9]*\)us$/\1/p' |
	sort -n | head -n 1)
[ -n "$elapsed" ] && [ "$elapsed" -le 250000 ] ||
	fail "ReDoS: the pipeline took ${elapsed:-?} us (best of 3), limit 250 ms (R1.4)"
ok "ReDoS: answered in $best ms round trip (pipeline $elapsed us, best of 3)"

"$AMENDSCTL" -c "$T_TMP/redos.conf" lint >"$T_TMP/lint.out" 2>&1
lrc=$?
[ "$lrc" = 0 ] || fail "lint on the ReDoS rules exited $lrc: $(cat "$T_TMP/lint.out")"
assert_grep 'redos\.rules:4:[0-9]+: warning: rule REDOS_NESTED' "$T_TMP/lint.out" "lint warns about (a+)+\$ at file:line"
assert_grep 'redos\.rules:9:[0-9]+: warning: rule REDOS_WORDS' "$T_TMP/lint.out" "lint warns about (\\w+\\s?)*\$ at file:line"
assert_no_grep 'plain\.rules:[0-9]+:[0-9]+: warning' "$T_TMP/lint.out" "lint: no warning about the ordinary rules"
stop_daemon

# ---- 4. reload with a broken / a ReDoS rule file under 16 connections -------------------------
mkdir -p "$T_TMP/rules-reload"
cp "$T_TMP/rules-plain/plain.rules" "$T_TMP/rules-reload/"
printf 'From: Lee Oad <lee@example.com>\r\nTo: support@shop.example\r\nSubject: refund\r\nMessage-ID: <load-1@example.com>\r\n\r\nThis is unacceptable, I want my money back. zqnew\r\n' >"$MSG/load1.eml"
write_clean_eml "$MSG/load2.eml"
limits_conf "$T_TMP/reload.conf" "$T_TMP/rules-reload" ""
start_daemon "$T_TMP/reload.conf" "$SOCK"
"$MILTERCLIENT" -s "$SOCK" -c 16 -n 1250 -q --summary "$MSG/load1.eml" "$MSG/load2.eml" \
	>"$T_TMP/load.out" 2>"$T_TMP/load.err" &
load_pid=$!
t_track "$load_pid"
sleep 0.3
kill -0 "$load_pid" 2>/dev/null || t_note "the load ended before the first reload (fast host): reloads ran unloaded"

# A file with one valid new rule and one broken one: the whole reload must be refused.
cat >"$T_TMP/rules-reload/new.rules" <<'EOF'
rule N_VALID
category refund
score 1.0
match /zqnew/

rule N_BROKEN
category refund
score 1.0
match /(unclosed/
EOF
nfail=$(grep -c 'reload failed' "$T_DAEMON_LOG")
kill -USR1 "$T_DAEMON_PID"
more_than() { [ "$(grep -c "$1" "$T_DAEMON_LOG")" -gt "$2" ]; }
t_wait_for 10 more_than 'reload failed' "$nfail" || fail "reload with a broken rule file: no 'reload failed' logged"
assert_grep 'new\.rules:[0-9]+:[0-9]+: .*pattern error' "$T_DAEMON_LOG" "broken rule file: file:line:col logged"
run_client "$T_TMP/after-broken.out" -s "$SOCK" --basename "$MSG/load1.eml"
assert_grep '^add: X-Amends-Rules: P_COMPLAINT,P_REFUND$' "$T_TMP/after-broken.out" \
	"broken reload refused: the last good rules stay (N_VALID not loaded)"

# A ReDoS file under the default "refuse": the reload is refused like a broken one (R4.5).
cp "$T_TMP/rules-redos/redos.rules" "$T_TMP/rules-reload/new.rules"
nfail=$(grep -c 'reload failed' "$T_DAEMON_LOG")
kill -USR1 "$T_DAEMON_PID"
t_wait_for 10 more_than 'reload failed' "$nfail" || fail "reload with a ReDoS rule file: no 'reload failed' logged"
assert_grep 'new\.rules:4:[0-9]+: error: rule REDOS_NESTED' "$T_DAEMON_LOG" "ReDoS reload refused: file:line logged"
run_client "$T_TMP/after-refused.out" -s "$SOCK" -t 10 --basename "$MSG/redos.eml"
assert_grep '^add: X-Amends-Rules: P_REFUND$' "$T_TMP/after-refused.out" "ReDoS reload refused: the last good rules tag"
assert_no_grep 'regex-limit' "$T_TMP/after-refused.out" "ReDoS reload refused: the ReDoS rules are not running"

# The same files with unsafe_rules = "contain" (R4.2): the reload is accepted and the budgets
# keep every message moving.
limits_conf "$T_TMP/reload.conf" "$T_TMP/rules-reload" "" 'unsafe_rules = "contain";'
nok=$(grep -c 'reloaded' "$T_DAEMON_LOG")
kill -USR1 "$T_DAEMON_PID"
t_wait_for 10 more_than 'reloaded' "$nok" || fail "reload with a ReDoS rule file (contain): no 'reloaded' logged"
ok "a ReDoS rule file is loaded on reload when the configuration says contain"
run_client "$T_TMP/after-redos.out" -s "$SOCK" -t 10 --basename "$MSG/redos.eml"
assert_grep '^add: X-Amends-Rules: P_REFUND$' "$T_TMP/after-redos.out" "after the ReDoS reload: ordinary rules still tag"
assert_grep '^add: X-Amends-Limits: .*regex-limit' "$T_TMP/after-redos.out" "after the ReDoS reload: the rule budget stops it"
if kill -0 "$load_pid" 2>/dev/null; then
	ok "the three reloads happened while the 16-connection load ran"
else
	t_note "the load ended before the last reload (fast host): it ran unloaded"
fi

for ((i = 0; i < 600; i++)); do kill -0 "$load_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$load_pid" 2>/dev/null && fail "the 16-connection load did not finish in 60 s"
wait "$load_pid"
lrc=$?
[ "$lrc" = 0 ] || fail "load: milterclient exited $lrc: $(head -c 2000 "$T_TMP/load.err")"
assert_grep '^summary: CONTINUE=[0-9]+ ACCEPT=[0-9]+ REJECT=0 TEMPFAIL=0 DISCARD=0 CONNFAIL=0 SHUTDOWN=0 ABORTED=0 ERROR=0$' \
	"$T_TMP/load.out" "16 connections x 1250 messages across the reloads: 0 failed or tempfailed"
total=$(sed -n 's/^summary: CONTINUE=\([0-9]*\) ACCEPT=\([0-9]*\) .*/\1 \2/p' "$T_TMP/load.out" | awk '{print $1 + $2}')
[ "$total" = 20000 ] || fail "load: $total of 20000 messages answered: $(cat "$T_TMP/load.out")"
kill -0 "$T_DAEMON_PID" || fail "the daemon died during the reloads"
stop_daemon
ok "reloads under load: 20000 of 20000 answered"
