/*
 * draft_imap_tool.c - test helper: submit drafts through a real drafter and wait for the spool
 *
 *   draft_imap_tool -c CONF [-k KIND] [-l LANG] [-n COUNT] [-w WAIT_MS] FILE
 *
 * Parses FILE (a customer's mail), submits COUNT drafts of KIND in LANG through drafter_submit()
 * exactly as the milter does, then waits up to WAIT_MS for the IMAP worker to empty the spool,
 * closes the drafter and prints "left=N" (drafts still spooled). COUNT 0 just flushes the spool.
 * Used by tests/integration/imap_dovecot.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "draft.h"
#include "log.h"
#include "message.h"
#include "spool.h"
#include "util.h"

static size_t spool_waiting(const char *dir)
{
	char *err = NULL;
	struct spool *s = spool_open(dir, &err);
	free(err);
	if (!s)
		return (size_t)-1;
	struct spool_entry *v = NULL;
	size_t n = 0;
	if (spool_list(s, 0, 100000, &v, &n) < 0)
		n = (size_t)-1;
	spool_list_free(v, n == (size_t)-1 ? 0 : n);
	spool_close(s);
	return n;
}

int main(int argc, char **argv)
{
	const char *conf = NULL, *kind = "apology", *lang = "en";
	long count = 1, wait_ms = 20000;
	int ch;
	while ((ch = getopt(argc, argv, "c:k:l:n:w:")) != -1) {
		switch (ch) {
		case 'c': conf = optarg; break;
		case 'k': kind = optarg; break;
		case 'l': lang = optarg; break;
		case 'n': count = atol(optarg); break;
		case 'w': wait_ms = atol(optarg); break;
		default: return 2;
		}
	}
	if (!conf || optind + 1 != argc) {
		fprintf(stderr, "usage: draft_imap_tool -c CONF [-k K] [-l L] [-n N] [-w MS] FILE\n");
		return 2;
	}
	log_open("draft_imap_tool", true, NULL);
	log_set_level(LOG_LEVEL_INFO);
	message_global_init();
	struct diag d;
	diag_init(&d);
	struct config *cfg = config_load(conf, &d);
	if (!cfg) {
		diag_print(&d, stderr);
		return 1;
	}
	diag_free(&d);
	char *raw = NULL;
	size_t rawlen = 0;
	struct message *m = NULL;
	struct message_limits lim;
	message_limits_default(&lim);
	if (util_read_file(argv[optind], 16 << 20, &raw, &rawlen) < 0 ||
	    message_parse(raw, rawlen, &lim, &m) < 0) {
		fprintf(stderr, "cannot read %s\n", argv[optind]);
		return 1;
	}
	char *err = NULL;
	struct drafter *dr = drafter_open(cfg, &err);
	if (!dr) {
		fprintf(stderr, "drafter_open: %s\n", err);
		return 1;
	}
	int rc = 0;
	for (long i = 0; i < count; i++) {
		struct draft_request req = {
			.kind = draft_kind_parse(kind), .lang = lang, .msg = m,
			.sender = m->from_addr, .now = clock_now(), .queue_id = "TEST",
		};
		long long t0 = util_now_ms();
		int r = drafter_submit(dr, cfg, &req, &err);
		printf("submit=%d ms=%lld\n", r, util_now_ms() - t0);
		if (r < 0) {
			fprintf(stderr, "submit: %s\n", err);
			free(err);
			err = NULL;
			rc = 1;
		}
	}
	long long deadline = util_now_ms() + wait_ms;
	size_t left;
	while ((left = spool_waiting(cfg->drafts.spool_dir)) != 0 && util_now_ms() < deadline)
		usleep(100 * 1000);
	drafter_close(dr);
	printf("left=%zu\n", spool_waiting(cfg->drafts.spool_dir));
	message_free(m);
	free(raw);
	config_unref(cfg);
	return rc;
}
