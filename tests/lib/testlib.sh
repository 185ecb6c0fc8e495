# testlib.sh - shell helpers sourced by every integration test (bash)
#
# Gives each test a private temp dir (removed on exit, and everything the test started is
# stopped), free TCP ports, a config writer, and start/stop of the daemon in the foreground
# with its log in a file. A test says `skip "why"` (exit 77, automake SKIP) or `fail "why"`
# (exit 1, with the daemon's log tail); `ok "what"` notes a passed check.
#
# Environment (set by `make check`, defaults for running a test by hand from the build dir):
#   top_srcdir    the source tree (the shared corpus is $top_srcdir/../shared)
#   top_builddir  the build tree (src/amends-milter, tests/milterclient)
#   KEEP_TMP=1    keep the temp dir for a post-mortem
#
# OWNERSHIP  t_cleanup (the EXIT trap) kills every pid in T_PIDS, runs every command given to
#            t_on_exit, fails the test when a ThreadSanitizer report is in $T_TMP, and removes
#            $T_TMP.

if [ -z "${BASH_VERSION:-}" ]; then
	echo "testlib.sh needs bash" >&2
	exit 99
fi
set -u

t_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${top_srcdir:=$(cd "$t_here/../.." && pwd)}"
: "${top_builddir:=$(pwd)}"
export top_srcdir top_builddir

AMENDS_MILTER="$top_builddir/src/amends-milter"
MILTERCLIENT="$top_builddir/tests/milterclient"
SHARED_DIR="$top_srcdir/../shared"
DEV_CORPUS="$SHARED_DIR/corpus/dev/messages"
T_NAME=$(basename "$0" .sh)

T_PIDS=""
T_EXIT_CMDS=()
T_DAEMON_PID=""
T_DAEMON_LOG=""
T_DAEMON_SOCK=""

# Unix socket paths must stay under 108 bytes, so the temp dir lives in /tmp, not the build dir.
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/amends-$T_NAME.XXXXXX") || { echo "mktemp failed" >&2; exit 99; }
chmod 755 "$T_TMP"

t_note() { echo "[$T_NAME] $*"; }
ok() { echo "ok - $*"; }

skip() {
	echo "SKIP: $T_NAME: $*"
	exit 77
}

# t_dump_logs - the tail of every log the test made, for the post-mortem in the .log file.
t_dump_logs() {
	local f
	for f in "$T_TMP"/*.log; do
		[ -f "$f" ] || continue
		echo "---- tail of $(basename "$f") ----"
		tail -n 40 "$f"
	done
}

fail() {
	echo "FAIL: $T_NAME: $*" >&2
	t_dump_logs >&2
	exit 1
}

# t_on_exit CMD... - run CMD when the test ends, whatever the outcome (e.g. stop postfix).
t_on_exit() { T_EXIT_CMDS+=("$*"); }

# t_track PID - kill PID at exit if it still runs.
t_track() { T_PIDS="$T_PIDS $1"; }

# t_kill_wait PID [SECONDS] - SIGTERM, wait up to SECONDS (default 10), then SIGKILL.
# Returns 0 when it stopped on SIGTERM, 1 when it had to be killed.
t_kill_wait() {
	local pid=$1 secs=${2:-10} i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	return 1
}

# t_check_tsan - 1 (and the reports on stderr) when a ThreadSanitizer report is in any file of
# $T_TMP: the daemon's log, a client's saved stderr. A daemon that halts on a report exits 66, but
# not every test looks at every exit status (a daemon killed at the end, a report at exit), so
# the end of every test looks at the logs as well. Costs one grep where there is no TSan.
t_check_tsan() {
	local f hits
	hits=$(grep -rlsF -D skip -- 'WARNING: ThreadSanitizer' "$T_TMP") || return 0
	for f in $hits; do
		echo "FAIL: $T_NAME: ThreadSanitizer report in $f:" >&2
		sed -n '/WARNING: ThreadSanitizer/,/^SUMMARY: ThreadSanitizer/p' "$f" | head -n 200 >&2
	done
	return 1
}

t_cleanup() {
	local rc=$? pid cmd
	trap - EXIT
	for cmd in "${T_EXIT_CMDS[@]}"; do
		eval "$cmd" >/dev/null 2>&1 || true
	done
	for pid in $T_PIDS; do
		t_kill_wait "$pid" 5 || true
	done
	wait 2>/dev/null
	t_check_tsan || rc=1
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		echo "kept $T_TMP" >&2
	else
		rm -rf "$T_TMP"
	fi
	exit $rc
}
trap t_cleanup EXIT
trap 'exit 1' INT TERM HUP

# t_wait_for SECONDS CMD... - poll CMD every 0.1 s until it succeeds; 1 on timeout.
t_wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# free_port - print a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	local port i
	if command -v python3 >/dev/null; then
		python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' && return 0
	fi
	for ((i = 0; i < 100; i++)); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

# need_built - skip unless the daemon and the client are built.
need_built() {
	[ -x "$AMENDS_MILTER" ] || skip "$AMENDS_MILTER is not built"
	[ -x "$MILTERCLIENT" ] || skip "$MILTERCLIENT is not built"
}

# write_config FILE [key=value]... - a test configuration. Keys:
#   socket= (default unix:$T_TMP/amends.sock), socket_mode=, socket_group=, user=, pidfile=,
#   log_level= (debug),
#   timeout_s=, rules= (a dir; default an empty one: no rules), store= (default "none"),
#   drafts=on|off (off), maildir=, state= (default $T_TMP/state), max_scan_bytes=,
#   templates= (drafts.templates_dir), unsafe_rules= (rules.unsafe_rules),
#   eom_budget_ms= (drafts.eom_budget_ms; default 5000 here, so a test finds a draft on disk
#   when the reply is in; 0 is the shipped default).
write_config() {
	local file=$1 kv k v
	shift
	local socket="unix:$T_TMP/amends.sock" socket_mode="" socket_group="" user="" pidfile=""
	local log_level="debug"
	local timeout_s="" rules="" store="none" drafts="off" maildir="" state="$T_TMP/state"
	local max_scan_bytes="" templates="" unsafe_rules="" eom_budget_ms=""
	for kv in "$@"; do
		k=${kv%%=*}
		v=${kv#*=}
		case $k in
		socket | socket_mode | socket_group | user | pidfile | log_level | timeout_s | rules | store | drafts | \
			maildir | state | max_scan_bytes | templates | unsafe_rules | eom_budget_ms)
			printf -v "$k" '%s' "$v" ;;
		*) fail "write_config: unknown key $k" ;;
		esac
	done
	if [ -z "$rules" ]; then
		rules="$T_TMP/norules"
		mkdir -p "$rules"
	fi
	mkdir -p "$state"
	{
		echo "# written by $T_NAME"
		echo "state_dir = \"$state\";"
		echo "milter = {"
		echo "  socket = \"$socket\";"
		[ -n "$socket_mode" ] && echo "  socket_mode = \"$socket_mode\";"
		[ -n "$socket_group" ] && echo "  socket_group = \"$socket_group\";"
		[ -n "$user" ] && echo "  user = \"$user\";"
		[ -n "$pidfile" ] && echo "  pidfile = \"$pidfile\";"
		[ -n "$timeout_s" ] && echo "  timeout_s = $timeout_s;"
		echo "  log_level = \"$log_level\";"
		echo "};"
		[ -n "$max_scan_bytes" ] && echo "limits = { max_scan_bytes = $max_scan_bytes; };"
		echo "rules = { dir = \"$rules\";${unsafe_rules:+ unsafe_rules = \"$unsafe_rules\";} };"
		echo "tally = { store = \"$store\"; };"
		echo "drafts = {"
		if [ "$drafts" = on ]; then echo "  enabled = true;"; else echo "  enabled = false;"; fi
		[ -n "$maildir" ] && echo "  maildir = \"$maildir\";"
		[ -n "$templates" ] && echo "  templates_dir = \"$templates\";"
		# tests look for a draft as soon as the reply is in: wait for it (default 0)
		echo "  eom_budget_ms = ${eom_budget_ms:-5000};"
		echo "};"
	} >"$file"
}

# client_probe SPEC - can a milter session be negotiated on SPEC now?
client_probe() {
	"$MILTERCLIENT" -t 2 -s "$1" --close-only >/dev/null 2>&1
}

# start_daemon CONF SPEC [args...] - run amends-milter -f in the background with its log in
# $T_TMP/daemon.log (appended: restarts keep the history); wait (10 s at most) until SPEC
# answers a milter negotiation. Sets T_DAEMON_PID, T_DAEMON_SOCK.
start_daemon() {
	local conf=$1 spec=$2
	shift 2
	T_DAEMON_LOG="$T_TMP/daemon.log"
	T_DAEMON_SOCK=$spec
	echo "==== start: amends-milter -c $conf -f -p $spec $*" >>"$T_DAEMON_LOG"
	"$AMENDS_MILTER" -c "$conf" -f -p "$spec" "$@" >>"$T_DAEMON_LOG" 2>&1 &
	T_DAEMON_PID=$!
	t_track "$T_DAEMON_PID"
	wait_ready "$spec" "$T_DAEMON_PID" || fail "amends-milter did not come up on $spec"
}

# wait_ready SPEC PID - until SPEC answers (10 s), failing early when PID died.
wait_ready() {
	local spec=$1 pid=$2 i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		client_probe "$spec" && return 0
		sleep 0.1
	done
	return 1
}

# stop_daemon [PID] - SIGTERM and wait (10 s); fails when it had to be killed. Prints nothing;
# sets T_DAEMON_STATUS to the exit status.
stop_daemon() {
	local pid=${1:-$T_DAEMON_PID}
	t_kill_wait "$pid" 10 || fail "amends-milter (pid $pid) ignored SIGTERM for 10 s"
	wait "$pid" 2>/dev/null
	T_DAEMON_STATUS=$?
}

# spec_path SPEC - the path of a unix: socket spec.
spec_path() {
	local s=$1
	s=${s#unix:}
	s=${s#local:}
	echo "$s"
}

# run_client OUT [milterclient args...] - run the client, transcript to OUT, its stderr to
# OUT.err; fails the test on a non-zero exit.
run_client() {
	local out=$1
	shift
	"$MILTERCLIENT" "$@" >"$out" 2>"$out.err" ||
		fail "milterclient $* exited $?: $(head -c 2000 "$out.err") $(head -c 2000 "$out")"
}

# assert_same EXPECTED_FILE ACTUAL_FILE WHAT - byte-for-byte, with a diff on failure.
assert_same() {
	diff -u "$1" "$2" >"$T_TMP/diff.out" || fail "$3: transcript differs:
$(cat "$T_TMP/diff.out")"
	ok "$3"
}

# assert_grep PATTERN FILE WHAT / assert_no_grep PATTERN FILE WHAT (extended regex)
# t_headers_of FILE - the header block of a message, folded lines joined (CRLF or LF).
t_headers_of() {
	sed -e 's/\r$//' -e '/^$/q' "$1" | awk '/^[ \t]/ { cur = cur " " $0; next }
		{ if (cur != "") print cur; cur = $0 } END { if (cur != "") print cur }'
}

# t_check_forged_gone HDRFILE MTA - after write_forged_eml went through MTA and amends: exactly
# one X-Amends-* header (our X-Amends-Status), and every look-alike header kept.
t_check_forged_gone() {
	local n keep
	n=$(grep -ciE '^x-amends-' "$1")
	[ "$n" = 1 ] || fail "delivered forged message has $n X-Amends-* headers, expected 1: $(grep -iE '^x-amends' "$1")"
	assert_grep '^X-Amends-Status: (No|Yes)' "$1" "delivered message carries X-Amends-Status"
	for keep in X-Amendsment X-Amend-Status Y-X-Amends-Status X-Amends; do
		grep -q "^$keep: keep$" "$1" || fail "look-alike header $keep was removed"
	done
	ok "20 forged X-Amends-* headers gone after $2, look-alikes kept"
}

# t_mta_forged_and_batch MTA N - through a real MTA in front of amends: a forged message comes
# out with our verdict only, then N messages all come out tagged. Uses the caller's send NAME
# [FILE], wait_delivered NAME, delivered NAME and headers_of FILE, and write_forged_eml's
# $T_TMP/forged.eml.
t_mta_forged_and_batch() {
	local i
	[ "$(grep -ciE '^x-amends-[^:]*:|^x-amends-status :' "$T_TMP/forged.eml")" = 20 ] ||
		fail "test bug: the forged message should have 20 X-Amends-* headers"
	send forged1 "$T_TMP/forged.eml"
	wait_delivered forged1
	headers_of "$(delivered forged1)" >"$T_TMP/forged1.hdr"
	t_check_forged_gone "$T_TMP/forged1.hdr" "$1"
	for ((i = 1; i <= $2; i++)); do
		send "run$i"
	done
	for ((i = 1; i <= $2; i++)); do
		wait_delivered "run$i"
		headers_of "$(delivered "run$i")" | grep -q '^X-Amends-Status: ' ||
			fail "message run$i delivered untagged"
	done
}

assert_grep() {
	grep -Eq -- "$1" "$2" || fail "$3: /$1/ not in $2: $(head -c 3000 "$2")"
	ok "$3"
}
assert_no_grep() {
	! grep -Eq -- "$1" "$2" || fail "$3: /$1/ unexpectedly in $2: $(grep -E -- "$1" "$2" | head -5)"
	ok "$3"
}

# status_ok FILE - every message line of a transcript says ACCEPT or CONTINUE (fail open).
status_ok() {
	local bad
	bad=$(grep -E '^[^ ]+: [A-Z]+$' "$1" | grep -Ev ': (ACCEPT|CONTINUE)$' | head -5)
	[ -z "$bad" ]
}

# ---- test messages ---------------------------------------------------------------------------
# crlf - LF line ends to CRLF, as SMTP carries mail.
crlf() { sed 's/$/\r/'; }

# write_clean_eml FILE - a plain English customer question, no X-Amends-* headers.
write_clean_eml() {
	crlf >"$1" <<'EOF'
From: Daniel Okafor <d.okafor@example.com>
To: support@shop.example
Subject: Question about my order
Date: Wed, 14 Oct 2026 19:20:00 +0000
Message-ID: <clean-1@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"

Hello, could you tell me when order 4471 ships? Thanks, Daniel
EOF
}

# write_forged_eml FILE - a message with twenty forged X-Amends-* headers (case, folding, repeats,
# whitespace, 8-bit, every header amends writes) and four look-alikes that must stay. The
# expected deletions per name are in daemon.sh and mt/common.lua. printf keeps tabs and CRs exact.
write_forged_eml() {
	{
		printf 'From: Mallory <mallory@example.net>\r\n'
		printf 'To: support@shop.example\r\n'
		printf 'Subject: forged verdicts\r\n'
		printf 'X-Amends-Status: Yes; categories=refund; score=refund:9.0\r\n'   # 1
		printf 'x-amends-status: yes\r\n'                                        # 2 lower case
		printf 'X-AMENDS-STATUS: YES\r\n'                                        # 3 upper case
		printf 'X-aMeNdS-sTaTuS: mixed\r\n'                                      # 4 mixed case
		printf 'X-Amends-Status:No-space\r\n'                                    # 5 no space
		printf 'X-Amends-Status:      many spaces\r\n'                           # 6 spaces
		printf 'X-Amends-Status:\ttab\r\n'                                       # 7 tab
		printf 'X-Amends-Status : space before colon\r\n'                        # 8 obsolete syntax
		printf 'X-Amends-Status:\r\n\tfolded-only\r\n'                           # 9 value on next line
		printf 'X-Amends-Status: Yes;\r\n categories=abuse;\r\n\tlang=en\r\n'    # 10 folded twice
		printf 'X-Amends-Status:\r\n'                                            # 11 empty value
		printf 'X-Amends-Rules: R1,R2\r\n'                                       # 12
		printf 'X-Amends-Tally: complaint=99; refund=99\r\n'                     # 13
		printf 'X-Amends-Draft: apology\r\n'                                     # 14
		printf 'X-Amends-Escalate: abuse\r\n'                                    # 15
		printf 'X-Amends-Limits: depth,parts\r\n'                                # 16
		printf 'X-Amends-Future-Header: x\r\n'                                   # 17 unknown name
		printf 'x-amends-rules: R3\r\n'                                          # 18 repeat, lower
		printf 'X-Amends-Status: Ja \xe2\x9c\x93 \xff\r\n'                       # 19 8-bit value
		printf 'X-AMENDS-DRAFT:   winback  \r\n'                                 # 20 repeat, padded
		printf 'X-Amendsment: keep\r\n'
		printf 'X-Amend-Status: keep\r\n'
		printf 'Y-X-Amends-Status: keep\r\n'
		printf 'X-Amends: keep\r\n'
		printf 'Message-ID: <forged-1@example.net>\r\n'
		printf '\r\n'
		printf 'Nothing to see here.\r\n'
	} >"$1"
}
