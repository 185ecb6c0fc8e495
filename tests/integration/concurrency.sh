#!/bin/bash
# concurrency.sh - 16 milter sessions at once against one daemon with the SQLite tally and drafting
# on (RELIABILITY R1.2: the ThreadSanitizer pass of CI runs this with 0 races)
#
# The shipped configuration, rules and templates, a private SQLite tally and a Maildir for the
# drafts. tests/milterclient opens CONC_SESSIONS (16) connections at once, each sending
# CONC_PER_CONN (40) messages in one session: complaints from 8 senders and cancellations from 2,
# every message its own file and Message-ID, laid out so the connections send the same senders
# at the same moments (they contend for the same tally rows and the same draft claims).
# Checks: every message is answered (ACCEPT/CONTINUE; none tempfailed, rejected or dropped) and
# tagged with its category; per sender, the counts reported in X-Amends-Tally are exactly
# 1..K, each once, and the store holds K (no update lost or doubled); each complaint sender got
# exactly one apology draft and each cancelling sender one win-back (no claim taken twice), with
# nothing left in the Maildir's tmp/ or new/; the daemon is alive and answers afterwards, and
# stops on SIGTERM with exit status 0 (under TSan a report at exit makes it 66).
# The SQLite busy timeout and the drafting budget are raised: their expiry is faults.sh's
# subject, and here a slow host (TSan runs code 5-15x slower) must not turn into a skipped update.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"
. "$top_srcdir/tests/lib/acceptlib.sh"

need_built
[ -x "$AMENDSCTL" ] || skip "$AMENDSCTL is not built"
command -v python3 >/dev/null || skip "python3 is needed to read amendsctl --json"

SESSIONS=${CONC_SESSIONS:-16}
PER=${CONC_PER_CONN:-40}
COMPLAINERS=8
CANCELLERS=2
NSEND=$((COMPLAINERS + CANCELLERS))
TOTAL=$((SESSIONS * PER))
CONF="$T_TMP/amends.conf"
SOCK="unix:$T_TMP/amends.sock"
MAILDIR="$T_TMP/Maildir"
MSG="$T_TMP/msg"
mkdir -p "$MSG"

acc_clock_init
acc_config "$CONF" state="$T_TMP/state" store="sqlite:$T_TMP/state/tally.db" maildir="$MAILDIR" \
	eom_budget_ms=20000
acc_config_has "$CONF" 'enabled = true;'

# File j comes from sender j mod NSEND: senders 1..8 complain, 9..10 cancel. milterclient gives
# connection i the files i*PER .. i*PER+PER-1, so at any moment the connections are spread over
# all the senders. The sender is in the name and the Message-ID (s<N>-<j>).
files=()
for ((j = 0; j < TOTAL; j++)); do
	s=$((j % NSEND + 1))
	f="$MSG/s$s-$j.eml"
	if [ "$s" -le "$COMPLAINERS" ]; then
		acc_complaint_eml "$f" "conc$s@load.example" "s$s-$j"
	else
		acc_cancel_eml "$f" "conc$s@load.example" "s$s-$j"
	fi
	files+=("$f")
done

start_daemon "$CONF" "$SOCK"
t0=$(date +%s)
# Not run_client: on failure it would print all TOTAL paths.
"$MILTERCLIENT" -s "$SOCK" -c "$SESSIONS" -t 60 --basename --summary "${files[@]}" \
	>"$T_TMP/run.out" 2>"$T_TMP/run.err" ||
	fail "milterclient ($TOTAL messages on $SESSIONS connections) exited $?: $(head -c 2000 "$T_TMP/run.err")"
t_note "$TOTAL messages on $SESSIONS connections in $(($(date +%s) - t0)) s"

# ---- every message answered and tagged ------------------------------------------------------
assert_grep '^summary: CONTINUE=[0-9]+ ACCEPT=[0-9]+ REJECT=0 TEMPFAIL=0 DISCARD=0 CONNFAIL=0 SHUTDOWN=0 ABORTED=0 ERROR=0$' \
	"$T_TMP/run.out" "$SESSIONS connections: nothing rejected, tempfailed or dropped"
answered=$(grep -cE '^s[0-9]+-[0-9]+\.eml: (ACCEPT|CONTINUE)$' "$T_TMP/run.out")
[ "$answered" = "$TOTAL" ] || fail "$answered of $TOTAL messages answered ACCEPT/CONTINUE"
kill -0 "$T_DAEMON_PID" 2>/dev/null || fail "the daemon died during the load"
ok "all $TOTAL messages answered"

# One line per message: "file sender status-value tally-value" (- when a header is missing).
awk '/^s[0-9]+-[0-9]+\.eml: [A-Z]+$/ { if (f != "") print f, s, st, ta
		f = substr($1, 1, length($1) - 1); s = f; sub(/-.*/, "", s); st = "-"; ta = "-"; next }
	/^add: X-Amends-Status: / { st = substr($0, 23); gsub(/ /, "_", st) }
	/^add: X-Amends-Tally: / { ta = substr($0, 22); gsub(/ /, "", ta) }
	END { if (f != "") print f, s, st, ta }' "$T_TMP/run.out" >"$T_TMP/per-message"
[ "$(wc -l <"$T_TMP/per-message")" = "$TOTAL" ] || fail "transcript has $(wc -l <"$T_TMP/per-message") messages, expected $TOTAL"

# ---- the tally: 1..K per sender, each once, and K in the store ------------------------------
for ((s = 1; s <= NSEND; s++)); do
	if [ "$s" -le "$COMPLAINERS" ]; then cat=complaint; else cat=cancellation; fi
	k=$(awk -v s="s$s" '$2 == s' "$T_TMP/per-message" | wc -l)
	untagged=$(awk -v s="s$s" -v c="$cat" '$2 == s && $3 !~ ("^Yes;.*categories=([^;]*,)?" c "([,;]|$)")' \
		"$T_TMP/per-message" | head -3)
	[ -z "$untagged" ] || fail "sender $s: messages not tagged $cat: $untagged"
	awk -v s="s$s" -v c="$cat" '$2 == s { n = "-"; if (match($4, c "=[0-9]+")) n = substr($4, RSTART + length(c) + 1, RLENGTH - length(c) - 1); print n }' \
		"$T_TMP/per-message" | sort -n >"$T_TMP/counts.s$s"
	seq 1 "$k" >"$T_TMP/want.s$s"
	diff -q "$T_TMP/want.s$s" "$T_TMP/counts.s$s" >/dev/null ||
		fail "sender $s: the $k reported $cat counts are not 1..$k each once (a lost or doubled update): $(diff "$T_TMP/want.s$s" "$T_TMP/counts.s$s" | head -10 | tr '\n' ' ')"
	n=$(acc_tally_count "$CONF" "conc$s@load.example" "$cat") ||
		fail "amendsctl tally show failed: $(tail -3 "$T_TMP/amendsctl.err")"
	[ "$n" = "$k" ] || fail "sender $s: the store holds $cat=$n, $k were reported"
done
assert_no_grep 'tally: not recorded' "$T_DAEMON_LOG" "no tally update was skipped"
ok "tally exact under $SESSIONS sessions: every sender's counts 1..K once, and K in the store"

# ---- drafts: one per sender and kind ----------------------------------------------------------
DRAFTS="$MAILDIR/.Drafts"
[ -z "$(acc_cur_list "$DRAFTS/tmp")$(acc_cur_list "$DRAFTS/new")" ] ||
	fail "drafts left in tmp/ or new/: $(ls "$DRAFTS/tmp" "$DRAFTS/new")"
: >"$T_TMP/drafts"
for f in "$DRAFTS"/cur/*; do
	[ -f "$f" ] || continue
	kind=$(sed -n 's/^X-Amends-Draft-Kind: *\([a-z]*\).*/\1/p' "$f" | head -1)
	irt=$(sed -n 's/^In-Reply-To: *<\(s[0-9]*\)-[0-9]*@load\.example>.*/\1/p' "$f" | head -1)
	echo "${irt:-?} ${kind:-?}" >>"$T_TMP/drafts"
done
for ((s = 1; s <= NSEND; s++)); do
	if [ "$s" -le "$COMPLAINERS" ]; then echo "s$s apology"; else echo "s$s winback"; fi
done | LC_ALL=C sort >"$T_TMP/drafts.want"
LC_ALL=C sort "$T_TMP/drafts" >"$T_TMP/drafts.got"
diff -u "$T_TMP/drafts.want" "$T_TMP/drafts.got" >"$T_TMP/drafts.diff" ||
	fail "drafts (sender kind) differ from one per sender and kind: $(cat "$T_TMP/drafts.diff")"
ok "$(wc -l <"$T_TMP/drafts.got") drafts: one apology per complaining sender, one win-back per cancelling sender"

# ---- the daemon afterwards ---------------------------------------------------------------------
acc_complaint_eml "$MSG/after.eml" "after@load.example" "after-1"
run_client "$T_TMP/after.out" -s "$SOCK" -t 60 "$MSG/after.eml"
assert_grep '^add: X-Amends-Tally: complaint=1$' "$T_TMP/after.out" "the daemon still answers and counts after the load"
stop_daemon
[ "$T_DAEMON_STATUS" = 0 ] || fail "amends-milter exited $T_DAEMON_STATUS after SIGTERM"
ok "clean stop after the load (exit 0)"
