/*
 * fuzz_milter.c - libFuzzer target: what the milter does with a message, through pipeline_run()
 *
 * The shipped rules (the rules/ directory) are loaded once in LLVMFuzzerInitialize with the
 * default config plus subject tags on every category, so the tagging paths run. Byte 0 picks
 * the mode:
 *  - bit 0 clear: the rest is the raw message as collected, handed to pipeline_run() whole;
 *  - bit 0 set: the rest is a milter session, split at NUL bytes (libmilter passes C strings):
 *    envelope sender, then header name/value pairs up to an empty name, then body chunks. They
 *    are collected by milter.c's own collection step (milter_collect_header/_eoh/_body, what
 *    cb_header/cb_eoh/cb_body call) capped at max_scan_bytes, or at byte 1 x 64 bytes when
 *    byte 1 is not 0, so truncation (->truncated) is exercised too. The callbacks themselves,
 *    in any order, are fuzz_callbacks.c's.
 * The run is a dry run: no tally, no drafter. Oracle: pipeline_run succeeds; at most 16 headers
 * are added, each an X-Amends-* name once, each value a single printable-ASCII line short enough
 * for a 998-octet header line (libmilter does not check: no header injection, R8.3); a new
 * subject has no control characters and fits a line too.
 *
 * OWNERSHIP  The ruleset lives until the process ends; everything per input is freed.
 */
#include "fuzz_common.h"
#include "milter.h"
#include "pipeline.h"
#include "rules.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_MILTER_FIELDS 4096

static struct ruleset *fuzz_rs;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct config *cfg = fuzz_config();
	struct diag d;
	struct strbuf dir;

	(void)argc; (void)argv;
	fuzz_config_tag_all(cfg);
	strbuf_init(&dir, 0);
	strbuf_printf(&dir, "%s/rules", fuzz_srcdir());
	diag_init(&d);
	fuzz_rs = rules_load(dir.s, cfg, &d);
	if (!fuzz_rs || !fuzz_rs->n_rules) {
		diag_print(&d, stderr);
		fuzz_fail("cannot load the shipped rules from %s", dir.s);
	}
	diag_free(&d);
	strbuf_free(&dir);
	return 0;
}

static void check_result(const struct pipeline_result *res)
{
	FUZZ_CHECK(res->msg && res->lang, "no message or language in the result");
	FUZZ_CHECK(res->n_add <= UTIL_ARRAY_LEN(res->add), "%zu headers added", res->n_add);
	for (size_t i = 0; i < res->n_add; i++) {
		const char *name = res->add[i].name;

		FUZZ_CHECK(name && util_ascii_casestarts(name, "X-Amends-"), "added header \"%s\"",
			   name ? name : "(null)");
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcasecmp(name, res->add[j].name) != 0, "%s added twice", name);
		fuzz_check_header_value(name, res->add[i].value);
		FUZZ_CHECK(util_utf8_valid(res->add[i].value, strlen(res->add[i].value)),
			   "%s: invalid UTF-8", name);
		for (const char *p = res->add[i].value; *p; p++)
			FUZZ_CHECK((unsigned char)*p < 0x80, "%s: non-ASCII value", name);
	}
	if (res->new_subject)
		fuzz_check_header_value("Subject", res->new_subject);
}

static void run(const char *raw, size_t len, const char *envfrom, bool truncated)
{
	const struct pipeline_env env = { .cfg = fuzz_config(), .rs = fuzz_rs };
	const struct pipeline_input in = { .queue_id = "FUZZ", .envfrom = envfrom, .raw = raw,
					   .raw_len = len, .truncated = truncated };
	struct pipeline_result res;

	FUZZ_CHECK(pipeline_run(&env, &in, PIPELINE_DRY_RUN, &res) == 0,
		   "pipeline_run failed on %zu bytes", len);
	check_result(&res);
	pipeline_result_free(&res);
}

/* Collect through milter.c's own collection step (what cb_header/cb_eoh/cb_body call), then
 * run. Headers are C strings there (libmilter's), so a field ends at its first NUL anyway. */
static void run_session(const uint8_t *data, size_t size, size_t cap)
{
	static const uint8_t *f[FUZZ_MILTER_FIELDS];
	static size_t flen[FUZZ_MILTER_FIELDS];
	static struct milter_msg msg;   /* ~4 KiB of forged-name slots: not on the stack */
	size_t n = fuzz_split(data, size, 0, f, flen, FUZZ_MILTER_FIELDS), i = 1;
	char *envfrom = fuzz_strndup(f[0], flen[0]);

	milter_msg_begin(&msg, cap);
	for (; i + 1 < n && flen[i] > 0; i += 2) {
		char *name = fuzz_strndup(f[i], flen[i]);
		char *value = fuzz_strndup(f[i + 1], flen[i + 1]);

		FUZZ_CHECK(milter_collect_header(&msg, name, value) == 0, "out of memory collecting");
		free(name);
		free(value);
	}
	milter_collect_eoh(&msg);
	for (i++; i < n; i++)
		FUZZ_CHECK(milter_collect_body(&msg, f[i], flen[i]) == 0, "out of memory collecting");
	FUZZ_CHECK(!msg.raw.oom, "out of memory collecting");
	FUZZ_CHECK(msg.raw.len <= cap || !cap, "collected %zu bytes past the %zu cap", msg.raw.len,
		   cap);
	FUZZ_CHECK(msg.truncated == msg.raw.truncated, "truncated %d, the buffer says %d",
		   msg.truncated, msg.raw.truncated);
	run(msg.raw.s ? msg.raw.s : "", msg.raw.len, envfrom, msg.truncated);
	milter_msg_reset(&msg);
	free(envfrom);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (!(data[0] & 1)) {
		run((const char *)data + 2, size - 2, "customer@example.com", false);
		return 0;
	}
	size_t cap = data[1] ? (size_t)data[1] * 64 : fuzz_config()->limits.max_scan_bytes;

	run_session(data + 2, size - 2, cap);
	return 0;
}
