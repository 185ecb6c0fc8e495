/*
 * benchclient.c - milter load generator: many Postfix-like sessions at once, latency and rate
 *
 * Replays a set of .eml files over the milter wire protocol (version 6, the macros Postfix
 * sends: tests/milterproto.c) from C concurrent connections. Each connection models one SMTP
 * session of Postfix, which opens one milter connection per session: negotiate, connect, helo,
 * K messages, quit; then the thread opens the next session. Messages are taken in turn from
 * the whole list by all threads (message n of the run is FILE[n mod files]), so every server
 * sees the same mix in the same order.
 *
 * The run stops at whichever comes first: -n messages sent or -T seconds passed (checked
 * before each message; a message in flight is finished). Messages that finish during the
 * first -W seconds warm the server up (JIT stacks, per-thread database handles, page cache)
 * and are not counted.
 *
 * Latency is per message, from MAIL to the final reply at end of message (what
 * mproto_send_message reports: its elapsed_ms). The milter does its work at EOM, so the
 * difference between two servers fed the same mix is the time one spends at EOM more than
 * the other.
 *
 * SYNOPSIS  benchclient -s unix:/path|inet:port@host [-c conns=16] [-k msgs_per_session=5]
 *                       [-n max_msgs=0 (no limit)] [-T seconds=10] [-W warmup_s=1]
 *                       [-t io_timeout_s=30] [-l label] PATH...
 *           PATH is an .eml file or a directory whose *.eml files are taken in name order.
 * OUTPUT    one line: "label=L conns=C k=K msgs=N total=N errors=E modified=M secs=S
 *           rate=R p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. mean_ms=.." (msgs, rate and the
 *           latencies count measured messages; total includes warm-up; modified counts
 *           messages to which the milter added or changed a header).
 * DIAGNOSTICS  exit 0 when the run completed, 1 when any exchange failed (the first error
 *              is printed to stderr; the line is still printed), 2 on bad usage or input.
 * OWNERSHIP  everything is freed before exit.
 */
#include "milterproto.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_CONNS 1024
#define BENCH_MAX_FILES 100000
#define BENCH_MAX_FILE_BYTES (64UL * 1024 * 1024)
#define BENCH_MAX_SAMPLES (8UL * 1024 * 1024)  /* per thread: bounds the latency arrays */
#define BENCH_MAX_CONN_FAILURES 20               /* consecutive; then the thread gives up */

struct bench_opts {
	const char *spec;
	const char *label;
	unsigned long conns;
	unsigned long per_session;
	unsigned long max_msgs;        /* 0 = bounded by time only */
	double seconds;
	double warmup_s;
	int timeout_ms;
};

struct bench_run {
	const struct bench_opts *o;
	struct mproto_msg *msgs;
	size_t nmsgs;
	double t_start;                /* monotonic ms */
	double t_measure;              /* end of warm-up */
	double t_stop;
	atomic_ulong next;             /* message number of the run */
	atomic_bool stop;
};

struct bench_worker {
	struct bench_run *run;
	unsigned long index;
	double *lat;                   /* measured latencies, ms */
	size_t nlat, caplat;
	unsigned long total, errors, modified;
	char err[256];
	bool oom;
};

static double bench_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static const struct mproto_env bench_env = {
	.client_name = "mail.example.net",
	.client_addr = "192.0.2.10",
	.client_port = 41234,
	.helo = "mail.example.net",
	.myhostname = "mx.example.test",
};

/* ---- input ----------------------------------------------------------------------------------- */

static bool has_eml_suffix(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 4 && strcmp(name + n - 4, ".eml") == 0;
}

/* load_file - read and parse one message into run->msgs (grown by the caller). */
static int load_file(const char *path, struct mproto_msg *m)
{
	FILE *fp = fopen(path, "rb");
	struct stat sb;
	char err[128], *buf;
	size_t len;
	int rc;

	if (!fp || fstat(fileno(fp), &sb) < 0 || (unsigned long)sb.st_size > BENCH_MAX_FILE_BYTES) {
		fprintf(stderr, "benchclient: %s: %s\n", path, fp ? "too large" : strerror(errno));
		if (fp)
			fclose(fp);
		return -1;
	}
	len = (size_t)sb.st_size;
	buf = malloc(len + 1);
	if (!buf || fread(buf, 1, len, fp) != len) {
		fprintf(stderr, "benchclient: %s: read failed\n", path);
		free(buf);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	rc = mproto_msg_parse(buf, len, NULL, NULL, 0, m, err, sizeof(err));
	free(buf);
	if (rc < 0)
		fprintf(stderr, "benchclient: %s: %s\n", path, err);
	return rc;
}

static int add_path(struct bench_run *run, size_t *cap, const char *path)
{
	if (run->nmsgs >= BENCH_MAX_FILES) {
		fprintf(stderr, "benchclient: more than %d files\n", BENCH_MAX_FILES);
		return -1;
	}
	if (run->nmsgs == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct mproto_msg *nm = realloc(run->msgs, ncap * sizeof(*nm));

		if (!nm)
			return -1;
		run->msgs = nm;
		*cap = ncap;
	}
	memset(&run->msgs[run->nmsgs], 0, sizeof(run->msgs[0]));
	if (load_file(path, &run->msgs[run->nmsgs]) < 0)
		return -1;
	run->nmsgs++;
	return 0;
}

/* load_inputs - every PATH: a file, or a directory's *.eml files in name order. */
static int load_inputs(struct bench_run *run, char **paths, int npaths)
{
	size_t cap = 0;

	for (int i = 0; i < npaths; i++) {
		struct stat sb;
		struct dirent **ents = NULL;
		int n, rc = 0;

		if (stat(paths[i], &sb) < 0) {
			fprintf(stderr, "benchclient: %s: %s\n", paths[i], strerror(errno));
			return -1;
		}
		if (!S_ISDIR(sb.st_mode)) {
			if (add_path(run, &cap, paths[i]) < 0)
				return -1;
			continue;
		}
		n = scandir(paths[i], &ents, NULL, alphasort);
		if (n < 0) {
			fprintf(stderr, "benchclient: %s: %s\n", paths[i], strerror(errno));
			return -1;
		}
		for (int j = 0; j < n; j++) {
			char path[4096];

			if (rc == 0 && has_eml_suffix(ents[j]->d_name)) {
				if (snprintf(path, sizeof(path), "%s/%s", paths[i], ents[j]->d_name) >=
				    (int)sizeof(path)) {
					fprintf(stderr, "benchclient: %s: path too long\n", paths[i]);
					rc = -1;
				} else {
					rc = add_path(run, &cap, path);
				}
			}
			free(ents[j]);
		}
		free(ents);
		if (rc < 0)
			return -1;
	}
	if (run->nmsgs == 0) {
		fprintf(stderr, "benchclient: no .eml files\n");
		return -1;
	}
	return 0;
}

/* ---- the load ------------------------------------------------------------------------------- */

static void record_latency(struct bench_worker *w, double ms)
{
	if (w->nlat == w->caplat) {
		size_t ncap = w->caplat ? w->caplat * 2 : 4096;
		double *nl;

		if (ncap > BENCH_MAX_SAMPLES || !(nl = realloc(w->lat, ncap * sizeof(*nl)))) {
			w->oom = true;
			return;
		}
		w->lat = nl;
		w->caplat = ncap;
	}
	w->lat[w->nlat++] = ms;
}

static bool changed_headers(const struct mproto_result *r)
{
	for (size_t i = 0; i < r->nact; i++)
		if (r->acts[i].type == MPROTO_R_ADDHEADER || r->acts[i].type == MPROTO_R_CHGHEADER ||
		    r->acts[i].type == MPROTO_R_INSHEADER)
			return true;
	return false;
}

/* Take the next message number, or false when the run is over. */
static bool next_message(struct bench_run *run, unsigned long *n)
{
	if (atomic_load(&run->stop))
		return false;
	if (bench_now_ms() >= run->t_stop) {
		atomic_store(&run->stop, true);
		return false;
	}
	*n = atomic_fetch_add(&run->next, 1);
	if (run->o->max_msgs && *n >= run->o->max_msgs) {
		atomic_store(&run->stop, true);
		return false;
	}
	return true;
}

/* One session: negotiate, connect/helo, up to K messages, quit. Returns -1 on I/O error. */
static int run_session(struct bench_worker *w, unsigned long sessno)
{
	struct bench_run *run = w->run;
	struct mproto_conn c = { .fd = -1, .connno = w->index * 100000 + sessno % 100000 + 1 };
	int rc = -1;

	if (mproto_conn_open(&c, run->o->spec, run->o->timeout_ms) < 0 ||
	    mproto_negotiate(&c, 6) < 0 || mproto_connect_helo(&c, &bench_env) < 0)
		goto out;
	for (unsigned long k = 0; k < run->o->per_session; k++) {
		struct mproto_result r;
		unsigned long n;
		int src;

		if (!next_message(run, &n))
			break;
		mproto_result_init(&r);
		src = mproto_send_message(&c, &bench_env, &run->msgs[n % run->nmsgs], NULL, &r);
		w->total++;
		if (src == 0 && r.status != MPROTO_ERROR) {
			if (changed_headers(&r))
				w->modified++;
			if (bench_now_ms() >= run->t_measure)
				record_latency(w, r.elapsed_ms);
		}
		mproto_result_free(&r);
		if (src < 0)
			goto out;
	}
	rc = mproto_quit(&c);
out:
	if (rc < 0 && !w->err[0])
		memcpy(w->err, c.err, sizeof(w->err));
	mproto_conn_close(&c);
	return rc;
}

static void *bench_thread(void *arg)
{
	struct bench_worker *w = arg;
	unsigned long sessno = 0, failures = 0;

	while (!atomic_load(&w->run->stop) && failures < BENCH_MAX_CONN_FAILURES) {
		if (run_session(w, sessno++) < 0) {
			w->errors++;
			failures++;
		} else {
			failures = 0;
		}
	}
	return NULL;
}

/* ---- report --------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *v, size_t n, double p)
{
	size_t rank;

	if (!n)
		return 0;
	rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	return v[rank > n ? n - 1 : rank - 1];
}

static int report(const struct bench_run *run, struct bench_worker *ws, double secs)
{
	size_t n = 0, k = 0;
	unsigned long total = 0, errors = 0, modified = 0;
	double *all, sum = 0;
	const char *err = NULL;

	for (unsigned long i = 0; i < run->o->conns; i++) {
		n += ws[i].nlat;
		total += ws[i].total;
		errors += ws[i].errors;
		modified += ws[i].modified;
		if (!err && ws[i].err[0])
			err = ws[i].err;
	}
	all = malloc((n ? n : 1) * sizeof(*all));
	if (!all) {
		fprintf(stderr, "benchclient: out of memory\n");
		return 1;
	}
	for (unsigned long i = 0; i < run->o->conns; i++)
		for (size_t j = 0; j < ws[i].nlat; j++) {
			all[k++] = ws[i].lat[j];
			sum += ws[i].lat[j];
		}
	qsort(all, n, sizeof(*all), cmp_double);
	printf("label=%s conns=%lu k=%lu msgs=%zu total=%lu errors=%lu modified=%lu secs=%.3f "
	       "rate=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f mean_ms=%.3f\n",
	       run->o->label, run->o->conns, run->o->per_session, n, total, errors, modified, secs,
	       secs > 0 ? (double)n / secs : 0.0, percentile(all, n, 50), percentile(all, n, 90),
	       percentile(all, n, 99), n ? all[n - 1] : 0.0, n ? sum / (double)n : 0.0);
	free(all);
	if (err)
		fprintf(stderr, "benchclient: %s: %lu failed sessions; first error: %s\n",
			run->o->label, errors, err);
	return errors ? 1 : 0;
}

/* ---- main ------------------------------------------------------------------------------------ */

static int usage(void)
{
	fprintf(stderr, "usage: benchclient -s SOCKET [-c conns] [-k msgs_per_session] [-n max_msgs]"
		" [-T seconds] [-W warmup_s] [-t io_timeout_s] [-l label] PATH...\n");
	return 2;
}

static bool parse_ulong(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static bool parse_secs(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
	unsigned long tmo = 30;
	int ch;

	*o = (struct bench_opts){ .label = "bench", .conns = 16, .per_session = 5, .seconds = 10,
				  .warmup_s = 1 };
	while ((ch = getopt(argc, argv, "s:c:k:n:T:W:t:l:")) != -1) {
		bool ok = true;

		switch (ch) {
		case 's': o->spec = optarg; break;
		case 'l': o->label = optarg; break;
		case 'c': ok = parse_ulong(optarg, 1, BENCH_MAX_CONNS, &o->conns); break;
		case 'k': ok = parse_ulong(optarg, 1, 1000000, &o->per_session); break;
		case 'n': ok = parse_ulong(optarg, 0, 1000000000, &o->max_msgs); break;
		case 'T': ok = parse_secs(optarg, 0.1, 3600, &o->seconds); break;
		case 'W': ok = parse_secs(optarg, 0, 600, &o->warmup_s); break;
		case 't': ok = parse_ulong(optarg, 1, 3600, &tmo); break;
		default: ok = false; break;
		}
		if (!ok)
			return -1;
	}
	o->timeout_ms = (int)tmo * 1000;
	if (!o->spec || optind >= argc || o->warmup_s >= o->seconds)
		return -1;
	return optind;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_run run = { 0 };
	struct bench_worker *ws = NULL;
	pthread_t *tids = NULL;
	unsigned long started = 0;
	int first, rc = 2;

	if ((first = parse_opts(argc, argv, &o)) < 0)
		return usage();
	run.o = &o;
	if (load_inputs(&run, argv + first, argc - first) < 0)
		goto out;
	ws = calloc(o.conns, sizeof(*ws));
	tids = calloc(o.conns, sizeof(*tids));
	if (!ws || !tids) {
		fprintf(stderr, "benchclient: out of memory\n");
		goto out;
	}
	run.t_start = bench_now_ms();
	run.t_measure = run.t_start + o.warmup_s * 1000.0;
	run.t_stop = run.t_start + o.seconds * 1000.0;
	for (; started < o.conns; started++) {
		ws[started].run = &run;
		ws[started].index = started;
		if (pthread_create(&tids[started], NULL, bench_thread, &ws[started]) != 0) {
			fprintf(stderr, "benchclient: cannot start thread %lu\n", started + 1);
			atomic_store(&run.stop, true);
			break;
		}
	}
	for (unsigned long i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (started < o.conns)
		goto out;
	{
		double end = bench_now_ms(), from = run.t_measure < end ? run.t_measure : run.t_start;

		rc = report(&run, ws, (end - from) / 1000.0);
	}
	for (unsigned long i = 0; i < o.conns; i++)
		if (ws[i].oom)
			fprintf(stderr, "benchclient: latency samples capped at %lu per thread\n",
				BENCH_MAX_SAMPLES);
out:
	for (unsigned long i = 0; ws && i < o.conns; i++)
		free(ws[i].lat);
	free(ws);
	free(tids);
	for (size_t i = 0; i < run.nmsgs; i++)
		mproto_msg_free(&run.msgs[i]);
	free(run.msgs);
	return rc;
}
