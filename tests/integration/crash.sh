#!/bin/bash
# crash.sh - acceptance of issue 4 (R7.1): kill -9 of the daemon under load on SQLite
#
# The shipped configuration (sqlite_synchronous = "full") on a private SQLite tally. ROUNDS
# rounds, each: start the daemon, run WORKERS client processes x PER_WORKER complaint messages
# (3 x 100 by default) from 10 senders (one milter session per message), and kill -9 the daemon
# at a random point of the load: worker 0 kills it after a random number of its own answers, so
# the kill always lands mid-load, while the other workers send. After every kill, with the
# daemon down:
#   - `sqlite3 DB 'PRAGMA integrity_check'` says ok;
#   - for every sender, the highest complaint count any X-Amends-Tally header reported so far
#     (every round, every daemon life) is <= the count amendsctl reads from the store (a tally
#     the daemon reported was committed), and the store holds no more than was sent.
# At the end a fresh daemon continues every sender's count from the store (count + 1).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"
. "$top_srcdir/tests/lib/acceptlib.sh"

need_built
[ -x "$AMENDSCTL" ] || skip "$AMENDSCTL is not built"
command -v sqlite3 >/dev/null || skip "the sqlite3 CLI is needed (Debian: sqlite3)"
command -v python3 >/dev/null || skip "python3 is needed to read amendsctl --json"

# make check: 3 rounds of 300 messages. RELIABILITY R7.1's full run (20 kills during a
# 5,000-message load): ROUNDS=20 PER_WORKER=1667 (contrib/bench/RESULTS.md has one).
ROUNDS=${ROUNDS:-3}
PER_WORKER=${PER_WORKER:-100}
WORKERS=${WORKERS:-3}
NSEND=10
MSG="$T_TMP/msg"
DB="$T_TMP/state/tally.db"
CONF="$T_TMP/amends.conf"
SOCK="unix:$T_TMP/amends.sock"
mkdir -p "$MSG"

acc_clock_init
acc_config "$CONF" state="$T_TMP/state" store="sqlite:$DB"
grep -q 'sqlite_synchronous = "full"' "$CONF" || fail "the shipped config no longer says sqlite_synchronous = \"full\""

# sender_v N - sets REPLY to sender N's address (no fork: the load loop calls it per message)
sender_v() { REPLY="crash$1@load.example"; }
sender() { sender_v "$1" && echo "$REPLY"; }

# answered - messages answered so far in this round
answered() { cat "$T_TMP"/r"$1".w*.res 2>/dev/null | awk -F'\t' '$4 == "CONTINUE"' | wc -l; }

# check_store ROUND - integrity and every reported tally in the store
check_store() {
	local ic s maxrep sent n addrs=() counts read=0
	ic=$(sqlite3 "$DB" 'PRAGMA integrity_check' 2>&1)
	[ "$ic" = ok ] || fail "round $1: PRAGMA integrity_check says: $ic"
	for ((s = 1; s <= NSEND; s++)); do addrs+=("$(sender "$s")"); done
	counts=$(acc_tally_counts "$CONF" complaint "${addrs[@]}") ||
		fail "round $1: amendsctl tally show failed: $(tail -3 "$T_TMP/amendsctl.err")"
	# per sender: the highest count reported to a client, the messages sent, the store's count
	while read -r s maxrep sent n; do
		[ "$maxrep" -le "$n" ] ||
			fail "round $1: $(sender "$s") was told complaint=$maxrep but the store has $n (a reported tally was lost)"
		[ "$n" -le "$sent" ] || fail "round $1: $(sender "$s") has $n complaints in the store, only $sent were sent"
		LAST_COUNT[$s]=$n
		read=$((read + 1))
	done < <(cat "$T_TMP"/r*.w*.res | awk -F'\t' -v nsend="$NSEND" -v counts="$counts" '
		{
			if (!match($1, /-s[0-9]+\.eml$/)) next
			s = substr($1, RSTART + 2, RLENGTH - 6)
			sent[s]++
			if ($4 == "CONTINUE" && $6 ~ /^[0-9]+$/ && $6 + 0 > max[s]) max[s] = $6 + 0
		}
		END {
			split(counts, n, "\n")
			for (s = 1; s <= nsend; s++) print s, max[s] + 0, sent[s] + 0, n[s]
		}')
	[ "$read" -eq "$NSEND" ] || fail "round $1: read the store for $read of $NSEND senders"
}

declare -A LAST_COUNT=()
ACC_LOAD_STOP="$T_TMP/load.stop"
for ((r = 1; r <= ROUNDS; r++)); do
	acc_start_daemon amends "$CONF" "$SOCK"
	# Worker 0 kills the daemon after its AT-th answer (10 .. 2/3 of its share), while the other
	# workers are mid-load: the kill cannot come after the load, nor wait on a poll.
	at=$((10 + RANDOM % (PER_WORKER * 2 / 3 - 10)))
	for ((w = 0; w < WORKERS; w++)); do
		for ((k = 0; k < PER_WORKER; k++)); do
			s=$(((k + w) % NSEND + 1))
			printf -v f '%s/r%d-w%d-%04d-s%d.eml' "$MSG" "$r" "$w" "$k" "$s"
			sender_v "$s"
			acc_complaint_eml "$f" "$REPLY" "r$r-w$w-$k"
		done
		: >"$T_TMP/r$r.w$w.res"
	done
	pids=()
	for ((w = 0; w < WORKERS; w++)); do
		# the glob keeps names with spaces whole; %04d keeps it in send order
		list=("$MSG/r$r-w$w-"*.eml)
		if ((w == 0)); then
			(acc_load_worker "$T_TMP/r$r.w0.res" "$SOCK" "${list[@]:0:at}" &&
				kill -KILL "${ACC_PID[amends]}") &
			killer=$!
		else
			acc_load_worker "$T_TMP/r$r.w$w.res" "$SOCK" "${list[@]}" &
			pids+=($!)
		fi
	done
	wait "$killer" || fail "round $r: the kill failed"
	wait "${ACC_PID[amends]}" 2>/dev/null
	# the rest of the load would only meet a closed socket
	touch "$ACC_LOAD_STOP"
	for p in "${pids[@]}"; do wait "$p"; done
	rm -f "$ACC_LOAD_STOP"
	n=$(awk -F'\t' '$4 == "CONTINUE"' "$T_TMP/r$r.w0.res" | wc -l)
	[ "$n" -eq "$at" ] || fail "round $r: only $n of worker 0's $at messages were answered before the kill"
	total=$(answered "$r")
	bad=$(awk -F'\t' '$4 == "CONTINUE" && $5 != "complaint"' "$T_TMP"/r"$r".w*.res | head -3)
	[ -z "$bad" ] || fail "round $r: answered but not tagged complaint: $bad"
	check_store "$r"
	ok "round $r: kill -9 after answer $at of worker 0 ($total answered in all): integrity ok, every reported tally is in the store"
done

# A new life goes on from the store.
acc_start_daemon amends "$CONF" "$SOCK"
for ((s = 1; s <= NSEND; s++)); do
	f="$MSG/after-s$s.eml"
	acc_complaint_eml "$f" "$(sender "$s")" "after-$s"
	run_client "$f.out" -t 5 -s "$SOCK" "$f" </dev/null
	got=$(acc_added "$f.out" X-Amends-Tally)
	[ "$got" = "complaint=$((LAST_COUNT[$s] + 1))" ] ||
		fail "after the crashes: $(sender "$s") got X-Amends-Tally '$got', want complaint=$((LAST_COUNT[$s] + 1))"
done
ok "after $ROUNDS crashes the restarted daemon counts on from the store"
acc_stop_daemon amends
[ "$(sqlite3 "$DB" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check after the clean stop"
exit 0
