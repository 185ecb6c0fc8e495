#!/bin/bash
# postfix_dovecot.sh - end to end: real Postfix with amends attached, drafts by IMAP APPEND into a
# real Dovecot, including Dovecot going down and coming back (issue 5)
#
# Starts (tests/lib/mtalib.sh) a private Dovecot (plain IMAP on 127.0.0.1, user "drafts") and a
# private Postfix (smtpd_milters = amends, default_action=accept, virtual delivery into a
# Maildir), and amends from the SHIPPED config and rules with drafts.delivery = "imap" into the
# user's Drafts (imap_retry_s = 1). Then:
#  1. an Urdu customer (RFC 2047 name and subject) complains twice, the second a reply: the
#     delivered second message says X-Amends-Draft: apology, and Drafts holds one draft with
#     \Draft, Subject "Re: <original subject>", To with the decoded name, In-Reply-To and
#     References threading it under both messages, Content-Language ur, a quoted-printable UTF-8
#     body signed by the configured Urdu agent and quoting the customer;
#  2. Dovecot stopped: a Hindi customer cancels; the message is delivered and tagged
#     X-Amends-Draft: winback without waiting for the IMAP server, and `amendsctl drafts` lists
#     the spooled win-back; it stays spooled while the server is down;
#  3. Dovecot started again: within a bounded wait the win-back is in Drafts (\Draft, headers as
#     above, Content-Language hi), the apology is still there, and the spool is empty.
# Needs root (Postfix's master), postfix, swaks, dovecot, python3; skips (77) otherwise.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"
. "$top_srcdir/tests/lib/acceptlib.sh"
. "$top_srcdir/tests/lib/mtalib.sh"

mta_need_postfix
mta_need_dovecot
need_built
[ -x "$AMENDSCTL" ] || skip "$AMENDSCTL is not built"
CHECK_DRAFT="$top_srcdir/tests/lib/imap_drafts.py"
SOCK="unix:$T_TMP/amends.sock"
CONF="$T_TMP/amends.conf"
SPOOL="$T_TMP/spool"

# ---- servers and amends ------------------------------------------------------------------------
mta_dovecot_start
ok "private Dovecot $("$MTA_DOVECOT" --version | cut -d' ' -f1) on 127.0.0.1:$MTA_DV_PORT"

printf '%s\n' "$MTA_DV_PASS" >"$T_TMP/imap.pw"
chmod 600 "$T_TMP/imap.pw"
acc_config "$CONF" state="$T_TMP/state" log_level=debug
# set KEY VALUE: replace the shipped line "KEY = ...;" (the first one), verified
set_key() {
	sed -i "0,/^\\([[:space:]]*$1[[:space:]]*=[[:space:]]*\\)[^;]*;/s||\\1$2;|" "$CONF"
	acc_config_has "$CONF" "$1 = $2;"
}
set_key socket "\"$SOCK\""
set_key socket_group '"postfix"'
set_key delivery '"imap"'
set_key imap_url "\"imap://127.0.0.1:$MTA_DV_PORT\""
set_key imap_user "\"$MTA_DV_USER\""
set_key imap_password_file "\"$T_TMP/imap.pw\""
set_key imap_mailbox '"Drafts"'
set_key imap_retry_s 1
set_key spool_dir "\"$SPOOL\""
"$AMENDSCTL" -c "$CONF" lint >"$T_TMP/lint.out" 2>&1 || fail "amendsctl lint: $(cat "$T_TMP/lint.out")"

acc_clock_init        # 2026-11-02 09:00 UTC, the day the messages are dated
start_daemon "$CONF" "$SOCK"
mta_postfix_start "$SOCK"
ok "private Postfix $(postconf -dh mail_version) on 127.0.0.1:$MTA_PF_PORT, amends attached"

# ---- the customers' mail -----------------------------------------------------------------------
b64() { printf '%s' "$1" | base64 -w0; }
# eml FILE FROM_NAME FROM_ADDR SUBJECT MSGID BODY [EXTRA_HEADER_LINES] - UTF-8, CRLF, RFC 2047 B.
eml() {
	{
		printf 'From: =?utf-8?B?%s?= <%s>\n' "$(b64 "$2")" "$3"
		printf 'To: support@shop.example\nSubject: =?utf-8?B?%s?=\n' "$(b64 "$4")"
		printf 'Date: Mon, 02 Nov 2026 10:00:00 +0500\nMessage-ID: <%s>\n' "$5"
		[ -n "${7:-}" ] && printf '%s\n' "$7"
		printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset="utf-8"\n'
		printf 'Content-Transfer-Encoding: 8bit\n\n%s\n' "$6"
	} | crlf >"$1"
}
UR_NAME='علی رضا'
UR_ADDR=ali.raza@example.pk
UR_SUBJ='آرڈر ۱۲۳۴ خراب پہنچا'
UR_TEXT2='دو دن ہو گئے اور ابھی تک کوئی جواب نہیں آیا۔ یہ بالکل ناقابل قبول ہے، میں بہت ناراض ہوں۔'
eml "$T_TMP/ur1.eml" "$UR_NAME" "$UR_ADDR" "$UR_SUBJ" urdu-1@example.pk "السلام علیکم،

میرا آرڈر ٹوٹا ہوا پہنچا ہے۔ ڈبہ پھٹا ہوا تھا اور سامان خراب ہے۔ میں آپ کی سروس سے بہت مایوس ہوں۔

علی رضا"
eml "$T_TMP/ur2.eml" "$UR_NAME" "$UR_ADDR" "Re: $UR_SUBJ" urdu-2@example.pk "$UR_TEXT2

علی رضا" "In-Reply-To: <urdu-1@example.pk>
References: <urdu-1@example.pk>"
HI_NAME='राहुल वर्मा'
HI_ADDR=rahul.verma@example.in
HI_SUBJ='मेरी सदस्यता रद्द करें'
HI_TEXT='कृपया मेरी सदस्यता तुरंत रद्द कर दीजिए और मेरा खाता बंद कर दीजिए।'
eml "$T_TMP/hi1.eml" "$HI_NAME" "$HI_ADDR" "$HI_SUBJ" hindi-1@example.in "नमस्ते,

$HI_TEXT मैं किसी दूसरी कंपनी में जा रहा हूँ।

राहुल"

# The shipped rules must see what this test relies on (else a rule change breaks it silently).
"$AMENDSCTL" -c "$CONF" check "$T_TMP/ur1.eml" "$T_TMP/ur2.eml" "$T_TMP/hi1.eml" \
	>"$T_TMP/check.out" 2>&1 || fail "amendsctl check: $(tail -5 "$T_TMP/check.out")"
[ "$(grep -c '^X-Amends-Status: Yes; categories=complaint; lang=ur;' "$T_TMP/check.out")" = 2 ] ||
	fail "test bug: the shipped rules do not classify both Urdu messages as complaint only: $(grep '^X-Amends-Status' "$T_TMP/check.out")"
grep -q '^X-Amends-Status: Yes; categories=cancellation; lang=hi;' "$T_TMP/check.out" ||
	fail "test bug: the shipped rules do not classify the Hindi message as a cancellation: $(grep '^X-Amends-Status' "$T_TMP/check.out")"
ok "amendsctl check: two Urdu complaints, one Hindi cancellation"

# draft_check COUNT WAIT_S ARGS... - tests/lib/imap_drafts.py against the test user's Drafts.
draft_check() {
	local count=$1 wait=$2
	shift 2
	python3 "$CHECK_DRAFT" --port "$MTA_DV_PORT" --user "$MTA_DV_USER" --password "$MTA_DV_PASS" \
		--conf "$CONF" --count "$count" --wait "$wait" "$@" >"$T_TMP/draft-check.out" 2>&1 ||
		fail "IMAP: $(tail -5 "$T_TMP/draft-check.out")"
	ok "IMAP: $(tail -1 "$T_TMP/draft-check.out")"
}
apology_check() {
	draft_check "$1" "$2" --kind apology --irt '<urdu-2@example.pk>' --ref '<urdu-1@example.pk>' \
		--subject "Re: $UR_SUBJ" --to-name "$UR_NAME" --to-addr "$UR_ADDR" --lang ur \
		--quote "$UR_TEXT2"
}
# delivered_header MSGID - the delivered message's header block (folded lines joined).
delivered_header() {
	mta_wait_delivered "$1" 30
	mta_headers_of "$(mta_delivered "$1")"
}

# ---- 1. two complaints through Postfix: an apology in Drafts over IMAP ----------------------------
mta_send "$T_TMP/ur1.eml" "$UR_ADDR"
delivered_header urdu-1@example.pk >"$T_TMP/ur1.hdr"
assert_grep '^X-Amends-Status: Yes; categories=complaint' "$T_TMP/ur1.hdr" "first complaint delivered, tagged"
assert_no_grep '^X-Amends-Draft:' "$T_TMP/ur1.hdr" "no draft after one complaint"
mta_send "$T_TMP/ur2.eml" "$UR_ADDR"
delivered_header urdu-2@example.pk >"$T_TMP/ur2.hdr"
assert_grep '^X-Amends-Draft: apology$' "$T_TMP/ur2.hdr" "second complaint delivered with X-Amends-Draft: apology"
apology_check 1 20

# ---- 2. Dovecot down: a cancellation is delivered at once, its win-back spooled -------------------
mta_dovecot_stop
t0=$(acc_ms)
mta_send "$T_TMP/hi1.eml" "$HI_ADDR"
swaks_ms=$(($(acc_ms) - t0))
delivered_header hindi-1@example.in >"$T_TMP/hi1.hdr"
assert_grep '^X-Amends-Status: Yes; categories=cancellation' "$T_TMP/hi1.hdr" "cancellation delivered, tagged"
assert_grep '^X-Amends-Draft: winback$' "$T_TMP/hi1.hdr" "cancellation carries X-Amends-Draft: winback"
# the SMTP session must not wait for the IMAP server (the spool write is local and quick)
[ "$swaks_ms" -lt 3000 ] || fail "SMTP transaction took $swaks_ms ms with Dovecot down"
grep -qE 'milter-reject|451 4\.7\.1|milter8' "$MTA_PF_LOG" &&
	fail "Postfix complained about the milter: $(grep -E 'milter-reject|451 4\.7\.1|milter8' "$MTA_PF_LOG" | head -3)"
ok "SMTP transaction with Dovecot down: $swaks_ms ms"

drafts_list() { "$AMENDSCTL" -c "$CONF" drafts >"$T_TMP/drafts.out" 2>&1; }
spooled_winback() {
	drafts_list && grep -q '^1 waiting, 0 failed' "$T_TMP/drafts.out" &&
		grep -qE "^waiting .* winback .*$HI_NAME <$HI_ADDR>  Re: $HI_SUBJ" "$T_TMP/drafts.out"
}
spool_empty() { drafts_list && grep -q '^0 waiting, 0 failed' "$T_TMP/drafts.out"; }
t_wait_for 5 spooled_winback || fail "amendsctl drafts does not list the spooled win-back: $(cat "$T_TMP/drafts.out")"
ok "amendsctl drafts: $(grep '^waiting' "$T_TMP/drafts.out")"
sleep 2.5   # two retries (imap_retry_s = 1) against the stopped server
spooled_winback || fail "the win-back left the spool while Dovecot was down: $(cat "$T_TMP/drafts.out")"
assert_grep 'imap: .*stay spooled' "$T_DAEMON_LOG" "still spooled after retries; the log says the server is down"

# ---- 3. Dovecot back: the win-back arrives, nothing lost -------------------------------------------
mta_dovecot_start
draft_check 2 20 --kind winback --irt '<hindi-1@example.in>' --subject "Re: $HI_SUBJ" \
	--to-name "$HI_NAME" --to-addr "$HI_ADDR" --lang hi --quote "$HI_TEXT"
t_wait_for 10 spool_empty || fail "spool not empty after delivery: $(cat "$T_TMP/drafts.out")"
ok "spool empty"
apology_check 2 0   # after the spool emptied: the apology kept, nothing appended twice
ok "nothing lost, nothing doubled"

grep -qE 'milter-reject|451 4\.7\.1' "$MTA_PF_LOG" &&
	fail "Postfix refused mail: $(grep -E 'milter-reject|451 4\.7\.1' "$MTA_PF_LOG" | head -3)"
stop_daemon
[ "$T_DAEMON_STATUS" = 0 ] || fail "amends exit status $T_DAEMON_STATUS after SIGTERM"
mta_dovecot_stop
mta_postfix_stop
exit 0
