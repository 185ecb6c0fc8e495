#!/bin/bash
# systemd_unit.sh - contrib/systemd/amends-milter.service meets RELIABILITY.md R9.5
#
# Checks every directive R9.5 asks for, with its value, and (when systemd-analyze can judge a
# unit file offline, systemd >= 250) that its exposure score is 3.0 or less and that the file
# parses. The unit is copied into the temp dir with a stand-in ExecStart path, so the check does
# not depend on amends being installed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"

UNIT=$top_srcdir/contrib/systemd/amends-milter.service
[ -r "$UNIT" ] || fail "$UNIT is missing"

# directive VALUE: the value must be exactly this (last assignment wins, as in systemd).
want() {
	local got
	got=$(sed -n "s/^$1=//p" "$UNIT" | tail -1)
	[ "$got" = "$2" ] || fail "$1=$got, expected $1=$2"
}
want User amends
want RuntimeDirectory amends
want UMask 0007
want NoNewPrivileges yes
want ProtectSystem strict
want PrivateTmp yes
want PrivateDevices yes
want ProtectHome read-only
want RestrictAddressFamilies "AF_UNIX AF_INET AF_INET6"
want CapabilityBoundingSet ""
want SystemCallFilter @system-service
want ExecReload '/bin/kill -USR1 $MAINPID'
want Restart on-failure
want LimitNOFILE 65536
grep -q '^ReadWritePaths=/var/lib/amends' "$UNIT" || fail "no ReadWritePaths= for the state directory"
grep -q '^ExecStart=/usr/sbin/amends-milter .*-f' "$UNIT" || fail "ExecStart must run amends-milter in the foreground (-f)"
ok "every directive of R9.5 is set"

command -v systemd-analyze >/dev/null || skip "systemd-analyze not found: exposure not measured"
systemd-analyze security --help 2>/dev/null | grep -q -- '--offline' ||
	skip "systemd-analyze cannot judge a unit file offline (systemd < 250): exposure not measured"
sed 's|/usr/sbin/amends-milter|/bin/true|g' "$UNIT" >"$T_TMP/amends-milter.service"
systemd-analyze security --offline=true --no-pager "$T_TMP/amends-milter.service" >"$T_TMP/sec.txt" 2>&1 ||
	fail "systemd-analyze security failed: $(tail -5 "$T_TMP/sec.txt")"
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$T_TMP/sec.txt")
[ -n "$score" ] || fail "no exposure level in: $(tail -3 "$T_TMP/sec.txt")"
awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' || fail "exposure $score is above 3.0"
ok "systemd-analyze security: exposure $score (at most 3.0)"
