/*
 * template.h - reply templates: load, check and render {{placeholder}} text
 *
 * A template is a UTF-8 text file conf/templates/<lang>/<kind> (kind: apology, winback,
 * partways). Lines starting with '#' are comments. Everything else is the body of the draft,
 * with placeholders written {{name}}. The known names are listed in template_names[] plus
 * count_<category> for every category of the config. An unknown name, an unterminated "{{",
 * invalid UTF-8 or an empty body is an error reported as "file:line:col: text".
 * Values are inserted as given: the caller (draft.c) has already sanitized them.
 *
 * OWNERSHIP  template_load() returns a template freed with template_free(); the rendered text
 *            is appended to the caller's strbuf. template_set_load() returns a set freed with
 *            template_set_free(); the templates inside belong to the set.
 * DIAGNOSTICS  Problems go into the caller's struct diag; nothing here logs or exits.
 */
#ifndef AMENDS_TEMPLATE_H
#define AMENDS_TEMPLATE_H

#include <stddef.h>
#include <stdbool.h>
#include "config.h"
#include "diag.h"
#include "util.h"

#define TEMPLATE_MAX_BYTES ((size_t)64 * 1024)

struct template;

struct template_var {
	const char *name;
	const char *value;   /* NULL renders as "" */
};

/* The reply languages that ship templates, and the kinds, NULL-terminated. */
extern const char *const template_langs[];
extern const char *const template_kinds[];
/* The fixed placeholder names, NULL-terminated (count_<category> comes on top). */
extern const char *const template_names[];

/* Is name a placeholder this config knows? */
bool template_name_known(const struct config *cfg, const char *name);
/* Parse text (len bytes) named file (for diagnostics). NULL when it has errors (all in d). */
struct template *template_parse(const struct config *cfg, const char *file, const char *text,
				size_t len, struct diag *d);
/* Load <templates_dir>/<lang>/<kind>. lang and kind must come from template_langs/kinds or the
 * config (never from mail). NULL on error (in d); a missing file is "file: cannot read". */
struct template *template_load(const struct config *cfg, const char *lang, const char *kind,
			       struct diag *d);
void template_free(struct template *t);
/* Render into out; unknown vars (impossible after a clean parse) render empty.
 * Returns 0, or -1 when out hit its limit or ran out of memory. */
int template_render(const struct template *t, const struct template_var *vars, size_t n_vars,
		    struct strbuf *out);
/* Does <templates_dir>/<lang>/ exist with at least the apology template? */
bool template_lang_available(const struct config *cfg, const char *lang);
/* The path of a template (malloc'd), or NULL. */
char *template_path(const struct config *cfg, const char *lang, const char *kind);

/* Every template of every shipped language and of every configured identity, preloaded. */
struct template_set;
struct template_set *template_set_load(const struct config *cfg, struct diag *d);
/* The template for (lang, kind), or NULL when it is not in the set. */
const struct template *template_set_get(const struct template_set *s, const char *lang,
					const char *kind);
void template_set_free(struct template_set *s);

/* Check every template (amendsctl lint): unknown placeholders, syntax, UTF-8, file modes.
 * A missing template is an error for default_lang and a warning for the others. Returns the
 * number of errors added. */
int template_lint(const struct config *cfg, struct diag *d);

#endif
