#!/bin/bash
# postfix.sh - end to end with a real Postfix: SMTP in, amends as smtpd milter, Maildir out
#
# Starts a private Postfix (its own config, queue and data directories in the temp dir, smtpd on
# 127.0.0.1 at a free port, virtual(8) delivery into one Maildir) with
#   smtpd_milters = { unix:amends.sock, default_action=accept, connect_timeout=10s, content_timeout=30s }
# and sends mail with swaks. Checks: a delivered message carries X-Amends-Status and none of the
# 20 forged X-Amends-* headers it was sent with (look-alikes stay); 20 messages give 20
# deliveries and no milter reject/tempfail in the Postfix log; with amends stopped, mail is still
# delivered (default_action=accept; RELIABILITY.md R5.1).
# Needs root (Postfix's master runs as root), postfix, swaks, the postfix user and postdrop group.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"
. "$top_srcdir/tests/lib/mtalib.sh"

mta_need_postfix
need_built

SOCK="unix:$T_TMP/amends.sock"
mta_postfix_start "$SOCK"
ok "private Postfix $(postconf -dh mail_version) on 127.0.0.1:$MTA_PF_PORT"

# ---- amends ----------------------------------------------------------------------------------------
# A small scan cap, so part 2b can send a message larger than it through Postfix.
write_config "$T_TMP/pf.conf" socket="$SOCK" socket_mode=0660 socket_group=postfix \
	max_scan_bytes=65536
start_daemon "$T_TMP/pf.conf" "$SOCK"

# ---- helpers -----------------------------------------------------------------------------------------
# send ID [FILE] - one message over SMTP; FILE's Message-ID is replaced by <ID@test>.
send() {
	local id=$1 src=${2:-"$T_TMP/clean.eml"}
	sed "s/^Message-ID: .*/Message-ID: <$id@test>\r/" "$src" >"$T_TMP/send-$id.eml"
	mta_send "$T_TMP/send-$id.eml" d.okafor@example.com
}
delivered() { mta_delivered "$1@test"; }
wait_delivered() { mta_wait_delivered "$1@test" 30; }
headers_of() { mta_headers_of "$@"; }

write_clean_eml "$T_TMP/clean.eml"
write_forged_eml "$T_TMP/forged.eml"
# ---- 1. a forged message comes out with our verdict only; 2. twenty messages, all tagged --------
t_mta_forged_and_batch Postfix 20
refused=$(grep -cE 'milter-reject|451 4\.7\.1' "$MTA_PF_LOG")
[ "$refused" = 0 ] || fail "$refused milter rejects/tempfails in the Postfix log: $(grep -E 'milter-reject|451 4\.7\.1' "$MTA_PF_LOG" | head -3)"
ok "20 of 20 delivered and tagged, 0 milter-reject/451 in the Postfix log"

# ---- 2b. a message over the scan cap: passed on, tagged, nothing refused -----------------------------
# Postfix negotiates no-reply body chunks; past the cap amends must stop collecting without
# sending a reply Postfix does not read (which would derail the session).
{
	sed -e '/^$/q' "$T_TMP/clean.eml"
	for ((i = 0; i < 4000; i++)); do
		printf 'line %05d of a long message that goes on well past the scan cap of amends\r\n' "$i"
	done
} >"$T_TMP/big.eml"
[ "$(stat -c %s "$T_TMP/big.eml")" -gt 200000 ] || fail "test bug: big.eml is too small"
send big1 "$T_TMP/big.eml"
wait_delivered big1
headers_of "$(delivered big1)" >"$T_TMP/big1.hdr"
assert_grep '^X-Amends-Status: ' "$T_TMP/big1.hdr" "oversized message tagged"
assert_grep '^X-Amends-Limits: .*size' "$T_TMP/big1.hdr" "oversized message says what was cut"
[ "$(grep -c 'line 03999 of a long message' "$(delivered big1)")" = 1 ] ||
	fail "oversized message not delivered whole"
grep -qE 'milter-reject|451 4\.7\.1|milter8' "$MTA_PF_LOG" &&
	fail "Postfix complained about the milter: $(grep -E 'milter-reject|451 4\.7\.1|milter8' "$MTA_PF_LOG" | head -3)"
ok "a message over the scan cap: delivered whole, tagged with X-Amends-Limits, no milter errors"

# ---- 3. amends stopped: mail still flows ---------------------------------------------------------------
stop_daemon
[ "$T_DAEMON_STATUS" = 0 ] || fail "amends exit status $T_DAEMON_STATUS after SIGTERM"
send down1
wait_delivered down1
headers_of "$(delivered down1)" | grep -qi '^X-Amends-' && fail "untagged mail expected while amends is down"
grep -qE 'milter-reject|451 4\.7\.1' "$MTA_PF_LOG" && fail "Postfix refused mail while amends was down"
ok "amends stopped: mail still delivered (default_action=accept)"

# ---- 4. amends back: filtered again ---------------------------------------------------------------------
start_daemon "$T_TMP/pf.conf" "$SOCK"
send back1
wait_delivered back1
headers_of "$(delivered back1)" | grep -q '^X-Amends-Status: ' || fail "not tagged after amends came back"
ok "amends restarted: new sessions are filtered again"
stop_daemon

mta_postfix_stop
exit 0
