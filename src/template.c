/*
 * template.c - reply templates: load, check and render {{placeholder}} text
 *
 * A template is parsed once into a list of segments (literal text or a placeholder index), so
 * rendering is a linear copy with no parsing of untrusted data: placeholder values (names and
 * subjects from the customer's mail) are inserted verbatim and never re-scanned for "{{".
 *
 * OWNERSHIP  See template.h. A template owns its text and segment array.
 * DIAGNOSTICS  "file:line:col: text" entries in the caller's diag; never logs or exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "template.h"

const char *const template_langs[] = { "en", "ur", "pa", "fa", "hi", NULL };
const char *const template_kinds[] = { "apology", "winback", "partways", NULL };
const char *const template_names[] = {
	"customer_name",   /* the customer's display name, or a polite localized word */
	"customer_email",  /* the customer's address */
	"subject",         /* the original subject, without "Re:" */
	"date",            /* the date of the customer's message, YYYY-MM-DD */
	"today",           /* the draft's date, YYYY-MM-DD */
	"agent",           /* the person who signs (identity) */
	"signature",       /* the identity's signature, may be several lines */
	"history",         /* "  - date — subject" lines of the earlier messages, oldest first */
	"history_count",   /* how many messages are in that history */
	"count_total",     /* sum of the category tallies */
	NULL
};

#define TEMPLATE_MAX_NAME 64

struct template_seg {
	const char *text;    /* literal: points into t->text */
	size_t len;
	char *var;           /* placeholder name (malloc'd), NULL for a literal */
};

struct template {
	char *file;
	char *text;
	struct template_seg *segs;
	size_t n_segs, cap_segs;
};

bool template_name_known(const struct config *cfg, const char *name)
{
	for (size_t i = 0; template_names[i]; i++)
		if (strcmp(template_names[i], name) == 0)
			return true;
	if (strncmp(name, "count_", 6) == 0 && cfg)
		return config_category_index(cfg, name + 6) >= 0;
	return false;
}

void template_free(struct template *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_segs; i++)
		free(t->segs[i].var);
	free(t->segs);
	free(t->text);
	free(t->file);
	free(t);
}

static int template_add_seg(struct template *t, const char *text, size_t len, char *var)
{
	if (!var && len == 0)
		return 0;
	if (t->n_segs == t->cap_segs) {
		size_t ncap = t->cap_segs ? t->cap_segs * 2 : 16;
		struct template_seg *n = realloc(t->segs, ncap * sizeof(*n));
		if (!n)
			return -1;
		t->segs = n;
		t->cap_segs = ncap;
	}
	t->segs[t->n_segs++] = (struct template_seg){ .text = text, .len = len, .var = var };
	return 0;
}

/* Column in code points of byte offset off within the line starting at line_start. */
static int template_col(const char *line_start, const char *p)
{
	int col = 1;
	for (const char *q = line_start; q < p; q++)
		if (((unsigned char)*q & 0xC0) != 0x80)
			col++;
	return col;
}

static bool template_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* Report the first invalid UTF-8 sequence by line:col; returns true when the text is valid. */
static bool template_check_utf8(const char *file, const char *text, size_t len, struct diag *d)
{
	if (util_utf8_valid(text, len) && memchr(text, '\0', len) == NULL)
		return true;
	int line = 1;
	const char *ls = text;
	for (size_t i = 0; i < len; ) {
		size_t j = i + 1;
		while (j < len && j - i < 4 && ((unsigned char)text[j] & 0xC0) == 0x80)
			j++;
		if (text[i] == '\0' || !util_utf8_valid(text + i, j - i)) {
			diag_add(d, DIAG_ERROR, file, line, template_col(ls, text + i),
				 "invalid UTF-8 or NUL byte in template");
			return false;
		}
		if (text[i] == '\n') {
			line++;
			ls = text + j;
		}
		i = j;
	}
	diag_add(d, DIAG_ERROR, file, 0, 0, "invalid UTF-8 in template");
	return false;
}

/* Parse one "{{name}}" at p (pointing at "{{"); returns the byte after it, or NULL (error in d). */
static const char *template_parse_var(const struct config *cfg, struct template *t,
				      const char *p, const char *end, int line,
				      const char *ls, struct diag *d, bool *ok)
{
	const char *name = p + 2;
	const char *q = name;
	while (q < end && *q == ' ')
		q++;
	name = q;
	while (q < end && template_name_char(*q))
		q++;
	size_t nlen = (size_t)(q - name);
	while (q < end && *q == ' ')
		q++;
	if (q + 1 >= end || q[0] != '}' || q[1] != '}' || nlen == 0 || nlen > TEMPLATE_MAX_NAME) {
		diag_add(d, DIAG_ERROR, t->file, line, template_col(ls, p),
			 "unterminated or malformed placeholder (expected {{name}})");
		*ok = false;
		/* resume after "{{" so every problem on the line is reported */
		return p + 2;
	}
	char *var = util_strndup(name, nlen);
	if (!var) {
		*ok = false;
		return NULL;
	}
	if (!template_name_known(cfg, var)) {
		diag_add(d, DIAG_ERROR, t->file, line, template_col(ls, p),
			 "unknown placeholder {{%s}}", var);
		*ok = false;
	}
	if (template_add_seg(t, NULL, 0, var) < 0) {
		free(var);
		*ok = false;
		return NULL;
	}
	return q + 2;
}

struct template *template_parse(const struct config *cfg, const char *file, const char *text,
				size_t len, struct diag *d)
{
	struct template *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->file = util_strdup(file ? file : "");
	t->text = util_strndup(text, len);
	if (!t->file || !t->text)
		goto fail;
	if (!template_check_utf8(t->file, t->text, len, d))
		goto fail;
	bool ok = true, any_body = false;
	const char *p = t->text, *end = t->text + len;
	int line = 1;
	while (p < end) {
		const char *ls = p;
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol + 1 : end;
		if (*p == '#') {            /* comment line */
			p = le;
			line++;
			continue;
		}
		const char *lit = p;
		while (p < le) {
			const char *br = memmem(p, (size_t)(le - p), "{{", 2);
			if (!br) {
				p = le;
				break;
			}
			if (template_add_seg(t, lit, (size_t)(br - lit), NULL) < 0)
				goto fail;
			const char *next = template_parse_var(cfg, t, br, le, line, ls, d, &ok);
			if (!next)
				goto fail;
			p = lit = next;
		}
		if (template_add_seg(t, lit, (size_t)(le - lit), NULL) < 0)
			goto fail;
		for (const char *q = ls; q < le; q++)
			if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
				any_body = true;
		line++;
	}
	if (ok && !any_body) {
		diag_add(d, DIAG_ERROR, t->file, 0, 0, "template has no text");
		ok = false;
	}
	if (!ok)
		goto fail;
	return t;
fail:
	template_free(t);
	return NULL;
}

char *template_path(const struct config *cfg, const char *lang, const char *kind)
{
	char *dir = config_path(cfg, cfg->drafts.templates_dir);
	if (!dir)
		return NULL;
	struct strbuf b;
	strbuf_init(&b, 4096);
	strbuf_printf(&b, "%s/%s/%s", dir, lang, kind);
	free(dir);
	if (b.truncated || b.oom) {
		strbuf_free(&b);
		return NULL;
	}
	return strbuf_take(&b);
}

/* Is lang a plain language tag ("en", "ur-Latn")? Guards the path we build from it. */
static bool template_lang_ok(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || s[n] == '-'))
			return false;
	return n > 0 && n < 16;
}

struct template *template_load(const struct config *cfg, const char *lang, const char *kind,
			       struct diag *d)
{
	if (!template_lang_ok(lang) || !template_lang_ok(kind)) {
		diag_add(d, DIAG_ERROR, "", 0, 0, "bad template language or kind");
		return NULL;
	}
	char *path = template_path(cfg, lang, kind);
	if (!path) {
		diag_add(d, DIAG_ERROR, "", 0, 0, "template path too long");
		return NULL;
	}
	struct template *t = NULL;
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	if (stat(path, &st) == 0 && (st.st_mode & 022))
		diag_add(d, DIAG_WARNING, path, 0, 0,
			 "template is group- or world-writable (anyone in that group can change what "
			 "the drafts say)");
	if (util_read_file(path, TEMPLATE_MAX_BYTES, &text, &len) < 0) {
		diag_add(d, DIAG_ERROR, path, 0, 0, "cannot read template: %s", strerror(errno));
		goto out;
	}
	t = template_parse(cfg, path, text, len, d);
out:
	free(text);
	free(path);
	return t;
}

int template_render(const struct template *t, const struct template_var *vars, size_t n_vars,
		    struct strbuf *out)
{
	int rc = 0;
	for (size_t i = 0; i < t->n_segs; i++) {
		const struct template_seg *s = &t->segs[i];
		if (!s->var) {
			rc |= strbuf_append(out, s->text, s->len);
			continue;
		}
		for (size_t j = 0; j < n_vars; j++) {
			if (strcmp(vars[j].name, s->var) == 0) {
				if (vars[j].value)
					rc |= strbuf_puts(out, vars[j].value);
				break;
			}
		}
	}
	return rc ? -1 : 0;
}

bool template_lang_available(const struct config *cfg, const char *lang)
{
	if (!template_lang_ok(lang))
		return false;
	char *path = template_path(cfg, lang, "apology");
	bool ok = path && access(path, R_OK) == 0;
	free(path);
	return ok;
}

/* ---- sets -------------------------------------------------------------------------------- */

#define TEMPLATE_SET_MAX ((size_t)(CONFIG_MAX_LANGS + 5) * 3)

struct template_set {
	struct {
		char lang[16];
		const char *kind;
		struct template *t;
	} v[TEMPLATE_SET_MAX];
	size_t n;
};

/* Languages to look at: the shipped ones plus any configured identity; calls fn for each. */
static size_t template_set_langs(const struct config *cfg, const char *out[], size_t max)
{
	size_t n = 0;
	for (size_t i = 0; template_langs[i] && n < max; i++)
		out[n++] = template_langs[i];
	for (size_t i = 0; i < cfg->drafts.n_identities && n < max; i++) {
		const char *l = cfg->drafts.identities[i].lang;
		bool seen = false;
		for (size_t j = 0; j < n; j++)
			seen |= strcmp(out[j], l) == 0;
		if (!seen && l && template_lang_ok(l))
			out[n++] = l;
	}
	return n;
}

struct template_set *template_set_load(const struct config *cfg, struct diag *d)
{
	struct template_set *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	const char *langs[CONFIG_MAX_LANGS + 5];
	size_t nl = template_set_langs(cfg, langs, UTIL_ARRAY_LEN(langs));
	for (size_t i = 0; i < nl; i++) {
		if (!template_lang_available(cfg, langs[i]))
			continue;
		for (size_t k = 0; template_kinds[k] && s->n < TEMPLATE_SET_MAX; k++) {
			struct template *t = template_load(cfg, langs[i], template_kinds[k], d);
			if (!t)
				continue;
			/* template_lang_available() took only names under 16 bytes: it fits */
			(void)snprintf(s->v[s->n].lang, sizeof(s->v[s->n].lang), "%s", langs[i]);
			s->v[s->n].kind = template_kinds[k];
			s->v[s->n].t = t;
			s->n++;
		}
	}
	return s;
}

const struct template *template_set_get(const struct template_set *s, const char *lang,
					const char *kind)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].lang, lang) == 0 && strcmp(s->v[i].kind, kind) == 0)
			return s->v[i].t;
	return NULL;
}

void template_set_free(struct template_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		template_free(s->v[i].t);
	free(s);
}

int template_lint(const struct config *cfg, struct diag *d)
{
	size_t before = d->errors;
	const char *langs[CONFIG_MAX_LANGS + 5];
	size_t nl = template_set_langs(cfg, langs, UTIL_ARRAY_LEN(langs));
	for (size_t i = 0; i < nl; i++) {
		bool is_default = cfg->drafts.default_lang &&
				  strcmp(langs[i], cfg->drafts.default_lang) == 0;
		for (size_t k = 0; template_kinds[k]; k++) {
			char *path = template_path(cfg, langs[i], template_kinds[k]);
			if (path && access(path, F_OK) != 0) {
				diag_add(d, is_default ? DIAG_ERROR : DIAG_WARNING, path, 0, 0,
					 "template missing%s", is_default ? " for the default language" :
					 ": drafts in this language use the default language");
				free(path);
				continue;
			}
			free(path);
			template_free(template_load(cfg, langs[i], template_kinds[k], d));
		}
		if (template_lang_available(cfg, langs[i]) && !config_identity(cfg, langs[i]))
			diag_add(d, DIAG_WARNING, cfg->path ? cfg->path : "", 0, 0,
				 "no drafts identity for language %s (the default language's is used)",
				 langs[i]);
	}
	return (int)(d->errors - before);
}
