#!/bin/sh
# imap_dovecot.sh - drafts through IMAP APPEND into a real Dovecot on 127.0.0.1
#
# Starts a private Dovecot (own config, base_dir, passwd-file user, Maildir under a temp dir,
# ssl=no on loopback), submits drafts through the real drafter (tests/draft_imap_tool) and checks
# with Python's imaplib that each is in Drafts with \Draft, that its Subject decodes to
# "Re: <original>" and that In-Reply-To threads it under the customer's message. Then Dovecot is
# stopped: drafts are spooled, none lost; started again while a drafter is running: the worker's
# retry delivers them all. Skips (77) when dovecot or python3 is missing.
set -u

: "${top_srcdir:=.}"
: "${top_builddir:=.}"
PY=${PYTHON3:-python3}
DOVECOT=$(command -v dovecot || echo /usr/sbin/dovecot)
[ -x "$DOVECOT" ] || { echo "SKIP: dovecot not installed (dovecot-imapd)"; exit 77; }
command -v "$PY" >/dev/null 2>&1 || { echo "SKIP: python3 not found"; exit 77; }
TOOL=$top_builddir/tests/draft_imap_tool
[ -x "$TOOL" ] || { echo "SKIP: $TOOL not built (make check builds it)"; exit 77; }
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

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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
cat > "$T/dovecot.conf" <<EOF
base_dir = $T/run
state_dir = $T/state
log_path = $T/dovecot.log
instance_name = amends-test-$$
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = $LOGIN_USER
default_internal_user = $INTERNAL_USER
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $T/passwd
}
userdb {
  driver = static
  args = uid=$UID_ gid=$GID_ home=$T/mail/%u
}
namespace inbox {
  inbox = yes
  separator = .
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
EOF

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
cat > "$T/amends/amends.conf" <<EOF
state_dir = "$T/amends";
drafts = {
  delivery = "imap";
  imap_url = "imap://127.0.0.1:$PORT";
  imap_user = "drafts";
  imap_password_file = "$T/amends/imap.pw";
  imap_mailbox = "Drafts";
  imap_retry_s = 1;
  spool_dir = "$T/amends/spool";
  templates_dir = "$top_srcdir/conf/templates";
  eom_budget_ms = 500;
};
EOF

# check N: the Drafts folder holds N messages, all \Draft, decoded subject and threading right
check() {
	$PY - "$PORT" "$1" "$MSG" <<'EOF' || fail "IMAP check for $1 drafts"
import email, email.policy, imaplib, sys
from email.header import decode_header, make_header
port, want, orig = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
o = email.message_from_binary_file(open(orig, 'rb'), policy=email.policy.default)
want_subj = 'Re: ' + str(o['Subject'])
want_irt = o['Message-ID'].strip()
M = imaplib.IMAP4('127.0.0.1', port)
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
echo "PASS: imap_dovecot"
exit 0
