/*
 * rules_anchors.c - the prefilter: per rule, literal "anchors" one of which every match contains;
 *                   per ruleset, one Aho-Corasick automaton per target that finds them all at once
 *
 * ANCHORS  At load, the normalized pattern (what is compiled) is parsed into a small tree walk
 * that keeps, for every piece, either the EXACT set of strings it can match (a literal, a
 * bounded alternation of literals, an optional literal: colou?r -> {color, colour}) or an
 * ANCHOR set (every match of the piece contains one of them), or nothing provable:
 *   concatenation   exact x exact -> exact (cross product, bounded); otherwise the better of
 *                   the two sides' anchor sets (the one whose shortest string is longest);
 *   alternation     union of the branches' sets; nothing if any branch proves nothing;
 *   x? x* x{0,n}    nothing (may match empty), except x? of an exact set: the set plus "";
 *   x+ x{n,m} n>=1  the anchors of x;
 *   zero-width      \b \B \A \z \Z ^ $ and lookarounds match "" (what they look at is not part
 *                   of the match, so it is simply not used);
 *   \s              " " or "\n": the texts rules see are normalized, and normalization turns
 *                   every white space character into one of the two (test_normalize checks
 *                   each code point PCRE2's \s matches);
 *   classes, . , \w \S \d \p{..} ...: nothing.
 * It gives up on the whole rule (no prefilter: the rule always runs) for anything it does not
 * fully understand: the x flag, inline options (?i), conditionals, recursion, callouts, verbs,
 * backreferences and numeric escapes (\1 \g \k \x \o \c), \Q..\E, \K, a "{" that is not a
 * quantifier, nesting deeper than AN_MAX_DEPTH. A rule whose best set has a string shorter than
 * AN_MIN_BYTES gets no prefilter either (a short anchor skips nothing).
 *
 * LEADS  The same walk also keeps, for every piece, the strings that every match of it STARTS
 * with: an atom's own set; a sequence's exact prefix run times the leads of the first piece that
 * is not exact (an optional piece, x? x* x{0,n}, adds its leads and the walk goes on to the next
 * piece: "(?:very\s+)?sorry" -> {very, sorry}); an alternation's union; a piece that proves
 * nothing ends the sequence with the prefix run so far (nothing when that may be empty). When
 * the leads of the whole pattern are good anchors (none empty, the shortest >= AN_MIN_BYTES),
 * they ARE the rule's anchors and r->lead is set: the scan then also records where each lead
 * occurs, and match.c tries the rule's anchored code at those places only, instead of a search
 * of the whole text (the leftmost match starts at one of them). 164 of the 212 shipped rules
 * and 932 of 1,000 generated ones have leads.
 *
 * CASE  Caseless matching: ASCII letters are lowercased in the anchors and ASCII is lowercased
 * while scanning, so the prefilter does not depend on the text being case-folded at all (a
 * case-sensitive I rule is then filtered caselessly: more runs, never fewer). A non-ASCII
 * character of a caseless rule is used only when it is in a script without case (Arabic,
 * Indic, punctuation, CJK, emoji, ...); a cased one (Latin-1 letters, Greek, Cyrillic, ...)
 * proves nothing, because PCRE2 would match its other cases too.
 *
 * SCAN  rules_prefilter_scan() runs a text of one target once through that target's automaton
 * (root transitions in a table, the rest in one open-addressing hash of (state, byte); each
 * state's nearest accepting suffix precomputed) and marks the rules any of whose anchors
 * occurs: linear in the text plus the anchors found. For lead rules it records every place a
 * lead occurs (at most RULES_LEAD_MAX_POS per rule: a rule with more is marked 2, "occurs,
 * places not kept", and searched as any other); rules_scan_leads() hands them out per rule,
 * sorted. Header rules are few and their texts
 * short: rules_anchors_in() looks for their anchors one by one.
 *
 * OWNERSHIP  Anchors belong to their rule (freed by rules_rule_clear); the automata to the
 *            ruleset (rules_prefilter_free). struct rules_scan is per-thread scratch owned by
 *            its caller (rules_scan_free).
 * DIAGNOSTICS  None: giving up only means "no prefilter". Returns -1 only when out of memory.
 */
#include "rules_parse.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AN_MAX_SET 128        /* strings in one set; more proves nothing (or picks another side) */
#define AN_MAX_LEN 48         /* bytes of one exact string; a longer piece becomes anchors */
#define AN_MAX_DEPTH 64       /* group nesting followed; deeper: give up (bounded stack) */
#define AN_MIN_BYTES 3        /* shortest useful anchor */

/* ---- string sets -------------------------------------------------------------------------- */

struct aset {
	bool any;             /* proves nothing */
	bool exact;           /* v is every string the piece can match, else anchors */
	bool opt;             /* leads only: the piece may also match "" (see LEADS) */
	size_t n;
	char **v;
	size_t *len;
};

struct an_parser {
	const char *p;
	size_t n, i;
	bool caseless;
	bool fail;            /* give up on the rule */
	bool oom;
};

static void set_clear(struct aset *s)
{
	for (size_t k = 0; k < s->n; k++)
		free(s->v[k]);
	free(s->v);
	free(s->len);
	memset(s, 0, sizeof(*s));
}

static void set_any(struct aset *s)
{
	set_clear(s);
	s->any = true;
}

static bool set_has(const struct aset *s, const char *str, size_t len)
{
	for (size_t k = 0; k < s->n; k++)
		if (s->len[k] == len && memcmp(s->v[k], str, len) == 0)
			return true;
	return false;
}

/* Append a copy of str (deduplicated); -1 when out of memory. */
static int set_add(struct aset *s, const char *str, size_t len)
{
	char **nv;
	size_t *nl;

	if (set_has(s, str, len))
		return 0;
	nv = realloc(s->v, (s->n + 1) * sizeof(*nv));
	if (!nv)
		return -1;
	s->v = nv;
	nl = realloc(s->len, (s->n + 1) * sizeof(*nl));
	if (!nl)
		return -1;
	s->len = nl;
	s->v[s->n] = malloc(len + 1);
	if (!s->v[s->n])
		return -1;
	memcpy(s->v[s->n], str, len);
	s->v[s->n][len] = '\0';
	s->len[s->n++] = len;
	return 0;
}

static void set_exact1(struct an_parser *ps, struct aset *s, const char *str, size_t len)
{
	set_clear(s);
	s->exact = true;
	if (set_add(s, str, len) < 0)
		ps->oom = true;
}

/* An exact set as anchors: a set containing "" proves nothing. */
static void set_to_anchors(struct aset *s)
{
	if (s->any || !s->exact)
		return;
	for (size_t k = 0; k < s->n; k++)
		if (s->len[k] == 0) {
			set_any(s);
			return;
		}
	s->exact = false;
}

/* The length of the shortest string (-1: proves nothing). */
static long set_score(const struct aset *s)
{
	long m = -1;

	if (s->any || !s->n)
		return -1;
	for (size_t k = 0; k < s->n; k++)
		if (m < 0 || (long)s->len[k] < m)
			m = (long)s->len[k];
	return m;
}

static void set_move(struct aset *dst, struct aset *src)
{
	set_clear(dst);
	*dst = *src;
	memset(src, 0, sizeof(*src));
}

/* best := the better of best and cand as anchor sets (cand is consumed): the one whose shortest
 * string is longest, then the smaller one. */
static void keep_better(struct aset *best, struct aset *cand)
{
	long sb, sc;

	set_to_anchors(cand);
	sb = set_score(best);
	sc = set_score(cand);
	if (sc > sb || (sc == sb && sc >= 0 && cand->n < best->n))
		set_move(best, cand);
	set_clear(cand);
}

/* a := a followed by b when both are exact and the product stays small; false otherwise (then
 * nothing changed). b is consumed on success. */
static bool exact_product(struct an_parser *ps, struct aset *a, struct aset *b)
{
	struct aset r = { .exact = true };

	if (!a->exact || !b->exact || a->n * b->n > AN_MAX_SET)
		return false;
	for (size_t i = 0; i < a->n; i++)
		for (size_t j = 0; j < b->n; j++) {
			char buf[2 * AN_MAX_LEN];

			if (a->len[i] + b->len[j] > AN_MAX_LEN) {
				set_clear(&r);
				return false;
			}
			memcpy(buf, a->v[i], a->len[i]);
			memcpy(buf + a->len[i], b->v[j], b->len[j]);
			if (set_add(&r, buf, a->len[i] + b->len[j]) < 0)
				ps->oom = true;
		}
	set_move(a, &r);
	set_clear(b);
	return true;
}

/* a := a | b (b is consumed). */
static void set_alt(struct an_parser *ps, struct aset *a, struct aset *b)
{
	if (!(a->exact && b->exact)) {
		set_to_anchors(a);
		set_to_anchors(b);
	}
	if (a->any || b->any || a->n + b->n > AN_MAX_SET) {
		set_any(a);
		set_clear(b);
		return;
	}
	for (size_t k = 0; k < b->n; k++)
		if (set_add(a, b->v[k], b->len[k]) < 0)
			ps->oom = true;
	set_clear(b);
}

/* ---- leads (see LEADS in the file comment) -------------------------------------------------- */

static bool set_has_empty(const struct aset *s)
{
	for (size_t k = 0; k < s->n; k++)
		if (s->len[k] == 0)
			return true;
	return false;
}

/* dst := a copy of src */
static void set_copy(struct an_parser *ps, struct aset *dst, const struct aset *src)
{
	set_clear(dst);
	dst->any = src->any;
	dst->exact = src->exact;
	dst->opt = src->opt;
	for (size_t k = 0; k < src->n; k++)
		if (set_add(dst, src->v[k], src->len[k]) < 0)
			ps->oom = true;
}

/* An exact set as leads: "" leaves the set and makes it optional. */
static void lead_of_exact(struct aset *s)
{
	size_t k = 0;

	if (s->any || !s->exact)
		return;
	while (k < s->n) {
		if (s->len[k] == 0) {
			free(s->v[k]);
			s->v[k] = s->v[s->n - 1];
			s->len[k] = s->len[s->n - 1];
			s->n--;
			s->opt = true;
		} else {
			k++;
		}
	}
	s->exact = false;   /* with n == 0 and opt: the piece matches only "" */
}

/* a := a | b as leads (b is consumed); exact only when both are */
static void lead_alt(struct an_parser *ps, struct aset *a, struct aset *b)
{
	bool opt;

	if (a->exact && b->exact) {
		set_alt(ps, a, b);
		return;
	}
	lead_of_exact(a);
	lead_of_exact(b);
	opt = a->opt || b->opt;
	if (a->any || b->any || a->n + b->n > AN_MAX_SET) {
		set_any(a);
		set_clear(b);
		return;
	}
	for (size_t k = 0; k < b->n; k++)
		if (set_add(a, b->v[k], b->len[k]) < 0)
			ps->oom = true;
	a->opt = opt;
	set_clear(b);
}

/* out := the leads of pre (exact) followed by leads l (not exact, not optional): the product
 * when it is small, else pre itself when it has no "", else nothing */
static void lead_product(struct an_parser *ps, const struct aset *pre, const struct aset *l,
			 struct aset *out)
{
	struct aset r = { 0 };

	set_clear(out);
	if (l->any) {
		set_any(out);
		return;
	}
	if (pre->n * l->n <= AN_MAX_SET) {
		bool fits = true;

		for (size_t i = 0; fits && i < pre->n; i++)
			for (size_t j = 0; fits && j < l->n; j++) {
				char buf[2 * AN_MAX_LEN];

				if (pre->len[i] + l->len[j] > AN_MAX_LEN) {
					fits = false;
					break;
				}
				memcpy(buf, pre->v[i], pre->len[i]);
				memcpy(buf + pre->len[i], l->v[j], l->len[j]);
				if (set_add(&r, buf, pre->len[i] + l->len[j]) < 0)
					ps->oom = true;
			}
		if (fits) {
			set_move(out, &r);
			return;
		}
		set_clear(&r);
	}
	if (set_has_empty(pre)) {
		set_any(out);
		return;
	}
	set_copy(ps, out, pre);
	out->exact = false;
}

/* The leads of a sequence, fed one piece at a time. */
struct lead_seq {
	struct aset pre;      /* exact: what the pieces so far match (all of them exact) */
	struct aset acc;      /* leads of the matches in which an optional piece is not empty */
	struct aset res;
	bool done;
};

/* res := acc | pre, the sequence going on with something that proves nothing */
static void lead_seq_close(struct an_parser *ps, struct lead_seq *ls)
{
	ls->done = true;
	if (set_has_empty(&ls->pre)) {
		set_any(&ls->res);
		return;
	}
	set_copy(ps, &ls->res, &ls->pre);
	ls->res.exact = false;
	if (ls->acc.n || ls->acc.any)
		lead_alt(ps, &ls->res, &ls->acc);
}

static void lead_seq_feed(struct an_parser *ps, struct lead_seq *ls, struct aset *l)
{
	struct aset x = { 0 };

	if (ls->done)
		return;
	if (l->any) {
		lead_seq_close(ps, ls);
		return;
	}
	if (l->exact) {
		struct aset lc = { 0 };

		set_copy(ps, &lc, l);
		if (!exact_product(ps, &ls->pre, &lc)) {
			set_clear(&lc);
			lead_seq_close(ps, ls);
		}
		return;
	}
	lead_product(ps, &ls->pre, l, &x);
	if (x.any) {
		ls->done = true;
		set_move(&ls->res, &x);
		return;
	}
	if (!ls->acc.n && !ls->acc.any)
		set_move(&ls->acc, &x);
	else
		lead_alt(ps, &ls->acc, &x);
	if (!l->opt) {
		ls->done = true;
		set_move(&ls->res, &ls->acc);
	}
}

/* The sequence ended: its leads (exact when every piece was). */
static void lead_seq_end(struct an_parser *ps, struct lead_seq *ls, struct aset *out)
{
	if (!ls->done) {
		if (!ls->acc.n && !ls->acc.any) {
			set_move(&ls->res, &ls->pre);    /* exact */
		} else {
			lead_of_exact(&ls->pre);
			if (ls->pre.any && !ls->pre.opt) {
				set_any(&ls->res);
			} else {
				bool opt = ls->pre.opt || ls->acc.opt;

				set_move(&ls->res, &ls->acc);
				if (ls->pre.n)
					lead_alt(ps, &ls->res, &ls->pre);
				ls->res.opt = opt;
			}
		}
	}
	set_move(out, &ls->res);
	set_clear(&ls->pre);
	set_clear(&ls->acc);
}

/* The leads of x quantified {min,max} (max -1: unbounded), from the leads of x. */
static void lead_quantify(struct an_parser *ps, struct aset *l, long min, long max)
{
	if (max == 0) {
		set_exact1(ps, l, "", 0);
	} else if (min == 0) {
		if (max == 1 && l->exact && l->n < AN_MAX_SET) {
			if (set_add(l, "", 0) < 0)
				ps->oom = true;
		} else if (!l->any) {
			lead_of_exact(l);
			l->opt = true;
		}
	} else if (!(min == 1 && max == 1)) {
		lead_of_exact(l);
	}
}

/* ---- the pattern walk --------------------------------------------------------------------- */

/* May PCRE2 match this code point caselessly against another one? (see CASE above) */
static bool cp_uncased(uint32_t cp)
{
	return (cp >= 0xA1 && cp <= 0xBF && cp != 0xB5) || (cp >= 0x0590 && cp <= 0x0FFF) ||
	       (cp >= 0x2000 && cp <= 0x20CF) || (cp >= 0x3000 && cp <= 0x9FFF) ||
	       (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xFB1D && cp <= 0xFDFF) ||
	       (cp >= 0xFE70 && cp <= 0xFEFF) || (cp >= 0x1F000 && cp <= 0x1FAFF);
}

static size_t utf8_seq(const char *p, size_t n, size_t i, uint32_t *cp)
{
	unsigned char c = (unsigned char)p[i];
	size_t k, len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;

	*cp = len == 1 ? c : c & (0x3F >> (len - 1));
	for (k = 1; k < len && i + k < n; k++)
		*cp = (*cp << 6) | ((unsigned char)p[i + k] & 0x3F);
	return k;
}

/* One literal character at p[i] (clen bytes) into s. */
static void lit_char(struct an_parser *ps, struct aset *s, size_t i, size_t clen, uint32_t cp)
{
	char c = ps->p[i];

	if (ps->caseless && cp >= 0x80 && !cp_uncased(cp)) {
		set_any(s);
		return;
	}
	if (clen == 1 && c >= 'A' && c <= 'Z')
		c = (char)(c - 'A' + 'a');
	if (clen == 1)
		set_exact1(ps, s, &c, 1);
	else
		set_exact1(ps, s, ps->p + i, clen);
}

/* Parse a quantifier at ps->i into min/max (max -1: unbounded); false when there is none.
 * A "{" that is not a quantifier gives up (PCRE2 reads it as a literal; not worth the risk). */
static bool quantifier(struct an_parser *ps, long *min, long *max)
{
	const char *p = ps->p;
	size_t n = ps->n, i = ps->i;

	if (i >= n)
		return false;
	if (p[i] == '?' || p[i] == '*' || p[i] == '+') {
		*min = p[i] == '+';
		*max = p[i] == '?' ? 1 : -1;
		i++;
	} else if (p[i] == '{') {
		size_t j = i + 1, d0 = j;
		long a = 0, b;

		while (j < n && p[j] >= '0' && p[j] <= '9' && a < 100000)
			a = a * 10 + (p[j++] - '0');
		if (j == d0 || j >= n || (p[j] != ',' && p[j] != '}')) {
			ps->fail = true;
			return false;
		}
		b = a;
		if (p[j] == ',') {
			size_t d1 = ++j;

			b = 0;
			while (j < n && p[j] >= '0' && p[j] <= '9' && b < 100000)
				b = b * 10 + (p[j++] - '0');
			if (j == d1)
				b = -1;
		}
		if (j >= n || p[j] != '}') {
			ps->fail = true;
			return false;
		}
		*min = a;
		*max = b;
		i = j + 1;
	} else {
		return false;
	}
	if (i < n && (p[i] == '?' || p[i] == '+'))
		i++;            /* lazy or possessive: the same strings */
	ps->i = i;
	return true;
}

static void parse_alt(struct an_parser *ps, struct aset *out, struct aset *lead, int depth);

/* Past the class at p[i] == '['; gives up on anything odd. */
static void skip_class(struct an_parser *ps)
{
	long j = rules_skip_class(ps->p, ps->n, ps->i);

	if (j < 0)
		ps->fail = true;
	else
		ps->i = (size_t)j;
}

/* A group at p[i] == '('. */
static void parse_group(struct an_parser *ps, struct aset *out, struct aset *lead, int depth)
{
	const char *p = ps->p;
	size_t n = ps->n, i = ps->i + 1;
	bool zero_width = false;

	if (depth >= AN_MAX_DEPTH || (i < n && p[i] == '*')) {
		ps->fail = true;       /* too deep, or a verb / (*pla: ...) */
		return;
	}
	if (i < n && p[i] == '?') {
		char k = i + 1 < n ? p[i + 1] : 0;

		if (k == ':' || k == '|' || k == '>') {
			i += 2;
		} else if (k == '=' || k == '!') {
			i += 2;
			zero_width = true;
		} else if (k == '<' && i + 2 < n && (p[i + 2] == '=' || p[i + 2] == '!')) {
			i += 3;
			zero_width = true;
		} else if (k == '<' || k == '\'' || (k == 'P' && i + 2 < n && p[i + 2] == '<')) {
			const char *e = memchr(p + i, k == '\'' ? '\'' : '>', n - i);

			if (k == '\'')
				e = memchr(p + i + 2, '\'', n - i - 2);
			if (!e) {
				ps->fail = true;
				return;
			}
			i = (size_t)(e - p) + 1;
		} else if (k == '#') {
			const char *e = memchr(p + i, ')', n - i);

			if (!e) {
				ps->fail = true;
				return;
			}
			ps->i = (size_t)(e - p) + 1;
			set_exact1(ps, out, "", 0);
			set_exact1(ps, lead, "", 0);
			return;
		} else {
			ps->fail = true;   /* options, conditionals, recursion, callouts, (?P=..) */
			return;
		}
	}
	ps->i = i;
	parse_alt(ps, out, lead, depth + 1);
	if (ps->fail || ps->i >= n || p[ps->i] != ')') {
		ps->fail = true;
		return;
	}
	ps->i++;
	if (zero_width) {
		set_exact1(ps, out, "", 0);
		set_exact1(ps, lead, "", 0);
	}
}

/* An escape at p[i] == '\\'. */
static void parse_escape(struct an_parser *ps, struct aset *out)
{
	const char *p = ps->p;
	size_t n = ps->n, i = ps->i;
	unsigned char d;
	uint32_t cp;

	if (i + 1 >= n) {
		ps->fail = true;
		return;
	}
	d = (unsigned char)p[i + 1];
	if (d >= 0x80) {
		size_t clen = utf8_seq(p, n, i + 1, &cp);

		lit_char(ps, out, i + 1, clen, cp);
		ps->i = i + 1 + clen;
		return;
	}
	if (!((d >= '0' && d <= '9') || (d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z'))) {
		lit_char(ps, out, i + 1, 1, d);
		ps->i = i + 2;
		return;
	}
	ps->i = i + 2;
	if (strchr("bBAzZ", d)) {
		set_exact1(ps, out, "", 0);
	} else if (d == 's') {
		/* in normalized text every white space is " " or "\n" (normalize.c; test_normalize
		 * checks every code point \s matches) */
		set_exact1(ps, out, " ", 1);
		if (set_add(out, "\n", 1) < 0)
			ps->oom = true;
	} else if (strchr("sSdDwWhHvVRXntrfea", d) || (d == 'N' && (i + 2 >= n || p[i + 2] != '{'))) {
		set_any(out);
	} else if ((d == 'p' || d == 'P') && i + 2 < n) {
		if (p[i + 2] == '{') {
			const char *e = memchr(p + i + 2, '}', n - i - 2);

			if (!e) {
				ps->fail = true;
				return;
			}
			ps->i = (size_t)(e - p) + 1;
		} else {
			ps->i = i + 3;
		}
		set_any(out);
	} else {
		ps->fail = true;       /* \Q \E \G \K \x \o \c \g \k digits ...: not worth the risk */
	}
}

/* One atom and its quantifier: its anchors (out) and its leads. */
static void parse_piece(struct an_parser *ps, struct aset *out, struct aset *lead, int depth)
{
	const char *p = ps->p;
	unsigned char c = (unsigned char)p[ps->i];
	long min, max;

	if (c == '(') {
		parse_group(ps, out, lead, depth);
	} else if (c == '[') {
		skip_class(ps);
		set_any(out);
	} else if (c == '\\') {
		parse_escape(ps, out);
	} else if (c == '.') {
		ps->i++;
		set_any(out);
	} else if (c == '^' || c == '$') {
		ps->i++;
		set_exact1(ps, out, "", 0);
	} else if (c == '*' || c == '+' || c == '?' || c == '{') {
		ps->fail = true;       /* a quantifier with nothing before it, or a literal "{" */
		return;
	} else {
		uint32_t cp;
		size_t clen = utf8_seq(p, ps->n, ps->i, &cp);

		lit_char(ps, out, ps->i, clen, cp);
		ps->i += clen;
	}
	if (c != '(')
		set_copy(ps, lead, out);   /* an atom: what it matches is what it starts with */
	if (ps->fail || !quantifier(ps, &min, &max))
		return;
	lead_quantify(ps, lead, min, max);
	if (max == 0) {
		set_exact1(ps, out, "", 0);
	} else if (min == 0) {
		if (max == 1 && out->exact && out->n < AN_MAX_SET) {
			if (set_add(out, "", 0) < 0)
				ps->oom = true;
		} else {
			set_any(out);
		}
	} else if (!(min == 1 && max == 1)) {
		set_to_anchors(out);
	}
}

/* A sequence up to "|", ")" or the end: the exact run being built (cur) and the best anchor
 * set of the runs and pieces before it (best). Exact all along: the exact set. */
static void parse_seq(struct an_parser *ps, struct aset *out, struct aset *lead, int depth)
{
	struct aset best = { .any = true }, cur = { 0 };
	struct lead_seq ls = { 0 };
	bool all_exact = true;

	set_exact1(ps, &cur, "", 0);
	set_exact1(ps, &ls.pre, "", 0);
	while (ps->i < ps->n && !ps->fail && !ps->oom && ps->p[ps->i] != '|' && ps->p[ps->i] != ')') {
		struct aset piece = { 0 }, pl = { 0 };

		parse_piece(ps, &piece, &pl, depth);
		lead_seq_feed(ps, &ls, &pl);
		set_clear(&pl);
		if (exact_product(ps, &cur, &piece))
			continue;
		all_exact = false;
		keep_better(&best, &cur);
		if (piece.exact) {
			set_move(&cur, &piece);
		} else {
			keep_better(&best, &piece);
			set_exact1(ps, &cur, "", 0);
		}
	}
	lead_seq_end(ps, &ls, lead);
	if (all_exact) {
		set_move(out, &cur);
		set_clear(&best);
		return;
	}
	keep_better(&best, &cur);
	set_move(out, &best);
}

static void parse_alt(struct an_parser *ps, struct aset *out, struct aset *lead, int depth)
{
	parse_seq(ps, out, lead, depth);
	while (ps->i < ps->n && !ps->fail && !ps->oom && ps->p[ps->i] == '|') {
		struct aset branch = { 0 }, bl = { 0 };

		ps->i++;
		parse_seq(ps, &branch, &bl, depth);
		set_alt(ps, out, &branch);
		lead_alt(ps, lead, &bl);
	}
}

int rules_anchors_compute(struct rule *r, const char *np, size_t n)
{
	struct an_parser ps = { .p = np, .n = n, .caseless = (r->options & PCRE2_CASELESS) != 0 };
	struct aset s = { 0 }, lead = { 0 };
	struct aset *use = &s;

	r->lead = false;
	if (r->options & PCRE2_EXTENDED)
		return 0;
	parse_alt(&ps, &s, &lead, 0);
	if (ps.oom) {
		set_clear(&s);
		set_clear(&lead);
		return -1;
	}
	if (ps.fail || ps.i != n) {
		set_clear(&s);
		set_clear(&lead);
		return 0;
	}
	/* Leads, when there are good ones, are anchors too (every match contains its lead), and
	 * they also say where a match can start (match.c tries only there). */
	lead_of_exact(&lead);
	if (!lead.any && !lead.opt && lead.n && set_score(&lead) >= AN_MIN_BYTES) {
		use = &lead;
		r->lead = true;
	} else {
		set_to_anchors(&s);
		if (set_score(&s) < AN_MIN_BYTES) {
			set_clear(&s);
			set_clear(&lead);
			return 0;
		}
	}
	/* Caseless scanning lowercases ASCII: so must the anchors of case-sensitive rules. */
	for (size_t k = 0; k < use->n; k++)
		util_ascii_lower(use->v[k]);
	r->anchors = use->v;
	r->anchor_len = use->len;
	r->n_anchors = use->n;
	memset(use, 0, sizeof(*use));
	set_clear(&s);
	set_clear(&lead);
	return 0;
}

/* ---- Aho-Corasick ------------------------------------------------------------------------- */

struct ac_node {
	uint32_t fail;
	uint32_t out;          /* nearest accepting state on the fail chain, itself included; 0 none */
	uint32_t lout;         /* the same, among states whose anchor is a lead of some rule */
	int32_t pat;           /* anchor id accepted here, or -1 */
};

struct ac {
	uint32_t root[256];    /* child of the root per (lowercased) byte; 0 = stay at the root */
	struct ac_node *node;
	size_t n_node, cap_node;
	uint64_t *ekey;        /* edges: key (state << 8 | byte) + 1, 0 = empty */
	uint32_t *eval;
	size_t ecap, n_edge;   /* ecap: a power of two */
	size_t n_pat;
	uint32_t *pat_off;     /* rules of anchor id k: pat_rule[pat_off[k] .. pat_off[k + 1]) */
	uint32_t *pat_rule;
	uint32_t *pat_len;     /* bytes of anchor id k */
};

struct rules_prefilter {
	struct ac *ac[RULES_TARGET_COUNT];
};

static inline unsigned char ascii_lower(unsigned char c)
{
	return (unsigned char)((unsigned)c - 'A' < 26u ? c + ('a' - 'A') : c);
}

static size_t edge_slot(const struct ac *a, uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & (a->ecap - 1);
}

static uint32_t edge_get(const struct ac *a, uint32_t s, unsigned char c)
{
	uint64_t key = (((uint64_t)s << 8) | c) + 1;

	for (size_t k = edge_slot(a, key);; k = (k + 1) & (a->ecap - 1)) {
		if (a->ekey[k] == key)
			return a->eval[k];
		if (!a->ekey[k])
			return 0;
	}
}

static int edge_grow(struct ac *a)
{
	size_t ncap = a->ecap ? a->ecap * 2 : 1024, oc = a->ecap;
	uint64_t *ok = a->ekey, *nk = calloc(ncap, sizeof(*nk));
	uint32_t *ov = a->eval, *nv = calloc(ncap, sizeof(*nv));

	if (!nk || !nv) {
		free(nk);
		free(nv);
		return -1;
	}
	a->ekey = nk;
	a->eval = nv;
	a->ecap = ncap;
	for (size_t i = 0; i < oc; i++)
		if (ok[i]) {
			size_t k = edge_slot(a, ok[i]);

			while (nk[k])
				k = (k + 1) & (ncap - 1);
			nk[k] = ok[i];
			nv[k] = ov[i];
		}
	free(ok);
	free(ov);
	return 0;
}

static int64_t node_new(struct ac *a)
{
	if (a->n_node == a->cap_node) {
		size_t ncap = a->cap_node ? a->cap_node * 2 : 256;
		struct ac_node *nv;

		if (ncap > UINT32_MAX)
			return -1;
		nv = realloc(a->node, ncap * sizeof(*nv));
		if (!nv)
			return -1;
		a->node = nv;
		a->cap_node = ncap;
	}
	a->node[a->n_node] = (struct ac_node){ .pat = -1 };
	return (int64_t)a->n_node++;
}

/* Insert s; returns its anchor id (shared by equal strings) or -1 when out of memory. */
static int64_t ac_insert(struct ac *a, const char *s, size_t len)
{
	uint32_t st = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		uint32_t nx = st ? edge_get(a, st, c) : a->root[c];

		if (!nx) {
			int64_t v = node_new(a);

			if (v < 0)
				return -1;
			nx = (uint32_t)v;
			if (st == 0) {
				a->root[c] = nx;
			} else {
				uint64_t key = (((uint64_t)st << 8) | c) + 1;
				size_t k;

				if ((a->n_edge + 1) * 2 > a->ecap && edge_grow(a) < 0)
					return -1;
				k = edge_slot(a, key);
				while (a->ekey[k])
					k = (k + 1) & (a->ecap - 1);
				a->ekey[k] = key;
				a->eval[k] = nx;
				a->n_edge++;
			}
		}
		st = nx;
	}
	if (a->node[st].pat < 0)
		a->node[st].pat = (int32_t)a->n_pat++;
	return a->node[st].pat;
}

static uint32_t ac_next(const struct ac *a, uint32_t s, unsigned char c)
{
	for (;;) {
		uint32_t v = s ? edge_get(a, s, c) : a->root[c];

		if (v || !s)
			return v;
		s = a->node[s].fail;
	}
}

/* Fail and output links, breadth first (children are found through the edge table). */
static int ac_link(struct ac *a)
{
	uint32_t *queue = malloc(a->n_node * sizeof(*queue)), *coff = NULL, *cl = NULL;
	unsigned char *cb = NULL;
	size_t qh = 0, qt = 0;

	/* children lists per state, from the edge table (counting sort) */
	coff = calloc(a->n_node + 1, sizeof(*coff));
	cl = malloc((a->n_edge + 1) * sizeof(*cl));
	cb = malloc(a->n_edge + 1);
	if (!queue || !coff || !cl || !cb)
		goto oom;
	for (size_t k = 0; k < a->ecap; k++)
		if (a->ekey[k])
			coff[((a->ekey[k] - 1) >> 8) + 1]++;
	for (size_t s = 0; s < a->n_node; s++)
		coff[s + 1] += coff[s];
	{
		uint32_t *fill = calloc(a->n_node, sizeof(*fill));

		if (!fill)
			goto oom;
		for (size_t k = 0; k < a->ecap; k++)
			if (a->ekey[k]) {
				size_t s = (size_t)((a->ekey[k] - 1) >> 8);

				cl[coff[s] + fill[s]] = a->eval[k];
				cb[coff[s] + fill[s]++] = (unsigned char)((a->ekey[k] - 1) & 0xFF);
			}
		free(fill);
	}
	for (int c = 0; c < 256; c++)
		if (a->root[c]) {
			uint32_t v = a->root[c];

			a->node[v].fail = 0;
			a->node[v].out = a->node[v].pat >= 0 ? v : 0;
			queue[qt++] = v;
		}
	while (qh < qt) {
		uint32_t u = queue[qh++];

		for (uint32_t e = coff[u]; e < coff[u + 1]; e++) {
			uint32_t v = cl[e], f = ac_next(a, a->node[u].fail, cb[e]);

			a->node[v].fail = f;
			a->node[v].out = a->node[v].pat >= 0 ? v : a->node[f].out;
			queue[qt++] = v;
		}
	}
	free(queue);
	free(coff);
	free(cl);
	free(cb);
	return 0;
oom:
	free(queue);
	free(coff);
	free(cl);
	free(cb);
	return -1;
}

static void ac_free(struct ac *a)
{
	if (!a)
		return;
	free(a->node);
	free(a->ekey);
	free(a->eval);
	free(a->pat_off);
	free(a->pat_rule);
	free(a->pat_len);
	free(a);
}

/* The automaton of target t over the rules' anchors, with the anchor -> rules lists. */
/* Anchor lengths, and each state's nearest lead state on its fail chain (lout): the scan
 * walks that chain at every position to record where the leads occur. */
static int ac_leads(const struct ruleset *rs, struct ac *a, const uint32_t *ids,
		    const uint32_t *len_of, size_t n_ids)
{
	unsigned char *is_lead = calloc(a->n_pat + 1, 1);

	a->pat_len = calloc(a->n_pat + 1, sizeof(*a->pat_len));
	if (!is_lead || !a->pat_len) {
		free(is_lead);
		return -1;
	}
	for (size_t k = 0; k < n_ids; k++)
		a->pat_len[ids[k]] = len_of[k];
	for (size_t id = 0; id < a->n_pat; id++)
		for (uint32_t e = a->pat_off[id]; e < a->pat_off[id + 1]; e++)
			if (rs->rules[a->pat_rule[e]].lead)
				is_lead[id] = 1;
	/* fail links lead to shallower states: at most AN_MAX_LEN steps per state */
	for (size_t v = 1; v < a->n_node; v++) {
		uint32_t u = (uint32_t)v;

		while (u && !(a->node[u].pat >= 0 && is_lead[a->node[u].pat]))
			u = a->node[u].fail;
		a->node[v].lout = u;
	}
	free(is_lead);
	return 0;
}

static int ac_build(const struct ruleset *rs, enum rules_target t, struct ac **out)
{
	struct ac *a = calloc(1, sizeof(*a));
	uint32_t *ids = NULL, *rule_of = NULL, *len_of = NULL;
	size_t n_ids = 0, total = 0;

	*out = NULL;
	for (size_t i = 0; i < rs->n_rules; i++)
		if (rs->rules[i].target == t)
			total += rs->rules[i].n_anchors;
	if (!total) {
		free(a);
		return 0;
	}
	ids = malloc(total * sizeof(*ids));
	rule_of = malloc(total * sizeof(*rule_of));
	len_of = malloc(total * sizeof(*len_of));
	if (!a || !ids || !rule_of || !len_of || node_new(a) < 0 || edge_grow(a) < 0)
		goto oom;
	for (size_t i = 0; i < rs->n_rules; i++) {
		const struct rule *r = &rs->rules[i];

		for (size_t k = 0; r->target == t && k < r->n_anchors; k++) {
			int64_t id = ac_insert(a, r->anchors[k], r->anchor_len[k]);

			if (id < 0)
				goto oom;
			ids[n_ids] = (uint32_t)id;
			len_of[n_ids] = (uint32_t)r->anchor_len[k];
			rule_of[n_ids++] = (uint32_t)i;
		}
	}
	if (ac_link(a) < 0)
		goto oom;
	a->pat_off = calloc(a->n_pat + 1, sizeof(*a->pat_off));
	a->pat_rule = malloc(n_ids * sizeof(*a->pat_rule));
	if (!a->pat_off || !a->pat_rule)
		goto oom;
	for (size_t k = 0; k < n_ids; k++)
		a->pat_off[ids[k] + 1]++;
	for (size_t k = 0; k < a->n_pat; k++)
		a->pat_off[k + 1] += a->pat_off[k];
	{
		uint32_t *fill = calloc(a->n_pat + 1, sizeof(*fill));

		if (!fill)
			goto oom;
		for (size_t k = 0; k < n_ids; k++)
			a->pat_rule[a->pat_off[ids[k]] + fill[ids[k]]++] = rule_of[k];
		free(fill);
	}
	if (ac_leads(rs, a, ids, len_of, n_ids) < 0)
		goto oom;
	free(ids);
	free(rule_of);
	free(len_of);
	*out = a;
	return 0;
oom:
	free(ids);
	free(rule_of);
	free(len_of);
	ac_free(a);
	return -1;
}

int rules_prefilter_build(struct ruleset *rs)
{
	rs->prefilter = calloc(1, sizeof(*rs->prefilter));
	if (!rs->prefilter)
		return -1;
	for (int t = 0; t < RULES_TARGET_COUNT; t++)
		if (t != RULES_TARGET_HEADER && ac_build(rs, (enum rules_target)t, &rs->prefilter->ac[t]) < 0)
			return -1;
	return 0;
}

void rules_prefilter_free(struct rules_prefilter *pf)
{
	if (!pf)
		return;
	for (int t = 0; t < RULES_TARGET_COUNT; t++)
		ac_free(pf->ac[t]);
	free(pf);
}

bool rules_prefilter_has(const struct ruleset *rs, enum rules_target t)
{
	return rs->prefilter && t >= 0 && t < RULES_TARGET_COUNT && rs->prefilter->ac[t];
}

/* Grow the per-rule scratch to n rules (counts start at 0). */
static int scan_rules_cap(struct rules_scan *sc, size_t n)
{
	uint32_t *c, *o;

	if (sc->rcap >= n)
		return 0;
	c = calloc(n, sizeof(*c));
	o = calloc(n + 1, sizeof(*o));
	if (!c || !o) {
		free(c);
		free(o);
		return -1;
	}
	free(sc->lead_n);
	free(sc->lead_off);
	sc->lead_n = c;
	sc->lead_off = o;
	sc->rcap = n;
	return 0;
}

int rules_scan_begin(struct rules_scan *sc, size_t n_rules)
{
	if (scan_rules_cap(sc, n_rules) < 0)
		return -1;
	if (n_rules)
		memset(sc->lead_n, 0, n_rules * sizeof(*sc->lead_n));
	sc->np = 0;
	sc->grouped = false;
	sc->n_rules = n_rules;
	return 0;
}

/* Record that lead rule r may start at pos; a rule past RULES_LEAD_MAX_POS places (or all rules
 * once the pairs are full) becomes ok = 2: "occurs, places unknown" (match.c then scans). */
static void scan_lead(struct rules_scan *sc, unsigned char *ok, uint32_t r, uint32_t pos)
{
	if (ok[r] == 2)
		return;
	if (sc->lead_n[r] >= RULES_LEAD_MAX_POS) {
		ok[r] = 2;
		return;
	}
	if (sc->np == sc->pcap) {
		size_t ncap = sc->pcap ? sc->pcap * 2 : 256;
		uint32_t *nr, *np;

		if (ncap > RULES_LEAD_MAX_PAIRS) {
			ok[r] = 2;
			return;
		}
		nr = realloc(sc->p_rule, ncap * sizeof(*nr));
		if (nr)
			sc->p_rule = nr;
		np = nr ? realloc(sc->p_pos, ncap * sizeof(*np)) : NULL;
		if (np)
			sc->p_pos = np;
		if (!nr || !np) {
			ok[r] = 2;    /* no memory for places: the rule is scanned whole */
			return;
		}
		sc->pcap = ncap;
	}
	sc->p_rule[sc->np] = r;
	sc->p_pos[sc->np++] = pos;
	sc->lead_n[r]++;
}

int rules_prefilter_scan(const struct ruleset *rs, enum rules_target t, const char *s, size_t len,
			 struct rules_scan *sc, unsigned char *ok)
{
	const struct ac *a;
	size_t nh = 0;
	uint32_t st = 0;

	if (!rules_prefilter_has(rs, t))
		return 0;
	a = rs->prefilter->ac[t];
	if (sc->cap < a->n_pat) {
		unsigned char *m = calloc(a->n_pat, 1);
		uint32_t *h = malloc(a->n_pat * sizeof(*h));

		if (!m || !h) {
			free(m);
			free(h);
			return -1;
		}
		free(sc->mark);
		free(sc->hits);
		sc->mark = m;
		sc->hits = h;
		sc->cap = a->n_pat;
	}
	if (sc->n_rules < rs->n_rules && rules_scan_begin(sc, rs->n_rules) < 0)
		return -1;
	sc->grouped = false;
	for (size_t i = 0; i < len; i++) {
		st = ac_next(a, st, ascii_lower((unsigned char)s[i]));
		/* Every place a lead ends: the rules it leads may start at its first byte. */
		for (uint32_t u = a->node[st].lout; u; u = a->node[a->node[u].fail].lout) {
			uint32_t id = (uint32_t)a->node[u].pat;

			for (uint32_t e = a->pat_off[id]; e < a->pat_off[id + 1]; e++)
				if (rs->rules[a->pat_rule[e]].lead)
					scan_lead(sc, ok, a->pat_rule[e], (uint32_t)(i + 1 - a->pat_len[id]));
		}
		/* Everything on an output chain below a marked anchor was marked with it. */
		for (uint32_t u = a->node[st].out; u; u = a->node[a->node[u].fail].out) {
			uint32_t id = (uint32_t)a->node[u].pat;

			if (sc->mark[id])
				break;
			sc->mark[id] = 1;
			sc->hits[nh++] = id;
		}
	}
	for (size_t k = 0; k < nh; k++) {
		uint32_t id = sc->hits[k];

		sc->mark[id] = 0;
		for (uint32_t e = a->pat_off[id]; e < a->pat_off[id + 1]; e++)
			if (!ok[a->pat_rule[e]])
				ok[a->pat_rule[e]] = 1;
	}
	return 0;
}

/* Group the recorded places by rule (counting sort), each rule's sorted and without repeats. */
static int scan_group(struct rules_scan *sc)
{
	uint32_t *pos, *fill;
	size_t n = sc->n_rules;

	if (sc->gcap < sc->np) {
		uint32_t *g = malloc((sc->np ? sc->np : 1) * sizeof(*g));

		if (!g)
			return -1;
		free(sc->grp);
		sc->grp = g;
		sc->gcap = sc->np;
	}
	pos = sc->grp;
	sc->lead_off[0] = 0;
	for (size_t r = 0; r < n; r++)
		sc->lead_off[r + 1] = sc->lead_off[r] + sc->lead_n[r];
	fill = sc->lead_n;   /* reused as fill counters: lead_n is rebuilt below */
	memset(fill, 0, n * sizeof(*fill));
	for (size_t k = 0; k < sc->np; k++) {
		uint32_t r = sc->p_rule[k];

		pos[sc->lead_off[r] + fill[r]++] = sc->p_pos[k];
	}
	for (size_t r = 0; r < n; r++) {
		uint32_t *v = pos + sc->lead_off[r], m = fill[r], w = 0;

		for (uint32_t i = 1; i < m; i++) {      /* insertion sort: a few places, nearly sorted */
			uint32_t x = v[i], j = i;

			while (j > 0 && v[j - 1] > x) {
				v[j] = v[j - 1];
				j--;
			}
			v[j] = x;
		}
		for (uint32_t i = 0; i < m; i++)
			if (!w || v[w - 1] != v[i])
				v[w++] = v[i];
		sc->lead_n[r] = w;
	}
	sc->grouped = true;
	return 0;
}

int rules_scan_leads(struct rules_scan *sc, size_t rule, const uint32_t **pos, size_t *n)
{
	if (!sc->grouped && scan_group(sc) < 0)
		return -1;
	if (rule >= sc->n_rules) {
		*pos = NULL;
		*n = 0;
		return 0;
	}
	*pos = sc->grp + sc->lead_off[rule];
	*n = sc->lead_n[rule];
	return 0;
}

void rules_scan_free(struct rules_scan *sc)
{
	free(sc->mark);
	free(sc->hits);
	free(sc->lead_n);
	free(sc->lead_off);
	free(sc->p_rule);
	free(sc->p_pos);
	free(sc->grp);
	memset(sc, 0, sizeof(*sc));
}

/* ASCII-caseless memmem for the anchors of header rules. */
bool rules_anchors_in(const struct rule *r, const char *s, size_t len)
{
	for (size_t k = 0; k < r->n_anchors; k++) {
		const char *a = r->anchors[k];
		size_t al = r->anchor_len[k];

		for (size_t i = 0; al <= len && i <= len - al; i++) {
			size_t j = 0;

			while (j < al && ascii_lower((unsigned char)s[i + j]) == (unsigned char)a[j])
				j++;
			if (j == al)
				return true;
		}
	}
	return false;
}
