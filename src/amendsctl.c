/*
 * amendsctl.c - the admin tool: a table of subcommands, each in its own ctl_*.c
 *
 *   amendsctl [-c FILE] check [--json] FILE...       explain what the milter would do
 *   amendsctl [-c FILE] lint                         check config, rules and templates
 *   amendsctl [-c FILE] eval DIR [--json]            precision/recall over a labelled folder
 *   amendsctl [-c FILE] tally show|top|reset|forget  the per-sender tally
 *   amendsctl [-c FILE] draft [--kind K] FILE        render a draft offline
 *   amendsctl [-c FILE] drafts                       spooled / failed drafts
 *   amendsctl [-c FILE] stats                        the daemon's counters
 */
#include "ctl.h"
#include "diag.h"
#include "log.h"
#include "message.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


struct ctl_command {
	const char *name;
	int (*fn)(const struct config *cfg, int argc, char **argv);
	const char *help;
};

static const struct ctl_command commands[] = {
	{ "check", ctl_check_main, "check [--json] [--rules DIR] FILE...\n"
				   "                         run the pipeline offline and explain it" },
	{ "lint", ctl_lint_main, "lint [--rules DIR]       check configuration, rules and templates" },
	{ "eval", ctl_eval_main, "eval DIR [--json]        precision/recall/F1 over a labelled corpus\n"
				 "       [--per-rule] [--rules DIR] [--deadline-ms N]\n"
				 "       [--min-f1 X] [--min-f1-latn X] [--min-cat-f1 CATEGORY=X] [--max-fp X]"
				 " [--min-lang X]" },
	{ "tally", ctl_tally_main, "tally show ADDR | top [N] | reset ADDR | forget ADDR [--json]" },
	{ "draft", ctl_draft_main, "draft [--kind K] [--lang L] [--raw] FILE   render a draft offline" },
	{ "drafts", ctl_drafts_main, "drafts                   list spooled and failed drafts" },
	{ "stats", ctl_stats_main, "stats                    the daemon's counters" },
};

static void usage(FILE *fp)
{
	(void)fprintf(fp, "usage: amendsctl [-c FILE] COMMAND [ARGS]\n"
		      "  -c FILE  configuration (default " SYSCONFDIR "/amends/amends.conf)\n"
		      "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		(void)fprintf(fp, "  %s\n", commands[i].help);
}

/*
 * stdout_status - the exit status rc, made 1 when stdout lost output. The subcommands do not
 * check each printf/fwrite/fputc to stdout (ctl.h): a failed write sets the stream's error
 * flag, which stays set, so one check here, after flushing, catches a full disk or a closed
 * pipe that would otherwise exit 0 with the output cut short.
 */
static int stdout_status(int rc)
{
	int err = fflush(stdout) != 0 ? errno : 0;

	if (!err && !ferror(stdout))
		return rc;
	if (err)
		(void)fprintf(stderr, "amendsctl: cannot write the output: %s\n", strerror(err));
	else
		(void)fprintf(stderr, "amendsctl: cannot write the output\n");
	return rc ? rc : 1;
}

int main(int argc, char **argv)
{
	const char *path = SYSCONFDIR "/amends/amends.conf";
	struct config *cfg;
	struct diag d;
	int ch, rc;

	while ((ch = getopt(argc, argv, "+c:hV")) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'V': printf("amendsctl %s\n", PACKAGE_VERSION); return stdout_status(0);
		case 'h': usage(stdout); return stdout_status(0);
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	log_open("amendsctl", true, NULL);
	log_set_level(LOG_LEVEL_WARN);
	message_global_init();
	diag_init(&d);
	cfg = config_load(path, &d);
	if (!cfg) {
		diag_print(&d, stderr);
		diag_free(&d);
		return 1;
	}
	diag_print(&d, stderr);
	diag_free(&d);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			rc = commands[i].fn(cfg, argc - optind, argv + optind);
			config_unref(cfg);
			return stdout_status(rc);
		}
	}
	(void)fprintf(stderr, "amendsctl: unknown command \"%s\"\n", argv[optind]);
	usage(stderr);
	config_unref(cfg);
	return 2;
}
