/*
 * ctl_draft.c - `amendsctl draft` (render a draft offline) and `amendsctl drafts` (the spool)
 *
 *   draft [--kind K] [--lang L] [--raw] FILE   the draft amends would write for FILE, to stdout:
 *                                              headers as written, then the body decoded (or,
 *                                              with --raw, the exact message, quoted-printable)
 *   drafts                                     drafts waiting in the IMAP spool, and those the
 *                                              server refused (failed/)
 * Kind defaults to apology; the language to the one detected in the message. Nothing is
 * written anywhere and no tally is read: {{history}} lists the message itself.
 *
 * OWNERSHIP  everything is freed before returning.
 * DIAGNOSTICS  errors go to stderr as "amendsctl: draft: ..."; exit 1 on error, 2 on usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <gmime/gmime.h>

#include "clock.h"
#include "ctl_draft.h"
#include "draft.h"
#include "lang.h"
#include "message.h"
#include "spool.h"
#include "util.h"


#define CTL_DRAFT_MAX_INPUT ((size_t)64 * 1024 * 1024)
#define CTL_DRAFTS_MAX 100000

static void ctl_draft_usage(void)
{
	(void)fprintf(stderr, "usage: amendsctl draft [--kind apology|winback|partways] [--lang L] "
		"[--raw] FILE\n");
}

/* Print the header block with LF line ends, then the plain body. */
static void ctl_draft_print(const char *msg, size_t len, const char *body, bool raw)
{
	if (raw) {
		(void)fwrite(msg, 1, len, stdout);
		return;
	}
	const char *end = strstr(msg, "\r\n\r\n");
	size_t hl = end ? (size_t)(end - msg) + 2 : len;
	for (size_t i = 0; i < hl; i++)
		if (!(msg[i] == '\r' && i + 1 < hl && msg[i + 1] == '\n'))
			(void)fputc(msg[i], stdout);
	(void)fputc('\n', stdout);
	(void)fputs(body ? body : "", stdout);
}

int ctl_draft_main(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kind", required_argument, NULL, 'k' },
		{ "lang", required_argument, NULL, 'l' },
		{ "raw", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum policy_draft kind = POLICY_DRAFT_APOLOGY;
	const char *lang = NULL;
	bool raw = false;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "k:l:rh", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			kind = draft_kind_parse(optarg);
			if (kind == POLICY_DRAFT_NONE) {
				(void)fprintf(stderr, "amendsctl: draft: unknown kind '%s'\n",
					      optarg);
				return 2;
			}
			break;
		case 'l': lang = optarg; break;
		case 'r': raw = true; break;
		case 'h': ctl_draft_usage(); return 0;
		default: ctl_draft_usage(); return 2;
		}
	}
	if (optind + 1 != argc) {
		ctl_draft_usage();
		return 2;
	}
	const char *file = argv[optind];
	char *data = NULL, *out = NULL, *body = NULL, *err = NULL;
	size_t len = 0, outlen = 0;
	struct message *m = NULL;
	int rc = 1;
	if (util_read_file(file, CTL_DRAFT_MAX_INPUT, &data, &len) < 0) {
		(void)fprintf(stderr, "amendsctl: draft: %s: %s\n", file, strerror(errno));
		return 1;
	}
	struct message_limits lim;
	message_limits_from_config(cfg, &lim);
	if (message_parse(data, len, &lim, &m) < 0) {
		(void)fprintf(stderr, "amendsctl: draft: %s: cannot parse\n", file);
		goto out;
	}
	if (!lang)
		lang = lang_detect(m->body_new, m->body_new_len);
	struct draft_request req = {
		.kind = kind, .lang = lang, .msg = m, .sender = m->from_addr,
		.counts = NULL, .history = NULL, .now = clock_now(), .queue_id = "",
	};
	if (draft_compose_ex(cfg, &req, &out, &outlen, &body, &err) < 0) {
		(void)fprintf(stderr, "amendsctl: draft: %s: %s\n", file, err ? err : "failed");
		goto out;
	}
	ctl_draft_print(out, outlen, body, raw);
	rc = 0;
out:
	free(err);
	free(out);
	free(body);
	message_free(m);
	free(data);
	return rc;
}

/* The value of one header in a spooled draft, unfolded and RFC 2047 decoded (g_free). */
static char *ctl_draft_header(const char *msg, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = msg; *p && !(p[0] == '\r' && p[1] == '\n') && *p != '\n'; ) {
		const char *eol = strchr(p, '\n');
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			struct strbuf v;
			strbuf_init(&v, 4096);
			const char *q = p + nl + 1;
			/* unfold: continuation lines start with a space or tab */
			for (;;) {
				const char *e = strchr(q, '\n');
				size_t l = e ? (size_t)(e - q) : strlen(q);
				if (l && q[l - 1] == '\r')
					l--;
				strbuf_append(&v, q, l);
				if (!e || (e[1] != ' ' && e[1] != '\t'))
					break;
				q = e + 1;
			}
			char *dec = g_mime_utils_header_decode_text(NULL, util_trim(v.s ? v.s : (char *)""));
			strbuf_free(&v);
			return dec;
		}
		if (!eol)
			break;
		p = eol + 1;
	}
	return NULL;
}

/* Print text from a stranger with control characters as '?'. */
static void ctl_put_safe(const char *s)
{
	for (; s && *s; s++)
		(void)fputc(((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s, stdout);
}

int ctl_drafts_main(const struct config *cfg, int argc, char **argv)
{
	const char *dir = cfg->drafts.spool_dir;
	struct stat st;
	bool imap = cfg->drafts.delivery && strcmp(cfg->drafts.delivery, "imap") == 0;
	if (!dir || !*dir || stat(dir, &st) < 0) {
		/* do not create it: amendsctl may run as another user than the daemon */
		printf("no spool at %s (delivery is %s%s%s)\n", dir ? dir : "-",
		       cfg->drafts.delivery, imap ? "" : ": drafts go straight to ",
		       imap ? "" : cfg->drafts.maildir);
		return 0;
	}
	char *err = NULL;
	struct spool *sp = spool_open(dir, &err);
	if (!sp) {
		(void)fprintf(stderr, "amendsctl: drafts: %s\n", err ? err : dir);
		free(err);
		return 1;
	}
	struct spool_entry *v = NULL;
	size_t n = 0;
	if (spool_list(sp, 1, CTL_DRAFTS_MAX, &v, &n) < 0) {
		(void)fprintf(stderr, "amendsctl: drafts: cannot list %s: %s\n", dir,
			      strerror(errno));
		spool_close(sp);
		return 1;
	}
	size_t waiting = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		char *data = NULL;
		size_t len = 0;
		char when[32] = "-";
		struct tm tm;
		/* at most 23 bytes for any year an int holds: strftime cannot run out of room */
		if (localtime_r(&v[i].mtime, &tm))
			(void)strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
		v[i].state == SPOOL_FAILED ? failed++ : waiting++;
		printf("%-7s %s  ", v[i].state == SPOOL_FAILED ? "failed" : "waiting", when);
		if (spool_read(sp, &v[i], (size_t)1024 * 1024, &data, &len) == 0) {
			char *kind = ctl_draft_header(data, "X-Amends-Draft-Kind");
			char *to = ctl_draft_header(data, "To");
			char *subj = ctl_draft_header(data, "Subject");
			printf("%-9s ", kind ? kind : "?");
			ctl_put_safe(to ? to : "?");
			(void)fputs("  ", stdout);
			ctl_put_safe(subj ? subj : "");
			g_free(kind);
			g_free(to);
			g_free(subj);
			free(data);
		}
		printf("  [%s]\n", v[i].name);
	}
	printf("%zu waiting, %zu failed (spool %s%s)\n", waiting, failed, dir,
	       imap ? "" : "; delivery is not imap, nothing sends these");
	spool_list_free(v, n);
	spool_close(sp);
	return 0;
}
