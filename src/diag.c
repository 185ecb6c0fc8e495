/*
 * diag.c - collect "file:line:col: text" problems for config, rule and template files
 */
#include "diag.h"
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void diag_init(struct diag *d)
{
	memset(d, 0, sizeof(*d));
}

void diag_free(struct diag *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].text);
	}
	free(d->v);
	memset(d, 0, sizeof(*d));
}

static void diag_push(struct diag *d, enum diag_severity sev, const char *file, int line, int col,
		      char *text)
{
	struct diag_entry *e;

	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 8;
		struct diag_entry *nv = realloc(d->v, ncap * sizeof(*nv));

		if (!nv) {
			free(text);
			/* Still count it: a caller must not take a failed load for a clean one. */
			if (sev == DIAG_ERROR) d->errors++; else d->warnings++;
			return;
		}
		d->v = nv;
		d->cap = ncap;
	}
	e = &d->v[d->n++];
	e->sev = sev;
	e->file = util_strdup(file ? file : "");
	e->line = line;
	e->col = col;
	e->text = text;
	if (sev == DIAG_ERROR)
		d->errors++;
	else
		d->warnings++;
}

void diag_add(struct diag *d, enum diag_severity sev, const char *file, int line, int col,
	      const char *fmt, ...)
{
	struct strbuf b;
	va_list ap;

	strbuf_init(&b, 4096);
	va_start(ap, fmt);
	strbuf_vprintf(&b, fmt, ap);
	va_end(ap);
	diag_push(d, sev, file, line, col, strbuf_take(&b));
}

/* A line longer than buf is cut: still a readable message, so snprintf's count is not needed. */
static void diag_format(const struct diag_entry *e, char *buf, size_t len)
{
	const char *sev = e->sev == DIAG_ERROR ? "error" : "warning";
	const char *text = e->text ? e->text : "";

	if (e->file && *e->file && e->line && e->col)
		(void)snprintf(buf, len, "%s:%d:%d: %s: %s", e->file, e->line, e->col, sev, text);
	else if (e->file && *e->file && e->line)
		(void)snprintf(buf, len, "%s:%d: %s: %s", e->file, e->line, sev, text);
	else if (e->file && *e->file)
		(void)snprintf(buf, len, "%s: %s: %s", e->file, sev, text);
	else
		(void)snprintf(buf, len, "%s: %s", sev, text);
}

/* Write errors stay in fp's error flag for the caller: amendsctl checks stdout once at exit. */
void diag_print(const struct diag *d, FILE *fp)
{
	char buf[4096];

	for (size_t i = 0; i < d->n; i++) {
		diag_format(&d->v[i], buf, sizeof(buf));
		(void)fprintf(fp, "%s\n", buf);
	}
}

void diag_log(const struct diag *d, const char *prefix)
{
	char buf[4096];

	for (size_t i = 0; i < d->n; i++) {
		diag_format(&d->v[i], buf, sizeof(buf));
		if (d->v[i].sev == DIAG_ERROR)
			log_err("%s%s", prefix ? prefix : "", buf);
		else
			log_warn("%s%s", prefix ? prefix : "", buf);
	}
}

void diag_merge(struct diag *dst, struct diag *src)
{
	for (size_t i = 0; i < src->n; i++) {
		struct diag_entry *e = &src->v[i];

		diag_push(dst, e->sev, e->file, e->line, e->col, e->text);
		e->text = NULL;
	}
	diag_free(src);
}
