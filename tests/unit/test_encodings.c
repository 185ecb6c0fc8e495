/*
 * test_encodings.c - the encoding and normalization cases of issue 3 that the per-module tests
 * (test_message, test_html, test_normalize) leave open, table-driven:
 *  - charsets that lie: ISO-8859-6 with unassigned bytes, "utf-8" that is windows-1256,
 *    "us-ascii" that is UTF-8, "windows-1256"/"latin-1" that are UTF-8 (mojibake, never a
 *    failure), "utf-16le" that is ASCII; always valid UTF-8 with U+FFFD for what cannot map
 *    ("us-ascii" is read as UTF-8 on purpose: valid UTF-8 in it is recovered);
 *  - transfer encodings: a quoted-printable soft break and base64 line breaks inside one UTF-8
 *    character, upper-case encoding names, CRLF, 8bit/binary/unknown encodings, base64 and
 *    quoted-printable over windows-1256 and ISO-8859-6;
 *  - RFC 2047 display names: a padded B word in ISO-8859-6 followed by another word, lower-case
 *    q with underscores, adjacent words in two charsets, text between words kept;
 *  - HTML parts through message_parse (windows-1256 with &#1740; as in the corpus, us-ascii
 *    Gurmukhi references) and html_to_text cases (style in body, upper-case SCRIPT with markup
 *    characters, upper-case hex references, invalid references, &rlm;, Outlook conditional
 *    comments);
 *  - normalization: ZWJ, RLM/LRM, narrow no-break space, soft hyphen inside Devanagari.
 *
 * OWNERSHIP  every message, buffer and string is freed in the test that made it (valgrind clean).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "html.h"
#include "message.h"
#include "normalize.h"
#include "util.h"

#define FFFD "\xEF\xBF\xBD"

static struct message *parse_buf(const char *raw, size_t len)
{
	struct message_limits lim;
	struct message *m = NULL;

	message_limits_default(&lim);
	assert_int_equal(message_parse(raw, len, &lim, &m), 0);
	assert_non_null(m);
	return m;
}

static void assert_message_utf8(const struct message *m)
{
	assert_true(util_utf8_valid(m->subject, strlen(m->subject)));
	assert_true(util_utf8_valid(m->from_name, strlen(m->from_name)));
	assert_true(util_utf8_valid(m->body_new, m->body_new_len));
	for (size_t i = 0; i < m->n_parts; i++) {
		assert_true(util_utf8_valid(m->parts[i].text, m->parts[i].text_len));
		assert_int_equal(strlen(m->parts[i].text), m->parts[i].text_len);
	}
}

/* ---- bodies: charset x transfer encoding ---------------------------------------------------- */

struct body_case {
	const char *name;
	const char *headers;    /* Content-Type and Content-Transfer-Encoding lines */
	const char *body;       /* raw body bytes */
	size_t len;
	const char *want;       /* the part's decoded text */
};

#define B(s) s, sizeof(s) - 1
static const struct body_case body_cases[] = {
	/* declared charsets that lie */
	{ "iso-8859-6 with unassigned bytes",
	  "Content-Type: text/plain; charset=iso-8859-6\n", B("\xD3\xA1\xE4\xC0\xC7\xFF\xE5"),
	  "\xD8\xB3" FFFD "\xD9\x84" FFFD "\xD8\xA7" FFFD "\xD9\x85" },
	{ "utf-8 that is windows-1256", "Content-Type: text/plain; charset=utf-8\n",
	  B("ok \xD3\xE1\xC7\xE3 ok"), "ok " FFFD FFFD FFFD FFFD " ok" },
	/* us-ascii is read as UTF-8 (a superset; mislabelled UTF-8 is common): valid UTF-8 is
	 * recovered, any other 8-bit byte is replaced */
	{ "us-ascii that is utf-8", "Content-Type: text/plain; charset=us-ascii\n",
	  B("ok \xD8\xB3 ok \xE9"), "ok س ok " FFFD },
	{ "windows-1256 that is utf-8 (mojibake, not a failure)",
	  "Content-Type: text/plain; charset=windows-1256\n", B("\xD8\xB3\xD9\x84\xD8\xA7\xD9\x85"),
	  "ط³ظ„ط§ظ…" },
	{ "latin-1 that is utf-8", "Content-Type: text/plain; charset=\"ISO-8859-1\"\n",
	  B("caf\xC3\xA9"), "caf\xC3\x83\xC2\xA9" },
	{ "utf-16le that is ascii", "Content-Type: text/plain; charset=utf-16le\n", B("hello"),
	  "敨汬" FFFD },
	/* quoted-printable */
	{ "qp soft break inside a character",
	  "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n",
	  B("=D8=B3=D9=\n=84=D8=A7=D9=85\n"), "سلام" },
	{ "qp upper-case name, CRLF",
	  "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: Quoted-Printable\n",
	  B("caf=C3=A9 =\r\nok\r\nline two\r\n"), "café ok\nline two" },
	{ "qp windows-1256",
	  "Content-Type: text/plain; charset=\"windows-1256\"\nContent-Transfer-Encoding: quoted-printable\n",
	  B("=D3=E1=C7=E3=A1 =ED=C7=D1\n"), "سلام، يار" },
	{ "qp iso-8859-6",
	  "Content-Type: text/plain; charset=iso-8859-6\nContent-Transfer-Encoding: quoted-printable\n",
	  B("=D3=E4=C7=E5\n"), "سلام" },
	/* base64 */
	{ "base64 line breaks inside characters",
	  "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n",
	  B("2LPZ\nhNin\n2YU=\n"), "سلام" },
	{ "base64 upper-case name, windows-1256",
	  "Content-Type: text/plain; charset=windows-1256\nContent-Transfer-Encoding: BASE64\n",
	  B("0+HH4w==\n"), "سلام" },
	{ "base64 utf-16be with BOM",
	  "Content-Type: text/plain; charset=utf-16\nContent-Transfer-Encoding: base64\n",
	  B("/v8JOQk/\n"), "हि" },
	/* 8bit, binary and an unknown encoding pass the bytes through */
	{ "8bit", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n",
	  B("\xD8\xB3\xD9\x84\xD8\xA7\xD9\x85\n"), "سلام" },
	{ "binary", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: binary\n",
	  B("\xE0\xA4\xB9\xE0\xA4\xBF\n"), "हि" },
	{ "unknown encoding", "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: x-foo\n",
	  B("plain \xE0\xA8\xAA\n"), "plain ਪ" },
	/* HTML parts: references decoded after the charset */
	{ "html windows-1256 with &#1740; (corpus 128)",
	  "Content-Type: text/html; charset=windows-1256\nContent-Transfer-Encoding: quoted-printable\n",
	  B("<html><body dir=3D\"rtl\"><p>=CE=D1=C7=C8 &#1740;</p></body></html>\n"), "خراب ی" },
	{ "html us-ascii gurmukhi references",
	  "Content-Type: text/html; charset=us-ascii\n",
	  B("<p>&#2602;&#2672;&#2588;&#2622;&#2604;</p>\n"), "ਪੰਜਾਬ" },
};

static void test_body_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(body_cases); i++) {
		const struct body_case *c = &body_cases[i];
		struct strbuf raw;
		struct message *m;

		strbuf_init(&raw, 0);
		strbuf_printf(&raw, "From: a@example.com\nSubject: t\nMIME-Version: 1.0\n%s\n", c->headers);
		strbuf_append(&raw, c->body, c->len);
		m = parse_buf(raw.s, raw.len);
		assert_int_equal(m->n_parts, 1);
		if (strcmp(m->parts[0].text, c->want)) {
			print_error("case '%s':\n  got  [%s]\n  want [%s]\n", c->name, m->parts[0].text, c->want);
			fail();
		}
		assert_message_utf8(m);
		/* every charset above is on the allow-list: nothing was blanked */
		assert_false(m->limits_hit & MESSAGE_LIMIT_CHARSET);
		message_free(m);
		strbuf_free(&raw);
	}
}

/* ---- RFC 2047 display names and subjects ------------------------------------------------------ */

struct name_case {
	const char *from;
	const char *name;
	const char *subject;    /* raw Subject, NULL: "s" */
	const char *want_subject;
};

static const struct name_case name_cases[] = {
	/* padded B word (gmime #133) in ISO-8859-6, then another word */
	{ "=?iso-8859-6?B?0dY=?= =?iso-8859-6?B?xw==?= <r@example.com>", "رضا", NULL, NULL },
	/* the same split over a folded line */
	{ "=?UTF-8?B?2LHYtg==?=\n =?UTF-8?B?2Kc=?= <r@example.com>", "رضا", NULL, NULL },
	/* lower-case q, underscores are spaces */
	{ "=?utf-8?q?Jos=C3=A9_Garc=C3=ADa?= <j@example.com>", "José García", NULL, NULL },
	/* two charsets side by side: the white space between encoded words goes */
	{ "=?windows-1256?Q?=D3=E1=C7=E3?= =?utf-8?B?2K/ZiNiz2Ko=?= <d@example.com>", "سلامدوست", NULL,
	  NULL },
	/* text between encoded words stays, with its spaces */
	{ "=?utf-8?B?2LnZhNuM?= Khan <a@example.com>", "علی Khan", NULL, NULL },
	/* subjects: literal Re:/Fwd: before encoded words, padded B then Q in another charset */
	{ "a@example.com", "", "Fwd: =?UTF-8?B?2LTaqQ==?= =?windows-1256?Q?=C7=ED=CA?=", "Fwd: شکايت" },
	{ "a@example.com", "", "RE: =?iso-8859-6?B?0+TH5Q==?=", "RE: سلام" },
};

static void test_name_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(name_cases); i++) {
		const struct name_case *c = &name_cases[i];
		struct strbuf raw;
		struct message *m;

		strbuf_init(&raw, 0);
		strbuf_printf(&raw, "From: %s\nSubject: %s\n\nbody\n", c->from, c->subject ? c->subject : "s");
		m = parse_buf(raw.s, raw.len);
		if (strcmp(m->from_name, c->name)) {
			print_error("case %zu [%s]: name [%s] want [%s]\n", i, c->from, m->from_name, c->name);
			fail();
		}
		if (c->want_subject && strcmp(m->subject, c->want_subject)) {
			print_error("case %zu [%s]: subject [%s] want [%s]\n", i, c->subject, m->subject,
				    c->want_subject);
			fail();
		}
		assert_message_utf8(m);
		message_free(m);
		strbuf_free(&raw);
	}
}

/* ---- HTML -> text ----------------------------------------------------------------------------- */

struct html_case {
	const char *name;
	const char *html;
	const char *want;
};

static const struct html_case html_cases[] = {
	{ "style in body", "<body><style>.x{color:red}</style><p>Hi</p></body>", "Hi" },
	{ "upper-case SCRIPT with markup characters",
	  "<P>a</P><SCRIPT type=\"text/javascript\">if (a<b && c>d) { x = '&amp;'; }</SCRIPT><P>b</P>",
	  "a\n\nb" },
	{ "upper-case hex reference", "<p>&#X939;&#X093F;</p>", "हि" },
	{ "rlm and zwnj entities kept for normalization",
	  "<p>&rlm;\xD9\x85\xDB\x8C&zwnj;\xD8\xAE\xD9\x88\xD8\xA7\xD9\x87\xD9\x85</p>",
	  "\xE2\x80\x8F\xD9\x85\xDB\x8C\xE2\x80\x8C\xD8\xAE\xD9\x88\xD8\xA7\xD9\x87\xD9\x85" },
	{ "named punctuation entities", "<p>&laquo;x&raquo; &mdash; &hellip;</p>", "«x» — …" },
	{ "outlook conditional comment",
	  "<!--[if gte mso 9]><xml><o:OfficeDocumentSettings>x</o:OfficeDocumentSettings></xml><![endif]-->"
	  "<p class=MsoNormal>refund<o:p></o:p></p>", "refund" },
};

static void test_html_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(html_cases); i++) {
		const struct html_case *c = &html_cases[i];
		struct strbuf b;

		strbuf_init(&b, 0);
		assert_int_equal(html_to_text(c->html, strlen(c->html), &b), 0);
		if (strcmp(b.s ? b.s : "", c->want)) {
			print_error("case '%s':\n  got  [%s]\n  want [%s]\n", c->name, b.s ? b.s : "", c->want);
			fail();
		}
		strbuf_free(&b);
	}
}

/* References to NUL, a surrogate and past U+10FFFF never put invalid UTF-8 (or a NUL) into the
 * text; the letters around them survive in order. */
static void test_html_invalid_references(void **state)
{
	static const char html[] = "<p>a&#0;b&#xD800;c&#x110000;d&#99999999999;e</p>";
	struct strbuf b;
	const char *p;

	(void)state;
	strbuf_init(&b, 0);
	assert_int_equal(html_to_text(html, sizeof(html) - 1, &b), 0);
	assert_non_null(b.s);
	assert_true(util_utf8_valid(b.s, b.len));
	assert_int_equal(strlen(b.s), b.len);
	assert_null(strstr(b.s, "\xED\xA0\x80"));        /* no encoded surrogate */
	p = b.s;
	for (const char *l = "abcde"; *l; l++) {
		p = strchr(p, *l);
		if (!p)
			fail_msg("letter %c lost: [%s]", *l, b.s);
	}
	strbuf_free(&b);
}

/* ---- normalization ---------------------------------------------------------------------------- */

struct norm_case {
	const char *in, *out;
};

static const struct norm_case norm_cases[] = {
	/* ZWJ inside a Persian/Urdu word and inside Devanagari (half forms) */
	{ "\xD9\x85\xDB\x8C\xE2\x80\x8D\xD8\xAE\xD9\x88\xD8\xA7\xD9\x87\xD9\x85", "میخواهم" },
	{ "\xE0\xA4\x95\xE0\xA5\x8D\xE2\x80\x8D\xE0\xA4\xB7", "\xE0\xA4\x95\xE0\xA5\x8D\xE0\xA4\xB7" },
	/* RLM / LRM around and inside right-to-left text */
	{ "\xE2\x80\x8Fسلام\xE2\x80\x8F \xE2\x80\x8E" "123\xE2\x80\x8E", "سلام 123" },
	{ "ر\xE2\x80\x8Fیفاند", "ریفاند" },
	/* narrow no-break space and figure space are spaces */
	{ "1\xE2\x80\xAF" "000\xE2\x80\x87" "rs", "1 000 rs" },
	/* soft hyphen inside a Hindi word */
	{ "रि\xC2\xADफं\xC2\xADड", "रिफंड" },
	/* every joiner and mark at once, with harakat and tatweel, folds to the plain word */
	{ "\xE2\x80\x8Fش\xD9\x80\xD9\x8Eك\xE2\x80\x8Cا\xE2\x80\x8Dي\xD9\x90ت\xE2\x80\x8E", "شکایت" },
};

static void test_norm_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(norm_cases); i++) {
		size_t n = 0;
		char *o = normalize_text(norm_cases[i].in, strlen(norm_cases[i].in), false, &n);

		assert_non_null(o);
		if (strcmp(o, norm_cases[i].out))
			fail_msg("case %zu: [%s] -> [%s], want [%s]", i, norm_cases[i].in, o, norm_cases[i].out);
		free(o);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_table),
		cmocka_unit_test(test_name_table),
		cmocka_unit_test(test_html_table),
		cmocka_unit_test(test_html_invalid_references),
		cmocka_unit_test(test_norm_table),
	};

	message_global_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
