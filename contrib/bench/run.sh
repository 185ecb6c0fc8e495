#!/bin/bash
# run.sh - the benchmark behind "make bench": amends against the null milter, and a rule sweep
#
# In one run, for BENCH_ROUNDS rounds, one server after the other on a unix socket in a temp
# dir, each driven by benchclient with the same load (BENCH_CONNS connections, sessions of
# BENCH_K messages, BENCH_SECONDS per server of which BENCH_WARMUP warm up), the same mix of
# mail (the dev corpus + BENCH_BIG generated larger multipart messages):
#   null          contrib/bench/nullmilter: accepts, adds one header (the protocol floor)
#   amends        the shipped rule packs, SQLite tally with the shipped sqlite_synchronous=full,
#                 drafting on into a temp Maildir (a fresh state dir per server run)
#   amends-normal the same with sqlite_synchronous=normal
#   gen-N         amends with N generated rules (gen_rules.py) instead of the packs, N in
#                 BENCH_SWEEP
# These run closed-loop (each connection sends its next message when the last is answered),
# which measures saturation: their latency is mostly queueing. Then, when BENCH_VARIANTS has
# "latency", a fixed-rate phase measures latency below saturation: for BENCH_ROUNDS rounds,
#   null-rate, amends-rate   null and amends (shipped packs, as above), alternating, open-loop
#                 (and amends-normal-rate, sqlite_synchronous=normal, when amends-normal runs:
#                 what the fsync per tally commit adds to the latency)
#                 at BENCH_RATE msg/s over the same BENCH_CONNS connections, Poisson arrivals
#                 from BENCH_SEED (both servers get the same arrival times and message order);
#                 latency from each message's scheduled arrival to the reply at EOM
# BENCH_RATE: a number (msg/s); "auto" (default): 400 msg/s, or half the amends saturation
# rate measured earlier in this run if that is lower; "half": half that saturation rate.
# A fixed 400 keeps the offered load the same across runs and code changes (a faster amends
# must not be measured at a higher load) and is ~1/3 of amends' saturation on the 2 vCPUs of
# RESULTS.md; the cap keeps a slower machine below saturation.
# The report gives, per variant, the median over rounds of messages/s, latency p50/p99/max, the
# server's CPU per message, peak RSS (VmHWM), drafts written and rules stopped by their time
# budget; ratios and the fixed-rate "p99 added latency" (amends p99 - null p99) are taken within
# each round (adjacent runs, same machine load) and their median reported. Raw numbers go to
# BENCH_OUT (default: bench-results.tsv in the build dir).
#
# Usage: contrib/bench/run.sh BUILD_DIR     (make bench does this)
# Env:   BENCH_ROUNDS=3 BENCH_SECONDS=6 BENCH_WARMUP=1 BENCH_CONNS=16 BENCH_K=5 BENCH_BIG=30
#        BENCH_SWEEP="100 300 1000" BENCH_CORPUS=$src/../shared/corpus/dev/messages
#        BENCH_VARIANTS="null amends amends-normal gen latency" BENCH_KEEP=1 (keep the temp dir)
#        BENCH_RATE=auto BENCH_ARRIVALS=poisson|even BENCH_SEED=1
#        BENCH_EOM_BUDGET_MS=N (drafts.eom_budget_ms for every amends variant; default: the
#        shipped 0, the reply does not wait for the draft; 500 was the default before round 8)
# The run takes about ROUNDS x (5 + sweep size) x (SECONDS + 1-2 s): under 5 minutes by default.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
here="$src/contrib/bench"
PYTHON3=${PYTHON3:-python3}
rounds=${BENCH_ROUNDS:-3}
secs=${BENCH_SECONDS:-6}
warmup=${BENCH_WARMUP:-1}
conns=${BENCH_CONNS:-16}
per_session=${BENCH_K:-5}
nbig=${BENCH_BIG:-30}
sweep=${BENCH_SWEEP:-100 300 1000}
corpus=${BENCH_CORPUS:-$src/../shared/corpus/dev/messages}
variants=${BENCH_VARIANTS:-null amends amends-normal gen latency}
bench_rate=${BENCH_RATE:-auto}
arrivals=${BENCH_ARRIVALS:-poisson}
seed=${BENCH_SEED:-1}
out=${BENCH_OUT:-$build/bench-results.tsv}
client="$build/contrib/bench/benchclient"
null="$build/contrib/bench/nullmilter"
milter="$build/src/amends-milter"
export PYTHONDONTWRITEBYTECODE=1

for p in "$client" "$null" "$milter"; do
	[ -x "$p" ] || { echo "bench: $p is missing (run make bench)" >&2; exit 1; }
done
[ -d "$corpus" ] || { echo "bench: corpus $corpus not found (set BENCH_CORPUS)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/amends-bench.XXXXXX")
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# ---- inputs --------------------------------------------------------------------------------
"$PYTHON3" "$here/gen_mail.py" "$nbig" "$work/big"
mail_dirs=("$corpus" "$work/big")
for n in $sweep; do
	"$PYTHON3" "$here/gen_rules.py" "$n" "$work/rules-$n"
done

# conf_for NAME RULES_DIR SYNC - the shipped amends.conf with private paths; fails loudly when
# the shipped file no longer has the lines we rewrite.
conf_for() {
	local name=$1 rules=$2 sync=$3 f="$work/$1.conf" eom=()
	[ -n "${BENCH_EOM_BUDGET_MS:-}" ] &&
		eom=(-e "s|eom_budget_ms = [0-9]*;|eom_budget_ms = $BENCH_EOM_BUDGET_MS;|")
	sed -e "s|^state_dir = .*|state_dir = \"$work/state-$name\";|" \
	    -e "s|^\([[:space:]]*dir[[:space:]]*=[[:space:]]*\)\"[^\"]*\"|\1\"$rules\"|" \
	    -e "s|templates_dir = \"templates\";|templates_dir = \"$src/conf/templates\";|" \
	    -e "s|longstanding_file = \"longstanding.txt\";|longstanding_file = \"$src/conf/longstanding.txt\";|" \
	    -e "s|sqlite_synchronous = \"[a-z]*\";|sqlite_synchronous = \"$sync\";|" \
	    "${eom[@]}" \
	    "$src/conf/amends.conf" >"$f"
	for k in "state_dir = \"$work/state-$name\"" "dir = \"$rules\"" "$src/conf/templates" \
	    "$src/conf/longstanding.txt" "sqlite_synchronous = \"$sync\"" "enabled = true"; do
		grep -qF "$k" "$f" || { echo "bench: cannot set '$k' in $f" >&2; exit 1; }
	done
	if [ -n "${BENCH_EOM_BUDGET_MS:-}" ] && ! grep -qF "eom_budget_ms = $BENCH_EOM_BUDGET_MS;" "$f"; then
		echo "bench: cannot set eom_budget_ms in $f" >&2
		exit 1
	fi
}
conf_for amends "$src/rules" full
conf_for amends-normal "$src/rules" normal
for n in $sweep; do conf_for "gen-$n" "$work/rules-$n" full; done

# ---- one server run -----------------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# run_one ROUND VARIANT [RATE] - start the server, load it (closed loop, or open loop at RATE
# msg/s; VARIANT is then SERVER-rate), append one TSV line to $out.
run_one() {
	local round=$1 v=$2 rate=${3:-0} srv=${2%-rate}
	local sock="$work/$2.sock" log="$work/$2.log" state="$work/state-$srv" load=()
	rm -rf "$state" "$sock" && mkdir -p "$state"
	[ "$rate" = 0 ] || load=(--rate "$rate" --arrivals "$arrivals" --seed "$seed")
	if [ "$srv" = null ]; then
		"$null" -p "unix:$sock" 2>"$log" &
	else
		"$milter" -c "$work/$srv.conf" -f -p "unix:$sock" 2>"$log" &
	fi
	server_pid=$!
	# amends opens its socket before it loads the rules (1,000 rules: ~0.5 s of CPU, which
	# would be counted per message): wait for its "listening" line, logged when it is ready.
	for _ in $(seq 600); do
		[ -S "$sock" ] && { [ "$srv" = null ] || grep -q 'listening on' "$log"; } && break
		sleep 0.1
	done
	[ -S "$sock" ] || { echo "bench: $v did not start:" >&2; cat "$log" >&2; exit 1; }
	local c0 line c1 hwm drafts stops rc=0
	c0=$(cpu_ticks "$server_pid")
	line=$("$client" -s "unix:$sock" -c "$conns" -k "$per_session" -T "$secs" -W "$warmup" \
		-l "$v" "${load[@]}" "${mail_dirs[@]}") || rc=$?
	c1=$(cpu_ticks "$server_pid")
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status")
	kill "$server_pid"
	wait "$server_pid" || true
	server_pid=
	[ "$rc" = 0 ] || { echo "bench: $v: client failed ($line)" >&2; tail -n 5 "$log" >&2; exit 1; }
	drafts=$(find "$state" -path '*/.Drafts/cur/*' -type f 2>/dev/null | wc -l)
	stops=$(grep -c 'stopped by its time budget' "$log" || true)
	# total counts warm-up too: the CPU delta covers both.
	echo "$line" | awk -v r="$round" -v c="$((c1 - c0))" -v tck="$clk_tck" -v h="$hwm" \
	    -v d="$drafts" -v s="$stops" '{
		for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
		printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
		    r, f["label"], f["msgs"], f["rate"], f["p50_ms"], f["p99_ms"], f["max_ms"],
		    f["mean_ms"], f["total"] ? c * 1000 / tck / f["total"] : 0, h, d, s,
		    f["modified"] "/" f["total"], f["mode"], f["offered"] + 0, f["missed"] + 0,
		    f["lag_p99_ms"] + 0, f["arrivals"] == "" ? "-" : f["arrivals"]
	}' >>"$out"
	tail -n 1 "$out" | awk -F'\t' '{printf "  round %s %-14s %8s msg/s  p50 %7s  p99 %8s  max %8s ms  cpu %6s ms/msg  rss %6d KiB", $1, $2, $4, $5, $6, $7, $9, $10
		if ($14 == "rate") printf "  (offered %s, missed %s, lag p99 %s ms)", $15, $16, $17
		printf "\n" }'
	if [ "$rate" != 0 ] && [ "$(tail -n 1 "$out" | cut -f16)" != 0 ]; then
		echo "bench: $v did not sustain $rate msg/s: its latencies are a lower bound" >&2
	fi
}

# fixed_rate - the open-loop rate for the latency phase (see BENCH_RATE in the header).
fixed_rate() {
	local half
	half=$(awk -F'\t' '$2 == "amends" && $14 == "closed" {print $4}' "$out" | sort -g |
	       awk '{v[NR] = $1} END {if (NR) printf "%d", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) / 2}')
	case $bench_rate in
	auto) if [ -n "$half" ] && [ "$half" -ge 1 ] && [ "$half" -lt 400 ]; then
		echo "$half"; else echo 400; fi ;;
	half) if [ -z "$half" ] || [ "$half" -lt 1 ]; then
		echo "bench: BENCH_RATE=half needs the amends variant" >&2; return 1
	      fi
	      echo "$half" ;;
	*) [[ $bench_rate =~ ^[0-9]+([.][0-9]+)?$ ]] ||
		{ echo "bench: BENCH_RATE must be a number, auto or half" >&2; return 1; }
	   echo "$bench_rate" ;;
	esac
}

# ---- the run ------------------------------------------------------------------------------
nmail=$(find "${mail_dirs[@]}" -maxdepth 1 -name '*.eml' | wc -l)
mbytes=$(find "${mail_dirs[@]}" -maxdepth 1 -name '*.eml' -exec cat {} + | wc -c)
echo "bench: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p'), $(nproc) CPUs," \
     "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM"
echo "bench: load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: $nmail messages ($((mbytes / 1024)) KiB: $corpus + $nbig generated)," \
     "$conns connections, sessions of $per_session, ${secs}s per server (${warmup}s warm-up)," \
     "$rounds rounds"
printf 'round\tvariant\tmsgs\trate\tp50_ms\tp99_ms\tmax_ms\tmean_ms\tcpu_ms_per_msg\thwm_kib\tdrafts\tbudget_stops\tmodified\tmode\toffered\tmissed\tlag_p99_ms\tarrivals\n' >"$out"
for r in $(seq "$rounds"); do
	for v in $variants; do
		case $v in
		gen) for n in $sweep; do run_one "$r" "gen-$n"; done ;;
		latency) ;;
		*) run_one "$r" "$v" ;;
		esac
	done
done
if [[ " $variants " == *" latency "* ]]; then
	rate=$(fixed_rate)
	echo "bench: fixed-rate latency: $rate msg/s ($arrivals arrivals, seed $seed, BENCH_RATE=$bench_rate)," \
	     "null and amends alternating"
	for r in $(seq "$rounds"); do
		run_one "$r" null-rate "$rate"
		run_one "$r" amends-rate "$rate"
		if [[ " $variants " == *" amends-normal "* ]]; then
			run_one "$r" amends-normal-rate "$rate"
		fi
	done
fi
echo "bench: load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$PYTHON3" "$here/summary.py" "$out"
echo "bench: raw numbers in $out"
