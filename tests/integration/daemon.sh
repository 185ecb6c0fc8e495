#!/bin/bash
# daemon.sh - the daemon's behaviour, driven over its socket by tests/milterclient
#
# Starts the real amends-milter (foreground, temp socket, temp state) and checks: the bundled
# configuration works; a message gets exactly the expected headers; 20 kinds of forged X-Amends-*
# headers are all deleted (and nothing else is); three messages on one connection do not leak
# state; close-only and dropped connections; abort in the middle of the body; pidfile; stale
# socket; in the background with relative -c and -P (serving, cleaning up at SIGTERM);
# SIGUSR1 with a broken config keeps serving and names file:line; SIGTERM removes the socket; a
# message over limits.max_scan_bytes passes tagged; inet: sockets; socket_mode; -u nobody (as
# root); the whole dev corpus through a daemon on a 256 KiB thread stack.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"
. "$top_srcdir/tests/lib/acceptlib.sh"

need_built
MSG="$T_TMP/msg"
mkdir -p "$MSG"

# ---- messages --------------------------------------------------------------------------------
write_clean_eml "$MSG/clean.eml"
write_forged_eml "$MSG/forged.eml"

# The deletions Postfix needs, per header name (case-insensitive), in any order of names.
cat >"$T_TMP/forged.expect" <<'EOF'
x-amends-draft[1]
x-amends-draft[2]
x-amends-escalate[1]
x-amends-future-header[1]
x-amends-limits[1]
x-amends-rules[1]
x-amends-rules[2]
x-amends-status[10]
x-amends-status[11]
x-amends-status[12]
x-amends-status[1]
x-amends-status[2]
x-amends-status[3]
x-amends-status[4]
x-amends-status[5]
x-amends-status[6]
x-amends-status[7]
x-amends-status[8]
x-amends-status[9]
x-amends-tally[1]
EOF

# A 300 KB body (over the 64 KiB scan cap used below): several body chunks.
{
	sed -e '/^$/,$d' -e '/^\r$/,$d' -e 's/clean-1/big-1/' "$MSG/clean.eml"
	printf '\r\n'
	for ((i = 0; i < 5000; i++)); do
		printf 'line %05d of a long message, nothing to see here, just filler text.\r\n' "$i"
	done
} >"$MSG/big.eml"

# chg_lines FILE - the deletions of a transcript, lower-cased, sorted.
chg_lines() {
	sed -n 's/^chg: \(.*\): (deleted)$/\1/p' "$1" | tr 'A-Z' 'a-z' | LC_ALL=C sort
}

# descending_per_name FILE - every name's deletions go from the highest index down to 1
# (Postfix's cleanup renumbers after each delete: deleting [1] then [2] would miss one).
descending_per_name() {
	awk -F'[][]' '/^chg: .*\(deleted\)$/ {
		n = tolower(substr($1, 6)); i = $2 + 0
		if ((n in last) && i != last[n] - 1) { print "out of order: " n "[" i "] after [" last[n] "]"; bad = 1 }
		last[n] = i
	} END { for (n in last) if (last[n] != 1) { print n " ends at [" last[n] "]"; bad = 1 }; exit bad }' "$1"
}

# check_sigmask WHAT - libmilter's signal thread must be the one to take SIGTERM/SIGHUP/SIGINT:
# a thread that leaves them unblocked (one started before the mask is set) lets SIGTERM kill the
# process outright, leaving socket and pidfile behind (RELIABILITY.md 1.3, "Signals").
check_sigmask() {
	local task blk sig
	for task in /proc/"$T_DAEMON_PID"/task/*; do
		# A thread inside sigwait() has its waited-for signals unblocked while it waits
		# (libmilter's signal thread for these three, our reload thread for SIGUSR1): that is
		# the thread meant to take them.
		case "$(cat "$task/wchan" 2>/dev/null)" in do_sigtimedwait*) continue ;; esac
		blk=$(awk '/^SigBlk:/ {print $2}' "$task/status" 2>/dev/null)
		[ -n "$blk" ] || continue   # the thread ended (a connection closed) while we looked
		for sig in 1 2 15; do
			(( (16#$blk >> (sig - 1)) & 1 )) ||
				fail "$1: thread ${task##*/} ($(cat "$task/comm")) does not block signal $sig (SigBlk $blk)"
		done
	done
	ok "$1: every thread blocks SIGHUP/SIGINT/SIGTERM (only libmilter's sigwait takes them)"
}

SOCK="unix:$T_TMP/amends.sock"

# ---- 1. the bundled configuration --------------------------------------------------------------
# The bundled file as shipped, with only its paths pointed into the temp dir and the source tree
# (so the test never writes to /var/lib/amends).
sed -e "s|^state_dir = .*|state_dir = \"$T_TMP/bundled-state\";|" \
	-e "s|dir = \"\\.\\./rules\"|dir = \"$top_srcdir/rules\"|" \
	-e "s|longstanding_file = \"|longstanding_file = \"$top_srcdir/conf/|" \
	-e "s|templates_dir = \"templates\"|templates_dir = \"$top_srcdir/conf/templates\"|" \
	"$top_srcdir/conf/amends.conf" >"$T_TMP/bundled.conf"
mkdir -p "$T_TMP/bundled-state"
start_daemon "$T_TMP/bundled.conf" "$SOCK"
check_sigmask "bundled config"
run_client "$T_TMP/bundled.out" -s "$SOCK" --basename "$MSG/clean.eml"
status_ok "$T_TMP/bundled.out" || fail "bundled config: not accepted: $(cat "$T_TMP/bundled.out")"
assert_grep '^add: X-Amends-Status: (No|Yes)' "$T_TMP/bundled.out" "bundled config: message tagged"
# The listener is gone when the daemon removes its socket (right after smfi_main returns). The
# message just served restarted libmilter's 5 s poll, so without the wake this takes ~5 s.
t0=$(acc_ms)
kill -TERM "$T_DAEMON_PID"
for ((i = 0; i < 500; i++)); do
	[ -e "$(spec_path "$SOCK")" ] || break
	sleep 0.02
done
stop_ms=$(($(acc_ms) - t0))
stop_daemon
[ "$T_DAEMON_STATUS" = 0 ] || fail "bundled config: exit status $T_DAEMON_STATUS after SIGTERM"
[ ! -e "$(spec_path "$SOCK")" ] || fail "socket left behind after SIGTERM"
ok "SIGTERM: clean exit, socket removed $stop_ms ms after the signal"

# ---- 1b. a prompt stop; an end of message running at the stop still gets its answer --------------
# stop.c wakes libmilter's listener, whose poll would otherwise hold a stop up to 5 s, then waits
# (at most 5 s) for the ends of message running. Only where configure found libmilter's mi_stop.
if grep -q 'HAVE_MI_STOP=1' "$top_builddir/Makefile"; then
	[ "$stop_ms" -lt 2000 ] ||
		fail "an idle daemon left smfi_main $stop_ms ms after SIGTERM (libmilter's poll not woken)"
	# An end of message held by the tally: sqlite3 keeps the write lock 1.5 s and the daemon
	# waits busy_timeout_ms (1 s) for it, from about 0.2 s to 1.2 s; SIGTERM comes at 0.6 s.
	acc_config "$T_TMP/drain.conf" state="$T_TMP/drain" store="sqlite:$T_TMP/drain/tally.db"
	acc_complaint_eml "$MSG/drain.eml" "drain@load.example" drain-1
	start_daemon "$T_TMP/drain.conf" "$SOCK"
	printf 'BEGIN EXCLUSIVE;\n.shell sleep 1.5\nCOMMIT;\n' | sqlite3 "$T_TMP/drain/tally.db" &
	locker=$!
	sleep 0.2
	"$MILTERCLIENT" -s "$SOCK" -t 20 --basename "$MSG/drain.eml" >"$T_TMP/drain.out" 2>"$T_TMP/drain.err" &
	client=$!
	sleep 0.4
	t0=$(acc_ms)
	kill -TERM "$T_DAEMON_PID"
	refused() { ! "$MILTERCLIENT" -s "$SOCK" -t 2 --close-only >/dev/null 2>&1; }
	t_wait_for 2 refused || fail "the listener still accepted 2 s after SIGTERM"
	ok "SIGTERM: no new connection accepted after $(($(acc_ms) - t0)) ms"
	wait "$client" || fail "an end of message running at SIGTERM failed: $(cat "$T_TMP/drain.out" "$T_TMP/drain.err")"
	wait "$locker"
	assert_grep '^add: X-Amends-Status: Yes; categories=complaint;' "$T_TMP/drain.out" \
		"an end of message running at SIGTERM is answered and tagged"
	stop_daemon
	[ "$T_DAEMON_STATUS" = 0 ] || fail "exit status $T_DAEMON_STATUS after a stop with an end of message running"
	assert_grep 'waiting up to 5000 ms for 1 message' "$T_DAEMON_LOG" "the stop waited for the end of message"
else
	t_note "NOT CHECKED: a prompt stop (libmilter without mi_stop: stops take its 5 s poll)"
fi

# ---- 2. exact headers, forged headers, several messages, abort, close ----------------------------
write_config "$T_TMP/t.conf" pidfile="$T_TMP/amends.pid"
start_daemon "$T_TMP/t.conf" "$SOCK"

check_sigmask "test config"

[ -s "$T_TMP/amends.pid" ] || fail "pidfile $T_TMP/amends.pid not written"
[ "$(cat "$T_TMP/amends.pid")" = "$T_DAEMON_PID" ] ||
	fail "pidfile says $(cat "$T_TMP/amends.pid"), daemon is $T_DAEMON_PID"
ok "pidfile written"

run_client "$T_TMP/clean.out" -s "$SOCK" --basename "$MSG/clean.eml"
sed -i 's/^clean.eml: CONTINUE$/clean.eml: ACCEPT/' "$T_TMP/clean.out"
printf '%s\n' 'clean.eml: ACCEPT' 'add: X-Amends-Status: No; lang=en' >"$T_TMP/clean.expect"
assert_same "$T_TMP/clean.expect" "$T_TMP/clean.out" "no rules: exactly X-Amends-Status: No; lang=en"

run_client "$T_TMP/forged.out" -s "$SOCK" --basename "$MSG/forged.eml"
status_ok "$T_TMP/forged.out" || fail "forged: not accepted"
chg_lines "$T_TMP/forged.out" >"$T_TMP/forged.got"
assert_same "$T_TMP/forged.expect" "$T_TMP/forged.got" "20 forged X-Amends-* headers deleted, look-alikes kept"
descending_per_name "$T_TMP/forged.out" >"$T_TMP/order.out" ||
	fail "forged headers not deleted from the last index down: $(cat "$T_TMP/order.out")"
ok "deletions run from the highest index down"
[ "$(grep -c '^chg: ' "$T_TMP/forged.out")" = 20 ] || fail "forged: other headers changed"
[ "$(grep -c '^add: X-Amends-Status: ' "$T_TMP/forged.out")" = 1 ] ||
	fail "forged: not exactly one X-Amends-Status added"
assert_no_grep '^(ins|add): X-Amends-(Rules|Tally|Draft|Escalate)' "$T_TMP/forged.out" \
	"forged: no verdict headers invented from the forged ones"

# Three messages on one connection: forged, clean, forged. No deletion may leak to the clean one.
run_client "$T_TMP/three.out" -s "$SOCK" -n 3 --basename "$MSG/forged.eml" "$MSG/clean.eml" "$MSG/forged.eml"
[ "$(grep -cE '^[a-z]+\.eml: (ACCEPT|CONTINUE)$' "$T_TMP/three.out")" = 3 ] ||
	fail "three messages: $(cat "$T_TMP/three.out")"
awk '/^[a-z]+\.eml: /{m++} /^chg: /{c[m]++} /^add: X-Amends-Status/{s[m]++}
     END { exit !(c[1] == 20 && c[2] == 0 && c[3] == 20 && s[1] == 1 && s[2] == 1 && s[3] == 1) }' \
	"$T_TMP/three.out" || fail "three messages on one connection leak state: $(cat "$T_TMP/three.out")"
ok "three messages on one connection, no state leaks"

# A connection with only close (negotiation, then QUIT), and one dropped without QUIT.
run_client "$T_TMP/close.out" -s "$SOCK" --close-only -c 5
[ "$(grep -c '^close: ok$' "$T_TMP/close.out")" = 5 ] || fail "close-only: $(cat "$T_TMP/close.out")"
run_client "$T_TMP/drop.out" -s "$SOCK" --close-only --no-quit -c 5
ok "close-only and dropped connections"

# Abort in the middle of the body (after the first chunk), then a clean message, same connection.
run_client "$T_TMP/abort.out" -s "$SOCK" -n 2 --abort-at body:1 --basename "$MSG/big.eml" "$MSG/clean.eml"
sed -i 's/: CONTINUE$/: ACCEPT/' "$T_TMP/abort.out"
printf '%s\n' 'big.eml: ABORTED' 'stage: body' 'clean.eml: ACCEPT' 'add: X-Amends-Status: No; lang=en' \
	>"$T_TMP/abort.expect"
assert_same "$T_TMP/abort.expect" "$T_TMP/abort.out" "abort mid-body, then a clean message"
# Aborts at every other stage, on a forged message, followed by a clean one.
for st in mail header eoh; do
	run_client "$T_TMP/abort-$st.out" -s "$SOCK" -n 2 --abort-at "$st:1" --basename \
		"$MSG/forged.eml" "$MSG/clean.eml"
	grep -q '^chg: ' "$T_TMP/abort-$st.out" && fail "abort at $st: deletions leaked into the next message"
done
ok "aborts at mail/header/eoh leave no state behind"

# Protocol 2 (an old MTA): still tagged, still cleaned.
run_client "$T_TMP/v2.out" -s "$SOCK" --protocol 2 --show-optneg --basename "$MSG/forged.eml"
assert_grep '^optneg: version=2 ' "$T_TMP/v2.out" "protocol 2: negotiated version 2"
chg_lines "$T_TMP/v2.out" >"$T_TMP/v2.got"
assert_same "$T_TMP/forged.expect" "$T_TMP/v2.got" "protocol 2: forged headers deleted"

# Concurrency: 8 connections x 10 messages.
run_client "$T_TMP/conc.out" -s "$SOCK" -c 8 -n 10 -q --summary "$MSG/clean.eml" "$MSG/forged.eml"
assert_grep '^summary: CONTINUE=[0-9]+ ACCEPT=[0-9]+ REJECT=0 TEMPFAIL=0 DISCARD=0 CONNFAIL=0 SHUTDOWN=0 ABORTED=0 ERROR=0$' \
	"$T_TMP/conc.out" "8 concurrent connections x 10 messages"

# ---- 3. SIGUSR1 with a broken file keeps serving and says where --------------------------------
cp "$T_TMP/t.conf" "$T_TMP/t.conf.good"
printf 'milter = {\n  timeout_s = ;\n};\n' >"$T_TMP/t.conf"
kill -USR1 "$T_DAEMON_PID"
t_wait_for 10 grep -Eq 't\.conf:[0-9]+' "$T_DAEMON_LOG" ||
	fail "SIGUSR1 with a broken config: no file:line in the log"
ok "broken config on reload reported as file:line"
kill -0 "$T_DAEMON_PID" || fail "daemon died on a broken reload"
run_client "$T_TMP/reload.out" -s "$SOCK" --basename "$MSG/clean.eml"
assert_grep '^add: X-Amends-Status: No' "$T_TMP/reload.out" "still serving after a broken reload"
cp "$T_TMP/t.conf.good" "$T_TMP/t.conf"
n_before=$(grep -c 'reloaded' "$T_DAEMON_LOG")
kill -USR1 "$T_DAEMON_PID"
reloads_above() { [ "$(grep -c 'reloaded' "$T_DAEMON_LOG")" -gt "$1" ]; }
t_wait_for 10 reloads_above "$n_before" ||
	fail "SIGUSR1 with a good config: no 'reloaded' in the log"
run_client "$T_TMP/reload2.out" -s "$SOCK" --basename "$MSG/clean.eml"
assert_grep '^add: X-Amends-Status: No' "$T_TMP/reload2.out" "serving after a good reload"

stop_daemon
[ "$T_DAEMON_STATUS" = 0 ] || fail "exit status $T_DAEMON_STATUS after SIGTERM"
[ ! -e "$T_TMP/amends.pid" ] || fail "pidfile left behind after SIGTERM"
[ ! -e "$(spec_path "$SOCK")" ] || fail "socket left behind after SIGTERM"
ok "pidfile and socket removed on SIGTERM"

# ---- 4. a stale socket is replaced -----------------------------------------------------------------
start_daemon "$T_TMP/t.conf" "$SOCK"
kill -KILL "$T_DAEMON_PID"
wait "$T_DAEMON_PID" 2>/dev/null
[ -S "$(spec_path "$SOCK")" ] || fail "SIGKILL left no stale socket to test with"
start_daemon "$T_TMP/t.conf" "$SOCK"
run_client "$T_TMP/stale.out" -s "$SOCK" --basename "$MSG/clean.eml"
assert_grep '^add: X-Amends-Status: No' "$T_TMP/stale.out" "stale socket replaced at start"
stop_daemon

# ---- 4b. in the background, started with relative -c and -P ----------------------------------------
# It changes to / when it detaches, and reads the configuration again then (and at each reload):
# a relative -c passed the check and failed the start, and a relative pidfile went to /. (A
# reload logs to syslog here, not to a file this test reads: test_config checks the paths.)
bg_pidfile() { [ -s "$T_TMP/rel.pid" ]; }
(cd "$T_TMP" && exec "$AMENDS_MILTER" -c t.conf -p "$SOCK" -P rel.pid) >>"$T_DAEMON_LOG" 2>&1 ||
	fail "in the background with -c t.conf: exit status $?"
t_wait_for 10 bg_pidfile || fail "in the background: no pidfile at $T_TMP/rel.pid"
bg_pid=$(cat "$T_TMP/rel.pid")
t_track "$bg_pid"
wait_ready "$SOCK" "$bg_pid" || fail "in the background with -c t.conf: it did not come up"
run_client "$T_TMP/bg.out" -s "$SOCK" --basename "$MSG/clean.eml"
assert_grep '^add: X-Amends-Status: No' "$T_TMP/bg.out" "in the background, relative -c and -P: serving"
t_kill_wait "$bg_pid" 10 || fail "in the background: SIGTERM ignored for 10 s"
[ ! -e "$T_TMP/rel.pid" ] || fail "in the background: pidfile left behind after SIGTERM"
[ ! -e "$(spec_path "$SOCK")" ] || fail "in the background: socket left behind after SIGTERM"
ok "in the background: pidfile and socket removed on SIGTERM"

# ---- 5. over limits.max_scan_bytes: passed on, tagged --------------------------------------------
write_config "$T_TMP/limit.conf" max_scan_bytes=65536
start_daemon "$T_TMP/limit.conf" "$SOCK"
run_client "$T_TMP/limit.out" -s "$SOCK" --basename "$MSG/big.eml" "$MSG/forged.eml"
status_ok "$T_TMP/limit.out" || fail "over the scan cap: not accepted: $(cat "$T_TMP/limit.out")"
awk '/^big\.eml: /{m=1} /^forged\.eml: /{m=0} m && /^add: X-Amends-Status: /{s=1} m && /^add: X-Amends-Limits: /{l=1}
     END { exit !(s && l) }' "$T_TMP/limit.out" ||
	fail "over the scan cap: expected X-Amends-Status and X-Amends-Limits: $(cat "$T_TMP/limit.out")"
ok "a message over max_scan_bytes passes, tagged with X-Amends-Limits"
stop_daemon

# ---- 6. inet: socket, socket_mode ------------------------------------------------------------------
port=$(free_port) || fail "no free port"
write_config "$T_TMP/inet.conf" socket="inet:$port@127.0.0.1"
start_daemon "$T_TMP/inet.conf" "inet:$port@127.0.0.1"
run_client "$T_TMP/inet.out" -s "inet:$port@127.0.0.1" --basename "$MSG/clean.eml"
assert_grep '^add: X-Amends-Status: No' "$T_TMP/inet.out" "inet: socket serves"
stop_daemon

write_config "$T_TMP/mode.conf" socket_mode=0640
start_daemon "$T_TMP/mode.conf" "$SOCK"
mode=$(stat -c %a "$(spec_path "$SOCK")")
[ "$mode" = 640 ] || fail "socket_mode 0640: socket has mode $mode"
ok "unix socket mode from the config ($mode)"
stop_daemon

# ---- 7. -u nobody: privileges dropped after binding ---------------------------------------------
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	nobody_uid=$(id -u nobody)
	chmod 777 "$T_TMP/state"
	start_daemon "$T_TMP/t.conf" "$SOCK" -u nobody
	uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$T_DAEMON_PID/status")
	[ "$uids" = "$nobody_uid $nobody_uid $nobody_uid $nobody_uid" ] ||
		fail "-u nobody: Uid line is '$uids', expected $nobody_uid everywhere"
	for task in /proc/"$T_DAEMON_PID"/task/*; do
		tu=$(awk '/^Uid:/ {print $2}' "$task/status")
		[ "$tu" = "$nobody_uid" ] || fail "-u nobody: thread $task runs as uid $tu"
	done
	run_client "$T_TMP/nobody.out" -s "$SOCK" --basename "$MSG/clean.eml"
	assert_grep '^add: X-Amends-Status: No' "$T_TMP/nobody.out" "-u nobody: runs as uid $nobody_uid and serves"
	stop_daemon
else
	t_note "not root (or no user nobody): the -u nobody check is not run"
fi

# ---- 8. the whole dev corpus on a 256 KiB thread stack ---------------------------------------------
if [ -d "$DEV_CORPUS" ]; then
	drafting=(drafts=off)
	[ -d "$top_srcdir/conf/templates" ] &&
		drafting=(drafts=on maildir="$T_TMP/Maildir" templates="$top_srcdir/conf/templates")
	write_config "$T_TMP/stack.conf" rules="$top_srcdir/rules" store="sqlite:$T_TMP/state/tally.db" \
		"${drafting[@]}" log_level=info
	# glibc sizes new threads' stacks from RLIMIT_STACK: libmilter's threads get 256 KiB.
	(ulimit -s 256 && exec "$AMENDS_MILTER" -c "$T_TMP/stack.conf" -f -p "$SOCK" \
		>>"$T_TMP/daemon.log" 2>&1) &
	T_DAEMON_PID=$!
	t_track "$T_DAEMON_PID"
	wait_ready "$SOCK" "$T_DAEMON_PID" || fail "daemon did not start under ulimit -s 256"
	grep -Eq '^Max stack size +262144 ' "/proc/$T_DAEMON_PID/limits" ||
		fail "stack limit not in force: $(grep 'stack' "/proc/$T_DAEMON_PID/limits")"
	files=("$DEV_CORPUS"/*.eml)
	run_client "$T_TMP/corpus.out" -s "$SOCK" -c 4 --summary "${files[@]}"
	status_ok "$T_TMP/corpus.out" || fail "corpus: a message was not accepted"
	# 4 connections share the files out; the last may wrap round to the first files.
	n=$(grep -c '^add: X-Amends-Status: ' "$T_TMP/corpus.out")
	m=$(grep -cE '^[^ ]+\.eml: [A-Z]+$' "$T_TMP/corpus.out")
	[ "$n" = "$m" ] && [ "$m" -ge "${#files[@]}" ] || fail "corpus: $n of $m messages tagged"
	kill -0 "$T_DAEMON_PID" || fail "daemon died on the dev corpus under a 256 KiB stack"
	stop_daemon
	ok "${#files[@]} dev corpus messages through a daemon on 256 KiB thread stacks"
else
	t_note "no dev corpus at $DEV_CORPUS: the 256 KiB stack run is not done"
fi

exit 0
