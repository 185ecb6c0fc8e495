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
 * Two load models:
 *  - closed loop (default): each connection sends its next message as soon as the last one
 *    is answered. This finds the saturation rate; the latency it reports at saturation is
 *    mostly queueing (Little's law: C messages in flight).
 *  - open loop, --rate R: messages arrive on a schedule of R per second over all connections,
 *    Poisson (exponential gaps, the default) or evenly spaced (--arrivals even), drawn from
 *    --seed so that two servers get the same arrival times. A free connection takes the next
 *    arrival in order and waits for its time; when all C connections are busy, the arrival
 *    waits for the first one to free, as mail waits for an smtpd. Latency is measured from
 *    the *scheduled* arrival to the final reply at EOM, so time spent waiting for a busy
 *    server or connection counts (no coordinated omission). The file list is shuffled once
 *    with the seed, so that large messages are spread over the schedule instead of arriving
 *    in one directory-ordered burst.
 *
 * The run is bounded by count and time. Closed loop: it stops at whichever comes first, -n
 * messages sent or -T seconds passed (checked before each message; a message in flight is
 * finished); messages that finish during the first -W seconds warm the server up (JIT
 * stacks, per-thread database handles, page cache) and are not counted. Open loop: the
 * schedule holds the arrivals in the first -T seconds (at most -n); arrivals scheduled in the
 * first -W seconds are sent but not counted; arrivals still not started -T/2 seconds (at least
 * 1 s) after the end of the schedule are not sent and are reported as missed: the server did
 * not sustain R, and the latencies are then a lower bound.
 *
 * Closed loop latency is per message, from MAIL to the final reply at end of message (what
 * mproto_send_message reports: its elapsed_ms). The milter does its work at EOM, so the
 * difference between two servers fed the same mix is the time one spends at EOM more than
 * the other.
 *
 * SYNOPSIS  benchclient -s unix:/path|inet:port@host [-c conns=16] [-k msgs_per_session=5]
 *                       [-n max_msgs=0 (no limit)] [-T seconds=10] [-W warmup_s=1]
 *                       [-t io_timeout_s=30] [-l label]
 *                       [-r|--rate msgs_per_s [--arrivals poisson|even] [--seed N=1]] PATH...
 *           PATH is an .eml file or a directory whose *.eml files are taken in name order.
 * OUTPUT    one line: "label=L conns=C k=K msgs=N total=N errors=E modified=M secs=S
 *           rate=R p50_ms=.. p90_ms=.. p99_ms=.. max_ms=.. mean_ms=.. mode=closed|rate"
 *           (msgs, rate and the latencies count measured messages; total includes warm-up;
 *           modified counts messages to which the milter added or changed a header); with
 *           --rate also "offered=R arrivals=A seed=N missed=M lag_p99_ms=.. lag_max_ms=.."
 *           (lag: from the scheduled arrival to the start of MAIL, the part of the latency
 *           spent waiting for a free connection or for the client's own wake-up).
 * DIAGNOSTICS  exit 0 when the run completed, 1 when any exchange failed (the first error
 *              is printed to stderr; the line is still printed), 2 on bad usage or input.
 *              Missed arrivals are reported on stderr and in the line but do not fail the run.
 * OWNERSHIP  everything is freed before exit.
 */
#include "milterproto.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_CONNS 1024
#define BENCH_MAX_FILES 100000
#define BENCH_MAX_FILE_BYTES (64UL * 1024 * 1024)
#define BENCH_MAX_SAMPLES (8UL * 1024 * 1024)  /* per thread: bounds the latency arrays */
#define BENCH_MAX_CONN_FAILURES 20               /* consecutive; then the thread gives up */
#define BENCH_MAX_RATE 1e6                       /* msgs/s */
#define BENCH_MAX_SCHEDULE 1e8                   /* rate x seconds: bounds the missed count */

enum bench_arrivals { BENCH_POISSON, BENCH_EVEN };

struct bench_opts {
	const char *spec;
	const char *label;
	unsigned long conns;
	unsigned long per_session;
	unsigned long max_msgs;        /* 0 = bounded by time only */
	double seconds;
	double warmup_s;
	int timeout_ms;
	double rate;                   /* msgs/s over all connections; 0 = closed loop */
	enum bench_arrivals arrivals;
	uint64_t seed;
};

/* The open-loop arrival schedule, taken in order under its lock. Times are monotonic ms. */
struct bench_sched {
	pthread_mutex_t lock;
	uint64_t rng;                  /* splitmix64 state */
	unsigned long n;               /* number of the next arrival */
	double next;                   /* its scheduled time */
	double t_hard;                 /* arrivals not started by then are missed */
	unsigned long missed;
};

struct bench_run {
	const struct bench_opts *o;
	struct mproto_msg *msgs;
	size_t nmsgs;
	double t_start;                /* monotonic ms */
	double t_measure;              /* end of warm-up */
	double t_stop;
	atomic_ulong next;             /* message number of the run (closed loop) */
	atomic_bool stop;
	struct bench_sched sched;      /* open loop */
};

/* A growing array of samples, ms, at most BENCH_MAX_SAMPLES. */
struct bench_samples {
	double *v;
	size_t n, cap;
};

struct bench_worker {
	struct bench_run *run;
	unsigned long index;
	struct bench_samples lat;      /* measured latencies */
	struct bench_samples lag;      /* open loop: scheduled arrival to start of MAIL */
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

/* splitmix64: a small, seedable generator; the same seed gives the same schedule. */
static uint64_t bench_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A uniform double in (0, 1]. */
static double bench_rand_unit(uint64_t *s)
{
	return (double)((bench_rand(s) >> 11) + 1) * 0x1.0p-53;
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

/* shuffle_inputs - one Fisher-Yates pass from the seed (open loop): the files are in name
 * order, and the generated large mails would otherwise arrive as one burst per cycle. */
static void shuffle_inputs(struct bench_run *run)
{
	uint64_t s = run->o->seed ^ 0x5bd1e995ULL;

	for (size_t i = run->nmsgs; i > 1; i--) {
		size_t j = (size_t)(bench_rand(&s) % i);
		struct mproto_msg t = run->msgs[i - 1];

		run->msgs[i - 1] = run->msgs[j];
		run->msgs[j] = t;
	}
}

/* ---- the load ------------------------------------------------------------------------------- */

static void record_sample(struct bench_worker *w, struct bench_samples *a, double ms)
{
	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 4096;
		double *nv;

		if (ncap > BENCH_MAX_SAMPLES || !(nv = realloc(a->v, ncap * sizeof(*nv)))) {
			w->oom = true;
			return;
		}
		a->v = nv;
		a->cap = ncap;
	}
	a->v[a->n++] = ms;
}

static bool changed_headers(const struct mproto_result *r)
{
	for (size_t i = 0; i < r->nact; i++)
		if (r->acts[i].type == MPROTO_R_ADDHEADER || r->acts[i].type == MPROTO_R_CHGHEADER ||
		    r->acts[i].type == MPROTO_R_INSHEADER)
			return true;
	return false;
}

/* Advance the schedule past the arrival it points at. Called with the lock held. */
static void sched_advance(struct bench_run *run)
{
	struct bench_sched *s = &run->sched;

	s->n++;
	if (run->o->arrivals == BENCH_EVEN)
		s->next = run->t_start + (double)s->n * 1000.0 / run->o->rate;
	else
		s->next += -log(bench_rand_unit(&s->rng)) * 1000.0 / run->o->rate;
}

static bool sched_has_more(const struct bench_run *run)
{
	return run->sched.next < run->t_stop &&
	       (!run->o->max_msgs || run->sched.n < run->o->max_msgs);
}

/* Open loop: take the next arrival (number and scheduled time), or false when the schedule
 * is over. Past the hard stop the rest of the schedule is counted as missed, not sent. */
static bool next_arrival(struct bench_run *run, unsigned long *n, double *at)
{
	struct bench_sched *s = &run->sched;
	bool ok = false;

	pthread_mutex_lock(&s->lock);
	if (atomic_load(&run->stop)) {
		/* over */
	} else if (!sched_has_more(run)) {
		atomic_store(&run->stop, true);
	} else if (bench_now_ms() >= s->t_hard) {
		/* bounded: rate x seconds <= BENCH_MAX_SCHEDULE */
		for (; sched_has_more(run); sched_advance(run))
			s->missed++;
		atomic_store(&run->stop, true);
	} else {
		*n = s->n;
		*at = s->next;
		sched_advance(run);
		ok = true;
	}
	pthread_mutex_unlock(&s->lock);
	return ok;
}

/* Sleep until the monotonic time at (ms); returns at once when it has passed. */
static void sleep_until(double at)
{
	struct timespec ts;
	int rc;

	if (bench_now_ms() >= at)
		return;
	ts.tv_sec = (time_t)(at / 1000.0);
	ts.tv_nsec = (long)((at - (double)ts.tv_sec * 1000.0) * 1e6);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	} else if (ts.tv_nsec < 0) {
		ts.tv_nsec = 0;
	}
	do
		rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	while (rc == EINTR);
}

/* Take the next message number, or false when the run is over. Open loop: *at is its
 * scheduled time and the caller waits for it; closed loop: *at = 0, send now. */
static bool next_message(struct bench_run *run, unsigned long *n, double *at)
{
	*at = 0;
	if (run->o->rate > 0)
		return next_arrival(run, n, at);
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

/* Count a completed message if it is past the warm-up. Closed loop: by completion time,
 * latency from MAIL. Open loop: by scheduled time, latency from the scheduled arrival. */
static void record_result(struct bench_worker *w, double at, double begin,
			  const struct mproto_result *r)
{
	const struct bench_run *run = w->run;

	if (run->o->rate <= 0) {
		if (bench_now_ms() >= run->t_measure)
			record_sample(w, &w->lat, r->elapsed_ms);
		return;
	}
	if (at < run->t_measure)
		return;
	/* begin + elapsed rather than now(): the same end point as the closed loop's */
	record_sample(w, &w->lat, begin - at + r->elapsed_ms);
	record_sample(w, &w->lag, begin > at ? begin - at : 0.0);
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
		double at, begin;
		int src;

		if (!next_message(run, &n, &at))
			break;
		sleep_until(at);
		mproto_result_init(&r);
		begin = bench_now_ms();
		src = mproto_send_message(&c, &bench_env, &run->msgs[n % run->nmsgs], NULL, &r);
		w->total++;
		if (src == 0 && r.status != MPROTO_ERROR) {
			if (changed_headers(&r))
				w->modified++;
			record_result(w, at, begin, &r);
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

#if defined(__linux__) && defined(PR_SET_TIMERSLACK)
	/* Open loop: wake at the scheduled time, not up to the default 50 us later. */
	if (w->run->o->rate > 0)
		(void)prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif

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

/* sorted_samples - all workers' latencies (or lags) in one sorted array; *sum gets their
 * sum. Returns NULL when out of memory; the caller frees the array. */
static double *sorted_samples(const struct bench_run *run, const struct bench_worker *ws,
			      bool lags, size_t *n, double *sum)
{
	double *all;
	size_t k = 0;

	*n = 0;
	*sum = 0;
	for (unsigned long i = 0; i < run->o->conns; i++)
		*n += lags ? ws[i].lag.n : ws[i].lat.n;
	all = malloc((*n ? *n : 1) * sizeof(*all));
	if (!all)
		return NULL;
	for (unsigned long i = 0; i < run->o->conns; i++) {
		const struct bench_samples *a = lags ? &ws[i].lag : &ws[i].lat;

		for (size_t j = 0; j < a->n; j++) {
			all[k++] = a->v[j];
			*sum += a->v[j];
		}
	}
	qsort(all, *n, sizeof(*all), cmp_double);
	return all;
}

static int report(const struct bench_run *run, struct bench_worker *ws, double secs)
{
	size_t n, nlag;
	unsigned long total = 0, errors = 0, modified = 0;
	double *all, *lag, sum, lagsum;
	const char *err = NULL;

	for (unsigned long i = 0; i < run->o->conns; i++) {
		total += ws[i].total;
		errors += ws[i].errors;
		modified += ws[i].modified;
		if (!err && ws[i].err[0])
			err = ws[i].err;
	}
	all = sorted_samples(run, ws, false, &n, &sum);
	lag = sorted_samples(run, ws, true, &nlag, &lagsum);
	if (!all || !lag) {
		fprintf(stderr, "benchclient: out of memory\n");
		free(all);
		free(lag);
		return 1;
	}
	printf("label=%s conns=%lu k=%lu msgs=%zu total=%lu errors=%lu modified=%lu secs=%.3f "
	       "rate=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f mean_ms=%.3f mode=%s",
	       run->o->label, run->o->conns, run->o->per_session, n, total, errors, modified, secs,
	       secs > 0 ? (double)n / secs : 0.0, percentile(all, n, 50), percentile(all, n, 90),
	       percentile(all, n, 99), n ? all[n - 1] : 0.0, n ? sum / (double)n : 0.0,
	       run->o->rate > 0 ? "rate" : "closed");
	if (run->o->rate > 0)
		printf(" offered=%.1f arrivals=%s seed=%llu missed=%lu lag_p99_ms=%.3f lag_max_ms=%.3f",
		       run->o->rate, run->o->arrivals == BENCH_EVEN ? "even" : "poisson",
		       (unsigned long long)run->o->seed, run->sched.missed,
		       percentile(lag, nlag, 99), nlag ? lag[nlag - 1] : 0.0);
	printf("\n");
	free(all);
	free(lag);
	if (run->sched.missed)
		fprintf(stderr, "benchclient: %s: %lu arrivals not sent: the server did not sustain "
			"%.1f msg/s; latencies are a lower bound\n", run->o->label, run->sched.missed,
			run->o->rate);
	if (err)
		fprintf(stderr, "benchclient: %s: %lu failed sessions; first error: %s\n",
			run->o->label, errors, err);
	return errors ? 1 : 0;
}

/* ---- main ------------------------------------------------------------------------------------ */

static int usage(void)
{
	fprintf(stderr, "usage: benchclient -s SOCKET [-c conns] [-k msgs_per_session] [-n max_msgs]"
		" [-T seconds] [-W warmup_s] [-t io_timeout_s] [-l label]\n"
		"                   [-r|--rate msgs_per_s [--arrivals poisson|even] [--seed N]]"
		" PATH...\n");
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

static bool parse_arrivals(const char *s, enum bench_arrivals *out)
{
	if (strcmp(s, "poisson") == 0)
		*out = BENCH_POISSON;
	else if (strcmp(s, "even") == 0)
		*out = BENCH_EVEN;
	else
		return false;
	return true;
}

static const struct option bench_longopts[] = {
	{ "rate", required_argument, NULL, 'r' },
	{ "arrivals", required_argument, NULL, 'A' },
	{ "seed", required_argument, NULL, 'S' },
	{ NULL, 0, NULL, 0 },
};

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
	unsigned long tmo = 30, seed = 1;
	int ch;

	*o = (struct bench_opts){ .label = "bench", .conns = 16, .per_session = 5, .seconds = 10,
				  .warmup_s = 1, .arrivals = BENCH_POISSON };
	while ((ch = getopt_long(argc, argv, "s:c:k:n:T:W:t:l:r:", bench_longopts, NULL)) != -1) {
		bool ok = true;

		switch (ch) {
		case 'r': ok = parse_secs(optarg, 0.1, BENCH_MAX_RATE, &o->rate); break;
		case 'A': ok = parse_arrivals(optarg, &o->arrivals); break;
		case 'S': ok = parse_ulong(optarg, 0, ULONG_MAX, &seed); break;
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
	o->seed = seed;
	if (!o->spec || optind >= argc || o->warmup_s >= o->seconds ||
	    o->rate * o->seconds > BENCH_MAX_SCHEDULE)
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
	bool sched_ready = false;
	int first, rc = 2;

	if ((first = parse_opts(argc, argv, &o)) < 0)
		return usage();
	run.o = &o;
	if (load_inputs(&run, argv + first, argc - first) < 0)
		goto out;
	if (o.rate > 0)
		shuffle_inputs(&run);
	if (pthread_mutex_init(&run.sched.lock, NULL) != 0) {
		fprintf(stderr, "benchclient: cannot create a mutex\n");
		goto out;
	}
	sched_ready = true;
	ws = calloc(o.conns, sizeof(*ws));
	tids = calloc(o.conns, sizeof(*tids));
	if (!ws || !tids) {
		fprintf(stderr, "benchclient: out of memory\n");
		goto out;
	}
	run.t_start = bench_now_ms();
	run.t_measure = run.t_start + o.warmup_s * 1000.0;
	run.t_stop = run.t_start + o.seconds * 1000.0;
	run.sched.rng = o.seed;
	run.sched.next = run.t_start;
	/* drain: half the run, at least 1 s, for arrivals delayed by a server that falls behind */
	run.sched.t_hard = run.t_stop + (o.seconds * 500.0 > 1000.0 ? o.seconds * 500.0 : 1000.0);
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
	if (sched_ready)
		pthread_mutex_destroy(&run.sched.lock);
	for (unsigned long i = 0; ws && i < o.conns; i++) {
		free(ws[i].lat.v);
		free(ws[i].lag.v);
	}
	free(ws);
	free(tids);
	for (size_t i = 0; i < run.nmsgs; i++)
		mproto_msg_free(&run.msgs[i]);
	free(run.msgs);
	return rc;
}
