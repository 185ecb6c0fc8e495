/* test_normalize.c - text folding, pattern folding that keeps PCRE2 syntax valid, and the
 * promise of issue 3: a rule written with either variant of a letter (or with or without ZWNJ)
 * matches text written either way, per language. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>
#include "normalize.h"

#define ZWNJ "\u200C"

static char *norm(const char *s, bool nl)
{
	size_t n = 0;
	char *o = normalize_text(s, strlen(s), nl, &n);

	assert_non_null(o);
	assert_int_equal(strlen(o), n);
	return o;
}

static char *normp(const char *s)
{
	size_t n = 0;
	char *o = normalize_pattern(s, strlen(s), &n);

	assert_non_null(o);
	assert_int_equal(strlen(o), n);
	return o;
}

/* ---- text ---------------------------------------------------------------------------------- */

struct text_case {
	const char *in;
	bool keep_newlines;
	const char *out;
};

static const struct text_case text_cases[] = {
	/* English: case, ligatures, full width, quotes, dashes, white space */
	{ "Please REFUND me", false, "please refund me" },
	{ "\uFB01le \uFF32\uFF25\uFF26\uFF35\uFF2E\uFF24 \uFF11\uFF12", false, "file refund 12" },
	{ "don\u2019t \u201Ccancel\u201D \u2014 now", false, "don't \"cancel\" - now" },
	{ "Stra\u00DFe", false, "strasse" },
	{ "  a\u00A0\u00A0b\t\u3000c  ", false, "a b c" },
	{ "a\r\n\r\n\r\n  b\nc", true, "a\nb\nc" },
	{ "a\r\n\r\nb", false, "a b" },
	/* every decimal digit becomes ASCII: Bengali, Thai, Adlam, mathematical (the rules' \d is
	 * compiled as [0-9]) */
	{ "\u09E7\u09E8 \u0E55 \U0001E959 \U0001D7D3", false, "12 5 9 5" },
	{ "line\u2028two", true, "line\ntwo" },
	{ "ctl\x01\x7f" "x", false, "ctlx" },
	{ "soft\u00ADhy\u200Bphen\uFEFF", false, "softhyphen" },
	{ "\u200E\u202Bbidi\u202C\u2066x\u2069\u061C", false, "bidix" },
	/* Arabic script: letter variants */
	{ "\u064A \u0649 \u06CC \u0626", false, "\u06CC \u06CC \u06CC \u06CC" },
	{ "\u0643 \u06A9", false, "\u06A9 \u06A9" },
	{ "\u0647 \u06C1 \u06D5 \u06C0 \u06C2", false, "\u0647 \u0647 \u0647 \u0647 \u0647" },
	{ "\u0623 \u0625 \u0622 \u0624 \u06D3 \u06C3", false,
	  "\u0627 \u0627 \u0622 \u0648 \u06D2 \u0629" },
	/* kept distinct: bari ye, do-chashmi he */
	{ "\u06D2 \u06BE", false, "\u06D2 \u06BE" },
	/* tatweel, harakat, superscript alef, Quranic marks */
	{ "\u0634\u06A9\u0640\u0640\u0627\u06CC\u062A \u0645\u064F\u0639\u0627\u0641\u06CC "
	  "\u0645\u0648\u0633\u06CC\u0670 \u0627\u06D6", false,
	  "\u0634\u06A9\u0627\u06CC\u062A \u0645\u0639\u0627\u0641\u06CC \u0645\u0648\u0633\u06CC "
	  "\u0627" },
	/* Persian: ZWNJ removed, presentation forms */
	{ "\u0645\u06CC" ZWNJ "\u062E\u0648\u0627\u0647\u0645", false,
	  "\u0645\u06CC\u062E\u0648\u0627\u0647\u0645" },
	{ "\uFEF3\uFEF4", false, "\u06CC\u06CC" },
	/* punctuation of the scripts */
	{ "\u06CC\u06D4 \u06A9\u061F \u0627\u060C \u0939\u0948\u0964 \u00ABx\u00BB", false,
	  "\u06CC. \u06A9? \u0627, \u0939\u0948. \"x\"" },
	/* digits */
	{ "\u0661\u0662\u0663 \u06F4\u06F5\u06F6 \u0967\u0968\u0969 \u0A6D\u0A6E\u0A6F", false,
	  "123 456 123 789" },
	/* Devanagari nukta: precomposed -> base + nukta, also the three NFC composes */
	{ "\u095B\u0930\u0942\u0930 \u0958 \u095E", false,
	  "\u091C\u093C\u0930\u0942\u0930 \u0915\u093C \u092B\u093C" },
	{ "\u0929 \u0931 \u0934", false, "\u0928\u093C \u0930\u093C \u0933\u093C" },
	{ "\u0928\u093C", false, "\u0928\u093C" },
	/* Gurmukhi nukta */
	{ "\u0A36 \u0A33 \u0A59 \u0A5A \u0A5B \u0A5E", false,
	  "\u0A38\u0A3C \u0A32\u0A3C \u0A16\u0A3C \u0A17\u0A3C \u0A1C\u0A3C \u0A2B\u0A3C" },
	/* empty and white space only */
	{ "", false, "" },
	{ " \n\t ", true, "" },
};

static void test_text_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
		char *o = norm(text_cases[i].in, text_cases[i].keep_newlines);
		char *o2;

		if (strcmp(o, text_cases[i].out) != 0)
			fail_msg("case %zu: \"%s\" -> \"%s\", want \"%s\"", i, text_cases[i].in, o,
				text_cases[i].out);
		/* idempotent: normalizing the canonical form changes nothing */
		o2 = norm(o, text_cases[i].keep_newlines);
		assert_string_equal(o2, o);
		free(o2);
		free(o);
	}
}

static void test_text_distinct(void **state)
{
	/* folding must not merge distinct Urdu words: کے/کی, کہا/کھا */
	static const char *const pairs[][2] = {
		{ "\u06A9\u06D2", "\u06A9\u06CC" },
		{ "\u06A9\u06C1\u0627", "\u06A9\u06BE\u0627" },
		{ "\u0622\u067E", "\u0627\u067E" },
		{ "\u091C\u093C\u0930\u0942\u0930", "\u091C\u0930\u0942\u0930" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		char *a = norm(pairs[i][0], false), *b = norm(pairs[i][1], false);

		assert_string_not_equal(a, b);
		free(a);
		free(b);
	}
}

static void test_text_invalid_utf8(void **state)
{
	static const char in[] = "ab\xff\xc3(\xe2\x82 ok\0z";
	size_t n;
	char *o;

	(void)state;
	o = normalize_text(in, sizeof(in) - 1, false, &n);
	assert_non_null(o);
	/* each bad byte becomes U+FFFD, NUL is a control character and goes */
	assert_string_equal(o, "ab\uFFFD\uFFFD(\uFFFD\uFFFD okz");
	free(o);
	o = normalize_text(NULL, 0, false, &n);
	assert_non_null(o);
	assert_int_equal(n, 0);
	free(o);
}

static void test_text_large_linear(void **state)
{
	/* 200k code points of mixed scripts: output stays within a small factor */
	static const char unit[] = "Refund \u0643\u064A\u0627 \u0929\u0958 \u0A36 \u06F1 \uFDFA\t";
	size_t ul = sizeof(unit) - 1, reps = 20000, i, n;
	char *big = malloc(ul * reps + 1), *o;

	(void)state;
	assert_non_null(big);
	for (i = 0; i < reps; i++)
		memcpy(big + i * ul, unit, ul);
	big[ul * reps] = '\0';
	o = normalize_text(big, ul * reps, true, &n);
	assert_non_null(o);
	assert_true(n > ul * reps / 2);
	assert_true(n < ul * reps * 4);
	free(o);
	free(big);
}

/* ---- patterns ------------------------------------------------------------------------------ */

struct pat_case {
	const char *in, *out;
};

static const struct pat_case pat_cases[] = {
	{ "\\bREFUND\\b", "\\brefund\\b" },
	{ "\\B\\S\\W\\D\\P{Lu}\\p{Arabic}\\x{643}\\N{U+0643}\\cA\\g{-1}\\k<Name>",
	  "\\B\\S\\W\\D\\P{Lu}\\p{Arabic}\\x{643}\\N{U+0643}\\cA\\g{-1}\\k<Name>" },
	{ "(?<Name>ABC)(?P<X>d)(?'Y'E)(?i:F)(?-i)G(?#COMMENT)(?=H)(?<!I)",
	  "(?<Name>abc)(?P<X>d)(?'Y'e)(?i:f)(?-i)g(?#COMMENT)(?=h)(?<!i)" },
	{ "(*UTF)(*MARK:AB)(*pla:CD)(*SKIP)X", "(*UTF)(*MARK:AB)(*pla:cd)(*SKIP)x" },
	{ "[A-Z\u0643\u064A-\u06CC[:ALPHA:]\\d]", "[A-Z\u06A9\u064A-\u06CC[:ALPHA:]0-9]" },
	/* \d becomes [0-9] (text digits are all ASCII after normalization); \D and a \d range
	 * end are left alone */
	{ "\\d+\\D[^\\d][\\d-]", "[0-9]+\\D[^0-9][0-9-]" },
	{ "[^\u0647\u06C1]+", "[^\u0647\u0647]+" },
	{ "[" ZWNJ "]", "[\\x{200C}]" },
	{ "\u0645\u06CC" ZWNJ "?\u062E", "\u0645\u06CC(?:)?\u062E" },
	{ "\u00DF?x", "(?:ss)?x" },
	{ "\u095B+", "(?:\u091C\u093C)+" },
	{ "\u091C\u093C?\u0930", "\u091C\u093C?\u0930" },
	{ "\\Q\u0643.(\\E", "\\Q\u06A9.(\\E" },
	{ "\uFF08a\uFF09\u2216", "\\(a\\)\\\\" },
	{ "a\u00A0b", "a\\sb" },
	{ "A{2,3}\u00DC{1}", "a{2,3}\u00FC{1}" },
	{ "(?x) # \u00DC C\n \u00C9", "(?x) # \u00DC C\n \u00E9" },
	{ "\\\u0643", "\u06A9" },
	{ "\u06F1\u06F2 \u0967 \u0A67", "12 1 1" },
	{ "|{\u06F1}", "|\\{1}" },        /* a literal brace stays literal before folded digits */
	{ "[ -\\E\u00A0]", "[ -\\E\u00A0]" }, /* a range end behind \E is kept */
};

static void test_pattern_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(pat_cases) / sizeof(pat_cases[0]); i++) {
		char *o = normp(pat_cases[i].in);

		if (strcmp(o, pat_cases[i].out) != 0)
			fail_msg("case %zu: \"%s\" -> \"%s\", want \"%s\"", i, pat_cases[i].in, o,
				pat_cases[i].out);
		free(o);
	}
}

static pcre2_code *compile(const char *pat, int *err)
{
	PCRE2_SIZE off;

	return pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
		PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, err, &off, NULL);
}

static bool matches(const char *pat, const char *text)
{
	int err;
	pcre2_code *re = compile(pat, &err);
	pcre2_match_data *md;
	int rc;

	if (!re)
		fail_msg("pattern \"%s\" does not compile (%d)", pat, err);
	md = pcre2_match_data_create_from_pattern(re, NULL);
	rc = pcre2_match(re, (PCRE2_SPTR)text, strlen(text), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	pcre2_code_free(re);
	return rc >= 0;
}

/* Valid patterns stay valid: every construct of PCRE2 syntax we know of, with letters around. */
static const char *const valid_patterns[] = {
	"\\bcancel(?:led|ling)?\\b", "(?i)REFUND|money\\s+back", "[[:alpha:]]+\\d{2,}",
	"\\p{L}+\\P{N}\\pL", "(?<q>a)\\k<q>\\k'q'\\k{q}\\g{q}\\g1\\g-1\\g<q>", "(a)(?1)(?R)(?+1)(b)",
	"(A)(?(1)B|C)", "(?(<q>)A|B)(?<q>C)", "(?(?=X)Y|Z)", "(?(DEFINE)(?<w>AB))(?&w)",
	"(*pla:AB)(*positive_lookahead:CD)(*nla:E)", "(*MARK:Ab)(*PRUNE)(*THEN)(*COMMIT)",
	"(*LIMIT_MATCH=100)Ab", "(?C1)A(?C\"Text)\")B(?C{x})", "\\Q(a[\\E+", "[\\Q]\\E]",
	"[]A]", "[^]A]", "[a\\]]", "[\\x{600}-\\x{6FF}]", "[\u0600-\u06FF\u0643]",
	"[\u0621-\u0643]", "[\u06C0-\u06FF]", "[-\u0643]", "[\u0643-]", "\u0643{2}", "\u0643{2,}",
	"\u0643{,3}", "\u0643{", "a{x}", "\\x41\\101\\o{101}\\e\\t", "(?|(A)|(B))", "(?>AB)",
	"(?x) A  B # comment ( [\n C", "(?x)[ A ]", "(?s).+?", "\\N\\R\\X\\K\\G\\A\\Z\\z",
	"\u00DF*\u00DF+\u00DF?\u00DF{2}", "\uFB01+", "\uFDFA?", "[\uFB01\u00DF\u0958]",
	"[" ZWNJ "-\u200F]", "[" ZWNJ "\u200D]", "" ZWNJ "*" ZWNJ "+" ZWNJ "{2}",
	"\\Q\u00DF\\E?\\Q" ZWNJ "\\E*", "\\Q\u2216E\\E", "\uFF08?\uFF3B\uFF3D", "\u2216Q\u2216E",
	"\u0958\u0959\u095A\u0A36\u0A59?", "(?i:\u0130)", "\u212A", "a\u0301?",
	"(?<\u0646\u0627\u0645>x)", "\\\u0643?", "[\\\u0643]", "\u0660-\u0669",
	"(?U)\u0643+", "^\u0627\u06CC\u0646$", "(*napla:\u00DF)", "(?x)\u2028\u00DF",
	"\\x{200C}?", "\\d+\u066B\\d+", "[\u00AB\u00BB\"]", "\u0964\u0965", "\u2038\u2039",
};

static void test_pattern_stays_valid(void **state)
{
	size_t i;
	int err;

	(void)state;
	for (i = 0; i < sizeof(valid_patterns) / sizeof(valid_patterns[0]); i++) {
		pcre2_code *re = compile(valid_patterns[i], &err);
		char *o;

		if (!re)
			continue; /* only valid patterns are a promise; a few above test that too */
		pcre2_code_free(re);
		o = normp(valid_patterns[i]);
		re = compile(o, &err);
		if (!re) {
			PCRE2_UCHAR msg[256];

			pcre2_get_error_message(err, msg, sizeof(msg));
			fail_msg("\"%s\" -> \"%s\": %s", valid_patterns[i], o, (char *)msg);
		}
		pcre2_code_free(re);
		free(o);
	}
}

/* Random patterns from syntax pieces and tricky letters (fixed seed, bounded): every one PCRE2
 * accepts must still be accepted after folding, with and without the x flag. */
static const char *const pieces[] = {
	"a", "B", "\u0643", "\u064A", "\u06C1", ZWNJ, "\u00DF", "\uFB01", "\u095B", "\u0929",
	"\u0A36", "\u06F1", "\uFF08", "\uFF3B", "\u2216", "\u00A0", "\u2028", "\u0654", "\u0640",
	"\u064E", "(", ")", "(?:", "(?i)", "(?x)", "(?-x)", "(?<n>", "(?=", "(?!", "(?<=",
	"(*pla:", "(*MARK:X)", "[", "]", "[^", "-", "\\", "\\Q", "\\E", "\\b", "\\s", "\\x{643}",
	"\\p{L}", "\\k<n>", "\\1", "?", "*", "+", "{2}", "{1,3}", "|", "^", "$", ".", "#", " ",
	"\n", "[:alpha:]", "(?#c)", "\\\u0643", "{", "}", ":", "[a-z]", "[\\Q]\\E]", "(?x:",
	"\\N{U+643}", "\\c{", "{,3}", "{ 2 }", "[\u0643-\u06CC]", "\\Q\u0643", "(?(1)",
	"(?C\"x)\")", "\\g{1}", "[:", "\u212A", "\u0130", "\u0301", "\u0929?", "\t", "(*napla:",
	"(?|", "(?>", "\\xFF", "\\o{101}",
};

static void test_pattern_random_valid(void **state)
{
	uint32_t seed = 12345;
	unsigned it, valid = 0, k, n;
	int x;

	(void)state;
	for (x = 0; x < 2; x++) {
		uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS | (x ? PCRE2_EXTENDED : 0);

		for (it = 0; it < 30000; it++) {
			char p[1024];
			size_t len = 0, ol;
			int err;
			PCRE2_SIZE off;
			pcre2_code *re;
			char *o;

			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % 12;
			for (k = 0; k < n; k++) {
				const char *pc;

				seed = seed * 1103515245u + 12345u;
				pc = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
				memcpy(p + len, pc, strlen(pc));
				len += strlen(pc);
			}
			p[len] = '\0';
			re = pcre2_compile((PCRE2_SPTR)p, len, opts, &err, &off, NULL);
			if (!re)
				continue;
			pcre2_code_free(re);
			valid++;
			o = normalize_pattern_flags(p, len, x ? NORMALIZE_PAT_EXTENDED : 0, &ol);
			assert_non_null(o);
			re = pcre2_compile((PCRE2_SPTR)o, ol, opts, &err, &off, NULL);
			if (!re)
				fail_msg("x=%d \"%s\" -> \"%s\" does not compile (%d)", x, p, o, err);
			pcre2_code_free(re);
			free(o);
		}
	}
	assert_true(valid > 10000);
}

static void test_pattern_quantifier_meaning(void **state)
{
	struct {
		const char *pat, *text;
		bool match;
	} cases[] = {
		{ "^\u00DF?x$", "x", true },      /* ß? stays optional as a whole */
		{ "^\u00DF?x$", "ssx", true },
		{ "^\u00DF?x$", "sx", false },
		{ "^\\Qa\u00DF\\E?$", "a", true },
		{ "^\\Qa\u00DF\\E?$", "ass", true },
		{ "^\u095B?\u0930$", "\u0930", true },
		{ "^\u095B?\u0930$", "\u091C\u0930", false },
		{ "^\u0645\u06CC" ZWNJ "?\u062E$", "\u0645\u06CC" ZWNJ "\u062E", true },
		{ "^\u0645\u06CC" ZWNJ "?\u062E$", "\u0645\u062E", false },
		{ "^[" ZWNJ "]$", ZWNJ, false },  /* a removed character never matches */
		{ "^\uFF08\u0627\uFF09$", "(\u0627)", true },
		{ "^\uFF08\u0627\uFF09$", "\u0627", false },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = normp(cases[i].pat), *t = norm(cases[i].text, false);

		if (matches(p, t) != cases[i].match)
			fail_msg("case %zu: /%s/ (%s) on \"%s\": want %d", i, cases[i].pat, p, t,
				cases[i].match);
		free(p);
		free(t);
	}
}

/* ---- rule and text meet, per language ------------------------------------------------------ */

struct meet_case {
	const char *lang;
	const char *a, *b;   /* the same word or phrase in two spellings */
};

static const struct meet_case meet_cases[] = {
	/* Urdu: yeh and kaf variants (windows-1256 mail has no ی), gol he vs he, harakat */
	{ "ur", "\u0634\u06A9\u0627\u06CC\u062A", "\u0634\u0643\u0627\u064A\u062A" },
	{ "ur", "\u0646\u06C1\u06CC\u06BA", "\u0646\u0647\u064A\u06BA" },
	{ "ur", "\u0648\u0627\u067E\u0633 \u06A9\u0631\u06CC\u06BA",
	  "\u0648\u0627\u067E\u0633 \u0643\u0631\u064A\u06BA" },
	{ "ur", "\u0645\u0639\u0627\u0641\u06CC", "\u0645\u064F\u0639\u0627\u0641\u0640\u06CC" },
	{ "ur", "\u06AF\u0626\u06CC", "\u06AF\u06CC\u0654\u06CC" },
	{ "ur", "\u0631\u0642\u0645 \u06F5\u06F0\u06F0", "\u0631\u0642\u0645 500" },
	{ "ur", "\u0631\u0642\u0645 \u0665\u0660\u0660", "\u0631\u0642\u0645 \u06F5\u06F0\u06F0" },
	/* Persian: ZWNJ or none, Arabic yeh/kaf (ISO-8859-6), ۀ, Persian digits */
	{ "fa", "\u0645\u06CC" ZWNJ "\u062E\u0648\u0627\u0647\u0645",
	  "\u0645\u06CC\u062E\u0648\u0627\u0647\u0645" },
	{ "fa", "\u0646\u0645\u06CC" ZWNJ "\u06A9\u0646\u0645", "\u0646\u0645\u064A\u0643\u0646\u0645" },
	{ "fa", "\u062E\u0627\u0646\u06C0", "\u062E\u0627\u0646\u0647" },
	{ "fa", "\u06A9\u06CC\u0641\u06CC\u062A", "\u0643\u064A\u0641\u064A\u062A" },
	{ "fa", "\u0645\u0628\u0644\u063A \u06F1\u06F2\u06F0", "\u0645\u0628\u0644\u063A 120" },
	/* Hindi: nukta precomposed or base + nukta, Devanagari digits */
	{ "hi", "\u095B\u0930\u0942\u0930", "\u091C\u093C\u0930\u0942\u0930" },
	{ "hi", "\u095E\u094B\u0928", "\u092B\u093C\u094B\u0928" },
	{ "hi", "\u0929", "\u0928\u093C" },
	{ "hi", "\u20B9\u096B\u096A\u0966", "\u20B9540" },
	/* Punjabi: nukta precomposed or not, Gurmukhi digits */
	{ "pa", "\u0A36\u0A3F\u0A15\u0A3E\u0A07\u0A24", "\u0A38\u0A3C\u0A3F\u0A15\u0A3E\u0A07\u0A24" },
	{ "pa", "\u0A16\u0A3C\u0A30\u0A3E\u0A2C", "\u0A59\u0A30\u0A3E\u0A2C" },
	{ "pa", "\u0A67\u0A66 \u0A26\u0A3F\u0A28", "10 \u0A26\u0A3F\u0A28" },
	/* English: case, ligature, full width, apostrophe */
	{ "en", "REFUND", "refund" },
	{ "en", "\uFB01le a complaint", "file a complaint" },
	{ "en", "\uFF32\uFF25\uFF26\uFF35\uFF2E\uFF24", "Refund" },
	{ "en", "don\u2019t", "don't" },
	/* romanized: only case */
	{ "ur-Latn", "PAISAY WAPIS", "paisay wapis" },
	{ "hi-Latn", "Paisa Wapas", "paisa wapas" },
};

static void test_rule_meets_text(void **state)
{
	size_t i;
	int r, t;

	(void)state;
	for (i = 0; i < sizeof(meet_cases) / sizeof(meet_cases[0]); i++) {
		const char *v[2] = { meet_cases[i].a, meet_cases[i].b };

		for (r = 0; r < 2; r++) {
			char *p = normp(v[r]);

			for (t = 0; t < 2; t++) {
				/* the text inside a sentence, with a neighbour on each side */
				char buf[512];
				char *txt;

				snprintf(buf, sizeof(buf), "x %s y", v[t]);
				txt = norm(buf, false);
				if (!matches(p, txt))
					fail_msg("%s: rule \"%s\" (%s) misses text \"%s\" (%s)",
						meet_cases[i].lang, v[r], p, v[t], txt);
				free(txt);
			}
			free(p);
		}
	}
}

/* The prefilter (rules_anchors.c) takes a pattern's \s to be " " or "\n" and its \d to be [0-9]:
 * on normalized text, every character PCRE2's \s (UTF+UCP) matches must have become a space or
 * a line end (or gone), and every one \d matches an ASCII digit. Checked for every code point. */
static void test_classes_after_normalization(void **state)
{
	int err;
	PCRE2_SIZE off;
	pcre2_code *sp = pcre2_compile((PCRE2_SPTR) "^\\s$", PCRE2_ZERO_TERMINATED,
				       PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
	pcre2_code *dg = pcre2_compile((PCRE2_SPTR) "^\\d$", PCRE2_ZERO_TERMINATED,
				       PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	size_t spaces = 0, digits = 0;

	(void)state;
	assert_non_null(sp);
	assert_non_null(dg);
	for (uint32_t cp = 1; cp <= 0x10FFFF; cp++) {
		char one[8], text[16], *o;
		size_t n = 0, on;
		bool is_sp, is_dg;

		if (cp >= 0xD800 && cp <= 0xDFFF)
			continue;
		n = (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)one);
		is_sp = pcre2_match(sp, (PCRE2_SPTR)one, n, 0, 0, md, NULL) >= 0;
		is_dg = pcre2_match(dg, (PCRE2_SPTR)one, n, 0, 0, md, NULL) >= 0;
		if (!is_sp && !is_dg)
			continue;
		snprintf(text, sizeof(text), "a%.*sb", (int)n, one);
		o = normalize_text(text, strlen(text), true, &on);
		assert_non_null(o);
		if (is_sp && strcmp(o, "a b") && strcmp(o, "a\nb") && strcmp(o, "ab"))
			fail_msg("U+%04X is \\s but normalizes to \"%s\"", (unsigned)cp, o);
		if (is_dg && !(on == 3 && o[1] >= '0' && o[1] <= '9'))
			fail_msg("U+%04X is \\d but normalizes to \"%s\"", (unsigned)cp, o);
		spaces += is_sp;
		digits += is_dg;
		free(o);
	}
	assert_true(spaces >= 20);
	assert_true(digits >= 600);
	pcre2_match_data_free(md);
	pcre2_code_free(sp);
	pcre2_code_free(dg);
}

/* utf8proc orders combining marks before it strips control characters: a control character
 * between two marks must not leave them out of order (found by fuzz_normalize). */
static void test_control_between_marks(void **state)
{
	static const char with[] = "\xc4\xb0\x00\xcc\xb1 a\xcc\x87\x01\xcc\xb1";
	size_t n1, n2, n3;
	char *a = normalize_text(with, sizeof(with) - 1, false, &n1);
	char *b = normalize_text(a, n1, false, &n2);
	char *c = normalize_text("\xc4\xb0\xcc\xb1 a\xcc\xb1\xcc\x87", 10, false, &n3);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(n1, n2);
	assert_memory_equal(a, b, n1);
	assert_int_equal(n1, n3);
	assert_memory_equal(a, c, n1);   /* i, U+0331 (class 220), U+0307 (230) */
	free(a);
	free(b);
	free(c);
}

/* normalize_text copies plain ASCII runs itself and hands only the rest to utf8proc: the result
 * must be exactly what utf8proc over the whole text gives (normalize_text_whole). The cuts at
 * issue: a letter or '=' before a combining mark, CR LF split by the cut, controls between
 * marks, Hangul, and random mixes of all of them. */
static void assert_runs_equal_whole(const char *s, size_t len)
{
	for (int nl = 0; nl < 2; nl++) {
		size_t n1 = 0, n2 = 0;
		char *a = normalize_text(s, len, nl, &n1);
		char *b = normalize_text_whole(s, len, nl, &n2);

		assert_non_null(a);
		assert_non_null(b);
		if (n1 != n2 || memcmp(a, b, n1) != 0)
			fail_msg("keep_newlines=%d: runs \"%s\" whole \"%s\"", nl, a, b);
		free(a);
		free(b);
	}
}

static void test_plain_runs(void **state)
{
	static const char *const cases[] = {
		"cafe\u0301 CAFE\u0301", "a=\u0338b <\u0338 >\u0338", "A\u030A\u0301x",
		"line\r\nnext\rthird\n\rfourth\r", "\r\n\u0643\r\nX", "tab\there\x0bvt\x0c" "ff",
		"x\u0307\x01\u0331y", "\u1100\u1161\u11A8 \u1100\u1161", "K\u212A\u0130i",
		"\u0928\u093C \u0915\u093C\u093E", "\u0627\u0653 a\u0653", "e\u0301\u0327\u0300",
		"\u0627\u0654\u0648\u0654\u06C1\u0654\u06D2\u0654", "\u0A32\u0A3C\u0A38\u0A3C",
		"\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645", "\u0915\u093C\u0916\u093C",
		"end with mark e\u0301", "\u0301 starts with a mark", "ASCII ONLY, Upper And lower.",
		"\u00A0nbsp\u2028ls\u2029ps\xc2\x85" "nel", "\xef\xbb\xbf" "BOM", "",
	};
	static const char *const bits[] = {
		"a", "Z", "e", "=", " ", "\n", "\r", "\t", "\x01", "\x7f", "\u0301", "\u0327",
		"\u0338", "\u0307", "\u0331", "\u0643", "\u064A", "\u0928", "\u093C", "\u0A38",
		"\u0A3C", "\u1100", "\u1161", "\u11A8", "\u00C5", "\u212B", "\uFB01", "\u200C",
		"\u00AD", "\u2028", "\xc2\x85", "\u00A0", "\u0130", "\u03A3", "\u0660", "7",
		/* plain letters of the Arabic, Devanagari and Gurmukhi blocks, first elements of
		 * compositions among them (alef, waw, heh goal, yeh barree, na), their marks and
		 * precomposed forms */
		"\u0627", "\u0653", "\u0654", "\u0655", "\u0648", "\u06C1", "\u06D2", "\u064B",
		"\u0670", "\u06F1", "\u0915", "\u093E", "\u0929", "\u0958", "\u0A15", "\u0A3E",
		"\u0A59", "\u0A33", "\u060C", "\u061F", "\u0640", "\u06D4", "\u0964",
	};
	uint32_t seed = 777;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_runs_equal_whole(cases[i], strlen(cases[i]));
	for (int it = 0; it < 20000; it++) {
		char t[512];
		size_t len = 0;
		unsigned n;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 40;
		for (unsigned k = 0; k < n; k++) {
			const char *b;

			seed = seed * 1103515245u + 12345u;
			b = bits[(seed >> 16) % (sizeof(bits) / sizeof(bits[0]))];
			memcpy(t + len, b, strlen(b));
			len += strlen(b);
		}
		assert_runs_equal_whole(t, len);
	}
}

static void test_persian_space_variant(void **state)
{
	/* the space-separated form stays different; a rule covers it with \s? */
	static const char *const texts[] = {
		"\u0645\u06CC \u062E\u0648\u0627\u0647\u0645",
		"\u0645\u06CC\u062E\u0648\u0627\u0647\u0645",
		"\u0645\u06CC" ZWNJ "\u062E\u0648\u0627\u0647\u0645",
		"\u0645\u064A \u062E\u0648\u0627\u0647\u0645",
	};
	char *p = normp("\u0645\u06CC\\s?\u062E\u0648\u0627\u0647\u0645");
	char *strict = normp("\u0645\u06CC" ZWNJ "\u062E\u0648\u0627\u0647\u0645");
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char *t = norm(texts[i], false);

		assert_true(matches(p, t));
		assert_int_equal(matches(strict, t), i == 1 || i == 2);
		free(t);
	}
	free(p);
	free(strict);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_table),
		cmocka_unit_test(test_classes_after_normalization),
		cmocka_unit_test(test_text_distinct),
		cmocka_unit_test(test_text_invalid_utf8),
		cmocka_unit_test(test_text_large_linear),
		cmocka_unit_test(test_pattern_table),
		cmocka_unit_test(test_pattern_stays_valid),
		cmocka_unit_test(test_pattern_random_valid),
		cmocka_unit_test(test_pattern_quantifier_meaning),
		cmocka_unit_test(test_rule_meets_text),
		cmocka_unit_test(test_persian_space_variant),
		cmocka_unit_test(test_control_between_marks),
		cmocka_unit_test(test_plain_runs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
