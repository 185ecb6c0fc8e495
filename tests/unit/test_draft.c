/* test_draft.c - the draft composer: headers, encodings, threading, localization, the R8.3
 * header-injection matrix, a bounded fuzz loop, real corpus mail, the drafter (Maildir and
 * IMAP spool), and the IMAP URL / password-file checks. Every draft is parsed back with GMime. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "config.h"
#include "draft.h"
#include "imap.h"
#include "message.h"
#include "stats.h"
#include "util.h"

static struct config *cfg;
static char tmpdir[64];

static char *srcdir_path(const char *rel)
{
	const char *top = getenv("top_srcdir");
	struct strbuf b;
	strbuf_init(&b, 0);
	strbuf_printf(&b, "%s/%s", top ? top : ".", rel);
	return strbuf_take(&b);
}

static void set_str(char **field, const char *v)
{
	free(*field);
	*field = util_strdup(v);
}

static int setup(void **state)
{
	(void)state;
	g_mime_init();
	struct diag d;
	diag_init(&d);
	cfg = config_load(NULL, &d);
	diag_free(&d);
	if (!cfg)
		return -1;
	char *tpl = srcdir_path("conf/templates");
	set_str(&cfg->drafts.templates_dir, tpl);
	free(tpl);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/amends-draft-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char p[1024];
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int teardown(void **state)
{
	(void)state;
	config_unref(cfg);
	rm_tree(tmpdir);
	g_mime_shutdown();
	return 0;
}

/* A customer's message built by hand (message.c is tested on its own). */
struct tmsg {
	struct message m;
};

static void tmsg_init(struct tmsg *t)
{
	memset(t, 0, sizeof(*t));
	t->m.subject = (char *)"Late delivery";
	t->m.from_addr = (char *)"ayesha@example.com";
	t->m.from_name = (char *)"Ayesha Khan";
	t->m.message_id = (char *)"abc123@example.com";
	t->m.references = (char *)"";
	t->m.in_reply_to = (char *)"";
	t->m.date = (char *)"Tue, 05 Mar 2024 10:15:00 +0500";
	t->m.date_t = 1709615700;
	t->m.body_new = (char *)"My parcel is late again.\nPlease fix it.";
	t->m.body_new_len = strlen(t->m.body_new);
}

static struct draft_request req_for(const struct message *m, const char *lang,
				    enum policy_draft kind)
{
	return (struct draft_request){ .kind = kind, .lang = lang, .msg = m,
				       .sender = m->from_addr, .now = 1709700000, .queue_id = "T" };
}

/* ---- the checker every draft goes through ------------------------------------------------ */

struct parsed {
	char *names[32];
	size_t n_names;
	char *subject;        /* decoded by GMime */
	char *to_name, *to_addr;
	char *body;           /* decoded by GMime */
	char *references;
	char *in_reply_to;
};

static void parsed_free(struct parsed *p)
{
	for (size_t i = 0; i < p->n_names; i++)
		free(p->names[i]);
	g_free(p->subject);
	g_free(p->to_name);
	g_free(p->to_addr);
	g_free(p->body);
	g_free(p->references);
	g_free(p->in_reply_to);
	memset(p, 0, sizeof(*p));
}

/* Structural checks of a draft; fills p from GMime. Returns a failure text or NULL. */
static const char *check_draft(const char *msg, size_t len, struct parsed *p)
{
	memset(p, 0, sizeof(*p));
	const char *sep = strstr(msg, "\r\n\r\n");
	if (!sep)
		return "no header/body separator";
	size_t hl = (size_t)(sep - msg) + 2;
	/* every line ends in CRLF; no bare CR or LF anywhere; no NUL */
	if (memchr(msg, '\0', len))
		return "NUL in draft";
	for (size_t i = 0; i < len; i++) {
		if (msg[i] == '\r' && (i + 1 >= len || msg[i + 1] != '\n'))
			return "bare CR";
		if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
			return "bare LF";
	}
	size_t ls = 0;
	for (size_t i = 0; i < hl; i++) {
		unsigned char c = (unsigned char)msg[i];
		if (c == '\r')
			continue;
		if (c == '\n') {
			if (i - 1 - ls > 998)
				return "header line over 998 octets";
			/* only a single long msg-id may run past 78 (it cannot be folded) */
			if (i - 1 - ls > 78 && strncmp(msg + ls, "References:", 11) != 0 &&
			    strncmp(msg + ls, "In-Reply-To:", 12) != 0 && msg[ls] != ' ')
				return "header line over 78 octets";
			if (msg[ls] != ' ' && msg[ls] != '\t') {
				const char *colon = memchr(msg + ls, ':', i - ls);
				if (!colon || p->n_names >= 32)
					return "header line without a name";
				p->names[p->n_names++] = util_strndup(msg + ls,
								      (size_t)(colon - msg - ls));
			}
			ls = i + 1;
			continue;
		}
		if (c < 0x20 || c >= 0x7f)
			return "non-ASCII or control byte in headers";
	}
	/* body: quoted-printable lines <= 76, ASCII */
	ls = hl + 2;
	for (size_t i = hl + 2; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];
		if (c == '\n') {
			if (i - 1 - ls > 76)
				return "body line over 76 octets";
			ls = i + 1;
		} else if (c != '\r' && (c < 0x20 || c >= 0x7f)) {
			return "raw byte in quoted-printable body";
		}
	}
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(msg, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(st);
	GMimeMessage *gm = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(st);
	if (!gm)
		return "GMime cannot parse the draft";
	const char *s = g_mime_message_get_subject(gm);
	p->subject = g_strdup(s ? s : "");
	InternetAddressList *to = g_mime_message_get_to(gm);
	if (to && internet_address_list_length(to) == 1) {
		InternetAddress *a = internet_address_list_get_address(to, 0);
		const char *nm = internet_address_get_name(a);
		p->to_name = g_strdup(nm ? nm : "");
		if (INTERNET_ADDRESS_IS_MAILBOX(a))
			p->to_addr = g_strdup(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)));
	}
	const char *r = g_mime_object_get_header(GMIME_OBJECT(gm), "References");
	p->references = r ? g_strdup(r) : NULL;
	r = g_mime_object_get_header(GMIME_OBJECT(gm), "In-Reply-To");
	p->in_reply_to = r ? g_strdup(r) : NULL;
	GMimeObject *body = g_mime_message_get_body(gm);
	if (body && GMIME_IS_TEXT_PART(body))
		p->body = g_mime_text_part_get_text(GMIME_TEXT_PART(body));
	if (p->body) {           /* GMime keeps the CRLF of the wire: compare with LF */
		char *w = p->body;
		for (char *q = p->body; *q; q++)
			if (*q != '\r')
				*w++ = *q;
		*w = '\0';
	}
	g_object_unref(gm);
	if (!p->to_addr)
		return "To is not exactly one mailbox";
	if (!p->body || !g_utf8_validate(p->body, -1, NULL))
		return "body does not decode to UTF-8";
	return NULL;
}

static const char *const full_set[] = {
	"Date", "From", "To", "Subject", "Message-ID", "In-Reply-To", "References",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Language",
	"X-Amends-Draft-Kind", NULL
};

/* The exact header set, in order; In-Reply-To only when threaded (a usable Message-ID),
 * References when threaded or refs (valid ids in the customer's References). */
static void assert_header_set2(const struct parsed *p, bool threaded, bool refs)
{
	size_t k = 0;
	for (size_t i = 0; full_set[i]; i++) {
		if (!threaded && !strcmp(full_set[i], "In-Reply-To"))
			continue;
		if (!threaded && !refs && !strcmp(full_set[i], "References"))
			continue;
		if (k >= p->n_names || strcmp(p->names[k], full_set[i]) != 0)
			fail_msg("header %zu: expected %s, got %s", k, full_set[i],
				 k < p->n_names ? p->names[k] : "(end)");
		k++;
	}
	assert_int_equal(k, p->n_names);
}

static void assert_header_set(const struct parsed *p, bool threaded)
{
	assert_header_set2(p, threaded, threaded);
}

static char *compose_ok(const struct draft_request *req, size_t *len)
{
	char *out = NULL, *err = NULL;
	if (draft_compose(cfg, req, &out, len, &err) < 0)
		fail_msg("compose: %s", err);
	return out;
}

/* ---- basic shape ------------------------------------------------------------------------- */

static void test_basic_en(void **state)
{
	(void)state;
	struct tmsg t;
	tmsg_init(&t);
	t.m.references = (char *)"<r1@example.com> <r2@example.com>";
	struct draft_request req = req_for(&t.m, "en", POLICY_DRAFT_APOLOGY);
	size_t len;
	char *out = compose_ok(&req, &len);
	struct parsed p;
	const char *why = check_draft(out, len, &p);
	if (why)
		fail_msg("%s\n%s", why, out);
	assert_header_set(&p, true);
	assert_string_equal(p.subject, "Re: Late delivery");
	assert_string_equal(p.to_name, "Ayesha Khan");
	assert_string_equal(p.to_addr, "ayesha@example.com");
	assert_non_null(strstr(out, "\r\nIn-Reply-To: <abc123@example.com>\r\n"));
	assert_non_null(strstr(p.references, "<r1@example.com>"));
	const char *last = strstr(p.references, "<abc123@example.com>");
	assert_non_null(last);
	assert_true(strstr(p.references, "<r2@example.com>") < last);
	assert_non_null(strstr(out, "\r\nX-Amends-Draft-Kind: apology\r\n"));
	assert_non_null(strstr(out, "\r\nContent-Language: en\r\n"));
	assert_non_null(strstr(out, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
	assert_non_null(strstr(out, "\r\nContent-Transfer-Encoding: quoted-printable\r\n"));
	assert_non_null(strstr(out, "@shop.example>\r\n"));   /* Message-ID at the identity's domain */
	assert_non_null(strstr(p.body, "Dear Ayesha Khan,"));
	assert_non_null(strstr(p.body, "My name is Sarah Ahmed"));
	assert_non_null(strstr(p.body, "2024-03-05"));
	assert_non_null(strstr(p.body, "\"Late delivery\""));
	if (!strstr(p.body, "On 2024-03-05 10:15 +0500"))
		fail_msg("%s", p.body);
	assert_non_null(strstr(p.body, "On 2024-03-05 10:15 +0500, Ayesha Khan wrote:\n"
				       "> My parcel is late again.\n> Please fix it.\n"));
	assert_non_null(strstr(p.body, "Sarah Ahmed\nCustomer Care Lead"));
	assert_null(strstr(p.body, "{{"));
	/* a second draft gets a different Message-ID */
	size_t len2;
	char *out2 = compose_ok(&req, &len2);
	const char *m1 = strstr(out, "Message-ID: "), *m2 = strstr(out2, "Message-ID: ");
	assert_true(strncmp(m1, m2, 40) != 0);
	free(out2);
	parsed_free(&p);
	free(out);
}

/* Each language: its template, its attribution line, its Content-Language; RTL letters get an
 * RLM before lines that start with a left-to-right word. */
static void test_languages(void **state)
{
	static const struct {
		const char *detected, *lang, *attrib, *greeting;
	} cases[] = {
		{ "en", "en", "Ayesha Khan wrote:", "Dear Ayesha Khan," },
		{ "ur", "ur", "\xd9\x86\xdb\x92 \xd9\x84\xda\xa9\xda\xbe\xd8\xa7:", "\xd9\x85\xd8\xad\xd8\xaa\xd8\xb1\xd9\x85" },
		{ "ur-Latn", "ur", "\xd8\xa8\xd8\xaa\xd8\xa7\xd8\xb1\xdb\x8c\xd8\xae", NULL },
		{ "pa", "pa", "\xe0\xa8\xa8\xe0\xa9\x87 \xe0\xa8\xb2\xe0\xa8\xbf\xe0\xa8\x96\xe0\xa8\xbf\xe0\xa8\x86:", "\xe0\xa8\xb8\xe0\xa8\xa4\xe0\xa8\xbf" },
		{ "fa", "fa", "\xd9\x86\xd9\x88\xd8\xb4\xd8\xaa:", "\xda\xaf\xd8\xb1\xd8\xa7\xd9\x85\xdb\x8c" },
		{ "hi", "hi", "\xe0\xa4\xa8\xe0\xa5\x87 \xe0\xa4\xb2\xe0\xa4\xbf\xe0\xa4\x96\xe0\xa4\xbe:", "\xe0\xa4\xaa\xe0\xa5\x8d\xe0\xa4\xb0\xe0\xa4\xbf\xe0\xa4\xaf" },
		{ "hi-Latn", "hi", "\xe0\xa4\xa8\xe0\xa5\x87 \xe0\xa4\xb2\xe0\xa4\xbf\xe0\xa4\x96\xe0\xa4\xbe:", NULL },
		{ "de", "en", "wrote:", NULL },
		{ "und", "en", "wrote:", NULL },
	};
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		for (enum policy_draft k = POLICY_DRAFT_PARTWAYS; k <= POLICY_DRAFT_APOLOGY; k++) {
			struct tmsg t;
			tmsg_init(&t);
			struct draft_request req = req_for(&t.m, cases[i].detected, k);
			size_t len;
			char *out = compose_ok(&req, &len);
			struct parsed p;
			const char *why = check_draft(out, len, &p);
			if (why)
				fail_msg("%s/%d: %s", cases[i].detected, k, why);
			char cl[64];
			snprintf(cl, sizeof(cl), "\r\nContent-Language: %s\r\n", cases[i].lang);
			assert_non_null(strstr(out, cl));
			if (!strstr(p.body, cases[i].attrib))
				fail_msg("%s: no attribution '%s'", cases[i].detected, cases[i].attrib);
			if (cases[i].greeting)
				assert_non_null(strstr(p.body, cases[i].greeting));
			bool rtl = !strcmp(cases[i].lang, "ur") || !strcmp(cases[i].lang, "fa");
			/* the greeting line starts "<name> ..." (fa) or "<word> <Latin name>": in RTL
			 * letters a Latin name at the start of a line is preceded by RLM */
			if (rtl && !strcmp(cases[i].lang, "fa"))
				assert_non_null(strstr(p.body, "\xe2\x80\x8f" "Ayesha Khan"));
			if (!rtl)
				assert_null(strstr(p.body, "\xe2\x80\x8f"));
			parsed_free(&p);
			free(out);
		}
	}
}

/* partways lists the documented history, oldest first, cleaned. */
static void test_history(void **state)
{
	(void)state;
	struct tmsg t;
	tmsg_init(&t);
	struct tally_incident inc[3] = {
		{ .when = 1709600000, .subject = (char *)"Third: refund now" },
		{ .when = 1709000000, .subject = (char *)"Re: Second\r\nBcc: evil@x" },
		{ .when = 1708000000, .subject = (char *)"" },
	};
	struct tally_history h = { inc, 3 };
	struct tally_count cnt[2] = { { (char *)"complaint", 4, 0, 0 }, { (char *)"refund", 2, 0, 0 } };
	struct tally_counts counts = { cnt, 2 };
	struct draft_request req = req_for(&t.m, "en", POLICY_DRAFT_PARTWAYS);
	req.history = &h;
	req.counts = &counts;
	char *out = NULL, *body = NULL, *err = NULL;
	size_t len;
	assert_int_equal(draft_compose_ex(cfg, &req, &out, &len, &body, &err), 0);
	const char *a = strstr(body, "  - 2024-02-15 \xe2\x80\x94 (no subject)\n");
	const char *b = strstr(body, "  - 2024-02-27 \xe2\x80\x94 Second Bcc: evil@x\n");
	const char *c = strstr(body, "  - 2024-03-05 \xe2\x80\x94 Third: refund now");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_true(a < b && b < c);
	assert_non_null(strstr(body, "contact us 3 times"));
	free(out);
	free(body);
}

/* ---- R8.3: the header-injection matrix --------------------------------------------------- */

struct inj_case {
	const char *what;
	const char *subject, *name, *addr, *msgid, *refs, *date;
	const char *body;
	size_t body_len;        /* 0 = strlen */
	const char *want_subject;   /* NULL: draft_reply_subject(subject) */
	const char *want_name;      /* NULL: don't check */
	bool threaded;
	int ok;                 /* 0: compose must fail */
};

static char big_subject[100 * 1024 + 1];
static char many_refs[500 * 40];
static char long_id[400];

static void make_big_inputs(void)
{
	for (size_t i = 0; i < sizeof(big_subject) - 1; i++)
		big_subject[i] = "ab\xd8\xa7 cd"[i % 6];   /* includes a 2-byte letter */
	big_subject[sizeof(big_subject) - 1] = '\0';
	size_t n = 0;
	for (int i = 0; i < 500; i++)
		n += (size_t)snprintf(many_refs + n, sizeof(many_refs) - n, "<id%03d@example.com> ", i);
	memset(long_id, 'a', sizeof(long_id) - 1);
	memcpy(long_id + 200, "@x", 2);
	long_id[sizeof(long_id) - 1] = '\0';
}

#define INJ(...) { __VA_ARGS__ }
static const struct inj_case inj_cases[] = {
	INJ(.what = "CRLF Bcc in subject", .subject = "Hi\r\nBcc: x@evil", .want_subject = "Re: Hi Bcc: x@evil", .threaded = true, .ok = 1),
	INJ(.what = "bare CR in subject", .subject = "a\rb", .want_subject = "Re: a b", .threaded = true, .ok = 1),
	INJ(.what = "bare LF in subject", .subject = "a\nBcc: y@evil", .want_subject = "Re: a Bcc: y@evil", .threaded = true, .ok = 1),
	INJ(.what = "folded continuation", .subject = "a\r\n\tb", .want_subject = "Re: a b", .threaded = true, .ok = 1),
	INJ(.what = "decoded Q CRLF", .subject = "a\r\nBcc: x", .want_subject = "Re: a Bcc: x", .threaded = true, .ok = 1),
	INJ(.what = "literal Q word", .subject = "=?UTF-8?Q?a=0D=0ABcc:_x?=", .want_subject = "Re: =?UTF-8?Q?a=0D=0ABcc:_x?=", .threaded = true, .ok = 1),
	INJ(.what = "literal B word", .subject = "=?UTF-8?B?YQ0KQmNjOiB4?=", .want_subject = "Re: =?UTF-8?B?YQ0KQmNjOiB4?=", .threaded = true, .ok = 1),
	INJ(.what = "controls", .subject = "a\x01\x02\x1b[31mred\x7f", .want_subject = "Re: a [31mred", .threaded = true, .ok = 1),
	INJ(.what = "C1 controls", .subject = "a\xc2\x85" "b\xc2\x9b" "c", .want_subject = "Re: a b c", .threaded = true, .ok = 1),
	INJ(.what = "line separator", .subject = "a\xe2\x80\xa8" "b\xe2\x80\xa9" "c", .want_subject = "Re: a b c", .threaded = true, .ok = 1),
	INJ(.what = "invalid UTF-8", .subject = "caf\xe9 \xff\xfe ok", .want_subject = "Re: caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd ok", .threaded = true, .ok = 1),
	INJ(.what = "overlong UTF-8", .subject = "\xc0\xaf" "x", .threaded = true, .ok = 1),
	INJ(.what = "surrogate", .subject = "\xed\xa0\x80" "x", .threaded = true, .ok = 1),
	INJ(.what = "RTL override", .subject = "abc\xe2\x80\xae" "fdp.exe", .want_subject = "Re: abcfdp.exe", .threaded = true, .ok = 1),
	INJ(.what = "RTL isolates", .subject = "\xe2\x81\xa7" "x\xe2\x81\xa9", .want_subject = "Re: x", .threaded = true, .ok = 1),
	INJ(.what = "Persian with ZWNJ", .subject = "\xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae\xd9\x88\xd8\xa7\xd9\x87\xd9\x85", .want_subject = "Re: \xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae\xd9\x88\xd8\xa7\xd9\x87\xd9\x85", .threaded = true, .ok = 1),
	INJ(.what = "100 KB subject", .subject = big_subject, .threaded = true, .ok = 1),
	INJ(.what = "Re: Re: RE: Aw:", .subject = "Re: Re: RE[2]: Aw: Sv: order 5", .want_subject = "Re: order 5", .threaded = true, .ok = 1),
	INJ(.what = "only Re:", .subject = "Re:", .want_subject = "Re:", .threaded = true, .ok = 1),
	INJ(.what = "empty subject", .subject = "", .want_subject = "Re:", .threaded = true, .ok = 1),
	INJ(.what = "one 300-char word", .subject = "x", .threaded = true, .ok = 1),
	INJ(.what = "name with quote", .name = "Ann \"The Boss\" Lee", .want_name = "Ann \"The Boss\" Lee", .threaded = true, .ok = 1),
	INJ(.what = "name with comma", .name = "Lee, Ann", .want_name = "Lee, Ann", .threaded = true, .ok = 1),
	INJ(.what = "name with angles", .name = "x <evil@x> y", .want_name = "x <evil@x> y", .threaded = true, .ok = 1),
	INJ(.what = "name with backslash", .name = "a\\b\\", .want_name = "a\\b\\", .threaded = true, .ok = 1),
	INJ(.what = "name with CRLF", .name = "a\r\nBcc: x@evil", .want_name = "a Bcc: x@evil", .threaded = true, .ok = 1),
	INJ(.what = "name Urdu", .name = "\xd8\xb9\xd8\xa7\xd8\xa6\xd8\xb4\xdb\x81", .want_name = "\xd8\xb9\xd8\xa7\xd8\xa6\xd8\xb4\xdb\x81", .threaded = true, .ok = 1),
	INJ(.what = "name encoded-word look", .name = "=?UTF-8?Q?x?=", .want_name = "=?UTF-8?Q?x?=", .threaded = true, .ok = 1),
	INJ(.what = "name RTL override", .name = "\xe2\x80\xae" "evil", .want_name = "evil", .threaded = true, .ok = 1),
	INJ(.what = "address with CRLF", .addr = "a@b.c\r\nBcc: x@evil", .ok = 0),
	INJ(.what = "address with space", .addr = "a b@c.d", .ok = 0),
	INJ(.what = "address non-ASCII", .addr = "\xd8\xa7@b.c", .ok = 0),
	INJ(.what = "address empty", .addr = "", .ok = 0),
	INJ(.what = "address two @", .addr = "a@b@c", .ok = 0),
	INJ(.what = "msgid with CRLF", .msgid = "a@b\r\nBcc: x", .refs = "", .threaded = false, .ok = 1),
	INJ(.what = "msgid with space", .msgid = "a b@c", .refs = "", .threaded = false, .ok = 1),
	INJ(.what = "msgid in brackets", .msgid = "<ok@x>", .threaded = true, .ok = 1),
	INJ(.what = "msgid too long", .msgid = long_id, .refs = "", .threaded = false, .ok = 1),
	INJ(.what = "references hostile", .refs = "<a@b>\r\nBcc: x <c d@e> <\"q\"@x> <ok@y>", .threaded = true, .ok = 1),
	INJ(.what = "references unbalanced", .refs = "<<<a@b> <c@d", .threaded = true, .ok = 1),
	INJ(.what = "500 references", .refs = many_refs, .threaded = true, .ok = 1),
	INJ(.what = "date with CRLF", .date = "Tue, 05 Mar 2024\r\nBcc: x +0500", .threaded = true, .ok = 1),
	INJ(.what = "body with NUL and CR", .body = "a\0b\rc\r\nd\x1b[2J", .body_len = 12, .threaded = true, .ok = 1),
	INJ(.what = "body From and dot", .body = "From here\n.\n..x\n", .threaded = true, .ok = 1),
	INJ(.what = "body RTL override", .body = "ok \xe2\x80\xae" "gnp.exe", .threaded = true, .ok = 1),
};

static void test_injection_matrix(void **state)
{
	(void)state;
	make_big_inputs();
	assert_true(UTIL_ARRAY_LEN(inj_cases) >= 30);
	static char word300[301];
	memset(word300, 'w', 300);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(inj_cases); i++) {
		const struct inj_case *c = &inj_cases[i];
		struct tmsg t;
		tmsg_init(&t);
		if (c->subject)
			t.m.subject = (char *)(strcmp(c->what, "one 300-char word") ? c->subject : word300);
		if (c->name)
			t.m.from_name = (char *)c->name;
		if (c->addr)
			t.m.from_addr = (char *)c->addr;
		if (c->msgid)
			t.m.message_id = (char *)c->msgid;
		if (c->refs)
			t.m.references = (char *)c->refs;
		if (c->date)
			t.m.date = (char *)c->date;
		if (c->body) {
			t.m.body_new = (char *)c->body;
			t.m.body_new_len = c->body_len ? c->body_len : strlen(c->body);
		}
		for (int l = 0; l < 2; l++) {
			struct draft_request req = req_for(&t.m, l ? "ur" : "en", POLICY_DRAFT_WINBACK);
			char *out = NULL, *err = NULL;
			size_t len = 0;
			int rc = draft_compose(cfg, &req, &out, &len, &err);
			if (!c->ok) {
				if (rc == 0)
					fail_msg("%s: should be refused", c->what);
				free(err);
				continue;
			}
			if (rc < 0)
				fail_msg("%s: %s", c->what, err);
			struct parsed p;
			const char *why = check_draft(out, len, &p);
			if (why)
				fail_msg("%s: %s\n%.3000s", c->what, why, out);
			assert_header_set(&p, c->threaded);
			char *want = c->want_subject ? util_strdup(c->want_subject)
						     : draft_reply_subject(t.m.subject);
			if (strcmp(p.subject, want) != 0)
				fail_msg("%s: subject '%s' != '%s'", c->what, p.subject, want);
			assert_true(g_utf8_strlen(p.subject, -1) <= DRAFT_SUBJECT_MAX_CP);
			free(want);
			if (c->want_name && strcmp(p.to_name, c->want_name) != 0)
				fail_msg("%s: name '%s' != '%s'", c->what, p.to_name, c->want_name);
			assert_string_equal(p.to_addr, t.m.from_addr);
			assert_null(strstr(out, "\nBcc:"));
			if (p.references) {
				size_t ids = 0;
				for (const char *q = p.references; (q = strchr(q, '<')); q++)
					ids++;
				assert_true(ids >= 1 && ids <= DRAFT_MAX_REFERENCES);
				/* the first of the thread is kept, the parent comes last */
				if (c->refs == many_refs) {
					assert_int_equal(ids, DRAFT_MAX_REFERENCES);
					assert_non_null(strstr(p.references, "<id000@example.com>"));
					assert_non_null(strstr(p.references, "<id499@example.com>"));
					assert_null(strstr(p.references, "<id100@example.com>"));
				}
				if (strstr(c->what, "hostile")) {
					assert_non_null(strstr(p.references, "<ok@y>"));
					assert_null(strstr(p.references, "c d@e"));
				}
			}
			if (c->body && strstr(c->what, "override"))
				assert_null(strstr(p.body, "\xe2\x80\xae"));
			if (c->body && strstr(c->what, "From"))
				assert_non_null(strstr(out, "\r\n> From here\r\n"));
			parsed_free(&p);
			free(out);
		}
	}
}

/* ---- bounded fuzz: 20,000 hostile messages from a fixed seed ----------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

static size_t random_text(char *buf, size_t cap)
{
	static const char *const atoms[] = {
		"\r", "\n", "\r\n", "\t", " ", "  ", "\x01", "\x7f", "\xc2\x85", "\xe2\x80\xae",
		"\xe2\x81\xa6", "\xe2\x80\x8c", "\xe2\x80\x8f", "\xef\xbb\xbf", "\xff", "\xc3", "\xe2\x82",
		"\xed\xa0\x80", "=?", "?=", "=?UTF-8?Q?", "=?UTF-8?B?", "=0D=0A", "Bcc: x@evil",
		"Re:", "RE[3]:", "Aw:", "\"", "\\", "<", ">", ",", ";", ":", "@", "(", ")", "a", "Z",
		"order 42", "\xd8\xa7\xd8\xb1\xd8\xaf\xd8\xb1", "\xe0\xa4\xb9\xe0\xa4\xbf",
		"\xe0\xa8\xaa\xe0\xa9\xb0", "\xf0\x9f\x98\x80", "From ", ".", "=", "_", "?",
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	};
	size_t n = 0, want = rng() % (rng() % 8 == 0 ? 4000 : 120);
	while (n < want && n + 100 < cap) {
		const char *a = atoms[rng() % UTIL_ARRAY_LEN(atoms)];
		size_t l = strlen(a);
		memcpy(buf + n, a, l);
		n += l;
	}
	buf[n] = '\0';
	return n;
}

static void test_fuzz_loop(void **state)
{
	(void)state;
	long iters = 20000;
	const char *env = getenv("AMENDS_FUZZ_ITERS");
	if (env && atol(env) > 0)
		iters = atol(env);
	static char subj[8192], name[8192], refs[8192], mid[8192], date[8192], body[8192];
	for (long it = 0; it < iters; it++) {
		struct tmsg t;
		tmsg_init(&t);
		random_text(subj, sizeof(subj));
		random_text(name, sizeof(name));
		random_text(refs, sizeof(refs));
		random_text(date, sizeof(date));
		size_t bl = random_text(body, sizeof(body));
		t.m.subject = subj;
		t.m.from_name = name;
		t.m.references = refs;
		t.m.date = date;
		if (rng() % 4 == 0) {
			random_text(mid, sizeof(mid));
			t.m.message_id = mid;
		}
		t.m.body_new = body;
		t.m.body_new_len = bl;
		static const char *const langs[] = { "en", "ur", "pa", "fa", "hi", "ur-Latn", "xx" };
		struct draft_request req = req_for(&t.m, langs[rng() % 7],
						   (enum policy_draft)(1 + rng() % 3));
		size_t len;
		char *out = NULL, *plain = NULL, *err = NULL;
		if (draft_compose_ex(cfg, &req, &out, &len, &plain, &err) < 0)
			fail_msg("iteration %ld: compose: %s", it, err);
		struct parsed p;
		const char *why = check_draft(out, len, &p);
		if (why)
			fail_msg("iteration %ld: %s\n%.2000s", it, why, out);
		/* the quoted-printable body decodes to exactly the text that was encoded */
		if (strcmp(p.body, plain) != 0)
			fail_msg("iteration %ld: decoded body differs from the plain body\n%.2000s", it,
				 out);
		free(plain);
		bool threaded = false, have_refs = false;
		for (size_t i = 0; i < p.n_names; i++) {
			threaded |= !strcmp(p.names[i], "In-Reply-To");
			have_refs |= !strcmp(p.names[i], "References");
		}
		/* threaded exactly when the Message-ID was usable */
		const char *xid = t.m.message_id;
		size_t ml = strlen(xid);
		if (ml >= 2 && xid[0] == '<' && xid[ml - 1] == '>') {
			xid++;
			ml -= 2;
		}
		assert_int_equal(threaded, draft_msgid_valid(xid, ml));
		assert_header_set2(&p, threaded, have_refs);
		char *want = draft_reply_subject(subj);
		if (strcmp(p.subject, want) != 0)
			fail_msg("iteration %ld: subject '%s' != '%s'", it, p.subject, want);
		assert_true(g_utf8_strlen(p.subject, -1) <= DRAFT_SUBJECT_MAX_CP);
		char *wname = draft_clean_line(name, strlen(name), 100);
		if (strcmp(p.to_name, wname) != 0)
			fail_msg("iteration %ld: name '%s' != '%s'", it, p.to_name, wname);
		free(wname);
		free(want);
		parsed_free(&p);
		free(out);
	}
}

/* ---- helpers ----------------------------------------------------------------------------- */

static void test_clean_line(void **state)
{
	static const struct { const char *in; size_t max; const char *out; } cases[] = {
		{ "  a   b  ", 0, "a b" },
		{ "a\r\n\tb", 0, "a b" },
		{ "\xe2\x80\xae" "x", 0, "x" },
		{ "\xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae", 0, "\xd9\x85\xdb\x8c\xe2\x80\x8c\xd8\xae" },
		{ "abcdef", 3, "abc" },
		{ "\xd8\xa7\xd8\xa8\xd8\xaa", 2, "\xd8\xa7\xd8\xa8" },   /* cut on a code point */
		{ "ab cd", 3, "ab" },
		{ "\xff", 0, "\xef\xbf\xbd" },
	};
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		char *o = draft_clean_line(cases[i].in, strlen(cases[i].in), cases[i].max);
		if (strcmp(o, cases[i].out) != 0)
			fail_msg("case %zu: '%s'", i, o);
		free(o);
	}
	static const struct { const char *id; bool ok; } ids[] = {
		{ "a@b", true }, { "x.y+z@host.example", true }, { "a b@c", false }, { "a<b", false },
		{ "", false }, { "a\"b", false }, { "a\r\nb", false }, { "\xd8\xa7@b", false },
	};
	for (size_t i = 0; i < UTIL_ARRAY_LEN(ids); i++)
		assert_int_equal(draft_msgid_valid(ids[i].id, strlen(ids[i].id)), ids[i].ok);
	assert_int_equal(draft_kind_parse("winback"), POLICY_DRAFT_WINBACK);
	assert_int_equal(draft_kind_parse("nope"), POLICY_DRAFT_NONE);
	assert_string_equal(draft_kind_name(POLICY_DRAFT_PARTWAYS), "partways");
	assert_null(draft_kind_name(POLICY_DRAFT_NONE));
}

/* ---- real corpus mail, parsed by message.c ----------------------------------------------- */

static void test_corpus(void **state)
{
	(void)state;
	char *dir = srcdir_path("../shared/corpus/dev/messages");
	DIR *d = opendir(dir);
	if (!d) {
		free(dir);
		skip();
	}
	message_global_init();
	struct message_limits lim;
	message_limits_default(&lim);
	struct dirent *de;
	size_t n = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strstr(de->d_name, ".eml"))
			continue;
		char path[1024], *raw;
		size_t rawlen;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_int_equal(util_read_file(path, 8 << 20, &raw, &rawlen), 0);
		struct message *m = NULL;
		assert_int_equal(message_parse(raw, rawlen, &lim, &m), 0);
		static const char *const langs[] = { "en", "ur", "pa", "fa", "hi" };
		struct draft_request req = req_for(m, langs[n % 5], (enum policy_draft)(1 + n % 3));
		char *out = NULL, *err = NULL;
		size_t len;
		if (draft_compose(cfg, &req, &out, &len, &err) < 0) {
			/* only a sender without a usable address may be refused */
			if (m->from_addr && strchr(m->from_addr, '@'))
				fail_msg("%s: %s", de->d_name, err);
			free(err);
		} else {
			struct parsed p;
			const char *why = check_draft(out, len, &p);
			if (why)
				fail_msg("%s: %s", de->d_name, why);
			char *want = draft_reply_subject(m->subject);
			if (strcmp(p.subject, want) != 0)
				fail_msg("%s: subject '%s' != '%s'", de->d_name, p.subject, want);
			/* it threads under the customer's message */
			if (m->message_id && *m->message_id) {
				char irt[512];
				snprintf(irt, sizeof(irt), "<%s>", m->message_id);
				assert_string_equal(p.in_reply_to, irt);
			}
			free(want);
			parsed_free(&p);
			free(out);
		}
		message_free(m);
		free(raw);
		n++;
	}
	closedir(d);
	free(dir);
	assert_true(n >= 250);
}

/* ---- the drafter ------------------------------------------------------------------------- */

static size_t count_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_drafter_maildir(void **state)
{
	(void)state;
	char md[256], p[512];
	snprintf(md, sizeof(md), "%s/Maildir", tmpdir);
	set_str(&cfg->drafts.maildir, md);
	set_str(&cfg->drafts.delivery, "maildir");
	cfg->drafts.eom_budget_ms = 5000;
	char *err = NULL;
	struct drafter *dr = drafter_open(cfg, &err);
	if (!dr)
		fail_msg("drafter_open: %s", err);
	struct tmsg t;
	tmsg_init(&t);
	struct draft_request req = req_for(&t.m, "fa", POLICY_DRAFT_APOLOGY);
	assert_int_equal(drafter_submit(dr, cfg, &req, &err), 0);
	snprintf(p, sizeof(p), "%s/.Drafts/cur", md);
	assert_int_equal(count_dir(p), 1);
	/* budget 0: the call does not wait, the writer still finishes before close returns */
	cfg->drafts.eom_budget_ms = 0;
	for (int i = 0; i < 20; i++) {
		int rc = drafter_submit(dr, cfg, &req, &err);
		assert_true(rc == 0 || rc == 1);
	}
	drafter_close(dr);
	assert_int_equal(count_dir(p), 21);
	/* the file in the Maildir uses LF line ends and carries the Draft flag */
	DIR *d = opendir(p);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		assert_non_null(strstr(de->d_name, ":2,DS"));
		char f[1024], *text;
		size_t len;
		snprintf(f, sizeof(f), "%s/%s", p, de->d_name);
		assert_int_equal(util_read_file(f, 1 << 20, &text, &len), 0);
		assert_null(strchr(text, '\r'));
		assert_non_null(strstr(text, "\nX-Amends-Draft-Kind: apology\n"));
		free(text);
	}
	closedir(d);
	/* a compose failure is reported, not written */
	dr = drafter_open(cfg, &err);
	assert_non_null(dr);
	t.m.from_addr = (char *)"not an address";
	cfg->drafts.eom_budget_ms = 1000;
	err = NULL;
	assert_int_equal(drafter_submit(dr, cfg, &req, &err), -1);
	assert_non_null(err);
	free(err);
	drafter_close(dr);
	assert_int_equal(count_dir(p), 21);
}

struct late_counts {
	int failures;        /* late_failure calls */
	int freed;           /* late_free calls */
};

static void late_fail_cb(void *arg)
{
	((struct late_counts *)((void **)arg)[0])->failures++;
}

static void late_free_cb(void *arg)
{
	((struct late_counts *)((void **)arg)[0])->freed++;
	free(arg);
}

/* A request whose late_arg points at counts (a malloc'd box, freed by late_free_cb). */
static void late_req(struct draft_request *req, struct late_counts *c)
{
	void **box = malloc(sizeof(*box));

	assert_non_null(box);
	box[0] = c;
	req->late_failure = late_fail_cb;
	req->late_arg = box;
	req->late_free = late_free_cb;
}

/* A drafter on cfg after making its Maildir's cur/ again (a test removed it). */
static struct drafter *reopen_drafter(const char *cur)
{
	char *err = NULL;
	struct drafter *dr;

	assert_int_equal(mkdir(cur, 0700), 0);
	dr = drafter_open(cfg, &err);
	if (!dr)
		fail_msg("drafter_open: %s", err);
	return dr;
}

/* Submit expecting -1 (the caller is told), then close the drafter. */
static void submit_fails_and_close(struct drafter *dr, struct draft_request *req,
				   struct late_counts *c)
{
	char *err = NULL;

	late_req(req, c);
	assert_int_equal(drafter_submit(dr, cfg, req, &err), -1);
	free(err);
	drafter_close(dr);
}

/* Not waiting (eom_budget_ms 0, the default): submit returns before the write; a write that
 * fails then reaches late_failure exactly once, a good one never; late_arg is freed once per
 * submit either way. Waiting (budget > 0) the caller gets -1 itself and no callback. */
static void test_drafter_late_failure(void **state)
{
	(void)state;
	char md[256], cur[512];
	snprintf(md, sizeof(md), "%s/LateMaildir", tmpdir);
	snprintf(cur, sizeof(cur), "%s/.Drafts/cur", md);
	set_str(&cfg->drafts.maildir, md);
	set_str(&cfg->drafts.delivery, "maildir");
	struct tmsg t;
	tmsg_init(&t);
	struct draft_request req = req_for(&t.m, "en", POLICY_DRAFT_APOLOGY);
	struct late_counts ok = { 0, 0 }, bad = { 0, 0 }, waited = { 0, 0 };
	char *err = NULL;

	cfg->drafts.eom_budget_ms = 0;
	struct drafter *dr = drafter_open(cfg, &err);
	if (!dr)
		fail_msg("drafter_open: %s", err);
	for (int i = 0; i < 3; i++) {
		late_req(&req, &ok);
		assert_int_equal(drafter_submit(dr, cfg, &req, &err), 1);
	}
	drafter_close(dr);
	assert_int_equal(count_dir(cur), 3);
	assert_int_equal(ok.failures, 0);
	assert_int_equal(ok.freed, 3);

	/* the destination directory goes away under an open drafter: every rename fails */
	dr = drafter_open(cfg, &err);
	assert_non_null(dr);
	rm_tree(cur);
	for (int i = 0; i < 4; i++) {
		late_req(&req, &bad);
		assert_int_equal(drafter_submit(dr, cfg, &req, &err), 1);
	}
	drafter_close(dr);
	assert_int_equal(bad.failures, 4);
	assert_int_equal(bad.freed, 4);

	/* waiting, the caller hears of the failure itself */
	cfg->drafts.eom_budget_ms = 5000;
	dr = reopen_drafter(cur);
	rm_tree(cur);
	submit_fails_and_close(dr, &req, &waited);
	assert_int_equal(waited.failures, 0);
	assert_int_equal(waited.freed, 1);
	/* a compose failure frees late_arg too */
	dr = reopen_drafter(cur);
	t.m.from_addr = (char *)"not an address";
	submit_fails_and_close(dr, &req, &waited);
	assert_int_equal(waited.failures, 0);
	assert_int_equal(waited.freed, 2);
}

/* Submit req (with late counts c) until one is refused or 2 * DRAFT_QUEUE_MAX were accepted:
 * how many were accepted (each not waited for: 1). */
static int fill_queue(struct drafter *dr, struct draft_request *req, struct late_counts *c)
{
	char *err = NULL;
	int rc, accepted = 0;

	for (;;) {
		late_req(req, c);
		rc = drafter_submit(dr, cfg, req, &err);
		if (rc != 1 || accepted == 2 * DRAFT_QUEUE_MAX)
			break;
		accepted++;
	}
	assert_int_equal(rc, -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "behind; dropped"));
	free(err);
	return accepted;
}

static long long dir_bytes(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	long long n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char f[1024];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
		assert_int_equal(stat(f, &st), 0);
		n += st.st_size;
	}
	closedir(d);
	return n;
}

/* The queue between the milter threads and the writer is bounded: with the writer held, a
 * draft past DRAFT_QUEUE_MAX drafts or DRAFT_QUEUE_MAX_BYTES is refused at once (-1, counted
 * as failed, its late_arg freed, no late_failure: the caller is told), never queued without
 * limit; released, the writer writes every draft it accepted, none lost. */
static void test_drafter_queue_bounds(void **state)
{
	(void)state;
	char md[256], cur[512], *err = NULL, *body;
	struct late_counts small = { 0, 0 }, big = { 0, 0 };
	uint64_t failed = stats_get(STATS_DRAFTS_FAILED), written = stats_get(STATS_DRAFTS_WRITTEN);
	struct strbuf b;
	struct tmsg t;
	int accepted;

	snprintf(md, sizeof(md), "%s/QueueMaildir", tmpdir);
	snprintf(cur, sizeof(cur), "%s/.Drafts/cur", md);
	set_str(&cfg->drafts.maildir, md);
	set_str(&cfg->drafts.delivery, "maildir");
	cfg->drafts.eom_budget_ms = 0;
	tmsg_init(&t);
	struct draft_request req = req_for(&t.m, "en", POLICY_DRAFT_APOLOGY);
	struct drafter *dr = drafter_open(cfg, &err);
	if (!dr)
		fail_msg("drafter_open: %s", err);
	/* small drafts: the count bound */
	drafter_hold(dr, true);
	accepted = fill_queue(dr, &req, &small);
	assert_int_equal(accepted, DRAFT_QUEUE_MAX);
	assert_int_equal(stats_get(STATS_DRAFTS_FAILED) - failed, 1);
	assert_int_equal(small.freed, 1);          /* the refused one's, at once */
	drafter_hold(dr, false);
	drafter_close(dr);
	assert_int_equal(count_dir(cur), DRAFT_QUEUE_MAX);
	assert_int_equal(stats_get(STATS_DRAFTS_WRITTEN) - written, DRAFT_QUEUE_MAX);
	assert_int_equal(small.freed, DRAFT_QUEUE_MAX + 1);
	assert_int_equal(small.failures, 0);
	/* large drafts (a quoted message of ~16 KiB of Urdu each): the byte bound comes first */
	rm_tree(md);
	strbuf_init(&b, 0);
	for (int i = 0; i < 280; i++)
		strbuf_printf(&b, "%03d \u0645\u06cc\u0631\u0627 \u067e\u0627\u0631\u0633\u0644 "
			      "\u067e\u06be\u0631 \u062f\u06cc\u0631 \u0633\u06d2 \u0622\u06cc\u0627\n", i);
	assert_false(b.oom);
	body = strbuf_take(&b);
	t.m.body_new = body;
	t.m.body_new_len = strlen(body);
	req = req_for(&t.m, "ur", POLICY_DRAFT_APOLOGY);
	dr = drafter_open(cfg, &err);
	if (!dr)
		fail_msg("drafter_open: %s", err);
	failed = stats_get(STATS_DRAFTS_FAILED);
	drafter_hold(dr, true);
	accepted = fill_queue(dr, &req, &big);
	drafter_hold(dr, false);
	drafter_close(dr);
	print_message("%d large drafts queued, %lld bytes written\n", accepted, dir_bytes(cur));
	assert_true(accepted > 0 && accepted < DRAFT_QUEUE_MAX);
	assert_int_equal(count_dir(cur), accepted);
	assert_true(dir_bytes(cur) <= (long long)DRAFT_QUEUE_MAX_BYTES);
	assert_int_equal(stats_get(STATS_DRAFTS_FAILED) - failed, 1);
	assert_int_equal(big.freed, accepted + 1);
	free(body);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

/* IMAP delivery to a server that is not there: drafts are spooled at once, never lost. */
static void test_drafter_imap_down(void **state)
{
	(void)state;
	char spool[256], pw[256], p[512];
	snprintf(spool, sizeof(spool), "%s/spool", tmpdir);
	snprintf(pw, sizeof(pw), "%s/imap.pw", tmpdir);
	write_file(pw, "secret\n", 0600);
	set_str(&cfg->drafts.delivery, "imap");
	set_str(&cfg->drafts.spool_dir, spool);
	set_str(&cfg->drafts.imap_url, "imap://127.0.0.1:1");
	set_str(&cfg->drafts.imap_user, "drafts");
	set_str(&cfg->drafts.imap_password_file, pw);
	cfg->drafts.imap_retry_s = 1;
	cfg->drafts.eom_budget_ms = 2000;
	char *err = NULL;
	struct drafter *dr = drafter_open(cfg, &err);
	if (!dr)
		fail_msg("drafter_open: %s", err);
	struct tmsg t;
	tmsg_init(&t);
	struct draft_request req = req_for(&t.m, "hi", POLICY_DRAFT_WINBACK);
	long long t0 = util_now_ms();
	for (int i = 0; i < 5; i++)
		assert_int_equal(drafter_submit(dr, cfg, &req, &err), 0);
	assert_true(util_now_ms() - t0 < 2000);
	drafter_close(dr);
	snprintf(p, sizeof(p), "%s/new", spool);
	assert_int_equal(count_dir(p), 5);
	/* a password file others can read is refused at open */
	chmod(pw, 0640);
	err = NULL;
	assert_null(drafter_open(cfg, &err));
	assert_non_null(strstr(err, "group or others"));
	free(err);
	set_str(&cfg->drafts.delivery, "maildir");
}

static void test_imap_config(void **state)
{
	static const struct {
		const char *url, *host;
		unsigned port;
		enum imap_tls tls;
		bool ok;
	} urls[] = {
		{ "imap://mail.example.com", "mail.example.com", 143, IMAP_TLS_STARTTLS, true },
		{ "imaps://mail.example.com:10993/", "mail.example.com", 10993, IMAP_TLS_IMPLICIT, true },
		{ "IMAPS://[::1]:993", "::1", 993, IMAP_TLS_IMPLICIT, true },
		{ "imap://127.0.0.1:1143", "127.0.0.1", 1143, IMAP_TLS_STARTTLS, true },
		{ "http://x", NULL, 0, 0, false },
		{ "imap://", NULL, 0, 0, false },
		{ "imap://h:0", NULL, 0, 0, false },
		{ "imap://h:99999", NULL, 0, 0, false },
		{ "imap://h:12x", NULL, 0, 0, false },
		{ "imap://h/INBOX", NULL, 0, 0, false },
		{ "imap://[::1", NULL, 0, 0, false },
	};
	(void)state;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(urls); i++) {
		char *host = NULL, *err = NULL;
		unsigned short port = 0;
		enum imap_tls tls;
		int rc = imap_url_parse(urls[i].url, &host, &port, &tls, &err);
		if (!urls[i].ok) {
			if (rc == 0)
				fail_msg("%s accepted", urls[i].url);
			free(err);
			continue;
		}
		if (rc < 0)
			fail_msg("%s: %s", urls[i].url, err);
		assert_string_equal(host, urls[i].host);
		assert_int_equal(port, urls[i].port);
		assert_int_equal(tls, urls[i].tls);
		free(host);
	}
	char pw[256];
	snprintf(pw, sizeof(pw), "%s/pw2", tmpdir);
	static const struct { mode_t mode; bool ok; } modes[] = {
		{ 0600, true }, { 0400, true }, { 0640, false }, { 0604, false }, { 0660, false },
		{ 0644, false }, { 0610, false },
	};
	for (size_t i = 0; i < UTIL_ARRAY_LEN(modes); i++) {
		write_file(pw, "s3cret\r\nignored\n", modes[i].mode);
		char *p = NULL, *err = NULL;
		int rc = imap_password_read(pw, &p, &err);
		assert_int_equal(rc == 0, modes[i].ok);
		if (rc == 0)
			assert_string_equal(p, "s3cret");
		free(p);
		free(err);
		unlink(pw);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_line),
		cmocka_unit_test(test_basic_en),
		cmocka_unit_test(test_languages),
		cmocka_unit_test(test_history),
		cmocka_unit_test(test_injection_matrix),
		cmocka_unit_test(test_fuzz_loop),
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_drafter_maildir),
		cmocka_unit_test(test_drafter_late_failure),
		cmocka_unit_test(test_drafter_queue_bounds),
		cmocka_unit_test(test_drafter_imap_down),
		cmocka_unit_test(test_imap_config),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
