/*
 * stats.c - process-wide counters and a latency histogram (relaxed atomics, no locks)
 *
 * The daemon exports a snapshot file (for `amendsctl stats`) and, optionally, Prometheus text.
 */
#include "stats.h"
#include "config.h"
#include "heap.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic uint64_t counters[STATS_COUNTER_MAX];
static _Atomic uint64_t category_counts[STATS_MAX_CATEGORIES];
/* as long as a category name may be: the config refuses longer ones when it loads */
static char category_names[STATS_MAX_CATEGORIES][CONFIG_CATEGORY_NAME_MAX + 1];

/* Latency buckets (microseconds), Prometheus-style cumulative on output. */
static const long latency_bounds_us[] = { 250, 500, 1000, 2000, 5000, 10000, 25000, 50000,
					  100000, 250000, 1000000 };
#define N_BOUNDS (sizeof(latency_bounds_us) / sizeof(latency_bounds_us[0]))
static _Atomic uint64_t latency_buckets[N_BOUNDS + 1];
static _Atomic uint64_t latency_sum_us;
static atomic_llong pool_open, pool_peak;   /* stats_tally_pool */

static const char *const names[STATS_COUNTER_MAX] = {
	[STATS_MESSAGES] = "messages",
	[STATS_MESSAGES_TAGGED] = "messages_tagged",
	[STATS_MESSAGES_OVERSIZE] = "messages_oversize",
	[STATS_LIMIT_HITS] = "limit_hits",
	[STATS_RULE_LIMIT_HITS] = "rule_limit_hits",
	[STATS_RULE_DEADLINE_HITS] = "rule_deadline_hits",
	[STATS_RULES_SKIPPED] = "rules_skipped",
	[STATS_TALLY_OK] = "tally_updates",
	[STATS_TALLY_FAILURES] = "tally_failures",
	[STATS_TALLY_COMMITS] = "tally_commits",
	[STATS_DRAFTS_DUE] = "drafts_due",
	[STATS_DRAFTS_WRITTEN] = "drafts_written",
	[STATS_DRAFTS_SPOOLED] = "drafts_spooled",
	[STATS_DRAFTS_FAILED] = "drafts_failed",
	[STATS_DRAFTS_SUPPRESSED] = "drafts_suppressed",
	[STATS_INTERNAL_ERRORS] = "internal_errors",
	[STATS_RELOADS] = "reloads",
	[STATS_RELOAD_FAILURES] = "reload_failures",
	[STATS_FORGED_HEADERS_REMOVED] = "forged_headers_removed",
};

/* Rule hits: open addressing over twice STATS_MAX_RULES slots. A slot's name is set once (under
 * rule_lock) and never changes or moves, so readers probe without the lock. */
#define RULE_SLOTS ((size_t)2 * STATS_MAX_RULES)
static _Atomic(char *) rule_names[RULE_SLOTS];
static _Atomic uint64_t rule_hits[RULE_SLOTS];
static _Atomic uint64_t rule_hits_dropped;
static size_t rule_count;                  /* under rule_lock */
static pthread_mutex_t rule_lock = PTHREAD_MUTEX_INITIALIZER;

/* rule_slot - the slot of name, inserting it when create and there is room; -1 otherwise. */
static long rule_slot(const char *name, bool create)
{
	size_t i = (size_t)util_hash_str(name) % RULE_SLOTS, n;
	long found = -1;

	for (n = 0; n < RULE_SLOTS; n++, i = (i + 1) % RULE_SLOTS) {
		char *nm = atomic_load_explicit(&rule_names[i], memory_order_acquire);

		if (!nm)
			break;
		if (strcmp(nm, name) == 0)
			return (long)i;
	}
	if (!create)
		return -1;
	pthread_mutex_lock(&rule_lock);
	/* Probe again: another thread may have inserted it meanwhile. */
	for (n = 0, i = (size_t)util_hash_str(name) % RULE_SLOTS; n < RULE_SLOTS; n++, i = (i + 1) % RULE_SLOTS) {
		char *nm = atomic_load_explicit(&rule_names[i], memory_order_acquire);

		if (nm && strcmp(nm, name) == 0) {
			found = (long)i;
			break;
		}
		if (!nm) {
			char *copy = rule_count < STATS_MAX_RULES ? util_strdup(name) : NULL;

			if (copy) {
				atomic_store_explicit(&rule_names[i], copy, memory_order_release);
				rule_count++;
				found = (long)i;
			}
			break;
		}
	}
	pthread_mutex_unlock(&rule_lock);
	return found;
}

void stats_rule_register(const char *name)
{
	if (name && *name)
		(void)rule_slot(name, true);
}

void stats_rule_hit(const char *name)
{
	long i = name && *name ? rule_slot(name, true) : -1;

	if (i >= 0)
		atomic_fetch_add_explicit(&rule_hits[i], 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&rule_hits_dropped, 1, memory_order_relaxed);
}

/*
 * The writers below do not check each fprintf/fputs/fputc ((void) casts): a failed write
 * leaves fp's error flag set, and every caller of stats_write_prometheus() checks ferror()
 * once at the end (stats_write_file() here, serve_metrics() in metrics.c).
 */

/* Prometheus label values: escape backslash, quote and newline; drop other controls. */
static void write_label(FILE *fp, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			(void)fprintf(fp, "\\%c", *s);
		else if (*s == '\n')
			(void)fputs("\\n", fp);
		else if ((unsigned char)*s >= 0x20 && *s != 0x7f)
			(void)fputc(*s, fp);
	}
}

static void write_rule_hits(FILE *fp)
{
	(void)fprintf(fp, "# TYPE amends_rule_hits_total counter\n");
	for (size_t i = 0; i < RULE_SLOTS; i++) {
		char *nm = atomic_load_explicit(&rule_names[i], memory_order_acquire);

		if (!nm)
			continue;
		(void)fputs("amends_rule_hits_total{rule=\"", fp);
		write_label(fp, nm);
		(void)fprintf(fp, "\"} %llu\n", (unsigned long long)atomic_load(&rule_hits[i]));
	}
	(void)fprintf(fp, "# TYPE amends_rule_hits_dropped_total counter\n");
	(void)fprintf(fp, "amends_rule_hits_dropped_total %llu\n",
		      (unsigned long long)atomic_load(&rule_hits_dropped));
}

void stats_inc(enum stats_counter c) { stats_add(c, 1); }

void stats_add(enum stats_counter c, uint64_t n)
{
	if ((unsigned)c < STATS_COUNTER_MAX)
		atomic_fetch_add_explicit(&counters[c], n, memory_order_relaxed);
}

uint64_t stats_get(enum stats_counter c)
{
	return (unsigned)c < STATS_COUNTER_MAX ?
		atomic_load_explicit(&counters[c], memory_order_relaxed) : 0;
}

const char *stats_name(enum stats_counter c)
{
	return (unsigned)c < STATS_COUNTER_MAX ? names[c] : "?";
}

void stats_category(int idx, const char *name)
{
	/* fits: config.c refuses category names over CONFIG_CATEGORY_NAME_MAX */
	if (idx >= 0 && idx < STATS_MAX_CATEGORIES)
		(void)snprintf(category_names[idx], sizeof(category_names[idx]), "%s", name);
}

void stats_verdict(int idx)
{
	if (idx >= 0 && idx < STATS_MAX_CATEGORIES)
		atomic_fetch_add_explicit(&category_counts[idx], 1, memory_order_relaxed);
}

void stats_latency_us(long us)
{
	size_t i;

	if (us < 0)
		us = 0;
	for (i = 0; i < N_BOUNDS && us > latency_bounds_us[i]; i++)
		;
	atomic_fetch_add_explicit(&latency_buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&latency_sum_us, (uint64_t)us, memory_order_relaxed);
}

void stats_tally_pool(int delta)
{
	long long now = atomic_fetch_add_explicit(&pool_open, delta, memory_order_relaxed) + delta;
	long long peak = atomic_load_explicit(&pool_peak, memory_order_relaxed);

	while (now > peak && !atomic_compare_exchange_weak_explicit(&pool_peak, &peak, now,
								    memory_order_relaxed,
								    memory_order_relaxed))
		;
}

/* write_gauges - the tally pools' connections: open now, and the most open at once since the
 * start (the pool's bound at work: SQLite's readers never pass SQ_READERS_MAX per tally) */
static void write_gauges(FILE *fp)
{
	(void)fprintf(fp, "# TYPE amends_tally_pool_connections gauge\n");
	(void)fprintf(fp, "amends_tally_pool_connections %lld\n", atomic_load(&pool_open));
	(void)fprintf(fp, "# TYPE amends_tally_pool_connections_peak gauge\n");
	(void)fprintf(fp, "amends_tally_pool_connections_peak %lld\n", atomic_load(&pool_peak));
}

/* write_heap - malloc's bytes in use and held (gauges), when the C library tells: held far
 * above in use and rising while in use stays flat is fragmentation, both rising a leak */
static void write_heap(FILE *fp)
{
	struct heap_stats h;

	if (!heap_stats(&h))
		return;
	(void)fprintf(fp, "# TYPE amends_heap_in_use_bytes gauge\n");
	(void)fprintf(fp, "amends_heap_in_use_bytes %zu\n", h.in_use);
	(void)fprintf(fp, "# TYPE amends_heap_held_bytes gauge\n");
	(void)fprintf(fp, "amends_heap_held_bytes %zu\n", h.held);
}

void stats_write_prometheus(FILE *fp)
{
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i < STATS_COUNTER_MAX; i++) {
		(void)fprintf(fp, "# TYPE amends_%s_total counter\n", names[i]);
		(void)fprintf(fp, "amends_%s_total %llu\n", names[i],
			      (unsigned long long)stats_get(i));
	}
	(void)fprintf(fp, "# TYPE amends_verdicts_total counter\n");
	for (i = 0; i < STATS_MAX_CATEGORIES; i++)
		if (category_names[i][0])
			(void)fprintf(fp, "amends_verdicts_total{category=\"%s\"} %llu\n",
				      category_names[i],
				      (unsigned long long)atomic_load(&category_counts[i]));
	(void)fprintf(fp, "# TYPE amends_message_seconds histogram\n");
	for (i = 0; i <= N_BOUNDS; i++) {
		cum += atomic_load(&latency_buckets[i]);
		if (i < N_BOUNDS)
			(void)fprintf(fp, "amends_message_seconds_bucket{le=\"%g\"} %llu\n",
				      (double)latency_bounds_us[i] / 1e6, (unsigned long long)cum);
		else
			(void)fprintf(fp, "amends_message_seconds_bucket{le=\"+Inf\"} %llu\n",
				      (unsigned long long)cum);
	}
	(void)fprintf(fp, "amends_message_seconds_sum %g\n", atomic_load(&latency_sum_us) / 1e6);
	(void)fprintf(fp, "amends_message_seconds_count %llu\n", (unsigned long long)cum);
	write_gauges(fp);
	write_heap(fp);
	write_rule_hits(fp);
}

int stats_write_file(const char *path)
{
	struct strbuf tmp;
	FILE *fp;
	int rc = -1;

	strbuf_init(&tmp, 0);
	if (strbuf_printf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0)
		goto out;
	fp = fopen(tmp.s, "w");
	if (!fp)
		goto out;
	stats_write_prometheus(fp);
	if (fflush(fp) != 0 || ferror(fp)) {
		(void)fclose(fp);   /* already failed; the file is removed */
		unlink(tmp.s);
		goto out;
	}
	/* close can still fail (a deferred write error, NFS): never rename a short snapshot in */
	if (fclose(fp) != 0) {
		unlink(tmp.s);
		goto out;
	}
	if (rename(tmp.s, path) < 0) {
		unlink(tmp.s);
		goto out;
	}
	rc = 0;
out:
	strbuf_free(&tmp);
	return rc;
}

void stats_reset(void)
{
	for (size_t i = 0; i < STATS_COUNTER_MAX; i++)
		atomic_store(&counters[i], 0);
	for (size_t i = 0; i < STATS_MAX_CATEGORIES; i++)
		atomic_store(&category_counts[i], 0);
	for (size_t i = 0; i <= N_BOUNDS; i++)
		atomic_store(&latency_buckets[i], 0);
	atomic_store(&latency_sum_us, 0);
	atomic_store(&pool_open, 0);
	atomic_store(&pool_peak, 0);
	for (size_t i = 0; i < RULE_SLOTS; i++)
		atomic_store(&rule_hits[i], 0);
	atomic_store(&rule_hits_dropped, 0);
}
