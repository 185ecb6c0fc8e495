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
 *   other classes, . , \w \S \p{..} ...: nothing (a small class of plain characters: its
 *                   members, see LEADS; \d is [0-9] after normalize_pattern).
 * It gives up on the whole rule (no prefilter: the rule always runs) for anything it does not
 * fully understand: the x flag, inline options (?i), conditionals, recursion, callouts, verbs,
 * backreferences and numeric escapes (\1 \g \k \x \o \c), \Q..\E, \K, a "{" that is not a
 * quantifier, nesting deeper than AN_MAX_DEPTH. A rule whose best set has a string shorter than
 * AN_MIN_BYTES gets no prefilter either (a short anchor skips nothing).
 *
 * LEADS  The same walk also keeps, for every piece, the strings that every match of it STARTS
 * with, each marked "complete" when it is a whole match of the piece (so that what follows can
 * be appended: "no\s*receipt" -> {"no ", "no\n", "noreceipt"}); "" complete means the piece
 * may match nothing. An atom's leads are its exact set; a sequence appends each piece's leads
 * to its complete strings, and stops when none is left; an alternation is the union; x? adds
 * "", x* x{n,m} leave their strings incomplete, x+ of a small x is spelled out (x, xx, xxx...:
 * ls_plus); a piece that proves nothing leaves them incomplete too. Leads stop at AN_LEAD_MAX
 * bytes. A sequence whose leads would grow past AN_MAX_SET keeps the ones it has when they are
 * good (whole words), else they are cut to shorter strings (ls_shrink); a lead that has another
 * as its prefix is dropped (ls_minimize). When the leads of the whole pattern are good anchors (none empty;
 * each at least AN_MIN_BYTES, or with a digit in it, since digits are rare in prose), they ARE the
 * rule's anchors and r->lead is set: the scan then also records where each lead occurs, and
 * match.c tries the rule's anchored code at those places only, instead of a search of the whole
 * text (the leftmost match starts at one of them). 210 of the 212 shipped rules and 967 of
 * 1,000 generated ones have leads. A small class of plain characters (['’], [£$€], [0-9]) is
 * the exact set of its members, for anchors and leads alike.
 *
 * WORD START  A rule that is one branch starting with \b, all of whose leads start with an
 * ASCII word character, cannot match right after an ASCII letter, digit or "_" (\b fails
 * there in every PCRE2 mode): the scan does not record such places for it (leads_word_start).
 * Its leads may then be as short as AN_MIN_WORD_BYTES: "\b(?:do|se|order)\b" tries "do" and
 * "se" at the starts of words only, where it used to be searched through the whole text (33 of
 * the 1,000 generated rules were such word lists, and took a quarter of the matching time).
 *
 * ALSO  A rule whose pattern is one branch has, besides its anchors, every other set its top
 * level cannot match without (an exact run, or a piece's anchors: "\bfee\s+(?:\w+\s+){0,2}?
 * money\b" needs "fee " and "money"). The best of them that the anchors do not already imply
 * (some anchor without any of its strings in it) is kept as r->also; the scan marks a rule only
 * when one of its anchors AND one of its also set occur (pick_also). Proximity rules of this
 * shape are common; of the 1,000 generated rules' ~127 runs per message, ~24 are saved.
 *
 * SPACE  Every text the rules see comes from normalize_text(), which turns a run of white space
 * into one " " or one "\n" (fuzz_normalize checks that no two white space characters follow each
 * other). So a white-space atom repeated (\s+, \s*, " +") matches at most one character here,
 * and for the leads the walk reads \s+ as \s and \s* as \s?: "i\s+have" leads with "i have",
 * where "i " alone would be too short to be worth anything. (Not for the anchors: their longer
 * exact strings would overflow the sets of alternations, and a set that overflows proves
 * nothing.) The scan reads "\n" as " " (scan_fold), so \s is the one string " " and a run of
 * \s does not double the strings of a set at every step.
 *
 * CASE  Caseless matching: ASCII letters are lowercased in the anchors and ASCII is lowercased
 * while scanning, so the prefilter does not depend on the text being case-folded at all (a
 * case-sensitive I rule is then filtered caselessly: more runs, never fewer). A non-ASCII
 * character of a caseless rule is used only when it is in a script without case (Arabic,
 * Indic, punctuation, CJK, emoji, ...); a cased one (Latin-1 letters, Greek, Cyrillic, ...)
 * proves nothing, because PCRE2 would match its other cases too.
 *
 * SCAN  rules_prefilter_scan() runs a text of one target once through that target's automaton
 * (the shallowest AC_DENSE_ROWS states have full rows over byte classes, fail links followed in
 * advance, so a text byte costs one lookup there; the deeper edges are in one open-addressing
 * hash of (state, byte); each state's nearest accepting suffix precomputed; on the bench's big
 * mails the rows halved the scan) and marks the rules any of whose anchors
 * occurs: linear in the text plus the anchors found. For lead rules it records every place a
 * lead occurs (at most RULES_LEAD_MAX_POS per rule: a rule with more is marked 2, "occurs,
 * places not kept", and searched as any other); rules_scan_leads() hands them out per rule,
 * sorted. Header rules are few and their texts short: rules_anchors_in() looks for their
 * anchors (and also set) one by one.
 *
 * OWNERSHIP  Anchors and the also set belong to their rule (freed by rules_rule_clear); the
 *            automata to the ruleset (rules_prefilter_free). struct rules_scan is per-thread
 *            scratch owned by its caller (rules_scan_free).
 * DIAGNOSTICS  None: giving up only means "no prefilter". Returns -1 only when out of memory.
 */
#include "rules_parse.h"
#include "util.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AN_MAX_SET 256        /* strings in one set; more proves nothing (or picks another side) */
#define AN_MAX_LEN 48         /* bytes of one exact string; a longer piece becomes anchors */
#define AN_MAX_DEPTH 64       /* group nesting followed; deeper: give up (bounded stack) */
#define AN_MIN_BYTES 3        /* shortest useful anchor */
#define AN_MIN_WORD_BYTES 2   /* ... and lead of a word-start rule (WORD START) */
#define AN_MAX_REQ 8          /* required sets of the top level kept for ALSO */
#define AN_LEAD_MAX 16        /* leads are not extended past this: more says little, and long
			       * leads only grow the automaton */

/* What the scan compares: ASCII lowercased, and "\n" read as " " (see SPACE). */
static inline unsigned char scan_fold(unsigned char c)
{
	return c == '\n' ? ' ' : (unsigned char)((unsigned)c - 'A' < 26u ? c + ('a' - 'A') : c);
}

/* ---- string sets -------------------------------------------------------------------------- */

struct aset {
	bool any;             /* proves nothing */
	bool exact;           /* v is every string the piece can match, else anchors */
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
	size_t top_branches;  /* branches of the pattern's top-level alternation */
	struct aset req[AN_MAX_REQ]; /* the top level's required sets, as anchors (ALSO) */
	size_t n_req;
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

/* A copy of src in dst (empty); -1 when out of memory. */
static int set_copy(struct aset *dst, const struct aset *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->any = src->any;
	dst->exact = src->exact;
	for (size_t k = 0; k < src->n; k++)
		if (set_add(dst, src->v[k], src->len[k]) < 0)
			return -1;
	return 0;
}

/* ALSO: a set the top-level sequence cannot match without (an exact run, or a piece's
 * anchors), kept when it is worth an anchor. depth 0 is the top level; whether it has one
 * branch only is known at the end (rules_anchors_compute). */
static void note_required(struct an_parser *ps, int depth, const struct aset *cand)
{
	struct aset c;

	if (depth != 0 || ps->n_req == AN_MAX_REQ)
		return;
	if (set_copy(&c, cand) < 0) {
		set_clear(&c);
		ps->oom = true;
		return;
	}
	set_to_anchors(&c);
	if (set_score(&c) < AN_MIN_BYTES) {
		set_clear(&c);
		return;
	}
	ps->req[ps->n_req++] = c;
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

static bool has_digit(const char *s, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (s[k] >= '0' && s[k] <= '9')
			return true;
	return false;
}

/* ---- leads (see LEADS in the file comment) -------------------------------------------------- */

/* A lead set: strings every match of a piece starts with. A string is "complete" when it is a
 * whole match of the piece, so that what follows the piece can be appended to it; "" complete
 * means the piece may match nothing. any: nothing is known. */
struct lset {
	bool any;
	size_t n, cap;
	char **v;
	size_t *len;
	bool *fin;            /* complete */
};

static void ls_clear(struct lset *l)
{
	for (size_t k = 0; k < l->n; k++)
		free(l->v[k]);
	free(l->v);
	free(l->len);
	free(l->fin);
	memset(l, 0, sizeof(*l));
}

static void ls_any(struct lset *l)
{
	ls_clear(l);
	l->any = true;
}

static void ls_move(struct lset *dst, struct lset *src)
{
	ls_clear(dst);
	*dst = *src;
	memset(src, 0, sizeof(*src));
}

#define LS_BUILD_MAX ((size_t)4 * AN_MAX_SET)

/* Append s (fin: complete) without looking for it first (ls_dedupe afterwards); past
 * LS_BUILD_MAX strings, or a string past AN_MAX_LEN, the set is any. */
static void ls_push(struct an_parser *ps, struct lset *l, const char *s, size_t len, bool fin)
{
	char *c;

	if (l->any)
		return;
	if (len > AN_MAX_LEN || l->n >= LS_BUILD_MAX) {
		ls_any(l);
		return;
	}
	if (l->n == l->cap) {
		size_t ncap = l->cap ? 2 * l->cap : 8;
		char **v = realloc(l->v, ncap * sizeof(*v));
		size_t *ln = v ? realloc(l->len, ncap * sizeof(*ln)) : NULL;
		bool *f = ln ? realloc(l->fin, ncap * sizeof(*f)) : NULL;

		if (v)
			l->v = v;
		if (ln)
			l->len = ln;
		if (f)
			l->fin = f;
		if (!f) {
			ps->oom = true;
			return;
		}
		l->cap = ncap;
	}
	c = malloc(len + 1);
	if (!c) {
		ps->oom = true;
		return;
	}
	memcpy(c, s, len);
	c[len] = '\0';
	l->v[l->n] = c;
	l->len[l->n] = len;
	l->fin[l->n++] = fin;
}

/* Add s (fin: complete). A string already there stays, complete only if both are (an
 * incomplete one says more: the match may go on in ways not known). For small sets: ls_then
 * and ls_alt, which make big ones, push and then dedupe. */
static void ls_add(struct an_parser *ps, struct lset *l, const char *s, size_t len, bool fin)
{
	if (l->any)
		return;
	for (size_t k = 0; k < l->n; k++)
		if (l->len[k] == len && !memcmp(l->v[k], s, len)) {
			l->fin[k] = l->fin[k] && fin;
			return;
		}
	ls_push(ps, l, s, len, fin);
}

/* One string of a set, for sorting. */
struct ls_ent {
	const char *s;
	size_t len, i;
};

/* Byte order, a prefix before what it starts; equal strings by their place in the set. */
static int ls_ent_cmp(const void *pa, const void *pb)
{
	const struct ls_ent *a = pa, *b = pb;
	int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);

	if (c)
		return c;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

/* The strings of l sorted (ls_ent_cmp); NULL when out of memory. The caller frees. */
static struct ls_ent *ls_sorted(struct an_parser *ps, const struct lset *l)
{
	struct ls_ent *e = malloc((l->n ? l->n : 1) * sizeof(*e));

	if (!e) {
		ps->oom = true;
		return NULL;
	}
	for (size_t k = 0; k < l->n; k++)
		e[k] = (struct ls_ent){ l->v[k], l->len[k], k };
	qsort(e, l->n, sizeof(*e), ls_ent_cmp);
	return e;
}

/* Remove the strings marked in drop, keeping the order of the others. */
static void ls_compact(struct lset *l, const bool *drop)
{
	size_t w = 0;

	for (size_t k = 0; k < l->n; k++) {
		if (drop[k]) {
			free(l->v[k]);
			continue;
		}
		l->v[w] = l->v[k];
		l->len[w] = l->len[k];
		l->fin[w++] = l->fin[k];
	}
	l->n = w;
}

#define LS_DEDUPE_SMALL 32

/* Merge equal strings (complete only if all were), keeping the first one's place. */
static void ls_dedupe(struct an_parser *ps, struct lset *l)
{
	struct ls_ent *e;
	bool *drop;

	if (l->any || l->n < 2)
		return;
	if (l->n <= LS_DEDUPE_SMALL) {
		/* few strings (the usual case): compare each with the ones kept before it */
		bool small[LS_DEDUPE_SMALL] = { false };

		for (size_t k = 1; k < l->n; k++)
			for (size_t j = 0; j < k && !small[k]; j++)
				if (!small[j] && l->len[j] == l->len[k] &&
				    !memcmp(l->v[j], l->v[k], l->len[k])) {
					l->fin[j] = l->fin[j] && l->fin[k];
					small[k] = true;
				}
		ls_compact(l, small);
		return;
	}
	e = ls_sorted(ps, l);
	drop = calloc(l->n, sizeof(*drop));
	if (!e || !drop) {
		free(e);
		free(drop);
		ps->oom = true;
		return;
	}
	for (size_t k = 1, first = 0; k < l->n; k++) {
		if (e[k].len == e[first].len && !memcmp(e[k].s, e[first].s, e[k].len)) {
			l->fin[e[first].i] = l->fin[e[first].i] && l->fin[e[k].i];
			drop[e[k].i] = true;
		} else {
			first = k;
		}
	}
	ls_compact(l, drop);
	free(e);
	free(drop);
}

/* How many distinct strings the sorted set e has when each is cut to at most cut bytes:
 * strings with the same first cut bytes are next to each other in byte order. */
static size_t ls_count_cut(const struct ls_ent *e, size_t n, size_t cut)
{
	size_t count = n ? 1 : 0;

	for (size_t k = 1; k < n; k++) {
		size_t a = e[k - 1].len < cut ? e[k - 1].len : cut, b = e[k].len < cut ? e[k].len : cut;

		count += a != b || memcmp(e[k - 1].s, e[k].s, a) != 0;
	}
	return count;
}

/* A set grown past AN_MAX_SET: cut every string to the longest length (at least AN_MIN_BYTES)
 * at which at most half of AN_MAX_SET distinct ones remain, cut ones incomplete. A lead's
 * prefix is a lead too, so this keeps the set true, only less precise. None: any. */
static void ls_shrink(struct an_parser *ps, struct lset *l)
{
	size_t lo = AN_MIN_BYTES, hi = AN_MAX_LEN;
	struct lset r = { 0 };
	struct ls_ent *e;

	if (l->any || l->n <= AN_MAX_SET)
		return;
	e = ls_sorted(ps, l);
	if (!e)
		return;
	if (ls_count_cut(e, l->n, lo) > AN_MAX_SET / 2) {
		free(e);
		ls_any(l);
		return;
	}
	while (lo < hi) {          /* the count only grows with the cut: the largest that fits */
		size_t mid = (lo + hi + 1) / 2;

		if (ls_count_cut(e, l->n, mid) <= AN_MAX_SET / 2)
			lo = mid;
		else
			hi = mid - 1;
	}
	free(e);
	for (size_t k = 0; k < l->n && !r.any; k++)
		ls_push(ps, &r, l->v[k], l->len[k] < lo ? l->len[k] : lo,
			l->len[k] <= lo && l->fin[k]);
	ls_dedupe(ps, &r);
	ls_move(l, &r);
}

static void ls_single(struct an_parser *ps, struct lset *l, const char *s, size_t len)
{
	ls_clear(l);
	ls_add(ps, l, s, len, true);
}

/* The leads of an atom from its anchor set: an exact set is whole matches, else nothing. */
static void ls_from_atom(struct an_parser *ps, struct lset *l, const struct aset *a)
{
	ls_clear(l);
	if (a->any || !a->exact) {
		l->any = true;
		return;
	}
	for (size_t k = 0; k < a->n; k++)
		ls_add(ps, l, a->v[k], a->len[k], true);
}

/* Every string incomplete (the piece may go on); an empty one then says nothing. */
static void ls_open(struct lset *l)
{
	for (size_t k = 0; !l->any && k < l->n; k++) {
		if (!l->len[k]) {
			ls_any(l);
			return;
		}
		l->fin[k] = false;
	}
}

/* a := a | b (b consumed) */
static void ls_alt(struct an_parser *ps, struct lset *a, struct lset *b)
{
	if (b->any)
		ls_any(a);
	for (size_t k = 0; !a->any && k < b->n; k++)
		ls_push(ps, a, b->v[k], b->len[k], b->fin[k]);
	ls_clear(b);
	ls_dedupe(ps, a);
	ls_shrink(ps, a);
}

/* s := s followed by a piece with leads l: incomplete strings stay, complete ones take each
 * lead of l appended (those of l that are complete stay complete). When that grows too big,
 * the complete strings are cut there (open): still leads, no longer extendable. */
/* Is every string at least min bytes long or with a digit in it (see ls_good)? */
static bool ls_all_good(const struct lset *l, size_t min)
{
	for (size_t k = 0; !l->any && k < l->n; k++)
		if (l->len[k] < min && !has_digit(l->v[k], l->len[k]))
			return false;
	return !l->any;
}

static void ls_then(struct an_parser *ps, struct lset *s, const struct lset *l)
{
	struct lset r = { 0 };

	if (s->any)
		return;
	if (l->any) {
		ls_open(s);
		return;
	}
	for (size_t i = 0; i < s->n && !r.any; i++) {
		if (!s->fin[i] || s->len[i] >= AN_LEAD_MAX) {
			ls_push(ps, &r, s->v[i], s->len[i], false);
			continue;
		}
		for (size_t j = 0; j < l->n && !r.any; j++) {
			char buf[2 * AN_MAX_LEN];
			size_t n = s->len[i] + l->len[j];

			memcpy(buf, s->v[i], s->len[i]);
			memcpy(buf + s->len[i], l->v[j], l->len[j]);
			/* long enough: the rest of the piece is left to PCRE2 */
			ls_push(ps, &r, buf, n > AN_LEAD_MAX ? AN_LEAD_MAX : n,
				n <= AN_LEAD_MAX && l->fin[j]);
		}
	}
	if (r.any) {
		ls_clear(&r);
		ls_open(s);
		return;
	}
	ls_dedupe(ps, &r);
	/* Too many: when the strings so far are good leads on their own (whole words, say), keep
	 * them as they are; cut the longer ones only when they are not (a short word before a
	 * big alternation: "i" or "we" before a list of verbs). */
	if (r.n > AN_MAX_SET && ls_all_good(s, AN_MIN_BYTES)) {
		ls_clear(&r);
		ls_open(s);
		return;
	}
	ls_shrink(ps, &r);
	if (r.any) {
		ls_clear(&r);
		ls_open(s);
		return;
	}
	ls_move(s, &r);
}

/* Does s still have a complete string (is the walk of a sequence worth going on)? */
static bool ls_extendable(const struct lset *s)
{
	for (size_t k = 0; !s->any && k < s->n; k++)
		if (s->fin[k])
			return true;
	return false;
}

/* Is x small enough to be spelled out under a + (x x x... as below)? Every string complete and
 * not empty, at most LS_PLUS_MAX of them. */
#define LS_PLUS_MAX 4
static bool ls_repeatable(const struct lset *l)
{
	if (l->any || !l->n || l->n > LS_PLUS_MAX)
		return false;
	for (size_t k = 0; k < l->n; k++)
		if (!l->fin[k] || !l->len[k])
			return false;
	return true;
}

/* x{1,max} (max -1: unbounded) of a small x: a match is x, xx, or starts with xxx, so the leads
 * are X and X.X complete and X.X.X incomplete (complete when max is 3): "f+u+c+k+" leads with
 * "fuck", "ffuck", "fffu"..., where "f" alone would be too short a lead to be any use. */
static void ls_plus(struct an_parser *ps, struct lset *l, long max)
{
	struct lset r = { 0 }, rep = { 0 };

	for (size_t k = 0; k < l->n; k++)
		ls_push(ps, &rep, l->v[k], l->len[k], true);
	for (long times = 1; times <= 3 && (max < 0 || times <= max) && !r.any; times++) {
		if (times > 1)
			ls_then(ps, &rep, l);
		if (times == 3 && max != 3)
			ls_open(&rep);
		for (size_t k = 0; !rep.any && k < rep.n; k++)
			ls_add(ps, &r, rep.v[k], rep.len[k], rep.fin[k]);
		if (rep.any)
			ls_any(&r);
	}
	ls_clear(&rep);
	ls_move(l, &r);
}

/* The leads of x quantified {min,max} (max -1: unbounded), from the leads of x. */
static void ls_quantify(struct an_parser *ps, struct lset *l, long min, long max)
{
	if (max == 0) {
		ls_single(ps, l, "", 0);
	} else if (min == 0) {
		if (max != 1)
			ls_open(l);       /* x* x{0,n}: x may repeat after any of its strings */
		if (!l->any)
			ls_add(ps, l, "", 0, true);
	} else if (min == 1 && max != 1 && ls_repeatable(l)) {
		ls_plus(ps, l, max);
	} else if (!(min == 1 && max == 1)) {
		ls_open(l);
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
	c = (char)scan_fold((unsigned char)c);
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

static void parse_alt(struct an_parser *ps, struct aset *out, struct lset *lead, int depth);

/* Past the class at p[i] == '['; gives up on anything odd. */
static void skip_class(struct an_parser *ps)
{
	long j = rules_skip_class(ps->p, ps->n, ps->i);

	if (j < 0)
		ps->fail = true;
	else
		ps->i = (size_t)j;
}

/* A class at p[i] == '[': a small one of plain members (['’], [£$€], [0-9]) is the exact set
 * of its characters, anything else (negation, POSIX names, escapes other than an escaped
 * punctuation character, ranges other than digits, more than AN_CLASS_MAX members) nothing. */
#define AN_CLASS_MAX 12

static void parse_class(struct an_parser *ps, struct aset *out)
{
	const char *p = ps->p;
	size_t n = ps->n, i = ps->i + 1;
	struct aset r = { .exact = true };
	bool plain = true;
	int members = 0;

	skip_class(ps);
	if (ps->fail) {
		set_any(out);
		return;
	}
	if (i < n && (p[i] == '^' || p[i] == ']'))
		plain = false;
	while (plain && i < ps->i - 1 && !ps->oom) {
		size_t clen = 1;
		uint32_t cp = (unsigned char)p[i];
		struct aset one = { 0 };

		if (p[i] == '\\') {
			if (i + 1 >= n || isalnum((unsigned char)p[i + 1]) || (unsigned char)p[i + 1] >= 0x80) {
				plain = false;
				break;
			}
			i++;
			cp = (unsigned char)p[i];
		} else if (p[i] == '[') {
			plain = false;       /* [:alpha:] and the like */
			break;
		} else if (i + 2 < ps->i - 1 && p[i + 1] == '-') {
			if (p[i] >= '0' && p[i] <= '9' && p[i + 2] >= p[i] && p[i + 2] <= '9') {
				for (char d = p[i]; d <= p[i + 2]; d++, members++)
					if (set_add(&r, &d, 1) < 0)
						ps->oom = true;
				i += 3;
				continue;
			}
			plain = false;
			break;
		} else if ((unsigned char)p[i] >= 0x80) {
			clen = utf8_seq(p, n, i, &cp);
		}
		lit_char(ps, &one, i, clen, cp);
		if (one.any || ++members > AN_CLASS_MAX) {
			set_clear(&one);
			plain = false;
			break;
		}
		if (set_add(&r, one.v[0], one.len[0]) < 0)
			ps->oom = true;
		set_clear(&one);
		i += clen;
	}
	if (!plain || !r.n || members > AN_CLASS_MAX) {
		set_clear(&r);
		set_any(out);
		return;
	}
	set_move(out, &r);
}

/* A group at p[i] == '('. */
static void parse_group(struct an_parser *ps, struct aset *out, struct lset *lead, int depth)
{
	const char *p = ps->p;
	size_t n = ps->n, i = ps->i + 1;
	bool zero_width = false;

	if (depth >= AN_MAX_DEPTH || (i < n && p[i] == '*')) {
		ps->fail = true;       /* too deep, or a verb / (*pla: ...) */
		return;
	}
	if (i < n && p[i] == '?') {
		char k = (char)(i + 1 < n ? p[i + 1] : '\0');

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
			ls_single(ps, lead, "", 0);
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
		ls_single(ps, lead, "", 0);
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
		 * checks every code point \s matches), and the scan reads "\n" as " " */
		set_exact1(ps, out, " ", 1);
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

/* Does this exact set match only white space (\s, " ", [ \n])? */
static bool set_is_space(const struct aset *s)
{
	if (s->any || !s->exact || !s->n)
		return false;
	for (size_t k = 0; k < s->n; k++)
		if (s->len[k] != 1 || (s->v[k][0] != ' ' && s->v[k][0] != '\n'))
			return false;
	return true;
}

/* One atom and its quantifier: its anchors (out) and its leads. */
static void parse_piece(struct an_parser *ps, struct aset *out, struct lset *lead, int depth)
{
	const char *p = ps->p;
	unsigned char c = (unsigned char)p[ps->i];
	long min, max;

	if (c == '(') {
		parse_group(ps, out, lead, depth);
	} else if (c == '[') {
		parse_class(ps, out);
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
		ls_from_atom(ps, lead, out);   /* an atom: what it matches is what it starts with */
	if (ps->fail || !quantifier(ps, &min, &max))
		return;
	/* Normalized text has no two white space characters in a row (a run is one " " or one
	 * "\n": see SPACE in the file comment), so \s+ is \s and \s* is \s? there. For the
	 * leads only: as anchors, the longer exact strings would overflow alternations. */
	ls_quantify(ps, lead, min,
		    min <= 1 && max != 0 && max != 1 && set_is_space(out) ? 1 : max);
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
static void parse_seq(struct an_parser *ps, struct aset *out, struct lset *lead, int depth)
{
	struct aset best = { .any = true }, cur = { 0 };
	bool all_exact = true;

	set_exact1(ps, &cur, "", 0);
	ls_single(ps, lead, "", 0);
	while (ps->i < ps->n && !ps->fail && !ps->oom && ps->p[ps->i] != '|' && ps->p[ps->i] != ')') {
		struct aset piece = { 0 };
		struct lset pl = { 0 };

		parse_piece(ps, &piece, &pl, depth);
		if (ls_extendable(lead))
			ls_then(ps, lead, &pl);
		ls_clear(&pl);
		if (exact_product(ps, &cur, &piece))
			continue;
		all_exact = false;
		note_required(ps, depth, &cur);
		keep_better(&best, &cur);
		if (piece.exact) {
			set_move(&cur, &piece);
		} else {
			note_required(ps, depth, &piece);
			keep_better(&best, &piece);
			set_exact1(ps, &cur, "", 0);
		}
	}
	if (all_exact) {
		set_move(out, &cur);
		set_clear(&best);
		return;
	}
	note_required(ps, depth, &cur);
	keep_better(&best, &cur);
	set_move(out, &best);
}

static void parse_alt(struct an_parser *ps, struct aset *out, struct lset *lead, int depth)
{
	if (depth == 0)
		ps->top_branches = 1;
	parse_seq(ps, out, lead, depth);
	while (ps->i < ps->n && !ps->fail && !ps->oom && ps->p[ps->i] == '|') {
		struct aset branch = { 0 };
		struct lset bl = { 0 };

		if (depth == 0)
			ps->top_branches++;
		ps->i++;
		parse_seq(ps, &branch, &bl, depth);
		set_alt(ps, out, &branch);
		ls_alt(ps, lead, &bl);
	}
}

/* Drop each lead that another lead is a prefix of: every match it starts also starts with the
 * shorter one, which the scan finds at the same place ("fuck" covers "fuckk"). */
static void ls_minimize(struct an_parser *ps, struct lset *l)
{
	bool *drop;

	if (l->any || l->n < 2)
		return;
	drop = calloc(l->n, sizeof(*drop));
	if (!drop) {
		ps->oom = true;
		return;
	}
	for (size_t k = 0; k < l->n; k++)
		for (size_t j = 0; j < l->n && !drop[k]; j++)
			drop[k] = j != k && l->len[j] < l->len[k] && !memcmp(l->v[j], l->v[k], l->len[j]);
	ls_compact(l, drop);
	free(drop);
}

/* Are these leads good anchors? Each at least AN_MIN_BYTES long (AN_MIN_WORD_BYTES for a
 * word-start rule, see WORD START), or with a digit in it: digits are rare in prose, so even
 * "3" or "$5" is a place worth trying, not a scan of every word ("\d+ din", "[$£]\s?\d+").
 * Not when nothing is known or a lead is empty. */
static bool ls_good(const struct lset *l, bool word_start)
{
	return !l->any && l->n && ls_all_good(l, word_start ? AN_MIN_WORD_BYTES : AN_MIN_BYTES);
}

static bool ascii_word(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* WORD START: does every match begin where \b holds, with one of these leads? So when the
 * whole pattern is one branch that starts with \b (not quantified), and every lead starts
 * with an ASCII word character: \b there needs a non-word character (or nothing) before the
 * match, and an ASCII letter, digit or "_" before a lead is a word character in every PCRE2
 * mode (UCP or not), so a lead right after one starts no match. */
static bool leads_word_start(const struct an_parser *ps, const struct lset *l)
{
	if (ps->top_branches != 1 || ps->n < 3 || ps->p[0] != '\\' || ps->p[1] != 'b' ||
	    (ps->p[2] && strchr("?*+{", ps->p[2])) || l->any || !l->n)
		return false;
	for (size_t k = 0; k < l->n; k++)
		if (!l->len[k] || !ascii_word((unsigned char)l->v[k][0]))
			return false;
	return true;
}

/* Does every string of a contain one of the strings of x? Then x says nothing a does not. */
static bool set_implied(char *const *a, const size_t *alen, size_t an, const struct aset *x)
{
	for (size_t k = 0; k < an; k++) {
		bool found = false;

		for (size_t j = 0; j < x->n && !found; j++)
			found = x->len[j] <= alen[k] && memmem(a[k], alen[k], x->v[j], x->len[j]);
		if (!found)
			return false;
	}
	return true;
}

/* ALSO: of the top level's required sets, the best one (as keep_better ranks them) that the
 * anchors do not already imply, moved to r->also. Only for a pattern of one branch: each
 * required set of a branch is required of the pattern only when it is the only one. */
static void pick_also(struct an_parser *ps, struct rule *r)
{
	long best_score = -1;
	size_t best = 0;

	if (ps->top_branches != 1 || !r->n_anchors)
		return;
	for (size_t k = 0; k < ps->n_req; k++) {
		long sc = set_score(&ps->req[k]);

		if (set_implied(r->anchors, r->anchor_len, r->n_anchors, &ps->req[k]))
			continue;
		if (sc > best_score || (sc == best_score && ps->req[k].n < ps->req[best].n)) {
			best_score = sc;
			best = k;
		}
	}
	if (best_score < AN_MIN_BYTES)
		return;
	r->also = ps->req[best].v;
	r->also_len = ps->req[best].len;
	r->n_also = ps->req[best].n;
	memset(&ps->req[best], 0, sizeof(ps->req[best]));
}

static void req_clear(struct an_parser *ps)
{
	for (size_t k = 0; k < ps->n_req; k++)
		set_clear(&ps->req[k]);
	ps->n_req = 0;
}

int rules_anchors_compute(struct rule *r, const char *np, size_t n)
{
	struct an_parser ps = { .p = np, .n = n, .caseless = (r->options & PCRE2_CASELESS) != 0 };
	struct aset s = { 0 };
	struct lset lead = { 0 };
	bool word_start;

	r->lead = r->lead_digit = r->lead_word = false;
	if (r->options & PCRE2_EXTENDED)
		return 0;
	parse_alt(&ps, &s, &lead, 0);
	if (ps.oom || ps.fail || ps.i != n) {
		set_clear(&s);
		ls_clear(&lead);
		req_clear(&ps);
		return ps.oom ? -1 : 0;
	}
	/* Leads, when there are good ones, are anchors too (every match contains its lead), and
	 * they also say where a match can start (match.c tries only there). An empty lead (the
	 * pattern may match "") makes the score 0. */
	ls_minimize(&ps, &lead);
	if (ps.oom) {
		set_clear(&s);
		ls_clear(&lead);
		req_clear(&ps);
		return -1;
	}
	word_start = leads_word_start(&ps, &lead);
	if (ls_good(&lead, word_start)) {
		r->lead = true;
		r->lead_word = word_start;
		for (size_t k = 0; k < lead.n && !r->lead_digit; k++)
			r->lead_digit = has_digit(lead.v[k], lead.len[k]);
		r->anchors = lead.v;
		r->anchor_len = lead.len;
		r->n_anchors = lead.n;
		free(lead.fin);
		memset(&lead, 0, sizeof(lead));
		set_clear(&s);
	} else {
		ls_clear(&lead);
		set_to_anchors(&s);
		if (set_score(&s) < AN_MIN_BYTES) {
			set_clear(&s);
			req_clear(&ps);
			return 0;
		}
		r->anchors = s.v;
		r->anchor_len = s.len;
		r->n_anchors = s.n;
		memset(&s, 0, sizeof(s));
	}
	pick_also(&ps, r);
	req_clear(&ps);
	/* Already folded as the scan reads text (lit_char applies scan_fold to every literal,
	 * those of case-sensitive rules too). */
	return ps.oom ? -1 : 0;
}

/* ---- Aho-Corasick ------------------------------------------------------------------------- */

struct ac_node {
	uint32_t fail;
	uint32_t out;          /* nearest accepting state on the fail chain, itself included; 0 none */
	uint32_t lout;         /* the same, among states whose anchor is a lead of some rule */
	int32_t pat;           /* anchor id accepted here, or -1 */
	uint32_t row;          /* its row in ac.dense, or AC_NO_ROW */
	uint32_t kid;          /* its only child, when kid_c >= 0 */
	int16_t kid_c;         /* the byte to it; AC_NO_KIDS, or AC_KIDS: several (in the hash) */
};

#define AC_NO_KIDS (-1)
#define AC_KIDS (-2)

#define AC_NO_ROW UINT32_MAX
#define AC_DENSE_ROWS 1024     /* shallowest states with a full transition row (see SCAN) */

struct ac {
	uint32_t root[256];    /* child of the root per (lowercased) byte; 0 = stay at the root */
	unsigned char cls[256]; /* class of each text byte (scan_fold applied); 0: in no anchor */
	uint32_t n_cls;
	uint32_t *dense;       /* row x class -> next state, fail links already followed */
	struct ac_node *node;
	size_t n_node, cap_node;
	uint64_t *ekey;        /* edges: key (state << 8 | byte) + 1, 0 = empty */
	uint32_t *eval;
	size_t ecap, n_edge;   /* ecap: a power of two */
	size_t n_pat;
	uint32_t *pat_off;     /* rules of anchor id k: pat_rule[pat_off[k] .. pat_off[k + 1]) */
	uint32_t *pat_rule;
	uint32_t *pat_len;     /* bytes of anchor id k */
	uint32_t *also_rule;   /* the rules with an ALSO set */
	size_t n_also_rule;
};

#define AC_ALSO 0x80000000u    /* in pat_rule: the anchor is one of the rule's ALSO set */

struct rules_prefilter {
	struct ac *ac[RULES_TARGET_COUNT];
};

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
	a->node[a->n_node] = (struct ac_node){ .pat = -1, .row = AC_NO_ROW, .kid_c = AC_NO_KIDS };
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
				if (a->node[st].kid_c == AC_NO_KIDS) {
					a->node[st].kid_c = c;
					a->node[st].kid = nx;
				} else {
					a->node[st].kid_c = AC_KIDS;
				}
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

/* The next state from s on text byte raw: a table lookup from a state with a row; from a deeper
 * one its edge (most deep states have one child, kept in the node; the others are in the hash),
 * then its fail chain until a state with a row (the root has one). */
static inline uint32_t ac_step(const struct ac *a, uint32_t s, unsigned char raw)
{
	unsigned char c;

	if (a->node[s].row != AC_NO_ROW)
		return a->dense[(size_t)a->node[s].row * a->n_cls + a->cls[raw]];
	c = scan_fold(raw);
	for (;;) {
		const struct ac_node *nd = &a->node[s];

		if (nd->kid_c == c)
			return nd->kid;
		if (nd->kid_c == AC_KIDS) {
			uint32_t v = edge_get(a, s, c);

			if (v)
				return v;
		}
		s = nd->fail;
		if (a->node[s].row != AC_NO_ROW)
			return a->dense[(size_t)a->node[s].row * a->n_cls + a->cls[raw]];
	}
}

/* Full transition rows for the root and the first AC_DENSE_ROWS - 1 states in breadth-first
 * order (bfs: every state but the root, by depth), over byte classes: the bytes of the anchors
 * each have one, every other byte is class 0 and leads back to the root. A state's fail target
 * is shallower, so its row is filled before the state's own. */
static int ac_dense(struct ac *a, const uint32_t *bfs, size_t n_bfs)
{
	/* anchors are folded (scan_fold: no A-Z, no "\n"), so at most 229 byte values are used:
	 * with class 0, the classes fit an unsigned char */
	unsigned char used[256] = { 0 }, rep[256];
	size_t rows = n_bfs + 1 < AC_DENSE_ROWS ? n_bfs + 1 : AC_DENSE_ROWS;

	for (int c = 0; c < 256; c++)
		used[c] = a->root[c] != 0;
	for (size_t k = 0; k < a->ecap; k++)
		if (a->ekey[k])
			used[(a->ekey[k] - 1) & 0xFF] = 1;
	a->n_cls = 1;
	rep[0] = 0;
	{
		unsigned char of[256] = { 0 };

		for (int c = 0; c < 256; c++)
			if (used[c]) {
				of[c] = (unsigned char)a->n_cls;
				rep[a->n_cls++] = (unsigned char)c;
			}
		for (int b = 0; b < 256; b++)
			a->cls[b] = of[scan_fold((unsigned char)b)];
	}
	a->dense = calloc(rows * a->n_cls, sizeof(*a->dense));
	if (!a->dense)
		return -1;
	for (size_t r = 0; r < rows; r++) {
		uint32_t st = r ? bfs[r - 1] : 0, *row = a->dense + r * a->n_cls;

		a->node[st].row = (uint32_t)r;
		for (uint32_t k = 1; k < a->n_cls; k++) {
			uint32_t v = st ? edge_get(a, st, rep[k]) : a->root[rep[k]];

			row[k] = v || !st ? v
				: a->dense[(size_t)a->node[a->node[st].fail].row * a->n_cls + k];
		}
	}
	return 0;
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
	if (ac_dense(a, queue, qt) < 0)
		goto oom;
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
	free(a->dense);
	free(a->ekey);
	free(a->eval);
	free(a->pat_off);
	free(a->pat_rule);
	free(a->also_rule);
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
			if (!(a->pat_rule[e] & AC_ALSO) && rs->rules[a->pat_rule[e]].lead)
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
	size_t n_ids = 0, total = 0, n_also = 0;

	*out = NULL;
	for (size_t i = 0; i < rs->n_rules; i++)
		if (rs->rules[i].target == t) {
			total += rs->rules[i].n_anchors + rs->rules[i].n_also;
			n_also += rs->rules[i].n_also > 0;
		}
	if (!total) {
		free(a);
		return 0;
	}
	ids = malloc(total * sizeof(*ids));
	rule_of = malloc(total * sizeof(*rule_of));
	len_of = malloc(total * sizeof(*len_of));
	if (!a || !ids || !rule_of || !len_of || node_new(a) < 0 || edge_grow(a) < 0)
		goto oom;
	a->also_rule = malloc((n_also ? n_also : 1) * sizeof(*a->also_rule));
	if (!a->also_rule)
		goto oom;
	for (size_t i = 0; i < rs->n_rules; i++) {
		const struct rule *r = &rs->rules[i];

		if (r->target != t)
			continue;
		if (r->n_also)
			a->also_rule[a->n_also_rule++] = (uint32_t)i;
		for (size_t k = 0; k < r->n_anchors + r->n_also; k++) {
			bool also = k >= r->n_anchors;
			const char *str = also ? r->also[k - r->n_anchors] : r->anchors[k];
			size_t len = also ? r->also_len[k - r->n_anchors] : r->anchor_len[k];
			int64_t id = ac_insert(a, str, len);

			if (id < 0)
				goto oom;
			ids[n_ids] = (uint32_t)id;
			len_of[n_ids] = (uint32_t)len;
			rule_of[n_ids++] = (uint32_t)i | (also ? AC_ALSO : 0);
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
	unsigned char *al;

	if (sc->rcap >= n)
		return 0;
	c = calloc(n, sizeof(*c));
	o = calloc(n + 1, sizeof(*o));
	al = calloc(n ? n : 1, 1);
	if (!c || !o || !al) {
		free(c);
		free(o);
		free(al);
		return -1;
	}
	free(sc->lead_n);
	free(sc->lead_off);
	free(sc->also);
	sc->lead_n = c;
	sc->lead_off = o;
	sc->also = al;
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
		st = ac_step(a, st, (unsigned char)s[i]);
		/* Every place a lead ends: the rules it leads may start at its first byte. */
		for (uint32_t u = a->node[st].lout; u; u = a->node[a->node[u].fail].lout) {
			uint32_t id = (uint32_t)a->node[u].pat, at = (uint32_t)(i + 1 - a->pat_len[id]);
			/* inside a word: no place for a word-start rule (WORD START) */
			bool inside = at > 0 && ascii_word((unsigned char)s[at - 1]);

			for (uint32_t e = a->pat_off[id]; e < a->pat_off[id + 1]; e++) {
				uint32_t ri = a->pat_rule[e];

				if (!(ri & AC_ALSO) && rs->rules[ri].lead && !(inside && rs->rules[ri].lead_word))
					scan_lead(sc, ok, ri, at);
			}
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
		for (uint32_t e = a->pat_off[id]; e < a->pat_off[id + 1]; e++) {
			uint32_t ri = a->pat_rule[e];

			if (ri & AC_ALSO)
				sc->also[ri & ~AC_ALSO] = 1;
			else if (!ok[ri])
				ok[ri] = 1;
		}
	}
	/* ALSO: a rule one of whose anchors occurs but none of its second set cannot match. */
	for (size_t k = 0; k < a->n_also_rule; k++) {
		uint32_t ri = a->also_rule[k];

		if (!sc->also[ri])
			ok[ri] = 0;
		sc->also[ri] = 0;
	}
	return 0;
}

/* Group the recorded places by rule (counting sort), each rule's sorted and without repeats. */
static int scan_group(struct rules_scan *sc)
{
	uint32_t *pos, *fill;
	size_t n = sc->n_rules;

	if (sc->gcap < sc->np || !sc->grp) {   /* never NULL: a lead rule may have no place */
		uint32_t *g = malloc((sc->np ? sc->np : 1) * sizeof(*g));

		if (!g)
			return -1;
		free(sc->grp);
		sc->grp = g;
		sc->gcap = sc->np ? sc->np : 1;
	}
	pos = sc->grp;
#ifdef __clang_analyzer__
	/* scan-build cannot follow the counting sort: each rule's first fill[r] places, the only
	 * ones read below, are written by the loop over the recorded places (lead_n[r] counted
	 * them when they were recorded). */
	memset(pos, 0, (sc->np ? sc->np : 1) * sizeof(*pos));
#endif
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
	free(sc->also);
	free(sc->p_rule);
	free(sc->p_pos);
	free(sc->grp);
	memset(sc, 0, sizeof(*sc));
}

/* Does s[0..len) contain one of the n strings v (ASCII caseless)? */
static bool any_in(char *const *v, const size_t *vlen, size_t n, const char *s, size_t len)
{
	for (size_t k = 0; k < n; k++) {
		const char *a = v[k];
		size_t al = vlen[k];

		for (size_t i = 0; al <= len && i <= len - al; i++) {
			size_t j = 0;

			while (j < al && scan_fold((unsigned char)s[i + j]) == (unsigned char)a[j])
				j++;
			if (j == al)
				return true;
		}
	}
	return false;
}

/* For the anchors (and ALSO set) of header rules. */
bool rules_anchors_in(const struct rule *r, const char *s, size_t len)
{
	return any_in(r->anchors, r->anchor_len, r->n_anchors, s, len) &&
	       (!r->n_also || any_in(r->also, r->also_len, r->n_also, s, len));
}
