#!/bin/bash
# run.sh - `make fuzz`: run each libFuzzer target for a while on a merged seed corpus
#
# Usage (from a build configured with CC=clang --enable-fuzzing):
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_JOBS=2] [FUZZ_TARGETS="mime rules"]
#   tests/fuzz/run.sh [TARGET...]
# Per target T, in $top_builddir/tests/fuzz/work/:
#   1. gen/T       the nasties and the shared corpus (make_nasties.py --shared, regenerated);
#   2. corpus/T    the working corpus, kept between runs: libFuzzer -merge=1 of itself, the
#                  committed seeds (tests/fuzz/corpus/T), the regressions (tests/fuzz/regressions/T),
#                  gen/T and, for rules and config, the shipped rule files / amends.conf;
#   3. fuzzing for FUZZ_SECONDS with -timeout=2 (FUZZ_TIMEOUT) -rss_limit_mb=2048 and the
#      target's dictionary (LeakSanitizer suppressions: tests/fuzz/lsan.supp);
#      crashes, timeouts, leaks and OOMs land in artifacts/T/, the log in logs/T.log.
# FUZZ_JOBS targets run at once (nice'd). At the end every artifact is listed with the commands
# that minimize it and save it as a regression input.
# FUZZ_FORK=1 (the long runs of R2.2: FUZZ_SECONDS=1800 FUZZ_TIMEOUT=1): libFuzzer's fork mode,
# in which a timeout is saved and the run goes on (-ignore_timeouts=1); crashes, leaks and OOMs
# still end it. Without it the first unit that a loaded machine slows past -timeout ends a
# 30-minute run in its first minutes (seen: two targets side by side with two more jobs on two
# cores). Either way a timeout is then re-run alone three times (confirm) before it counts.
# Exit: 0 when no target found anything, 1 otherwise, 2 when a target is not built.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${top_srcdir:=$(cd "$here/../.." && pwd)}"
: "${top_builddir:=$(pwd)}"
export top_srcdir top_builddir
PYTHON3=${PYTHON3:-python3}
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
targets=${*:-${FUZZ_TARGETS:-mime normalize rules config draft milter callbacks redis}}
work="$top_builddir/tests/fuzz/work"
# -timeout is wall-clock: on a loaded machine FUZZ_TIMEOUT=10 spares false timeouts
OPTS=(-timeout="${FUZZ_TIMEOUT:-2}" -rss_limit_mb=2048 -print_final_stats=1)
FORK=()
[ "${FUZZ_FORK:-0}" = 1 ] && FORK=(-fork=1 -ignore_timeouts=1 -ignore_ooms=0 -ignore_crashes=0)
export LSAN_OPTIONS="suppressions=$top_srcdir/tests/fuzz/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

for t in $targets; do
	if [ ! -x "$top_builddir/tests/fuzz/fuzz_$t" ]; then
		echo "run.sh: tests/fuzz/fuzz_$t is not built: ./configure CC=clang --enable-fuzzing; make" >&2
		exit 2
	fi
done
mkdir -p "$work/gen" "$work/logs" || exit 2
rm -rf "$work/gen"
"$PYTHON3" "$top_srcdir/tests/fuzz/make_nasties.py" "$work/gen" \
	--shared "$top_srcdir/../shared/corpus" || exit 2

dict_of() {
	case $1 in
	mime|milter|draft) echo "$top_srcdir/tests/fuzz/dict/mime.dict" ;;
	*) [ -f "$top_srcdir/tests/fuzz/dict/$1.dict" ] && echo "$top_srcdir/tests/fuzz/dict/$1.dict" ;;
	esac
}

# opts_of T - extra libFuzzer options of T (after OPTS: libFuzzer takes the last value of a
# flag). normalize: -max_len=65536, since the daemon never
# hands it more than one target's cap (rules.target_cap_bytes, 50,000); callbacks: 64 KiB of
# program is hundreds of callbacks (the generated sessions of up to 256 KiB still run whole as
# seeds); redis: the replies amends reads are small, and the reader's paths show in a few KiB
opts_of() {
	case $1 in
	normalize|callbacks) echo "-max_len=65536" ;;
	redis) echo "-max_len=8192" ;;
	# rules: the fuzzer's own inputs up to 8 KiB (~100 rules: every parser, lint and matching
	# path; unbounded, it mutated the 1 MiB seeds and ran ~10 execs/s, 62/s with the cap); the
	# seeds still run whole. A seed of 5,000 rules (make_nasties many-rules) JIT-compiles in
	# ~0.5 s alone in the ASan build and passed 2 s when the two smoke jobs shared the cores
	# with a loaded machine (twice in CI); matching is bounded by the match limits, so a real
	# hang still shows at 10 s
	rules) echo "-max_len=8192 -timeout=10" ;;
	esac
}

# extra_seeds T - directories of the source tree that hold inputs for T
extra_seeds() {
	case $1 in
	rules) echo "$top_srcdir/rules"; echo "$top_srcdir/tests/data/rules" ;;
	config) echo "$top_srcdir/conf" ;;
	mime) echo "$top_srcdir/tests/data/mime" ;;
	esac
}

fuzz_one() {
	local t=$1 bin="$top_builddir/tests/fuzz/fuzz_$t" d dict seeds=()
	local log="$work/logs/$t.log"
	mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
	for d in "$top_srcdir/tests/fuzz/corpus/$t" "$top_srcdir/tests/fuzz/regressions/$t" \
		 "$work/gen/$t" $(extra_seeds "$t"); do
		[ -d "$d" ] && seeds+=("$d")
	done
	dict=$(dict_of "$t")
	{
		echo "== $t: merging ${seeds[*]}"
		nice "$bin" -merge=1 "${OPTS[@]}" -timeout=10 "$work/corpus/$t" "${seeds[@]}"
		echo "== $t: fuzzing for $SECONDS_EACH s"
		nice "$bin" "${OPTS[@]}" "${FORK[@]}" $(opts_of "$t") ${dict:+-dict="$dict"} \
			-max_total_time="$SECONDS_EACH" \
			-artifact_prefix="$work/artifacts/$t/" "$work/corpus/$t"
	} >"$log" 2>&1
	local st=$?
	echo "$t: $([ $st -eq 0 ] && echo clean || echo "FOUND something (exit $st)"), corpus" \
		"$(ls "$work/corpus/$t" | wc -l) inputs, log $log"
}

running=0
for t in $targets; do
	fuzz_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

# confirm ART T - re-run a timeout/OOM/slow-unit artifact alone, unloaded, three times. libFuzzer's
# -timeout is wall-clock and the runs share two cores with each other (and in CI with whatever else
# the machine does), so a unit that took >2 s while another target was running may be the load, not
# the input. Returns 0 when the input reproduces (a real finding), 1 when all three runs were clean.
confirm() {
	local a=$1 t=$2 i
	for i in 1 2 3; do
		"$top_builddir/tests/fuzz/fuzz_$t" "${OPTS[@]}" $(opts_of "$t") "$a" >"$a.rerun.log" 2>&1 || return 0
	done
	return 1
}

# The per-target statistics first, the findings last: CI shows the end of the output, so what was
# found (with the input itself, base64, when it is small) must be the last thing printed.
for t in $targets; do
	grep -E "^(SUMMARY|fuzz oracle|stat::)" "$work/logs/$t.log" | sed "s|^|  $t: |" | head -20
done
found=0
for t in $targets; do
	for a in "$work/artifacts/$t"/*; do
		[ -f "$a" ] || continue
		case $a in *.rerun.log|*.min) continue ;; esac
		name=$(basename "$a")
		case $name in
		timeout-*|oom-*|slow-unit-*)
			if ! confirm "$a" "$t"; then
				echo "NOT REPRODUCED: $t: $name (three runs alone were clean: the machine's load, not the input)"
				continue
			fi ;;
		esac
		found=1
		echo "FOUND: $t: $a ($(wc -c <"$a") bytes)"
		grep -E "^(==[0-9]+==ERROR|SUMMARY|fuzz oracle)|^    #[0-9] " "$work/logs/$t.log" | head -25 | sed 's|^|  |'
		echo "  minimize: tests/fuzz/fuzz_$t -minimize_crash=1 -runs=10000 -exact_artifact_path=$a.min $a"
		echo "  save:     cp $a.min \$top_srcdir/tests/fuzz/regressions/$t/$name"
		if [ "$(wc -c <"$a")" -le 6000 ]; then
			echo "  input (base64):"
			base64 -w 100 "$a" | sed 's|^|    |'
		fi
	done
done
exit $found
