/* test_util.c - strbuf limits, JSON escaping, UTF-8 validation and repair */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "util.h"

static void test_strbuf_limit(void **state)
{
	struct strbuf b;

	(void)state;
	strbuf_init(&b, 8);
	assert_int_equal(strbuf_puts(&b, "abcd"), 0);
	assert_int_equal(strbuf_puts(&b, "efghij"), -1);
	assert_true(b.truncated);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.s, "abcdefgh");
	assert_int_equal(strbuf_puts(&b, "x"), -1);
	assert_int_equal(b.len, 8);
	strbuf_free(&b);
}

static void test_strbuf_printf_big(void **state)
{
	struct strbuf b;
	char big[1000];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	strbuf_init(&b, 0);
	assert_int_equal(strbuf_printf(&b, "[%s]", big), 0);
	assert_int_equal(b.len, 1001);
	assert_int_equal(b.s[0], '[');
	assert_int_equal(b.s[1000], ']');
	char *s = strbuf_take(&b);
	assert_int_equal(strlen(s), 1001);
	free(s);
	s = strbuf_take(&b);
	assert_string_equal(s, "");
	free(s);
}

static void test_json_escape(void **state)
{
	struct strbuf b;

	(void)state;
	strbuf_init(&b, 0);
	strbuf_json_string(&b, "a\"b\\c\n\x01\xff\xd8\xb3", 10);
	assert_string_equal(b.s, "\"a\\\"b\\\\c\\n\\u0001\\ufffd\xd8\xb3\"");
	strbuf_free(&b);
}

static void test_utf8(void **state)
{
	static const struct { const char *s; int ok; } cases[] = {
		{ "plain", 1 }, { "\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85", 1 }, { "\xe0\xa4\xb9", 1 },
		{ "\xf0\x9f\x98\x80", 1 }, { "\xc0\xaf", 0 }, { "\xed\xa0\x80", 0 },
		{ "\xe0\x80\xaf", 0 }, { "\xf4\x90\x80\x80", 0 }, { "\xff", 0 }, { "ab\xc3", 0 },
	};
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		size_t n = strlen(cases[i].s), ol;
		char *fixed;

		assert_int_equal(util_utf8_valid(cases[i].s, n), cases[i].ok);
		fixed = util_utf8_sanitize(cases[i].s, n, &ol);
		assert_non_null(fixed);
		assert_true(util_utf8_valid(fixed, ol));
		if (cases[i].ok)
			assert_string_equal(fixed, cases[i].s);
		else
			assert_non_null(strstr(fixed, "\xEF\xBF\xBD"));
		free(fixed);
	}
	/* the eight-byte ASCII path: a bad byte or a good sequence at every offset of a long run */
	for (size_t at = 0; at < 40; at++) {
		char buf[48];

		memset(buf, 'a', sizeof(buf));
		buf[at] = (char)0xff;
		assert_false(util_utf8_valid(buf, sizeof(buf)));
		assert_true(util_utf8_valid(buf, at));
		memcpy(buf + at, "\xd8\xb3", 2);
		assert_true(util_utf8_valid(buf, sizeof(buf)));
		assert_false(util_utf8_valid(buf, at + 1));   /* cut inside the sequence */
	}
}

static void test_trim_lower(void **state)
{
	char s[] = "  \tHeLLo World\r\n";

	(void)state;
	char *t = util_trim(s);
	util_ascii_lower(t);
	assert_string_equal(t, "hello world");
	assert_true(util_ascii_casestarts("X-AMENDS-Status", "x-amends-"));
	assert_false(util_ascii_casestarts("X-Amend", "x-amends-"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strbuf_limit),
		cmocka_unit_test(test_strbuf_printf_big),
		cmocka_unit_test(test_json_escape),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_trim_lower),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
