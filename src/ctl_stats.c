/*
 * ctl_stats.c - `amendsctl stats`: print the counters the daemon last wrote
 *
 * The daemon writes a Prometheus-text snapshot to stats.stats_file (default STATE_DIR/stats)
 * every few seconds and at exit; this prints it as is.
 */
#include "ctl.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ctl_stats_main(const struct config *cfg, int argc, char **argv)
{
	char *text;
	size_t len;

	(void)argc; (void)argv;
	if (util_read_file(cfg->stats.stats_file, 16u << 20, &text, &len) < 0) {
		(void)fprintf(stderr, "amendsctl: %s: %s (is the daemon running?)\n",
			      cfg->stats.stats_file, strerror(errno));
		return 1;
	}
	(void)fwrite(text, 1, len, stdout);
	free(text);
	return 0;
}
