/*
 * nullmilter.c - a milter that does nothing but answer: the baseline for benchmarks
 *
 * It negotiates the protocol exactly as amends does (src/milter.c cb_negotiate): no connect,
 * HELO, RCPT, DATA or unknown-command events; MAIL, every header, end of headers, the body and
 * end of message; no reply to headers and body chunks when the MTA allows it (SMFIP_NR_HDR /
 * SMFIP_NR_BODY), SMFIP_SKIP offered. It answers CONTINUE (or NOREPLY) to each and at end of
 * message adds one header, "X-Null: yes", and accepts. So it is the protocol floor of a content
 * filter: measuring it through the same client as amends separates the cost of the milter
 * protocol and libmilter from the cost of amends' own work.
 *
 * SYNOPSIS  nullmilter -p unix:/path|inet:port@host [-b backlog] [-t timeout_s]
 *           Runs in the foreground until SIGTERM/SIGHUP/SIGINT (libmilter's signal thread).
 * OWNERSHIP  no per-connection state.
 * DIAGNOSTICS  errors to stderr; exit 1 when the socket cannot be opened, 2 on bad usage.
 */
#include <libmilter/mfapi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Per connection: which events the MTA agreed not to wait a reply for (a pointer-sized bit
 * set kept in libmilter's private data; no allocation). */
#define NR_HDR 1UL
#define NR_BODY 2UL

static unsigned long noreply(SMFICTX *ctx)
{
	return (unsigned long)(uintptr_t)smfi_getpriv(ctx);
}

static sfsistat null_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
			       unsigned long f3, unsigned long *pf0, unsigned long *pf1,
			       unsigned long *pf2, unsigned long *pf3)
{
	unsigned long want = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NORCPT | SMFIP_NOUNKNOWN |
			     SMFIP_NODATA | SMFIP_SKIP | SMFIP_NR_HDR | SMFIP_NR_BODY;

	(void)f2; (void)f3;
	*pf0 = f0 & SMFIF_ADDHDRS;
	*pf1 = f1 & want;
	*pf2 = 0;
	*pf3 = 0;
	smfi_setpriv(ctx, (void *)(uintptr_t)(((f1 & SMFIP_NR_HDR) ? NR_HDR : 0) |
					      ((f1 & SMFIP_NR_BODY) ? NR_BODY : 0)));
	return SMFIS_CONTINUE;
}

static sfsistat null_envfrom(SMFICTX *ctx, char **argv)
{
	(void)ctx; (void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat null_header(SMFICTX *ctx, char *name, char *value)
{
	(void)name; (void)value;
	return noreply(ctx) & NR_HDR ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat null_eoh(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat null_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	(void)chunk; (void)len;
	return noreply(ctx) & NR_BODY ? SMFIS_NOREPLY : SMFIS_CONTINUE;
}

static sfsistat null_close(SMFICTX *ctx)
{
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

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
	.xxfi_envfrom = null_envfrom,
	.xxfi_header = null_header,
	.xxfi_eoh = null_eoh,
	.xxfi_body = null_body,
	.xxfi_eom = null_eom,
	.xxfi_close = null_close,
	.xxfi_negotiate = null_negotiate,
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
