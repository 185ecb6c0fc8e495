/*
 * rules_parse.c - the rule-file grammar: lines of "keyword value" grouped into rules
 *
 * The grammar is the one documented in rules.h (the exact spec). This file checks syntax, names,
 * categories, scores, targets, delimiters and flags; PCRE2 compilation happens in rules.c. Every
 * problem is reported (not only the first), each at the line and character column where it is.
 *
 * OWNERSHIP  Rules are appended to the builder, which owns them (see rules_parse.h).
 * DIAGNOSTICS  "file:line:col: text" errors in the builder's diag; never logs, never exits.
 */
#include "rules_parse.h"
#include "util.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The rule being read: fields are set as their keywords appear. */
struct pending {
	struct rule r;
	bool open;            /* a "rule" line started it */
	bool bad;             /* an error in it already: drop it silently at its end */
	bool named;           /* the name was valid */
	bool has_category, has_score, has_target, has_match, has_describe, has_group;
	int col;              /* column of the "rule" keyword */
};

/* One line being parsed: its text and where it sits. */
struct line {
	const char *file;
	const char *s;        /* start of the line */
	size_t len;
	int no;
};

int rules_utf8_chars(const char *s, size_t n)
{
	int c = 0;

	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			c++;
	return c;
}

static int col_of(const struct line *ln, const char *p)
{
	return rules_utf8_chars(ln->s, (size_t)(p - ln->s)) + 1;
}

void rules_error(struct rules_builder *b, const char *file, int line, int col, const char *fmt, ...)
{
	struct strbuf sb;
	va_list ap;

	b->errors++;
	if (b->errors > RULES_MAX_ERRORS)
		return;
	strbuf_init(&sb, 2048);
	va_start(ap, fmt);
	strbuf_vprintf(&sb, fmt, ap);
	va_end(ap);
	if (b->errors == RULES_MAX_ERRORS)
		strbuf_puts(&sb, " (too many errors: the rest are not reported)");
	diag_add(b->d, DIAG_ERROR, file, line, col, "%s", sb.s ? sb.s : "out of memory");
	strbuf_free(&sb);
}

void rules_rule_clear(struct rule *r)
{
	free(r->name);
	free(r->header_name);
	free(r->pattern);
	free(r->flags);
	free(r->description);
	free(r->file);
	free(r->group);
	for (size_t k = 0; k < r->n_anchors; k++)
		free(r->anchors[k]);
	free(r->anchors);
	free(r->anchor_len);
	for (size_t k = 0; k < r->n_also; k++)
		free(r->also[k]);
	free(r->also);
	free(r->also_len);
	pcre2_code_free(r->code);
	pcre2_code_free(r->lead_code);
	memset(r, 0, sizeof(*r));
}

/* ---- rule names: an open-addressing set over the builder's rules --------------------------- */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static int names_grow(struct rules_builder *b)
{
	size_t ncap = b->names_cap ? b->names_cap * 2 : 64;
	size_t *nv = calloc(ncap, sizeof(*nv));

	if (!nv)
		return -1;
	for (size_t i = 0; i < b->names_cap; i++) {
		size_t j;

		if (!b->names[i])
			continue;
		j = name_hash(b->rules[b->names[i] - 1].name) & (ncap - 1);
		while (nv[j])
			j = (j + 1) & (ncap - 1);
		nv[j] = b->names[i];
	}
	free(b->names);
	b->names = nv;
	b->names_cap = ncap;
	return 0;
}

/* The rule of that name already appended, or NULL. */
static const struct rule *names_find(const struct rules_builder *b, const char *name)
{
	size_t j;

	if (!b->names_cap)
		return NULL;
	j = name_hash(name) & (b->names_cap - 1);
	while (b->names[j]) {
		const struct rule *r = &b->rules[b->names[j] - 1];

		if (!strcmp(r->name, name))
			return r;
		j = (j + 1) & (b->names_cap - 1);
	}
	return NULL;
}

static int names_add(struct rules_builder *b, size_t idx)
{
	size_t j;

	/* Keep the table at most half full so probes stay short. */
	if ((b->n + 1) * 2 > b->names_cap && names_grow(b) < 0)
		return -1;
	j = name_hash(b->rules[idx].name) & (b->names_cap - 1);
	while (b->names[j])
		j = (j + 1) & (b->names_cap - 1);
	b->names[j] = idx + 1;
	return 0;
}

/* ---- values ------------------------------------------------------------------------------- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Split the value after a keyword into its first word; the rest may only be a # comment. */
static bool one_word(struct rules_builder *b, const struct line *ln, const char *kw,
		     const char *v, const char *end, const char **wend)
{
	const char *p = v, *q;

	while (p < end && !is_blank(*p))
		p++;
	*wend = p;
	q = p;
	while (q < end && is_blank(*q))
		q++;
	if (q < end && *q != '#') {
		rules_error(b, ln->file, ln->no, col_of(ln, q),
			    "unexpected text after the %s value: \"%.*s\" (one value per line)",
			    kw, (int)(end - q), q);
		return false;
	}
	return true;
}

static bool valid_name(const char *s, size_t n)
{
	if (!n || n > RULES_MAX_NAME_BYTES)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* Strict decimal: [+-]digits[.digits]; strtod alone would take "inf", "0x1p3" and locales. */
static bool parse_score(const char *s, size_t n, double *out)
{
	char buf[64];
	size_t i = 0, digits = 0;
	char *endp;

	if (!n || n >= sizeof(buf))
		return false;
	if (s[i] == '+' || s[i] == '-')
		i++;
	while (i < n && isdigit((unsigned char)s[i]))
		i++, digits++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && isdigit((unsigned char)s[i]))
			i++, digits++;
	}
	if (i != n || !digits)
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*out = strtod(buf, &endp);
	return isfinite(*out) && fabs(*out) <= RULES_MAX_SCORE;
}

static bool valid_header_name(const char *s, size_t n)
{
	if (!n || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 33 || (unsigned char)s[i] > 126 || s[i] == ':')
			return false;
	return true;
}

static const char *const target_words[] = {
	[RULES_TARGET_BODY] = "body", [RULES_TARGET_SUBJECT] = "subject",
	[RULES_TARGET_QUOTED] = "quoted", [RULES_TARGET_FROM] = "from",
	[RULES_TARGET_HEADER] = "header:NAME",
};

const char *rules_target_name(enum rules_target t)
{
	if ((unsigned)t >= RULES_TARGET_COUNT)
		return "?";
	return t == RULES_TARGET_HEADER ? "header" : target_words[t];
}

/* ---- keywords ----------------------------------------------------------------------------- */

static char *dup_or_oom(struct rules_builder *b, const char *s, size_t n)
{
	char *p = util_strndup(s, n);

	if (!p)
		b->oom = true;
	return p;
}

/* The value of "rule" or "group": one word that is a valid name (*w: its end); false after
 * adding an error. */
static bool name_value(struct rules_builder *b, const struct line *ln, const char *kw,
		       const char *v, const char *end, const char **w)
{
	if (!one_word(b, ln, kw, v, end, w))
		return false;
	if (!valid_name(v, (size_t)(*w - v))) {
		rules_error(b, ln->file, ln->no, col_of(ln, v),
			    "bad %s name \"%.*s\": use 1 to %d letters, digits or _", kw,
			    (int)(*w - v), v, RULES_MAX_NAME_BYTES);
		return false;
	}
	return true;
}

static void kw_rule(struct rules_builder *b, const struct line *ln, struct pending *pr,
		    const char *v, const char *end)
{
	const char *w;
	const struct rule *prev;

	if (!name_value(b, ln, "rule", v, end, &w)) {
		pr->bad = true;
		return;
	}
	pr->r.name = dup_or_oom(b, v, (size_t)(w - v));
	if (!pr->r.name)
		return;
	pr->named = true;
	prev = names_find(b, pr->r.name);
	if (prev) {
		rules_error(b, ln->file, ln->no, col_of(ln, v),
			    "duplicate rule name \"%s\" (first defined at %s:%d)",
			    pr->r.name, prev->file, prev->line);
		pr->bad = true;
	}
}

static void kw_category(struct rules_builder *b, const struct line *ln, struct pending *pr,
			const char *v, const char *end)
{
	const char *w;
	char name[128];
	struct strbuf known;
	int idx;

	if (!one_word(b, ln, "category", v, end, &w)) {
		pr->bad = true;
		return;
	}
	if ((size_t)(w - v) >= sizeof(name)) {
		idx = -1;
	} else {
		memcpy(name, v, (size_t)(w - v));
		name[w - v] = '\0';
		idx = config_category_index(b->cfg, name);
	}
	if (idx < 0) {
		strbuf_init(&known, 1024);
		for (size_t i = 0; i < b->cfg->n_categories; i++)
			strbuf_printf(&known, "%s%s", i ? ", " : "", b->cfg->categories[i].name);
		rules_error(b, ln->file, ln->no, col_of(ln, v),
			    "unknown category \"%.*s\" (the config declares: %s)",
			    (int)(w - v), v, known.s ? known.s : "");
		strbuf_free(&known);
		pr->bad = true;
		return;
	}
	pr->r.category = idx;
}

static void kw_score(struct rules_builder *b, const struct line *ln, struct pending *pr,
		     const char *v, const char *end)
{
	const char *w;

	if (!one_word(b, ln, "score", v, end, &w)) {
		pr->bad = true;
		return;
	}
	if (!parse_score(v, (size_t)(w - v), &pr->r.score)) {
		rules_error(b, ln->file, ln->no, col_of(ln, v),
			    "bad score \"%.*s\": expected a decimal number between %g and %g, such as 2.5 or -1",
			    (int)(w - v), v, -RULES_MAX_SCORE, RULES_MAX_SCORE);
		pr->bad = true;
	}
}

static void kw_target(struct rules_builder *b, const struct line *ln, struct pending *pr,
		      const char *v, const char *end)
{
	const char *w;
	size_t n;

	if (!one_word(b, ln, "target", v, end, &w)) {
		pr->bad = true;
		return;
	}
	n = (size_t)(w - v);
	for (int t = 0; t < RULES_TARGET_HEADER; t++) {
		if (strlen(target_words[t]) == n && !memcmp(v, target_words[t], n)) {
			pr->r.target = (enum rules_target)t;
			return;
		}
	}
	if (n > 7 && !memcmp(v, "header:", 7)) {
		if (!valid_header_name(v + 7, n - 7)) {
			rules_error(b, ln->file, ln->no, col_of(ln, v + 7),
				    "bad header name \"%.*s\" in target", (int)(n - 7), v + 7);
			pr->bad = true;
			return;
		}
		pr->r.target = RULES_TARGET_HEADER;
		pr->r.header_name = dup_or_oom(b, v + 7, n - 7);
		return;
	}
	rules_error(b, ln->file, ln->no, col_of(ln, v),
		    "unknown target \"%.*s\" (expected subject, body, quoted, from or header:NAME)",
		    (int)n, v);
	pr->bad = true;
}

static char closing_delimiter(char open)
{
	switch (open) {
	case '(': return ')';
	case '[': return ']';
	case '{': return '}';
	case '<': return '>';
	default: return open;
	}
}

/* "/pattern/flags": the pattern runs to the LAST closing delimiter on the line, so it is
 * written raw (a / inside needs no escape); only flag letters may follow. */
static void kw_match(struct rules_builder *b, const struct line *ln, struct pending *pr,
		     const char *v, const char *end)
{
	unsigned char open = (unsigned char)*v;
	const char *close = NULL, *f;
	bool has_i = false, has_I = false;

	if (open >= 0x80 || isalnum(open) || open == '\\' || open == '#') {
		const char *e = v + 1;

		while (e < end && ((unsigned char)*e & 0xC0) == 0x80)
			e++;
		rules_error(b, ln->file, ln->no, col_of(ln, v),
			    "bad pattern delimiter \"%.*s\": write the pattern between two slashes, /pattern/flags",
			    (int)(e - v), v);
		pr->bad = true;
		return;
	}
	for (const char *p = v + 1; p < end; p++)
		if (*p == closing_delimiter((char)open))
			close = p;
	if (!close) {
		rules_error(b, ln->file, ln->no, col_of(ln, v),
			    "unterminated pattern: no closing \"%c\" on this line",
			    closing_delimiter((char)open));
		pr->bad = true;
		return;
	}
	if (close == v + 1) {
		rules_error(b, ln->file, ln->no, col_of(ln, v), "empty pattern");
		pr->bad = true;
		return;
	}
	if ((size_t)(close - v - 1) > RULES_MAX_PATTERN_BYTES) {
		rules_error(b, ln->file, ln->no, col_of(ln, v),
			    "pattern too long (%zu bytes, at most %d)",
			    (size_t)(close - v - 1), RULES_MAX_PATTERN_BYTES);
		pr->bad = true;
		return;
	}
	for (f = close + 1; f < end; f++) {
		if (*f == 'i') {
			has_i = true;
		} else if (*f == 'I') {
			has_I = true;
		} else if (!*f || !strchr("xsm", *f)) {
			if ((unsigned char)*f < 0x80 && isgraph((unsigned char)*f))
				rules_error(b, ln->file, ln->no, col_of(ln, f),
					    "unknown flag \"%c\" (known: i caseless, I case-sensitive, x extended, s dotall, m multiline)",
					    *f);
			else
				rules_error(b, ln->file, ln->no, col_of(ln, f),
					    "unexpected text after the pattern (only flags may follow the closing delimiter)");
			pr->bad = true;
			return;
		}
	}
	if (has_i && has_I) {
		rules_error(b, ln->file, ln->no, col_of(ln, close + 1),
			    "flags i and I contradict each other");
		pr->bad = true;
		return;
	}
	pr->r.pattern = dup_or_oom(b, v + 1, (size_t)(close - v - 1));
	pr->r.flags = dup_or_oom(b, close + 1, (size_t)(end - close - 1));
	pr->r.pattern_line = ln->no;
	pr->r.pattern_col = col_of(ln, v + 1);
}

static void kw_describe(struct rules_builder *b, const struct line *ln, struct pending *pr,
			const char *v, const char *end)
{
	pr->r.description = dup_or_oom(b, v, (size_t)(end - v));
}

/* group NAME: the rules of one group are one cue (verdict.c counts the best of them once);
 * that they share a category and a sign is checked across files (rules.c). */
static void kw_group(struct rules_builder *b, const struct line *ln, struct pending *pr,
		     const char *v, const char *end)
{
	const char *w;

	if (!name_value(b, ln, "group", v, end, &w)) {
		pr->bad = true;
		return;
	}
	pr->r.group = dup_or_oom(b, v, (size_t)(w - v));
	pr->r.group_line = ln->no;
	pr->r.group_col = col_of(ln, v);
}

/* ---- rules and lines ---------------------------------------------------------------------- */

static void pending_finish(struct rules_builder *b, const char *file, struct pending *pr)
{
	if (!pr->open)
		return;
	if (!pr->bad && pr->named && !pr->has_category)
		rules_error(b, file, pr->r.line, pr->col, "rule \"%s\" has no category line",
			    pr->r.name);
	if (!pr->bad && pr->named && !pr->has_match)
		rules_error(b, file, pr->r.line, pr->col, "rule \"%s\" has no match line", pr->r.name);
	if (pr->bad || !pr->named || !pr->has_category || !pr->has_match || b->oom)
		goto drop;
	if (!pr->r.description)
		pr->r.description = dup_or_oom(b, "", 0);
	pr->r.file = dup_or_oom(b, file, strlen(file));
	if (b->oom || rules_compile_rule(b, &pr->r) < 0)
		goto drop;
	if (b->n == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 32;
		struct rule *nv = realloc(b->rules, ncap * sizeof(*nv));

		if (!nv) {
			b->oom = true;
			goto drop;
		}
		b->rules = nv;
		b->cap = ncap;
	}
	b->rules[b->n] = pr->r;
	if (names_add(b, b->n) < 0) {
		b->oom = true;
		goto drop;
	}
	b->n++;
	memset(pr, 0, sizeof(*pr));
	return;
drop:
	rules_rule_clear(&pr->r);
	memset(pr, 0, sizeof(*pr));
}

static void pending_start(struct pending *pr, const struct line *ln, const char *kw)
{
	memset(pr, 0, sizeof(*pr));
	pr->open = true;
	pr->r.line = ln->no;
	pr->col = col_of(ln, kw);
	pr->r.score = 1.0;
	pr->r.target = RULES_TARGET_BODY;
	pr->r.group_id = -1;
}

typedef void kw_fn(struct rules_builder *, const struct line *, struct pending *,
		   const char *, const char *);

struct keyword {
	const char *name;
	kw_fn *fn;
	size_t seen;     /* offset of the pending "has_" flag, or 0 for "rule" */
};

static const struct keyword keywords[] = {
	{ "rule", kw_rule, 0 },
	{ "category", kw_category, offsetof(struct pending, has_category) },
	{ "score", kw_score, offsetof(struct pending, has_score) },
	{ "target", kw_target, offsetof(struct pending, has_target) },
	{ "match", kw_match, offsetof(struct pending, has_match) },
	{ "describe", kw_describe, offsetof(struct pending, has_describe) },
	{ "group", kw_group, offsetof(struct pending, has_group) },
};

static void parse_line(struct rules_builder *b, const struct line *ln, struct pending *pr)
{
	const char *p = ln->s, *end = ln->s + ln->len, *kw, *v;
	const struct keyword *k = NULL;
	size_t kwlen;

	while (p < end && is_blank(*p))
		p++;
	if (p == end || *p == '#')
		return;
	kw = p;
	while (p < end && !is_blank(*p))
		p++;
	kwlen = (size_t)(p - kw);
	while (p < end && is_blank(*p))
		p++;
	v = p;
	while (end > v && is_blank(end[-1]))
		end--;
	/* "rule   # note" has no value; a description may start with # */
	for (size_t i = 0; i < UTIL_ARRAY_LEN(keywords); i++)
		if (strlen(keywords[i].name) == kwlen && !memcmp(kw, keywords[i].name, kwlen))
			k = &keywords[i];
	if (!k) {
		rules_error(b, ln->file, ln->no, col_of(ln, kw),
			    "unknown keyword \"%.*s\" (expected rule, category, score, target, match, describe or group)",
			    (int)kwlen, kw);
		pr->bad = pr->open;
		return;
	}
	if (k->fn == kw_rule) {
		pending_finish(b, ln->file, pr);
		pending_start(pr, ln, kw);
	} else if (!pr->open) {
		rules_error(b, ln->file, ln->no, col_of(ln, kw),
			    "\"%s\" outside a rule: a rule starts with \"rule NAME\"", k->name);
		return;
	} else if (*((bool *)((char *)pr + k->seen))) {
		rules_error(b, ln->file, ln->no, col_of(ln, kw), "second %s line in rule \"%s\"",
			    k->name, pr->r.name ? pr->r.name : "?");
		pr->bad = true;
		return;
	}
	if (v < end && *v == '#' && k->fn != kw_describe && k->fn != kw_match)
		v = end;
	if (v == end) {
		if (k->fn == kw_rule)
			rules_error(b, ln->file, ln->no, col_of(ln, kw),
				    "rule without a name: write \"rule NAME\"");
		else
			rules_error(b, ln->file, ln->no, col_of(ln, kw), "%s needs a value", k->name);
		pr->bad = true;
		return;
	}
	if (k->seen)
		*((bool *)((char *)pr + k->seen)) = true;
	k->fn(b, ln, pr, v, end);
}

void rules_parse_buffer(struct rules_builder *b, const char *file, const char *text, size_t len)
{
	struct pending pr;
	struct line ln = { .file = file, .no = 0 };
	size_t i = 0;

	memset(&pr, 0, sizeof(pr));
	/* A UTF-8 byte-order mark at the start is an editor's habit, not content. */
	if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
		i = 3;
	while (i < len && !b->oom && b->errors <= RULES_MAX_ERRORS) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
		const char *nul;

		ln.s = text + i;
		ln.len = n;
		ln.no++;
		i += n + (nl ? 1 : 0);
		if (ln.len && ln.s[ln.len - 1] == '\r')
			ln.len--;
		nul = memchr(ln.s, '\0', ln.len);
		if (nul) {
			rules_error(b, file, ln.no, col_of(&ln, nul), "NUL byte in a rule file");
			pr.bad = pr.open;
			continue;
		}
		if (!util_utf8_valid(ln.s, ln.len)) {
			rules_error(b, file, ln.no, 0, "invalid UTF-8 (rule files are UTF-8 text)");
			pr.bad = pr.open;
			continue;
		}
		parse_line(b, &ln, &pr);
	}
	pending_finish(b, file, &pr);
	rules_rule_clear(&pr.r);
}
