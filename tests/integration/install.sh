#!/bin/bash
# install.sh - "make install DESTDIR=..." in the Debian layout (--prefix=/usr --sysconfdir=/etc)
#
# Installs the build tree into a temp DESTDIR with prefix=/usr sysconfdir=/etc given to make,
# and checks: the programs, the man pages, /etc/amends/{amends.conf, longstanding.txt,
# rules/*.rules, templates/<lang>/<kind>}; amends.conf points at the installed rules, templates
# and long-standing list, and that installed configuration really loads (amends-milter -n on
# a copy relocated into DESTDIR). Then it edits the installed amends.conf and a rule file,
# installs again and checks the edits survived (the new versions land in *.dist, unedited
# files get no .dist), and uninstalls: what was edited stays, the rest is gone.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"

[ -f "$top_builddir/Makefile" ] || skip "no Makefile in $top_builddir"
command -v make >/dev/null || skip "make is not installed"
[ -x "$AMENDS_MILTER" ] || skip "$AMENDS_MILTER is not built"

D=$T_TMP/dest
ETC=$D/etc/amends
# A make of its own: not part of the jobserver or command-line variables of "make check".
run_make() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
		make -s -C "$top_builddir" "$@" prefix=/usr sysconfdir=/etc DESTDIR="$D" \
		>>"$T_TMP/make.log" 2>&1
}

run_make install || fail "make install failed: $(tail -20 "$T_TMP/make.log")"
ok "make install DESTDIR=... prefix=/usr sysconfdir=/etc"

# ---- what was installed ----------------------------------------------------------------------
for p in usr/sbin/amends-milter usr/sbin/amendsctl; do
	[ -x "$D/$p" ] || fail "/$p not installed"
done
for p in usr/share/man/man8/amends-milter.8 usr/share/man/man8/amendsctl.8 \
	usr/share/man/man5/amends.conf.5 usr/share/man/man5/amends.rules.5 \
	etc/amends/amends.conf etc/amends/longstanding.txt; do
	[ -f "$D/$p" ] || fail "/$p not installed"
done
n=0
for r in "$top_srcdir"/rules/*.rules; do
	cmp -s "$r" "$ETC/rules/$(basename "$r")" || fail "rules/$(basename "$r") not installed as is"
	n=$((n + 1))
done
[ "$n" -gt 0 ] || fail "no rules in $top_srcdir/rules"
for t in "$top_srcdir"/conf/templates/*/*; do
	rel=${t#"$top_srcdir"/conf/}
	cmp -s "$t" "$ETC/$rel" || fail "$rel not installed as is"
done
ok "programs, man pages, configuration, $n rule files and the templates installed"
[ "$(stat -c %a "$ETC/amends.conf")" = 644 ] || fail "amends.conf mode $(stat -c %a "$ETC/amends.conf")"
[ -z "$(find "$D" -name '*.dist')" ] || fail "a first install made .dist files: $(find "$D" -name '*.dist')"

# ---- amends.conf has the installed paths -------------------------------------------------------
assert_grep '^[[:space:]]*dir = "/etc/amends/rules";' "$ETC/amends.conf" "rules.dir is /etc/amends/rules"
assert_grep '^[[:space:]]*templates_dir = "/etc/amends/templates";' "$ETC/amends.conf" \
	"drafts.templates_dir is /etc/amends/templates"
assert_grep '^[[:space:]]*longstanding_file = "/etc/amends/longstanding.txt";' "$ETC/amends.conf" \
	"rules.longstanding_file is /etc/amends/longstanding.txt"
assert_no_grep '"\.\./' "$ETC/amends.conf" "no ../ path left"
# Everything but those lines is the shipped file.
diff <(grep -Ev '^[[:space:]]*(dir|templates_dir|longstanding_file) = ' "$top_srcdir/conf/amends.conf") \
	<(grep -Ev '^[[:space:]]*(dir|templates_dir|longstanding_file) = ' "$ETC/amends.conf") \
	>"$T_TMP/conf.diff" || fail "installed amends.conf differs elsewhere: $(cat "$T_TMP/conf.diff")"
ok "the rest of amends.conf is as shipped"

# The installed configuration loads: relocate /etc/amends into DESTDIR, state into the temp dir.
mkdir -p "$T_TMP/state"
sed -e "s|\"/etc/amends/|\"$ETC/|" -e "s|^state_dir = .*|state_dir = \"$T_TMP/state\";|" \
	"$ETC/amends.conf" >"$T_TMP/relocated.conf"
"$D/usr/sbin/amends-milter" -c "$T_TMP/relocated.conf" -n >"$T_TMP/check.log" 2>&1 ||
	fail "the installed configuration does not load: $(head -c 3000 "$T_TMP/check.log")"
"$D/usr/sbin/amendsctl" -c "$T_TMP/relocated.conf" lint >"$T_TMP/lint.log" 2>&1 ||
	fail "amendsctl lint of the installed configuration failed: $(head -c 3000 "$T_TMP/lint.log")"
ok "the installed configuration, rules and templates load (amends-milter -n, amendsctl lint)"

# ---- a second install keeps edited files ------------------------------------------------------
echo '# edited by the admin' >>"$ETC/amends.conf"
first_rule=$(ls "$ETC"/rules/*.rules | head -1)
echo '# edited rule file' >>"$first_rule"
cp "$ETC/amends.conf" "$T_TMP/conf.edited"
cp "$first_rule" "$T_TMP/rule.edited"
run_make install || fail "second make install failed: $(tail -20 "$T_TMP/make.log")"
cmp -s "$ETC/amends.conf" "$T_TMP/conf.edited" || fail "make install overwrote the edited amends.conf"
cmp -s "$first_rule" "$T_TMP/rule.edited" || fail "make install overwrote the edited $first_rule"
ok "a second make install kept the edited amends.conf and rule file"
[ -f "$ETC/amends.conf.dist" ] || fail "no amends.conf.dist beside the edited file"
assert_grep '^[[:space:]]*dir = "/etc/amends/rules";' "$ETC/amends.conf.dist" "amends.conf.dist is the new version"
assert_no_grep 'edited by the admin' "$ETC/amends.conf.dist" "amends.conf.dist is not the edited file"
[ -f "$first_rule.dist" ] || fail "no $(basename "$first_rule").dist beside the edited rule file"
ndist=$(find "$D" -name '*.dist' | wc -l)
[ "$ndist" -eq 2 ] || fail "expected 2 .dist files, found $ndist: $(find "$D" -name '*.dist')"
ok "new versions went to .dist, only for the edited files"

# ---- uninstall keeps what the admin edited ------------------------------------------------------
run_make uninstall || fail "make uninstall failed: $(tail -20 "$T_TMP/make.log")"
left=$(cd "$D" && find . -type f | LC_ALL=C sort | tr '\n' ' ')
[ "$left" = "./etc/amends/amends.conf ./etc/amends/rules/$(basename "$first_rule") " ] ||
	fail "after uninstall expected only the two edited files, found: $left"
ok "make uninstall removed everything but the edited files"
