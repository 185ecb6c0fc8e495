/* test_quote.c - new text vs quoted text: '>' lines, attributions in six languages, Outlook and
 * forwarded blocks, and lines that only look like them */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "quote.h"
#include "util.h"

/* Time bounds are loose (the targets are far lower) and stretched under valgrind. */
static long long time_budget_ms(long long ms)
{
	const char *p = getenv("LD_PRELOAD");

	return p && strstr(p, "vgpreload") ? ms * 25 : ms;
}

struct qcase {
	const char *name;
	const char *text;
	const char *want_new;       /* exact new text */
	const char *quoted_has;     /* substring the quoted text must contain ("" = quoted empty) */
};

static const struct qcase qcases[] = {
	{ "plain", "Hello,\n\nmy order is late.\n", "Hello,\n\nmy order is late.\n", "" },
	{ "gt lines", "Thanks!\n> old complaint\n> more\n", "Thanks!\n", "> old complaint\n> more\n" },
	{ "interleaved gt", "> question?\nanswer\n", "answer\n", "> question?" },
	{ "indented gt", "ok\n   > quoted\n", "ok\n", "   > quoted" },
	{ "en attribution",
	  "Cancel it.\n\nOn 22 Oct 2026, at 10:02, Team <support@shop.example> wrote:\n\n> Hi\n",
	  "Cancel it.\n", "On 22 Oct 2026" },
	{ "en attribution unquoted tail",
	  "Fine now.\n\nOn Mon, 19 Oct 2026 Support <s@x.example> wrote:\nunmarked old text\n",
	  "Fine now.\n", "unmarked old text" },
	{ "en wrapped attribution",
	  "Great.\n\nOn Mon, 19 Oct 2026 at 09:12, A Very Long Support Name <\nsupport@shop.example> wrote:\n> x\n",
	  "Great.\n", "support@shop.example> wrote:" },
	{ "name wrote followed by quote", "Yes.\nKarthik wrote:\n> hi\n", "Yes.\n", "Karthik wrote:" },
	{ "wrote without quote is new text", "My friend wrote:\nshe liked it\n",
	  "My friend wrote:\nshe liked it\n", "" },
	{ "urdu", "شکریہ\n\nبتاریخ ۱۸ اکتوبر ۲۰۲۶، سپورٹ <support@shop.example> نے لکھا:\n> محترم\n",
	  "شکریہ\n", "نے لکھا:" },
	{ "persian", "ممنون\n\nدر تاریخ ۲۷ مهر ۱۴۰۵، پشتیبانی <support@shop.example> نوشت:\n> مشتری\n",
	  "ممنون\n", "نوشت:" },
	{ "punjabi", "ਧੰਨਵਾਦ\n\n੧੯ ਅਕਤੂਬਰ ੨੦੨੬ ਨੂੰ ਸਹਾਇਤਾ ਟੀਮ <support@shop.example> ਨੇ ਲਿਖਿਆ:\n> ਜੀ\n",
	  "ਧੰਨਵਾਦ\n", "ਨੇ ਲਿਖਿਆ:" },
	{ "hindi", "धन्यवाद\n\n१९ अक्टूबर २०२६ को सहायता टीम <support@shop.example> ने लिखा:\n> प्रिय\n",
	  "धन्यवाद\n", "ने लिखा:" },
	{ "roman urdu", "Shukriya\n\n19 Oct ko Support <support@shop.example> ne likha:\n> Mohtaram\n",
	  "Shukriya\n", "ne likha:" },
	{ "outlook original message",
	  "Thanks Ahmed.\n\n-----Original Message-----\nFrom: Ahmed <s@x.example>\nSent: 20 October\n\nold\n",
	  "Thanks Ahmed.\n", "-----Original Message-----" },
	{ "outlook header block",
	  "Done.\n\n________________________________\nFrom: Ahmed <s@x.example>\nSent: Tuesday\nTo: me\nold\n",
	  "Done.\n", "From: Ahmed" },
	{ "outlook from/date without separator", "Ok.\nFrom: Shop <s@x.example>\nDate: Tue\nSubject: x\nold\n",
	  "Ok.\n", "From: Shop" },
	{ "gmail forward", "FYI\n\n---------- Forwarded message ---------\nFrom: a@b.example\n\narticle\n",
	  "FYI\n", "article" },
	{ "persian forward", "سلام\n\n-------- پیام بازارسال‌شده --------\nاز: خبرنامه\n\nمتن\n", "سلام\n", "متن" },
	{ "apple forward", "see below\n\nBegin forwarded message:\n\nFrom: x@y.example\nold\n", "see below\n", "old" },
	{ "signature dashes stay new", "Regards\n-- \nAli\n----- Menu -----\nTea\n",
	  "Regards\n-- \nAli\n----- Menu -----\nTea\n", "" },
	{ "from line alone stays new", "From: my home address\nplease update it\n",
	  "From: my home address\nplease update it\n", "" },
	{ "blank lines trimmed", "\n\n  \nhi\n\n\n", "hi\n", "" },
	{ "empty", "", "", "" },
	{ "no final newline", "one\n> two", "one\n", "> two" },
};

static void test_quote_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(qcases); i++) {
		const struct qcase *c = &qcases[i];
		struct strbuf nw, qt;

		strbuf_init(&nw, 0);
		strbuf_init(&qt, 0);
		assert_int_equal(quote_split(c->text, strlen(c->text), &nw, &qt), 0);
		if (strcmp(nw.s ? nw.s : "", c->want_new)) {
			print_error("case '%s': new text\n  got  [%s]\n  want [%s]\n", c->name, nw.s ? nw.s : "", c->want_new);
			fail();
		}
		if (c->quoted_has[0] ? !qt.s || !strstr(qt.s, c->quoted_has) : qt.len != 0) {
			print_error("case '%s': quoted [%s] lacks [%s]\n", c->name, qt.s ? qt.s : "", c->quoted_has);
			fail();
		}
		strbuf_free(&nw);
		strbuf_free(&qt);
	}
}

static void test_quote_separator(void **state)
{
	static const char *yes[] = {
		"-----Original Message-----", "---------- Forwarded message ---------",
		"-------- Forwarded Message --------", "On Tue, 1 Oct 2026, A <a@b.example> wrote:",
		"Begin forwarded message:", "---------- अग्रेषित संदेश ---------",
	};
	static const char *no[] = { "-- ", "-----", "I wrote:", "On time delivery please", "---- hello ----" };

	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(yes); i++)
		assert_true(quote_is_separator(yes[i], strlen(yes[i])));
	for (size_t i = 0; i < UTIL_ARRAY_LEN(no); i++)
		assert_false(quote_is_separator(no[i], strlen(no[i])));
}

/* A long text of '>' lines and look-alike lines stays linear (bounded look-ahead). */
static void test_quote_big(void **state)
{
	struct strbuf in, nw, qt;
	long long t0;

	(void)state;
	strbuf_init(&in, 0);
	for (int i = 0; i < 200000; i++)
		strbuf_puts(&in, i % 2 ? "> quoted line\n" : "On and on\n");
	strbuf_init(&nw, 0);
	strbuf_init(&qt, 0);
	t0 = util_now_ms();
	assert_int_equal(quote_split(in.s, in.len, &nw, &qt), 0);
	assert_true(util_now_ms() - t0 < time_budget_ms(2000));
	assert_int_equal(nw.len, 100000 * strlen("On and on\n"));
	strbuf_free(&in);
	strbuf_free(&nw);
	strbuf_free(&qt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote_table),
		cmocka_unit_test(test_quote_separator),
		cmocka_unit_test(test_quote_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
