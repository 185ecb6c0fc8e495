#!/bin/bash
# security.sh - privilege, socket, file-mode, forged-header, draft-suppression and header-
# injection checks through the real daemon (RELIABILITY 8.8, 8.9; issue 8 item 4)
#
#  1. R9.4: no system(), popen(), exec*() or posix_spawn() in src/ (comments and strings left
#     out), and the built binaries import none of them (nm -D).
#  2. Privileges (root only, else skipped with a reason): with -u nobody the socket is bound as
#     root (in a root-only directory) and then every thread runs as nobody with no capabilities
#     left (so setuid(0) cannot succeed); a nonexistent user refuses to start; root without a
#     user is warned about.
#  3. Socket permissions from the config: socket_mode and socket_group (stat), an unknown
#     group refuses to start.
#  4. File modes (exactly what rules.c and template.c do): a world-writable rule file is an
#     error (lint exits 1, the daemon refuses to start); a group-writable rule file and group-
#     or world-writable templates are warnings (lint exits 0) naming the file.
#  5. Forged X-Amends-* headers, the cases daemon.sh does not cover: a flood of 300 other
#     X-Amends-* names before a forged X-Amends-Status (the per-message name table must keep
#     room for our own names), our six names before 260 others (the others keep their 250
#     slots), 500 repeats of one name, forged headers past max_scan_bytes.
#  6. Drafts never for bounces, lists, automatic mail or ourselves: 14 cases of the R8.1 matrix
#     through the daemon are tagged (categories) but get no X-Amends-Draft and no Maildir file,
#     while the same message from a customer gets both.
#  7. No header injection into the headers we add or change: Subject/From/Message-ID with
#     encoded CRLF, bare CR, NUL, 100 KB; every added X-Amends-* value is one line of printable
#     ASCII under 998 bytes, a tagged Subject is one line, and the drafts written for them have
#     no Bcc, no header line over 998 octets and only ASCII in the header block.
#  8. A daemon still stopping after SIGTERM does not remove the socket and pidfile of a
#     successor started meanwhile.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"

need_built
PY=${PYTHON3:-python3}
command -v "$PY" >/dev/null 2>&1 || skip "python3 is needed to read the sources and make messages"
AMENDSCTL="$top_builddir/src/amendsctl"
[ -x "$AMENDSCTL" ] || skip "$AMENDSCTL is not built"

SOCK="unix:$T_TMP/amends.sock"
MSG="$T_TMP/msg"
mkdir -p "$MSG"
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1

# ---- 1. no shell, no exec (R9.4) ------------------------------------------------------------
cat >"$T_TMP/scan_exec.py" <<'EOF'
# Print file:line for every call of a process-spawning function in C code (comments, string
# and character literals removed first, keeping line numbers).
import os, re, sys
src = sys.argv[1]
strip = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
call = re.compile(r'\b(system|popen|execl|execlp|execle|execv|execvp|execvpe|fexecve|execveat|'
                  r'execve|posix_spawn|posix_spawnp|g_spawn\w*|vfork|wordexp)\s*\(')
n = 0
for name in sorted(os.listdir(src)):
    if not name.endswith((".c", ".h")):
        continue
    text = open(os.path.join(src, name), encoding="utf-8", errors="replace").read()
    n += 1
    code = strip.sub(lambda m: re.sub(r'[^\n]', ' ', m.group(0)), text)
    for i, line in enumerate(code.split("\n"), 1):
        m = call.search(line)
        if m:
            print("%s:%d: %s(" % (name, i, m.group(1)))
if n == 0:
    sys.exit("no C files in " + src)
EOF
"$PY" "$T_TMP/scan_exec.py" "$top_srcdir/src" >"$T_TMP/exec.out" || fail "the source scan failed"
[ ! -s "$T_TMP/exec.out" ] || fail "R9.4: process-spawning calls in src/: $(cat "$T_TMP/exec.out")"
# The scan must be able to fail: a planted call is found, the same words in a comment and a
# string are not.
mkdir -p "$T_TMP/plant"
printf '/* system("no") */\nint f(void) { puts("popen(x)"); return system ("x"); }\n' >"$T_TMP/plant/p.c"
"$PY" "$T_TMP/scan_exec.py" "$T_TMP/plant" >"$T_TMP/plant.out"
[ "$(cat "$T_TMP/plant.out")" = "p.c:2: system(" ] ||
	fail "R9.4: the scan does not find a planted call (got: $(cat "$T_TMP/plant.out"))"
ok "R9.4: src/ has no system/popen/exec*/posix_spawn calls (comments and strings ignored)"
if command -v nm >/dev/null 2>&1; then
	for bin in "$AMENDS_MILTER" "$AMENDSCTL"; do
		bad=$(nm -D --undefined-only "$bin" 2>/dev/null |
			grep -Ew '(system|popen|execl|execlp|execle|execv|execvp|execvpe|execve|fexecve|posix_spawnp?|vfork|wordexp)(@.*)?$')
		[ -z "$bad" ] || fail "R9.4: $(basename "$bin") imports $bad"
	done
	ok "R9.4: amends-milter and amendsctl import no process-spawning function"
else
	t_note "nm not found: the binary import check is not run"
fi

# ---- 2. privileges -----------------------------------------------------------------------------
write_clean_eml "$MSG/clean.eml"
if [ "$IS_ROOT" = 1 ] && id nobody >/dev/null 2>&1; then
	nobody_uid=$(id -u nobody)
	nobody_gid=$(id -g nobody)
	# The socket lives in a directory only root may enter: binding there proves the bind
	# happened before the drop; serving proves the listener outlives it.
	mkdir -p "$T_TMP/rootonly" "$T_TMP/state-nobody"
	chmod 0700 "$T_TMP/rootonly"
	chmod 0777 "$T_TMP/state-nobody"
	RSOCK="unix:$T_TMP/rootonly/amends.sock"
	write_config "$T_TMP/priv.conf" socket="$RSOCK" state="$T_TMP/state-nobody"
	start_daemon "$T_TMP/priv.conf" "$RSOCK" -u nobody
	for task in /proc/"$T_DAEMON_PID"/task/*; do
		uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "$task/status")
		gids=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "$task/status")
		caps=$(awk '/^Cap(Inh|Prm|Eff|Amb):/ {printf "%s ", $2}' "$task/status")
		groups=$(awk '/^Groups:/ {$1 = ""; print}' "$task/status")
		[ "$uids" = "$nobody_uid $nobody_uid $nobody_uid $nobody_uid" ] ||
			fail "-u nobody: thread ${task##*/} Uid '$uids'"
		[ "$gids" = "$nobody_gid $nobody_gid $nobody_gid $nobody_gid" ] ||
			fail "-u nobody: thread ${task##*/} Gid '$gids'"
		[[ " $groups " != *" 0 "* ]] || fail "-u nobody: thread ${task##*/} keeps group 0 ($groups)"
		[ -z "$(echo "$caps" | tr -d '0 ')" ] || fail "-u nobody: thread ${task##*/} keeps capabilities: $caps"
	done
	ok "-u nobody: every thread has Uid/Gid $nobody_uid/$nobody_gid, no group 0, no capabilities (root cannot come back)"
	[ "$(stat -c %u "$(spec_path "$RSOCK")")" = 0 ] || fail "the socket was not created by root"
	run_client "$T_TMP/nobody.out" -s "$RSOCK" --basename "$MSG/clean.eml"
	assert_grep '^add: X-Amends-Status: No' "$T_TMP/nobody.out" "-u nobody: bound as root in a root-only dir, serves as nobody"
	assert_grep 'running as nobody' "$T_DAEMON_LOG" "-u nobody: the drop is logged"
	stop_daemon

	# A user that does not exist: refuse to start (never keep running as root).
	write_config "$T_TMP/nouser.conf" user="amends-no-such-user-$$"
	"$AMENDS_MILTER" -c "$T_TMP/nouser.conf" -f -p "$SOCK" >"$T_TMP/nouser.log" 2>&1 &
	pid=$!
	t_track "$pid"
	for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && fail "a nonexistent user: the daemon is still running after 10 s"
	wait "$pid"
	rc=$?
	[ "$rc" != 0 ] || fail "a nonexistent user: exit status 0"
	assert_grep 'no such user' "$T_TMP/nouser.log" "a nonexistent user: refused to start (exit $rc), says why"
	client_probe "$SOCK" && fail "a nonexistent user: something still answers on the socket"

	# Root with no user configured: the daemon says so.
	write_config "$T_TMP/rootuser.conf"
	start_daemon "$T_TMP/rootuser.conf" "$SOCK"
	assert_grep 'running as root' "$T_DAEMON_LOG" "root without milter.user: a warning is logged"
	stop_daemon
else
	t_note "SKIP part: not root (or no user nobody): the privilege-drop checks need root"
fi

# ---- 3. socket permissions -------------------------------------------------------------------
if [ "$IS_ROOT" = 1 ] && getent group nogroup >/dev/null; then
	sgroup=nogroup
else
	sgroup=$(id -gn)     # a group we are in: chown to it needs no privilege
fi
write_config "$T_TMP/sock.conf" socket_mode=0660 socket_group="$sgroup"
start_daemon "$T_TMP/sock.conf" "$SOCK"
got=$(stat -c '%a %G' "$(spec_path "$SOCK")")
[ "$got" = "660 $sgroup" ] || fail "socket_mode 0660, socket_group $sgroup: the socket has '$got'"
ok "socket mode and group from the config ($got)"
stop_daemon
write_config "$T_TMP/sock2.conf" socket_mode=0600
start_daemon "$T_TMP/sock2.conf" "$SOCK"
got=$(stat -c '%a' "$(spec_path "$SOCK")")
[ "$got" = 600 ] || fail "socket_mode 0600: the socket has mode $got"
ok "socket_mode 0600 applied ($got)"
stop_daemon
write_config "$T_TMP/sock3.conf" socket_group="amends-no-such-group-$$"
"$AMENDS_MILTER" -c "$T_TMP/sock3.conf" -f -p "$SOCK" >"$T_TMP/nogroup.log" 2>&1 &
pid=$!
t_track "$pid"
for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "an unknown socket_group: the daemon is still running after 10 s"
wait "$pid"
rc=$?
[ "$rc" != 0 ] || fail "an unknown socket_group: exit status 0"
assert_grep 'no such group' "$T_TMP/nogroup.log" "an unknown socket_group: refused to start (exit $rc)"

# ---- 4. group/world-writable rule and template files -------------------------------------------
mkdir -p "$T_TMP/rules-mode" "$T_TMP/tpl"
cat >"$T_TMP/rules-mode/a.rules" <<'EOF'
rule M_REFUND
category refund
score 1.0
match /money\s+back/
EOF
chmod 0644 "$T_TMP/rules-mode/a.rules"
cp -r "$top_srcdir/conf/templates/." "$T_TMP/tpl/"
chmod -R go-w "$T_TMP/tpl"
write_config "$T_TMP/mode.conf" rules="$T_TMP/rules-mode" drafts=on maildir="$T_TMP/Maildir-mode" \
	templates="$T_TMP/tpl"

# lint_case WHAT WANT_RC PATTERN - run lint, check its exit status and that PATTERN is printed.
lint_case() {
	"$AMENDSCTL" -c "$T_TMP/mode.conf" lint >"$T_TMP/lint.out" 2>&1
	local rc=$?
	[ "$rc" = "$2" ] || fail "$1: lint exited $rc, expected $2: $(cat "$T_TMP/lint.out")"
	grep -Eq -- "$3" "$T_TMP/lint.out" || fail "$1: /$3/ not in the lint output: $(cat "$T_TMP/lint.out")"
	ok "$1: lint exits $rc and says so"
}
"$AMENDSCTL" -c "$T_TMP/mode.conf" lint >"$T_TMP/lint.out" 2>&1 || fail "lint of a clean setup failed: $(cat "$T_TMP/lint.out")"
assert_no_grep 'writable' "$T_TMP/lint.out" "clean modes: no writable warning"

chmod 0666 "$T_TMP/rules-mode/a.rules"
lint_case "world-writable rule file" 1 "a\\.rules.*error: file is world-writable"
"$AMENDS_MILTER" -c "$T_TMP/mode.conf" -n >"$T_TMP/n.out" 2>&1 &&
	fail "world-writable rule file: amends-milter -n accepted it"
assert_grep 'a\.rules.*world-writable' "$T_TMP/n.out" "world-writable rule file: the daemon refuses to start"
chmod 0664 "$T_TMP/rules-mode/a.rules"
lint_case "group-writable rule file" 0 "a\\.rules.*warning: file is group-writable"
chmod 0644 "$T_TMP/rules-mode/a.rules"

tpl_one=$(find "$T_TMP/tpl/en" -type f -name apology | head -n 1)
[ -n "$tpl_one" ] || fail "no en/apology template to test with"
chmod 0664 "$tpl_one"
lint_case "group-writable template" 0 "en/apology.*warning: template is group- or world-writable"
chmod 0646 "$tpl_one"
lint_case "world-writable template" 0 "en/apology.*warning: template is group- or world-writable"
chmod 0644 "$tpl_one"
# The configuration file itself has no mode check (config.c): noted, not asserted.
chmod 0666 "$T_TMP/mode.conf"
"$AMENDSCTL" -c "$T_TMP/mode.conf" lint >"$T_TMP/lint.out" 2>&1
grep -q 'mode\.conf.*writable' "$T_TMP/lint.out" ||
	t_note "GAP (R9.3): a world-writable configuration file is not warned about"
chmod 0644 "$T_TMP/mode.conf"

# ---- 5. forged X-Amends-* headers: what daemon.sh does not cover ---------------------------------
"$PY" - "$MSG" <<'EOF' || fail "generating the forged-header messages failed"
import os, sys
d = sys.argv[1]
def save(name, hdrs, body="Nothing to see here.\r\n"):
    open(os.path.join(d, name), "w").write("\r\n".join(hdrs) + "\r\n\r\n" + body)
top = ["From: Mallory <mallory@example.net>", "To: support@shop.example", "Subject: forged"]
# 300 distinct other X-Amends-* names first, then forged verdict headers.
save("flood.eml", top + ["X-Amends-Junk-%03d: x" % i for i in range(300)] +
     ["X-Amends-Status: Yes; categories=refund; score=refund:9.0", "x-amends-draft: apology",
      "Message-ID: <flood@example.net>"])
# Our six names forged first, then 260 other names: the others still get their 250 slots
# (the six were counted against the others' share once, which left 244).
save("oursfirst.eml", top + ["X-Amends-Status: Yes", "X-AMENDS-RULES: r", "X-Amends-Tally: t",
     "X-Amends-Draft: d", "X-Amends-Escalate: e", "X-Amends-Limits: l"] +
     ["X-Amends-Junk-%03d: x" % i for i in range(260)] + ["Message-ID: <oursfirst@example.net>"])
# 500 repeats of one forged name.
save("repeat.eml", top + ["X-Amends-Status: Yes %d" % i for i in range(500)] +
     ["Message-ID: <repeat@example.net>"])
# A 100 KB header (Postfix passes up to header_size_limit = 100 KiB in one milter packet,
# above libmilter's default 64 KiB) before a forged header: the session must survive it.
save("huge.eml", top + ["X-Long: " + "l" * 100000, "X-Amends-Status: Yes; categories=abuse",
     "Message-ID: <huge@example.net>"])
# Forged headers after 3 KB of ordinary headers: past a 1024-byte max_scan_bytes.
save("late.eml", top + ["X-Filler-%02d: %s" % (i, "f" * 90) for i in range(30)] +
     ["X-Amends-Status: Yes; categories=abuse", "X-AMENDS-TALLY: abuse=50",
      "Message-ID: <late@example.net>"])
EOF
write_config "$T_TMP/forge.conf" max_scan_bytes=1024
start_daemon "$T_TMP/forge.conf" "$SOCK"
run_client "$T_TMP/forge.out" -s "$SOCK" --basename "$MSG/flood.eml" "$MSG/repeat.eml" "$MSG/late.eml" \
	"$MSG/huge.eml" "$MSG/oursfirst.eml"
status_ok "$T_TMP/forge.out" || fail "forged: not accepted: $(cat "$T_TMP/forge.out")"
blk() { awk -v f="$1:" '$1 == f { m = 1; next } /^[^ ]+\.eml: [A-Z]+$/ { m = 0 } m' "$T_TMP/forge.out"; }
blk flood.eml >"$T_TMP/flood.blk"
assert_grep '^chg: X-Amends-Status\[1\]: \(deleted\)$' "$T_TMP/flood.blk" \
	"300 other X-Amends-* names first: the forged X-Amends-Status is still deleted"
assert_grep '^chg: x-amends-draft\[1\]: \(deleted\)$' "$T_TMP/flood.blk" \
	"300 other X-Amends-* names first: the forged X-Amends-Draft is still deleted"
[ "$(grep -c '^add: X-Amends-Status: No' "$T_TMP/flood.blk")" = 1 ] || fail "flood: our X-Amends-Status missing"
n=$(grep -c '^chg: X-Amends-Junk-[0-9]*\[1\]: (deleted)$' "$T_TMP/flood.blk")
[ "$n" = 250 ] || fail "flood: $n of 300 other X-Amends-* names deleted, not 250 (256 names less our 6)"
ok "flood: 250 of 300 other X-Amends-* names deleted (the table holds 256, 6 kept for ours)"
blk oursfirst.eml >"$T_TMP/oursfirst.blk"
n=$(grep -c '^chg: X-Amends-Junk-[0-9]*\[1\]: (deleted)$' "$T_TMP/oursfirst.blk")
m=$(grep -Eic '^chg: X-Amends-(Status|Rules|Tally|Draft|Escalate|Limits)\[1\]: \(deleted\)$' \
	"$T_TMP/oursfirst.blk")
[ "$n" = 250 ] && [ "$m" = 6 ] ||
	fail "our six names forged first: $m of them and $n of 260 other names deleted (want 6 and 250)"
ok "our six names forged first: all deleted, and the other names still get 250 slots"
blk repeat.eml >"$T_TMP/repeat.blk"
[ "$(grep -c '^chg: X-Amends-Status\[[0-9]*\]: (deleted)$' "$T_TMP/repeat.blk")" = 500 ] ||
	fail "500 repeats: $(grep -c '^chg: ' "$T_TMP/repeat.blk") deletions"
head -n 1 "$T_TMP/repeat.blk" | grep -q '^chg: X-Amends-Status\[500\]' &&
	grep '^chg: ' "$T_TMP/repeat.blk" | tail -n 1 | grep -q '\[1\]' ||
	fail "500 repeats: not deleted from [500] down to [1]"
ok "500 repeats of X-Amends-Status: 500 deletions, highest index first"
blk late.eml >"$T_TMP/late.blk"
assert_grep '^chg: X-Amends-Status\[1\]: \(deleted\)$' "$T_TMP/late.blk" "forged header past max_scan_bytes: deleted"
assert_grep '^chg: X-AMENDS-TALLY\[1\]: \(deleted\)$' "$T_TMP/late.blk" "forged X-AMENDS-TALLY past max_scan_bytes: deleted"
assert_grep '^add: X-Amends-Limits: .*size' "$T_TMP/late.blk" "forged header past max_scan_bytes: size limit tagged"
blk huge.eml >"$T_TMP/huge.blk"
assert_grep '^chg: X-Amends-Status\[1\]: \(deleted\)$' "$T_TMP/huge.blk" \
	"a 100 KB header (over libmilter's default 64 KiB packet): the session survives, the forged header is deleted"
stop_daemon

# ---- 6. no drafts for bounces, lists, automatic mail, ourselves (R8.1 sample) ---------------------
# sec_conf FILE MAILDIR - shipped rules, drafting to MAILDIR, no tally store (so every due
# draft is written at once), subject tagging on, our support address known.
sec_conf() {
	write_config "$1" rules="$top_srcdir/rules" drafts=on maildir="$2" \
		templates="$top_srcdir/conf/templates" log_level=info
	sed -i 's/^milter = {$/milter = {\n  subject_tag = true;/' "$1"
	cat >>"$1" <<'EOF'
policy = { support_addresses = [ "support@shop.example" ]; };
categories = (
  { name = "complaint";    threshold = 1.0; subject_tag = "[complaint]"; },
  { name = "abuse";        threshold = 1.0; subject_tag = "[abuse]"; },
  { name = "cancellation"; threshold = 1.0; subject_tag = "[cancellation]"; },
  { name = "refund";       threshold = 1.0; subject_tag = "[refund]"; },
  { name = "unethical";    threshold = 1.0; subject_tag = "[unethical]"; }
);
EOF
}
"$PY" - "$MSG" <<'EOF' || fail "generating the no-draft matrix failed"
import os, sys
d = sys.argv[1]
BODY = "Please cancel my subscription today. I no longer need the service.\r\n"
def save(name, frm, extra=(), ctype="text/plain; charset=utf-8", body=BODY):
    h = ["From: %s" % frm, "To: support@shop.example", "Subject: my account",
         "Message-ID: <%s@example.com>" % name.replace(".eml", ""), "MIME-Version: 1.0",
         "Content-Type: %s" % ctype] + list(extra)
    open(os.path.join(d, name), "w").write("\r\n".join(h) + "\r\n\r\n" + body)
save("control.eml", "Carol Customer <carol@example.com>")
save("nd-mailer-daemon.eml", "Mail Delivery System <MAILER-DAEMON@mx.example.com>")
save("nd-postmaster.eml", "postmaster@example.com")
save("nd-owner.eml", "owner-announce@lists.example.com")
save("nd-request.eml", "announce-request@lists.example.com")
save("nd-autosub.eml", "Carol Customer <carol@example.com>", ["Auto-Submitted: auto-replied"])
save("nd-autosub2.eml", "Carol Customer <carol@example.com>",
     ["Auto-Submitted: no", "Auto-Submitted: auto-generated"])
save("nd-precedence.eml", "Carol Customer <carol@example.com>", ["Precedence: BULK"])
save("nd-listunsub.eml", "Carol Customer <carol@example.com>",
     ["List-Unsubscribe: <mailto:leave@lists.example.com>"])
save("nd-listid.eml", "Carol Customer <carol@example.com>", ["list-id: Announce <announce.example.com>"])
save("nd-xars.eml", "Carol Customer <carol@example.com>", ["X-Auto-Response-Suppress: DR, OOF"])
save("nd-own.eml", "Support <support@shop.example>")
save("nd-marker.eml", "Carol Customer <carol@example.com>", ["X-Amends-Draft-Kind: winback"])
b = "REPORT-1"
report = ("--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n"
          "--%s\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
          "Final-Recipient: rfc822; carol@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
          "--%s--\r\n") % (b, BODY.strip(), b, b)
save("nd-report.eml", "Carol Customer <carol@example.com>",
     ctype='multipart/report; report-type=delivery-status; boundary="%s"' % b, body=report)
EOF
sec_conf "$T_TMP/nd.conf" "$T_TMP/Maildir-nd"
start_daemon "$T_TMP/nd.conf" "$SOCK"
run_client "$T_TMP/control.out" -s "$SOCK" --basename "$MSG/control.eml"
assert_grep '^add: X-Amends-Status: Yes; categories=cancellation' "$T_TMP/control.out" "control: tagged cancellation"
assert_grep '^add: X-Amends-Draft: winback$' "$T_TMP/control.out" "control: a customer's cancellation gets a win-back draft"
ndrafts=$(find "$T_TMP/Maildir-nd" -type f -path '*/cur/*' | wc -l)
[ "$ndrafts" = 1 ] || fail "control: $ndrafts draft files, expected 1"
nd_files=("$MSG"/nd-*.eml)
run_client "$T_TMP/nd.out" -s "$SOCK" --basename "${nd_files[@]}"
# The null sender needs its own run (-f applies to every message of a run).
cp "$MSG/control.eml" "$MSG/nd-null-sender.eml"
run_client "$T_TMP/nd-null.out" -s "$SOCK" -f '<>' --basename "$MSG/nd-null-sender.eml"
cat "$T_TMP/nd-null.out" >>"$T_TMP/nd.out"
status_ok "$T_TMP/nd.out" || fail "no-draft matrix: a message was not accepted"
for f in "${nd_files[@]}" "$MSG/nd-null-sender.eml"; do
	b=$(basename "$f")
	awk -v f="$b:" '$1 == f { m = 1; next } /^[^ ]+\.eml: [A-Z]+$/ { m = 0 } m' "$T_TMP/nd.out" >"$T_TMP/nd.blk"
	grep -q '^add: X-Amends-Status: Yes; categories=cancellation' "$T_TMP/nd.blk" ||
		fail "$b: not tagged cancellation: $(cat "$T_TMP/nd.blk")"
	grep -q '^add: X-Amends-Draft:' "$T_TMP/nd.blk" && fail "$b: got a draft: $(cat "$T_TMP/nd.blk")"
done
ndrafts=$(find "$T_TMP/Maildir-nd" -type f -path '*/cur/*' | wc -l)
[ "$ndrafts" = 1 ] || fail "no-draft matrix: $ndrafts draft files in the Maildir, expected only the control's"
ok "$((${#nd_files[@]} + 1)) bounce/list/automatic/own-address cases: tagged, no X-Amends-Draft, no Maildir file"
stop_daemon

# ---- 7. no header injection into what we add --------------------------------------------------------
"$PY" - "$MSG" <<'EOF' || fail "generating the injection messages failed"
import os, sys
d = sys.argv[1]
BODY = b"This is unacceptable. Please cancel my subscription, I no longer need it.\r\n"
def save(name, subject=b"my account", frm=b"Carol Customer <carol@example.com>",
         mid=None, extra=()):
    mid = mid if mid is not None else b"<" + name.encode() + b"@example.com>"
    h = [b"From: " + frm, b"To: support@shop.example", b"Subject: " + subject,
         b"Message-ID: " + mid, b"MIME-Version: 1.0",
         b"Content-Type: text/plain; charset=utf-8"] + list(extra)
    open(os.path.join(d, name), "wb").write(b"\r\n".join(h) + b"\r\n\r\n" + BODY)
save("inj-q.eml", subject=b"=?UTF-8?Q?a=0D=0ABcc:_x@evil.example?=")
save("inj-b.eml", subject=b"=?UTF-8?B?YQ0KQmNjOiB4QGV2aWwuZXhhbXBsZQ==?=")
save("inj-cr.eml", subject=b"hello\rBcc: x@evil.example\rX-Amends-Status: Yes")
save("inj-nul.eml", subject=b"hello\x00Bcc: x@evil.example")
save("inj-lf.eml", subject=b"=?UTF-8?Q?a=0ABcc:_x@evil.example?=")
save("inj-long.eml", subject=b"long " + b"s" * 100000)
save("inj-longfold.eml", subject=b"folded" + b"\r\n " .join([b"w" * 70] * 1500))
save("inj-from.eml", frm=b"=?UTF-8?Q?Eve=0D=0ABcc:_x@evil.example?= <eve@example.com>")
save("inj-fromcr.eml", frm=b"\"Eve\rBcc: x@evil.example\" <eve2@example.com>")
save("inj-mid.eml", mid=b"<abc\r\nBcc: x@evil.example@example.com>")
save("inj-midlong.eml", mid=b"<" + b"m" * 100000 + b"@example.com>")
save("inj-rtl.eml", subject=b"=?UTF-8?B?4oCuIGNhbmNlbCDigKw=?= \xff\xfe invalid")
EOF
sec_conf "$T_TMP/inj.conf" "$T_TMP/Maildir-inj"
start_daemon "$T_TMP/inj.conf" "$SOCK"
inj_files=("$MSG"/inj-*.eml)
run_client "$T_TMP/inj.out" -s "$SOCK" -t 60 --basename "${inj_files[@]}"
status_ok "$T_TMP/inj.out" || fail "injection: a message was not accepted: $(head -c 3000 "$T_TMP/inj.out")"
[ "$(grep -cE '^inj-[a-z]+\.eml: (CONTINUE|ACCEPT)$' "$T_TMP/inj.out")" = "${#inj_files[@]}" ] ||
	fail "injection: not every message answered"
# Every added X-Amends-* header: one line of printable ASCII (milterclient escapes controls as
# \n \t \\, so no backslash may appear), name + ": " + value under 998 octets.
bad=$(LC_ALL=C awk 'substr($0, 1, 14) == "add: X-Amends-" {
	line = substr($0, 6)
	if (length(line) >= 998 || line ~ /\\/ || line ~ /[^ -~]/) print
}' "$T_TMP/inj.out" | head -c 2000)
[ -z "$bad" ] || fail "injection: unsafe added header: $bad"
[ "$(grep -c '^add: X-Amends-Status: Yes' "$T_TMP/inj.out")" = "${#inj_files[@]}" ] ||
	fail "injection: not every message tagged: $(grep -c '^add: X-Amends-Status: Yes' "$T_TMP/inj.out")"
ok "injection: every added X-Amends-* header is one line of printable ASCII under 998 octets"
export LC_ALL=C   # byte semantics for the checks below
bad=$(grep -E '^chg: Subject\[1\]: ' "$T_TMP/inj.out" | grep -E '\\[nrt]|[[:cntrl:]]' | head -c 2000)
[ -z "$bad" ] || fail "injection: a tagged Subject spans lines or carries controls: $bad"
nsubj=$(grep -c '^chg: Subject\[1\]: ' "$T_TMP/inj.out")
[ "$nsubj" -gt 0 ] || fail "injection: no Subject was tagged (subject_tag on)"
# "Subject: " + value <= 998 octets; a subject too long to tag stays as it was.
long=$(awk '/^chg: Subject\[1\]: / && length($0) - 17 + 9 > 998 {n++} END {print n + 0}' "$T_TMP/inj.out")
[ "$long" = 0 ] || fail "injection: $long tagged Subject line(s) over 998 octets"
for f in inj-long.eml inj-longfold.eml; do
	awk -v f="$f:" '$1 == f { m = 1; next } /^[^ ]+\.eml: [A-Z]+$/ { m = 0 } m' "$T_TMP/inj.out" |
		grep -q '^chg: Subject' && fail "injection: $f: a subject over 998 octets was rewritten"
done
ok "injection: $nsubj tagged Subject header(s), each one line under 998 octets without controls"
# The drafts written for these messages: no Bcc, no header line over 998, ASCII headers.
mapfile -t drafts < <(find "$T_TMP/Maildir-inj" -type f -path '*/cur/*')
[ "${#drafts[@]}" -gt 0 ] || fail "injection: no draft written (cancellations from a customer)"
for f in "${drafts[@]}"; do
	"$PY" - "$f" <<'EOF' || fail "injection: unsafe draft $f: $(head -c 1500 "$f")"
import sys
data = open(sys.argv[1], "rb").read()
head = data.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in data else data.split(b"\n\n", 1)[0]
for line in head.split(b"\n"):
    line = line.rstrip(b"\r")
    if len(line) > 998:
        sys.exit("header line of %d octets" % len(line))
    if any(b > 0x7e or (b < 0x20 and b != 0x09) for b in line):
        sys.exit("non-ASCII or control in header line %r" % line[:80])
    if line[:1] not in (b" ", b"\t") and line.split(b":", 1)[0].strip().lower() == b"bcc":
        sys.exit("a Bcc header")
if b"\r" in head.replace(b"\r\n", b""):
    sys.exit("a bare CR in the header block")
EOF
done
ok "injection: ${#drafts[@]} drafts: no Bcc, no header line over 998 octets, ASCII-only headers"
stop_daemon

# ---- 8. a stopping daemon leaves a successor's socket and pidfile alone ---------------------------
# libmilter takes seconds to leave smfi_main after SIGTERM; a new instance started meanwhile
# replaces the socket and pidfile, and the old one must not remove them on its way out.
write_config "$T_TMP/overlap.conf" pidfile="$T_TMP/overlap.pid"
start_daemon "$T_TMP/overlap.conf" "$SOCK"
old_pid=$T_DAEMON_PID
kill -TERM "$old_pid"
start_daemon "$T_TMP/overlap.conf" "$SOCK"
for ((i = 0; i < 150; i++)); do kill -0 "$old_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$old_pid" 2>/dev/null && fail "overlap: the old daemon did not stop within 15 s"
[ -S "$(spec_path "$SOCK")" ] || fail "overlap: the old daemon removed its successor's socket"
client_probe "$SOCK" || fail "overlap: the successor no longer answers on its socket"
[ "$(cat "$T_TMP/overlap.pid" 2>/dev/null)" = "$T_DAEMON_PID" ] ||
	fail "overlap: the old daemon removed or changed its successor's pidfile"
ok "a stopping daemon leaves its successor's socket and pidfile in place"
stop_daemon
[ ! -e "$(spec_path "$SOCK")" ] && [ ! -e "$T_TMP/overlap.pid" ] ||
	fail "overlap: the successor did not remove its own socket and pidfile on SIGTERM"
ok "the successor removes its own socket and pidfile on SIGTERM"
