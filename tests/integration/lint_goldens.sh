#!/bin/bash
# lint_goldens.sh - `amendsctl lint` end to end on small rule files: the printed diagnostics
# (file:line:column, messages, the summary line) and the exit status.
#
# For each tests/data/lint/NAME.rules the test writes a configuration whose rules.dir holds just
# that file (plus the write_config settings listed in NAME.config, when there is one), runs `amendsctl -c amends.conf lint` there (stdout and stderr together, the temp dir
# stripped from paths so they read rules/NAME.rules), appends "exit N", and compares the result
# with tests/data/lint/NAME.expect (a unified diff on mismatch). `make regen-goldens`
# (AMENDS_REGEN_GOLDENS=1) rewrites the .expect files. The lint's timing probe measures CPU
# time, which a loaded virtual machine can inflate, so it may add a "takes N ms on the probe" warning: a case whose output
# differs only that way is run again (3 tries), any other difference fails at once.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"
. "$top_srcdir/tests/lib/acceptlib.sh"

LINT_DATA="$top_srcdir/tests/data/lint"
[ -x "$AMENDSCTL" ] || fail "$AMENDSCTL is not built"
ls "$LINT_DATA"/*.rules >/dev/null 2>&1 || fail "no cases in $LINT_DATA"

# lint_case NAME OUT - run lint on the case and write its transcript to OUT.
lint_case() {
	local name=$1 out=$2 dir="$T_TMP/$1" rc
	rm -rf "$dir"
	mkdir -p "$dir/rules" || fail "mkdir $dir"
	cp "$LINT_DATA/$name.rules" "$dir/rules/" && chmod 644 "$dir/rules/$name.rules" || fail "cp $name"
	local extra=()
	[ -f "$LINT_DATA/$name.config" ] && read -r -a extra <"$LINT_DATA/$name.config"
	write_config "$dir/amends.conf" rules="$dir/rules" state="$dir/state" "${extra[@]}"
	(cd "$dir" && "$AMENDSCTL" -c "$dir/amends.conf" lint >"$dir/lint.out" 2>&1)
	rc=$?
	{ sed "s|$dir/||g" "$dir/lint.out"; echo "exit $rc"; } >"$out"
}

failed=0
for rules in "$LINT_DATA"/*.rules; do
	name=$(basename "$rules" .rules)
	expect="$LINT_DATA/$name.expect"
	for try in 1 2 3; do
		lint_case "$name" "$T_TMP/$name.got"
		grep -q ' ms on the probe ' "$T_TMP/$name.got" || break
		t_note "$name: a timing warning on try $try (loaded host?), again"
	done
	if [ "${AMENDS_REGEN_GOLDENS:-0}" = 1 ]; then
		cp "$T_TMP/$name.got" "$expect" || fail "cannot write $expect"
		t_note "wrote $expect"
		continue
	fi
	if [ ! -f "$expect" ]; then
		echo "not ok - $name: no $expect (make regen-goldens)"
		failed=$((failed + 1))
	elif diff -u "$expect" "$T_TMP/$name.got" >"$T_TMP/$name.diff"; then
		ok "lint $name: $(tail -1 "$expect"), output as expected"
	else
		echo "not ok - lint $name differs from $expect:"
		cat "$T_TMP/$name.diff"
		failed=$((failed + 1))
	fi
done
[ "$failed" = 0 ] || fail "$failed lint transcript(s) differ (if intended: make regen-goldens, review the diff)"

# --rules DIR lints DIR, not the configuration's rules.dir: a configuration whose own rules are
# clean, pointed at the case with errors, must report that case's errors; any other argument is
# a usage error (it used to be ignored, and the configured rules were linted instead).
[ "${AMENDS_REGEN_GOLDENS:-0}" = 1 ] && exit 0
lint_case comments_only "$T_TMP/clean.got"
grep -q '^exit 0$' "$T_TMP/clean.got" || fail "the clean case does not lint clean: $(cat "$T_TMP/clean.got")"
(cd "$T_TMP/comments_only" && "$AMENDSCTL" -c "$T_TMP/comments_only/amends.conf" lint \
	--rules "$T_TMP/mixed_errors/rules" >"$T_TMP/other.out" 2>&1)
rc=$?
{ sed "s|$T_TMP/mixed_errors/||g" "$T_TMP/other.out" | grep -v ' ms on the probe ' |
	sed 's/, [0-9]* warning(s)$//'; echo "exit $rc"; } >"$T_TMP/other.got"
{ grep -v ' ms on the probe ' "$LINT_DATA/mixed_errors.expect" | sed 's/, [0-9]* warning(s)$//'; } |
	sed "s|^[^ ]*amends.conf: |$T_TMP/comments_only/amends.conf: |" >"$T_TMP/other.want"
diff -u "$T_TMP/other.want" "$T_TMP/other.got" ||
	fail "lint --rules DIR did not report DIR's errors as the case's own configuration does"
ok "lint --rules DIR lints DIR's rules (exit $rc, mixed_errors' diagnostics)"
"$AMENDSCTL" -c "$T_TMP/comments_only/amends.conf" lint "$T_TMP/mixed_errors/rules" >"$T_TMP/usage.out" 2>&1
rc=$?
[ "$rc" = 2 ] && grep -q 'usage: amendsctl lint \[--rules DIR\]' "$T_TMP/usage.out" ||
	fail "lint with a stray argument: exit $rc, $(cat "$T_TMP/usage.out") (want exit 2 and the usage)"
ok "lint with a stray argument is a usage error (exit 2)"
exit 0
