/*
 * normalize.c - the one canonical form in which rules and text meet (with utf8proc)
 *
 * normalize_text() runs on every message: one utf8proc decomposition + composition into a
 * code point buffer (NFKC, case folding, default-ignorables dropped, LUMP for quotes/dashes,
 * newline variants to LF, control characters stripped), then one post-pass that folds
 * letter variants, digits and nukta forms (norm_fold) and collapses whitespace while encoding
 * UTF-8. normalize_pattern() applies the very same norm_fold to the literal characters of a
 * PCRE2 pattern, with a small lexer that leaves the pattern's syntax alone. The folding
 * decisions are listed in normalize.h.
 *
 * OWNERSHIP  Both return a malloc'd string the caller frees; the input is not modified.
 * DIAGNOSTICS  None: NULL means out of memory (invalid UTF-8 is repaired, never an error).
 */
#include "normalize.h"
#include "util.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define NORM_TEXT_OPTS (UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | \
	UTF8PROC_IGNORE | UTF8PROC_LUMP | UTF8PROC_NLF2LF | UTF8PROC_STRIPCC)
/* Patterns keep their control characters and line ends: they may be syntax (x flag). */
#define NORM_PAT_OPTS (UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | \
	UTF8PROC_IGNORE | UTF8PROC_LUMP)

#define NUKTA_DEVA 0x093C
#define NUKTA_GURU 0x0A3C

/* ---- the folding table, shared by text and patterns ---------------------------------------- */

/* Every decimal digit (Unicode Nd) -> ASCII; 0 if not one. The scripts of our customers come
 * first (Arabic-Indic, Extended Arabic-Indic, Devanagari, Gurmukhi); any other Nd digit is folded
 * too, so that after normalization \d and [0-9] are the same class and rules can be compiled
 * with [0-9] (normalize_pattern): a Unicode \d kills PCRE2's start-of-match bitmap. Unicode
 * encodes decimal digits only in contiguous runs 0..9, so a digit's value is its distance from
 * the start of its run, modulo 10 (adjacent runs, as in the mathematical digits, are whole
 * tens). */
static int norm_digit(int32_t c, int32_t *out)
{
	static const int32_t zeros[] = { 0x0660, 0x06F0, 0x0966, 0x0A66 };
	int32_t start;
	size_t i;

	for (i = 0; i < sizeof(zeros) / sizeof(zeros[0]); i++) {
		if (c >= zeros[i] && c <= zeros[i] + 9) {
			out[0] = '0' + (c - zeros[i]);
			return 1;
		}
	}
	if (utf8proc_category(c) != UTF8PROC_CATEGORY_ND)
		return 0;
	for (start = c; start > 0x80 && c - start < 100 &&
	     utf8proc_category(start - 1) == UTF8PROC_CATEGORY_ND; start--)
		;
	out[0] = '0' + (c - start) % 10;
	return 1;
}

static int norm_fold_arabic(int32_t c, int32_t *out)
{
	if ((c >= 0x0610 && c <= 0x061A) || c == 0x0640 || (c >= 0x064B && c <= 0x065F) ||
	    c == 0x0670 || (c >= 0x06D6 && c <= 0x06ED))
		return 0; /* honorific signs, tatweel, harakat (hamza above/below too), Quranic marks */
	switch (c) {
	case 0x060C: case 0x066C: out[0] = ','; break;
	case 0x061B: out[0] = ';'; break;
	case 0x061F: out[0] = '?'; break;
	case 0x066A: out[0] = '%'; break;
	case 0x066B: case 0x06D4: out[0] = '.'; break;
	/* hamza is a diacritic here: the letter under it stays (madda alef آ is a letter of its own) */
	case 0x0623: case 0x0625: case 0x0671: case 0x0672: case 0x0673: out[0] = 0x0627; break;
	case 0x0624: out[0] = 0x0648; break;
	case 0x0626: case 0x0649: case 0x064A: out[0] = 0x06CC; break; /* ئ ى ي -> ی */
	case 0x0643: case 0x06AA: out[0] = 0x06A9; break;              /* ك ڪ -> ک */
	case 0x06C0: case 0x06C1: case 0x06C2: case 0x06D5: out[0] = 0x0647; break; /* ۀ ہ ۂ ە -> ه */
	case 0x06C3: out[0] = 0x0629; break;                           /* ۃ -> ة */
	case 0x06D3: out[0] = 0x06D2; break;                           /* ۓ -> ے */
	default: out[0] = c; break;
	}
	return 1;
}

static int norm_fold_indic(int32_t c, int32_t *out)
{
	static const int32_t deva_nukta[8] = { 0x0915, 0x0916, 0x0917, 0x091C, 0x0921, 0x0922, 0x092B,
		0x092F };

	if (c >= 0x0958 && c <= 0x095F) {
		out[0] = deva_nukta[c - 0x0958];
		out[1] = NUKTA_DEVA;
		return 2;
	}
	/* NFC composes these three (they are not composition exclusions): take them apart again */
	out[1] = NUKTA_DEVA;
	switch (c) {
	case 0x0929: out[0] = 0x0928; return 2;
	case 0x0931: out[0] = 0x0930; return 2;
	case 0x0934: out[0] = 0x0933; return 2;
	case 0x0964: case 0x0965: out[0] = '.'; return 1; /* danda, double danda */
	default: break;
	}
	out[1] = NUKTA_GURU;
	switch (c) {
	case 0x0A33: out[0] = 0x0A32; return 2;
	case 0x0A36: out[0] = 0x0A38; return 2;
	case 0x0A59: out[0] = 0x0A16; return 2;
	case 0x0A5A: out[0] = 0x0A17; return 2;
	case 0x0A5B: out[0] = 0x0A1C; return 2;
	case 0x0A5E: out[0] = 0x0A2B; return 2;
	default: break;
	}
	out[0] = c;
	return 1;
}

/* norm_fold - the canonical form of one code point of NFKC-casefolded text: 0..2 code points */
static int norm_fold(int32_t c, int32_t out[2])
{
	if (c < 0x80) {
		out[0] = c;
		return 1;
	}
	if (norm_digit(c, out))
		return 1;
	if (c >= 0x0600 && c <= 0x06FF)
		return norm_fold_arabic(c, out);
	if (c >= 0x0900 && c <= 0x0A7F)
		return norm_fold_indic(c, out);
	if (c >= 0x08D3 && c <= 0x08FF && c != 0x08E2)
		return 0; /* Arabic Extended-A marks */
	switch (c) {
	case 0x00AB: case 0x00BB: case 0x201C: case 0x201D: case 0x201E: case 0x201F:
		out[0] = '"'; /* LUMP leaves double quotes and guillemets alone */
		return 1;
	case 0x201A: case 0x201B:
		out[0] = '\'';
		return 1;
	case 0x200B:
		return 0; /* ZWSP, in case a utf8proc build does not count it as ignorable */
	default:
		out[0] = c;
		return 1;
	}
}

/* norm_space_kind - 0 not white space, 1 a space, 2 a line end */
static int norm_space_kind(int32_t c)
{
	switch (c) {
	case ' ': case '\t':
		return 1;
	case '\n': case '\r': case 0x0B: case 0x0C: case 0x85: case 0x2028: case 0x2029:
		return 2;
	default:
		if (c < 0x80)
			return 0;
		return utf8proc_category(c) == UTF8PROC_CATEGORY_ZS ? 1 : 0;
	}
}

/* norm_decompose - NFKC (+ options) of valid UTF-8 into a malloc'd code point array */
static utf8proc_ssize_t norm_decompose(const char *s, size_t len, utf8proc_option_t opts,
	int32_t **out)
{
	utf8proc_ssize_t n, m;
	int32_t *buf;

	*out = NULL;
	if (len > (size_t)(SIZE_MAX / 4 / 32))
		return -1;
	/* One decomposition, not a sizing pass and a filling pass: a text decomposes to at most
	 * about one code point per input byte (multi-byte letters to no more than their bytes;
	 * ligatures and compatibility forms are rare), so start there; when utf8proc says more
	 * are needed (it then returns the size, the buffer contents undefined), run it again. */
	n = (utf8proc_ssize_t)len + 16;
	buf = malloc(((size_t)n + 1) * sizeof(*buf));
	if (!buf)
		return -1;
	m = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, buf, n, opts);
	if (m > n) {
		int32_t *nb = realloc(buf, ((size_t)m + 1) * sizeof(*buf));

		if (!nb) {
			free(buf);
			return -1;
		}
		buf = nb;
		n = m;
		m = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, buf, n,
				       opts);
	}
	if (m < 0 || m > n) {
		free(buf);
		return -1;
	}
	m = utf8proc_normalize_utf32(buf, m, opts);
	if (m < 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	return m;
}

/* ---- plain runs ---------------------------------------------------------------------------
 * utf8proc spends ~300 instructions on every code point, and most of a text does not need it. A
 * plain character is its own NFKC form under our options (case folding aside, for A-Z), has
 * combining class 0 and can never be the second character of a composition, so canonical
 * reordering and composition never reach across it. So the text is cut before plain characters
 * into runs that are copied as code points and the segments between them, which utf8proc
 * decomposes and composes on their own. Plain: printable ASCII, and the letters of the Arabic,
 * Devanagari and Gurmukhi blocks (U+0600..U+0A7F) that utf8proc's own tables show to be so
 * (norm_plain_init: combining class 0, not a second element in its composition index, mapped to
 * themselves); their marks are not. Two exceptions keep the cut exact: the last plain character
 * before a segment goes with the segment (it may compose with a following mark: e + U+0301,
 * alef + U+0653), and a LF after a CR stays with the CR (utf8proc reads CRLF as one line end:
 * the code points stay the same, not only the text after white space is collapsed).
 * normalize_text_whole() is the same normalization done by utf8proc over the whole text: the
 * reference the tests and fuzz_normalize compare with. */

#define NORM_PLAIN_LO 0x0600
#define NORM_PLAIN_HI 0x0A80
static uint8_t norm_plain_tab[(NORM_PLAIN_HI - NORM_PLAIN_LO) / 8];
static pthread_once_t norm_plain_once = PTHREAD_ONCE_INIT;

static void norm_plain_init(void)
{
	for (int32_t cp = NORM_PLAIN_LO; cp < NORM_PLAIN_HI; cp++) {
		const utf8proc_property_t *p = utf8proc_get_property(cp);
		utf8proc_uint8_t u[4];
		int32_t buf[8];
		utf8proc_ssize_t m;

		if (p->combining_class != 0 || p->ignorable ||
		    (p->comb_index >= 0x8000 && p->comb_index != UINT16_MAX))
			continue;
		m = utf8proc_encode_char(cp, u);
		m = utf8proc_decompose(u, m, buf, 8, NORM_TEXT_OPTS);
		if (m != 1 || buf[0] != cp)
			continue;
		m = utf8proc_normalize_utf32(buf, 1, NORM_TEXT_OPTS);
		if (m != 1 || buf[0] != cp)
			continue;
		norm_plain_tab[(cp - NORM_PLAIN_LO) / 8] |= (uint8_t)(1u << ((cp - NORM_PLAIN_LO) % 8));
	}
}

static inline bool norm_plain_cp(int32_t cp)
{
	return norm_plain_tab[(cp - NORM_PLAIN_LO) / 8] & (1u << ((cp - NORM_PLAIN_LO) % 8));
}

/* The length of the plain character at byte i of valid UTF-8 s[0, len), with its code point
 * (A-Z folded) in *cp; 0 when it is not plain. */
static inline size_t norm_plain_at(const char *s, size_t len, size_t i, int32_t *cp)
{
	const unsigned char *p = (const unsigned char *)s + i;

	if (p[0] < 0x80) {
		if ((p[0] >= 0x20 && p[0] < 0x7f) || (p[0] == '\n' && (i == 0 || s[i - 1] != '\r'))) {
			*cp = p[0] >= 'A' && p[0] <= 'Z' ? p[0] + ('a' - 'A') : p[0];
			return 1;
		}
		return 0;
	}
	if (p[0] >= 0xd8 && p[0] <= 0xdb && len - i >= 2) {            /* U+0600..U+06FF */
		*cp = ((p[0] & 0x1f) << 6) | (p[1] & 0x3f);
		return norm_plain_cp(*cp) ? 2 : 0;
	}
	if (p[0] == 0xe0 && len - i >= 3 && p[1] >= 0xa4 && p[1] <= 0xa9) { /* U+0900..U+0A7F */
		*cp = ((p[1] & 0x3f) << 6) | (p[2] & 0x3f);
		return norm_plain_cp(*cp) ? 3 : 0;
	}
	return 0;
}

/* The length of the UTF-8 character whose first byte is c (s is valid UTF-8). */
static size_t norm_char_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

struct norm_cps {
	int32_t *v;
	size_t n, cap;
};

static int norm_cps_room(struct norm_cps *c, size_t more)
{
	int32_t *nv;
	size_t ncap;

	if (c->cap - c->n >= more)
		return 0;
	if (more > (SIZE_MAX / sizeof(int32_t)) / 2 - c->n)
		return -1;
	ncap = c->cap * 2 > c->n + more ? c->cap * 2 : c->n + more;
	nv = realloc(c->v, (ncap + 1) * sizeof(*nv));
	if (!nv)
		return -1;
	c->v = nv;
	c->cap = ncap;
	return 0;
}

/* Append the NFKC (+ options) code points of one segment of valid UTF-8. */
static int norm_cps_segment(struct norm_cps *c, const char *s, size_t len)
{
	utf8proc_ssize_t m;

	/* about one code point per byte (see norm_decompose); utf8proc says when it needs more */
	if (norm_cps_room(c, len + 16) < 0)
		return -1;
	m = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, c->v + c->n,
			       (utf8proc_ssize_t)(c->cap - c->n), NORM_TEXT_OPTS);
	if (m > (utf8proc_ssize_t)(c->cap - c->n)) {
		if (norm_cps_room(c, (size_t)m) < 0)
			return -1;
		m = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len,
				       c->v + c->n, (utf8proc_ssize_t)(c->cap - c->n), NORM_TEXT_OPTS);
	}
	if (m < 0 || m > (utf8proc_ssize_t)(c->cap - c->n))
		return -1;
	m = utf8proc_normalize_utf32(c->v + c->n, m, NORM_TEXT_OPTS);
	if (m < 0)
		return -1;
	c->n += (size_t)m;
	return 0;
}

/* norm_decompose_text - what norm_decompose(s, len, NORM_TEXT_OPTS) returns, by plain runs and
 * utf8proc segments (see above); s is valid UTF-8 */
static utf8proc_ssize_t norm_decompose_text(const char *s, size_t len, int32_t **out)
{
	struct norm_cps c = { NULL, 0, 0 };
	size_t i = 0;
	int32_t cp;

	*out = NULL;
	pthread_once(&norm_plain_once, norm_plain_init);
	if (len > (size_t)(SIZE_MAX / 4 / 32) || norm_cps_room(&c, len + 16) < 0)
		goto fail;
	while (i < len) {
		size_t j = i, last = i, k, l;

		/* a plain character is one code point (room: one per byte, reserved below) */
		while (j < len && (l = norm_plain_at(s, len, j, &cp)) != 0) {
			last = j;
			c.v[c.n++] = cp;
			j += l;
		}
		if (j < len && j > i) {
			c.n--;                         /* the last one goes with the segment */
			i = last;
		} else {
			i = j;
		}
		for (k = j; k < len && !norm_plain_at(s, len, k, &cp); )
			k += norm_char_len((unsigned char)s[k]);
		if (k > len)
			k = len;
		if (k > i && norm_cps_segment(&c, s + i, k - i) < 0)
			goto fail;
		i = k;
		if (norm_cps_room(&c, len - i + 16) < 0)
			goto fail;
	}
	*out = c.v;
	return (utf8proc_ssize_t)c.n;
fail:
	free(c.v);
	return -1;
}

/* ---- text --------------------------------------------------------------------------------- */

struct norm_out {
	char *s;
	size_t len, cap;
	bool misordered;      /* two combining marks out of canonical order (see norm_text_cps) */
};

/* Room for one more folded code point and a separator (2 x 4 bytes + 1 + NUL). */
static int norm_out_reserve(struct norm_out *o)
{
	char *p;
	size_t ncap;

	if (o->cap - o->len >= 16)
		return 0;
	ncap = o->cap * 2 + 64;
	p = realloc(o->s, ncap);
	if (!p)
		return -1;
	o->s = p;
	o->cap = ncap;
	return 0;
}

/* norm_text_cps - fold, collapse white space and encode the code points into o */
static int norm_text_cps(struct norm_out *o, const int32_t *cp, size_t n, bool keep_newlines)
{
	int pending = 0;          /* white space seen since the last letter: 1 space, 2 line end */
	bool started = false;     /* leading white space is dropped */
	int32_t last = 0;         /* the last code point written */
	int last_ccc = 0;         /* its canonical combining class, when last >= 0x300 */
	int32_t f[2];
	size_t i;
	int k, m, j;

	for (i = 0; i < n; i++) {
		/* printable ASCII other than space: no folding, no mark, at most one separator */
		if (cp[i] > 0x20 && cp[i] < 0x7f) {
			if (norm_out_reserve(o) < 0)
				return -1;
			if (pending && started)
				o->s[o->len++] = pending == 2 ? '\n' : ' ';
			pending = 0;
			started = true;
			last = cp[i];
			o->s[o->len++] = (char)cp[i];
			continue;
		}
		k = norm_space_kind(cp[i]);
		if (k) {
			if (k == 2 && keep_newlines)
				pending = 2;
			else if (!pending)
				pending = 1;
			continue;
		}
		m = norm_fold(cp[i], f);
		if (m == 0)
			continue; /* dropped marks do not end a white space run */
		if (norm_out_reserve(o) < 0)
			return -1;
		if (pending && started) {
			o->s[o->len++] = pending == 2 ? '\n' : ' ';
			last = ' ';
		}
		pending = 0;
		started = true;
		for (j = 0; j < m; j++) {
			/* utf8proc orders combining marks before it strips control characters, so
			 * "x<U+0307><NUL><U+0331>" leaves two marks out of order; the caller then
			 * normalizes once more. Only marks (>= U+0300) need the lookup. */
			if (f[j] >= 0x300) {
				int ccc = utf8proc_get_property(f[j])->combining_class;

				if (ccc && last >= 0x300 && last_ccc > ccc)
					o->misordered = true;
				last_ccc = ccc;
			}
			last = f[j];
			o->len += (size_t)utf8proc_encode_char(f[j], (utf8proc_uint8_t *)o->s + o->len);
		}
	}
	return 0;
}

/* norm_text - normalize_text, and once more when the marks came out of order (retry: the
 * first pass; the second one, whose input has no control characters left, is final) */
static char *norm_text(const char *s, size_t len, bool keep_newlines, size_t *outlen, bool retry,
		       bool whole)
{
	char *clean = NULL;
	int32_t *cp = NULL;
	utf8proc_ssize_t n;
	struct norm_out o = { NULL, 0, 0, false };

	if (!s)
		len = 0;
	if (len && !util_utf8_valid(s, len)) {
		clean = util_utf8_sanitize(s, len, &len);
		if (!clean)
			return NULL;
		s = clean;
	}
	n = whole ? norm_decompose(len ? s : "", len, NORM_TEXT_OPTS, &cp)
		  : norm_decompose_text(len ? s : "", len, &cp);
	free(clean);
	if (n < 0)
		return NULL;
	/* NFKC output is rarely longer than its input: start there and let it double if not */
	o.cap = len + len / 8 + 16;
	o.s = malloc(o.cap);
	if (!o.s || norm_text_cps(&o, cp, (size_t)n, keep_newlines) < 0) {
		free(cp);
		free(o.s);
		return NULL;
	}
	free(cp);
	o.s[o.len] = '\0';
	if (o.misordered && retry) {
		/* rare (a control character between combining marks): once more puts them in
		 * canonical order, so that normalizing is idempotent (fuzz_normalize checks it) */
		char *again = norm_text(o.s, o.len, keep_newlines, &o.len, false, whole);

		free(o.s);
		o.s = again;
		if (!again)
			return NULL;
	}
	if (outlen)
		*outlen = o.len;
	return o.s;
}

char *normalize_text(const char *s, size_t len, bool keep_newlines, size_t *outlen)
{
	return norm_text(s, len, keep_newlines, outlen, true, false);
}

char *normalize_text_whole(const char *s, size_t len, bool keep_newlines, size_t *outlen)
{
	return norm_text(s, len, keep_newlines, outlen, true, true);
}

/* ---- patterns ----------------------------------------------------------------------------- */

enum norm_esc {
	NORM_ESC_PLAIN,  /* outside \Q..\E: a folded ASCII symbol is written as \X */
	NORM_ESC_QUOTE,  /* inside \Q..\E: as \E\X\Q */
};

struct norm_pat {
	const char *p;
	size_t n;
	struct strbuf *b;
	bool extended;   /* x flag: '#' starts a comment, Pattern_White_Space is syntax */
};

static size_t norm_u8len(const char *p, size_t i, size_t n)
{
	unsigned char c = (unsigned char)p[i];
	size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;

	return i + l <= n ? l : n - i;
}

static bool norm_is_run_byte(unsigned char c)
{
	return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		(c >= 'A' && c <= 'Z');
}

/* Extended mode ignores these; they are syntax then, not text to fold. */
static bool norm_is_pattern_space(int32_t c)
{
	return c == 0x85 || c == 0x200E || c == 0x200F || c == 0x2028 || c == 0x2029;
}

/* norm_emit_cp - write one folded code point of a pattern literal, escaped where needed */
static void norm_emit_cp(struct strbuf *b, int32_t c, enum norm_esc esc)
{
	char u[8];
	utf8proc_ssize_t l;

	if (norm_space_kind(c)) {
		strbuf_puts(b, esc == NORM_ESC_QUOTE ? "\\E\\s\\Q" : "\\s");
		return;
	}
	if (c < 0x80 && !norm_is_run_byte((unsigned char)c)) {
		/* a symbol that came from folding (full-width paren, set minus): never syntax */
		if (esc == NORM_ESC_QUOTE)
			strbuf_puts(b, "\\E");
		strbuf_putc(b, '\\');
		strbuf_putc(b, (char)c);
		if (esc == NORM_ESC_QUOTE)
			strbuf_puts(b, "\\Q");
		return;
	}
	l = utf8proc_encode_char(c, (utf8proc_uint8_t *)u);
	strbuf_append(b, u, (size_t)l);
}

/* norm_fold_run - fold the literal run [i, j) into st->b; returns the atoms written,
 * or -1 when out of memory. Runs hold letters, digits and non-ASCII characters only. */
static int norm_fold_run(struct norm_pat *st, size_t i, size_t j, enum norm_esc esc, bool extended)
{
	int32_t *cp = NULL, f[2];
	utf8proc_ssize_t n, k;
	int m, x, atoms = 0;

	n = norm_decompose(st->p + i, j - i, NORM_PAT_OPTS, &cp);
	if (n < 0)
		return -1;
	for (k = 0; k < n; k++) {
		if (extended && norm_is_pattern_space(cp[k])) {
			char u[8];

			strbuf_append(st->b, u, (size_t)utf8proc_encode_char(cp[k],
				(utf8proc_uint8_t *)u));
			continue;
		}
		m = norm_fold(cp[k], f);
		for (x = 0; x < m; x++) {
			norm_emit_cp(st->b, f[x], esc);
			atoms++;
		}
	}
	free(cp);
	return atoms;
}

static size_t norm_past(const struct norm_pat *st, size_t i, char c);

/* Skip what PCRE2 ignores between an item and its quantifier: an isolated or empty \E / \Q\E,
 * (?#comments), and with the x flag white space and # comments. */
static size_t norm_skip_noise(const struct norm_pat *st, size_t i)
{
	size_t guard;

	for (guard = 0; i < st->n && guard < st->n; guard++) {
		const char *p = st->p + i;
		size_t left = st->n - i;

		if (left >= 2 && p[0] == '\\' && p[1] == 'E')
			i += 2;
		else if (left >= 4 && p[0] == '\\' && p[1] == 'Q' && p[2] == '\\' && p[3] == 'E')
			i += 4;
		else if (left >= 3 && p[0] == '(' && p[1] == '?' && p[2] == '#')
			i = norm_past(st, i, ')');
		else if (st->extended && (p[0] == ' ' || p[0] == '\t' || p[0] == '\n' ||
			 p[0] == '\r' || p[0] == '\v' || p[0] == '\f'))
			i++;
		else if (st->extended && p[0] == '#')
			i = norm_past(st, i, '\n');
		else
			break;
	}
	return i;
}

/* Is there a quantifier at i ({m}, {m,}, {m,n} with optional spaces, or ? * +)? */
static bool norm_quantifier_at(const struct norm_pat *st, size_t i)
{
	size_t k;
	bool digit = false;

	i = norm_skip_noise(st, i);
	if (i >= st->n)
		return false;
	if (st->p[i] == '?' || st->p[i] == '*' || st->p[i] == '+')
		return true;
	if (st->p[i] != '{')
		return false;
	for (k = i + 1; k < st->n && k < i + 64; k++) {
		char c = st->p[k];

		if (c >= '0' && c <= '9')
			digit = true;
		else if (c == '}')
			return digit;
		else if (c != ',' && c != ' ')
			return false;
	}
	return false;
}

/* norm_pat_run - fold the literal run [i, j). When a quantifier follows, it binds to the last
 * character only, so that character is folded alone and grouped if it became 0 or 2+ atoms. */
static int norm_pat_run(struct norm_pat *st, size_t i, size_t j, enum norm_esc esc)
{
	size_t k = j;
	struct strbuf tmp, *saved = st->b;
	int atoms;

	if (!norm_quantifier_at(st, j))
		return norm_fold_run(st, i, j, esc, st->extended) < 0 ? -1 : 0;
	while (k > i && ((unsigned char)st->p[k - 1] & 0xC0) == 0x80)
		k--;
	if (k > i)
		k--;
	if (k > i && norm_fold_run(st, i, k, esc, st->extended) < 0)
		return -1;
	strbuf_init(&tmp, 0);
	st->b = &tmp;
	atoms = norm_fold_run(st, k, j, NORM_ESC_PLAIN, st->extended);
	st->b = saved;
	if (atoms < 0 || tmp.oom) {
		strbuf_free(&tmp);
		return -1;
	}
	if (esc == NORM_ESC_QUOTE)
		strbuf_puts(st->b, "\\E"); /* the original \E after this is then an ignored one */
	if (atoms != 1)
		strbuf_puts(st->b, "(?:");
	strbuf_append(st->b, tmp.s ? tmp.s : "", tmp.len);
	if (atoms != 1)
		strbuf_putc(st->b, ')');
	strbuf_free(&tmp);
	return 0;
}

/* Copy p[i, j) unchanged. */
static void norm_copy(struct norm_pat *st, size_t i, size_t j)
{
	if (j > st->n)
		j = st->n;
	if (j > i)
		strbuf_append(st->b, st->p + i, j - i);
}

static size_t norm_copy_one(struct norm_pat *st, size_t i)
{
	norm_copy(st, i, i + 1);
	return i + 1;
}

/* Index just past the first c at or after i (or n). */
static size_t norm_past(const struct norm_pat *st, size_t i, char c)
{
	while (i < st->n && st->p[i] != c)
		i++;
	return i < st->n ? i + 1 : st->n;
}

/* norm_escape_len - length of the ASCII escape sequence at i (p[i] == '\\') */
static size_t norm_escape_len(const struct norm_pat *st, size_t i)
{
	const char *p = st->p;
	size_t n = st->n, k = i + 2;
	char c;

	if (i + 1 >= n)
		return 1;
	c = p[i + 1];
	switch (c) {
	case 'x':
		if (k < n && p[k] == '{')
			return norm_past(st, k, '}') - i;
		while (k < n && k < i + 4 && strchr("0123456789abcdefABCDEF", p[k]) && p[k])
			k++;
		return k - i;
	case 'o': case 'N':
		if (k < n && p[k] == '{')
			return norm_past(st, k, '}') - i;
		return 2;
	case 'c':   /* the one character after \c, \p, \P: whole, even when not ASCII (the
		     * fuzz_normalize regression escape-p-multibyte: half a character failed) */
		return k < n ? 2 + norm_u8len(p, k, n) : 2;
	case 'p': case 'P':
		if (k < n && p[k] == '{')
			return norm_past(st, k, '}') - i;
		return k < n ? 2 + norm_u8len(p, k, n) : 2;
	case 'g': case 'k':
		if (k < n && p[k] == '{')
			return norm_past(st, k, '}') - i;
		if (k < n && p[k] == '<')
			return norm_past(st, k, '>') - i;
		if (k < n && p[k] == '\'')
			return norm_past(st, k + 1, '\'') - i;
		if (k < n && (p[k] == '+' || p[k] == '-'))
			k++;
		while (k < n && p[k] >= '0' && p[k] <= '9')
			k++;
		return k - i;
	default:
		if ((unsigned char)c >= 0x80)
			return 1 + norm_u8len(p, i + 1, n);
		if (c >= '0' && c <= '9') {
			while (k < n && p[k] >= '0' && p[k] <= '9')
				k++;
			return k - i;
		}
		return 2;
	}
}

/* norm_pat_quote - fold the literal text of \Q..\E starting at i (just after \Q) */
static size_t norm_pat_quote(struct norm_pat *st, size_t i)
{
	size_t j;

	while (i < st->n) {
		if (st->p[i] == '\\' && i + 1 < st->n && st->p[i + 1] == 'E') {
			norm_copy(st, i, i + 2);
			return i + 2;
		}
		if (!norm_is_run_byte((unsigned char)st->p[i])) {
			norm_copy(st, i, i + 1);
			i++;
			continue;
		}
		j = i;
		while (j < st->n && norm_is_run_byte((unsigned char)st->p[j]))
			j++;
		/* a quantifier after "\E" binds to the run's last character */
		if (j + 1 < st->n && st->p[j] == '\\' && st->p[j + 1] == 'E')
			norm_pat_run(st, i, j, NORM_ESC_QUOTE);
		else
			norm_fold_run(st, i, j, NORM_ESC_QUOTE, false);
		i = j;
	}
	return i;
}

/* norm_pat_escape - an escape at i outside a class: copied, except \Q..\E and an escaped
 * non-ASCII character, which are literal text and folded */
static size_t norm_pat_escape(struct norm_pat *st, size_t i)
{
	size_t l;

	if (i + 1 < st->n && st->p[i + 1] == 'Q') {
		norm_copy(st, i, i + 2);
		return norm_pat_quote(st, i + 2);
	}
	if (i + 1 < st->n && (unsigned char)st->p[i + 1] >= 0x80) {
		l = norm_u8len(st->p, i + 1, st->n);
		norm_pat_run(st, i + 1, i + 1 + l, NORM_ESC_PLAIN);
		return i + 1 + l;
	}
	if (i + 1 < st->n && st->p[i + 1] == 'd') {
		/* text digits are all ASCII after normalization (norm_digit): [0-9] is \d there,
		 * and unlike UCP's \d it lets PCRE2 build a start bitmap */
		strbuf_append(st->b, "[0-9]", 5);
		return i + 2;
	}
	l = norm_escape_len(st, i);
	norm_copy(st, i, i + l);
	return i + l;
}

/* Length of one class item at i: an escape, a POSIX class [:name:], or one character. */
static size_t norm_class_item_len(const struct norm_pat *st, size_t i)
{
	if (st->p[i] == '\\')
		return norm_escape_len(st, i);
	if (st->p[i] == '[' && i + 1 < st->n && (st->p[i + 1] == ':' || st->p[i + 1] == '.' ||
	    st->p[i + 1] == '=')) {
		size_t k;

		for (k = i + 2; k + 1 < st->n; k++)
			if (st->p[k] == st->p[i + 1] && st->p[k + 1] == ']')
				return k + 2 - i;
	}
	return norm_u8len(st->p, i, st->n);
}

/* Skip \E and \Q\E, which PCRE2 ignores inside a class too. */
static size_t norm_class_noise(const struct norm_pat *st, size_t i)
{
	while (i + 1 < st->n && st->p[i] == '\\') {
		if (st->p[i + 1] == 'E')
			i += 2;
		else if (i + 3 < st->n && st->p[i + 1] == 'Q' && st->p[i + 2] == '\\' &&
			 st->p[i + 3] == 'E')
			i += 4;
		else
			break;
	}
	return i;
}

/* norm_class_range_end - does the class item ending at i start a range "x-y"? Then *end is
 * just past y (a \Q..\E end item is taken whole). */
static bool norm_class_range_end(const struct norm_pat *st, size_t i, size_t *end)
{
	size_t d = norm_class_noise(st, i), e;

	if (d >= st->n || st->p[d] != '-')
		return false;
	e = norm_class_noise(st, d + 1);
	if (e >= st->n || st->p[e] == ']')
		return false;
	if (e + 1 < st->n && st->p[e] == '\\' && st->p[e + 1] == 'Q') {
		for (e += 2; e + 1 < st->n && !(st->p[e] == '\\' && st->p[e + 1] == 'E'); e++)
			;
		e = e + 1 < st->n ? e + 2 : st->n;
	} else {
		e += norm_class_item_len(st, e);
	}
	*end = e;
	return true;
}

/* norm_class_member - fold one literal class member; a member folding to nothing (ZWNJ)
 * keeps its place as \x{...} so the class never becomes empty */
static void norm_class_member(struct norm_pat *st, size_t i, size_t l)
{
	int32_t c = 0;
	size_t mark = st->b->len;
	int atoms;

	atoms = norm_fold_run(st, i, i + l, NORM_ESC_PLAIN, false);
	if (atoms == 0) {
		st->b->len = mark;
		if (utf8proc_iterate((const utf8proc_uint8_t *)st->p + i, (utf8proc_ssize_t)l, &c) > 0)
			strbuf_printf(st->b, "\\x{%X}", (unsigned)c);
		else
			norm_copy(st, i, i + l);
	}
}

/* norm_pat_class - a character class at i ('['): members folded, ranges, escapes and POSIX
 * classes copied as they are (a folded range end could invert the range) */
static size_t norm_pat_class(struct norm_pat *st, size_t i)
{
	size_t l, e;
	bool literal;

	norm_copy(st, i, i + 1);
	i++;
	if (i < st->n && st->p[i] == '^')
		i = norm_copy_one(st, i);
	if (i < st->n && st->p[i] == ']')
		i = norm_copy_one(st, i); /* "[]...]": a leading ] is a member */
	while (i < st->n && st->p[i] != ']') {
		if (st->p[i] == '\\' && i + 1 < st->n && st->p[i + 1] == 'Q') {
			l = i + 2;
			while (l + 1 < st->n && !(st->p[l] == '\\' && st->p[l + 1] == 'E'))
				l++;
			l = l + 1 < st->n ? l + 2 : st->n;
			norm_copy(st, i, l); /* \Q..\E inside a class is copied, not folded */
			i = l;
			continue;
		}
		l = norm_class_item_len(st, i);
		literal = st->p[i] != '\\' && l <= 4 && st->p[i] != '[';
		if (st->p[i] == '\\' && i + 1 < st->n && (unsigned char)st->p[i + 1] >= 0x80) {
			i++; /* an escaped non-ASCII member is a literal one */
			l = norm_u8len(st->p, i, st->n);
			literal = true;
		}
		if (norm_class_range_end(st, i + l, &e)) {
			norm_copy(st, i, e); /* a range, as written */
			i = e;
			continue;
		}
		if (l == 2 && st->p[i] == '\\' && st->p[i + 1] == 'd')
			strbuf_append(st->b, "0-9", 3);   /* as outside a class: see norm_pat_escape */
		else if (literal && l == 1 && st->p[i] >= 'A' && st->p[i] <= 'Z')
			strbuf_putc(st->b, (char)(st->p[i] + 32));
		else if (literal && (unsigned char)st->p[i] >= 0x80)
			norm_class_member(st, i, l);
		else
			norm_copy(st, i, i + l);
		i += l;
	}
	if (i < st->n)
		i = norm_copy_one(st, i);
	return i;
}

/* norm_pat_group - the syntax after "(?" at i: copied; the group's content is left to the
 * main loop */
static size_t norm_pat_group(struct norm_pat *st, size_t i)
{
	const char *p = st->p;
	size_t n = st->n, k = i + 2;
	bool neg = false;

	norm_copy(st, i, k);
	if (k >= n)
		return k;
	switch (p[k]) {
	case '#':
		k = norm_past(st, k, ')');
		break;
	case ':': case '|': case '>': case '=': case '!': case '*':
		k++;
		break;
	case '<':
		if (k + 1 < n && (p[k + 1] == '=' || p[k + 1] == '!' || p[k + 1] == '*'))
			k += 2;
		else
			k = norm_past(st, k, '>');
		break;
	case '\'':
		k = norm_past(st, k + 1, '\'');
		break;
	case 'P':
		k = (k + 1 < n && p[k + 1] == '<') ? norm_past(st, k, '>') : norm_past(st, k, ')');
		break;
	case '(':
		/* a condition: an assertion is left to the main loop, a name/number copied */
		if (k + 1 < n && (p[k + 1] == '?' || p[k + 1] == '*'))
			return k;
		k = norm_past(st, k, ')');
		break;
	case 'C':
		k++;
		if (k < n && strchr("`'\"^%#${", p[k]) && p[k]) {
			char close = (char)(p[k] == '{' ? '}' : p[k]);

			for (k++; k < n; k++) {
				if (p[k] == close) {
					if (k + 1 < n && p[k + 1] == close && close != '}')
						k++;
					else
						break;
				}
			}
		}
		k = norm_past(st, k, ')');
		break;
	default:
		/* options (?i) (?x-s:...) (?^), recursion (?R) (?1) (?+1) (?&name) */
		for (; k < n && p[k] != ')' && p[k] != ':'; k++) {
			if (p[k] == '-')
				neg = true;
			else if (p[k] == '^')
				st->extended = false;
			else if (p[k] == 'x' && p[i + 2] != '&')
				st->extended = !neg;
		}
		if (k < n)
			k++;
		break;
	}
	norm_copy(st, i + 2, k);
	return k;
}

/* norm_pat_verb - "(*" at i: a verb or option (*MARK:x) copied to ')'; an alpha assertion
 * (*pla: ...) copied to ':' with its content left to the main loop */
static size_t norm_pat_verb(struct norm_pat *st, size_t i)
{
	size_t k = i + 2;
	bool lower = true;

	while (k < st->n && (st->p[k] == '_' || (st->p[k] >= 'a' && st->p[k] <= 'z') ||
	       (st->p[k] >= 'A' && st->p[k] <= 'Z') || (st->p[k] >= '0' && st->p[k] <= '9'))) {
		if (!(st->p[k] >= 'a' && st->p[k] <= 'z') && st->p[k] != '_')
			lower = false;
		k++;
	}
	if (k < st->n && st->p[k] == ':' && k > i + 2 && lower)
		k++;
	else
		k = norm_past(st, k, ')');
	norm_copy(st, i, k);
	return k;
}

char *normalize_pattern_flags(const char *pattern, size_t len, unsigned flags, size_t *outlen)
{
	struct strbuf b;
	struct norm_pat st;
	char *clean = NULL;
	size_t i = 0, j;

	if (!pattern)
		len = 0;
	if (len && !util_utf8_valid(pattern, len)) {
		clean = util_utf8_sanitize(pattern, len, &len);
		if (!clean)
			return NULL;
		pattern = clean;
	}
	strbuf_init(&b, 0);
	st.p = len ? pattern : "";
	st.n = len;
	st.b = &b;
	st.extended = (flags & NORMALIZE_PAT_EXTENDED) != 0;
	while (i < st.n && !b.oom) {
		unsigned char c = (unsigned char)st.p[i];

		if (c == '\\') {
			i = norm_pat_escape(&st, i);
		} else if (c == '[') {
			i = norm_pat_class(&st, i);
		} else if (c == '(' && i + 1 < st.n && st.p[i + 1] == '?') {
			i = norm_pat_group(&st, i);
		} else if (c == '(' && i + 1 < st.n && st.p[i + 1] == '*') {
			i = norm_pat_verb(&st, i);
		} else if (c == '#' && st.extended) {
			j = norm_past(&st, i, '\n');
			norm_copy(&st, i, j);
			i = j;
		} else if (c == '{' && !norm_quantifier_at(&st, i)) {
			/* a literal brace: escaped, so that folded digits after it ("{۱}") cannot
			 * turn it into a quantifier */
			strbuf_puts(&b, "\\{");
			i++;
		} else if (norm_is_run_byte(c)) {
			for (j = i; j < st.n && norm_is_run_byte((unsigned char)st.p[j]); j++)
				;
			if (norm_pat_run(&st, i, j, NORM_ESC_PLAIN) < 0)
				b.oom = true;
			i = j;
		} else {
			norm_copy(&st, i, i + 1);
			i++;
		}
	}
	free(clean);
	if (b.oom) {
		strbuf_free(&b);
		return NULL;
	}
	if (outlen)
		*outlen = b.len;
	return strbuf_take(&b);
}

char *normalize_pattern(const char *pattern, size_t len, size_t *outlen)
{
	return normalize_pattern_flags(pattern, len, 0, outlen);
}
