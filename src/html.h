/*
 * html.h - the visible text of an HTML part (libxml2's HTML parser)
 *
 * Entities and numeric character references are decoded; <script>, <style>, <head>, <title>
 * and <template> are dropped; block elements become line breaks; whitespace collapses as a
 * browser shows it. <blockquote> content is quoted text: each of its lines is prefixed with
 * "> " per nesting level, so that quote.c separates it like a plain-text reply.
 *
 * OWNERSHIP  html_to_text() appends to the caller's strbuf; nothing else is kept.
 */
#ifndef AMENDS_HTML_H
#define AMENDS_HTML_H

#include <stddef.h>

struct strbuf;

/* html_to_text - append the visible text of the UTF-8 document html[0..len) to out (LF line
 * ends, no leading or trailing blank lines). Stops early once out is truncated at its limit.
 * The tree is walked iteratively, so nesting depth costs no stack. Returns 0, or -1 when out
 * of memory (an unparsable document is not an error: it yields what libxml2 recovered). */
int html_to_text(const char *html, size_t len, struct strbuf *out);

/* Call once before threads start (xmlInitParser); idempotent. message_global_init() calls it. */
void html_global_init(void);

#endif
