#!/bin/bash
# miltertest.sh - the daemon driven by Debian's miltertest (OpenDKIM's Lua milter test tool)
#
# An MTA side we did not write: each tests/integration/mt/*.lua script (except common.lua)
# runs against one real amends-milter on a temp socket, with no rules loaded. Covers
# negotiation (protocol 6 and 2), a full message, 20 forged X-Amends-* headers, abort in the
# body, close-only and dropped connections, three messages on one connection.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"

MILTERTEST=${MILTERTEST:-$(command -v miltertest || true)}
[ -n "$MILTERTEST" ] && [ -x "$MILTERTEST" ] ||
	skip "miltertest not found (Debian package miltertest)"
[ -x "$AMENDS_MILTER" ] || skip "$AMENDS_MILTER is not built"
[ -x "$MILTERCLIENT" ] || skip "$MILTERCLIENT is not built (used to wait for the socket)"

MTDIR="$top_srcdir/tests/integration/mt"
SOCK="unix:$T_TMP/amends.sock"
write_config "$T_TMP/mt.conf"
start_daemon "$T_TMP/mt.conf" "$SOCK"

failed=""
for script in "$MTDIR"/*.lua; do
	name=$(basename "$script" .lua)
	[ "$name" = common ] && continue
	echo "== $name"
	# miltertest waits 10 s per read at most; the whole script gets 60 s.
	timeout 60 "$MILTERTEST" -D "sock=$SOCK" -D "mtdir=$MTDIR" -s "$script" \
		>"$T_TMP/mt-$name.out" 2>&1
	rc=$?
	cat "$T_TMP/mt-$name.out"
	if [ "$rc" != 0 ]; then
		echo "FAIL: $name (exit $rc)"
		failed="$failed $name"
	fi
	kill -0 "$T_DAEMON_PID" 2>/dev/null || fail "amends-milter died during $name"
done
[ -z "$failed" ] || fail "miltertest scripts failed:$failed"
stop_daemon
[ "$T_DAEMON_STATUS" = 0 ] || fail "exit status $T_DAEMON_STATUS after SIGTERM"
exit 0
