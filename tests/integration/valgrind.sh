#!/bin/bash
# valgrind.sh - the daemon under valgrind memcheck over the dev corpus (RELIABILITY R1.3)
#
# Starts amends-milter under `valgrind --leak-check=full --errors-for-leak-kinds=definite` with
# drafting (Maildir) and the SQLite tally on, PCRE2 JIT off (AMENDS_NO_JIT=1: memcheck cannot
# follow JIT code), pushes the whole dev corpus and contrib/samples through it on 4 connections,
# reloads once with SIGUSR1 (between two halves of the run), stops it with SIGTERM and fails on
# any memcheck error or definite leak ("ERROR SUMMARY: 0 errors", "definitely lost: 0 bytes").
# Every message must still be answered ACCEPT/CONTINUE and tagged. Skips (77) without valgrind.
# VALGRIND_KEEP=1 keeps the valgrind log in the build dir as valgrind-daemon.log.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"

need_built
command -v valgrind >/dev/null 2>&1 || skip "valgrind is not installed"
# A sanitizer build cannot run under valgrind (CI's second run): this test belongs to the first.
nm "$AMENDS_MILTER" 2>/dev/null | grep -q '__asan_init' &&
	skip "built with AddressSanitizer, which valgrind cannot run (the plain build runs this test)"
nm "$AMENDS_MILTER" 2>/dev/null | grep -q '__tsan_init' &&
	skip "built with ThreadSanitizer, which valgrind cannot run (the plain build runs this test)"
[ -d "$DEV_CORPUS" ] || skip "no dev corpus at $DEV_CORPUS"
[ -d "$top_srcdir/conf/templates" ] || skip "no templates at $top_srcdir/conf/templates"

SOCK="unix:$T_TMP/amends.sock"
VGLOG="$T_TMP/valgrind.log"
mkdir -p "$T_TMP/state" "$T_TMP/Maildir"

write_config "$T_TMP/vg.conf" rules="$top_srcdir/rules" store="sqlite:$T_TMP/state/tally.db" \
	drafts=on maildir="$T_TMP/Maildir" templates="$top_srcdir/conf/templates" log_level=info
# memcheck runs code ~30x slower: a longer rule deadline lets most rules run to the end, so the
# matching code is exercised rather than stopped by its budget.
sed -i "s|^rules = { dir = \"\(.*\)\"; };\$|rules = { dir = \"\1\"; deadline_ms = ${VG_DEADLINE_MS:-1000}; };|" "$T_TMP/vg.conf"
grep -q 'deadline_ms' "$T_TMP/vg.conf" || fail "could not set rules.deadline_ms in $T_TMP/vg.conf"

# The daemon itself, not a wrapper script, must be what valgrind runs.
file -L "$AMENDS_MILTER" 2>/dev/null | grep -q 'shell script' &&
	skip "$AMENDS_MILTER is a libtool wrapper script"

echo "==== valgrind amends-milter" >>"$T_TMP/daemon.log"
AMENDS_NO_JIT=1 valgrind --leak-check=full --error-exitcode=99 --errors-for-leak-kinds=definite \
	--show-leak-kinds=definite --num-callers=30 --track-origins=no \
	--suppressions="$top_srcdir/tests/valgrind.supp" --trace-children=no --log-file="$VGLOG" \
	"$AMENDS_MILTER" -c "$T_TMP/vg.conf" -f -p "$SOCK" >>"$T_TMP/daemon.log" 2>&1 &
T_DAEMON_PID=$!
T_DAEMON_LOG="$T_TMP/daemon.log"
t_track "$T_DAEMON_PID"
t_on_exit '[ "${VALGRIND_KEEP:-0}" = 1 ] && cp "$VGLOG" "$top_builddir/valgrind-daemon.log"'

# Start-up under valgrind (212 rules compiled by the interpreter) takes a while: 90 s at most.
for ((i = 0; i < 900; i++)); do
	kill -0 "$T_DAEMON_PID" 2>/dev/null || fail "the daemon died under valgrind at start: $(tail -n 30 "$VGLOG")"
	client_probe "$SOCK" && break
	sleep 0.1
done
client_probe "$SOCK" || fail "the daemon did not come up under valgrind in 90 s"
ok "amends-milter runs under valgrind (JIT off)"

files=("$DEV_CORPUS"/*.eml "$top_srcdir"/contrib/samples/*.eml)
half=$((${#files[@]} / 2))
run_client "$T_TMP/run1.out" -s "$SOCK" -c 4 -t 120 --summary "${files[@]:0:half}"

n_before=$(grep -c 'reloaded' "$T_DAEMON_LOG")
kill -USR1 "$T_DAEMON_PID"
reloads_above() { [ "$(grep -c 'reloaded' "$T_DAEMON_LOG")" -gt "$1" ]; }
t_wait_for 60 reloads_above "$n_before" || fail "SIGUSR1: no 'reloaded' in the log within 60 s"
ok "SIGUSR1 reload under valgrind"

run_client "$T_TMP/run2.out" -s "$SOCK" -c 4 -t 120 --summary "${files[@]:half}"
cat "$T_TMP/run1.out" "$T_TMP/run2.out" >"$T_TMP/run.out"
status_ok "$T_TMP/run.out" || fail "a message was not accepted under valgrind"
n=$(grep -c '^add: X-Amends-Status: ' "$T_TMP/run.out")
m=$(grep -cE '^[^ ]+\.eml: [A-Z]+$' "$T_TMP/run.out")
[ "$n" = "$m" ] && [ "$m" -ge "${#files[@]}" ] || fail "$n of $m messages tagged (${#files[@]} files)"
drafts=$(find "$T_TMP/Maildir" -type f -path '*/cur/*' | wc -l)
[ "$drafts" -gt 0 ] || fail "no draft was written: the drafting path did not run under valgrind"
ok "${#files[@]} messages answered and tagged under valgrind, $drafts drafts written"

# SIGTERM: libmilter leaves smfi_main within a few seconds, valgrind then runs the leak check.
kill -TERM "$T_DAEMON_PID"
for ((i = 0; i < 1200; i++)); do
	kill -0 "$T_DAEMON_PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$T_DAEMON_PID" 2>/dev/null && fail "the daemon under valgrind did not stop within 120 s of SIGTERM"
wait "$T_DAEMON_PID"
rc=$?

grep -q 'ERROR SUMMARY: 0 errors' "$VGLOG" ||
	fail "memcheck reported errors (exit $rc): $(grep -B2 -A30 -m1 -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and)|definitely lost in' "$VGLOG" | head -n 80)"
if grep -q 'definitely lost:' "$VGLOG"; then
	grep -q 'definitely lost: 0 bytes in 0 blocks' "$VGLOG" ||
		fail "definite leaks: $(grep -A30 -m3 'definitely lost in' "$VGLOG" | head -n 100)"
fi
[ "$rc" = 0 ] || fail "the daemon under valgrind exited $rc (99 = memcheck errors): $(tail -n 40 "$VGLOG")"
ok "memcheck: 0 errors, 0 bytes definitely lost ($(grep -o 'indirectly lost: [0-9,]* bytes' "$VGLOG" | head -n 1), $(grep -o 'possibly lost: [0-9,]* bytes' "$VGLOG" | head -n 1))"
