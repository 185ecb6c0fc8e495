/*
 * msgdiff.h - where two parses of one message differ (tests and fuzz targets only)
 *
 * msgdiff() compares every field of two struct message and returns a static description of
 * the first difference, or NULL when they are the same. Used to check that message.c's own
 * reading of plain top-level headers gives what GMime's reading gives (test_message,
 * fuzz_mime).
 */
#ifndef AMENDS_TESTS_MSGDIFF_H
#define AMENDS_TESTS_MSGDIFF_H

#include <stdio.h>
#include <string.h>

#include "message.h"

static inline const char *msgdiff_str(const char *what, const char *a, const char *b, char *buf,
			       size_t n)
{
	if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0)) {
		snprintf(buf, n, "%s: \"%.80s\" vs \"%.80s\"", what, a ? a : "(null)",
			 b ? b : "(null)");
		return buf;
	}
	return NULL;
}

static inline const char *msgdiff_mem(const char *what, const char *a, size_t al, const char *b,
			       size_t bl, char *buf, size_t n)
{
	if (al != bl || (al && memcmp(a, b, al) != 0)) {
		snprintf(buf, n, "%s: %zu bytes \"%.60s\" vs %zu bytes \"%.60s\"", what, al,
			 a ? a : "", bl, b ? b : "");
		return buf;
	}
	return NULL;
}

static inline const char *msgdiff(const struct message *a, const struct message *b)
{
	static char buf[512];
	const char *d;

#define MSGDIFF_STR(f) do { if ((d = msgdiff_str(#f, a->f, b->f, buf, sizeof(buf)))) return d; } while (0)
#define MSGDIFF_NUM(f) do { if (a->f != b->f) { \
		snprintf(buf, sizeof(buf), "%s: %lld vs %lld", #f, (long long)a->f, (long long)b->f); \
		return buf; } } while (0)
	MSGDIFF_STR(subject);
	MSGDIFF_STR(from_addr);
	MSGDIFF_STR(from_name);
	MSGDIFF_STR(to_addr);
	MSGDIFF_STR(message_id);
	MSGDIFF_STR(in_reply_to);
	MSGDIFF_STR(references);
	MSGDIFF_STR(date);
	MSGDIFF_NUM(date_t);
	MSGDIFF_STR(content_type);
	MSGDIFF_NUM(n_headers);
	for (size_t i = 0; i < a->n_headers; i++) {
		if ((d = msgdiff_str("header name", a->headers[i].name, b->headers[i].name, buf,
				     sizeof(buf))) ||
		    (d = msgdiff_str("header value", a->headers[i].value, b->headers[i].value, buf,
				     sizeof(buf))))
			return d;
	}
	MSGDIFF_NUM(n_parts);
	for (size_t i = 0; i < a->n_parts; i++) {
		const struct message_part *p = &a->parts[i], *q = &b->parts[i];

		if (p->index != q->index || p->depth != q->depth || p->is_html != q->is_html ||
		    p->in_rfc822 != q->in_rfc822 || p->truncated != q->truncated ||
		    p->shadowed != q->shadowed) {
			snprintf(buf, sizeof(buf), "part %zu: flags or position differ", i);
			return buf;
		}
		if ((d = msgdiff_str("part content_type", p->content_type, q->content_type, buf,
				     sizeof(buf))) ||
		    (d = msgdiff_str("part charset", p->charset, q->charset, buf, sizeof(buf))) ||
		    (d = msgdiff_mem("part text", p->text, p->text_len, q->text, q->text_len, buf,
				     sizeof(buf))) ||
		    (d = msgdiff_mem("part new_text", p->new_text, p->new_len, q->new_text,
				     q->new_len, buf, sizeof(buf))) ||
		    (d = msgdiff_mem("part quoted_text", p->quoted_text, p->quoted_len,
				     q->quoted_text, q->quoted_len, buf, sizeof(buf))))
			return d;
	}
	MSGDIFF_NUM(bodies_left_out);
	if ((d = msgdiff_mem("body_new", a->body_new, a->body_new_len, b->body_new,
			     b->body_new_len, buf, sizeof(buf))) ||
	    (d = msgdiff_mem("body_quoted", a->body_quoted, a->body_quoted_len, b->body_quoted,
			     b->body_quoted_len, buf, sizeof(buf))))
		return d;
	MSGDIFF_NUM(limits_hit);
#undef MSGDIFF_STR
#undef MSGDIFF_NUM
	return NULL;
}

#endif
