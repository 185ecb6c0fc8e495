#!/bin/bash
# sendmail.sh - end to end with a real Sendmail: SMTP in, amends as input mail filter, files out
#
# Debian's sendmail-bin conflicts with postfix, so the test unpacks sendmail-bin, sendmail-cf and
# sendmail-base (fetched once with `apt-get download` into $AMENDS_TEST_CACHE/sendmail, default
# $top_builddir/tests/cache/sendmail; a machine with sendmail-bin installed uses that instead)
# and runs Sendmail from the unpacked tree as a foreground daemon (-bD) with its own sendmail.cf,
# built with m4 from the unpacked cf/m4/cf.m4 and the shipped contrib/sendmail/amends.mc (the
# INPUT_MAIL_FILTER line, socket path replaced). Sendmail listens on 127.0.0.1 at a free port,
# keeps its queue, pid and statistics files in the temp dir, and delivers every recipient
# through a test mailer (a /bin/sh script: the test's, not amends') into one file per message.
# Sendmail sleeps 60 s at start when the host name is unqualified, so it runs in a private UTS
# namespace (unshare --uts) with the host name mx.amends.test.
# Checks: a delivered message carries X-Amends-Status and none of 20 forged X-Amends-* headers
# (look-alikes stay); 10 messages, 10 tagged deliveries; with amends stopped, mail is still
# accepted and delivered (no F= flag: fail open, RELIABILITY.md 1.2); restarted, tagged again.
# Needs root, apt-get (or a filled cache), dpkg-deb, m4, unshare, swaks.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"

[ "$(id -u)" = 0 ] || skip "needs root to run a private Sendmail (run the suite as root, as CI does)"
for tool in m4 swaks dpkg-deb; do
	command -v "$tool" >/dev/null || skip "$tool not found (Debian packages m4, swaks, dpkg)"
done
need_built

# ---- a Sendmail to run ---------------------------------------------------------------------------
CACHE=${AMENDS_TEST_CACHE:-$top_builddir/tests/cache}/sendmail
SM_PKGS="sendmail-bin sendmail-cf sendmail-base"

# sm_unpack - fill $CACHE/root from the cached .debs (downloading them first if needed).
sm_unpack() {
	local p missing="" tmp deb
	mkdir -p "$CACHE" || return 1
	for p in $SM_PKGS; do
		ls "$CACHE/${p}_"*.deb >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		command -v apt-get >/dev/null || { echo "apt-get not found"; return 1; }
		# -o APT::Sandbox::User=root: the cache directory may not be writable by _apt.
		(cd "$CACHE" && timeout 300 apt-get -q -o APT::Sandbox::User=root download $missing) \
			>"$T_TMP/apt-download.log" 2>&1 ||
			{ echo "apt-get download$missing failed: $(tail -3 "$T_TMP/apt-download.log")"; return 1; }
	fi
	# Unpack into a private directory, then rename: concurrent runs never see half a tree.
	tmp=$(mktemp -d "$CACHE/root.XXXXXX") || return 1
	for deb in "$CACHE"/*.deb; do
		dpkg-deb -x "$deb" "$tmp" || { rm -rf "$tmp"; echo "dpkg-deb -x $deb failed"; return 1; }
	done
	rm -rf "$CACHE/root" && mv "$tmp" "$CACHE/root" && chmod 755 "$CACHE/root"
}

if [ -x /usr/libexec/sendmail/sendmail ] && [ -f /usr/share/sendmail/cf/m4/cf.m4 ]; then
	SM_ROOT=""                                   # sendmail-bin and sendmail-cf are installed
else
	SM_ROOT=$CACHE/root
	if [ ! -x "$SM_ROOT/usr/libexec/sendmail/sendmail" ]; then
		why=$(sm_unpack) || skip "cannot get Sendmail: $why"
	fi
fi
SENDMAIL=$SM_ROOT/usr/libexec/sendmail/sendmail
CFDIR=$SM_ROOT/usr/share/sendmail/cf
[ -x "$SENDMAIL" ] && [ -f "$CFDIR/m4/cf.m4" ] || skip "no sendmail binary or cf.m4 under ${SM_ROOT:-/}"
missing_libs=$(ldd "$SENDMAIL" 2>/dev/null | grep 'not found')
[ -z "$missing_libs" ] || skip "sendmail needs libraries that are not installed: $missing_libs"

# Host name: Sendmail wants a qualified one (or sleeps 60 s); give it its own UTS namespace.
HOSTNAME_FQ=mx.amends.test
if unshare --uts true 2>/dev/null; then
	run_sm() { unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' "$HOSTNAME_FQ" "$@"; }
elif [[ $(hostname) == *.* ]]; then
	run_sm() { "$@"; }
else
	skip "host name \"$(hostname)\" is unqualified and unshare --uts is not allowed here (Sendmail would sleep 60 s)"
fi
version=$(run_sm timeout 20 "$SENDMAIL" -d0.1 -bv root </dev/null 2>/dev/null | sed -n 's/^Version //p' | head -1)

# ---- the Sendmail instance --------------------------------------------------------------------------
SM=$T_TMP/sm
OUT=$SM/out
SOCK_PATH=$T_TMP/amends.sock
SOCK="unix:$SOCK_PATH"
mkdir -p "$SM/mqueue" "$OUT"
chmod 700 "$SM/mqueue"
chmod 777 "$OUT"                 # the test mailer runs as Sendmail's DefaultUser
port=$(free_port) || fail "no free port"

# The test mailer: one file per message, written under a temporary name and renamed.
cat >"$SM/deliver.sh" <<EOF
#!/bin/sh
umask 022
f=$OUT/msg.\$\$.\$(date +%s%N)
cat >"\$f.tmp" && mv "\$f.tmp" "\$f.eml"
EOF
chmod 755 "$SM/deliver.sh"
echo "hosts files" >"$SM/service.switch"
sed "s|local:/run/amends/amends.sock|local:$SOCK_PATH|" "$top_srcdir/contrib/sendmail/amends.mc" \
	>"$SM/amends.mc"
grep -q "S=local:$SOCK_PATH," "$SM/amends.mc" ||
	fail "contrib/sendmail/amends.mc has no INPUT_MAIL_FILTER line with S=local:/run/amends/amends.sock"
grep '^INPUT_MAIL_FILTER' "$SM/amends.mc" | grep -q 'F=' && fail "contrib/sendmail/amends.mc sets F=: amends must fail open"

{
	echo "divert(-1)"
	echo "# written by sendmail.sh: a private Sendmail for amends' end-to-end test"
	echo "divert(0)dnl"
	echo "VERSIONID(\`amends sendmail.sh')dnl"
	echo "OSTYPE(\`linux')dnl"
	echo "define(\`confDOMAIN_NAME', \`$HOSTNAME_FQ')dnl"
	echo "define(\`confSERVICE_SWITCH_FILE', \`$SM/service.switch')dnl"
	echo "define(\`confHOSTS_FILE', \`/etc/hosts')dnl"
	echo "define(\`QUEUE_DIR', \`$SM/mqueue')dnl"
	echo "define(\`confPID_FILE', \`$SM/sendmail.pid')dnl"
	echo "define(\`STATUS_FILE', \`$SM/statistics')dnl"
	echo "define(\`ALIAS_FILE', \`')dnl"
	echo "define(\`HELP_FILE', \`')dnl"
	echo "define(\`confDONT_PROBE_INTERFACES', \`true')dnl"
	echo "define(\`confDONT_BLAME_SENDMAIL', \`GroupWritableDirPathSafe,TrustStickyBit,RunProgramInUnsafeDirPath,NonRootSafeAddr')dnl"
	echo "define(\`confLOG_LEVEL', \`14')dnl"
	echo "define(\`confMILTER_LOG_LEVEL', \`14')dnl"
	echo "define(\`confTO_IDENT', \`0')dnl"
	echo "define(\`confDELIVERY_MODE', \`interactive')dnl"
	echo "define(\`confREFUSE_LA', \`999')dnl"
	echo "define(\`confQUEUE_LA', \`999')dnl"
	echo "FEATURE(\`nocanonify')dnl"
	echo "FEATURE(\`accept_unresolvable_domains')dnl"
	echo "FEATURE(\`accept_unqualified_senders')dnl"
	echo "FEATURE(\`promiscuous_relay')dnl"
	echo "DAEMON_OPTIONS(\`Port=$port, Addr=127.0.0.1, Name=MTA')dnl"
	echo "include(\`$SM/amends.mc')dnl"
	echo "MAILER(\`local')dnl"
	echo "MAILER(\`smtp')dnl"
	echo "MAILER_DEFINITIONS"
	echo "Mcapture, P=$SM/deliver.sh, F=DFMn, A=deliver.sh \$u"
	echo "LOCAL_RULE_0"
	printf 'R$+ < @ $+ > $*\t$#capture $@ localhost $: $1<@$2>\n'
} >"$SM/test.mc"
m4 -D_CF_DIR_="$CFDIR/" "$CFDIR/m4/cf.m4" "$SM/test.mc" >"$SM/sendmail.cf" 2>"$T_TMP/m4.log" ||
	fail "m4 failed: $(cat "$T_TMP/m4.log")"
grep -q "^Xamends, S=local:$SOCK_PATH, T=C:10s;S:10s;R:20s;E:1m\$" "$SM/sendmail.cf" ||
	fail "sendmail.cf has no amends filter line: $(grep -n '^X' "$SM/sendmail.cf")"
grep -q '^O InputMailFilters=amends$' "$SM/sendmail.cf" || fail "sendmail.cf does not use the amends filter"

sm_stop() {
	local pid
	pid=$(head -1 "$SM/sendmail.pid" 2>/dev/null)
	[ -n "$pid" ] && t_kill_wait "$pid" 5
	[ -n "${SM_PID:-}" ] && t_kill_wait "$SM_PID" 5
	return 0
}
t_on_exit sm_stop

# -bD: daemon in the foreground; -X: an SMTP transcript for the post-mortem.
run_sm "$SENDMAIL" -C "$SM/sendmail.cf" -bD -L sm-amends-test -X "$T_TMP/sendmail-traffic.log" \
	>"$T_TMP/sendmail.log" 2>&1 &
SM_PID=$!
t_track "$SM_PID"
smtp_up() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
t_wait_for 20 smtp_up || fail "Sendmail did not come up on 127.0.0.1:$port: $(tail -5 "$T_TMP/sendmail.log")"
ok "private Sendmail ${version:-?} (${SM_ROOT:-installed}) on 127.0.0.1:$port"

# ---- amends ------------------------------------------------------------------------------------------
write_config "$T_TMP/sm.conf" socket="$SOCK" socket_mode=0660
start_daemon "$T_TMP/sm.conf" "$SOCK"

# ---- helpers -----------------------------------------------------------------------------------------
# send ID [FILE] - one message over SMTP (must be accepted); FILE's Message-ID becomes <ID@test>.
send() {
	local id=$1 src=${2:-"$T_TMP/clean.eml"}
	sed "s/^Message-ID: .*/Message-ID: <$id@test>\r/" "$src" >"$T_TMP/send-$id.eml"
	swaks --silent 2 --server 127.0.0.1 --port "$port" --helo client.example.net \
		--from d.okafor@example.com --to support@shop.example \
		--data "@$T_TMP/send-$id.eml" >"$T_TMP/swaks-$id.out" 2>&1 ||
		fail "swaks $id: $(tail -5 "$T_TMP/swaks-$id.out")"
}
delivered() { grep -lsF "Message-ID: <$1@test>" "$OUT"/*.eml 2>/dev/null | head -n 1; }
is_delivered() { [ -n "$(delivered "$1")" ]; }
wait_delivered() {
	t_wait_for 30 is_delivered "$1" ||
		fail "message $1 not delivered in 30 s: $(tail -20 "$T_TMP/sendmail-traffic.log" 2>/dev/null)"
}
headers_of() { t_headers_of "$1"; }

write_clean_eml "$T_TMP/clean.eml"
write_forged_eml "$T_TMP/forged.eml"
# ---- 1. a forged message comes out with our verdict only; 2. ten messages, all tagged ----------
t_mta_forged_and_batch Sendmail 10
ok "10 of 10 delivered and tagged"

# ---- 3. amends stopped: mail still flows (no F= flag) ----------------------------------------------
stop_daemon
[ "$T_DAEMON_STATUS" = 0 ] || fail "amends exit status $T_DAEMON_STATUS after SIGTERM"
send down1
wait_delivered down1
headers_of "$(delivered down1)" | grep -qi '^X-Amends-' && fail "untagged mail expected while amends is down"
ok "amends stopped: Sendmail still accepted and delivered the mail (fail open)"

# ---- 4. amends back: filtered again -------------------------------------------------------------------
start_daemon "$T_TMP/sm.conf" "$SOCK"
send back1
wait_delivered back1
headers_of "$(delivered back1)" | grep -q '^X-Amends-Status: ' || fail "not tagged after amends came back"
ok "amends restarted: new connections are filtered again"
stop_daemon
