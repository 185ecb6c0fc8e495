#!/bin/bash
# hardening.sh - RELIABILITY R1.1: the installed programs are built hardened
#
# For amends-milter and amendsctl as built (configure's default; sanitizer, TSan and fuzzing
# builds leave hardening off and this test skips): the ELF file is position independent (type
# DYN with the PIE flag), has a GNU_RELRO segment and BIND_NOW (full RELRO: the GOT is read-only
# after start), calls __stack_chk_fail (-fstack-protector-strong put canaries in), and, when
# configure found _FORTIFY_SOURCE usable, imports glibc's checked __*_chk functions. readelf
# reads the files; nothing is run.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib/testlib.sh"

[ "${AMENDS_HARDENING:-}" = yes ] || skip "configured without hardening (${AMENDS_HARDENING:-unknown})"
command -v readelf >/dev/null 2>&1 || skip "readelf is needed (Debian: binutils)"

for prog in "$AMENDS_MILTER" "$top_builddir/src/amendsctl"; do
	[ -x "$prog" ] || fail "$prog is not built"
	name=$(basename "$prog")
	readelf -hW "$prog" >"$T_TMP/$name.h" 2>&1 || fail "readelf -h $prog failed"
	readelf -lW "$prog" >"$T_TMP/$name.l" 2>&1 || fail "readelf -l $prog failed"
	readelf -dW "$prog" >"$T_TMP/$name.d" 2>&1 || fail "readelf -d $prog failed"
	readelf --dyn-syms -W "$prog" >"$T_TMP/$name.s" 2>&1 || fail "readelf --dyn-syms $prog failed"
	assert_grep '^ *Type: +DYN' "$T_TMP/$name.h" "$name: position independent (ELF type DYN)"
	assert_grep 'FLAGS_1.*PIE' "$T_TMP/$name.d" "$name: the dynamic section says PIE"
	assert_grep 'GNU_RELRO' "$T_TMP/$name.l" "$name: a GNU_RELRO segment"
	assert_grep '(FLAGS) +BIND_NOW|FLAGS_1.* NOW' "$T_TMP/$name.d" "$name: BIND_NOW (full RELRO)"
	assert_grep ' UND +__stack_chk_fail' "$T_TMP/$name.s" "$name: stack protector canaries"
	if [ "${AMENDS_FORTIFY:-}" = yes ]; then
		n=$(grep -cE ' UND +__[a-z0-9_]+_chk(@|$)' "$T_TMP/$name.s")
		[ "$n" -ge 3 ] || fail "$name: only $n __*_chk imports: _FORTIFY_SOURCE=2 not in effect"
		ok "$name: _FORTIFY_SOURCE=2 ($n checked glibc functions imported)"
	else
		t_note "$name: configure left _FORTIFY_SOURCE out (CFLAGS without optimization)"
	fi
done
exit 0
