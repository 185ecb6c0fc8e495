#!/bin/bash
# fuzz_regress.sh - every saved fuzz input, replayed in the normal `make check` (RELIABILITY R2.2)
#
# Runs tests/fuzz/regress.sh with the standalone drivers (tests/fuzz/replay_<target>, built
# without libFuzzer): each target over its regression inputs (every crash ever found), its
# committed seeds and the generated nasties of make_nasties.py. Under --enable-sanitizers this
# is the fuzz regression run of CI (ASan+UBSan); the oracles of the targets apply unchanged.
# FUZZ_SHARED=1 adds the shared corpus, FUZZ_SMALL=1 leaves out the inputs over 2 MiB.
# Fails when a driver is not built; exit 77 (skip) only when there was nothing to run.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
export top_srcdir top_builddir
for t in mime normalize rules config draft milter callbacks redis; do
	if [ ! -x "$top_builddir/tests/fuzz/replay_$t" ]; then
		echo "FAIL: $top_builddir/tests/fuzz/replay_$t not built"
		exit 1
	fi
done
FUZZ_DRIVER=replay exec bash "$top_srcdir/tests/fuzz/regress.sh"
