#!/bin/sh
# imap_dovecot.sh - drafts through IMAP APPEND into a real Dovecot on 127.0.0.1
#
# Starts a private Dovecot (own config, base_dir, passwd-file user, Maildir under a temp dir,
# ssl=no on loopback), submits drafts through the real drafter (tests/draft_imap_tool) and checks
# with Python's imaplib that each is in Drafts with \Draft, that its Subject decodes to
# "Re: <original>" and that In-Reply-To threads it under the customer's message. Then Dovecot is
# stopped: drafts are spooled, none lost; started again while a drafter is running: the worker's
# retry delivers them all.
# Then TLS (ssl=required, a private CA and server certificates made here with openssl): drafts
# arrive over imaps:// and STARTTLS when amends trusts the CA (drafts.imap_ca_file) or pins the
# certificate; with an untrusted CA, the system store, a wrong pin or a certificate for another
# name they stay spooled, the log says why, and Dovecot's log shows the connection but no login;
# once the server is right again the spooled drafts arrive (nothing lost).
# Skips (77) when dovecot, python3 or openssl is missing.
set -u

: "${top_srcdir:=.}"
: "${top_builddir:=.}"
PY=${PYTHON3:-python3}
DOVECOT=$(command -v dovecot || echo /usr/sbin/dovecot)
[ -x "$DOVECOT" ] || { echo "SKIP: dovecot not installed (dovecot-imapd)"; exit 77; }
command -v "$PY" >/dev/null 2>&1 || { echo "SKIP: python3 not found"; exit 77; }
command -v openssl >/dev/null 2>&1 || { echo "SKIP: openssl not found (package openssl)"; exit 77; }
TOOL=$top_builddir/tests/draft_imap_tool
[ -x "$TOOL" ] || { echo "SKIP: $TOOL not built (make check builds it)"; exit 77; }
. "$top_srcdir/tests/lib/dovecot_conf.sh"
CORPUS=$top_srcdir/../shared/corpus/dev/messages
MSG=$CORPUS/050.eml
[ -f "$MSG" ] || { echo "SKIP: corpus not found at $CORPUS"; exit 77; }

T=$(mktemp -d /tmp/amends-imap-XXXXXX)
chmod 755 "$T"
DPID=
cleanup() {
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*"; [ -f "$T/dovecot.log" ] && tail -20 "$T/dovecot.log"; exit 1; }

free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
SPORT=$(free_port)
UID_=$(id -u); GID_=$(id -g)
if [ "$UID_" = 0 ]; then
	# Dovecot refuses mail processes as root: the test mailbox belongs to nobody
	LOGIN_USER=dovenull; INTERNAL_USER=dovecot
	UID_=$(id -u nobody); GID_=$(id -g nobody)
else LOGIN_USER=$(id -un); INTERNAL_USER=$(id -un); fi
id "$LOGIN_USER" >/dev/null 2>&1 || { echo "SKIP: user $LOGIN_USER missing"; exit 77; }

mkdir -p "$T/run" "$T/state" "$T/mail" "$T/amends"
chown "$UID_:$GID_" "$T/mail"
echo "drafts:{PLAIN}s3cret-pw" > "$T/passwd"
# dovecot_conf [CERT]: plain text on loopback without CERT; ssl=required with CERT (its .crt and
# .key under $T/tls), STARTTLS on $PORT and implicit TLS on $SPORT
dovecot_conf() {
	if [ -n "${1:-}" ]; then
		SSL_CONF="ssl = required
ssl_cert = <$T/tls/$1.crt
ssl_key = <$T/tls/$1.key
disable_plaintext_auth = yes"
		IMAPS="address = 127.0.0.1
    port = $SPORT"
	else
		SSL_CONF="ssl = no
disable_plaintext_auth = no"
		IMAPS="port = 0"
	fi
	dovecot_conf_write "$T/dovecot.conf" "$T" "$T/dovecot.log" "$PORT" "$LOGIN_USER" \
		"$INTERNAL_USER" "$UID_" "$GID_" "$SSL_CONF" "$IMAPS"
}
dovecot_conf

start_dovecot() {
	"$DOVECOT" -c "$T/dovecot.conf" -F >>"$T/dovecot.out" 2>&1 &
	DPID=$!
	i=0
	while [ $i -lt 100 ]; do
		$PY -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$PORT)))" && return 0
		kill -0 "$DPID" 2>/dev/null || { cat "$T/dovecot.out"; fail "dovecot exited"; }
		sleep 0.1; i=$((i+1))
	done
	fail "dovecot did not listen on $PORT"
}
stop_dovecot() {
	kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; DPID=
}

printf 's3cret-pw\n' > "$T/amends/imap.pw"
chmod 600 "$T/amends/imap.pw"
# amends_conf URL [SETTING...]: the drafter's config for imap_url URL plus drafts settings
amends_conf() {
	url=$1
	shift
	extra=
	for kv in "$@"; do extra="$extra
  $kv;"; done
	cat > "$T/amends/amends.conf" <<EOF
state_dir = "$T/amends";
drafts = {
  delivery = "imap";
  imap_url = "$url";$extra
  imap_user = "drafts";
  imap_password_file = "$T/amends/imap.pw";
  imap_mailbox = "Drafts";
  imap_retry_s = 1;
  spool_dir = "$T/amends/spool";
  templates_dir = "$top_srcdir/conf/templates";
  eom_budget_ms = 500;
};
EOF
}
amends_conf "imap://127.0.0.1:$PORT"

# check N: the Drafts folder holds N messages, all \Draft, decoded subject and threading right
check() {
	$PY - "$PORT" "$1" "$MSG" <<'EOF' || fail "IMAP check for $1 drafts"
import email, email.policy, imaplib, os, ssl, sys
from email.header import decode_header, make_header
port, want, orig = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
o = email.message_from_binary_file(open(orig, 'rb'), policy=email.policy.default)
want_subj = 'Re: ' + str(o['Subject'])
want_irt = o['Message-ID'].strip()
M = imaplib.IMAP4('127.0.0.1', port)
if os.environ.get('CHECK_CA'):
    M.starttls(ssl.create_default_context(cafile=os.environ['CHECK_CA']))
M.login('drafts', 's3cret-pw')
typ, data = M.select('Drafts', readonly=True)
assert typ == 'OK', data
n = int(data[0])
assert n == want, f'{n} drafts in Drafts, want {want}'
if n:
    typ, data = M.fetch('1:*', '(FLAGS BODY.PEEK[HEADER])')
    got = 0
    for item in data:
        if not isinstance(item, tuple):
            continue
        got += 1
        assert b'\\Draft' in item[0], item[0]
        h = email.message_from_bytes(item[1], policy=email.policy.default)
        subj = str(h['Subject'])
        assert subj == want_subj, f'subject {subj!r} != {want_subj!r}'
        assert h['In-Reply-To'].strip() == want_irt, h['In-Reply-To']
        assert want_irt in h['References'], h['References']
        assert h['X-Amends-Draft-Kind'] == 'winback'
        assert h['Content-Language'] == 'ur'
        for line in item[1].split(b'\r\n'):
            assert len(line) <= 998
    assert got == want, f'fetched {got}'
M.logout()
print(f'ok: {want} drafts with \\Draft, subject {want_subj!r}')
EOF
}

run_tool() {
	"$TOOL" -c "$T/amends/amends.conf" -k winback -l ur "$@" "$MSG" > "$T/tool.out" 2>"$T/tool.err"
	cat "$T/tool.err" >> "$T/tool-all.err"
	cat "$T/tool.out"
}

# 1. server up: 3 drafts appended
start_dovecot
run_tool -n 3 -w 20000
grep -q '^left=0$' "$T/tool.out" || { cat "$T/tool.err"; fail "drafts left in the spool with the server up"; }
check 3

# 2. server down: 2 drafts are spooled fast and stay
stop_dovecot
run_tool -n 2 -w 500
grep -q '^left=2$' "$T/tool.out" || { cat "$T/tool.err"; fail "expected 2 spooled drafts"; }
awk -F'ms=' '/^submit=/ { if ($2 + 0 > 1000) bad = 1 } END { exit bad }' "$T/tool.out" ||
	fail "a submit took over 1 s while the server was down"
[ "$(ls "$T/amends/spool/new" | wc -l)" = 2 ] || fail "spool does not hold 2 drafts"

# 3. a drafter runs while the server is down, one more draft comes in; the server comes back
#    mid-run: the worker's retry delivers all 3 (nothing lost)
run_tool -n 1 -w 30000 &
TPID=$!
sleep 2
start_dovecot
wait "$TPID"
grep -q '^left=0$' "$T/tool.out" || { cat "$T/tool.err"; fail "spool not emptied after restart"; }
check 6
grep -q 'appended' "$T/tool.err" || fail "worker did not log appends"
stop_dovecot

# ---- 4. TLS: the server's certificate is verified before LOGIN ------------------------------
# A private CA; "good" is for localhost and 127.0.0.1, "other" (same CA) for another name; a
# second CA amends does not trust. EC P-256 keys: fast to make.
mkdir -p "$T/tls"
mkca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=amends test $1" -keyout "$T/tls/$1.key" -out "$T/tls/$1.crt" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 || fail "openssl: CA $1"
}
mkcert() { # mkcert NAME SAN
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
		-keyout "$T/tls/$1.key" -out "$T/tls/$1.csr" >/dev/null 2>&1 || fail "openssl: $1 key"
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
		"$2" > "$T/tls/$1.ext"
	openssl x509 -req -in "$T/tls/$1.csr" -CA "$T/tls/ca.crt" -CAkey "$T/tls/ca.key" \
		-set_serial "$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')" -days 2 -sha256 \
		-extfile "$T/tls/$1.ext" -out "$T/tls/$1.crt" >/dev/null 2>&1 || fail "openssl: $1 cert"
}
pin_of() {
	openssl x509 -in "$T/tls/$1.crt" -noout -fingerprint -sha256 | sed 's/^[^=]*=/sha256:/'
}
mkca ca
mkca rogue
mkcert good "DNS:localhost,IP:127.0.0.1"
mkcert other "DNS:imap.example.test"
chmod 644 "$T/tls"/*.crt "$T/tls"/*.key
export CHECK_CA="$T/tls/ca.crt"
CA="imap_ca_file = \"$T/tls/ca.crt\""

# tls_run NAME URL WAIT_MS COUNT LEFT [SETTING...]: submit COUNT drafts through a drafter for URL;
# LEFT drafts must stay spooled. Dovecot's log from this run is in $T/run.log.
tls_run() {
	name=$1 url=$2 wait_ms=$3 count=$4 left=$5
	shift 5
	amends_conf "$url" "$@"
	mark=$(wc -l < "$T/dovecot.log")
	run_tool -n "$count" -w "$wait_ms" > /dev/null
	grep -q "^left=$left\$" "$T/tool.out" ||
		{ cat "$T/tool.err"; fail "$name: want left=$left, got $(grep ^left= "$T/tool.out")"; }
	# Dovecot logs through its log process: give the last lines a moment
	i=0
	while [ $i -lt 20 ]; do
		tail -n +"$((mark + 1))" "$T/dovecot.log" > "$T/run.log"
		grep -q 'imap-login: .*\(Login\|no auth attempts\)' "$T/run.log" && break
		sleep 0.1; i=$((i+1))
	done
}
# refused NAME REASON: the drafter said why, and Dovecot saw a TLS client that never logged in
refused() {
	grep -q "TLS certificate of .* refused: .*$2" "$T/tool.err" ||
		{ cat "$T/tool.err"; fail "$1: no '$2' in the drafter's log"; }
	grep -q 'stay spooled' "$T/tool.err" || fail "$1: the log does not say the drafts stay"
	grep -q 'no auth attempts' "$T/run.log" ||
		{ cat "$T/run.log"; fail "$1: Dovecot saw no connection without login"; }
	if grep -E 'user=<drafts>|passwd-file\(drafts' "$T/run.log"; then
		fail "$1: amends tried to log in to a server it does not trust"
	fi
	echo "ok: $1, no login: $(grep -m1 -o 'TLS certificate of .*' "$T/tool.err")"
}

dovecot_conf good
start_dovecot
tls_run "imaps, trusted CA" "imaps://127.0.0.1:$SPORT" 20000 2 0 "$CA"
grep -q 'Login: user=<drafts>.*TLS' "$T/run.log" || { cat "$T/run.log"; fail "no TLS login"; }
check 8
tls_run "STARTTLS, trusted CA, by name" "imap://localhost:$PORT" 20000 1 0 "$CA"
check 9

tls_run "imaps, untrusted CA" "imaps://127.0.0.1:$SPORT" 2000 1 1 \
	"imap_ca_file = \"$T/tls/rogue.crt\""
refused "imaps, untrusted CA" "issuer is unknown"
tls_run "STARTTLS, untrusted CA" "imap://127.0.0.1:$PORT" 2000 1 2 \
	"imap_ca_file = \"$T/tls/rogue.crt\""
refused "STARTTLS, untrusted CA" "issuer is unknown"
tls_run "imaps, system store" "imaps://127.0.0.1:$SPORT" 2000 0 2
refused "imaps, system store" "NOT trusted"
tls_run "imaps, wrong pin" "imaps://127.0.0.1:$SPORT" 2000 0 2 "imap_tls_verify = false" \
	"imap_tls_fingerprint = \"$(pin_of other)\""
refused "imaps, wrong pin" "is not drafts.imap_tls_fingerprint"
stop_dovecot

# the same CA, but the certificate names another host
dovecot_conf other
start_dovecot
tls_run "imaps, wrong name" "imaps://127.0.0.1:$SPORT" 2000 0 2 "$CA"
refused "imaps, wrong name" "does not match the expected"
tls_run "STARTTLS, wrong name" "imap://localhost:$PORT" 2000 0 2 "$CA"
refused "STARTTLS, wrong name" "does not match the expected"
stop_dovecot

# the right server again, CA and pin: the drafts kept through all that arrive
dovecot_conf good
start_dovecot
tls_run "imaps, CA and pin" "imaps://127.0.0.1:$SPORT" 20000 0 0 "$CA" \
	"imap_tls_fingerprint = \"$(pin_of good)\""
check 11
tls_run "imaps, pin only" "imaps://127.0.0.1:$SPORT" 20000 1 0 "imap_tls_verify = false" \
	"imap_tls_fingerprint = \"$(pin_of good)\""
check 12
# checking switched off: still delivered, with a warning at start
tls_run "imaps, no check" "imaps://127.0.0.1:$SPORT" 20000 1 0 "imap_tls_verify = false"
grep -q 'is not checked' "$T/tool.err" || fail "no warning that the certificate is not checked"
check 13

stop_dovecot
# A ThreadSanitizer report (the TSan build) at the tool's exit changes only its exit status,
# which run_tool does not look at: the tool's stderr of every run is looked at here.
if grep -q 'WARNING: ThreadSanitizer' "$T/tool-all.err"; then
	sed -n '/WARNING: ThreadSanitizer/,/^SUMMARY: ThreadSanitizer/p' "$T/tool-all.err" | head -n 200
	fail "ThreadSanitizer report in draft_imap_tool"
fi
echo "PASS: imap_dovecot"
exit 0
