/*
 * ctl_lint.c - `amendsctl lint`: configuration, rules, long-standing list and templates
 *
 * Loads everything the daemon would load and prints every problem as file:line[:col]; exits 1
 * when there is an error, 0 otherwise (warnings are printed but do not fail), 2 on bad usage.
 * --rules DIR lints the rule files of DIR instead of the configuration's rules.dir (a copy being
 * tuned, as eval --rules reads one).
 */
#include "ctl.h"
#include "diag.h"
#include "rules.h"
#include "template.h"

#include <stdio.h>
#include <string.h>

int ctl_lint_main(const struct config *cfg, int argc, char **argv)
{
	const char *dir = cfg->rules.dir;
	struct ruleset *rs;
	struct diag d;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rules") && i + 1 < argc) {
			dir = argv[++i];
			continue;
		}
		/* an ignored argument would lint something else than the user named */
		(void)fprintf(stderr, "usage: amendsctl lint [--rules DIR]\n");
		return 2;
	}
	diag_init(&d);
	rs = rules_load(dir, cfg, &d);
	if (rs)
		rules_lint(rs, cfg, &d);
	if (cfg->drafts.enabled)
		template_lint(cfg, &d);
	diag_print(&d, stdout);
	printf("%s: %zu rule(s), %zu error(s), %zu warning(s)\n", cfg->path[0] ? cfg->path : "(defaults)",
	       rs ? rs->n_rules : 0, d.errors, d.warnings);
	rc = d.errors ? 1 : 0;
	rules_unref(rs);
	diag_free(&d);
	return rc;
}
