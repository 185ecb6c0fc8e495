/*
 * ctl_tally.c - `amendsctl tally`: look at and edit the per-sender tally
 *
 *   tally show ADDRESS     counts per category in the window, first/last seen, last incidents
 *   tally top [N]          the N senders with the highest tally in the window (default 10):
 *                          the sum of their per-category counts, one per message and category
 *   tally reset ADDRESS    zero the counts and history, keep the sender known and the dedupe
 *   tally forget ADDRESS   erase every trace of the sender (privacy requests)
 * Each takes --json for one JSON object on stdout. Addresses go through the same canonical key
 * as the milter (lowercase, +detail stripped when configured). Text that came from a stranger
 * (subjects, message ids) is printed with control characters replaced, so a subject cannot
 * drive the terminal; JSON output escapes it.
 *
 * OWNERSHIP  opens and closes its own tally handle.
 * DIAGNOSTICS  errors go to stderr as "amendsctl: tally: ..."; exit 1 on a store error,
 *              2 on a usage error.
 */
#include "ctl_tally.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "tally.h"
#include "util.h"

#define CTL_TALLY_TOP_DEFAULT 10
#define CTL_TALLY_TOP_MAX 10000

struct ctl_tally_opts {
	bool json;
	const char *verb;
	const char *arg;
};

static void ctl_tally_usage(void)
{
	(void)fprintf(stderr, "usage: amendsctl tally show ADDRESS | top [N] | reset ADDRESS | "
		"forget ADDRESS [--json]\n");
}

/* iso_time - "2026-11-08T05:48:00Z", or "-" for 0 */
static const char *iso_time(time_t t, char *buf, size_t n)
{
	struct tm tm;

	if (t <= 0 || !gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return "-";
	return buf;
}

/* put_safe - print text from a stranger with control characters (and DEL) as '?' */
static void put_safe(FILE *fp, const char *s)
{
	for (; s && *s; s++)
		(void)fputc(((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s, fp);
}

static void json_str(struct strbuf *b, const char *s)
{
	strbuf_json_string(b, s ? s : "", s ? strlen(s) : 0);
}

/* print_json - write the buffer, or fail on truncation/out of memory */
static int print_json(struct strbuf *b)
{
	int rc = 0;

	if (b->oom) {
		(void)fprintf(stderr, "amendsctl: tally: out of memory\n");
		rc = 1;
	} else
		printf("%s\n", b->s ? b->s : "{}");
	strbuf_free(b);
	return rc;
}

/* ---- show ----------------------------------------------------------------------------------- */

static void show_text(const struct config *cfg, const char *key, int known, time_t first,
		      time_t last, const struct tally_counts *c, const struct tally_history *h)
{
	char t1[32], t2[32];
	size_t i;

	printf("sender: ");
	put_safe(stdout, key);
	printf("\n");
	if (!known) {
		printf("not known\n");
		return;
	}
	printf("first seen: %s\nlast seen:  %s\n", iso_time(first, t1, sizeof(t1)),
	       iso_time(last, t2, sizeof(t2)));
	printf("counts in the last %d days:%s\n", cfg->tally.window_days, c->n ? "" : " none");
	for (i = 0; i < c->n; i++)
		printf("  %-14s %4d  (first %s, last %s)\n", c->v[i].category, c->v[i].count,
		       iso_time(c->v[i].first_seen, t1, sizeof(t1)),
		       iso_time(c->v[i].last_seen, t2, sizeof(t2)));
	printf("history (newest first):%s\n", h->n ? "" : " none");
	for (i = 0; i < h->n; i++) {
		printf("  %s  %s  <", iso_time(h->v[i].when, t1, sizeof(t1)), h->v[i].categories);
		put_safe(stdout, h->v[i].message_id);
		printf(">  rules=");
		put_safe(stdout, h->v[i].rules);
		printf("\n    subject: ");
		put_safe(stdout, h->v[i].subject);
		printf("\n");
	}
}

static int show_json(const struct config *cfg, const char *key, int known, time_t first,
		     time_t last, const struct tally_counts *c, const struct tally_history *h)
{
	struct strbuf b;
	size_t i;

	strbuf_init(&b, 0);
	strbuf_puts(&b, "{\"sender\":");
	json_str(&b, key);
	strbuf_printf(&b, ",\"known\":%s,\"first_seen\":%lld,\"last_seen\":%lld,\"window_days\":%d,"
		      "\"counts\":{", known ? "true" : "false", (long long)first, (long long)last,
		      cfg->tally.window_days);
	for (i = 0; i < c->n; i++) {
		if (i)
			strbuf_putc(&b, ',');
		json_str(&b, c->v[i].category);
		strbuf_printf(&b, ":{\"count\":%d,\"first_seen\":%lld,\"last_seen\":%lld}",
			      c->v[i].count, (long long)c->v[i].first_seen, (long long)c->v[i].last_seen);
	}
	strbuf_puts(&b, "},\"history\":[");
	for (i = 0; i < h->n; i++) {
		strbuf_printf(&b, "%s{\"time\":%lld,\"message_id\":", i ? "," : "",
			      (long long)h->v[i].when);
		json_str(&b, h->v[i].message_id);
		strbuf_puts(&b, ",\"subject\":");
		json_str(&b, h->v[i].subject);
		strbuf_puts(&b, ",\"categories\":");
		json_str(&b, h->v[i].categories);
		strbuf_puts(&b, ",\"rules\":");
		json_str(&b, h->v[i].rules);
		strbuf_putc(&b, '}');
	}
	strbuf_puts(&b, "]}");
	return print_json(&b);
}

static int do_show(const struct config *cfg, struct tally *t, const char *key, bool json)
{
	struct tally_counts c = { 0 };
	struct tally_history h = { 0 };
	time_t first = 0, last = 0;
	int known, rc = 1;

	known = tally_seen(t, key, &first, &last);
	if (known < 0 || tally_counts(t, key, clock_now(), &c) < 0 ||
	    tally_history(t, key, cfg->tally.incidents > 0 ? (size_t)cfg->tally.incidents : 0, &h) < 0) {
		(void)fprintf(stderr, "amendsctl: tally: show: %s\n", tally_error());
		goto out;
	}
	if (json)
		rc = show_json(cfg, key, known, first, last, &c, &h);
	else {
		show_text(cfg, key, known, first, last, &c, &h);
		rc = 0;
	}
out:
	tally_counts_free(&c);
	tally_history_free(&h);
	return rc;
}

/* ---- top ------------------------------------------------------------------------------------ */

static int do_top(struct tally *t, const char *arg, bool json)
{
	struct tally_sender_summary *v = NULL;
	size_t n = CTL_TALLY_TOP_DEFAULT, nv = 0, i;
	struct strbuf b;
	char tbuf[32], *end;
	long want;

	if (arg) {
		want = strtol(arg, &end, 10);
		if (*end || want < 1 || want > CTL_TALLY_TOP_MAX) {
			(void)fprintf(stderr, "amendsctl: tally: top: N must be 1..%d\n",
				      CTL_TALLY_TOP_MAX);
			return 2;
		}
		n = (size_t)want;
	}
	if (tally_top(t, n, &v, &nv) < 0) {
		(void)fprintf(stderr, "amendsctl: tally: top: %s\n", tally_error());
		return 1;
	}
	if (!json) {
		for (i = 0; i < nv; i++) {
			printf("%6d  %s  ", v[i].total, iso_time(v[i].last_seen, tbuf, sizeof(tbuf)));
			put_safe(stdout, v[i].sender);
			printf("\n");
		}
		tally_top_free(v, nv);
		return 0;
	}
	strbuf_init(&b, 0);
	strbuf_puts(&b, "{\"top\":[");
	for (i = 0; i < nv; i++) {
		strbuf_puts(&b, i ? ",{\"sender\":" : "{\"sender\":");
		json_str(&b, v[i].sender);
		strbuf_printf(&b, ",\"total\":%d,\"last_seen\":%lld}", v[i].total,
			      (long long)v[i].last_seen);
	}
	strbuf_puts(&b, "]}");
	tally_top_free(v, nv);
	return print_json(&b);
}

/* ---- reset / forget ------------------------------------------------------------------------- */

static int do_erase(struct tally *t, const char *verb, const char *key, bool json)
{
	struct strbuf b;
	int rv = strcmp(verb, "forget") == 0 ? tally_forget(t, key) : tally_reset(t, key);

	if (rv < 0) {
		(void)fprintf(stderr, "amendsctl: tally: %s: %s\n", verb, tally_error());
		return 1;
	}
	if (!json) {
		printf("%s: ", verb);
		put_safe(stdout, key);
		printf("\n");
		return 0;
	}
	strbuf_init(&b, 0);
	strbuf_printf(&b, "{\"action\":\"%s\",\"sender\":", verb);
	json_str(&b, key);
	strbuf_puts(&b, ",\"ok\":true}");
	return print_json(&b);
}

/* ---- main ----------------------------------------------------------------------------------- */

static int parse_args(int argc, char **argv, struct ctl_tally_opts *o)
{
	int i, npos = 0;

	memset(o, 0, sizeof(*o));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			o->json = true;
		else if (argv[i][0] == '-' && argv[i][1]) {
			(void)fprintf(stderr, "amendsctl: tally: unknown option %s\n", argv[i]);
			return -1;
		} else if (npos == 0) {
			o->verb = argv[i];
			npos++;
		} else if (npos == 1) {
			o->arg = argv[i];
			npos++;
		} else {
			(void)fprintf(stderr, "amendsctl: tally: too many arguments\n");
			return -1;
		}
	}
	if (!o->verb)
		return -1;
	if (strcmp(o->verb, "top") != 0 && strcmp(o->verb, "show") != 0 &&
	    strcmp(o->verb, "reset") != 0 && strcmp(o->verb, "forget") != 0) {
		(void)fprintf(stderr, "amendsctl: tally: unknown action \"%s\"\n", o->verb);
		return -1;
	}
	if (strcmp(o->verb, "top") != 0 && !o->arg) {
		(void)fprintf(stderr, "amendsctl: tally: %s needs an ADDRESS\n", o->verb);
		return -1;
	}
	return 0;
}

int ctl_tally_main(const struct config *cfg, int argc, char **argv)
{
	struct ctl_tally_opts o;
	struct tally *t;
	char *err = NULL, *key = NULL;
	int rc;

	if (parse_args(argc, argv, &o) < 0) {
		ctl_tally_usage();
		return 2;
	}
	if (strcmp(o.verb, "top") != 0) {
		key = tally_sender_key(cfg, o.arg);
		if (!key) {
			(void)fprintf(stderr, "amendsctl: tally: not a usable address\n");
			return 2;
		}
	}
	t = tally_open(cfg, &err);
	if (!t) {
		(void)fprintf(stderr, "amendsctl: %s\n",
			      err ? err : "tally: cannot open the store");
		free(err);
		free(key);
		return 1;
	}
	if (strcmp(o.verb, "show") == 0)
		rc = do_show(cfg, t, key, o.json);
	else if (strcmp(o.verb, "top") == 0)
		rc = do_top(t, o.arg, o.json);
	else
		rc = do_erase(t, o.verb, key, o.json);
	tally_close(t);
	free(key);
	return rc;
}
