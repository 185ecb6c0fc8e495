/*
 * stop.c - a prompt stop: wake libmilter's listener, then let running ends of message finish
 *
 * libmilter's listener (listener.c mi_listener) holds its mutex through a poll of up to
 * MI_CHK_TIME (5 s) on the listening socket, and a stop (SIGTERM, SIGHUP: its signal thread
 * calls mi_stop_milters) needs that mutex to close the socket. So a stop took up to 5 s, with
 * the socket still accepting meanwhile. libmilter's own signal thread takes those signals, so
 * we cannot see them arrive; instead a tick of ours (the reload thread's, stop_tick) reads
 * libmilter's stop state and, once it says stop, makes one connection to our own listening
 * socket. The poll returns, the listener sees the stop and leaves smfi_main at once.
 * mi_stop() is exported by libmilter but not declared in mfapi.h: configure checks for it, and
 * without it a stop takes libmilter's usual time. A connection that fails (a socket the run
 * user may not open) leaves the usual time too; it is logged at debug level.
 *
 * After smfi_main returns, the end-of-message callbacks already running still finish and
 * libmilter sends their replies, so stop_drain waits for them, bounded, before the daemon frees
 * the configuration and exits. A session waiting for the MTA's next command is not served
 * after a stop (Debian's libmilter hands idle sessions to a pool that stops with it): the MTA
 * applies its milter_default_action to that message, as it would without the wake.
 *
 * OWNERSHIP  the listener's address, copied once at start (stop_remember_listener); nothing
 *            allocated.
 */
#include "stop.h"

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#ifdef HAVE_MI_STOP
/* libmilter/signal.c: MILTER_CONT (0) until a stop or an abort is asked for. */
extern int mi_stop(void);
#endif

/* The highest descriptor looked at for the listening socket: libmilter has just opened it, in
 * a process that has opened little else. */
#define STOP_FD_SCAN_MAX 1024

static struct sockaddr_storage listen_addr;
static socklen_t listen_len;
static atomic_bool woken;

/* Loopback in place of a wildcard address: connect() to 0.0.0.0 works on Linux, but ask for
 * what is meant. */
static void addr_loopback(struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
	}
}

/* A unix socket bound by a relative path: made absolute now, before the daemon changes to /.
 * 0, or -1 when the path cannot be kept (too long, out of memory). */
static int addr_unix_absolute(struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	char *abs;
	size_t n;

	if (un->sun_path[0] == '/' || un->sun_path[0] == '\0')
		return 0;
	abs = util_abspath(un->sun_path);
	if (!abs)
		return -1;
	n = strlen(abs);
	if (n >= sizeof(un->sun_path)) {
		free(abs);
		return -1;
	}
	memcpy(un->sun_path, abs, n + 1);
	free(abs);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

void stop_remember_listener(void)
{
	int fd, found = 0;

	listen_len = 0;
	for (fd = 0; fd < STOP_FD_SCAN_MAX; fd++) {
		int on = 0;
		socklen_t olen = sizeof(on);
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) < 0 || !on)
			continue;
		if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			continue;
		found++;
		listen_addr = ss;
		listen_len = len;
	}
	if (found != 1) {
		/* not knowing which socket is libmilter's, wake none */
		log_debug("stop: %d listening sockets at start; a stop takes libmilter's time", found);
		listen_len = 0;
		return;
	}
	if (listen_addr.ss_family == AF_UNIX && addr_unix_absolute(&listen_addr, &listen_len) < 0) {
		log_debug("stop: the socket's path cannot be made absolute; a stop takes libmilter's time");
		listen_len = 0;
		return;
	}
	addr_loopback(&listen_addr);
}

/* One connection to our listener, closed at once: libmilter accepts it as a session that ends
 * on the first read. */
static void wake_listener(void)
{
	int fd = socket(listen_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		log_debug("stop: socket: %s", strerror(errno));
		return;
	}
	if (connect(fd, (struct sockaddr *)&listen_addr, listen_len) < 0)
		log_debug("stop: cannot reach our own socket (%s); a stop takes libmilter's time",
			  strerror(errno));
	close(fd);
}

void stop_tick(void)
{
#ifdef HAVE_MI_STOP
	if (listen_len == 0 || atomic_load(&woken) || mi_stop() == 0)
		return;
	atomic_store(&woken, true);
	wake_listener();
#endif
}

bool stop_drain(size_t (*in_progress)(void), unsigned max_ms)
{
	const struct timespec step = { 0, 10L * 1000 * 1000 };
	unsigned waited = 0;
	size_t n;

	while ((n = in_progress()) > 0 && waited < max_ms) {
		if (waited == 0)
			log_info("stopping: waiting up to %u ms for %zu message(s) at end of message",
				 max_ms, n);
		nanosleep(&step, NULL);
		waited += 10;
	}
	if (n > 0)
		log_warn("stopping with %zu message(s) still at end of message: the MTA applies "
			 "its milter_default_action to them", n);
	return n == 0;
}
