/* test_html.c - HTML -> text: entities, references, dropped elements, blocks, blockquotes as
 * quoted lines, broken markup, and a million nested elements on a 256 KiB thread stack */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "html.h"
#include "util.h"

/* Time bounds are loose (the targets are far lower) and stretched under valgrind. */
static long long time_budget_ms(long long ms)
{
	const char *p = getenv("LD_PRELOAD");

	return p && strstr(p, "vgpreload") ? ms * 25 : ms;
}

struct hcase {
	const char *name;
	const char *html;
	const char *want;
};

static const struct hcase hcases[] = {
	{ "entities", "<p>Tom &amp; Jerry &quot;x&quot; it&rsquo;s &lt;b&gt;</p>", "Tom & Jerry \"x\" it\xE2\x80\x99s <b>" },
	{ "numeric refs", "<p>&#2361;&#x939;&#1740; &nbsp;a</p>", "\xE0\xA4\xB9\xE0\xA4\xB9\xDB\x8C \xC2\xA0" "a" },
	{ "zwnj", "<p>\xD9\x85\xDB\x8C&zwnj;\xD8\xAE\xD9\x88\xD8\xA7\xD9\x87\xD9\x85</p>",
	  "\xD9\x85\xDB\x8C\xE2\x80\x8C\xD8\xAE\xD9\x88\xD8\xA7\xD9\x87\xD9\x85" },
	{ "head style script dropped",
	  "<html><head><title>T</title><style>p{x:y}</style></head><body><script>var a=1;</script><p>Hi</p></body></html>",
	  "Hi" },
	{ "blocks and br", "<div>one</div><div>two<br>three</div><p>four</p>five", "one\ntwo\nthree\n\nfour\n\nfive" },
	{ "whitespace collapsed", "<p>  a \n\t b   </p>", "a b" },
	{ "inline no space", "<b>bold</b><i>it</i> <span>x</span>", "boldit x" },
	{ "blockquote", "<div>Thanks</div><blockquote>old<br>complaint</blockquote><div>bye</div>",
	  "Thanks\n\n> old\n> complaint\n\nbye" },
	{ "nested blockquote", "<blockquote>a<blockquote>b</blockquote></blockquote>", "> a\n\n> > b" },
	{ "pre keeps lines", "<pre>a  b\nc</pre>", "a  b\nc" },
	{ "unterminated", "<p>open <b>bold <i>it", "open bold it" },
	{ "comment dropped", "a<!-- secret -->b", "ab" },
	{ "outlook o:p", "<p class=MsoNormal>Hi<o:p></o:p></p><p class=MsoNormal>there<o:p></o:p></p>", "Hi\n\nthere" },
	{ "table cells", "<table><tr><td>a</td><td>b</td></tr></table>", "a b" },
	{ "empty", "", "" },
	{ "garbage", "<<<>>>&&&;;", ">>>&&&;;" },
};

static void test_html_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(hcases); i++) {
		const struct hcase *c = &hcases[i];
		struct strbuf b;

		strbuf_init(&b, 0);
		assert_int_equal(html_to_text(c->html, strlen(c->html), &b), 0);
		if (strcmp(b.s ? b.s : "", c->want)) {
			print_error("case '%s':\n  got  [%s]\n  want [%s]\n", c->name, b.s ? b.s : "", c->want);
			fail();
		}
		assert_true(util_utf8_valid(b.s ? b.s : "", b.len));
		strbuf_free(&b);
	}
}

static void test_html_limit(void **state)
{
	struct strbuf in, out;

	(void)state;
	strbuf_init(&in, 0);
	for (int i = 0; i < 10000; i++)
		strbuf_puts(&in, "<p>some words here</p>");
	strbuf_init(&out, 1000);
	assert_int_equal(html_to_text(in.s, in.len, &out), 0);
	assert_true(out.truncated);
	assert_int_equal(out.len, 1000);
	strbuf_free(&in);
	strbuf_free(&out);
}

struct deep_arg {
	const char *open, *close;
	int levels;
	int rc;
	size_t len;
	long long ms;
};

static void *deep_run(void *p)
{
	struct deep_arg *a = p;
	struct strbuf in, out;
	long long t0;

	strbuf_init(&in, 0);
	for (int i = 0; i < a->levels; i++)
		strbuf_puts(&in, a->open);
	strbuf_puts(&in, "deep text");
	for (int i = 0; i < a->levels && a->close; i++)
		strbuf_puts(&in, a->close);
	strbuf_init(&out, 50000);
	t0 = util_now_ms();
	a->rc = html_to_text(in.s, in.len, &out);
	a->ms = util_now_ms() - t0;
	a->len = out.len;
	strbuf_free(&in);
	strbuf_free(&out);
	return NULL;
}

/* 1e6 nested elements (closed and unclosed, blockquotes too) parse and render on 256 KiB. */
static void test_html_deep_small_stack(void **state)
{
	struct deep_arg args[] = {
		{ "<div>", "</div>", 1000000, 0, 0, 0 },
		{ "<span>", NULL, 1000000, 0, 0, 0 },
		{ "<blockquote>", "</blockquote>", 300000, 0, 0, 0 },
		{ "<b><i>", NULL, 500000, 0, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(args); i++) {
		pthread_attr_t at;
		pthread_t t;

		pthread_attr_init(&at);
		pthread_attr_setstacksize(&at, 256 * 1024);
		assert_int_equal(pthread_create(&t, &at, deep_run, &args[i]), 0);
		assert_int_equal(pthread_join(t, NULL), 0);
		pthread_attr_destroy(&at);
		assert_int_equal(args[i].rc, 0);
		assert_true(args[i].ms < time_budget_ms(10000));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_html_table),
		cmocka_unit_test(test_html_limit),
		cmocka_unit_test(test_html_deep_small_stack),
	};

	html_global_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
