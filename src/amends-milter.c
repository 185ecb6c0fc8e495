/*
 * amends-milter.c - the daemon: options, configuration, privileges, signals, smfi_main
 *
 * Start-up order matters: read and check the configuration (and rules) first, so a broken file
 * stops us before we touch the socket; open the socket while still privileged (umask set, mode
 * and group applied); drop to the run user; daemonize; then block SIGUSR1 for our reload thread
 * and SIGHUP/SIGTERM/SIGINT for libmilter's own signal thread (SIGHUP stops libmilter, as
 * OpenDKIM documents, so reload is SIGUSR1) before smfi_main starts any thread. A stop is
 * made prompt by stop.c: the reload thread's tick wakes libmilter's listener, and the ends of
 * message already running get up to STOP_DRAIN_MS to finish.
 */
#include "config.h"
#include "diag.h"
#include "heap.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "milter.h"
#include "rules.h"
#include "stats.h"
#include "stop.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* The reload thread's tick (how soon a stop is noticed), and how long a stop waits for the ends
 * of message running: libmilter's own poll made a stop wait up to 5 s before, so they are
 * given as long. */
#define STOP_TICK_MS 200
#define STOP_DRAIN_MS 5000


struct options {
	const char *config_path;
	const char *socket;
	const char *user;
	const char *pidfile;
	bool foreground;
	bool check_only;
};

static struct config *current_cfg;   /* owned by main; replaced on reload */
/* The reload thread swaps current_cfg while main reads it at start (metrics) and releases it at
 * stop: without the lock a SIGUSR1 at either moment is a data race, and at stop a double unref. */
static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;

static void usage(FILE *fp)
{
	(void)fprintf(fp,
		"usage: amends-milter -c FILE [-f] [-n] [-p SOCKET] [-u USER] [-P PIDFILE]\n"
		"  -c FILE    configuration file (default " SYSCONFDIR "/amends/amends.conf)\n"
		"  -f         stay in the foreground and log to stderr\n"
		"  -n         check the configuration and rules, then exit\n"
		"  -p SOCKET  listen on unix:/path or inet:PORT@HOST (overrides milter.socket)\n"
		"  -u USER    run as USER after opening the socket (overrides milter.user)\n"
		"  -P FILE    write the process id to FILE (overrides milter.pidfile)\n"
		"  -V         print the version\n");
}

/* options_absolute - the configuration file and the pidfile given as relative paths taken
 * against the working directory now: the daemon changes to / when it goes to the background
 * (the pidfile is written after that, the configuration read again then and at every reload),
 * and a relative -c used to pass the check and then fail the start. The copies live as long as
 * the process. 0, or -1 with the reason on stderr. */
static int options_absolute(struct options *o)
{
	static char *config_abs, *pidfile_abs;

	if (!(config_abs = util_abspath(o->config_path)) ||
	    (o->pidfile && *o->pidfile && !(pidfile_abs = util_abspath(o->pidfile)))) {
		(void)fprintf(stderr, "amends-milter: cannot name the working directory: %s\n",
			      strerror(errno));
		return -1;
	}
	o->config_path = config_abs;
	if (pidfile_abs)
		o->pidfile = pidfile_abs;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	int ch;

	memset(o, 0, sizeof(*o));
	o->config_path = SYSCONFDIR "/amends/amends.conf";
	while ((ch = getopt(argc, argv, "c:fnp:u:P:Vh")) != -1) {
		switch (ch) {
		case 'c': o->config_path = optarg; break;
		case 'f': o->foreground = true; break;
		case 'n': o->check_only = true; o->foreground = true; break;
		case 'p': o->socket = optarg; break;
		case 'u': o->user = optarg; break;
		case 'P': o->pidfile = optarg; break;
		case 'V': printf("amends-milter %s\n", PACKAGE_VERSION); exit(0);
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -1;
	}
	if (o->socket && config_socket_valid(o->socket) < 0) {
		(void)fprintf(stderr, "amends-milter: -p %s: expected unix:/path or "
			      "inet:PORT@HOST\n", o->socket);
		return -1;
	}
	return options_absolute(o);
}

/* Load config + rules (+ tally, drafter) into a new generation; log problems on failure. */
static struct milter_generation *load_generation(const char *path, struct config **cfgp)
{
	struct milter_generation *g = NULL;
	struct config *cfg;
	struct diag d;

	diag_init(&d);
	cfg = config_load(path, &d);
	if (cfg)
		g = milter_generation_new(cfg, &d);
	diag_log(&d, "");
	diag_free(&d);
	if (!g) {
		config_unref(cfg);
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_categories; i++)
		stats_category((int)i, cfg->categories[i].name);
	for (size_t i = 0; i < milter_generation_rules(g)->n_rules; i++)
		stats_rule_register(milter_generation_rules(g)->rules[i].name);
	*cfgp = cfg;
	return g;
}

static int write_pidfile(const char *path)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/* Apply socket_mode / socket_group to a unix socket that libmilter has created. */
static int socket_permissions(const struct config *cfg, const char *spec)
{
	const char *path;

	if (strncmp(spec, "unix:", 5) != 0 && strncmp(spec, "local:", 6) != 0)
		return 0;
	path = strchr(spec, ':') + 1;
	if (chmod(path, (mode_t)cfg->milter.socket_mode) < 0) {
		log_err_errno("chmod %s", path);
		return -1;
	}
	if (cfg->milter.socket_group[0]) {
		struct group *gr = getgrnam(cfg->milter.socket_group);

		if (!gr) {
			log_err("socket_group %s: no such group", cfg->milter.socket_group);
			return -1;
		}
		if (chown(path, (uid_t)-1, gr->gr_gid) < 0) {
			log_err_errno("chown %s", path);
			return -1;
		}
	}
	return 0;
}

/* The unix socket we created (device, inode). A stop removes only that one: libmilter takes up
 * to ~5 s to leave smfi_main after SIGTERM, and a new instance started meanwhile has replaced
 * the path with its own socket, which an unconditional unlink would take from it. */
static dev_t sock_dev;
static ino_t sock_ino;
static bool sock_known;

static const char *socket_path(const char *spec)
{
	return (!strncmp(spec, "unix:", 5) || !strncmp(spec, "local:", 6)) ? strchr(spec, ':') + 1
									     : NULL;
}

static void socket_remember(const char *spec)
{
	const char *path = socket_path(spec);
	struct stat st;

	if (path && lstat(path, &st) == 0) {
		sock_dev = st.st_dev;
		sock_ino = st.st_ino;
		sock_known = true;
	}
}

static void socket_unlink_ours(const char *spec)
{
	const char *path = socket_path(spec);
	struct stat st;

	if (path && sock_known && lstat(path, &st) == 0 && st.st_dev == sock_dev &&
	    st.st_ino == sock_ino)
		unlink(path);
}

/* Remove the pidfile only while it still names us (a newer instance may have rewritten it). */
static void pidfile_unlink_ours(const char *path)
{
	char buf[32];
	ssize_t n;
	int fd;

	if (!path || !*path || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		char *end;
		long pid;

		buf[n] = '\0';
		errno = 0;
		pid = strtol(buf, &end, 10);
		/* Ours only if it holds just our pid, as write_pidfile() wrote it: a file that
		 * does not parse is left alone. */
		if (errno == 0 && end != buf && (*end == '\0' || *end == '\n') &&
		    pid == (long)getpid())
			unlink(path);
	}
}

static int drop_privileges(const char *user)
{
	struct passwd *pw;

	if (!user || !*user) {
		/* R9.1 asks for a refusal; a warning keeps root-run test beds and old configs going. */
		if (geteuid() == 0)
			log_warn("running as root: set milter.user (or -u) to an unprivileged user");
		return 0;
	}
	pw = getpwnam(user);
	if (!pw) {
		log_err("user %s: no such user", user);
		return -1;
	}
	if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid)
		return 0;
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		log_err_errno("cannot become %s", user);
		return -1;
	}
	/* The check OpenDKIM and R9.1 ask for: a dropped root must not come back. */
	if (pw->pw_uid != 0 && (setuid(0) == 0 || geteuid() == 0)) {
		log_err("still able to regain root after dropping to %s", user);
		return -1;
	}
	log_info("running as %s (uid %d)", user, (int)pw->pw_uid);
	return 0;
}

/* The reload thread: SIGUSR1 builds a new generation; a broken file keeps the old one. Between
 * signals it ticks every STOP_TICK_MS for stop.c, which wakes libmilter's listener once a stop
 * has been asked for (a stop then takes a tick, not libmilter's 5-second poll). */
static void *reload_thread(void *arg)
{
	const struct timespec tick = { 0, STOP_TICK_MS * 1000L * 1000L };
	const char *path = arg;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	for (;;) {
		struct milter_generation *g;
		struct config *cfg = NULL, *old;

		if (sigtimedwait(&set, NULL, &tick) != SIGUSR1) {
			stop_tick();
			continue;
		}
		log_info("SIGUSR1: reloading %s", path);
		g = load_generation(path, &cfg);
		if (!g) {
			stats_inc(STATS_RELOAD_FAILURES);
			log_err("reload failed: keeping the last good configuration and rules");
			continue;
		}
		milter_generation_publish(g);
		pthread_mutex_lock(&cfg_lock);
		old = current_cfg;
		current_cfg = cfg;
		pthread_mutex_unlock(&cfg_lock);
		config_unref(old);
		stats_inc(STATS_RELOADS);
		log_info("reloaded: configuration and rules in force");
	}
	return NULL;
}

static int daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		return -1;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

/* Everything the daemon would load, loaded and thrown away: no thread is started, so this can
 * run before daemonizing and before the socket is opened. */
static int check_configuration(const char *path, struct config **cfgp)
{
	struct ruleset *rs = NULL;
	struct config *cfg;
	struct diag d;

	diag_init(&d);
	cfg = config_load(path, &d);
	if (cfg)
		rs = rules_load(cfg->rules.dir, cfg, &d);
	diag_log(&d, "");
	diag_free(&d);
	rules_unref(rs);
	if (!rs) {
		config_unref(cfg);
		return -1;
	}
	*cfgp = cfg;
	return 0;
}

static void block_signals(void)
{
	sigset_t set;

	/* Before any thread exists, so every thread inherits the mask: SIGUSR1 is for our reload
	 * thread, SIGHUP/SIGTERM/SIGINT for libmilter's signal thread (it stops the milter). */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	(void)signal(SIGPIPE, SIG_IGN);   /* fails only for an invalid signal number */
}

int main(int argc, char **argv)
{
	struct milter_generation *g;
	struct config *gcfg = NULL;
	struct options o;
	char *spec, *user, *pidfile;
	pthread_t reloader;
	int rc;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	log_open("amends-milter", true, NULL);
	/* before any thread or large allocation: malloc reads it from here on (heap.c says why) */
	if (!heap_init())
		log_info("this C library cannot fix malloc's mmap threshold; resident size may creep");
	block_signals();
	message_global_init();
	if (check_configuration(o.config_path, &current_cfg) < 0) {
		log_err("%s: configuration or rules are broken; not starting", o.config_path);
		return 1;
	}
	if (o.check_only) {
		printf("%s: configuration and rules OK\n", o.config_path);
		config_unref(current_cfg);
		return 0;
	}
	if (log_level_parse(current_cfg->milter.log_level) >= 0)
		log_set_level((enum log_level)log_level_parse(current_cfg->milter.log_level));
	if (!o.foreground && log_open("amends-milter", false, current_cfg->milter.log_facility) < 0)
		log_warn("unknown log facility %s, using mail", current_cfg->milter.log_facility);

	/* Copies: a reload frees the config these would point into. */
	spec = strdup(o.socket ? o.socket : current_cfg->milter.socket);
	user = strdup(o.user ? o.user : current_cfg->milter.user);
	pidfile = strdup(o.pidfile ? o.pidfile : current_cfg->milter.pidfile);
	rc = MI_FAILURE;
	if (!spec || !user || !pidfile) {
		log_err("out of memory");
		goto out;
	}

	if (smfi_register(milter_desc) == MI_FAILURE) {
		log_err("smfi_register failed");
		goto out;
	}
	/* Postfix sends one header in one packet, up to its header_size_limit (100 KiB); at
	 * libmilter's default 64 KiB cap the session would be dropped, and with it the deletion of
	 * forged X-Amends-* headers (the MTA then applies its default action). */
	smfi_setmaxdatasize(1024 * 1024 - 1);
	if (smfi_setconn((char *)spec) == MI_FAILURE) {
		log_err("smfi_setconn %s failed", spec);
		goto out;
	}
	smfi_settimeout(current_cfg->milter.timeout_s);
	smfi_setbacklog(current_cfg->milter.backlog);
	/* The socket gets its mode from the umask (libmilter never chmods); narrow it, then
	 * apply the configured mode. true = replace a stale socket (only if it is a socket). */
	umask(0077);
	if (smfi_opensocket(true) == MI_FAILURE) {
		log_err("cannot open milter socket %s (in use, or no permission)", spec);
		goto out;
	}
	umask(0027);
	if (socket_permissions(current_cfg, spec) < 0)
		goto out;
	socket_remember(spec);
	stop_remember_listener();
	if (!o.foreground && daemonize() < 0) {
		log_err_errno("cannot go to the background");
		goto out;
	}
	/* Written while still privileged, in the final process. */
	if (*pidfile && write_pidfile(pidfile) < 0)
		log_warn_errno("cannot write pidfile %s", pidfile);
	if (drop_privileges(user) < 0)
		goto out;

	/* Only now, as the run user and in the final process, open the tally and start the
	 * drafter's threads (threads do not survive fork; files get the right owner). The
	 * configuration and rules are read again too, though check_configuration() read them as
	 * root: a file the run user cannot read fails the start here, not the first reload
	 * (~0.2 s of CPU for the shipped rules). */
	g = load_generation(o.config_path, &gcfg);
	if (!g) {
		log_err("%s: cannot start: see the errors above", o.config_path);
		if (pidfile && *pidfile)
			unlink(pidfile);
		goto out;
	}
	config_unref(current_cfg);
	current_cfg = gcfg;
	milter_generation_publish(g);

	if (pthread_create(&reloader, NULL, reload_thread, (void *)o.config_path) != 0) {
		log_err("cannot start the reload thread");
		goto out;
	}
	pthread_detach(reloader);
	/* After the fork: the stats snapshot writer and the optional /metrics server are threads. */
	{
		char *merr = NULL;

		pthread_mutex_lock(&cfg_lock);
		rc = metrics_start(current_cfg, &merr);
		pthread_mutex_unlock(&cfg_lock);
		if (rc < 0) {
			log_err("metrics: %s", merr ? merr : "cannot start");
			free(merr);
			goto out;
		}
	}

	log_info("amends-milter %s listening on %s", PACKAGE_VERSION, spec);
	rc = smfi_main();
	/* An end of message running when the stop came gets its reply out before we exit. */
	stop_drain(milter_eoms_live, STOP_DRAIN_MS);
	metrics_stop();
	log_info("stopping (smfi_main returned %s)", rc == MI_SUCCESS ? "success" : "failure");
	pidfile_unlink_ours(pidfile);
	socket_unlink_ours(spec);
	milter_generation_clear();
	/* The reload thread still runs (blocked in sigwait): take the config from it under the
	 * lock. A reload finishing after this leaks its config to the exit, which is harmless. */
	pthread_mutex_lock(&cfg_lock);
	gcfg = current_cfg;
	current_cfg = NULL;
	pthread_mutex_unlock(&cfg_lock);
	config_unref(gcfg);
out:
	/* the early exits above leave the config and the threads to the process's end */
	free(spec);
	free(user);
	free(pidfile);
	return rc == MI_SUCCESS ? 0 : 1;
}
