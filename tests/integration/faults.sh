#!/bin/bash
# faults.sh - issue 8 item 3 / R7.1, R7.3 with real resources: locked database, full and
# read-only filesystems under the state dir and the Maildir
#
# One daemon on the shipped configuration; as root its state dir and its review Maildir each sit
# on their own tiny tmpfs (mounted before the daemon starts: the Maildir writer keeps directory
# fds, so only a fault on the same filesystem reaches it). For each fault, every message is
# answered CONTINUE and tagged within MAX_MS, the failure is logged (and counted in
# `amendsctl stats` once the daemon writes its snapshot), nothing partial shows in the Maildir,
# and after the fault clears the work resumes with no restart:
#   1. SQLite locked by another process (python3 holding BEGIN EXCLUSIVE): updates skipped after
#      busy_timeout_ms, then recorded again;
#   2. Maildir full (filler file): the due win-back is not written (no file in cur/, new/, tmp/);
#      space back: the same sender's next cancellation gets its draft (the claim was returned);
#   3. Maildir read-only (remount ro; as non-root: chmod 0500 on tmp/);
#   4. state dir full: every update either recorded or logged as failed, at least one failed;
#      space back: recorded again;
#   5. state dir read-only when the daemon starts (a filesystem with the database open for writing
#      cannot be remounted ro): it still comes up, answers and tags, logs the failed updates, and
#      records again once the filesystem is writable, without a restart.
# Parts 2-5 need root and mount (tmpfs); without them those parts are skipped and say why
# (part 3 runs as non-root with chmod).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"
. "$top_srcdir/tests/lib/acceptlib.sh"

need_built
[ -x "$AMENDSCTL" ] || skip "$AMENDSCTL is not built"
command -v python3 >/dev/null || skip "python3 is needed (it holds the SQLite lock)"

MAX_MS=2500          # busy_timeout_ms (1000) plus the EOM work, with room for a loaded host
CONF="$T_TMP/amends.conf"
SOCK="unix:$T_TMP/amends.sock"
MSG="$T_TMP/msg"
SKIPPED=()
NOT_CHECKED=()
mkdir -p "$MSG"

# ---- filesystems -------------------------------------------------------------------------------
ST_FS="$T_TMP/st"
MD_FS="$T_TMP/md"
mkdir -p "$ST_FS" "$MD_FS"
MOUNTED=0
if [ "$(id -u)" = 0 ]; then
	if mount -t tmpfs -o size=2m,mode=0755 amends-test "$ST_FS" 2>"$T_TMP/mount.err"; then
		t_on_exit "umount -l '$ST_FS'"
		if mount -t tmpfs -o size=512k,mode=0755 amends-test "$MD_FS" 2>>"$T_TMP/mount.err"; then
			t_on_exit "umount -l '$MD_FS'"
			MOUNTED=1
		fi
	fi
	[ "$MOUNTED" = 1 ] || NO_MOUNT="mount -t tmpfs failed: $(head -c 200 "$T_TMP/mount.err")"
else
	NO_MOUNT="not root: cannot mount a tmpfs"
fi
STATE="$ST_FS/state"
MAILDIR="$MD_FS/Maildir"
DB="$STATE/tally.db"
DRAFTS="$MAILDIR/.Drafts"

acc_clock_init
# The stats snapshot lives outside the state dir: part 5 makes that read-only.
# eom_budget_ms=0, the shipped default: a draft is written after the reply, so a failed one
# gives its claim back from the writer thread (pipeline.c unclaim_late)
acc_config "$CONF" state="$STATE" store="sqlite:$DB" maildir="$MAILDIR" busy_timeout_ms=1000 \
	stats_file="$T_TMP/stats" eom_budget_ms=0
acc_start_daemon amends "$CONF" "$SOCK"
LOG="$T_TMP/amends.log"

N=0
# send KIND ADDR - one message (complaint|cancel) through the daemon; checks it is answered
# CONTINUE, tagged, within MAX_MS. Sets OUT (transcript), MS, TALLY (X-Amends-Tally), DRAFT.
send() {
	local kind=$1 addr=$2 f t0 want
	N=$((N + 1))
	f="$MSG/$N-$kind.eml"
	case $kind in
	complaint) acc_complaint_eml "$f" "$addr" "m$N"; want=complaint ;;
	cancel) acc_cancel_eml "$f" "$addr" "m$N"; want=cancellation ;;
	esac
	OUT="$f.out"
	t0=$(acc_ms)
	run_client "$OUT" -t 10 -s "$SOCK" "$f" </dev/null
	MS=$(($(acc_ms) - t0))
	[ "$(acc_answer "$OUT")" = CONTINUE ] || fail "message $N ($kind): answered $(acc_answer "$OUT")"
	[ "$(acc_status_categories "$(acc_added "$OUT" X-Amends-Status)")" = "$want" ] ||
		fail "message $N ($kind): not tagged $want: $(acc_added "$OUT" X-Amends-Status)"
	[ "$MS" -le "$MAX_MS" ] || fail "message $N ($kind): took $MS ms (> $MAX_MS)"
	TALLY=$(acc_added "$OUT" X-Amends-Tally)
	DRAFT=$(acc_added "$OUT" X-Amends-Draft)
}

# log_count PATTERN - lines of the daemon log matching PATTERN (fixed string)
log_count() { grep -cF -- "$1" "$LOG"; }

# counted NAME N WHAT - the counter reached exactly N (read from the daemon's snapshot, which
# is up to 5 s old: wait for it to reach N, then check it did not pass N)
counted() {
	local v
	if acc_counters_wired; then
		v=$(acc_wait_stat "$CONF" "$1" "$2") || fail "$3: amends_$1_total is $v, want $2"
		[ "$v" = "$2" ] || fail "$3: amends_$1_total is $v, want exactly $2"
	else
		NOT_CHECKED+=("amends_$1_total ($3)")
	fi
}

store_count() {
	acc_tally_count "$CONF" "$1" "$2" || fail "amendsctl tally show $1 failed: $(tail -3 "$T_TMP/amendsctl.err")"
}

drafts_in() { acc_cur_list "$DRAFTS/$1" | grep -c .; }
drafts_are() { [ "$(drafts_in cur)" = "$1" ]; }
# log_grew PATTERN BEFORE - the log has more than BEFORE lines with PATTERN
log_grew() { [ "$(log_count "$1")" -gt "$2" ]; }

# no_partial WHAT - nothing in new/ or tmp/, and cur/ holds exactly DRAFTS_WANT files
no_partial() {
	[ "$(drafts_in cur)" = "$DRAFTS_WANT" ] || fail "$1: cur/ holds $(drafts_in cur) drafts, want $DRAFTS_WANT"
	[ "$(drafts_in new)" = 0 ] || fail "$1: files in new/: $(acc_cur_list "$DRAFTS/new")"
	[ "$(drafts_in tmp)" = 0 ] || fail "$1: partial files left in tmp/: $(acc_cur_list "$DRAFTS/tmp")"
}

DRAFT_FAILS=0
# draft_fails ADDR WHAT - with the Maildir faulty: a cancellation from ADDR is answered and
# tagged, its win-back is due but not written: logged, counted, nothing partial.
draft_fails() {
	local fb
	fb=$(log_count "draft winback for $1 not written")
	send cancel "$1"
	[ "$DRAFT" = winback ] || fail "$2: X-Amends-Draft '$DRAFT' (the win-back is still due)"
	t_wait_for 3 log_grew "draft winback for $1 not written" "$fb" ||
		fail "$2: no 'draft winback for $1 not written' in the log"
	no_partial "$2"
	DRAFT_FAILS=$((DRAFT_FAILS + 1))
	counted drafts_failed "$DRAFT_FAILS" "$2"
}

# draft_written ADDR WHAT - the fault cleared: ADDR's next cancellation gets its win-back (the
# claim of the failed one was given back), with no restart.
draft_written() {
	send cancel "$1"
	[ "$DRAFT" = winback ] || fail "$2: X-Amends-Draft '$DRAFT', want winback (was the claim returned?)"
	DRAFTS_WANT=$((DRAFTS_WANT + 1))
	t_wait_for 3 drafts_are "$DRAFTS_WANT" || fail "$2: no new draft in cur/"
	no_partial "$2"
}

# ---- warm-up: everything works -----------------------------------------------------------------
send complaint warm@fault.example
[ "$TALLY" = "complaint=1" ] || fail "warm-up: X-Amends-Tally '$TALLY'"
send cancel first@fault.example
[ "$DRAFT" = winback ] || fail "warm-up: a cancellation gave X-Amends-Draft '$DRAFT', want winback"
DRAFTS_WANT=1
t_wait_for 3 drafts_are 1
no_partial "warm-up"
ok "warm-up: tally recorded, win-back drafted"

# ---- 1. SQLite locked by another process ---------------------------------------------------------
python3 - "$DB" "$T_TMP/release" >"$T_TMP/locker.out" 2>&1 <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
end = time.time() + 60            # bounded: never hold the lock longer than a minute
while not os.path.exists(sys.argv[2]) and time.time() < end:
    time.sleep(0.05)
db.execute("COMMIT")
PY
LOCKER=$!
t_track "$LOCKER"
t_wait_for 10 grep -q locked "$T_TMP/locker.out" || fail "the python3 locker did not get the lock: $(cat "$T_TMP/locker.out")"
before=$(log_count "tally: not recorded for locked@fault.example")
slowest=0
for i in 1 2 3; do
	send complaint locked@fault.example
	[ "$TALLY" = unrecorded ] || fail "locked: message $i reported X-Amends-Tally '$TALLY', want 'unrecorded' (the update cannot have been stored)"
	[ "$MS" -gt "$slowest" ] && slowest=$MS
done
logged=$(($(log_count "tally: not recorded for locked@fault.example") - before))
[ "$logged" = 3 ] || fail "locked: $logged 'tally: not recorded' lines, want 3"
counted tally_failures 3 "locked database"
touch "$T_TMP/release"
wait "$LOCKER" || fail "the locker failed: $(cat "$T_TMP/locker.out")"
send complaint locked@fault.example
[ "$TALLY" = "complaint=1" ] || fail "locked: after the lock was released X-Amends-Tally is '$TALLY', want complaint=1 (the 3 were dropped)"
[ "$(store_count locked@fault.example complaint)" = 1 ] || fail "locked: the update after the release is not in the store"
send complaint locked@fault.example
[ "$TALLY" = "complaint=2" ] || fail "locked: tally did not resume: '$TALLY'"
[ "$DRAFT" = apology ] || fail "locked: the second stored complaint gave X-Amends-Draft '$DRAFT', want apology"
DRAFTS_WANT=2
t_wait_for 3 drafts_are 2
no_partial "after the lock"
ok "1. database locked by another process: 3 messages answered and tagged (slowest $slowest ms), failures logged; updates resume after release"

if [ "$MOUNTED" = 1 ]; then
	# fill DIR - write a filler file until the filesystem is full
	fill() {
		dd if=/dev/zero of="$1/filler" bs=4k 2>/dev/null
		sync
		[ "$(df -k --output=avail "$1" | tail -1 | tr -d ' ')" -le 4 ] || fail "could not fill $1: $(df -k "$1")"
	}
	unfill() { rm -f "$1/filler"; }

	# ---- 2. Maildir full --------------------------------------------------------------------------
	fill "$MD_FS"
	draft_fails full@fault.example "Maildir full"
	unfill "$MD_FS"
	draft_written full@fault.example "Maildir full, space back"
	ok "2. Maildir on a full tmpfs: mail answered and tagged, draft failure logged, nothing partial; drafts again once space is back"
fi

# ---- 3. Maildir read-only ---------------------------------------------------------------------
ro_how=""
if [ "$MOUNTED" = 1 ]; then
	mount -o remount,ro "$MD_FS" && ro_how="remount,ro"
elif [ "$(id -u)" != 0 ]; then
	chmod 0500 "$DRAFTS/tmp" && ro_how="chmod 0500 tmp/"
	t_on_exit "chmod 0700 '$DRAFTS/tmp'"
fi
if [ -n "$ro_how" ]; then
	draft_fails ro@fault.example "Maildir read-only"
	if [ "$MOUNTED" = 1 ]; then mount -o remount,rw "$MD_FS"; else chmod 0700 "$DRAFTS/tmp"; fi
	draft_written ro@fault.example "Maildir writable again"
	ok "3. Maildir read-only ($ro_how): mail answered and tagged, failure logged, nothing partial; drafts again after"
else
	SKIPPED+=("3. Maildir read-only: $NO_MOUNT (and as root chmod cannot stop writes)")
fi

if [ "$MOUNTED" = 1 ]; then
	# ---- 4. state dir full --------------------------------------------------------------------
	before=$(log_count "tally: not recorded for sfull@fault.example")
	# Empty the WAL first: after a checkpoint SQLite writes the WAL again from its start, in the
	# space the file already has, so a WAL that had grown took all six updates on a full
	# filesystem without a new block (a pass of the daemon, a failure of this test, seen in CI).
	# TRUNCATE leaves it at zero bytes, so the next commit needs new blocks.
	emptied=0
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		r=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1], timeout=2).execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])' "$DB" 2>&1)
		[ "$r" = 0 ] && [ ! -s "$DB-wal" ] && { emptied=1; break; }
		sleep 0.2
	done
	[ "$emptied" = 1 ] || fail "state dir full: could not empty the WAL ($r; $(stat -c %s "$DB-wal" 2>&1) bytes)"
	fill "$ST_FS"
	rec=0 dropped=0
	for i in 1 2 3 4 5 6; do
		send complaint sfull@fault.example
		# Each update is either stored, and reported with its count, or reported unrecorded.
		if [ "$TALLY" = "complaint=$((rec + 1))" ]; then
			[ "$(store_count sfull@fault.example complaint)" = $((rec + 1)) ] ||
				fail "state dir full: message $i reported complaint=$((rec + 1)) but the store has $(store_count sfull@fault.example complaint)"
			rec=$((rec + 1))
		elif [ "$TALLY" = unrecorded ]; then
			dropped=$((dropped + 1))
		else
			fail "state dir full: message $i reported X-Amends-Tally '$TALLY', want complaint=$((rec + 1)) or unrecorded"
		fi
	done
	logged=$(($(log_count "tally: not recorded for sfull@fault.example") - before))
	[ "$dropped" -ge 1 ] || fail "state dir full: all 6 updates were stored on a full filesystem?"
	[ "$logged" = "$dropped" ] || fail "state dir full: $dropped updates not stored, $logged logged as 'tally: not recorded'"
	unfill "$ST_FS"
	send complaint sfull@fault.example
	[ "$TALLY" = "complaint=$((rec + 1))" ] || fail "state dir full, space back: X-Amends-Tally '$TALLY', want complaint=$((rec + 1))"
	[ "$(store_count sfull@fault.example complaint)" = $((rec + 1)) ] || fail "state dir full, space back: not in the store"
	[ "$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' "$DB" 2>&1)" = ok ] || fail "state dir full: integrity_check fails afterwards"
	counted tally_failures $((3 + dropped)) "state dir full"
	ok "4. state dir on a full tmpfs: mail answered and tagged, $dropped failed updates logged; recorded again once space is back"

	# ---- 5. state dir read-only ----------------------------------------------------------------
	# A filesystem with a database open for writing cannot be remounted read-only, so this is
	# the state dir that is read-only when the daemon starts (e.g. after an fs error at boot):
	# the daemon must still come up, answer and tag, log the failed updates, and record again
	# once the filesystem is writable, with no restart.
	base=$(store_count sfull@fault.example complaint)
	acc_stop_daemon amends
	mount -o remount,ro "$ST_FS" || fail "remount,ro $ST_FS: $(mount -o remount,ro "$ST_FS" 2>&1)"
	echo "==== start with a read-only state dir" >>"$LOG"
	"$AMENDS_MILTER" -c "$CONF" -f -p "$SOCK" >>"$LOG" 2>&1 &
	ACC_PID[amends]=$!
	t_track "${ACC_PID[amends]}"
	wait_ready "$SOCK" "${ACC_PID[amends]}" ||
		fail "5. state dir read-only at start: the daemon does not come up, so no mail is answered or tagged: $(grep -E 'error' "$LOG" | tail -2)"
	before=$(log_count "tally: not recorded for sfull@fault.example")
	send complaint sfull@fault.example
	[ "$TALLY" = unrecorded ] || fail "state dir read-only: X-Amends-Tally '$TALLY', want 'unrecorded' (cannot have been stored)"
	[ $(($(log_count "tally: not recorded for sfull@fault.example") - before)) = 1 ] ||
		fail "state dir read-only: the failed update was not logged"
	mount -o remount,rw "$ST_FS" || fail "remount,rw $ST_FS"
	send complaint sfull@fault.example
	[ "$TALLY" = "complaint=$((base + 1))" ] ||
		fail "state dir writable again: X-Amends-Tally '$TALLY', want complaint=$((base + 1)) (no recovery without a restart?)"
	counted tally_failures 1 "state dir read-only"
	ok "5. state dir read-only: mail answered and tagged, failure logged; recorded again when writable"
else
	SKIPPED+=("2., 4., 5. (full filesystems, read-only state dir): $NO_MOUNT")
fi

acc_stop_daemon amends
for s in "${SKIPPED[@]}"; do echo "SKIP part: $s"; done
for s in "${NOT_CHECKED[@]}"; do echo "note: not checked (amends-milter.c does not call metrics_start yet): $s"; done
exit 0
