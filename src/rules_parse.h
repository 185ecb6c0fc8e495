/*
 * rules_parse.h - internal interface between the rule-file parser and the rule compiler
 *
 * rules_parse.c turns the text of one rule file into struct rule records (syntax only: no PCRE2
 * yet); rules.c compiles them and builds the ruleset. Not for use outside rules*.c.
 *
 * OWNERSHIP  The builder owns every rule appended to it until rules.c moves them into a ruleset.
 * DIAGNOSTICS  Errors go to b->d as "file:line:col: text"; columns count characters from 1.
 */
#ifndef AMENDS_RULES_PARSE_H
#define AMENDS_RULES_PARSE_H

#include <stddef.h>
#include "rules.h"

/* Index after the character class at p[i] == '[', or -1 (rules.c; also used by the anchor
 * analysis in rules_anchors.c). */
long rules_skip_class(const char *p, size_t n, size_t i);

#define RULES_MAX_PATTERN_BYTES 4096     /* RELIABILITY 3.1: cap pattern length */
#define RULES_MAX_NAME_BYTES 128
#define RULES_MAX_ERRORS 200             /* per load: a binary file must not flood the list */
#define RULES_MAX_SCORE 1000.0

struct rules_builder {
	const struct config *cfg;
	struct diag *d;
	struct rule *rules;
	size_t n, cap;
	size_t *names;         /* open-addressing table of rule indexes + 1 (0 = empty) */
	size_t names_cap;      /* a power of two */
	size_t errors;         /* errors added by this load */
	bool oom;
};

/* Parse one file's text; appends complete, valid rules to b (not yet compiled). */
void rules_parse_buffer(struct rules_builder *b, const char *file, const char *text, size_t len);
/* Compile r's pattern (rules.c); -1 after adding an error to b. */
int rules_compile_rule(struct rules_builder *b, struct rule *r);
/* Set r->anchors from its normalized pattern np (rules_anchors.c); -1 only when out of memory. */
int rules_anchors_compute(struct rule *r, const char *np, size_t n);
/* Build / free the ruleset's prefilter automata from the rules' anchors; -1 out of memory. */
int rules_prefilter_build(struct ruleset *rs);
void rules_prefilter_free(struct rules_prefilter *pf);
/* Free the strings and compiled code of one rule (not the struct itself). */
void rules_rule_clear(struct rule *r);
/* Number of UTF-8 characters in s[0..n) (bytes that do not continue a sequence). */
int rules_utf8_chars(const char *s, size_t n);
/* Add an error, counting it against RULES_MAX_ERRORS. */
void rules_error(struct rules_builder *b, const char *file, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif
