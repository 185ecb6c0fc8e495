/*
 * fuzz_config.c - libFuzzer target: the config loader through config_load_string() (R2.1 d)
 *
 * The input (up to its first NUL: libconfig reads C strings) is one amends.conf.
 * Oracle: never crashes; a refused file has at least one error and every diagnostic names
 * "<string>" and has text; an accepted one has no errors and a config whose every string is set,
 * whose categories and identities are within their arrays, whose socket spec is valid and whose
 * limits are positive (config.c range-checks: nothing downstream sees nonsense).
 *
 * OWNERSHIP  Everything is freed before returning.
 */
#include "fuzz_common.h"
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_diag(const struct diag *d)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct diag_entry *e = &d->v[i];

		if (e->file && !strcmp(e->file, "<string>") && e->line >= 0 && e->text && *e->text)
			continue;
		diag_print(d, stderr);
		fuzz_fail("diagnostic %zu lacks the file name or text", i);
	}
}

static void check_config(const struct config *c)
{
	const char *strs[] = {
		c->path, c->basedir, c->state_dir, c->milter.socket, c->milter.socket_group,
		c->milter.user, c->milter.pidfile, c->milter.log_level, c->milter.log_facility,
		c->rules.dir, c->rules.longstanding_file, c->tally.store, c->tally.sender,
		c->tally.sqlite_synchronous, c->tally.redis_prefix, c->tally.redis_password,
		c->policy.escalate_category, c->drafts.delivery, c->drafts.maildir, c->drafts.folder,
		c->drafts.flags, c->drafts.templates_dir, c->drafts.spool_dir, c->drafts.default_lang,
		c->drafts.fallback_ur_latn, c->drafts.fallback_hi_latn, c->drafts.imap_url,
		c->drafts.imap_user, c->drafts.imap_password_file, c->drafts.imap_mailbox,
		c->stats.prometheus_listen, c->stats.stats_file,
	};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		FUZZ_CHECK(strs[i] != NULL, "accepted config has string field %zu unset", i);
	FUZZ_CHECK(c->n_categories >= 1 && c->n_categories <= CONFIG_MAX_CATEGORIES,
		   "%zu categories", c->n_categories);
	for (size_t i = 0; i < c->n_categories; i++) {
		FUZZ_CHECK(c->categories[i].name && *c->categories[i].name && c->categories[i].subject_tag,
			   "category %zu incomplete", i);
		FUZZ_CHECK(isfinite(c->categories[i].threshold), "category %zu threshold", i);
		FUZZ_CHECK(config_category_index(c, c->categories[i].name) == (int)i,
			   "category %s is not found at its own index", c->categories[i].name);
	}
	FUZZ_CHECK(c->drafts.n_identities <= CONFIG_MAX_LANGS, "%zu identities",
		   c->drafts.n_identities);
	for (size_t i = 0; i < c->drafts.n_identities; i++) {
		const struct config_identity *id = &c->drafts.identities[i];

		FUZZ_CHECK(id->lang && id->from_name && id->from_addr && id->agent && id->signature,
			   "identity %zu incomplete", i);
	}
	for (size_t i = 0; i < c->policy.n_support_addresses; i++)
		FUZZ_CHECK(c->policy.support_addresses[i], "support address %zu unset", i);
	for (size_t i = 0; i < c->policy.n_problem_categories; i++)
		FUZZ_CHECK(c->policy.problem_categories[i] &&
			   config_category_index(c, c->policy.problem_categories[i]) >= 0,
			   "problem category %zu unknown", i);
	FUZZ_CHECK(config_socket_valid(c->milter.socket) == 0, "accepted an invalid socket \"%s\"",
		   c->milter.socket);
	FUZZ_CHECK(c->limits.max_scan_bytes > 0 && c->limits.mime_depth > 0 &&
		   c->limits.mime_parts > 0 && c->limits.header_bytes > 0 &&
		   c->limits.header_value_bytes > 0 && c->limits.header_count > 0 &&
		   c->limits.part_text_bytes > 0 && c->limits.message_text_bytes > 0,
		   "accepted a limit <= 0");
	FUZZ_CHECK(c->milter.timeout_s > 0, "accepted milter.timeout %d", c->milter.timeout_s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);
	struct diag d;
	struct config *c;

	fuzz_setup();
	diag_init(&d);
	c = config_load_string(text, &d);
	check_diag(&d);
	if (c) {
		FUZZ_CHECK(d.errors == 0, "config accepted with %zu errors", d.errors);
		check_config(c);
		config_unref(c);
	} else {
		FUZZ_CHECK(d.errors > 0, "config refused without an error");
	}
	diag_free(&d);
	free(text);
	return 0;
}
