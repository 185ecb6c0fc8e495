/*
 * config.c - read amends.conf (libconfig) into an immutable, typed, refcounted struct config
 *
 * Every setting has a built-in default, so an empty file (or none) is a working configuration.
 * Each section accepts only the settings it knows: a misspelt setting is an error naming the file
 * and line, not silently ignored. Values are range-checked here so no module sees nonsense.
 *
 * OWNERSHIP  config_load() returns one reference; config_unref() frees at zero.
 * DIAGNOSTICS  "file:line: text" into the caller's diag; never logs or exits.
 */
#include "config.h"
#include "util.h"
#include "log.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct cfgctx {
	struct config *c;
	struct diag *d;
	const char *file;
};

static const char *const default_categories[] = {
	"complaint", "abuse", "cancellation", "refund", "unethical"
};

static const struct {
	const char *lang, *from_name, *agent, *signature;
} default_identities[] = {
	{ "en", "Sarah Ahmed, Customer Care", "Sarah Ahmed", "Sarah Ahmed\nCustomer Care Lead" },
	{ "ur", "عائشہ خان، کسٹمر کیئر", "عائشہ خان", "عائشہ خان\nکسٹمر کیئر" },
	{ "pa", "ਹਰਪ੍ਰੀਤ ਕੌਰ, ਗਾਹਕ ਸੇਵਾ", "ਹਰਪ੍ਰੀਤ ਕੌਰ", "ਹਰਪ੍ਰੀਤ ਕੌਰ\nਗਾਹਕ ਸੇਵਾ" },
	{ "fa", "مریم رضایی، پشتیبانی مشتریان", "مریم رضایی", "مریم رضایی\nپشتیبانی مشتریان" },
	{ "hi", "प्रिया शर्मा, ग्राहक सेवा", "प्रिया शर्मा", "प्रिया शर्मा\nग्राहक सेवा" },
};

static char *dup_or_empty(const char *s)
{
	return util_strdup(s ? s : "");
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = dup_or_empty(v);
}

static void config_defaults(struct config *c)
{
	size_t i;

	set_str(&c->milter.socket, "unix:" RUNSTATEDIR "/amends/amends.sock");
	c->milter.socket_mode = 0660;
	set_str(&c->milter.socket_group, "");
	set_str(&c->milter.user, "");
	set_str(&c->milter.pidfile, "");
	c->milter.timeout_s = 30;
	c->milter.backlog = 128;
	set_str(&c->milter.log_level, "info");
	set_str(&c->milter.log_facility, "mail");
	c->milter.subject_tag = false;
	c->milter.add_rules_header = true;

	c->limits.max_scan_bytes = (size_t)10 * 1024 * 1024;
	c->limits.mime_depth = 64;
	c->limits.mime_parts = 1000;
	c->limits.header_bytes = (size_t)64 * 1024;
	c->limits.header_value_bytes = 8192;
	c->limits.header_count = 1000;
	c->limits.part_text_bytes = 50000;
	c->limits.message_text_bytes = (size_t)512 * 1024;

	set_str(&c->rules.dir, "rules");
	c->rules.match_limit = 100000;
	c->rules.depth_limit = 10000;
	c->rules.heap_limit_kib = 65536;
	c->rules.target_cap_bytes = 50000;
	c->rules.deadline_ms = 50;
	set_str(&c->rules.longstanding_file, "");
	c->rules.refuse_unsafe = true;

	c->n_categories = UTIL_ARRAY_LEN(default_categories);
	for (i = 0; i < c->n_categories; i++) {
		set_str(&c->categories[i].name, default_categories[i]);
		c->categories[i].threshold = 1.0;
		set_str(&c->categories[i].subject_tag, "");
	}

	set_str(&c->state_dir, LOCALSTATEDIR "/lib/amends");
	set_str(&c->tally.store, "");       /* derived from state_dir after loading */
	set_str(&c->tally.sender, "header");
	c->tally.strip_detail = true;
	c->tally.window_days = 30;
	c->tally.incidents = 10;
	c->tally.retention_days = 90;
	set_str(&c->tally.sqlite_synchronous, "full");
	c->tally.busy_timeout_ms = 1000;
	set_str(&c->tally.redis_prefix, "amends:");
	c->tally.redis_timeout_ms = 1000;
	set_str(&c->tally.redis_password, "");

	c->policy.winback = true;
	c->policy.apology_complaints = 2;
	c->policy.partways_min_categories = 2;
	c->policy.partways_min_total = 5;
	c->policy.dedupe_days = 7;
	set_str(&c->policy.escalate_category, "abuse");

	c->drafts.enabled = true;
	set_str(&c->drafts.delivery, "maildir");
	set_str(&c->drafts.maildir, "");     /* derived from state_dir */
	set_str(&c->drafts.folder, ".Drafts");
	set_str(&c->drafts.flags, "DS");
	set_str(&c->drafts.templates_dir, "templates");
	set_str(&c->drafts.spool_dir, "");   /* derived from state_dir */
	set_str(&c->drafts.default_lang, "en");
	set_str(&c->drafts.fallback_ur_latn, "ur");
	set_str(&c->drafts.fallback_hi_latn, "hi");
	c->drafts.eom_budget_ms = 0;        /* the reply to the MTA never waits for a draft */
	set_str(&c->drafts.imap_url, "");
	set_str(&c->drafts.imap_user, "");
	set_str(&c->drafts.imap_password_file, "");
	set_str(&c->drafts.imap_mailbox, "Drafts");
	c->drafts.imap_retry_s = 30;
	c->drafts.imap_tls_verify = true;
	set_str(&c->drafts.imap_ca_file, "");
	set_str(&c->drafts.imap_tls_fingerprint, "");
	c->drafts.n_identities = UTIL_ARRAY_LEN(default_identities);
	for (i = 0; i < c->drafts.n_identities; i++) {
		struct config_identity *id = &c->drafts.identities[i];

		set_str(&id->lang, default_identities[i].lang);
		set_str(&id->from_name, default_identities[i].from_name);
		set_str(&id->from_addr, "support@shop.example");
		set_str(&id->agent, default_identities[i].agent);
		set_str(&id->signature, default_identities[i].signature);
	}

	set_str(&c->stats.prometheus_listen, "");
	set_str(&c->stats.stats_file, "");
}

/* ---- typed lookups ------------------------------------------------------------------------ */

static int line_of(const config_setting_t *s)
{
	return s ? (int)config_setting_source_line(s) : 0;
}

#define bad(x, s, ...) diag_add((x)->d, DIAG_ERROR, (x)->file, line_of(s), 0, __VA_ARGS__)

static void get_string(struct cfgctx *x, const config_setting_t *sec, const char *name, char **dst)
{
	config_setting_t *s = sec ? config_setting_get_member(sec, name) : NULL;
	const char *v;

	if (!s)
		return;
	v = config_setting_get_string(s);
	if (!v) {
		bad(x, s, "%s: expected a string", name);
		return;
	}
	set_str(dst, v);
}

static void get_long(struct cfgctx *x, const config_setting_t *sec, const char *name,
		     long long lo, long long hi, long long *dst)
{
	config_setting_t *s = sec ? config_setting_get_member(sec, name) : NULL;
	long long v;

	if (!s)
		return;
	if (config_setting_type(s) == CONFIG_TYPE_INT)
		v = config_setting_get_int(s);
	else if (config_setting_type(s) == CONFIG_TYPE_INT64)
		v = config_setting_get_int64(s);
	else {
		bad(x, s, "%s: expected an integer", name);
		return;
	}
	if (v < lo || v > hi) {
		diag_add(x->d, DIAG_ERROR, x->file, line_of(s), 0,
			 "%s: %lld is out of range (%lld..%lld)", name, v, lo, hi);
		return;
	}
	*dst = v;
}

#define GET_NUM(x, sec, name, lo, hi, field) do { \
		long long v_ = (long long)(field); \
		get_long((x), (sec), (name), (lo), (hi), &v_); \
		(field) = v_; \
	} while (0)

static void get_bool(struct cfgctx *x, const config_setting_t *sec, const char *name, bool *dst)
{
	config_setting_t *s = sec ? config_setting_get_member(sec, name) : NULL;

	if (!s)
		return;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		bad(x, s, "%s: expected true or false", name);
		return;
	}
	*dst = config_setting_get_bool(s) != 0;
}

static void get_double(struct cfgctx *x, const config_setting_t *sec, const char *name,
		       double lo, double hi, double *dst)
{
	config_setting_t *s = sec ? config_setting_get_member(sec, name) : NULL;
	double v;

	if (!s)
		return;
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_FLOAT: v = config_setting_get_float(s); break;
	case CONFIG_TYPE_INT: v = config_setting_get_int(s); break;
	case CONFIG_TYPE_INT64: v = (double)config_setting_get_int64(s); break;
	default:
		bad(x, s, "%s: expected a number", name);
		return;
	}
	if (v < lo || v > hi) {
		diag_add(x->d, DIAG_ERROR, x->file, line_of(s), 0, "%s: %g is out of range", name, v);
		return;
	}
	*dst = v;
}

static void get_string_list(struct cfgctx *x, const config_setting_t *sec, const char *name,
			    char ***dst, size_t *n)
{
	config_setting_t *s = sec ? config_setting_get_member(sec, name) : NULL;
	int i, len;

	if (!s)
		return;
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		bad(x, s, "%s: expected a list of strings [\"a\", \"b\"]", name);
		return;
	}
	for (size_t k = 0; k < *n; k++)
		free((*dst)[k]);
	free(*dst);
	*dst = NULL;
	*n = 0;
	len = config_setting_length(s);
	if (len <= 0)
		return;
	*dst = calloc((size_t)len, sizeof(char *));
	if (!*dst)
		return;
	for (i = 0; i < len; i++) {
		const char *v = config_setting_get_string_elem(s, i);

		if (!v) {
			bad(x, s, "%s: every element must be a string", name);
			continue;
		}
		(*dst)[(*n)++] = util_strdup(v);
	}
	if (!*n) {          /* nothing usable: no list (callers that fill in defaults test n) */
		free(*dst);
		*dst = NULL;
	}
}

/* Reject settings a section does not know: a typo must not pass silently. */
static void check_known(struct cfgctx *x, const config_setting_t *sec, const char *secname,
			const char *const *known)
{
	int i, n;

	if (!sec)
		return;
	if (!config_setting_is_group(sec)) {
		diag_add(x->d, DIAG_ERROR, x->file, line_of(sec), 0, "%s: expected a group { ... }", secname);
		return;
	}
	n = config_setting_length(sec);
	for (i = 0; i < n; i++) {
		config_setting_t *m = config_setting_get_elem(sec, (unsigned)i);
		const char *nm = config_setting_name(m);
		size_t k;

		for (k = 0; known[k]; k++)
			if (nm && strcmp(nm, known[k]) == 0)
				break;
		if (!known[k])
			diag_add(x->d, DIAG_ERROR, x->file, line_of(m), 0,
				 "unknown setting \"%s\" in %s", nm ? nm : "?", secname);
	}
}

/* ---- sections ----------------------------------------------------------------------------- */

static void load_milter(struct cfgctx *x, const config_setting_t *s)
{
	static const char *const known[] = { "socket", "socket_mode", "socket_group", "user",
		"pidfile", "timeout_s", "backlog", "log_level", "log_facility", "subject_tag",
		"add_rules_header", NULL };
	struct config_milter *m = &x->c->milter;
	char *mode = NULL;

	check_known(x, s, "milter", known);
	get_string(x, s, "socket", &m->socket);
	get_string(x, s, "socket_group", &m->socket_group);
	get_string(x, s, "user", &m->user);
	get_string(x, s, "pidfile", &m->pidfile);
	GET_NUM(x, s, "timeout_s", 1, 86400, m->timeout_s);
	GET_NUM(x, s, "backlog", 1, 65535, m->backlog);
	get_string(x, s, "log_level", &m->log_level);
	get_string(x, s, "log_facility", &m->log_facility);
	get_bool(x, s, "subject_tag", &m->subject_tag);
	get_bool(x, s, "add_rules_header", &m->add_rules_header);
	get_string(x, s, "socket_mode", &mode);
	if (mode) {
		char *end;
		long v = strtol(mode, &end, 8);

		if (!*mode || *end || v < 0 || v > 0777)
			diag_error(x->d, x->file, line_of(config_setting_get_member(s, "socket_mode")),
				   "socket_mode: expected an octal mode such as \"0660\"");
		else
			m->socket_mode = (int)v;
		free(mode);
	}
	if (config_socket_valid(m->socket) < 0)
		diag_error(x->d, x->file, line_of(s ? config_setting_get_member(s, "socket") : NULL),
			   "socket: expected unix:/path or inet:PORT@HOST, got \"%s\"", m->socket);
	if (log_level_parse(m->log_level) < 0)
		diag_error(x->d, x->file, line_of(s ? config_setting_get_member(s, "log_level") : NULL),
			   "log_level: expected err, warning, info or debug");
}

static void load_limits(struct cfgctx *x, const config_setting_t *s)
{
	static const char *const known[] = { "max_scan_bytes", "mime_depth", "mime_parts",
		"header_bytes", "header_value_bytes", "header_count", "part_text_bytes",
		"message_text_bytes", NULL };
	struct config_limits *l = &x->c->limits;

	check_known(x, s, "limits", known);
	GET_NUM(x, s, "max_scan_bytes", 1024, 1LL << 31, l->max_scan_bytes);
	GET_NUM(x, s, "mime_depth", 1, 1000, l->mime_depth);
	GET_NUM(x, s, "mime_parts", 1, 100000, l->mime_parts);
	GET_NUM(x, s, "header_bytes", 1024, 64LL << 20, l->header_bytes);
	GET_NUM(x, s, "header_value_bytes", 256, 1LL << 24, l->header_value_bytes);
	GET_NUM(x, s, "header_count", 10, 1000000, l->header_count);
	GET_NUM(x, s, "part_text_bytes", 1024, 1LL << 28, l->part_text_bytes);
	GET_NUM(x, s, "message_text_bytes", 1024, 1LL << 30, l->message_text_bytes);
}

static void load_rules(struct cfgctx *x, const config_setting_t *s)
{
	static const char *const known[] = { "dir", "match_limit", "depth_limit", "heap_limit_kib",
		"target_cap_bytes", "deadline_ms", "longstanding_file", "unsafe_rules", NULL };
	struct config_rules *r = &x->c->rules;

	check_known(x, s, "rules", known);
	get_string(x, s, "dir", &r->dir);
	GET_NUM(x, s, "match_limit", 100, 100000000, r->match_limit);
	GET_NUM(x, s, "depth_limit", 100, 100000000, r->depth_limit);
	GET_NUM(x, s, "heap_limit_kib", 64, 4LL << 20, r->heap_limit_kib);
	GET_NUM(x, s, "target_cap_bytes", 256, 1LL << 28, r->target_cap_bytes);
	GET_NUM(x, s, "deadline_ms", 1, 60000, r->deadline_ms);
	get_string(x, s, "longstanding_file", &r->longstanding_file);
	{
		char *mode = NULL;

		get_string(x, s, "unsafe_rules", &mode);
		if (mode && strcmp(mode, "refuse") != 0 && strcmp(mode, "contain") != 0)
			diag_error(x->d, x->file, line_of(config_setting_get_member(s, "unsafe_rules")),
				   "rules.unsafe_rules: expected \"refuse\" or \"contain\"");
		else if (mode)
			r->refuse_unsafe = strcmp(mode, "refuse") == 0;
		free(mode);
	}
}

static void load_categories(struct cfgctx *x, const config_setting_t *s)
{
	static const char *const known[] = { "name", "threshold", "subject_tag", NULL };
	int i, n;

	if (!s)
		return;
	if (!config_setting_is_list(s)) {
		diag_error(x->d, x->file, line_of(s),
			   "categories: expected a list ( { name = \"complaint\"; threshold = 1.0; }, ... )");
		return;
	}
	n = config_setting_length(s);
	if (n < 1 || n > CONFIG_MAX_CATEGORIES) {
		diag_error(x->d, x->file, line_of(s), "categories: between 1 and %d entries",
			   CONFIG_MAX_CATEGORIES);
		return;
	}
	for (size_t k = 0; k < x->c->n_categories; k++) {
		free(x->c->categories[k].name);
		free(x->c->categories[k].subject_tag);
	}
	memset(x->c->categories, 0, sizeof(x->c->categories));
	x->c->n_categories = 0;
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct config_category *cat = &x->c->categories[x->c->n_categories];

		check_known(x, e, "categories entry", known);
		set_str(&cat->name, "");
		set_str(&cat->subject_tag, "");
		cat->threshold = 1.0;
		get_string(x, e, "name", &cat->name);
		get_double(x, e, "threshold", -1000, 1000, &cat->threshold);
		get_string(x, e, "subject_tag", &cat->subject_tag);
		if (!cat->name[0] || strspn(cat->name, "abcdefghijklmnopqrstuvwxyz0123456789_-")
				     != strlen(cat->name)) {
			diag_error(x->d, x->file, line_of(e),
				   "category name must be lowercase letters, digits, _ or - (got \"%s\")", cat->name);
		} else if (strlen(cat->name) > CONFIG_CATEGORY_NAME_MAX) {
			diag_error(x->d, x->file, line_of(e),
				   "category name \"%s\" is longer than %d characters", cat->name,
				   CONFIG_CATEGORY_NAME_MAX);
		} else if (config_category_index(x->c, cat->name) >= 0) {
			diag_error(x->d, x->file, line_of(e), "duplicate category \"%s\"", cat->name);
		}
		x->c->n_categories++;
	}
}

static void load_tally(struct cfgctx *x, const config_setting_t *s)
{
	static const char *const known[] = { "store", "sender", "strip_detail", "window_days",
		"incidents", "retention_days", "sqlite_synchronous", "busy_timeout_ms",
		"redis_prefix", "redis_timeout_ms", "redis_password", NULL };
	struct config_tally *t = &x->c->tally;

	check_known(x, s, "tally", known);
	get_string(x, s, "store", &t->store);
	get_string(x, s, "sender", &t->sender);
	get_bool(x, s, "strip_detail", &t->strip_detail);
	GET_NUM(x, s, "window_days", 1, 3650, t->window_days);
	GET_NUM(x, s, "incidents", 1, 1000, t->incidents);
	GET_NUM(x, s, "retention_days", 1, 3650, t->retention_days);
	get_string(x, s, "sqlite_synchronous", &t->sqlite_synchronous);
	/* R7.1: a busy or unreachable store may hold a message at most a second (tally.c clamps
	 * again); a larger value is an error here, not a silent cut. */
	GET_NUM(x, s, "busy_timeout_ms", 0, 1000, t->busy_timeout_ms);
	get_string(x, s, "redis_prefix", &t->redis_prefix);
	GET_NUM(x, s, "redis_timeout_ms", 10, 1000, t->redis_timeout_ms);
	get_string(x, s, "redis_password", &t->redis_password);
	if (strcmp(t->sender, "header") != 0 && strcmp(t->sender, "envelope") != 0)
		diag_error(x->d, x->file, line_of(s), "tally.sender: expected \"header\" or \"envelope\"");
	if (strcasecmp(t->sqlite_synchronous, "full") != 0
	    && strcasecmp(t->sqlite_synchronous, "normal") != 0
	    && strcasecmp(t->sqlite_synchronous, "extra") != 0)
		diag_error(x->d, x->file, line_of(s),
			   "tally.sqlite_synchronous: expected \"full\", \"extra\" or \"normal\"");
	if (t->window_days > t->retention_days)
		diag_error(x->d, x->file, line_of(s),
			   "tally.window_days (%d) must not exceed tally.retention_days (%d)",
			   t->window_days, t->retention_days);
	if (t->store[0] && strncmp(t->store, "sqlite:", 7) != 0
	    && strncmp(t->store, "redis:", 6) != 0 && strcmp(t->store, "none") != 0)
		diag_error(x->d, x->file, line_of(s),
			   "tally.store: expected sqlite:/path, redis:host:port or none");
}

static void load_policy(struct cfgctx *x, const config_setting_t *s)
{
	static const char *const known[] = { "winback", "apology_complaints",
		"partways_min_categories", "partways_min_total", "dedupe_days", "support_addresses",
		"problem_categories", "escalate_category", NULL };
	struct config_policy *p = &x->c->policy;

	check_known(x, s, "policy", known);
	get_bool(x, s, "winback", &p->winback);
	GET_NUM(x, s, "apology_complaints", 0, 1000, p->apology_complaints);
	GET_NUM(x, s, "partways_min_categories", 0, CONFIG_MAX_CATEGORIES, p->partways_min_categories);
	GET_NUM(x, s, "partways_min_total", 0, 100000, p->partways_min_total);
	GET_NUM(x, s, "dedupe_days", 0, 3650, p->dedupe_days);
	get_string_list(x, s, "support_addresses", &p->support_addresses, &p->n_support_addresses);
	get_string_list(x, s, "problem_categories", &p->problem_categories, &p->n_problem_categories);
	get_string(x, s, "escalate_category", &p->escalate_category);
}

static void load_identity(struct cfgctx *x, const config_setting_t *e, struct config_identity *id)
{
	static const char *const known[] = { "from_name", "from_addr", "agent", "signature", NULL };

	check_known(x, e, "drafts.identities entry", known);
	get_string(x, e, "from_name", &id->from_name);
	get_string(x, e, "from_addr", &id->from_addr);
	get_string(x, e, "agent", &id->agent);
	get_string(x, e, "signature", &id->signature);
	if (strpbrk(id->from_addr, "\r\n\"<>()[],;: \t") || !strchr(id->from_addr, '@'))
		diag_error(x->d, x->file, line_of(e), "identity %s: from_addr must be a plain address",
			   id->lang);
	if (strpbrk(id->from_name, "\r\n") || strpbrk(id->agent, "\r\n"))
		diag_error(x->d, x->file, line_of(e), "identity %s: names must be one line", id->lang);
}

static void load_identities(struct cfgctx *x, const config_setting_t *s)
{
	int i, n;

	if (!s)
		return;
	if (!config_setting_is_group(s)) {
		diag_error(x->d, x->file, line_of(s),
			   "drafts.identities: expected a group { en = { ... }; ur = { ... }; }");
		return;
	}
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *lang = config_setting_name(e);
		struct config_identity *id = (struct config_identity *)config_identity(x->c, lang);

		if (!id) {
			if (x->c->drafts.n_identities >= CONFIG_MAX_LANGS) {
				diag_error(x->d, x->file, line_of(e), "too many identities");
				continue;
			}
			id = &x->c->drafts.identities[x->c->drafts.n_identities++];
			set_str(&id->lang, lang);
			set_str(&id->from_name, "");
			set_str(&id->from_addr, "support@shop.example");
			set_str(&id->agent, "");
			set_str(&id->signature, "");
		}
		load_identity(x, e, id);
	}
}

static void load_drafts(struct cfgctx *x, const config_setting_t *s)
{
	static const char *const known[] = { "enabled", "delivery", "maildir", "folder", "flags",
		"templates_dir", "spool_dir", "default_lang", "fallback_ur_latn", "fallback_hi_latn",
		"eom_budget_ms", "imap_url", "imap_user", "imap_password_file", "imap_mailbox",
		"imap_retry_s", "imap_tls_verify", "imap_ca_file", "imap_tls_fingerprint",
		"identities", NULL };
	struct config_drafts *d = &x->c->drafts;

	check_known(x, s, "drafts", known);
	get_bool(x, s, "enabled", &d->enabled);
	get_string(x, s, "delivery", &d->delivery);
	get_string(x, s, "maildir", &d->maildir);
	get_string(x, s, "folder", &d->folder);
	get_string(x, s, "flags", &d->flags);
	get_string(x, s, "templates_dir", &d->templates_dir);
	get_string(x, s, "spool_dir", &d->spool_dir);
	get_string(x, s, "default_lang", &d->default_lang);
	get_string(x, s, "fallback_ur_latn", &d->fallback_ur_latn);
	get_string(x, s, "fallback_hi_latn", &d->fallback_hi_latn);
	GET_NUM(x, s, "eom_budget_ms", 0, 60000, d->eom_budget_ms);
	get_string(x, s, "imap_url", &d->imap_url);
	get_string(x, s, "imap_user", &d->imap_user);
	get_string(x, s, "imap_password_file", &d->imap_password_file);
	get_string(x, s, "imap_mailbox", &d->imap_mailbox);
	GET_NUM(x, s, "imap_retry_s", 1, 86400, d->imap_retry_s);
	get_bool(x, s, "imap_tls_verify", &d->imap_tls_verify);
	get_string(x, s, "imap_ca_file", &d->imap_ca_file);
	get_string(x, s, "imap_tls_fingerprint", &d->imap_tls_fingerprint);
	load_identities(x, s ? config_setting_get_member(s, "identities") : NULL);
	if (strcmp(d->delivery, "maildir") != 0 && strcmp(d->delivery, "imap") != 0)
		diag_error(x->d, x->file, line_of(s), "drafts.delivery: expected \"maildir\" or \"imap\"");
	if (d->folder[0] && (d->folder[0] != '.' || strchr(d->folder, '/') || strstr(d->folder, "..")))
		diag_error(x->d, x->file, line_of(s),
			   "drafts.folder: a Maildir++ folder name such as \".Drafts\" (no '/')");
	if (!strchr(d->flags, 'D') || strspn(d->flags, "DFPRST") != strlen(d->flags))
		diag_error(x->d, x->file, line_of(s),
			   "drafts.flags: Maildir flags from DFPRST, including D");
	if (!strcmp(d->delivery, "imap") && !d->imap_url[0])
		diag_error(x->d, x->file, line_of(s), "drafts.delivery = \"imap\" needs drafts.imap_url");
}

static void load_stats(struct cfgctx *x, const config_setting_t *s)
{
	static const char *const known[] = { "prometheus_listen", "stats_file", NULL };

	check_known(x, s, "stats", known);
	get_string(x, s, "prometheus_listen", &x->c->stats.prometheus_listen);
	get_string(x, s, "stats_file", &x->c->stats.stats_file);
}

static void load_root(struct cfgctx *x, const config_setting_t *root)
{
	static const char *const known[] = { "milter", "limits", "rules", "categories", "tally",
		"policy", "drafts", "stats", "state_dir", NULL };

	check_known(x, root, "the top level", known);
	get_string(x, root, "state_dir", &x->c->state_dir);
	load_milter(x, config_setting_get_member(root, "milter"));
	load_limits(x, config_setting_get_member(root, "limits"));
	load_rules(x, config_setting_get_member(root, "rules"));
	load_categories(x, config_setting_get_member(root, "categories"));
	load_tally(x, config_setting_get_member(root, "tally"));
	load_policy(x, config_setting_get_member(root, "policy"));
	load_drafts(x, config_setting_get_member(root, "drafts"));
	load_stats(x, config_setting_get_member(root, "stats"));
}

/* ---- derived values and path resolution -------------------------------------------------- */

char *config_path(const struct config *c, const char *p)
{
	struct strbuf b;

	if (!p || !*p || p[0] == '/' || !c->basedir || !*c->basedir)
		return util_strdup(p ? p : "");
	strbuf_init(&b, 0);
	strbuf_printf(&b, "%s/%s", c->basedir, p);
	return strbuf_take(&b);
}

static void resolve(struct config *c, char **field)
{
	char *abs = config_path(c, *field);

	if (abs) {
		free(*field);
		*field = abs;
	}
}

static char *state_path(const struct config *c, const char *leaf)
{
	struct strbuf b;

	strbuf_init(&b, 0);
	strbuf_printf(&b, "%s/%s", c->state_dir, leaf);
	return strbuf_take(&b);
}

static void config_finish(struct config *c, struct cfgctx *x)
{
	size_t i;

	resolve(c, &c->state_dir);
	resolve(c, &c->rules.dir);
	resolve(c, &c->rules.longstanding_file);
	resolve(c, &c->drafts.templates_dir);
	resolve(c, &c->drafts.imap_password_file);
	resolve(c, &c->stats.stats_file);
	resolve(c, &c->milter.pidfile);
	if (!c->tally.store[0]) {
		char *p = state_path(c, "tally.db");

		free(c->tally.store);
		c->tally.store = NULL;
		if (p) {
			struct strbuf b;

			strbuf_init(&b, 0);
			strbuf_printf(&b, "sqlite:%s", p);
			c->tally.store = strbuf_take(&b);
			free(p);
		}
	} else if (!strncmp(c->tally.store, "sqlite:", 7) && c->tally.store[7] != '/') {
		char *p = config_path(c, c->tally.store + 7);
		struct strbuf b;

		strbuf_init(&b, 0);
		strbuf_printf(&b, "sqlite:%s", p ? p : "");
		free(p);
		free(c->tally.store);
		c->tally.store = strbuf_take(&b);
	}
	if (!c->drafts.maildir[0]) {
		free(c->drafts.maildir);
		c->drafts.maildir = state_path(c, "Maildir");
	} else {
		resolve(c, &c->drafts.maildir);
	}
	if (!c->drafts.spool_dir[0]) {
		free(c->drafts.spool_dir);
		c->drafts.spool_dir = state_path(c, "spool");
	} else {
		resolve(c, &c->drafts.spool_dir);
	}
	if (!c->stats.stats_file[0]) {
		free(c->stats.stats_file);
		c->stats.stats_file = state_path(c, "stats");
	}
	/* Default problem categories: those of the policy text that the config declares. */
	if (!c->policy.n_problem_categories) {
		static const char *const prob[] = { "complaint", "abuse", "refund", "unethical" };

		c->policy.problem_categories = calloc(UTIL_ARRAY_LEN(prob), sizeof(char *));
		for (i = 0; c->policy.problem_categories && i < UTIL_ARRAY_LEN(prob); i++)
			if (config_category_index(c, prob[i]) >= 0)
				c->policy.problem_categories[c->policy.n_problem_categories++] =
					util_strdup(prob[i]);
	}
	for (i = 0; i < c->policy.n_problem_categories; i++)
		if (config_category_index(c, c->policy.problem_categories[i]) < 0)
			diag_error(x->d, x->file, 0, "policy.problem_categories: unknown category \"%s\"",
				   c->policy.problem_categories[i]);
	if (c->policy.escalate_category[0] && config_category_index(c, c->policy.escalate_category) < 0
	    && strcmp(c->policy.escalate_category, "abuse") != 0)
		diag_error(x->d, x->file, 0, "policy.escalate_category: unknown category \"%s\"",
			   c->policy.escalate_category);
}

static char *dirname_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return util_strdup(".");
	if (slash == path)
		return util_strdup("/");
	return util_strndup(path, (size_t)(slash - path));
}

/* Parse text, named path in diagnostics (NULL path, NULL text: the defaults); relative paths
 * in it resolve against basedir. */
static struct config *config_load_from(const char *path, const char *text, const char *basedir,
				       struct diag *d)
{
	struct config *c = calloc(1, sizeof(*c));
	struct cfgctx x = { c, d, path ? path : "" };
	size_t errors0 = d->errors;
	config_t lc;

	if (!c) {
		diag_error(d, path, 0, "out of memory");
		return NULL;
	}
	atomic_init(&c->refs, 1);
	config_defaults(c);
	c->path = util_strdup(path ? path : "");
	c->basedir = util_strdup(basedir ? basedir : ".");
	if (path && text) {
		config_init(&lc);
		if (!config_read_string(&lc, text)) {
			diag_add(d, DIAG_ERROR, path, config_error_line(&lc), 0, "%s",
				 config_error_text(&lc));
			config_destroy(&lc);
			config_unref(c);
			return NULL;
		}
		load_root(&x, config_root_setting(&lc));
		config_destroy(&lc);
	}
	config_finish(c, &x);
	if (d->errors > errors0) {
		config_unref(c);
		return NULL;
	}
	return c;
}

/* libconfig 1.5's scanner exit()s the whole process on `@include "<a directory>"` (libconfig
 * issue #292), so a reload could kill the daemon: we read files ourselves and refuse @include
 * (amends.conf(5) never offered it). Returns -1 with an error naming file:line. */
static int config_refuse_include(const char *name, const char *text, struct diag *d)
{
	const char *inc = strstr(text, "@include");
	int line = 1;

	if (!inc)
		return 0;
	for (const char *p = text; p < inc; p++)
		line += *p == '\n';
	diag_error(d, name, line, "@include is not supported");
	return -1;
}

#define CONFIG_MAX_FILE_BYTES ((size_t)1024 * 1024)

/* The configuration decides where mail data goes and who gets drafts: a file anyone can write
 * is refused, one a group can write is warned about (RELIABILITY R9.3, as OpenDKIM's
 * RequireSafeKeys). */
static int config_check_mode(const char *path, struct diag *d)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return 0;   /* the read that follows reports it */
	if (st.st_mode & S_IWOTH) {
		diag_error(d, path, 0, "is world-writable (mode %04o): anyone could change what amends "
			   "does; chmod o-w", (unsigned)(st.st_mode & 07777));
		return -1;
	}
	if (st.st_mode & S_IWGRP)
		diag_warning(d, path, 0, "is group-writable (mode %04o)", (unsigned)(st.st_mode & 07777));
	return 0;
}

struct config *config_load(const char *path, struct diag *d)
{
	struct config *c = NULL;
	char *text, *dir;
	size_t len;

	if (!path)
		return config_load_from(NULL, NULL, NULL, d);
	if (config_check_mode(path, d) < 0)
		return NULL;
	if (util_read_file(path, CONFIG_MAX_FILE_BYTES, &text, &len) < 0) {
		diag_add(d, DIAG_ERROR, path, 0, 0, "cannot read: %s", strerror(errno));
		return NULL;
	}
	/* the directory absolute: the paths resolved against it stay right after a chdir (the
	 * daemon's to /), and resolving one again (config_path) leaves it as it is; a relative
	 * base turned "conf/templates" into "conf/conf/templates" */
	errno = 0;   /* the reads above may have left one: only getcwd's or malloc's counts */
	dir = dirname_of(path);
	if (dir && dir[0] != '/') {
		char *abs = util_abspath(dir);

		free(dir);
		dir = abs;
	}
	if (!dir)
		diag_error(d, path, 0, "cannot name its directory: %s",
			   errno ? strerror(errno) : "out of memory");
	else if (config_refuse_include(path, text, d) == 0)
		c = config_load_from(path, text, dir, d);
	free(dir);
	free(text);
	return c;
}

struct config *config_load_string(const char *text, struct diag *d)
{
	if (config_refuse_include("<string>", text, d) < 0)
		return NULL;
	return config_load_from("<string>", text, ".", d);
}

struct config *config_ref(struct config *c)
{
	if (c)
		atomic_fetch_add(&c->refs, 1);
	return c;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void config_free(struct config *c)
{
	size_t i;

	free(c->path); free(c->basedir); free(c->state_dir);
	free(c->milter.socket); free(c->milter.socket_group); free(c->milter.user);
	free(c->milter.pidfile); free(c->milter.log_level); free(c->milter.log_facility);
	free(c->rules.dir); free(c->rules.longstanding_file);
	for (i = 0; i < c->n_categories; i++) {
		free(c->categories[i].name);
		free(c->categories[i].subject_tag);
	}
	free(c->tally.store); free(c->tally.sender); free(c->tally.sqlite_synchronous);
	free(c->tally.redis_prefix); free(c->tally.redis_password);
	free_list(c->policy.support_addresses, c->policy.n_support_addresses);
	free_list(c->policy.problem_categories, c->policy.n_problem_categories);
	free(c->policy.escalate_category);
	free(c->drafts.delivery); free(c->drafts.maildir); free(c->drafts.folder);
	free(c->drafts.flags); free(c->drafts.templates_dir); free(c->drafts.spool_dir);
	free(c->drafts.default_lang); free(c->drafts.fallback_ur_latn); free(c->drafts.fallback_hi_latn);
	free(c->drafts.imap_url); free(c->drafts.imap_user); free(c->drafts.imap_password_file);
	free(c->drafts.imap_mailbox); free(c->drafts.imap_ca_file);
	free(c->drafts.imap_tls_fingerprint);
	for (i = 0; i < c->drafts.n_identities; i++) {
		struct config_identity *id = &c->drafts.identities[i];

		free(id->lang); free(id->from_name); free(id->from_addr); free(id->agent);
		free(id->signature);
	}
	free(c->stats.prometheus_listen); free(c->stats.stats_file);
	free(c);
}

void config_unref(struct config *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		config_free(c);
}

int config_category_index(const struct config *c, const char *name)
{
	for (size_t i = 0; name && i < c->n_categories; i++)
		if (c->categories[i].name && strcmp(c->categories[i].name, name) == 0)
			return (int)i;
	return -1;
}

const struct config_identity *config_identity(const struct config *c, const char *lang)
{
	for (size_t i = 0; lang && i < c->drafts.n_identities; i++)
		if (c->drafts.identities[i].lang && strcmp(c->drafts.identities[i].lang, lang) == 0)
			return &c->drafts.identities[i];
	return NULL;
}

int config_socket_valid(const char *spec)
{
	const char *at;
	char *end;
	long port;

	if (!spec)
		return -1;
	if (!strncmp(spec, "unix:", 5) || !strncmp(spec, "local:", 6)) {
		const char *p = strchr(spec, ':') + 1;

		return (*p == '/' && strlen(p) < 100) ? 0 : -1;
	}
	if (!strncmp(spec, "inet:", 5)) {
		port = strtol(spec + 5, &end, 10);
		if (end == spec + 5 || port < 1 || port > 65535)
			return -1;
		at = end;
		return (*at == '\0' || (*at == '@' && at[1])) ? 0 : -1;
	}
	return -1;
}
