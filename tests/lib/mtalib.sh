# mtalib.sh - a private Postfix and a private Dovecot on 127.0.0.1 for end-to-end tests (bash)
#
# Sourced after testlib.sh. Gives:
#   mta_postfix_start SOCK   Postfix 3.x with its own config, queue and data dirs under
#                            $T_TMP/pf, smtpd on 127.0.0.1:$MTA_PF_PORT, amends attached as
#                            smtpd_milters = { SOCK, default_action=accept, ... }, virtual(8)
#                            delivery of @shop.example into one Maildir ($MTA_MAILDIR, owned by
#                            nobody), its log in $MTA_PF_LOG.
#                            MTA_PF_EXTRA ("name = value" lines) goes into main.cf last.
#   mta_send FILE FROM       one message over SMTP with swaks (envelope FROM, to support@).
#   mta_delivered MSGID / mta_wait_delivered MSGID [SECS] / mta_headers_of FILE
#   mta_dovecot_start        Dovecot with its own config and base_dir under $T_TMP/dv, IMAP
#                            without TLS on 127.0.0.1:$MTA_DV_PORT, one passwd-file user
#                            $MTA_DV_USER / $MTA_DV_PASS, Maildir under $T_TMP/dv/mail, log in
#                            $T_TMP/dovecot.log. Again after mta_dovecot_stop: same port, same mail.
#   mta_dovecot_stop         SIGTERM to its master and wait (it stops its imap processes).
# mta_need_postfix / mta_need_dovecot skip (77) with the reason when a piece is missing.
#
# OWNERSHIP  both servers are stopped by testlib's EXIT trap (t_on_exit / t_track); every wait
#            here is bounded.
# DIAGNOSTICS  setup problems call fail (exit 1) with the server's own words.

if [ -z "${T_TMP:-}" ]; then
	echo "mtalib.sh: source testlib.sh first" >&2
	exit 99
fi

# ---- Postfix ---------------------------------------------------------------------------------

MTA_PF="$T_TMP/pf"
MTA_PFC="$MTA_PF/etc"
MTA_MAILDIR="$MTA_PF/mail/shop.example/Maildir"
MTA_PF_LOG="$T_TMP/postfix.log"   # *.log: testlib dumps its tail on failure
MTA_PF_PORT=""

mta_need_postfix() {
	[ "$(id -u)" = 0 ] || skip "needs root to run a private Postfix (run the suite as root, as CI does)"
	local tool
	for tool in postfix postconf swaks; do
		command -v "$tool" >/dev/null || skip "$tool not found (Debian packages postfix, swaks)"
	done
	id postfix >/dev/null 2>&1 || skip "no user postfix (install the Debian package postfix)"
	getent group postdrop >/dev/null || skip "no group postdrop (install the Debian package postfix)"
}

# mta_postfix_conf SOCK - main.cf and master.cf of the private instance.
mta_postfix_conf() {
	local sock=$1
	mkdir -p "$MTA_PFC" "$MTA_PF/spool" "$MTA_PF/data" "$MTA_PF/mail"
	chown nobody "$MTA_PF/mail"
	chown postfix "$MTA_PF/data"      # Postfix's own: master.lock, caches
	cat >"$MTA_PFC/main.cf" <<EOF
# written by mtalib.sh: a private Postfix for amends' end-to-end tests
compatibility_level = 3.6
queue_directory = $MTA_PF/spool
data_directory = $MTA_PF/data
command_directory = $(postconf -dh command_directory)
daemon_directory = $(postconf -dh daemon_directory)
shlib_directory = $(postconf -dh shlib_directory)
meta_directory = $(postconf -dh meta_directory)
mail_owner = postfix
setgid_group = postdrop
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C
syslog_name = postfix-amends-test
maillog_file = $MTA_PF_LOG
maillog_file_prefixes = $T_TMP
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
virtual_mailbox_base = $MTA_PF/mail
virtual_mailbox_maps = static:shop.example/Maildir/
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(id -g nobody)
virtual_minimum_uid = 1
milter_protocol = 6
smtpd_milters = { $sock, default_action=accept, connect_timeout=10s, content_timeout=30s }
non_smtpd_milters =
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
EOF
	# a test's own settings ("name = value" lines) replace or add to the ones above
	local line
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		postconf -c "$MTA_PFC" -e "$line" || fail "postconf -e '$line' failed"
	done <<<"${MTA_PF_EXTRA:-}"
	cat >"$MTA_PFC/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$MTA_PF_PORT inet  n  -  n  -  -  smtpd
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
}

# mta_postfix_stop - stop the instance and kill any of its processes left (found by MAIL_CONFIG).
mta_postfix_stop() {
	local pid i
	postfix -c "$MTA_PFC" stop >/dev/null 2>&1
	for ((i = 0; i < 50; i++)); do
		[ -e "$MTA_PF/spool/pid/master.pid" ] &&
			kill -0 "$(cat "$MTA_PF/spool/pid/master.pid" 2>/dev/null)" 2>/dev/null || break
		sleep 0.1
	done
	for pid in $(grep -lsz "^MAIL_CONFIG=$MTA_PFC\$" /proc/[0-9]*/environ | cut -d/ -f3); do
		kill -KILL "$pid" 2>/dev/null
	done
}

mta_smtp_up() { (exec 3<>"/dev/tcp/127.0.0.1/$MTA_PF_PORT") 2>/dev/null; }

mta_postfix_start() {
	MTA_PF_PORT=$(free_port) || fail "no free port"
	mta_postfix_conf "$1"
	t_on_exit mta_postfix_stop
	postfix -c "$MTA_PFC" check >"$T_TMP/postfix-check.out" 2>&1 ||
		fail "postfix check: $(cat "$T_TMP/postfix-check.out")"
	postfix -c "$MTA_PFC" start >"$T_TMP/postfix-start.out" 2>&1 ||
		fail "postfix start: $(cat "$T_TMP/postfix-start.out")"
	t_wait_for 20 mta_smtp_up || fail "Postfix smtpd did not come up on 127.0.0.1:$MTA_PF_PORT"
}

# mta_send FILE FROM - FILE over SMTP to support@shop.example, envelope sender FROM.
mta_send() {
	local out="$1.swaks"
	swaks --silent 2 --server 127.0.0.1 --port "$MTA_PF_PORT" --helo client.example.net \
		--from "$2" --to support@shop.example --data "@$1" >"$out" 2>&1 ||
		fail "swaks $1: $(tail -5 "$out")"
}

# mta_delivered MSGID - the Maildir file of the message with Message-ID <MSGID>, if delivered.
mta_delivered() {
	grep -lsF "Message-ID: <$1>" "$MTA_MAILDIR"/new/* 2>/dev/null | head -n 1
}
mta_is_delivered() { [ -n "$(mta_delivered "$1")" ]; }

# mta_wait_delivered MSGID [SECS] - until it is in the Maildir (default 30 s).
mta_wait_delivered() {
	t_wait_for "${2:-30}" mta_is_delivered "$1" ||
		fail "message <$1> not delivered in ${2:-30} s: $(tail -20 "$MTA_PF_LOG")"
}

# mta_headers_of FILE - the header block of a delivered message, folded lines joined.
mta_headers_of() { t_headers_of "$1"; }

# ---- Dovecot ---------------------------------------------------------------------------------

. "$top_srcdir/tests/lib/dovecot_conf.sh"

MTA_DV="$T_TMP/dv"
MTA_DV_PORT=""
MTA_DV_PID=""
MTA_DV_USER=drafts
MTA_DV_PASS=s3cret-pw
MTA_DOVECOT=$(command -v dovecot || echo /usr/sbin/dovecot)

mta_need_dovecot() {
	[ -x "$MTA_DOVECOT" ] || skip "dovecot not installed (Debian package dovecot-imapd)"
	command -v python3 >/dev/null || skip "python3 not found (the IMAP checks use imaplib)"
	if [ "$(id -u)" = 0 ]; then
		id dovenull >/dev/null 2>&1 && id dovecot >/dev/null 2>&1 ||
			skip "users dovenull/dovecot missing (install dovecot-core)"
	fi
}

# mta_dovecot_conf - plain IMAP on loopback only. As root, Dovecot refuses mail processes as
# root: the test mailbox belongs to nobody and the login/internal users are Debian's.
mta_dovecot_conf() {
	local login internal uid gid
	if [ "$(id -u)" = 0 ]; then
		login=dovenull internal=dovecot uid=$(id -u nobody) gid=$(id -g nobody)
	else
		login=$(id -un) internal=$(id -un) uid=$(id -u) gid=$(id -g)
	fi
	mkdir -p "$MTA_DV/run" "$MTA_DV/state" "$MTA_DV/mail"
	chown "$uid:$gid" "$MTA_DV/mail"
	echo "$MTA_DV_USER:{PLAIN}$MTA_DV_PASS" >"$MTA_DV/passwd"
	dovecot_conf_write "$MTA_DV/dovecot.conf" "$MTA_DV" "$T_TMP/dovecot.log" "$MTA_DV_PORT" \
		"$login" "$internal" "$uid" "$gid"
}

mta_imap_up() { (exec 3<>"/dev/tcp/127.0.0.1/$MTA_DV_PORT") 2>/dev/null; }
mta_imap_down() { ! mta_imap_up; }

mta_dovecot_start() {
	if [ -z "$MTA_DV_PORT" ]; then
		MTA_DV_PORT=$(free_port) || fail "no free port"
		mta_dovecot_conf
	fi
	"$MTA_DOVECOT" -c "$MTA_DV/dovecot.conf" -F >>"$T_TMP/dovecot.out" 2>&1 &
	MTA_DV_PID=$!
	t_track "$MTA_DV_PID"
	local i
	for ((i = 0; i < 100; i++)); do
		mta_imap_up && return 0
		kill -0 "$MTA_DV_PID" 2>/dev/null || fail "dovecot exited: $(tail -5 "$T_TMP/dovecot.out")"
		sleep 0.1
	done
	fail "dovecot did not listen on 127.0.0.1:$MTA_DV_PORT"
}

# mta_dovecot_stop - and wait until the port is closed, so the next start can bind it again.
mta_dovecot_stop() {
	[ -n "$MTA_DV_PID" ] || return 0
	t_kill_wait "$MTA_DV_PID" 10 || fail "dovecot ignored SIGTERM for 10 s"
	wait "$MTA_DV_PID" 2>/dev/null
	MTA_DV_PID=""
	t_wait_for 5 mta_imap_down || fail "127.0.0.1:$MTA_DV_PORT still answers after dovecot stopped"
}
