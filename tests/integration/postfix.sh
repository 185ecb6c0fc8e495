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

[ "$(id -u)" = 0 ] || skip "needs root to run a private Postfix (run the suite as root, as CI does)"
for tool in postfix postconf swaks; do
	command -v "$tool" >/dev/null || skip "$tool not found (Debian packages postfix, swaks)"
done
id postfix >/dev/null 2>&1 || skip "no user postfix (install the Debian package postfix)"
getent group postdrop >/dev/null || skip "no group postdrop (install the Debian package postfix)"
need_built

PF="$T_TMP/pf"
PFC="$PF/etc"
MAILDIR="$PF/mail/shop.example/Maildir"
SOCK="unix:$T_TMP/amends.sock"
mkdir -p "$PFC" "$PF/spool" "$PF/data" "$PF/mail"
chown nobody "$PF/mail"
chown postfix "$PF/data"      # Postfix's own: master.lock, caches
port=$(free_port) || fail "no free port"
nobody_uid=$(id -u nobody)
nobody_gid=$(id -g nobody)

# ---- the Postfix instance --------------------------------------------------------------------------
cat >"$PFC/main.cf" <<EOF
# written by postfix.sh: a private Postfix for amends' end-to-end test
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
command_directory = $(postconf -dh command_directory)
daemon_directory = $(postconf -dh daemon_directory)
shlib_directory = $(postconf -dh shlib_directory)
meta_directory = $(postconf -dh meta_directory)
mail_owner = postfix
setgid_group = postdrop
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C
syslog_name = postfix-amends-test
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
myhostname = mx.amends.test
mydomain = amends.test
myorigin = \$myhostname
mydestination = localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtputf8_enable = no
alias_maps =
alias_database =
biff = no
virtual_mailbox_domains = shop.example
virtual_mailbox_base = $PF/mail
virtual_mailbox_maps = static:shop.example/Maildir/
virtual_uid_maps = static:$nobody_uid
virtual_gid_maps = static:$nobody_gid
virtual_minimum_uid = 1
milter_protocol = 6
smtpd_milters = { $SOCK, default_action=accept, connect_timeout=10s, content_timeout=30s }
non_smtpd_milters =
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
EOF
cat >"$PFC/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$port inet  n  -  n  -  -  smtpd
pickup    unix  n  -  n  60  1  pickup
cleanup   unix  n  -  n  -   0  cleanup
qmgr      unix  n  -  n  300 1  qmgr
rewrite   unix  -  -  n  -   -  trivial-rewrite
bounce    unix  -  -  n  -   0  bounce
defer     unix  -  -  n  -   0  bounce
trace     unix  -  -  n  -   0  bounce
verify    unix  -  -  n  -   1  verify
flush     unix  n  -  n  1000? 0 flush
proxymap  unix  -  -  n  -   -  proxymap
showq     unix  n  -  n  -   -  showq
error     unix  -  -  n  -   -  error
retry     unix  -  -  n  -   -  error
discard   unix  -  -  n  -   -  discard
smtp      unix  -  -  n  -   -  smtp
relay     unix  -  -  n  -   -  smtp
local     unix  -  n  n  -   -  local
virtual   unix  -  n  n  -   -  virtual
anvil     unix  -  -  n  -   1  anvil
scache    unix  -  -  n  -   1  scache
postlog   unix-dgram n  -  n  -  1  postlogd
EOF

# pf_stop - stop this instance and kill any of its processes left (found by MAIL_CONFIG).
pf_stop() {
	local pid i
	postfix -c "$PFC" stop >/dev/null 2>&1
	for ((i = 0; i < 50; i++)); do
		[ -e "$PF/spool/pid/master.pid" ] && kill -0 "$(cat "$PF/spool/pid/master.pid" 2>/dev/null)" 2>/dev/null ||
			break
		sleep 0.1
	done
	for pid in $(grep -lsz "^MAIL_CONFIG=$PFC\$" /proc/[0-9]*/environ | cut -d/ -f3); do
		kill -KILL "$pid" 2>/dev/null
	done
}
t_on_exit pf_stop

postfix -c "$PFC" check >"$T_TMP/postfix-check.log" 2>&1 ||
	fail "postfix check: $(cat "$T_TMP/postfix-check.log")"
postfix -c "$PFC" start >"$T_TMP/postfix-start.log" 2>&1 ||
	fail "postfix start: $(cat "$T_TMP/postfix-start.log")"
smtp_up() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
t_wait_for 20 smtp_up || fail "Postfix smtpd did not come up on 127.0.0.1:$port"
ok "private Postfix $(postconf -dh mail_version) on 127.0.0.1:$port"

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
	swaks --silent 2 --server 127.0.0.1 --port "$port" --helo client.example.net \
		--from d.okafor@example.com --to support@shop.example \
		--data "@$T_TMP/send-$id.eml" >"$T_TMP/swaks-$id.out" 2>&1 ||
		fail "swaks $id: $(tail -5 "$T_TMP/swaks-$id.out")"
}

# delivered ID - the Maildir file of message ID, if delivered.
delivered() {
	grep -lsF "Message-ID: <$1@test>" "$MAILDIR"/new/* 2>/dev/null | head -n 1
}
is_delivered() { [ -n "$(delivered "$1")" ]; }

# wait_delivered ID - until it is in the Maildir (30 s).
wait_delivered() {
	t_wait_for 30 is_delivered "$1" || fail "message $1 not delivered in 30 s: $(tail -20 "$PF/maillog")"
}

# headers_of FILE - the header block of a delivered message, folded lines joined.
headers_of() {
	sed -e 's/\r$//' -e '/^$/q' "$1" | awk '/^[ \t]/ { cur = cur " " $0; next } { if (cur != "") print cur; cur = $0 } END { if (cur != "") print cur }'
}

write_clean_eml "$T_TMP/clean.eml"
write_forged_eml "$T_TMP/forged.eml"
[ "$(grep -ciE '^x-amends-[^:]*:|^x-amends-status :' "$T_TMP/forged.eml")" = 20 ] ||
	fail "test bug: the forged message should have 20 X-Amends-* headers"

# ---- 1. a forged message comes out with our verdict only ---------------------------------------------
send forged1 "$T_TMP/forged.eml"
wait_delivered forged1
headers_of "$(delivered forged1)" >"$T_TMP/forged1.hdr"
n=$(grep -ciE '^x-amends-' "$T_TMP/forged1.hdr")
[ "$n" = 1 ] || fail "delivered forged message has $n X-Amends-* headers, expected 1: $(grep -iE '^x-amends' "$T_TMP/forged1.hdr")"
assert_grep '^X-Amends-Status: No' "$T_TMP/forged1.hdr" "delivered message carries X-Amends-Status"
for keep in X-Amendsment X-Amend-Status Y-X-Amends-Status 'X-Amends'; do
	grep -q "^$keep: keep$" "$T_TMP/forged1.hdr" || fail "look-alike header $keep was removed"
done
ok "20 forged X-Amends-* headers gone after Postfix, look-alikes kept"

# ---- 2. twenty messages: twenty deliveries, nothing refused --------------------------------------------
for ((i = 1; i <= 20; i++)); do
	send "run$i"
done
for ((i = 1; i <= 20; i++)); do
	wait_delivered "run$i"
	headers_of "$(delivered "run$i")" | grep -q '^X-Amends-Status: ' ||
		fail "message run$i delivered untagged"
done
refused=$(grep -cE 'milter-reject|451 4\.7\.1' "$PF/maillog")
[ "$refused" = 0 ] || fail "$refused milter rejects/tempfails in the Postfix log: $(grep -E 'milter-reject|451 4\.7\.1' "$PF/maillog" | head -3)"
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
grep -qE 'milter-reject|451 4\.7\.1|milter8' "$PF/maillog" &&
	fail "Postfix complained about the milter: $(grep -E 'milter-reject|451 4\.7\.1|milter8' "$PF/maillog" | head -3)"
ok "a message over the scan cap: delivered whole, tagged with X-Amends-Limits, no milter errors"

# ---- 3. amends stopped: mail still flows ---------------------------------------------------------------
stop_daemon
[ "$T_DAEMON_STATUS" = 0 ] || fail "amends exit status $T_DAEMON_STATUS after SIGTERM"
send down1
wait_delivered down1
headers_of "$(delivered down1)" | grep -qi '^X-Amends-' && fail "untagged mail expected while amends is down"
grep -qE 'milter-reject|451 4\.7\.1' "$PF/maillog" && fail "Postfix refused mail while amends was down"
ok "amends stopped: mail still delivered (default_action=accept)"

# ---- 4. amends back: filtered again ---------------------------------------------------------------------
start_daemon "$T_TMP/pf.conf" "$SOCK"
send back1
wait_delivered back1
headers_of "$(delivered back1)" | grep -q '^X-Amends-Status: ' || fail "not tagged after amends came back"
ok "amends restarted: new sessions are filtered again"
stop_daemon

pf_stop
exit 0
