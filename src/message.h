/*
 * message.h - raw RFC 5322 bytes -> decoded UTF-8 text parts and headers (with GMime 3)
 *
 * Every text/plain and text/html part at any nesting (message/rfc822 included) is decoded:
 * transfer encoding, charset -> UTF-8 (allow-listed charsets only; others and invalid bytes
 * become U+FFFD), HTML -> text (html.c), new text vs quoted text split (quote.c). RFC 2047
 * subjects and display names are decoded one encoded word at a time (works around GMime 3.2.13
 * dropping text after a padded B word, gmime issue #133). Attachments are never decoded.
 * Limits (depth, parts, header bytes/count, text per part/message) are enforced here: over a
 * limit the message is decoded as far as the limit and ->limits_hit says what was cut.
 *
 * OWNERSHIP  message_parse() returns a message the caller frees with message_free(); every
 *            string inside belongs to the message.
 */
#ifndef AMENDS_MESSAGE_H
#define AMENDS_MESSAGE_H

#include <stddef.h>
#include <stdbool.h>
#include <time.h>

/* bits of message.limits_hit */
enum {
	MESSAGE_LIMIT_DEPTH = 1 << 0,
	MESSAGE_LIMIT_PARTS = 1 << 1,
	MESSAGE_LIMIT_HEADER_BYTES = 1 << 2,
	MESSAGE_LIMIT_HEADER_COUNT = 1 << 3,
	MESSAGE_LIMIT_PART_TEXT = 1 << 4,
	MESSAGE_LIMIT_MESSAGE_TEXT = 1 << 5,
	MESSAGE_LIMIT_SIZE = 1 << 6,      /* set by the caller: the body was not collected whole */
	MESSAGE_LIMIT_CHARSET = 1 << 7,   /* a charset not on the allow-list was replaced */
};

struct message_limits {
	int mime_depth;             /* e.g. 64 */
	int mime_parts;             /* e.g. 1000 */
	size_t header_bytes;        /* 65536 */
	size_t header_value_bytes;  /* 8192 */
	int header_count;           /* 1000 */
	size_t part_text_bytes;     /* 50000 */
	size_t message_text_bytes;  /* 524288 */
	bool skip_shadowed;         /* leave shadowed parts undecoded (text ""): the daemon, which
	                             * never reads them; amendsctl check lists them */
	bool keep_attachment_bodies; /* tests: hand GMime the attachment bodies and shadowed HTML
	                              * bodies too (message.c) */
	bool gmime_headers;         /* tests: let GMime read the top-level headers even when they
	                             * are plain (the reference for message.c's own reading) */
};

struct message_header {
	char *name;                 /* as written */
	char *value;                /* unfolded, RFC 2047 decoded to UTF-8, CR/LF/NUL removed */
};

struct message_part {
	int index;                  /* 0-based, in document order */
	int depth;                  /* MIME nesting depth */
	char *content_type;         /* "text/plain", "text/html" */
	char *charset;              /* as declared, lowercased ("" if none) */
	bool is_html;
	bool in_rfc822;             /* inside a message/rfc822 attachment (forwarded: quoted target) */
	bool truncated;             /* cut at part_text_bytes / message_text_bytes */
	bool shadowed;              /* HTML alternative of a text/plain part that has text:
	                             * decoded and listed, but left out of body_new/body_quoted
	                             * (same text twice). An empty or blank text/plain, or a
	                             * short stub ("use an HTML-capable client"), shadows
	                             * nothing: the HTML is then the text. */
	int alt_group;              /* which multipart/alternative a shadowed part belongs to,
	                             * -1 none (message.c's bookkeeping) */
	char *text;                 /* whole decoded text, UTF-8, LF line ends */
	size_t text_len;
	char *new_text;             /* the customer's own new text */
	size_t new_len;
	char *quoted_text;          /* quoted / forwarded / attributed text */
	size_t quoted_len;
};

struct message {
	char *subject;              /* decoded, "" if none */
	char *from_addr;            /* addr-spec of the first From mailbox, "" if none */
	char *from_name;            /* decoded display name, "" if none */
	char *to_addr;
	char *message_id;           /* without angle brackets, "" if none */
	char *in_reply_to;          /* raw, "" if none */
	char *references;           /* raw, "" if none */
	char *date;                 /* raw Date header, "" if none */
	time_t date_t;              /* parsed, 0 if none */
	char *content_type;         /* top-level "type/subtype", lowercased */
	struct message_header *headers;
	size_t n_headers;
	struct message_part *parts;
	size_t n_parts;
	size_t bodies_left_out;     /* attachment bodies and shadowed HTML bodies (skip_shadowed)
	                             * GMime was not given (message.c, scan) */
	bool own_headers;           /* the top-level headers were read by message.c, not GMime
	                             * (a plain header block: message.c, split_headers) */
	bool own_body;              /* a lone text part, decoded without a GMime tree (message.c,
	                             * lone_part_of) */
	char *body_new;             /* new_text of every part, joined by "\n" (rule target body) */
	size_t body_new_len;
	char *body_quoted;          /* quoted_text of every part, joined (rule target quoted) */
	size_t body_quoted_len;
	unsigned limits_hit;        /* MESSAGE_LIMIT_* bits */
};

void message_limits_default(struct message_limits *lim);
/* The limits section of a configuration (skip_shadowed false: the caller decides). */
struct config;
void message_limits_from_config(const struct config *cfg, struct message_limits *lim);
/* Parse raw (headers, blank line, body; CRLF or LF). Returns 0 and *out, or -1 on an internal
 * failure (out of memory). Malformed mail is never an error: it yields what could be decoded. */
int message_parse(const char *raw, size_t len, const struct message_limits *lim, struct message **out);
void message_free(struct message *m);
/* First header by name (case-insensitive), or NULL. */
const char *message_header(const struct message *m, const char *name);
/* Comma-joined names of the limit bits ("depth,parts"), into buf; returns buf. */
const char *message_limits_str(unsigned bits, char *buf, size_t len);
/* Call once per process before threads start (g_mime_init); idempotent. */
void message_global_init(void);

#endif
