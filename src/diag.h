/*
 * diag.h - lists of "file:line[:col]: text" problems found in config, rule and template files
 *
 * Library code never logs or exits on a bad file: it appends every problem it finds here and
 * returns an error; the caller decides (the daemon keeps the last good config, lint prints).
 *
 * OWNERSHIP  diag_add*() copy their arguments. diag_free() releases the entries.
 */
#ifndef AMENDS_DIAG_H
#define AMENDS_DIAG_H

#include <stddef.h>
#include <stdio.h>

enum diag_severity { DIAG_ERROR, DIAG_WARNING };

struct diag_entry {
	enum diag_severity sev;
	char *file;   /* may be "" */
	int line;     /* 0 = none */
	int col;      /* 0 = none */
	char *text;
};

struct diag {
	struct diag_entry *v;
	size_t n, cap;
	size_t errors, warnings;
};

void diag_init(struct diag *d);
void diag_free(struct diag *d);
void diag_add(struct diag *d, enum diag_severity sev, const char *file, int line, int col,
	      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
#define diag_error(d, file, line, ...) diag_add((d), DIAG_ERROR, (file), (line), 0, __VA_ARGS__)
#define diag_warning(d, file, line, ...) diag_add((d), DIAG_WARNING, (file), (line), 0, __VA_ARGS__)
/* Print "file:line:col: error: text" lines. */
void diag_print(const struct diag *d, FILE *fp);
/* Log every entry (errors as err, warnings as warn) with an optional prefix. */
void diag_log(const struct diag *d, const char *prefix);
/* Move every entry of src to the end of dst. */
void diag_merge(struct diag *dst, struct diag *src);

#endif
