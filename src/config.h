/*
 * config.h - the typed, immutable configuration, read from a libconfig file
 *
 * A config is built once (start, SIGUSR1 reload), never changed after, and shared by every
 * milter thread through a reference count; a reload builds a new one and swaps it in whole.
 * Relative paths in the file are resolved against the directory of the config file.
 *
 * OWNERSHIP  config_load() returns one reference (or NULL with problems in the diag list);
 *            config_ref()/config_unref() manage it. Strings inside belong to the config.
 * DIAGNOSTICS  "file:line: text" entries in the caller's diag; never logs or exits.
 */
#ifndef AMENDS_CONFIG_H
#define AMENDS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include "diag.h"

#define CONFIG_MAX_CATEGORIES 32
/* A category name's longest (bytes): the metrics keep names of this size (stats.c), and two
 * names cut to the same prefix would be one Prometheus series twice. */
#define CONFIG_CATEGORY_NAME_MAX 31
#define CONFIG_MAX_LANGS 16

struct config_category {
	char *name;          /* e.g. "complaint" */
	double threshold;    /* category present when score >= threshold */
	char *subject_tag;   /* "" = none; prefix added to Subject when subject tagging is on */
};

struct config_identity {
	char *lang;          /* "en", "ur", ... */
	char *from_name;
	char *from_addr;
	char *agent;         /* the person who signs */
	char *signature;     /* may contain \n */
};

struct config_milter {
	char *socket;               /* "unix:/path" or "inet:port@host" */
	int socket_mode;            /* unix socket permission bits, e.g. 0660 */
	char *socket_group;         /* "" = leave */
	char *user;                 /* run as this user after binding ("" = stay) */
	char *pidfile;              /* "" = none */
	int timeout_s;              /* smfi_settimeout */
	int backlog;                /* smfi_setbacklog */
	char *log_level;            /* err, warning, info, debug */
	char *log_facility;         /* syslog facility */
	bool subject_tag;           /* add the per-category subject tag */
	bool add_rules_header;      /* X-Amends-Rules */
};

struct config_limits {
	size_t max_scan_bytes;      /* message bytes collected for scanning; beyond: passed untouched */
	int mime_depth;
	int mime_parts;
	size_t header_bytes;        /* whole header block */
	size_t header_value_bytes;  /* one header value */
	int header_count;
	size_t part_text_bytes;     /* decoded text per part */
	size_t message_text_bytes;  /* decoded text per message */
};

struct config_rules {
	char *dir;                  /* directory of *.rules */
	unsigned long match_limit;
	unsigned long depth_limit;
	unsigned long heap_limit_kib;
	size_t target_cap_bytes;    /* text per rule per target */
	long deadline_ms;           /* whole rule phase per message */
	char *longstanding_file;    /* addresses and @domains, reloaded with the rules ("" = none) */
	bool refuse_unsafe;         /* unsafe_rules = "refuse" (default: a rule that can backtrack
				     * catastrophically fails the load); false for "contain" (it
				     * loads, the match limits stop it) */
};

struct config_tally {
	char *store;                /* "sqlite:/path" or "redis:host:port" */
	char *sender;               /* "header" or "envelope" */
	bool strip_detail;          /* user+detail@ -> user@ */
	int window_days;
	int incidents;              /* last N incidents kept per sender */
	int retention_days;
	char *sqlite_synchronous;   /* "full" or "normal" */
	int busy_timeout_ms;
	char *redis_prefix;
	int redis_timeout_ms;
	char *redis_password;       /* "" = none */
};

struct config_policy {
	bool winback;               /* draft on cancellation */
	int apology_complaints;     /* complaint tally that triggers the apology */
	int partways_min_categories;
	int partways_min_total;
	int dedupe_days;
	char **support_addresses;   /* our own addresses: never drafted */
	size_t n_support_addresses;
	char **problem_categories;  /* categories counted for partways */
	size_t n_problem_categories;
	char *escalate_category;    /* "abuse": adds X-Amends-Escalate */
};

struct config_drafts {
	bool enabled;
	char *delivery;             /* "maildir" or "imap" */
	char *maildir;              /* the review mailbox root */
	char *folder;               /* Maildir++ folder, e.g. ".Drafts" ("" = INBOX) */
	char *flags;                /* maildir info flags, at least "D" */
	char *templates_dir;
	char *spool_dir;            /* durable spool for IMAP */
	char *default_lang;         /* when the language has no templates */
	char *fallback_ur_latn;     /* reply language for romanized Urdu */
	char *fallback_hi_latn;     /* reply language for romanized Hindi */
	long eom_budget_ms;         /* the most drafting may hold a message */
	char *imap_url;             /* imap://host:port or imaps://host:port */
	char *imap_user;
	char *imap_password_file;
	char *imap_mailbox;         /* "Drafts" */
	int imap_retry_s;
	bool imap_tls_verify;       /* check the server's certificate chain and name (default on) */
	char *imap_ca_file;         /* PEM CA bundle replacing the system store ("" = system) */
	char *imap_tls_fingerprint; /* "sha256:HEX" pin of the server's certificate ("" = none) */
	struct config_identity identities[CONFIG_MAX_LANGS];
	size_t n_identities;
};

struct config_stats {
	char *prometheus_listen;    /* "127.0.0.1:9917" or "" = off */
	char *stats_file;           /* where amendsctl stats reads counters ("" = none) */
};

struct config {
	atomic_int refs;
	char *path;                 /* the file it was read from */
	char *basedir;              /* its directory */
	struct config_milter milter;
	struct config_limits limits;
	struct config_rules rules;
	struct config_category categories[CONFIG_MAX_CATEGORIES];
	size_t n_categories;
	struct config_tally tally;
	struct config_policy policy;
	struct config_drafts drafts;
	struct config_stats stats;
	char *state_dir;
};

/* Load path; NULL on error, with every problem in d. A NULL path gives the built-in defaults. */
struct config *config_load(const char *path, struct diag *d);
/* The same from a NUL-terminated string (tests, fuzzing): diagnostics name "<string>" and
 * relative paths resolve against ".". Both refuse @include (libconfig 1.5 exit()s on some). */
struct config *config_load_string(const char *text, struct diag *d);
struct config *config_ref(struct config *c);
void config_unref(struct config *c);
/* Category index by name, or -1. */
int config_category_index(const struct config *c, const char *name);
/* Identity for a language, or NULL. */
const struct config_identity *config_identity(const struct config *c, const char *lang);
/* Resolve a path relative to the config's directory; returns malloc'd string. */
char *config_path(const struct config *c, const char *p);
/* Parse "unix:/path", "local:/path", "inet:port@host"; returns 0 or -1. */
int config_socket_valid(const char *spec);

#endif
