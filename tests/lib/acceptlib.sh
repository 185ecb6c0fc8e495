# acceptlib.sh - helpers of the acceptance tests that go through the real daemon (bash)
#
# Sourced after testlib.sh by tests/integration/{scenarios,redis_shared,crash,faults}.sh.
# Gives: a configuration made from the SHIPPED conf/amends.conf (shipped rules and templates,
# a private state dir and store), a settable clock (AMENDS_CLOCK_FILE), a real redis-server on
# 127.0.0.1 at a free port, parsing of milterclient transcripts, reading the tally through
# amendsctl, and a generator of customer messages for load tests.
#
# OWNERSHIP  every server started here is t_track'ed, so testlib's EXIT trap stops it.
# DIAGNOSTICS  helpers call fail (exit 1) when their own setup breaks; checks return status.

if [ -z "${T_TMP:-}" ]; then
	echo "acceptlib.sh: source testlib.sh first" >&2
	exit 99
fi

AMENDSCTL="$top_builddir/src/amendsctl"
ACC_SHIPPED_CONF="$top_srcdir/conf/amends.conf"
SCENARIOS="$SHARED_DIR/corpus/dev/scenarios"
ACC_CLOCK="$T_TMP/clock"
ACC_REDIS_PID=""
ACC_REDIS_PORT=""

# ---- configuration ---------------------------------------------------------------------------

# acc_config FILE key=value... - the shipped amends.conf with its paths redirected. Keys:
#   state= (required), store= ("sqlite:/p", "redis:127.0.0.1:P", "none"; default: shipped ""),
#   longstanding= (default: the shipped conf/longstanding.txt), maildir=, log_level= (info),
#   busy_timeout_ms=, redis_timeout_ms=, eom_budget_ms= (default 5000 here, so a test finds a
#   draft on disk when the reply is in; the shipped 0 does not wait), sqlite_synchronous=, user=.
# Every substitution is verified, so a reworded shipped file fails here instead of silently
# pointing the test at /var/lib/amends.
acc_config() {
	local file=$1 kv k v
	shift
	local state="" store="" longstanding="$top_srcdir/conf/longstanding.txt" maildir=""
	local log_level=info busy_timeout_ms="" redis_timeout_ms="" eom_budget_ms=5000
	local sqlite_synchronous="" user="" stats_file=""
	for kv in "$@"; do
		k=${kv%%=*}
		v=${kv#*=}
		case $k in
		state | store | longstanding | maildir | log_level | busy_timeout_ms | redis_timeout_ms | \
			eom_budget_ms | sqlite_synchronous | user | stats_file)
			printf -v "$k" '%s' "$v" ;;
		*) fail "acc_config: unknown key $k" ;;
		esac
	done
	[ -n "$state" ] || fail "acc_config: state= is required"
	mkdir -p "$state"
	local -a sub=(
		-e "s|^state_dir = .*|state_dir = \"$state\";|"
		-e "s|^\\([[:space:]]*dir[[:space:]]*=[[:space:]]*\\)\"[^\"]*\"|\\1\"$top_srcdir/rules\"|"
		-e "s|^\\([[:space:]]*templates_dir[[:space:]]*=[[:space:]]*\\)\"[^\"]*\"|\\1\"$top_srcdir/conf/templates\"|"
		-e "s|^\\([[:space:]]*longstanding_file[[:space:]]*=[[:space:]]*\\)\"[^\"]*\"|\\1\"$longstanding\"|"
		-e "s|^\\([[:space:]]*log_level[[:space:]]*=[[:space:]]*\\)\"[^\"]*\"|\\1\"$log_level\"|"
	)
	[ -n "$store" ] && sub+=(-e "s|^\\([[:space:]]*store[[:space:]]*=[[:space:]]*\\)\"[^\"]*\"|\\1\"$store\"|")
	[ -n "$maildir" ] && sub+=(-e "s|^\\([[:space:]]*maildir[[:space:]]*=[[:space:]]*\\)\"[^\"]*\"|\\1\"$maildir\"|")
	[ -n "$user" ] && sub+=(-e "s|^\\([[:space:]]*user[[:space:]]*=[[:space:]]*\\)\"[^\"]*\"|\\1\"$user\"|")
	[ -n "$stats_file" ] && sub+=(-e "s|^\\([[:space:]]*stats_file[[:space:]]*=[[:space:]]*\\)\"[^\"]*\"|\\1\"$stats_file\"|")
	local n
	for n in busy_timeout_ms redis_timeout_ms eom_budget_ms; do
		[ -n "${!n}" ] && sub+=(-e "s|^\\([[:space:]]*${n}[[:space:]]*=[[:space:]]*\\)[0-9]*|\\1${!n}|")
	done
	[ -n "$sqlite_synchronous" ] &&
		sub+=(-e "s|^\\([[:space:]]*sqlite_synchronous[[:space:]]*=[[:space:]]*\\)\"[^\"]*\"|\\1\"$sqlite_synchronous\"|")
	sed "${sub[@]}" "$ACC_SHIPPED_CONF" >"$file" || fail "acc_config: cannot write $file"
	acc_config_has "$file" "state_dir = \"$state\";"
	acc_config_has "$file" "dir = \"$top_srcdir/rules\";"
	acc_config_has "$file" "templates_dir = \"$top_srcdir/conf/templates\";"
	acc_config_has "$file" "longstanding_file = \"$longstanding\";"
	[ -n "$store" ] && acc_config_has "$file" "store = \"$store\";"
	[ -n "$maildir" ] && acc_config_has "$file" "maildir = \"$maildir\";"
	for n in busy_timeout_ms redis_timeout_ms eom_budget_ms; do
		[ -n "${!n}" ] && acc_config_has "$file" "$n = ${!n};"
	done
	return 0
}

acc_config_has() {
	grep -qF -- "$2" "$1" || fail "acc_config: could not set '$2' in the shipped amends.conf"
}

# ---- the clock -------------------------------------------------------------------------------

# acc_clock_set EPOCH - what the daemon's clock says from now on (it reads the file on every use;
# written through a rename so a reader never sees half a number).
acc_clock_set() {
	echo "$1" >"$ACC_CLOCK.tmp" && mv -f "$ACC_CLOCK.tmp" "$ACC_CLOCK"
}
acc_clock_get() { cat "$ACC_CLOCK"; }
# acc_clock_days N - advance the clock N days.
acc_clock_days() { acc_clock_set $(($(acc_clock_get) + $1 * 86400)); }

# acc_clock_init [EPOCH] - start the clock (default 2026-11-02 09:00 UTC, the scenarios' week)
# and export AMENDS_CLOCK_FILE to the daemons and amendsctl started after this.
acc_clock_init() {
	acc_clock_set "${1:-1793610000}"
	export AMENDS_CLOCK_FILE="$ACC_CLOCK"
}

# ---- redis -----------------------------------------------------------------------------------

# acc_need_redis - 0 when redis-server and redis-cli are installed.
acc_have_redis() { command -v redis-server >/dev/null && command -v redis-cli >/dev/null; }

acc_redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$ACC_REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

# acc_redis_start [PORT] - a throwaway redis-server on 127.0.0.1 (no persistence), in the
# foreground of a background job; PORT defaults to a free one. Sets ACC_REDIS_PORT/_PID.
acc_redis_start() {
	ACC_REDIS_PORT=${1:-$(free_port)} || fail "no free port"
	mkdir -p "$T_TMP/redis"
	redis-server --port "$ACC_REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--dir "$T_TMP/redis" --daemonize no --protected-mode yes \
		>>"$T_TMP/redis.log" 2>&1 &
	ACC_REDIS_PID=$!
	t_track "$ACC_REDIS_PID"
	t_wait_for 10 acc_redis_ping || fail "redis-server did not answer on 127.0.0.1:$ACC_REDIS_PORT"
}

# acc_redis_kill - SIGKILL (a crash, not a shutdown).
acc_redis_kill() {
	kill -KILL "$ACC_REDIS_PID" 2>/dev/null
	wait "$ACC_REDIS_PID" 2>/dev/null
	return 0
}

acc_redis_stop() {
	t_kill_wait "$ACC_REDIS_PID" 10 || true
	wait "$ACC_REDIS_PID" 2>/dev/null
	return 0
}

# ---- transcripts -----------------------------------------------------------------------------

# acc_added FILE NAME - the values of "add: NAME: value" lines of a transcript (one a line).
acc_added() {
	acc_transcript "$1"
	[ -z "${ACC_T_ADD[$2]+set}" ] || printf '%s\n' "${ACC_T_ADD[$2]}"
}

# acc_status_categories "STATUS VALUE" - "a,b" from "Yes; categories=a,b; ...", "none" from "No; ..."
acc_status_categories() {
	acc_status_categories_v "$1"
	echo "$REPLY"
}

# acc_status_categories_v "STATUS VALUE" - the same into REPLY, without a fork (the load loop's).
acc_status_categories_v() {
	case $1 in
	Yes\;*categories=*)
		REPLY=${1#*categories=}
		REPLY=${REPLY%%;*} ;;
	No\;* | No) REPLY=none ;;
	*) REPLY="?" ;;
	esac
}

# acc_answer FILE - the milter's answer to the (single) message of a transcript.
acc_answer() {
	acc_transcript "$1"
	echo "$ACC_T_ANSWER"
}

# acc_transcript FILE - a one-message transcript read in one pass, without a fork (load loops
# read hundreds; acc_answer and acc_added read through it): ACC_T_ANSWER is the milter's answer
# (the first "FILE: ANSWER" line), ACC_T_ADD[NAME] the values of the "add: NAME: value" lines,
# one a line (unset when none).
declare -A ACC_T_ADD=()
acc_transcript() {
	local line name
	ACC_T_ANSWER=""
	ACC_T_ADD=()
	while IFS= read -r line; do
		case $line in
		"add: "*": "*)
			name=${line#add: }
			name=${name%%: *}
			ACC_T_ADD[$name]+="${ACC_T_ADD[$name]+$'\n'}${line#"add: $name: "}" ;;
		esac
		[ -z "$ACC_T_ANSWER" ] && [[ $line =~ ^[^\ ].*:\ ([A-Z]*)$ ]] && ACC_T_ANSWER=${BASH_REMATCH[1]}
	done <"$1"
}

# ---- the tally through amendsctl ------------------------------------------------------------

# acc_tally_count CONF ADDR CATEGORY - the count amendsctl reports (0 when unknown); returns 1
# when amendsctl fails.
acc_tally_count() { acc_tally_counts "$1" "$3" "$2"; }

# acc_tally_counts CONF CATEGORY ADDR... - the count amendsctl reports for each ADDR, one a line
# in ADDR's order (0 when unknown); returns 1 when amendsctl fails. One JSON reader for them all:
# python's start costs more than amendsctl's.
acc_tally_counts() {
	local conf=$1 cat=$2 a
	shift 2
	: >"$T_TMP/tally-counts.json"
	for a; do
		"$AMENDSCTL" -c "$conf" tally show "$a" --json >>"$T_TMP/tally-counts.json" \
			2>>"$T_TMP/amendsctl.err" || return 1
		echo >>"$T_TMP/tally-counts.json"
	done
	python3 -c '
import json, sys
objs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
if len(objs) != int(sys.argv[3]):
    sys.exit("%d JSON objects for %s addresses" % (len(objs), sys.argv[3]))
for d in objs:
    c = d.get("counts", {}).get(sys.argv[1])
    print(c["count"] if isinstance(c, dict) else (c or 0))' "$cat" "$T_TMP/tally-counts.json" "$#"
}

# ---- generated customer mail -----------------------------------------------------------------

# acc_complaint_eml FILE ADDR ID - an English complaint (the shipped rules tag it complaint) from
# ADDR with Message-ID <ID@load.example>.
acc_complaint_eml() {
	# printf, not crlf's sed: load tests write hundreds of these, and a fork each added up.
	printf '%s\r\n' "From: Load Customer <$2>" "To: support@shop.example" \
		"Subject: Order $3 arrived broken" "Date: Mon, 02 Nov 2026 10:00:00 +0000" \
		"Message-ID: <$3@load.example>" "MIME-Version: 1.0" \
		'Content-Type: text/plain; charset="utf-8"' "" "Hello," "" \
		"Order $3 arrived broken and damaged, the box was crushed. This is unacceptable," \
		"I am very disappointed with your service." "" "Regards" >"$1"
}

# acc_now_ms - wall clock in milliseconds (for latency measurements).
acc_now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ---- drafts in the Maildir -------------------------------------------------------------------

# acc_cur_list DIR - the file names in a Maildir cur/ (or any dir), sorted; nothing when absent.
acc_cur_list() {
	[ -d "$1" ] && (cd "$1" && ls -1A) | LC_ALL=C sort
	return 0
}

# acc_draft_info CONF FILE - one line "kind<TAB>content-language<TAB>in-reply-to<TAB>signed"
# of a draft: signed is "signed" when the decoded body carries the agent name the config gives
# for that language (so the template really is that language's), else "unsigned".
acc_draft_info() { acc_draft_infos "$1" "$2"; }

# acc_draft_infos CONF FILE... - acc_draft_info's line for each FILE, in order, from one python.
acc_draft_infos() {
	python3 - "$@" <<'PY'
import email, email.policy, re, sys
conf = open(sys.argv[1], encoding="utf-8").read()
agents = dict(re.findall(r'\b([a-z]{2})\s*=\s*\{[^}]*?agent\s*=\s*"([^"]*)"', conf, re.S))
for path in sys.argv[2:]:
    m = email.message_from_binary_file(open(path, "rb"), policy=email.policy.default)
    kind = str(m.get("X-Amends-Draft-Kind", "")).strip()
    lang = str(m.get("Content-Language", "")).strip()
    irt = str(m.get("In-Reply-To", "")).strip()
    body = ""
    for part in m.walk():
        if part.get_content_type() == "text/plain":
            body += part.get_content()
    agent = agents.get(lang)
    print("\t".join([kind or "-", lang or "-", irt or "-",
                     "signed" if agent and agent in body else "unsigned"]))
PY
}

# ---- daemons with their own logs ---------------------------------------------------------------

# acc_start_daemon NAME CONF SPEC - like testlib's start_daemon, for tests that run several
# daemons or restart one: the log goes to $T_TMP/NAME.log (appended), the pid to ACC_PID[NAME].
declare -gA ACC_PID=()
acc_start_daemon() {
	local name=$1 conf=$2 spec=$3 pid
	echo "==== start: amends-milter -c $conf -f -p $spec" >>"$T_TMP/$name.log"
	"$AMENDS_MILTER" -c "$conf" -f -p "$spec" >>"$T_TMP/$name.log" 2>&1 &
	pid=$!
	ACC_PID[$name]=$pid
	t_track "$pid"
	wait_ready "$spec" "$pid" || fail "amends-milter $name did not come up on $spec"
}

# acc_stop_daemon NAME - SIGTERM and wait (fails the test when it had to be killed).
acc_stop_daemon() { stop_daemon "${ACC_PID[$1]}"; }

# ---- counters ----------------------------------------------------------------------------------

# acc_stat CONF NAME - amends_NAME_total from the daemon's stats snapshot (amendsctl stats);
# empty when there is no snapshot yet.
acc_stat() {
	"$AMENDSCTL" -c "$1" stats 2>/dev/null | sed -n "s/^amends_$2_total \\([0-9]*\\)\$/\\1/p"
}

# acc_wait_stat CONF NAME MIN [SECONDS] - until the counter is >= MIN (the daemon writes the
# snapshot every 5 s; default wait 8 s). Prints the last value read; 1 on timeout.
acc_wait_stat() {
	local v i
	for ((i = 0; i < ${4:-8} * 5; i++)); do
		v=$(acc_stat "$1" "$2")
		if [ -n "$v" ] && [ "$v" -ge "$3" ]; then
			echo "$v"
			return 0
		fi
		sleep 0.2
	done
	echo "${v:-none}"
	return 1
}

# ---- load ------------------------------------------------------------------------------------

# acc_ms - milliseconds since the epoch, without a fork.
acc_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# acc_load_worker RESULTS SPEC FILE... - send each FILE in its own milter session (one client
# run each, so each is timed) and append one line per message to RESULTS:
#   file  client-exit  elapsed-ms  answer  categories  complaint-count-in-X-Amends-Tally
#   ("unrecorded" when the daemon said the update failed, "-" when there is no count)
# The envelope sender is the From address (the client's default). The transcript stays in
# FILE.out. Meant to run in the background (&); bounded by the number of files and the client's
# 5 s I/O timeout. When ACC_LOAD_STOP names a file, the worker stops once that file exists (a test
# that killed the daemon need not send the rest of the load into a closed socket).
acc_load_worker() {
	local res=$1 spec=$2 f t0 rc out st tally
	shift 2
	for f; do
		[ -n "${ACC_LOAD_STOP:-}" ] && [ -e "$ACC_LOAD_STOP" ] && break
		out="$f.out"
		t0=${EPOCHREALTIME/./}
		"$MILTERCLIENT" -t 5 -s "$spec" "$f" >"$out" 2>"$out.err" </dev/null
		rc=$?
		t0=$(((${EPOCHREALTIME/./} - t0) / 1000))
		acc_transcript "$out"
		st=${ACC_T_ADD[X-Amends-Status]:-}
		st=${st%%$'\n'*}
		tally=${ACC_T_ADD[X-Amends-Tally]:-}
		tally=${tally##*$'\n'}
		acc_status_categories_v "$st"
		case $tally in
		unrecorded) ;;
		*complaint=*) [[ $tally =~ complaint=([0-9]*) ]] && tally=${BASH_REMATCH[1]} ;;
		*) tally="" ;;
		esac
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "${f##*/}" "$rc" "$t0" "$ACC_T_ANSWER" "$REPLY" \
			"${tally:--}" >>"$res"
	done
}

# acc_counters_wired - 0 when the daemon writes its stats snapshot (amends-milter.c calls
# metrics_start). Until then the counter checks cannot run; tests say so loudly instead.
acc_counters_wired() { grep -q 'metrics_start' "$top_srcdir/src/amends-milter.c"; }

# acc_cancel_eml FILE ADDR ID - an English cancellation (the shipped rules tag it cancellation,
# and the default policy drafts a win-back at once) from ADDR.
acc_cancel_eml() {
	crlf >"$1" <<EOF2
From: Leaving Customer <$2>
To: support@shop.example
Subject: Please cancel my subscription ($3)
Date: Mon, 02 Nov 2026 10:00:00 +0000
Message-ID: <$3@load.example>
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"

Hello,

Please cancel my subscription and close my account today. I am switching to
another provider.

Regards
EOF2
}
