/* test_util.c - strbuf limits, JSON escaping, UTF-8 validation and repair */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
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

/* RFC 3629 byte by byte: the reference for util_utf8_valid's runs. */
static bool utf8_valid_ref(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; ) {
		unsigned c = p[i], need, min;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc0 && c < 0xe0) {
			need = 1; min = 0x80; cp = c & 0x1f;
		} else if (c >= 0xe0 && c < 0xf0) {
			need = 2; min = 0x800; cp = c & 0x0f;
		} else if (c >= 0xf0 && c < 0xf8) {
			need = 3; min = 0x10000; cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i <= need)
			return false;
		for (unsigned k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

static void test_utf8_random(void **state)
{
	static const char *const bits[] = {
		"a", " ", "plain ascii text ", "\xd8\xb3", "\xd9\x84", "\xe0\xa4\xb9", "\xe0\xa8\x95",
		"\xf0\x9f\x98\x80", "\xc0\xaf", "\xed\xa0\x80", "\xe0\x80\xaf", "\xf4\x90\x80\x80",
		"\xff", "\xc3", "\xe0\xa4", "\x80", "\xbf", "\xc2\xa0", "\xef\xbb\xbf", "\xf4\x8f\xbf\xbf",
	};
	uint32_t seed = 4242;

	(void)state;
	for (int it = 0; it < 50000; it++) {
		unsigned char t[256];
		size_t len = 0, n;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 24;
		for (size_t k = 0; k < n; k++) {
			const char *b;

			seed = seed * 1103515245u + 12345u;
			b = bits[(seed >> 16) % UTIL_ARRAY_LEN(bits)];
			memcpy(t + len, b, strlen(b));
			len += strlen(b);
		}
		for (size_t cut = len > 3 ? len - 3 : 0; cut <= len; cut++)
			if (util_utf8_valid((const char *)t, cut) != utf8_valid_ref(t, cut))
				fail_msg("iteration %d: util_utf8_valid disagrees at length %zu", it, cut);
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

/* util_abspath: an absolute path copied, a relative one put after the working directory, "."
 * the directory itself */
static void test_abspath(void **state)
{
	char cwd[512], want[600], *p;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	p = util_abspath("/etc/amends/amends.conf");
	assert_string_equal(p, "/etc/amends/amends.conf");
	free(p);
	snprintf(want, sizeof(want), "%s/conf/amends.conf", strcmp(cwd, "/") ? cwd : "");
	p = util_abspath("conf/amends.conf");
	assert_string_equal(p, want);
	free(p);
	p = util_abspath(".");
	assert_string_equal(p, cwd);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strbuf_limit),
		cmocka_unit_test(test_strbuf_printf_big),
		cmocka_unit_test(test_json_escape),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_utf8_random),
		cmocka_unit_test(test_trim_lower),
		cmocka_unit_test(test_abspath),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
