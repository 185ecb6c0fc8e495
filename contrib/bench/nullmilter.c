/*
 * nullmilter.c - a milter that does nothing but answer: the baseline for benchmarks
 *
 * It takes every step of the protocol as amends does (connect to end of message, headers and
 * body), answers CONTINUE to each, and at end of message adds one header, "X-Null: yes", and
 * accepts. Measuring it through the same client and MTA as amends separates the cost of the
 * milter protocol and libmilter from the cost of amends' own work.
 *
 * SYNOPSIS  nullmilter -p unix:/path|inet:port@host [-b backlog] [-t timeout_s]
 *           Runs in the foreground until SIGTERM/SIGHUP/SIGINT (libmilter's signal thread).
 * OWNERSHIP  no per-connection state.
 * DIAGNOSTICS  errors to stderr; exit 1 when the socket cannot be opened, 2 on bad usage.
 */
#include <libmilter/mfapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static sfsistat null_eom(SMFICTX *ctx)
{
	/* A failed addheader must not hold mail: accept anyway. */
	(void)smfi_addheader(ctx, "X-Null", "yes");
	return SMFIS_ACCEPT;
}

static struct smfiDesc null_desc = {
	.xxfi_name = "nullmilter",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS,
	.xxfi_eom = null_eom,
};

int main(int argc, char **argv)
{
	const char *spec = NULL;
	int backlog = 128, timeout_s = 30, ch;

	while ((ch = getopt(argc, argv, "p:b:t:")) != -1) {
		switch (ch) {
		case 'p': spec = optarg; break;
		case 'b': backlog = atoi(optarg); break;
		case 't': timeout_s = atoi(optarg); break;
		default: spec = NULL; optind = argc; break;
		}
	}
	if (!spec || backlog <= 0 || timeout_s <= 0) {
		fprintf(stderr, "usage: nullmilter -p unix:/path|inet:port@host [-b backlog] [-t timeout_s]\n");
		return 2;
	}
	if (smfi_setconn((char *)spec) == MI_FAILURE || smfi_setbacklog(backlog) == MI_FAILURE ||
	    smfi_settimeout(timeout_s) == MI_FAILURE || smfi_register(null_desc) == MI_FAILURE) {
		fprintf(stderr, "nullmilter: cannot set up %s\n", spec);
		return 1;
	}
	umask(007);
	if (smfi_opensocket(1) == MI_FAILURE) {
		fprintf(stderr, "nullmilter: cannot open %s\n", spec);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
