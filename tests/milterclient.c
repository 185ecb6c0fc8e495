/*
 * milterclient.c - drive a milter over its socket like Postfix does, print what it changed
 *
 * SYNOPSIS
 *   milterclient -s unix:/path|inet:port@host [-n N] [-c C] [-f envfrom] [-r rcpt]...
 *                [--protocol 2|6] [-t seconds] [--abort-at STAGE[:K]] [--close-only]
 *                [--no-quit] [--show-optneg] [--basename] [-q] [--summary] FILE.eml...
 *
 * C connections (default 1) run at once; each sends N messages (default: the files shared out
 * evenly), taking files in turn from the list (message k of the run is FILE[k mod files]).
 * For each message, in run order, it prints a stable transcript:
 *   FILE: ACCEPT|CONTINUE|TEMPFAIL|REJECT|DISCARD|ABORTED|ERROR
 *   stage: mail                 (only when the answer came before end of message)
 *   reply: 550 5.7.1 ...        (SMFIR_REPLYCODE) / error: ... (what went wrong)
 *   add: Name: value            (SMFIR_ADDHEADER)
 *   ins: IDX Name: value        (SMFIR_INSHEADER)
 *   chg: Name[IDX]: value       (SMFIR_CHGHEADER; "(deleted)" when the value is empty)
 *   rcpt-add:/rcpt-del:/from:/quarantine: ..., body: replaced (N bytes)
 * Controls in values are escaped (\n, \t, \\), so each action is one line.
 * --close-only negotiates and quits with no message (a connection that only gets xxfi_close);
 * --no-quit drops the socket instead of sending QUIT; --abort-at sends SMFIC_ABORT after
 * STAGE (mail, data, header, eoh, body: after the first chunk) of every message or the K-th
 * of each connection; --show-optneg prints the milter's negotiation per connection.
 *
 * DIAGNOSTICS  exit 0 when every exchange completed, 1 on any I/O or protocol error or
 *              timeout (the message's transcript says "ERROR" and why), 2 on bad usage or an
 *              unreadable file. Errors also go to stderr.
 * OWNERSHIP  everything is freed before exit (the client runs clean under valgrind).
 */
#include "milterproto.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_RCPTS 64
#define MAX_CONNS 4096
#define MAX_FILE_BYTES (256UL * 1024 * 1024)

struct opts {
	const char *spec;
	unsigned long per_conn;       /* N; 0 = share the files out */
	unsigned long conns;          /* C */
	const char *envfrom;
	char *rcpts[MAX_RCPTS];
	size_t nrcpt;
	uint32_t version;
	int timeout_ms;
	struct mproto_abort ab;
	bool close_only, no_quit, show_optneg, basename, quiet, summary;
};

struct input {
	const char *path;
	const char *label;
	struct mproto_msg msg;
};

/* One connection's work and what came back. */
struct worker {
	pthread_t tid;
	unsigned long index;
	const struct opts *o;
	const struct input *in;
	size_t nin;
	struct mproto_result *res;    /* per_conn results, or NULL when quiet */
	unsigned long done;           /* messages answered */
	unsigned long counts[MPROTO_ERROR + 1];
	uint32_t version, actions, protocol;
	bool negotiated;
	bool failed;
	char err[256];
};

static void usage(FILE *fp)
{
	fputs("usage: milterclient -s unix:/path|inet:port@host [-n N] [-c C] [-f envfrom]\n"
	      "         [-r rcpt]... [--protocol 2|6] [-t seconds] [--abort-at STAGE[:K]]\n"
	      "         [--close-only] [--no-quit] [--show-optneg] [--basename] [-q] [--summary]\n"
	      "         FILE.eml...\n", fp);
}

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_abort(const char *arg, struct mproto_abort *ab)
{
	char buf[32];
	char *colon;
	unsigned long k = 0;

	if (strlen(arg) >= sizeof(buf))
		return -1;
	memcpy(buf, arg, strlen(arg) + 1);
	if ((colon = strchr(buf, ':')) != NULL) {
		*colon = '\0';
		if (parse_ulong(colon + 1, 1, 1000000, &k) < 0)
			return -1;
	}
	if (mproto_stage_parse(buf, &ab->stage) < 0 || ab->stage < MPROTO_ST_MAIL ||
	    ab->stage > MPROTO_ST_BODY || ab->stage == MPROTO_ST_RCPT)
		return -1;
	ab->only_msg = k;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_PROTO = 256, O_ABORT, O_CLOSE, O_NOQUIT, O_OPTNEG, O_BASE, O_SUMMARY };
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "protocol", required_argument, NULL, O_PROTO },
		{ "timeout", required_argument, NULL, 't' },
		{ "abort-at", required_argument, NULL, O_ABORT },
		{ "close-only", no_argument, NULL, O_CLOSE },
		{ "no-quit", no_argument, NULL, O_NOQUIT },
		{ "show-optneg", no_argument, NULL, O_OPTNEG },
		{ "basename", no_argument, NULL, O_BASE },
		{ "summary", no_argument, NULL, O_SUMMARY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	int ch;

	o->conns = 1;
	o->version = 6;
	o->timeout_ms = 30000;
	while ((ch = getopt_long(argc, argv, "s:n:c:f:r:t:qh", lopts, NULL)) != -1) {
		switch (ch) {
		case 's': o->spec = optarg; break;
		case 'n':
			if (parse_ulong(optarg, 1, 100000000, &o->per_conn) < 0)
				goto bad;
			break;
		case 'c':
			if (parse_ulong(optarg, 1, MAX_CONNS, &o->conns) < 0)
				goto bad;
			break;
		case 'f': o->envfrom = optarg; break;
		case 'r':
			if (o->nrcpt == MAX_RCPTS)
				goto bad;
			o->rcpts[o->nrcpt++] = optarg;
			break;
		case 't':
			if (parse_ulong(optarg, 1, 3600, &v) < 0)
				goto bad;
			o->timeout_ms = (int)(v * 1000);
			break;
		case O_PROTO:
			if (parse_ulong(optarg, 2, 6, &v) < 0 || (v != 2 && v != 6))
				goto bad;
			o->version = (uint32_t)v;
			break;
		case O_ABORT:
			if (parse_abort(optarg, &o->ab) < 0)
				goto bad;
			break;
		case O_CLOSE: o->close_only = true; break;
		case O_NOQUIT: o->no_quit = true; break;
		case O_OPTNEG: o->show_optneg = true; break;
		case O_BASE: o->basename = true; break;
		case 'q': o->quiet = true; break;
		case O_SUMMARY: o->summary = true; break;
		case 'h': usage(stdout); exit(0);
		default: goto bad;
		}
	}
	if (!o->spec || (optind >= argc && !o->close_only))
		goto bad;
	return optind;
bad:
	usage(stderr);
	return -1;
}

static int load_inputs(const struct opts *o, char **paths, size_t n, struct input *in)
{
	for (size_t i = 0; i < n; i++) {
		char err[128];
		FILE *fp = fopen(paths[i], "rb");
		struct stat sb;
		char *buf;

		in[i].path = paths[i];
		const char *slash = strrchr(paths[i], '/');
		in[i].label = o->basename && slash ? slash + 1 : paths[i];
		if (!fp || fstat(fileno(fp), &sb) < 0 || (unsigned long long)sb.st_size > MAX_FILE_BYTES) {
			fprintf(stderr, "milterclient: %s: %s\n", paths[i],
				fp ? "too large" : strerror(errno));
			if (fp)
				fclose(fp);
			return -1;
		}
		size_t len = (size_t)sb.st_size;
		buf = malloc(len + 1);
		if (!buf || fread(buf, 1, len, fp) != len) {
			fprintf(stderr, "milterclient: %s: read failed\n", paths[i]);
			free(buf);
			fclose(fp);
			return -1;
		}
		fclose(fp);
		int rc = mproto_msg_parse(buf, len, o->envfrom, o->rcpts, o->nrcpt, &in[i].msg, err,
					  sizeof(err));
		free(buf);
		if (rc < 0) {
			fprintf(stderr, "milterclient: %s: %s\n", paths[i], err);
			return -1;
		}
	}
	return 0;
}

static const struct mproto_env client_env = {
	.client_name = "mail.example.net",
	.client_addr = "192.0.2.10",
	.client_port = 41234,
	.helo = "mail.example.net",
	.myhostname = "mx.example.test",
};

/* run_connection - one MTA connection: negotiate, connect/helo, N messages, quit. */
static void *run_connection(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	struct mproto_conn c = { .fd = -1, .connno = w->index + 1 };
	unsigned long n = o->per_conn;

	if (mproto_conn_open(&c, o->spec, o->timeout_ms) < 0 || mproto_negotiate(&c, o->version) < 0)
		goto fail;
	w->negotiated = true;
	w->version = c.version;
	w->actions = c.actions;
	w->protocol = c.protocol;
	if (o->close_only)
		goto quit;
	if (mproto_connect_helo(&c, &client_env) < 0)
		goto fail;
	for (unsigned long k = 0; k < n; k++) {
		const struct input *in = &w->in[(w->index * n + k) % w->nin];
		struct mproto_result scratch;
		struct mproto_result *r = w->res ? &w->res[k] : &scratch;

		mproto_result_init(r);
		int rc = mproto_send_message(&c, &client_env, &in->msg, &o->ab, r);
		w->counts[r->status]++;
		w->done++;
		if (!w->res)
			mproto_result_free(r);
		if (rc < 0)
			goto fail;
	}
quit:
	if (!o->no_quit && mproto_quit(&c) < 0)
		goto fail;
	mproto_conn_close(&c);
	return NULL;
fail:
	w->failed = true;
	memcpy(w->err, c.err, sizeof(w->err));
	mproto_conn_close(&c);
	return NULL;
}

static void print_worker(const struct opts *o, const struct worker *w)
{
	if (o->show_optneg && w->negotiated)
		printf("optneg: version=%u actions=0x%x protocol=0x%x\n", w->version, w->actions,
		       w->protocol);
	if (o->close_only && !w->failed)
		printf("close: ok\n");
	for (unsigned long k = 0; w->res && k < w->done; k++) {
		const struct input *in = &w->in[(w->index * o->per_conn + k) % w->nin];
		mproto_result_print(stdout, in->label, &w->res[k]);
	}
	/* Messages never sent because the connection failed earlier. */
	if (w->failed && w->done == 0 && !o->quiet)
		printf("connection %lu: ERROR\nerror: %s\n", w->index + 1, w->err);
	if (w->failed)
		fprintf(stderr, "milterclient: connection %lu: %s\n", w->index + 1, w->err);
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	int first = parse_args(argc, argv, &o);
	int status = 0;

	if (first < 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	size_t nin = (size_t)(argc - first);
	struct input *in = calloc(nin ? nin : 1, sizeof(*in));
	struct worker *w = calloc(o.conns, sizeof(*w));
	if (!in || !w || load_inputs(&o, argv + first, nin, in) < 0) {
		status = 2;
		goto out;
	}
	if (o.per_conn == 0)
		o.per_conn = o.close_only ? 0 : (nin + o.conns - 1) / o.conns;
	for (unsigned long i = 0; i < o.conns; i++) {
		w[i] = (struct worker){ .index = i, .o = &o, .in = in, .nin = nin };
		if (!o.quiet && o.per_conn && !(w[i].res = calloc(o.per_conn, sizeof(*w[i].res)))) {
			fprintf(stderr, "milterclient: out of memory\n");
			status = 2;
			goto out;
		}
	}
	unsigned long started = 0;
	for (; started < o.conns; started++) {
		if (pthread_create(&w[started].tid, NULL, run_connection, &w[started]) != 0) {
			fprintf(stderr, "milterclient: cannot start connection %lu\n", started + 1);
			status = 1;
			break;
		}
	}
	unsigned long counts[MPROTO_ERROR + 1] = { 0 };
	for (unsigned long i = 0; i < started; i++) {
		pthread_join(w[i].tid, NULL);
		if (!o.quiet)
			print_worker(&o, &w[i]);
		else if (w[i].failed)
			fprintf(stderr, "milterclient: connection %lu: %s\n", i + 1, w[i].err);
		if (w[i].failed)
			status = 1;
		for (unsigned s = 0; s <= MPROTO_ERROR; s++)
			counts[s] += w[i].counts[s];
	}
	if (o.summary) {
		printf("summary:");
		for (unsigned s = 0; s <= MPROTO_ERROR; s++)
			printf(" %s=%lu", mproto_status_name((enum mproto_status)s), counts[s]);
		printf("\n");
	}
out:
	for (unsigned long i = 0; w && i < o.conns; i++) {
		for (unsigned long k = 0; w[i].res && k < w[i].done; k++)
			mproto_result_free(&w[i].res[k]);
		free(w[i].res);
	}
	for (size_t i = 0; in && i < nin; i++)
		mproto_msg_free(&in[i].msg);
	free(in);
	free(w);
	if (fflush(stdout) != 0)
		status = status ? status : 1;
	return status;
}
