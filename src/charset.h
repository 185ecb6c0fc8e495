/*
 * charset.h - declared charsets to UTF-8, through an allow-list in front of iconv
 *
 * OWNERSHIP  nothing is returned that the caller must free: text is appended to the caller's
 *            strbuf. The descriptors that keep glibc's converters loaded live as long as the
 *            process (charset.c says why).
 */
#ifndef AMENDS_CHARSET_H
#define AMENDS_CHARSET_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>

enum charset_result {
	CHARSET_VALID,          /* appended text was checked as UTF-8 or made by us */
	CHARSET_CONVERTED,      /* appended text is iconv's output: not checked again here */
	CHARSET_REFUSED,        /* not on the allow-list: ASCII kept, every other byte U+FFFD */
};

/* The name (n bytes, surrounding blanks and quotes ignored, any case) is on the allow-list.
 * An empty name is: it means "undeclared" (UTF-8 when it is, else windows-1252). */
bool charset_allowed(const char *name, size_t n);

/* Append in[0..n), declared as charset cs[0..cslen), to out as UTF-8: invalid sequences become
 * U+FFFD. out->oom is set when memory ran out. */
enum charset_result charset_to_utf8(const char *cs, size_t cslen, const char *in, size_t n,
				    struct strbuf *out);

#endif
