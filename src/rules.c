/*
 * rules.c - compile rule files into a shared, read-only ruleset; lint it
 *
 * A ruleset is built once (start, reload) and never changes, which is what lets every milter
 * thread match against it without a lock; a reload builds a whole new one and the caller swaps
 * the pointer. Per-message state belongs to match.c. The grammar is parsed in rules_parse.c.
 *
 * Compilation: the literal text of each pattern goes through normalize_pattern() so it meets the
 * normalized message text; the pattern as written is compiled first only to report PCRE2's error
 * at the right column of the file. Options UTF|UCP|MATCH_INVALID_UTF|NEVER_BACKSLASH_C, caseless
 * unless the I flag; JIT for complete and partial-hard matching (match.c matches in windows).
 * \G is refused: windowed matching moves the start offset, which would change its meaning.
 *
 * Prefilter: each rule gets a set of literal anchors, one of which every match contains, and
 * the ruleset one Aho-Corasick automaton per target over them (rules_anchors.c); match.c runs
 * a rule only when the scan of its text found one of its anchors.
 *
 * File permissions (RELIABILITY R9.3): rules_load refuses a world-writable rule or long-standing
 * file (anyone on the host could change what is matched); rules_lint warns about group-writable
 * files and files owned by someone other than root or the running user. Group-writable is only
 * a warning because an admin group editing rules is a common, legitimate setup.
 *
 * OWNERSHIP  rules_load()/rules_load_buffer() return one reference; drop it with rules_unref().
 * DIAGNOSTICS  On error they return NULL and leave "file:line:col: text" entries in the diag list
 *              (warnings may be left on success); they never log or exit.
 */
#include "rules.h"
#include "rules_parse.h"
#include "normalize.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RULES_MAX_FILE_BYTES (16u << 20)
#define RULES_PARENS_NEST_LIMIT 250
#define RULES_LINT_SLOW_US 5000        /* RELIABILITY R4.4 */
#define RULES_LINT_RUNS 3              /* a slow probe is timed again: the best run counts */

static atomic_ulong rules_generation;
static atomic_bool rules_jit_off;

void rules_set_jit(bool enabled)
{
	atomic_store(&rules_jit_off, !enabled);
}

/* ---- pattern scanning helpers (lint) ------------------------------------------------------ */

/* Length of a quantifier at p[i] (0 = none), or -1 for a brace this scan does not understand. */
static int quantifier_len(const char *p, size_t n, size_t i)
{
	size_t j = i;

	if (i >= n)
		return 0;
	if (p[i] == '?' || p[i] == '*' || p[i] == '+') {
		j++;
	} else if (p[i] == '{') {
		j++;
		while (j < n && p[j] >= '0' && p[j] <= '9')
			j++;
		if (j < n && p[j] == ',')
			j++;
		while (j < n && p[j] >= '0' && p[j] <= '9')
			j++;
		if (j >= n || p[j] != '}' || j == i + 1)
			return -1;
		j++;
	} else {
		return 0;
	}
	if (j < n && (p[j] == '?' || p[j] == '+'))
		j++;
	return (int)(j - i);
}

/* rules_skip_class - index after the character class starting at p[i] == '[', or -1 for
 * anything it will not judge (\Q..\E, an unterminated class or POSIX name). */
long rules_skip_class(const char *p, size_t n, size_t i)
{
	i++;
	if (i < n && p[i] == '^')
		i++;
	if (i < n && p[i] == ']')
		i++;
	while (i < n) {
		if (p[i] == '\\') {
			if (i + 1 < n && (p[i + 1] == 'Q' || p[i + 1] == 'E'))
				return -1;
			i += 2;
		} else if (p[i] == '[' && i + 1 < n && p[i + 1] == ':') {
			const char *e = memmem(p + i + 2, n - i - 2, ":]", 2);

			if (!e)
				return -1;
			i = (size_t)(e - p) + 2;
		} else if (p[i] == ']') {
			return (long)i + 1;
		} else {
			i++;
		}
	}
	return -1;
}

static size_t utf8_len_at(const char *p, size_t n, size_t i)
{
	size_t j = i + 1;

	while (j < n && ((unsigned char)p[j] & 0xC0) == 0x80)
		j++;
	return j - i;
}

/* ---- compiling ---------------------------------------------------------------------------- */

static uint32_t rule_options(const char *flags)
{
	uint32_t o = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C |
		     PCRE2_CASELESS;

	for (const char *f = flags; *f; f++) {
		switch (*f) {
		case 'I': o &= ~(uint32_t)PCRE2_CASELESS; break;
		case 'x': o |= PCRE2_EXTENDED; break;
		case 's': o |= PCRE2_DOTALL; break;
		case 'm': o |= PCRE2_MULTILINE; break;
		default: break;
		}
	}
	return o;
}

/* Does the pattern use \G (outside a class)? Escapes are skipped pairwise. */
static const char *find_backslash_g(const char *p)
{
	for (; *p; p++) {
		if (*p == '\\') {
			if (p[1] == 'G')
				return p;
			if (p[1])
				p++;
		}
	}
	return NULL;
}

static pcre2_code *compile_one(const char *pat, size_t len, uint32_t options, int *err,
			       PCRE2_SIZE *off)
{
	pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
	pcre2_code *code;

	if (!cc) {
		*err = PCRE2_ERROR_NOMEMORY;
		*off = 0;
		return NULL;
	}
	pcre2_set_parens_nest_limit(cc, RULES_PARENS_NEST_LIMIT);
	code = pcre2_compile((PCRE2_SPTR)pat, len, options, err, off, cc);
	pcre2_compile_context_free(cc);
	return code;
}

/* A rule whose matches all start with one of its anchors (r->lead) gets a second code compiled
 * PCRE2_ANCHORED: match.c runs it at each place an anchor occurs. (Anchoring at match time would
 * turn JIT off; compiled anchored, its JIT code is also less than half the size.) A lead code
 * that does not compile is only a lost shortcut; out of memory is -1. */
static int compile_lead(struct rule *r, const char *np, size_t nlen)
{
	PCRE2_SIZE off;
	int err;

	r->lead_code = compile_one(np, nlen, r->options | PCRE2_ANCHORED, &err, &off);
	if (!r->lead_code) {
		r->lead = false;
		return err == PCRE2_ERROR_NOMEMORY ? -1 : 0;
	}
	if (r->jit)
		(void)pcre2_jit_compile(r->lead_code, PCRE2_JIT_COMPLETE);
	return 0;
}

int rules_compile_rule(struct rules_builder *b, struct rule *r)
{
	size_t plen = strlen(r->pattern), nlen = 0;
	char *np = NULL;
	const char *g;
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE off;
	pcre2_code *code;
	size_t jitsize = 0;
	bool partial;
	int err, rc = -1;

	r->options = rule_options(r->flags);
	g = find_backslash_g(r->pattern);
	if (g) {
		rules_error(b, r->file, r->pattern_line,
			    r->pattern_col + rules_utf8_chars(r->pattern, (size_t)(g - r->pattern)),
			    "\\G is not supported in rules (patterns are matched in windows)");
		return -1;
	}
	/* The pattern as written: its error offsets are columns in the file. */
	code = compile_one(r->pattern, plen, r->options, &err, &off);
	if (!code) {
		pcre2_get_error_message(err, msg, sizeof(msg));
		if (off > plen)
			off = plen;
		rules_error(b, r->file, r->pattern_line,
			    r->pattern_col + rules_utf8_chars(r->pattern, off),
			    "pattern error: %s", (const char *)msg);
		return -1;
	}
	pcre2_code_free(code);
	np = normalize_pattern_flags(r->pattern, plen,
				     r->options & PCRE2_EXTENDED ? NORMALIZE_PAT_EXTENDED : 0, &nlen);
	if (!np) {
		b->oom = true;
		rules_error(b, r->file, r->pattern_line, r->pattern_col, "out of memory");
		return -1;
	}
	r->code = compile_one(np, nlen, r->options, &err, &off);
	if (!r->code) {
		pcre2_get_error_message(err, msg, sizeof(msg));
		rules_error(b, r->file, r->pattern_line, r->pattern_col,
			    "pattern error after normalization: %s (normalized: \"%s\")",
			    (const char *)msg, np);
		goto out;
	}
	if (rules_anchors_compute(r, np, nlen) < 0) {
		b->oom = true;
		goto out;
	}
	/* A lead rule is searched in windows (PARTIAL_HARD) only when its leads occur in too many
	 * places (rules.h, RULES_LEAD_MAX_POS): its JIT code is for complete matches only, which
	 * is less than half the size (the interpreter takes the rare windowed search). Not so when
	 * a lead has a digit in it: log lines and tables can hold thousands of those. */
	partial = !r->lead || r->lead_digit;
	if (!atomic_load(&rules_jit_off) &&
	    pcre2_jit_compile(r->code, partial ? PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD
			      : PCRE2_JIT_COMPLETE) == 0 &&
	    pcre2_pattern_info(r->code, PCRE2_INFO_JITSIZE, &jitsize) == 0 && jitsize > 0) {
		r->jit = true;
		r->jit_partial = partial;
	}
	if (r->lead && compile_lead(r, np, nlen) < 0) {
		b->oom = true;
		goto out;
	}
	rc = 0;
out:
	free(np);
	return rc;
}

/* ---- building rulesets -------------------------------------------------------------------- */

static void builder_free(struct rules_builder *b)
{
	for (size_t i = 0; i < b->n; i++)
		rules_rule_clear(&b->rules[i]);
	free(b->rules);
	free(b->names);
	memset(b, 0, sizeof(*b));
}

static void free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void ruleset_free(struct ruleset *rs)
{
	for (size_t i = 0; i < rs->n_rules; i++)
		rules_rule_clear(&rs->rules[i]);
	free(rs->rules);
	for (size_t i = 0; i < rs->n_categories; i++)
		free(rs->category_names[i]);
	free_strings(rs->longstanding, rs->n_longstanding);
	rules_prefilter_free(rs->prefilter);
	free(rs);
}

static size_t unsafe_check(const struct ruleset *rs, const struct config *cfg, struct diag *d,
			   enum diag_severity sev, bool timed);

struct group_ref {
	const char *name;
	size_t rule;
};

static int group_ref_cmp(const void *pa, const void *pb)
{
	const struct group_ref *a = pa, *b = pb;
	int c = strcmp(a->name, b->name);

	return c ? c : (a->rule > b->rule) - (a->rule < b->rule);
}

/* Number the groups (rule.group_id, in name order) and check that the rules of each share a
 * category and the sign of their scores, as "the best of them counts once" assumes: an error
 * at the later rule's group line names the first. Returns the number of groups. */
static size_t assign_groups(struct rules_builder *b)
{
	struct group_ref *v;
	size_t n = 0, ng = 0, first = 0;

	for (size_t i = 0; i < b->n; i++)
		n += b->rules[i].group != NULL;
	if (!n)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v) {
		b->oom = true;
		return 0;
	}
	n = 0;
	for (size_t i = 0; i < b->n; i++)
		if (b->rules[i].group)
			v[n++] = (struct group_ref){ b->rules[i].group, i };
	qsort(v, n, sizeof(*v), group_ref_cmp);
	for (size_t k = 0; k < n; k++) {
		struct rule *r = &b->rules[v[k].rule];
		const struct rule *f;

		if (!k || strcmp(v[k].name, v[k - 1].name) != 0) {
			first = v[k].rule;
			ng++;
		}
		r->group_id = (int)(ng - 1);
		f = &b->rules[first];
		if (f == r)
			continue;
		if (r->category != f->category)
			rules_error(b, r->file, r->group_line, r->group_col,
				    "rule \"%s\" is category \"%s\" but group \"%s\" began with rule \"%s\" (%s:%d) of category \"%s\": a group's rules share a category",
				    r->name, b->cfg->categories[r->category].name, r->group, f->name,
				    f->file, f->group_line, b->cfg->categories[f->category].name);
		else if ((r->score > 0) != (f->score > 0))
			rules_error(b, r->file, r->group_line, r->group_col,
				    "rule \"%s\" scores %g but group \"%s\" began with rule \"%s\" (%s:%d) scoring %g: a group cannot mix positive scores with zero or negative ones",
				    r->name, r->score, r->group, f->name, f->file, f->group_line,
				    f->score);
	}
	free(v);
	return ng;
}

/* Move the builder's rules into a new ruleset; NULL (error in d) on any earlier error, or when
 * rules.unsafe_rules is "refuse" and a rule can backtrack catastrophically (RELIABILITY R4.5:
 * a reload with such a file keeps the last good rules). */
static struct ruleset *builder_finish(struct rules_builder *b)
{
	struct ruleset *rs = NULL;
	const struct config *cfg = b->cfg;
	struct diag *d;
	size_t n_groups = b->oom ? 0 : assign_groups(b);

	if (b->oom)
		diag_add(b->d, DIAG_ERROR, "", 0, 0, "out of memory while loading rules");
	if (b->oom || b->errors)
		goto fail;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		goto oom;
	atomic_init(&rs->refs, 1);
	for (size_t i = 0; i < b->cfg->n_categories && i < CONFIG_MAX_CATEGORIES; i++) {
		rs->category_names[i] = util_strdup(b->cfg->categories[i].name);
		if (!rs->category_names[i])
			goto oom;
		rs->n_categories++;
	}
	rs->rules = b->rules;
	rs->n_rules = b->n;
	rs->n_groups = n_groups;
	b->rules = NULL;
	b->n = 0;
	d = b->d;
	builder_free(b);
	if (rules_prefilter_build(rs) < 0) {
		diag_add(d, DIAG_ERROR, "", 0, 0, "out of memory while loading rules");
		ruleset_free(rs);
		return NULL;
	}
	/* Untimed: what the load accepts must not depend on the machine's load (lint times too). */
	if (cfg->rules.refuse_unsafe && unsafe_check(rs, cfg, d, DIAG_ERROR, false) > 0) {
		ruleset_free(rs);
		return NULL;
	}
	rs->generation = atomic_fetch_add(&rules_generation, 1) + 1;
	return rs;
oom:
	diag_add(b->d, DIAG_ERROR, "", 0, 0, "out of memory while loading rules");
	if (rs)
		ruleset_free(rs);
fail:
	builder_free(b);
	return NULL;
}

static void builder_init(struct rules_builder *b, const struct config *cfg, struct diag *d)
{
	memset(b, 0, sizeof(*b));
	b->cfg = cfg;
	b->d = d;
}

struct ruleset *rules_load_buffer(const char *file, const char *text, size_t len,
				  const struct config *cfg, struct diag *d)
{
	struct rules_builder b;

	builder_init(&b, cfg, d);
	rules_parse_buffer(&b, file, text, len);
	return builder_finish(&b);
}

static int rule_file_filter(const struct dirent *de)
{
	size_t n = strlen(de->d_name);

	/* Dotfiles (editor locks, swap files) and backups (x.rules~, x.rules.bak) are skipped by
	 * the suffix test: only NAME.rules is read. */
	return de->d_name[0] != '.' && n > 6 && !strcmp(de->d_name + n - 6, ".rules");
}

/* Refuse a world-writable file (see the file comment); 0 when acceptable. */
static int check_mode(struct rules_builder *b, const char *path, const struct stat *st)
{
	if (st->st_mode & S_IWOTH) {
		rules_error(b, path, 0, 0,
			    "file is world-writable: anyone on this host could change it (chmod o-w)");
		return -1;
	}
	return 0;
}

static void load_file(struct rules_builder *b, const char *path)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;

	if (stat(path, &st) < 0) {
		rules_error(b, path, 0, 0, "cannot read: %s", strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		diag_add(b->d, DIAG_WARNING, path, 0, 0, "not a regular file: skipped");
		return;
	}
	if (check_mode(b, path, &st) < 0)
		return;
	if (util_read_file(path, RULES_MAX_FILE_BYTES, &text, &len) < 0) {
		rules_error(b, path, 0, 0, "cannot read: %s", strerror(errno));
		return;
	}
	rules_parse_buffer(b, path, text, len);
	free(text);
}

static int cmp_icase(const void *a, const void *b)
{
	return strcasecmp(*(char *const *)a, *(char *const *)b);
}

/* Read the long-standing customer list: one address or @domain per line, # comments. */
static int load_longstanding(struct rules_builder *b, const char *path, char ***out, size_t *nout)
{
	char *text = NULL, *line;
	char **v = NULL;
	size_t len = 0, n = 0, cap = 0;
	struct stat st;
	int lineno = 0;

	*out = NULL;
	*nout = 0;
	if (stat(path, &st) == 0 && check_mode(b, path, &st) < 0)
		return -1;
	if (util_read_file(path, RULES_MAX_FILE_BYTES, &text, &len) < 0) {
		rules_error(b, path, 0, 0, "cannot read the long-standing customer list: %s",
			    strerror(errno));
		return -1;
	}
	/* strtok_r skips empty lines, so count them by hand to keep line numbers right. */
	for (line = text; line && *line; ) {
		char *nl = strchr(line, '\n'), *hash, *a;

		if (nl)
			*nl = '\0';
		lineno++;
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		a = util_trim(line);
		if (*a) {
			const char *at = strchr(a, '@');

			if (!at || strpbrk(a, " \t\r") || !at[1] || strchr(at + 1, '@')) {
				diag_add(b->d, DIAG_WARNING, path, lineno, 0,
					 "not an address or @domain: \"%s\" (ignored)", a);
			} else {
				if (n == cap) {
					size_t ncap = cap ? cap * 2 : 64;
					char **nv = realloc(v, ncap * sizeof(*nv));

					if (!nv)
						goto oom;
					v = nv;
					cap = ncap;
				}
				v[n] = util_strdup(a);
				if (!v[n])
					goto oom;
				util_ascii_lower(v[n++]);
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	if (n)
		qsort(v, n, sizeof(*v), cmp_icase);
	*out = v;
	*nout = n;
	return 0;
oom:
	free(text);
	free_strings(v, n);
	b->oom = true;
	return -1;
}

struct ruleset *rules_load(const char *dir, const struct config *cfg, struct diag *d)
{
	struct rules_builder b;
	struct dirent **list = NULL;
	struct ruleset *rs;
	char **ls = NULL;
	size_t nls = 0;
	int n;

	/* Test hook: valgrind's memcheck cannot follow PCRE2's JIT code (tests/integration/valgrind.sh). */
	{
		const char *nojit = getenv("AMENDS_NO_JIT");

		if (nojit && *nojit && strcmp(nojit, "0") != 0)
			rules_set_jit(false);
	}
	builder_init(&b, cfg, d);
	n = scandir(dir, &list, rule_file_filter, alphasort);
	if (n < 0) {
		rules_error(&b, dir, 0, 0, "cannot read the rules directory: %s", strerror(errno));
		return builder_finish(&b);
	}
	if (n == 0)
		diag_add(d, DIAG_WARNING, dir, 0, 0, "no *.rules files: no message will match");
	for (int i = 0; i < n; i++) {
		struct strbuf path;

		strbuf_init(&path, 4096);
		if (strbuf_printf(&path, "%s/%s", dir, list[i]->d_name) < 0)
			rules_error(&b, dir, 0, 0, "path too long: %s", list[i]->d_name);
		else
			load_file(&b, path.s);
		strbuf_free(&path);
		free(list[i]);
	}
	free(list);
	if (cfg->rules.longstanding_file && *cfg->rules.longstanding_file)
		load_longstanding(&b, cfg->rules.longstanding_file, &ls, &nls);
	rs = builder_finish(&b);
	if (rs) {
		rs->longstanding = ls;
		rs->n_longstanding = nls;
	} else {
		free_strings(ls, nls);
	}
	return rs;
}

struct ruleset *rules_ref(struct ruleset *rs)
{
	if (rs)
		atomic_fetch_add_explicit(&rs->refs, 1, memory_order_relaxed);
	return rs;
}

void rules_unref(struct ruleset *rs)
{
	if (rs && atomic_fetch_sub_explicit(&rs->refs, 1, memory_order_acq_rel) == 1)
		ruleset_free(rs);
}

bool rules_is_longstanding(const struct ruleset *rs, const char *addr)
{
	const char *at, *key;

	if (!rs || !rs->n_longstanding || !addr)
		return false;
	key = addr;
	if (bsearch(&key, rs->longstanding, rs->n_longstanding, sizeof(char *), cmp_icase))
		return true;
	at = strrchr(addr, '@');
	if (!at)
		return false;
	key = at;
	return bsearch(&key, rs->longstanding, rs->n_longstanding, sizeof(char *), cmp_icase) != NULL;
}

/* ---- lint --------------------------------------------------------------------------------- */

struct qlevel {
	size_t open;          /* index of "(" */
	bool unbounded;       /* an unbounded, backtracking quantifier inside */
	bool atomic;          /* (?>...) : no backtracking into it */
};

/* Classify the quantifier at p[i]: 0 none, 1 bounded, 2 unbounded; *len gets its length.
 * Possessive quantifiers never backtrack, so they count as bounded. */
static int quant_kind(const char *p, size_t n, size_t i, size_t *len)
{
	int q = quantifier_len(p, n, i);
	bool unb;

	*len = q > 0 ? (size_t)q : 0;
	if (q <= 0)
		return 0;
	if (p[i] == '{') {
		const char *comma = memchr(p + i, ',', (size_t)q);

		unb = comma && comma[1] == '}';
	} else {
		unb = p[i] == '*' || p[i] == '+';
	}
	if (q >= 2 && p[i + (size_t)q - 1] == '+')
		unb = false;     /* possessive: a++, a*+, a{2,}+ */
	return unb ? 2 : 1;
}

/* ---- overlapping alternatives under a star: (a|a)*, (a|ab)+, (\w|\d)*, (.|\s)* ---------------
 * A mismatch after such a group backtracks through every way of dividing the text among the
 * alternatives: exponential, like nested quantifiers. Each alternative is judged by its first
 * character: a literal (ASCII folded when caseless), \w, \d, \s, or "anything" (., \S, \W,
 * \D, classes, \p, groups); two alternatives overlap when those can be the same character. */
enum first_kind { FK_EMPTY, FK_LIT, FK_WORD, FK_DIGIT, FK_SPACE, FK_ANY };

struct first_char {
	enum first_kind kind;
	unsigned char c;          /* FK_LIT: the first byte */
};

static struct first_char first_of(const char *p, size_t n, bool caseless)
{
	struct first_char f = { FK_EMPTY, 0 };
	size_t i = 0;

	/* zero-width \b \B ^ at the start do not consume: look past them */
	while (i < n && (p[i] == '^' || (p[i] == '\\' && i + 1 < n && (p[i + 1] == 'b' || p[i + 1] == 'B'))))
		i += p[i] == '^' ? 1 : 2;
	if (i >= n)
		return f;
	if (p[i] == '\\' && i + 1 < n) {
		switch (p[i + 1]) {
		case 'w': f.kind = FK_WORD; return f;
		case 'd': f.kind = FK_DIGIT; return f;
		case 's': f.kind = FK_SPACE; return f;
		default:
			if (strchr("WDSpPhHvVNRX.", p[i + 1]) || isalnum((unsigned char)p[i + 1])) {
				f.kind = FK_ANY;
				return f;
			}
			f.kind = FK_LIT;
			f.c = (unsigned char)p[i + 1];
			return f;
		}
	}
	if (p[i] == '[' || p[i] == '.' || p[i] == '(') {
		f.kind = FK_ANY;
		return f;
	}
	f.kind = FK_LIT;
	f.c = (unsigned char)(caseless && p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
	return f;
}

static bool lit_is_word(unsigned char c)
{
	return isalnum(c) || c == '_' || c >= 0x80;
}

static bool first_overlap(struct first_char a, struct first_char b)
{
	if (a.kind == FK_EMPTY || b.kind == FK_EMPTY)
		return true;          /* an empty alternative under a star: (a|)* */
	if (a.kind == FK_ANY || b.kind == FK_ANY)
		return true;
	if (a.kind > b.kind) {
		struct first_char t = a;

		a = b;
		b = t;
	}
	switch (a.kind) {
	case FK_LIT:
		if (b.kind == FK_LIT)
			return a.c == b.c;
		if (b.kind == FK_WORD)
			return lit_is_word(a.c);
		if (b.kind == FK_DIGIT)
			return isdigit(a.c);
		return a.c == ' ' || a.c == '\t' || a.c == '\n';
	case FK_WORD:
		return b.kind != FK_SPACE;
	case FK_DIGIT:
		return b.kind == FK_DIGIT;
	default:
		return a.kind == b.kind;
	}
}

/* Do two top-level alternatives of the group body p[0..n) overlap? */
static bool alternatives_overlap(const char *p, size_t n, bool caseless)
{
	struct first_char seen[32];
	size_t ns = 0, start = 0, i = 0;
	int depth = 0;

	if (n >= 2 && p[0] == '?' && p[1] == ':')
		start = i = 2;
	else if (n >= 1 && p[0] == '?')
		return false;        /* named, lookaround, options ...: not judged */
	for (;; i++) {
		if (i >= n || (p[i] == '|' && depth == 0)) {
			struct first_char f = first_of(p + start, i - start, caseless);

			for (size_t k = 0; k < ns; k++)
				if (first_overlap(seen[k], f))
					return true;
			if (ns < UTIL_ARRAY_LEN(seen))
				seen[ns++] = f;
			if (i >= n)
				return false;
			start = i + 1;
			continue;
		}
		if (p[i] == '\\') {
			i++;
		} else if (p[i] == '[') {
			long j = rules_skip_class(p, n, i);

			if (j < 0)
				return false;
			i = (size_t)j - 1;
		} else if (p[i] == '(') {
			depth++;
		} else if (p[i] == ')' && depth > 0) {
			depth--;
		}
	}
}

/* Nested unbounded quantifiers and overlapping alternatives under a star; the number found. */
static size_t lint_nested(const struct rule *r, struct diag *d, enum diag_severity sev)
{
	struct qlevel st[RULES_PARENS_NEST_LIMIT + 8];
	const char *p = r->pattern;
	size_t n = strlen(p), i = 0, ql, found = 0;
	int depth = 0;

	memset(&st[0], 0, sizeof(st[0]));
	while (i < n) {
		char c = p[i];

		if ((r->options & PCRE2_EXTENDED) && c == '#')
			break;
		if (c == '\\') {
			if (i + 1 < n && p[i + 1] == 'Q') {
				const char *e = strstr(p + i + 2, "\\E");

				i = e ? (size_t)(e - p) + 2 : n;
				continue;
			}
			i += 2;
		} else if (c == '[') {
			long j = rules_skip_class(p, n, i);

			i = j < 0 ? n : (size_t)j;
		} else if (c == '(') {
			if (depth + 1 >= (int)UTIL_ARRAY_LEN(st))
				return found;
			depth++;
			st[depth].open = i;
			st[depth].unbounded = false;
			st[depth].atomic = i + 2 < n && p[i + 1] == '?' && p[i + 2] == '>';
			i++;
			continue;
		} else if (c == ')' && depth > 0) {
			struct qlevel child = st[depth--];
			int k = quant_kind(p, n, i + 1, &ql);

			bool nested = k == 2 && child.unbounded && !child.atomic;
			bool overlap = !nested && k == 2 && !child.atomic &&
				       alternatives_overlap(p + child.open + 1, i - child.open - 1,
							    (r->options & PCRE2_CASELESS) != 0);

			if (nested)
				diag_add(d, sev, r->file, r->pattern_line,
					 r->pattern_col + rules_utf8_chars(p, child.open),
					 "rule %s: nested unbounded quantifiers \"%.*s\" can backtrack catastrophically "
					 "(use a possessive ++ or an atomic group (?>...))",
					 r->name, (int)(i + 1 + ql - child.open), p + child.open);
			else if (overlap)
				diag_add(d, sev, r->file, r->pattern_line,
					 r->pattern_col + rules_utf8_chars(p, child.open),
					 "rule %s: alternatives that can match the same text under an unbounded "
					 "quantifier \"%.*s\" can backtrack catastrophically (make them "
					 "exclusive, or use an atomic group (?>...))",
					 r->name, (int)(i + 1 + ql - child.open), p + child.open);
			found += nested || overlap;
			if (k == 2 || (child.unbounded && !child.atomic))
				st[depth].unbounded = true;
			i += 1 + ql;
			continue;
		} else {
			i += utf8_len_at(p, n, i);   /* a whole character: its quantifier follows */
		}
		ql = 0;
		if (i <= n && quant_kind(p, n, i, &ql) == 2)
			st[depth].unbounded = true;
		i += ql;
	}
	return found;
}

struct probe {
	const char *name;
	char *text;
	size_t len;
};

static char *repeat(const char *unit, size_t times, size_t *len)
{
	size_t ul = strlen(unit);
	char *s = malloc(ul * times + 1);

	if (!s)
		return NULL;
	for (size_t i = 0; i < times; i++)
		memcpy(s + i * ul, unit, ul);
	s[ul * times] = '\0';
	*len = ul * times;
	return s;
}

/* The fixed adversarial probe set of RELIABILITY 3.4: a few KB each. */
static int probes_make(struct probe *pr)
{
	static const char mixed[] =
		"i want my money back, this is the worst service i have ever had.\n"
		"میں اپنے پیسے واپس چاہتا ہوں۔ آپ کی سروس بہت خراب ہے\n"
		"मुझे पैसे वापस चाहिए, यह सबसे खराब सेवा है\n"
		"ਮੈਨੂੰ ਪੈਸੇ ਵਾਪਸ ਚਾਹੀਦੇ ਹਨ\n"
		"پولم را پس بدهید، این بدترین خدمات است\n"
		"paise wapas karo yaar, bohat bura service hai 12345 order #778899\n";
	static const struct { const char *name, *unit; size_t times; } def[] = {
		{ "a x 28 + !", NULL, 0 },
		{ "(a x 13 + !) x 300", "aaaaaaaaaaaaa!", 300 },
		{ "(word x 12 + !) x 60", "word word word word word word word word word word word word !", 60 },
		{ "mixed text x 10", mixed, 10 },
		{ "x x 4096", "x", 4096 },
		{ "(a + space) x 2048", "a ", 2048 },
	};

	for (size_t i = 0; i < UTIL_ARRAY_LEN(def); i++) {
		pr[i].name = def[i].name;
		if (def[i].unit) {
			pr[i].text = repeat(def[i].unit, def[i].times, &pr[i].len);
		} else {
			pr[i].text = repeat("a", 28, &pr[i].len);
			if (pr[i].text) {
				pr[i].text[28] = '!';
				pr[i].len = 29;
			}
		}
		if (!pr[i].text)
			return -1;
	}
	return (int)UTIL_ARRAY_LEN(def);
}

/* CPU time, not wall time: what lint says of a rule must not depend on the machine's load. */
static long long cpu_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool is_limit_error(int rc)
{
	return rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	       rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT;
}

/* One match of a rule over a probe; *us gets the CPU time it took. With timed, a run over the
 * limit is repeated and the fastest of RULES_LINT_RUNS kept: a slow rule is slow every time,
 * while one run can be charged for a page fault, an interrupt or a virtual CPU's stolen time
 * (a 0.5 ms rule once read 5 ms on a CI host). */
static int probe_match(const struct rule *r, const struct probe *pr, pcre2_match_data *md,
		       pcre2_match_context *mc, bool timed, long long *us)
{
	int rc = 0;

	*us = -1;
	for (int run = 0; run < (timed ? RULES_LINT_RUNS : 1); run++) {
		long long t0 = cpu_now_us(), dt;

		rc = pcre2_match(r->code, (PCRE2_SPTR)pr->text, pr->len, 0, 0, md, mc);
		dt = cpu_now_us() - t0;
		if (*us < 0 || dt < *us)
			*us = dt;
		if (is_limit_error(rc) || *us <= RULES_LINT_SLOW_US)
			break;
	}
	return rc;
}

/* Run every rule over each probe, unwindowed and uncapped: the rule's raw cost. A rule that
 * stops at a PCRE2 limit is reported; with timed, also one that takes more than
 * RULES_LINT_SLOW_US of CPU (its best of RULES_LINT_RUNS). The number of rules reported. */
static size_t lint_probes(const struct ruleset *rs, const struct config *cfg, struct diag *d,
			  enum diag_severity sev, bool timed)
{
	struct probe pr[8] = { { 0 } };
	size_t found = 0;
	pcre2_match_context *mc = pcre2_match_context_create(NULL);
	pcre2_jit_stack *js = pcre2_jit_stack_create((size_t)32 * 1024, (size_t)1024 * 1024, NULL);
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	int np = probes_make(pr);

	if (!mc || !js || !md || np < 0) {
		/* refusing: a check that could not run must not pass the rules */
		diag_add(d, sev, "", 0, 0, "out of memory: rule probes not run");
		found++;
		goto out;
	}
	pcre2_set_match_limit(mc, (uint32_t)cfg->rules.match_limit);
	pcre2_set_depth_limit(mc, (uint32_t)cfg->rules.depth_limit);
	pcre2_set_heap_limit(mc, (uint32_t)cfg->rules.heap_limit_kib);
	pcre2_jit_stack_assign(mc, NULL, js);
	for (size_t i = 0; i < rs->n_rules; i++) {
		const struct rule *r = &rs->rules[i];

		for (int k = 0; k < np; k++) {
			long long dt;
			int rc = probe_match(r, &pr[k], md, mc, timed, &dt);

			if (is_limit_error(rc)) {
				PCRE2_UCHAR msg[128];

				pcre2_get_error_message(rc, msg, sizeof(msg));
				diag_add(d, sev, r->file, r->pattern_line, r->pattern_col,
					 "rule %s stops at a PCRE2 limit on the probe \"%s\" (%s): "
					 "it backtracks catastrophically", r->name, pr[k].name,
					 (const char *)msg);
				found++;
				break;
			}
			if (timed && dt > RULES_LINT_SLOW_US) {
				diag_add(d, sev, r->file, r->pattern_line, r->pattern_col,
					 "rule %s takes %.1f ms on the probe \"%s\" (%zu bytes; limit %d ms)",
					 r->name, (double)dt / 1000, pr[k].name, pr[k].len,
					 RULES_LINT_SLOW_US / 1000);
				found++;
				break;
			}
		}
	}
out:
	for (size_t k = 0; k < UTIL_ARRAY_LEN(pr); k++)
		free(pr[k].text);
	pcre2_match_data_free(md);
	pcre2_jit_stack_free(js);
	pcre2_match_context_free(mc);
	return found;
}

/* The rules that can backtrack catastrophically: the static checks on each pattern, then the
 * probes. sev: DIAG_ERROR when they are refused, DIAG_WARNING when only linted. The number of
 * findings. */
static size_t unsafe_check(const struct ruleset *rs, const struct config *cfg, struct diag *d,
			   enum diag_severity sev, bool timed)
{
	size_t found = 0;

	for (size_t i = 0; i < rs->n_rules; i++)
		found += lint_nested(&rs->rules[i], d, sev);
	return found + lint_probes(rs, cfg, d, sev, timed);
}

static void lint_file_mode(const char *path, struct diag *d)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return;
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		diag_add(d, DIAG_WARNING, path, 0, 0,
			 "file is %s-writable: others could change what amends does (chmod go-w)",
			 st.st_mode & S_IWOTH ? "world" : "group");
	if (st.st_uid != 0 && st.st_uid != geteuid())
		diag_add(d, DIAG_WARNING, path, 0, 0,
			 "file is owned by uid %u, neither root nor the running user", (unsigned)st.st_uid);
}

/* A group of one rule groups nothing: most likely its name is misspelt in the rule meant to
 * share it (a warning at its group line). */
static void lint_lone_groups(const struct ruleset *rs, struct diag *d)
{
	size_t *members = rs->n_groups ? calloc(rs->n_groups, sizeof(*members)) : NULL;

	if (!members)
		return;
	for (size_t i = 0; i < rs->n_rules; i++)
		if (rs->rules[i].group_id >= 0)
			members[rs->rules[i].group_id]++;
	for (size_t i = 0; i < rs->n_rules; i++) {
		const struct rule *r = &rs->rules[i];

		if (r->group_id >= 0 && members[r->group_id] == 1)
			diag_add(d, DIAG_WARNING, r->file, r->group_line, r->group_col,
				 "group %s has no other rule than %s (a misspelt group name?)",
				 r->group, r->name);
	}
	free(members);
}

void rules_lint(const struct ruleset *rs, const struct config *cfg, struct diag *d)
{
	const char *last = NULL;
	size_t nojit = 0;

	if (!rs)
		return;
	for (size_t i = 0; i < rs->n_rules; i++)
		nojit += !rs->rules[i].jit;
	if (nojit && nojit == rs->n_rules)
		diag_add(d, DIAG_WARNING, "", 0, 0,
			 "PCRE2 JIT is not available: rules run about ten times slower");
	for (size_t i = 0; i < rs->n_rules; i++) {
		const struct rule *r = &rs->rules[i];

		if (!last || strcmp(last, r->file) != 0) {
			lint_file_mode(r->file, d);
			last = r->file;
		}
		if (!r->jit && nojit < rs->n_rules)
			diag_add(d, DIAG_WARNING, r->file, r->line, 0,
				 "rule %s is not JIT-compiled: it runs about ten times slower", r->name);
	}
	lint_lone_groups(rs, d);
	if (cfg->rules.longstanding_file && *cfg->rules.longstanding_file)
		lint_file_mode(cfg->rules.longstanding_file, d);
	/* Refusing, the load has passed the untimed checks: what is left to report is a rule too
	 * slow on a probe, and lint (R4.4) rejects it. Containing, everything is a warning. */
	unsafe_check(rs, cfg, d, cfg->rules.refuse_unsafe ? DIAG_ERROR : DIAG_WARNING, true);
}
