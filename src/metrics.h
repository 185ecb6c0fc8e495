/*
 * metrics.h - export the counters of stats.c: a snapshot file and an optional /metrics port
 *
 * metrics_start() starts two background threads:
 *   - the writer, which writes the stats snapshot (stats_write_file) to cfg->stats.stats_file
 *     every METRICS_INTERVAL_S seconds and once more in metrics_stop(), for `amendsctl stats`;
 *   - when cfg->stats.prometheus_listen is set, a tiny HTTP/1.0 server answering
 *     GET /metrics with the Prometheus text format, one connection at a time, with a bounded
 *     request (METRICS_MAX_REQUEST bytes) and a deadline (METRICS_IO_TIMEOUT_MS) per connection.
 * The listen address must be a loopback address ("127.0.0.1:9917", "[::1]:9917",
 * "localhost:9917"): /metrics has no authentication, and mail volumes per category are business
 * data. Scraping from another host goes through a proxy or tunnel the admin controls.
 *
 * Call metrics_start() after fork/daemonize and after the signal mask is set (the threads
 * block every signal themselves); call metrics_stop() after smfi_main() returns. A reload may
 * call metrics_stop() then metrics_start() with the new configuration.
 *
 * OWNERSHIP  metrics_start() copies what it needs from cfg (no reference is kept). On error
 *            *err is a malloc'd message the caller frees. metrics_stop() joins the threads and
 *            closes the socket; it is safe to call when nothing is running.
 * DIAGNOSTICS  metrics_start() returns -1 with *err set for a bad or non-loopback address or a
 *              port in use. Later write or socket failures are logged (once per streak).
 */
#ifndef AMENDS_METRICS_H
#define AMENDS_METRICS_H

#include <sys/socket.h>
#include "config.h"

#define METRICS_INTERVAL_S 5
#define METRICS_MAX_REQUEST 4096
#define METRICS_IO_TIMEOUT_MS 2000

int metrics_start(const struct config *cfg, char **err);
void metrics_stop(void);

/* metrics_parse_listen - "HOST:PORT" ("[v6]:PORT") of a loopback address into addr.
 * Returns 0, or -1 with a malloc'd reason in *err. Used by metrics_start and by lint. */
int metrics_parse_listen(const char *spec, struct sockaddr_storage *addr, socklen_t *len,
			 char **err);

#endif
