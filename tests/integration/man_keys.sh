#!/bin/bash
# man_keys.sh - the manual pages and the shipped configuration agree with the code
#
# Extracts every setting name src/config.c accepts (its known[] tables) and fails when one is
# missing from man/amends.conf.5 (as a definition: a .B/.BI/.BR line starting with the name, or
# a "SECTION name" heading) or from conf/amends.conf (as "name ="); every amendsctl subcommand
# of the commands[] table in src/amendsctl.c must have its .SS in man/amendsctl.8, every long
# option of a subcommand (src/ctl_*.c) its mention in man/amendsctl.8 and in amendsctl -h, and
# every option letter of amends-milter's getopt string its definition in man/amends-milter.8.
# It first checks that the extraction itself found what it must (so a change in the code's
# layout cannot make this test pass by finding nothing).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
SRC=$top_srcdir/src
MAN=$top_srcdir/man
CONF=$top_srcdir/conf/amends.conf
errors=0
err() { echo "FAIL: $*" >&2; errors=$((errors + 1)); }

for f in "$SRC/config.c" "$SRC/amendsctl.c" "$SRC/amends-milter.c" "$MAN/amends.conf.5" \
	"$MAN/amendsctl.8" "$MAN/amends-milter.8" "$MAN/amends.rules.5" "$CONF"; do
	[ -r "$f" ] || { echo "FAIL: $f is missing" >&2; exit 1; }
done

# Every quoted word between "known[] = {" and "NULL };" in config.c, one per line.
config_keys() {
	awk '/known\[\] = \{/ { on = 1 }
	     on { line = $0
		  while (match(line, /"[A-Za-z0-9_]+"/)) {
			print substr(line, RSTART + 1, RLENGTH - 2)
			line = substr(line, RSTART + RLENGTH)
		  } }
	     on && /NULL *\};/ { on = 0 }' "$SRC/config.c" | sort -u
}

# The names of the commands[] table of amendsctl.c: { "name", fn, "help" }.
ctl_commands() {
	awk '/commands\[\] = \{/ { on = 1; next }
	     on && /^\};/ { on = 0 }
	     on && match($0, /^[ \t]*\{ *"[a-z]+"/) { s = substr($0, RSTART, RLENGTH)
		  sub(/^[ \t]*\{ *"/, "", s); sub(/"$/, "", s); print s }' "$SRC/amendsctl.c"
}

# The long options of the amendsctl subcommands: the "--name" strings they compare argv with,
# and the names of their getopt_long tables ({ "name", ..._argument, ...}), but --help.
ctl_long_options() {
	{
		grep -ohE '"--[a-z][a-z0-9-]*"' "$SRC"/ctl_*.c | tr -d '"' | sed 's/^--//'
		grep -ohE '\{ *"[a-z][a-z0-9-]*", *(no|required|optional)_argument' "$SRC"/ctl_*.c |
			sed -E 's/^\{ *"([^"]*)".*/\1/'
	} | grep -vx help | sort -u
}

# The option letters of amends-milter's getopt() string.
milter_options() {
	sed -n 's/.*getopt(argc, argv, "\([^"]*\)").*/\1/p' "$SRC/amends-milter.c" | head -1 |
		tr -d ':' | fold -w1
}

keys=$(config_keys)
cmds=$(ctl_commands)
opts=$(milter_options)
ctlopts=$(ctl_long_options)

# ---- the extraction works: known names from each table must be there --------------------------
for k in socket max_scan_bytes match_limit threshold store winback from_addr imap_url \
	prometheus_listen state_dir identities; do
	grep -qx "$k" <<<"$keys" || err "extraction: \"$k\" not found in config.c's known[] tables"
done
n=$(wc -l <<<"$keys")
[ "$n" -ge 60 ] || err "extraction: only $n setting names found in config.c (expected 60 or more)"
for c in check lint stats; do
	grep -qx "$c" <<<"$cmds" || err "extraction: command \"$c\" not found in amendsctl.c"
done
for o in c f p; do
	grep -qx "$o" <<<"$opts" || err "extraction: option -$o not found in amends-milter.c"
done
for o in json per-rule min-cat-f1 kind raw; do
	grep -qx -- "$o" <<<"$ctlopts" || err "extraction: amendsctl option --$o not found in src/ctl_*.c"
done
[ "$errors" -eq 0 ] || exit 1

# ---- the manual pages and the shipped configuration --------------------------------------------
for k in $keys; do
	# a definition in the man page: ".BI \"name = \" ...", ".B name", or a "SECTION name" heading
	grep -Eq "^\.(B|BI|BR) \"?$k( |\"|$)|^\.S[HS] \"SECTION $k\"" "$MAN/amends.conf.5" ||
		err "setting \"$k\" (src/config.c) is not documented in man/amends.conf.5"
	grep -Eq "(^|[{;[:space:]])$k[[:space:]]*=" "$CONF" ||
		err "setting \"$k\" (src/config.c) is not in conf/amends.conf"
done
for c in $cmds; do
	grep -Eq "^\.SS \"?$c( |\"|$)" "$MAN/amendsctl.8" ||
		err "amendsctl command \"$c\" (src/amendsctl.c) has no .SS in man/amendsctl.8"
done
# every long option of a subcommand: in its synopsis or text in the man page (as \-\-name),
# and in amendsctl -h (the commands[] help strings)
help=$(awk '/commands\[\] = \{/ { on = 1; next } on && /^\};/ { on = 0 } on' "$SRC/amendsctl.c")
for o in $ctlopts; do
	# "--min-f1" is "\-\-min\-f1" in the page; as an ERE with its backslashes escaped, not
	# followed by more of a name (else --min-f1-latn alone would pass for --min-f1)
	re=$(printf '%s' "--$o" | sed 's/-/\\\\-/g')
	grep -Eq -- "$re([^a-z\\]|$)" "$MAN/amendsctl.8" ||
		err "amendsctl option --$o (src/ctl_*.c) is not documented in man/amendsctl.8"
	grep -Eq -- "--$o([^a-z-]|$)" <<<"$help" ||
		err "amendsctl option --$o (src/ctl_*.c) is not in amendsctl -h (commands[] in src/amendsctl.c)"
done
for o in $opts; do
	grep -Eq "^\.(B|BI|BR) \\\\-$o( |$)" "$MAN/amends-milter.8" ||
		err "amends-milter option -$o (src/amends-milter.c) is not documented in man/amends-milter.8"
done

# ---- the pages render without warnings (when man is installed) ---------------------------------
if command -v groff >/dev/null; then
	for p in "$MAN"/*.[58]; do
		w=$(groff -ww -man -z "$p" 2>&1)
		[ -z "$w" ] || err "$p: groff warnings: $w"
	done
fi

[ "$errors" -eq 0 ] || { echo "$errors problem(s)" >&2; exit 1; }
echo "ok - $(wc -w <<<"$keys") settings, $(wc -w <<<"$cmds") commands, $(wc -w <<<"$ctlopts")" \
	"amendsctl options, $(wc -w <<<"$opts") amends-milter options documented"
