#!/bin/bash
# soak.sh - RELIABILITY R6.1: a soak through a real Postfix at 16 and at 64 concurrent sessions
#
# Postfix's smtp-source sends customer mail (eight messages of the dev corpus, eight senders)
# to a private Postfix whose smtpd has amends attached (the shipped configuration: full rule
# packs, SQLite tally, drafts into a Maildir); Postfix relays everything to smtp-sink. For each
# level in SOAK_LEVELS (default "16 64") the load runs SOAK_SECONDS (default 30; R6.1's full
# run is SOAK_SECONDS=1800) while the daemon's RSS, open descriptors and threads are sampled
# every SOAK_SAMPLE_S seconds (default 2). Then, per level:
#   - 0 errors: every smtp-source batch exits 0 (it stops at the first unexpected reply), the
#     Postfix log has no milter reject/tempfail and no milter error, the queue drains, and
#     amendsctl stats says internal_errors, tally_failures and drafts_failed are 0;
#   - every message Postfix received was relayed to smtp-sink (status=sent), and amends
#     counted at least as many messages as were sent;
#   - peak RSS <= 64 MiB, and flat: the last two thirds of the run (R6.1: the last 20 of 30
#     minutes) grow less than 5% over the RSS at their start;
#   - after the load (queue drained, idle connections past their 10 s, one message to let the
#     tally pool close them), open descriptors and threads are back to the baseline +- 2, the
#     baseline taken the same way after a warm-up at the same level; the descriptors on the
#     tally database and its WAL at most two per connection the tally may have open (its bound
#     on readers, the writer, the checkpointer) plus a few (see below why), at any number of
#     sessions.
# Every wait is bounded; Postfix, smtp-sink and the daemon listen on 127.0.0.1 or a unix
# socket in the test's directory and are stopped on exit. Needs root (Postfix), postfix.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"
. "$top_srcdir/tests/lib/acceptlib.sh"
. "$top_srcdir/tests/lib/mtalib.sh"

mta_need_postfix
need_built
# it measures the production build: sanitizers multiply memory and time (the ASan pass sets this)
[ -z "${AMENDS_TEST_SLOW:-}" ] || skip "a sanitizer build (AMENDS_TEST_SLOW): RSS and rates mean nothing here"
for tool in smtp-source smtp-sink; do
	command -v "$tool" >/dev/null || skip "$tool not found (Debian package postfix)"
done
[ -x "$AMENDSCTL" ] || fail "$AMENDSCTL is not built"
CORPUS="$top_srcdir/../shared/corpus/dev/messages"
[ -d "$CORPUS" ] || skip "no dev corpus at $CORPUS"

SOAK_SECONDS=${SOAK_SECONDS:-30}
SOAK_LEVELS=${SOAK_LEVELS:-"16 64"}
SOAK_SAMPLE_S=${SOAK_SAMPLE_S:-2}
BATCH=200                 # messages per smtp-source run; runs repeat until the time is up
RSS_MAX_KB=$((64 * 1024))
SOCK="unix:$T_TMP/amends.sock"
CONF="$T_TMP/amends.conf"

# ---- smtp-sink, Postfix relaying to it, amends -----------------------------------------------
SINK_PORT=$(free_port) || fail "no free port"
smtp-sink -u nobody -c "127.0.0.1:$SINK_PORT" 256 >"$T_TMP/sink.out" 2>&1 &
t_track $!
sink_up() { (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null; }
t_wait_for 10 sink_up || fail "smtp-sink did not come up: $(cat "$T_TMP/sink.out")"

# the shipped eom_budget_ms (0): drafts written after the reply, as in production
acc_config "$CONF" state="$T_TMP/state" maildir="$T_TMP/drafts" eom_budget_ms=0
sed -i "0,/^\\([[:space:]]*socket[[:space:]]*=[[:space:]]*\\)[^;]*;/s||\\1\"$SOCK\";|" "$CONF"
sed -i "0,/^\\([[:space:]]*socket_group[[:space:]]*=[[:space:]]*\\)[^;]*;/s||\\1\"postfix\";|" "$CONF"
acc_config_has "$CONF" "socket = \"$SOCK\";"
acc_config_has "$CONF" 'socket_group = "postfix";'
start_daemon "$CONF" "$SOCK"
PID=$T_DAEMON_PID

# shop.example is relayed to smtp-sink instead of being delivered to a Maildir
MTA_PF_EXTRA="virtual_mailbox_domains =
relay_domains = shop.example
relay_transport = smtp:[127.0.0.1]:$SINK_PORT
smtp_tls_security_level = none
default_process_limit = 200"
mta_postfix_start "$SOCK"
ok "Postfix $(postconf -dh mail_version) on 127.0.0.1:$MTA_PF_PORT -> amends -> smtp-sink on :$SINK_PORT"

# ---- the mail ----------------------------------------------------------------------------------
# Eight corpus messages, each with its own sender: complaints, refunds, cancellations, abuse
# in several languages and encodings, and clean mail.
mapfile -t SRC < <(ls "$CORPUS"/*.eml | sort | awk 'NR % 30 == 1' | head -n 8)
[ "${#SRC[@]}" = 8 ] || fail "the dev corpus has fewer than 211 messages"
for i in "${!SRC[@]}"; do
	# smtp-source writes its own envelope; the header From: names the customer amends tallies
	sed -e "s/^From: .*/From: Soak Customer $i <soak$i@customers.example>/" -e 's/\r$//' \
		"${SRC[$i]}" >"$T_TMP/m$i.eml"
done

# ---- sampling ----------------------------------------------------------------------------------
# sample - "rss_kb fds threads dbfds heap_in_use_kb heap_held_kb walfds" of the daemon now;
# dbfds: those on the tally database and its WAL (one of each per connection; see below what
# lingers after a close), walfds those on the WAL alone; the heap: the gauges of the last stats
# snapshot (every 5 s), 0 if none. The descriptors of the sample with the most dbfds so far are
# kept in $T_TMP/fds-peak (for a failure message).
sample() {
	local rss thr fds dbfds walfds heap links
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
	thr=$(awk '/^Threads:/ {print $2}' "/proc/$PID/status")
	links=$(find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null)
	fds=$(printf '%s\n' "$links" | grep -c .)
	dbfds=$(printf '%s\n' "$links" | grep -cE '/state/tally\.db(-wal)?$')
	walfds=$(printf '%s\n' "$links" | grep -cE '/state/tally\.db-wal$')
	heap=$(awk '$1 == "amends_heap_in_use_bytes" {u = int($2 / 1024)}
		$1 == "amends_heap_held_bytes" {h = int($2 / 1024)}
		END {print u + 0, h + 0}' "$T_TMP/state/stats" 2>/dev/null || echo "0 0")
	# (sample runs in a command substitution: the peak so far is kept in a file, not a variable)
	if [ "$dbfds" -gt "$(cat "$T_TMP/fds-peak-n" 2>/dev/null || echo 0)" ]; then
		echo "$dbfds" >"$T_TMP/fds-peak-n"
		fd_summary "$links" >"$T_TMP/fds-peak"
	fi
	echo "$rss $fds $thr $dbfds $heap $walfds"
}
# fd_summary LINKS - descriptor targets (one a line) counted, numbers blurred (for a failure)
fd_summary() { printf '%s\n' "$1" | sed 's/[0-9]\{3,\}/N/g' | sort | uniq -c | tr '\n' ';'; }
# fd_list - what the daemon's descriptors point at now, counted
fd_list() { fd_summary "$(find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null)"; }
queue_empty() { [ -z "$(find "$MTA_PF/spool/incoming" "$MTA_PF/spool/active" \
	"$MTA_PF/spool/deferred" "$MTA_PF/spool/maildrop" -type f 2>/dev/null | head -n 1)" ]; }
sent_count() { grep -c ' status=sent ' "$MTA_PF_LOG"; }

# send_batch N SESSIONS I OUT - N messages of message I over SESSIONS parallel sessions
send_batch() {
	smtp-source -s "$2" -m "$1" -f "soak$3@customers.example" -t support@shop.example \
		-F "$T_TMP/m$3.eml" "127.0.0.1:$MTA_PF_PORT" >>"$4" 2>&1
}

# settle - queue drained, the tally's idle connections older than 10 s, one message to let
# the pool close them, drained again; then sample.
settle() {
	t_wait_for 120 queue_empty || fail "the Postfix queue did not drain in 120 s: $(tail -5 "$MTA_PF_LOG")"
	sleep 11
	send_batch 1 1 0 "$T_TMP/settle.out" || fail "smtp-source: $(tail -3 "$T_TMP/settle.out")"
	t_wait_for 60 queue_empty || fail "the Postfix queue did not drain: $(tail -5 "$MTA_PF_LOG")"
	sleep 1
	sample
}

# run_load LEVEL SECONDS TAG - LEVEL sessions for SECONDS: four smtp-source loops of LEVEL/4
# sessions, two messages each, batches of BATCH until the time is up; the daemon sampled into
# $T_TMP/samples-TAG every SOAK_SAMPLE_S. Sets LOAD_MSGS (messages sent) and LOAD_END.
run_load() {
	local level=$1 secs=$2 tag=$3 per=$(($1 / 4)) w p i alive pids=()
	[ "$per" -ge 1 ] || fail "SOAK_LEVELS: $level is below 4 sessions"
	: >"$T_TMP/samples-$tag"
	rm -f "$T_TMP/fds-peak-n" "$T_TMP/fds-peak"   # a failure shows this run's peak
	LOAD_END=$(($(date +%s) + secs))
	for w in 0 1 2 3; do
		(
			n=0
			# bounded: the deadline, and at most one batch per second of the run per loop
			while [ "$(date +%s)" -lt "$LOAD_END" ] && [ "$n" -lt $((secs + 1)) ]; do
				send_batch "$BATCH" "$per" $((w * 2 + n % 2)) "$T_TMP/load-$tag-$w.out" || exit 1
				n=$((n + 1))
			done
			echo "$n" >"$T_TMP/batches-$tag-$w"
		) &
		pids+=($!)
		t_track "${pids[-1]}"
	done
	while [ "$(date +%s)" -lt "$LOAD_END" ]; do
		echo "$(date +%s) $(sample)" >>"$T_TMP/samples-$tag"
		sleep "$SOAK_SAMPLE_S"
	done
	for ((i = 0; i < 1200; i++)); do
		alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ "$alive" = 0 ] && break
		echo "$(date +%s) $(sample)" >>"$T_TMP/samples-$tag"
		sleep 0.5
	done
	[ "$alive" = 0 ] || fail "$tag: smtp-source still running 600 s after the deadline"
	for w in "${!pids[@]}"; do
		wait "${pids[$w]}" || fail "$tag: smtp-source loop $w failed: $(tail -5 "$T_TMP/load-$tag-$w.out")"
	done
	LOAD_MSGS=$(($(cat "$T_TMP"/batches-"$tag"-* | awk '{s += $1} END {print s}') * BATCH))
}

# ---- the soak ----------------------------------------------------------------------------------
# The baseline of each level is taken after a warm-up at that level. The descriptors on the
# tally database and its WAL are checked apart. SQLite keeps the database descriptor of a closed
# connection open while other connections of the process hold locks on the file (POSIX locks
# are per process; in WAL mode every open connection holds one) and reuses it for the next
# connection it opens; the WAL's descriptor is closed with its connection. So the database's
# follow the peak number of tally connections open at once - the pool's bound on readers
# (SQ_READERS_MAX, whatever the number of sessions), plus the writer and the checkpointer -
# which a warm-up may or may not reach, and the WAL's the connections open now, plus the one
# descriptor the syncs of the commits share (tally_sqlite.c, sq_wal_get). At most two per
# connection and that one, then, and DBFDS_SLACK for a sample that lists a descriptor closed
# and opened again under another number while it reads them. A leak grows with the messages,
# past that bound; every other descriptor must be back to baseline.
# The first warm-up is longer: the tally writer's page cache (2 MiB, tally_sqlite.c) fills as
# the database grows, about 15,000 messages here, and that bounded growth is not a leak.
DBFDS_SLACK=2
READERS=$(sed -n 's/^#define SQ_READERS_MAX \([0-9][0-9]*\).*/\1/p' "$top_srcdir/src/tally_sqlite.c")
[ -n "$READERS" ] || fail "no SQ_READERS_MAX in src/tally_sqlite.c"
DBFDS_MAX=$((2 * (READERS + 2) + 1 + DBFDS_SLACK))
warm=$(((SOAK_SECONDS / 6) > 30 ? SOAK_SECONDS / 6 : 30))
for level in $SOAK_LEVELS; do
	run_load "$level" "$warm" "warm-$level"
	warm=$(((SOAK_SECONDS / 6) > 10 ? SOAK_SECONDS / 6 : 10))
	read -r base_rss base_fds base_thr base_dbfds _ < <(settle)
	sent0=$(sent_count)
	run_load "$level" "$SOAK_SECONDS" "$level"
	msgs=$LOAD_MSGS
	end=$LOAD_END
	read -r rss fds thr dbfds _ < <(settle)
	sent=$(($(sent_count) - sent0 - 1))

	# errors in Postfix's log: milter rejects, tempfails, milter trouble
	bad=$(grep -E 'milter-reject|451 4\.7\.1|warning: milter|milter.*(timeout|error)' "$MTA_PF_LOG" | head -5)
	[ -z "$bad" ] || fail "level $level: Postfix logged milter trouble: $bad"
	[ "$sent" -ge "$msgs" ] || fail "level $level: $msgs messages sent, $sent relayed to smtp-sink"
	# the RSS: peak, and drift over the last two thirds
	read -r peak drift_pct start_kb < <(awk -v t0="$((end - SOAK_SECONDS))" -v span="$SOAK_SECONDS" '
		{ if ($2 > peak) peak = $2
		  if ($1 >= t0 + span / 3) { if (!s) s = $2; if ($2 > m) m = $2 } }
		END { printf "%d %.2f %d\n", peak, s ? (m - s) * 100 / s : 0, s }' "$T_TMP/samples-$level")
	# the heap over the same two thirds, for the record (in use rising with RSS is a leak, held
	# rising alone fragmentation); a sample's in use includes the messages in flight
	heap=$(awk -v t0="$((end - SOAK_SECONDS))" -v span="$SOAK_SECONDS" '
		$1 >= t0 + span / 3 && $6 > 0 { if (!u0) { u0 = $6; h0 = $7 } u = $6; h = $7 }
		END { if (u0) printf "heap in use %.1f -> %.1f MiB, held %.1f -> %.1f MiB",
			u0 / 1024, u / 1024, h0 / 1024, h / 1024; else printf "no heap gauges" }' \
		"$T_TMP/samples-$level")
	[ "$peak" -le "$RSS_MAX_KB" ] || fail "level $level: peak RSS $peak kB > $RSS_MAX_KB kB ($heap)"
	awk -v d="$drift_pct" 'BEGIN { exit !(d < 5) }' ||
		fail "level $level: RSS grew $drift_pct% over the last two thirds (from $start_kb kB; $heap)"
	other=$((fds - dbfds)) base_other=$((base_fds - base_dbfds))
	[ $((other - base_other)) -le 2 ] && [ $((base_other - other)) -le 2 ] ||
		fail "level $level: $other open fds (not the tally's) after the run, baseline" \
			"$base_other: $(fd_list)"
	# the same bound under the load, not only after it: the readers are bounded while 64
	# sessions want them, which a check after the idle connections closed cannot show
	peak_dbfds=$(awk '$5 > m {m = $5} END {print m + 0}' "$T_TMP/samples-$level")
	peak_walfds=$(awk '$8 > m {m = $8} END {print m + 0}' "$T_TMP/samples-$level")
	for n in "$dbfds" "$peak_dbfds"; do
		[ "$n" -le "$DBFDS_MAX" ] ||
			fail "level $level: $n fds on the tally database and WAL (after the run:" \
				"$dbfds, most during it: $peak_dbfds), more than two each for $READERS" \
				"readers, the writer and the checkpointer, and the WAL's for syncs" \
				"(+$DBFDS_SLACK); now: $(fd_list)" \
				"at the peak: $(cat "$T_TMP/fds-peak" 2>/dev/null)"
	done
	[ $((thr - base_thr)) -le 2 ] && [ $((base_thr - thr)) -le 2 ] ||
		fail "level $level: $thr threads after the run, baseline $base_thr"
	ok "level $level: $msgs messages in ${SOAK_SECONDS}s ($((msgs / SOAK_SECONDS))/s), all relayed;" \
		"peak RSS $((peak / 1024)) MiB, drift $drift_pct% ($heap); $fds fds ($dbfds on the tally," \
		"at most $peak_dbfds during the load, $peak_walfds of them the WAL's)," \
		"$thr threads after (baseline after the warm-up: $base_fds ($base_dbfds), $base_thr)"
done

# amends' own counters (the stats snapshot is written every 5 s)
sleep 6
"$AMENDSCTL" -c "$CONF" stats >"$T_TMP/stats.out" 2>&1 || fail "amendsctl stats: $(cat "$T_TMP/stats.out")"
counter() { awk -v n="amends_$1" '$1 == n {print $2}' "$T_TMP/stats.out"; }
# why, when not: the daemon's error lines by kind (queue id and sender cut off), most first
why() { grep -E ': (err|error|warning): ' "$T_DAEMON_LOG" | sed -E 's/^.*: (err|error|warning): ([^ :]+: )?//;
	s/ for [^ ]+:/ for -:/; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -5; }
for c in internal_errors_total tally_failures_total drafts_failed_total; do
	[ "$(counter "$c")" = 0 ] || fail "amends_$c is $(counter "$c"), not 0; the log says: $(why)"
done
# the pool's own count (a gauge, read like a counter): never more readers open at once than its
# bound, whatever the sessions
pool_peak=$(counter tally_pool_connections_peak)
[ -n "$pool_peak" ] && [ "$pool_peak" -le "$READERS" ] ||
	fail "amends_tally_pool_connections_peak is '$pool_peak', the pool's bound $READERS"
total=$(sent_count)
[ "$(counter messages_total)" -ge "$total" ] ||
	fail "amends counted $(counter messages_total) messages, Postfix relayed $total"
ok "amends: $(counter messages_total) messages, $(counter tally_updates_total) tally updates," \
	"$(counter drafts_written_total) drafts, 0 internal errors, 0 tally or draft failures;" \
	"at most $pool_peak of $READERS pooled readers open at once"
kill -0 "$PID" || fail "the daemon died"
stop_daemon
exit 0
