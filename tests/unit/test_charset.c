/* test_charset.c - the charset allow-list in front of iconv: what each kind of charset returns,
 * and that a converter glibc loaded for one message stays loaded for the next ones */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "charset.h"
#include "util.h"

#define B(s) s, sizeof(s) - 1

/* Convert in (declared as cs) and check the text and the result kind. */
static void expect(const char *cs, const char *in, size_t n, const char *want,
		   enum charset_result want_rc)
{
	struct strbuf out;
	enum charset_result rc;

	strbuf_init(&out, 0);
	rc = charset_to_utf8(cs, strlen(cs), in, n, &out);
	if (rc != want_rc || strcmp(out.s ? out.s : "", want) != 0)
		fail_msg("%s: got \"%s\" (%d), want \"%s\" (%d)", cs, out.s ? out.s : "", (int)rc,
			 want, (int)want_rc);
	strbuf_free(&out);
}

static void test_kinds(void **state)
{
	(void)state;
	expect("utf-8", B("پیسے"), "پیسے", CHARSET_VALID);
	expect("UTF-8", B("a\xFF" "b"), "a\xEF\xBF\xBD" "b", CHARSET_VALID);
	expect("", B("plain"), "plain", CHARSET_VALID);
	expect("", B("caf\xE9"), "café", CHARSET_CONVERTED);          /* undeclared: windows-1252 */
	expect(" \"Windows-1256\" ", B("\xD3\xE1\xC7\xE3"), "سلام", CHARSET_CONVERTED);
	expect("iso-8859-6", B("\xD3\xE4\xC7\xE5"), "سلام", CHARSET_CONVERTED);
	expect("utf-16", B("\xFF\xFE" "a\0b\0"), "ab", CHARSET_CONVERTED);
	expect("utf-16", B("a\0b\0"), "ab", CHARSET_CONVERTED);       /* no BOM: guessed LE */
	expect("utf-16le", B("a\0b"), "a\xEF\xBF\xBD", CHARSET_CONVERTED);  /* cut short */
	expect("x-unknown", B("ok \xD3\xE1"), "ok \xEF\xBF\xBD\xEF\xBF\xBD", CHARSET_REFUSED);
	expect("utf-7", B("a+AGE-"), "a+AGE-", CHARSET_REFUSED);
	assert_true(charset_allowed(B("windows-1256")));
	assert_true(charset_allowed(B("")));
	assert_false(charset_allowed(B("utf-7")));
	assert_false(charset_allowed(B("ISO-2022-JP")));
}

/* Is a gconv module named like so.so mapped into this process? -1: cannot tell. */
static int module_mapped(const char *so)
{
	char line[1024];
	int found = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/gconv/") && strstr(line, so))
			found = 1;
	fclose(f);
	return found;
}

/* glibc unloads a converter with no open descriptor once three other modules have been released
 * after it; before charset.c kept one descriptor per charset, mail alternating between a few
 * charsets paid a dlopen every few messages. Each module converted once must stay mapped while
 * others come and go. Fails with iconv_pin doing nothing: CP1256.so is gone after the loop. */
static void test_converters_stay_loaded(void **state)
{
	static const struct { const char *cs, *in; size_t n; } others[] = {
		{ "iso-8859-6", B("\xD3\xE4") }, { "koi8-r", B("\xC1") }, { "iso-8859-7", B("\xE1") },
		{ "utf-16be", B("\0a") }, { "iso-8859-8", B("\xE0") }, { "windows-1251", B("\xE0") },
	};
	struct strbuf out;

	(void)state;
	if (module_mapped("CP1256.so") < 0)
		skip();
	strbuf_init(&out, 0);
	charset_to_utf8(B("windows-1256"), B("\xD3\xE1\xC7\xE3"), &out);
	assert_int_equal(module_mapped("CP1256.so"), 1);
	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
			strbuf_reset(&out);
			charset_to_utf8(others[i].cs, strlen(others[i].cs), others[i].in, others[i].n,
					&out);
		}
	strbuf_free(&out);
	assert_int_equal(module_mapped("CP1256.so"), 1);
	assert_int_equal(module_mapped("ISO8859-6.so"), 1);
	assert_int_equal(module_mapped("KOI8-R.so"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_converters_stay_loaded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
