/*
 * fuzz_normalize.c - libFuzzer target: normalize_text() and normalize_pattern_flags()
 *
 * Input: one flag byte (bit 0 keep_newlines, bit 1 NORMALIZE_PAT_EXTENDED), then the text,
 * which is also used (its first 4096 bytes, the rule-file limit) as a PCRE2 pattern.
 * Oracle:
 *  - normalize_text returns valid UTF-8 without NUL, *outlen is its length, and it is
 *    idempotent: normalize(normalize(x)) == normalize(x) (the rules and the text meet in one
 *    canonical form; a second pass that changes it means the form is not canonical);
 *  - it is byte for byte what normalize_text_whole returns (utf8proc over the whole text): the
 *    plain-run shortcut changes nothing;
 *  - its white space is " " or "\n" and never two in a row (PCRE2's own \s decides what white
 *    space is): the rule prefilter reads \s+ as one character (rules_anchors.c, SPACE);
 *  - normalize_pattern_flags never fails, and when the input compiles with
 *    UTF|UCP|CASELESS|MATCH_INVALID_UTF (+EXTENDED) the normalized pattern compiles too.
 *
 * OWNERSHIP  Everything is freed before returning.
 */
#include "fuzz_common.h"
#include "normalize.h"
#include "util.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_PATTERN_MAX 4096
/* PCRE2 compile error 120, "regular expression is too large" (ERR20) */
#define FUZZ_PCRE2_TOO_LARGE 120

/* Two white space characters in a row, or one that is neither " " nor "\n". */
static void check_space(const char *a, size_t n)
{
	static pcre2_code *re;
	pcre2_match_data *md;
	int rc;

	if (!re) {
		int err;
		PCRE2_SIZE off;

		re = pcre2_compile((PCRE2_SPTR) "\\s\\s|[^\\S \\n]", PCRE2_ZERO_TERMINATED,
				   PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
		FUZZ_CHECK(re != NULL, "white space pattern does not compile");
	}
	md = pcre2_match_data_create_from_pattern(re, NULL);
	FUZZ_CHECK(md != NULL, "out of memory");
	rc = pcre2_match(re, (PCRE2_SPTR)a, n, 0, 0, md, NULL);
	if (rc >= 0) {
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);

		fprintf(stderr, "white space at byte %zu: \"%.40s\"\n", (size_t)ov[0], a + ov[0]);
		fuzz_fail("normalized text has white space other than one \" \" or \"\\n\"");
	}
	FUZZ_CHECK(rc == PCRE2_ERROR_NOMATCH, "white space check failed: %d", rc);
	pcre2_match_data_free(md);
}

static void check_text(const char *s, size_t len, bool keep_newlines)
{
	size_t n1 = 0, n2 = 0;
	char *a = normalize_text(s, len, keep_newlines, &n1);

	FUZZ_CHECK(a != NULL, "normalize_text failed on %zu bytes", len);
	FUZZ_CHECK(strlen(a) == n1, "outlen %zu but strlen %zu", n1, strlen(a));
	FUZZ_CHECK(util_utf8_valid(a, n1), "normalized text is not valid UTF-8");
	check_space(a, n1);
	size_t nw = 0;
	char *w = normalize_text_whole(s, len, keep_newlines, &nw);
	FUZZ_CHECK(w != NULL, "normalize_text_whole failed on %zu bytes", len);
	if (nw != n1 || memcmp(a, w, n1) != 0) {
		fprintf(stderr, "runs : \"%.300s\"\nwhole: \"%.300s\"\n", a, w);
		fuzz_fail("normalize_text differs from normalize_text_whole (keep_newlines=%d)",
			  keep_newlines);
	}
	free(w);
	char *b = normalize_text(a, n1, keep_newlines, &n2);
	FUZZ_CHECK(b != NULL, "normalize_text failed on its own output");
	if (n1 != n2 || memcmp(a, b, n1) != 0) {
		fprintf(stderr, "once : \"%.300s\"\ntwice: \"%.300s\"\n", a, b);
		fuzz_fail("normalize_text is not idempotent (keep_newlines=%d)", keep_newlines);
	}
	free(a);
	free(b);
}

static bool compiles(const char *p, size_t len, uint32_t extra, int *err, PCRE2_SIZE *off)
{
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)p, len, PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS |
				       PCRE2_MATCH_INVALID_UTF | extra, err, off, NULL);

	pcre2_code_free(re);
	return re != NULL;
}

static void check_pattern(const char *p, size_t len, bool extended)
{
	size_t n = 0;
	unsigned flags = extended ? NORMALIZE_PAT_EXTENDED : 0;
	uint32_t extra = extended ? PCRE2_EXTENDED : 0;
	int err = 0;
	PCRE2_SIZE off = 0;
	char *q = normalize_pattern_flags(p, len, flags, &n);

	FUZZ_CHECK(q != NULL, "normalize_pattern_flags failed on %zu bytes", len);
	/* Folding may expand (NFKC: U+FDFA is 18 code points), so a pattern near PCRE2's
	 * compiled-size limit can outgrow it: rules.c then reports it at file:line. Not a bug. */
	if (compiles(p, len, extra, &err, &off) && !compiles(q, n, extra, &err, &off) &&
	    err != FUZZ_PCRE2_TOO_LARGE) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(err, msg, sizeof(msg));
		fprintf(stderr, "pattern   : \"%.*s\"\nnormalized: \"%.*s\"\nerror %d at %zu: %s\n",
			(int)(len < 300 ? len : 300), p, (int)(n < 300 ? n : 300), q, err, (size_t)off,
			(const char *)msg);
		fuzz_fail("a valid pattern no longer compiles after normalization");
	}
	free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	fuzz_setup();
	unsigned flags = data[0];
	const char *s = (const char *)data + 1;
	size_t len = size - 1;

	check_text(s, len, flags & 1);
	check_pattern(s, len < FUZZ_PATTERN_MAX ? len : FUZZ_PATTERN_MAX, flags & 2);
	return 0;
}
