/*
 * milterproto.c - the MTA side of the milter wire protocol (see milterproto.h)
 *
 * Written from the protocol as Postfix's milter8.c speaks it, not from libmilter, so it can
 * test a libmilter-based daemon independently. What Postfix does and this file copies:
 *  - a header value is sent without its leading whitespace unless the milter negotiated
 *    SMFIP_HDR_LEADSPC; folded lines stay joined with a bare "\n";
 *  - the body is sent in SMTP form (CRLF) in chunks of at most 65535 bytes, then an empty
 *    SMFIC_BODYEOB; macros of a stage go in one SMFIC_MACRO packet just before its command,
 *    and only defined macros are sent; when the milter gave a macro list for a stage in its
 *    SMFIR_OPTNEG reply, only those are sent;
 *  - steps the milter switched off (SMFIP_NO*) are not sent, steps it marked no-reply
 *    (SMFIP_NR_*) are not waited for;
 *  - a REJECT/TEMPFAIL at RCPT refuses that recipient only; the transaction ends when no
 *    recipient is left. ACCEPT/REJECT/... at CONNECT or HELO ends the milter's part in the whole
 *    connection; at a message stage it ends that message, which the MTA then aborts.
 *
 * OWNERSHIP  see milterproto.h. Packets read are malloc'd per read and freed by the reader.
 * DIAGNOSTICS  -1 with c->err; the text names the stage and what went wrong.
 */
#include "milterproto.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------------------------ */

static const char *const stage_names[MPROTO_ST_COUNT] = {
	"none", "optneg", "connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom",
};

const char *mproto_stage_name(enum mproto_stage st)
{
	return (unsigned)st < MPROTO_ST_COUNT ? stage_names[st] : "?";
}

int mproto_stage_parse(const char *s, enum mproto_stage *out)
{
	for (unsigned i = MPROTO_ST_CONNECT; i < MPROTO_ST_COUNT; i++) {
		if (strcmp(s, stage_names[i]) == 0) {
			*out = (enum mproto_stage)i;
			return 0;
		}
	}
	return -1;
}

const char *mproto_status_name(enum mproto_status s)
{
	switch (s) {
	case MPROTO_CONTINUE: return "CONTINUE";
	case MPROTO_ACCEPT: return "ACCEPT";
	case MPROTO_REJECT: return "REJECT";
	case MPROTO_TEMPFAIL: return "TEMPFAIL";
	case MPROTO_DISCARD: return "DISCARD";
	case MPROTO_CONNFAIL: return "CONNFAIL";
	case MPROTO_SHUTDOWN: return "SHUTDOWN";
	case MPROTO_ABORTED: return "ABORTED";
	case MPROTO_ERROR: return "ERROR";
	}
	return "?";
}

static void set_err(struct mproto_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct mproto_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	/* Truncation of an error text is harmless: it only shortens the message. */
	(void)vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* A growable packet under construction; oom is sticky so callers check once at the end. */
struct pbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void pb_put(struct pbuf *b, const void *data, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t ncap = b->cap ? b->cap : 256;
		while (ncap < b->len + n)
			ncap *= 2;
		char *np = realloc(b->p, ncap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void pb_u32(struct pbuf *b, uint32_t v)
{
	uint32_t n = htonl(v);
	pb_put(b, &n, 4);
}

static void pb_u16(struct pbuf *b, uint16_t v)
{
	uint16_t n = htons(v);
	pb_put(b, &n, 2);
}

static void pb_str(struct pbuf *b, const char *s)
{
	pb_put(b, s, strlen(s) + 1);
}

static void pb_free(struct pbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- I/O with a deadline ------------------------------------------------------------------- */

static int wait_fd(struct mproto_conn *c, short ev, const char *what)
{
	struct pollfd pfd = { .fd = c->fd, .events = ev };
	int rc;

	do
		rc = poll(&pfd, 1, c->timeout_ms);
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		set_err(c, "poll: %s", strerror(errno));
		return -1;
	}
	if (rc == 0) {
		set_err(c, "%s timeout after %d ms", what, c->timeout_ms);
		return -1;
	}
	return 0;
}

static int write_all(struct mproto_conn *c, const char *p, size_t n)
{
	while (n > 0) {
		if (wait_fd(c, POLLOUT, "write") < 0)
			return -1;
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			set_err(c, "write: %s", strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(struct mproto_conn *c, char *p, size_t n)
{
	while (n > 0) {
		if (wait_fd(c, POLLIN, "read") < 0)
			return -1;
		ssize_t r = recv(c->fd, p, n, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			set_err(c, "read: %s", strerror(errno));
			return -1;
		}
		if (r == 0) {
			set_err(c, "connection closed by the milter");
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* send_packet - one command: length, command byte, data. */
static int send_packet(struct mproto_conn *c, char cmd, const void *data, size_t n)
{
	char hdr[5];
	uint32_t len;

	if (n > UINT32_MAX - 1) {
		set_err(c, "packet too large");
		return -1;
	}
	len = htonl((uint32_t)n + 1);
	memcpy(hdr, &len, 4);
	hdr[4] = cmd;
	if (write_all(c, hdr, sizeof(hdr)) < 0)
		return -1;
	return n ? write_all(c, data, n) : 0;
}

/* read_packet - one reply; *data is malloc'd (NUL-terminated past len), the caller frees it. */
static int read_packet(struct mproto_conn *c, char *cmd, char **data, size_t *n)
{
	uint32_t len;

	*data = NULL;
	if (read_all(c, (char *)&len, 4) < 0)
		return -1;
	len = ntohl(len);
	if (len == 0 || len > MPROTO_MAX_PACKET) {
		set_err(c, "bad reply length %u", len);
		return -1;
	}
	if (read_all(c, cmd, 1) < 0)
		return -1;
	*n = len - 1;
	*data = malloc(*n + 1);
	if (!*data) {
		set_err(c, "out of memory");
		return -1;
	}
	if (*n && read_all(c, *data, *n) < 0) {
		free(*data);
		*data = NULL;
		return -1;
	}
	(*data)[*n] = '\0';
	return 0;
}

/* ---- connection ------------------------------------------------------------------------------ */

static int open_unix(struct mproto_conn *c, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sun.sun_path)) {
		set_err(c, "socket path too long: %s", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		set_err(c, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		set_err(c, "connect %s: %s", path, strerror(errno));
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static int open_inet(struct mproto_conn *c, const char *host, const char *port, int family)
{
	struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	int rc = getaddrinfo(host, port, &hints, &res);

	if (rc != 0) {
		set_err(c, "%s:%s: %s", host, port, gai_strerror(rc));
		return -1;
	}
	set_err(c, "%s:%s: no address", host, port);
	for (ai = res; ai; ai = ai->ai_next) {
		c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (c->fd < 0)
			continue;
		if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		set_err(c, "connect %s:%s: %s", host, port, strerror(errno));
		close(c->fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	return c->fd >= 0 ? 0 : -1;
}

int mproto_conn_open(struct mproto_conn *c, const char *spec, int timeout_ms)
{
	char buf[512];
	char *at, *host, *port;
	int family = AF_UNSPEC;

	c->fd = -1;
	c->timeout_ms = timeout_ms;
	if (strncmp(spec, "unix:", 5) == 0)
		return open_unix(c, spec + 5);
	if (strncmp(spec, "local:", 6) == 0)
		return open_unix(c, spec + 6);
	if (spec[0] == '/')
		return open_unix(c, spec);
	if (strncmp(spec, "inet:", 5) == 0) {
		family = AF_INET;
		spec += 5;
	} else if (strncmp(spec, "inet6:", 6) == 0) {
		family = AF_INET6;
		spec += 6;
	} else {
		set_err(c, "unknown socket spec (unix:/path or inet:port@host): %s", spec);
		return -1;
	}
	if (strlen(spec) >= sizeof(buf)) {
		set_err(c, "socket spec too long");
		return -1;
	}
	memcpy(buf, spec, strlen(spec) + 1);
	if ((at = strchr(buf, '@')) != NULL) {      /* libmilter: port@host */
		*at = '\0';
		port = buf;
		host = at + 1;
	} else if ((at = strrchr(buf, ':')) != NULL) { /* Postfix: host:port */
		*at = '\0';
		host = buf;
		port = at + 1;
	} else {
		port = buf;
		host = "127.0.0.1";
	}
	return open_inet(c, host, port, family);
}

void mproto_conn_close(struct mproto_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	for (unsigned i = 0; i < MPROTO_ST_COUNT; i++) {
		free(c->symlist[i]);
		c->symlist[i] = NULL;
	}
}

/* ---- negotiation ------------------------------------------------------------------------------ */

/* SMFIM_* indexes of the macro lists in an SMFIR_OPTNEG reply. */
static enum mproto_stage symlist_stage(uint32_t idx)
{
	static const enum mproto_stage map[] = {
		MPROTO_ST_CONNECT, MPROTO_ST_HELO, MPROTO_ST_MAIL, MPROTO_ST_RCPT,
		MPROTO_ST_DATA, MPROTO_ST_EOM, MPROTO_ST_EOH,
	};
	return idx < sizeof(map) / sizeof(map[0]) ? map[idx] : MPROTO_ST_NONE;
}

static int parse_symlists(struct mproto_conn *c, const char *p, const char *end)
{
	while (end - p >= 4) {
		uint32_t idx;
		memcpy(&idx, p, 4);
		idx = ntohl(idx);
		p += 4;
		const char *nul = memchr(p, '\0', (size_t)(end - p));
		if (!nul) {
			set_err(c, "optneg: unterminated macro list");
			return -1;
		}
		enum mproto_stage st = symlist_stage(idx);
		if (st == MPROTO_ST_NONE) {
			set_err(c, "optneg: unknown macro list index %u", idx);
			return -1;
		}
		free(c->symlist[st]);
		c->symlist[st] = xstrndup(p, (size_t)(nul - p));
		p = nul + 1;
	}
	if (p != end) {
		set_err(c, "optneg: %zu trailing bytes", (size_t)(end - p));
		return -1;
	}
	return 0;
}

int mproto_negotiate(struct mproto_conn *c, uint32_t version)
{
	struct pbuf b = { 0 };
	char cmd, *data = NULL;
	size_t n;
	int rc = -1;

	c->version = version;
	c->actions = version >= 6 ? MPROTO_ACT_V6 : MPROTO_ACT_V2;
	c->protocol = version >= 6 ? MPROTO_P_V6 : MPROTO_P_V2;
	pb_u32(&b, c->version);
	pb_u32(&b, c->actions);
	pb_u32(&b, c->protocol);
	if (b.oom || send_packet(c, MPROTO_C_OPTNEG, b.p, b.len) < 0 ||
	    read_packet(c, &cmd, &data, &n) < 0) {
		size_t l = strlen(c->err);
		(void)snprintf(c->err + l, sizeof(c->err) - l, " at optneg");
		goto out;
	}
	if (cmd != MPROTO_R_OPTNEG || n < 12) {
		set_err(c, "optneg: unexpected reply '%c' (%zu bytes)", cmd, n);
		goto out;
	}
	uint32_t v[3];
	memcpy(v, data, 12);
	uint32_t mver = ntohl(v[0]), mact = ntohl(v[1]), mprot = ntohl(v[2]);
	if (mver < 2 || mver > version) {
		set_err(c, "optneg: milter answered version %u to our %u", mver, version);
		goto out;
	}
	/* Like Postfix: a milter may not ask for what we did not offer. */
	if (mact & ~c->actions) {
		set_err(c, "optneg: milter wants actions 0x%x beyond offered 0x%x", mact, c->actions);
		goto out;
	}
	if (mprot & ~c->protocol & ~0xF0000000U) {
		set_err(c, "optneg: milter wants protocol 0x%x beyond offered 0x%x", mprot, c->protocol);
		goto out;
	}
	c->version = mver;
	c->actions = mact;
	c->protocol = mprot;
	rc = parse_symlists(c, data + 12, data + n);
out:
	free(data);
	pb_free(&b);
	return rc;
}

/* ---- macros ------------------------------------------------------------------------------------ */

/* Does a space-separated list like "i {mail_addr}" name this macro (braces optional)? */
static bool symlist_has(const char *list, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = list;

	if (name[0] == '{' && nlen > 2) {
		name++;
		nlen -= 2;
	}
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		const char *s = p;
		while (*p && *p != ' ' && *p != ',')
			p++;
		size_t len = (size_t)(p - s);
		if (len > 2 && s[0] == '{' && s[len - 1] == '}') {
			s++;
			len -= 2;
		}
		if (len == nlen && memcmp(s, name, len) == 0)
			return true;
	}
	return false;
}

static int send_macros(struct mproto_conn *c, enum mproto_stage st, char cmd,
		       const struct mproto_macro *m, size_t n)
{
	struct pbuf b = { 0 };
	size_t sent = 0;
	int rc = 0;

	pb_put(&b, &cmd, 1);
	for (size_t i = 0; i < n; i++) {
		if (!m[i].value)
			continue;
		if (c->symlist[st] && !symlist_has(c->symlist[st], m[i].name))
			continue;
		pb_str(&b, m[i].name);
		pb_str(&b, m[i].value);
		sent++;
	}
	if (b.oom) {
		set_err(c, "out of memory");
		rc = -1;
	} else if (sent > 0) {
		rc = send_packet(c, MPROTO_C_MACRO, b.p, b.len);
	}
	pb_free(&b);
	return rc;
}

/* ---- replies ------------------------------------------------------------------------------------ */

/* Take one NUL-terminated string from [*p, end); NULL when there is none. */
static const char *take_str(const char **p, const char *end)
{
	const char *s = *p;
	const char *nul;

	if (s >= end || !(nul = memchr(s, '\0', (size_t)(end - s))))
		return NULL;
	*p = nul + 1;
	return s;
}

static struct mproto_action *new_action(struct mproto_result *r)
{
	if (r->nact == r->capact) {
		size_t ncap = r->capact ? r->capact * 2 : 8;
		struct mproto_action *na = realloc(r->acts, ncap * sizeof(*na));
		if (!na)
			return NULL;
		r->acts = na;
		r->capact = ncap;
	}
	struct mproto_action *a = &r->acts[r->nact++];
	memset(a, 0, sizeof(*a));
	return a;
}

/* record_action - decode a modification packet into r. */
static int record_action(struct mproto_conn *c, char cmd, const char *data, size_t n,
			 struct mproto_result *r)
{
	const char *p = data, *end = data + n;
	const char *name, *value = NULL;
	uint32_t idx = 0;

	if (cmd == MPROTO_R_REPLBODY) {
		r->replbody = true;
		r->replbody_bytes += n;
		return 0;
	}
	if (cmd == MPROTO_R_INSHEADER || cmd == MPROTO_R_CHGHEADER) {
		if (n < 4) {
			set_err(c, "short '%c' packet", cmd);
			return -1;
		}
		memcpy(&idx, p, 4);
		idx = ntohl(idx);
		p += 4;
	}
	if (!(name = take_str(&p, end))) {
		set_err(c, "malformed '%c' packet", cmd);
		return -1;
	}
	value = take_str(&p, end);
	bool needs_value = cmd == MPROTO_R_ADDHEADER || cmd == MPROTO_R_INSHEADER ||
			   cmd == MPROTO_R_CHGHEADER;
	if (needs_value && !value) {
		set_err(c, "'%c' packet without a value", cmd);
		return -1;
	}
	struct mproto_action *a = new_action(r);
	if (!a) {
		set_err(c, "out of memory");
		return -1;
	}
	a->type = cmd;
	a->index = idx;
	a->name = xstrndup(name, strlen(name));
	if (value) {
		a->value_len = strlen(value);
		a->value = xstrndup(value, a->value_len);
	}
	a->deleted = cmd == MPROTO_R_CHGHEADER && a->value_len == 0;
	if (!a->name || (value && !a->value)) {
		set_err(c, "out of memory");
		return -1;
	}
	return 0;
}

static bool is_modification(char cmd)
{
	return strchr("+-2behimq", cmd) != NULL && cmd != '\0';
}

/* read_reply - read until a final answer for stage st. Modifications are legal only at EOM.
 * *skip is set on SMFIR_SKIP (body only, when negotiated). */
static int read_reply(struct mproto_conn *c, enum mproto_stage st, struct mproto_result *r,
		      enum mproto_status *out, bool *skip)
{
	for (;;) {
		char cmd, *data;
		size_t n;
		int rc = 0;

		if (read_packet(c, &cmd, &data, &n) < 0) {
			size_t l = strlen(c->err);
			(void)snprintf(c->err + l, sizeof(c->err) - l, " at %s", mproto_stage_name(st));
			return -1;
		}
		if (skip)
			*skip = false;
		switch (cmd) {
		case MPROTO_R_PROGRESS:
			free(data);
			continue;
		case MPROTO_R_CONTINUE: *out = MPROTO_CONTINUE; break;
		case MPROTO_R_ACCEPT: *out = MPROTO_ACCEPT; break;
		case MPROTO_R_REJECT: *out = MPROTO_REJECT; break;
		case MPROTO_R_TEMPFAIL: *out = MPROTO_TEMPFAIL; break;
		case MPROTO_R_DISCARD: *out = MPROTO_DISCARD; break;
		case MPROTO_R_CONN_FAIL: *out = MPROTO_CONNFAIL; break;
		case MPROTO_R_SHUTDOWN: *out = MPROTO_SHUTDOWN; break;
		case MPROTO_R_REPLYCODE:
			if (n < 3 || (data[0] != '4' && data[0] != '5')) {
				set_err(c, "bad reply code \"%.40s\" at %s", data, mproto_stage_name(st));
				rc = -1;
				break;
			}
			*out = data[0] == '4' ? MPROTO_TEMPFAIL : MPROTO_REJECT;
			free(r->reply);
			r->reply = xstrndup(data, strlen(data));
			break;
		case MPROTO_R_SKIP:
			if (st != MPROTO_ST_BODY || !(c->protocol & MPROTO_P_SKIP) || !skip) {
				set_err(c, "SKIP at %s not negotiated", mproto_stage_name(st));
				rc = -1;
				break;
			}
			*out = MPROTO_CONTINUE;
			*skip = true;
			break;
		default:
			if (is_modification(cmd) && st == MPROTO_ST_EOM) {
				rc = record_action(c, cmd, data, n, r);
				free(data);
				if (rc < 0)
					return -1;
				continue;
			}
			set_err(c, "unexpected reply '%c' (0x%02x) at %s", cmd, (unsigned char)cmd,
				mproto_stage_name(st));
			rc = -1;
			break;
		}
		free(data);
		return rc;
	}
}

/* command - send one command with its data; wait for the answer unless the milter said it
 * will not reply (nr_flag negotiated). */
static int command(struct mproto_conn *c, enum mproto_stage st, char cmd, const void *data,
		   size_t n, uint32_t nr_flag, struct mproto_result *r, enum mproto_status *out,
		   bool *skip)
{
	*out = MPROTO_CONTINUE;
	if (skip)
		*skip = false;
	if (send_packet(c, cmd, data, n) < 0) {
		size_t l = strlen(c->err);
		(void)snprintf(c->err + l, sizeof(c->err) - l, " at %s", mproto_stage_name(st));
		return -1;
	}
	if (nr_flag && (c->protocol & nr_flag))
		return 0;
	return read_reply(c, st, r, out, skip);
}

/* ---- the connection stages --------------------------------------------------------------------- */

int mproto_connect_helo(struct mproto_conn *c, const struct mproto_env *env)
{
	struct mproto_result scratch;
	enum mproto_status st = MPROTO_CONTINUE;
	char port[16], underscore[512], version[] = "Postfix 3.7.11";
	int rc = -1;

	mproto_result_init(&scratch);
	(void)snprintf(port, sizeof(port), "%u", env->client_port);
	if (snprintf(underscore, sizeof(underscore), "%s [%s]", env->client_name, env->client_addr)
	    >= (int)sizeof(underscore)) {
		set_err(c, "client name too long");
		goto out;
	}
	if (!(c->protocol & MPROTO_P_NOCONNECT)) {
		const struct mproto_macro mac[] = {
			{ "j", env->myhostname }, { "{daemon_name}", env->myhostname },
			{ "{daemon_addr}", "127.0.0.1" }, { "v", version }, { "_", underscore },
			{ "{client_addr}", env->client_addr }, { "{client_name}", env->client_name },
			{ "{client_port}", port }, { "{client_ptr}", env->client_name },
		};
		struct pbuf b = { 0 };
		pb_str(&b, env->client_name);
		pb_put(&b, strchr(env->client_addr, ':') ? "6" : "4", 1);
		pb_u16(&b, env->client_port);
		pb_str(&b, env->client_addr);
		rc = b.oom ? -1 : send_macros(c, MPROTO_ST_CONNECT, MPROTO_C_CONNECT, mac,
					      sizeof(mac) / sizeof(mac[0]));
		if (rc == 0)
			rc = command(c, MPROTO_ST_CONNECT, MPROTO_C_CONNECT, b.p, b.len,
				     MPROTO_P_NR_CONN, &scratch, &st, NULL);
		pb_free(&b);
		if (rc < 0)
			goto out;
		if (st != MPROTO_CONTINUE)
			goto dead;
	}
	if (!(c->protocol & MPROTO_P_NOHELO)) {
		/* Postfix's default helo macros are all TLS ones: none defined on plain SMTP. */
		rc = command(c, MPROTO_ST_HELO, MPROTO_C_HELO, env->helo, strlen(env->helo) + 1,
			     MPROTO_P_NR_HELO, &scratch, &st, NULL);
		if (rc < 0)
			goto out;
		if (st != MPROTO_CONTINUE)
			goto dead;
	}
	rc = 0;
	goto out;
dead:
	c->dead = true;
	c->conn_status = st;
	rc = 0;
out:
	mproto_result_free(&scratch);
	return rc;
}

int mproto_quit(struct mproto_conn *c)
{
	return send_packet(c, MPROTO_C_QUIT, NULL, 0);
}

/* Per-message state while sending one transaction. */
struct txn {
	struct mproto_conn *c;
	const struct mproto_env *env;
	const struct mproto_msg *m;
	const struct mproto_abort *ab;
	struct mproto_result *r;
	char qid[32];
	unsigned long k;              /* message number in the connection, 1-based */
};

/* Should the client abort after this stage (on purpose, for tests)? */
static bool abort_here(const struct txn *t, enum mproto_stage st)
{
	return t->ab && t->ab->stage == st && (t->ab->only_msg == 0 || t->ab->only_msg == t->k);
}

/* A domain part of "<user@dom>" into buf, or "". */
static void addr_parts(const char *angle, char *addr, size_t alen, char *dom, size_t dlen)
{
	const char *s = angle, *e;

	if (*s == '<')
		s++;
	e = strchr(s, '>');
	if (!e)
		e = s + strlen(s);
	size_t n = (size_t)(e - s) < alen - 1 ? (size_t)(e - s) : alen - 1;
	memcpy(addr, s, n);
	addr[n] = '\0';
	const char *at = strrchr(addr, '@');
	(void)snprintf(dom, dlen, "%s", at ? at + 1 : "");
}

static int txn_envelope(struct txn *t, enum mproto_status *st)
{
	struct mproto_conn *c = t->c;
	char addr[512], dom[256];

	if (!(c->protocol & MPROTO_P_NOMAIL)) {
		addr_parts(t->m->envfrom, addr, sizeof(addr), dom, sizeof(dom));
		const struct mproto_macro mac[] = {
			{ "{mail_addr}", addr }, { "{mail_host}", dom[0] ? dom : NULL },
			{ "{mail_mailer}", "smtp" },
		};
		if (send_macros(c, MPROTO_ST_MAIL, MPROTO_C_MAIL, mac, sizeof(mac) / sizeof(mac[0])) < 0 ||
		    command(c, MPROTO_ST_MAIL, MPROTO_C_MAIL, t->m->envfrom, strlen(t->m->envfrom) + 1,
			    MPROTO_P_NR_MAIL, t->r, st, NULL) < 0)
			return -1;
		if (*st != MPROTO_CONTINUE) {
			t->r->stage = MPROTO_ST_MAIL;
			return 0;
		}
	}
	if (abort_here(t, MPROTO_ST_MAIL))
		return 0;
	if (c->protocol & MPROTO_P_NORCPT)
		return 0;
	size_t refused = 0;
	enum mproto_status last = MPROTO_CONTINUE;
	for (size_t i = 0; i < t->m->nrcpt; i++) {
		addr_parts(t->m->rcpts[i], addr, sizeof(addr), dom, sizeof(dom));
		/* Postfix opens the queue file (and so knows i) once a recipient is accepted. */
		const struct mproto_macro mac[] = {
			{ "i", i > refused ? t->qid : NULL }, { "{rcpt_addr}", addr },
			{ "{rcpt_host}", dom[0] ? dom : NULL }, { "{rcpt_mailer}", "local" },
		};
		if (send_macros(c, MPROTO_ST_RCPT, MPROTO_C_RCPT, mac, sizeof(mac) / sizeof(mac[0])) < 0 ||
		    command(c, MPROTO_ST_RCPT, MPROTO_C_RCPT, t->m->rcpts[i],
			    strlen(t->m->rcpts[i]) + 1, MPROTO_P_NR_RCPT, t->r, st, NULL) < 0)
			return -1;
		if (*st == MPROTO_REJECT || *st == MPROTO_TEMPFAIL) {
			refused++;       /* only this recipient is refused */
			last = *st;
			*st = MPROTO_CONTINUE;
		} else if (*st != MPROTO_CONTINUE) {
			t->r->stage = MPROTO_ST_RCPT;
			return 0;
		}
	}
	if (t->m->nrcpt > 0 && refused == t->m->nrcpt) {
		*st = last;
		t->r->stage = MPROTO_ST_RCPT;
	}
	return 0;
}

static int txn_headers(struct txn *t, enum mproto_status *st)
{
	struct mproto_conn *c = t->c;
	const struct mproto_macro imac[] = { { "i", t->qid } };

	if (c->version >= 4 && !(c->protocol & MPROTO_P_NODATA)) {
		if (send_macros(c, MPROTO_ST_DATA, MPROTO_C_DATA, imac, 1) < 0 ||
		    command(c, MPROTO_ST_DATA, MPROTO_C_DATA, NULL, 0, MPROTO_P_NR_DATA, t->r, st,
			    NULL) < 0)
			return -1;
		if (*st != MPROTO_CONTINUE) {
			t->r->stage = MPROTO_ST_DATA;
			return 0;
		}
	}
	if (abort_here(t, MPROTO_ST_DATA))
		return 0;
	if (!(c->protocol & MPROTO_P_NOHDRS)) {
		for (size_t i = 0; i < t->m->nhdr; i++) {
			const struct mproto_header *h = &t->m->hdrs[i];
			const char *v = h->raw;
			if (!(c->protocol & MPROTO_P_HDR_LEADSPC))
				while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
					v++;
			struct pbuf b = { 0 };
			pb_str(&b, h->name);
			pb_str(&b, v);
			int rc = b.oom ? -1 : command(c, MPROTO_ST_HEADER, MPROTO_C_HEADER, b.p, b.len,
						      MPROTO_P_NR_HDR, t->r, st, NULL);
			pb_free(&b);
			if (rc < 0)
				return -1;
			if (*st != MPROTO_CONTINUE) {
				t->r->stage = MPROTO_ST_HEADER;
				return 0;
			}
			if (i == 0 && abort_here(t, MPROTO_ST_HEADER))
				return 0;
		}
	}
	if (!(c->protocol & MPROTO_P_NOEOH)) {
		if (send_macros(c, MPROTO_ST_EOH, MPROTO_C_EOH, imac, 1) < 0 ||
		    command(c, MPROTO_ST_EOH, MPROTO_C_EOH, NULL, 0, MPROTO_P_NR_EOH, t->r, st,
			    NULL) < 0)
			return -1;
		if (*st != MPROTO_CONTINUE)
			t->r->stage = MPROTO_ST_EOH;
	}
	return 0;
}

static int txn_body(struct txn *t, enum mproto_status *st)
{
	struct mproto_conn *c = t->c;
	size_t off = 0;
	bool skip = false;

	if (c->protocol & MPROTO_P_NOBODY)
		return 0;
	while (off < t->m->body_len && !skip) {
		size_t n = t->m->body_len - off;
		if (n > MPROTO_CHUNK_SIZE)
			n = MPROTO_CHUNK_SIZE;
		if (command(c, MPROTO_ST_BODY, MPROTO_C_BODY, t->m->body + off, n, MPROTO_P_NR_BODY,
			    t->r, st, &skip) < 0)
			return -1;
		off += n;
		if (*st != MPROTO_CONTINUE) {
			t->r->stage = MPROTO_ST_BODY;
			return 0;
		}
		if (abort_here(t, MPROTO_ST_BODY))   /* abort in the middle of the body */
			return 0;
	}
	return 0;
}

/* Which stage did the transaction stop at on purpose, if any? */
static bool txn_aborted(struct txn *t, enum mproto_stage st)
{
	if (!abort_here(t, st))
		return false;
	t->r->status = MPROTO_ABORTED;
	t->r->stage = st;
	return true;
}

int mproto_send_message(struct mproto_conn *c, const struct mproto_env *env,
			const struct mproto_msg *m, const struct mproto_abort *ab,
			struct mproto_result *r)
{
	struct txn t = { .c = c, .env = env, .m = m, .ab = ab, .r = r };
	enum mproto_status st = MPROTO_CONTINUE;
	double t0 = now_ms();

	t.k = ++c->msgno;
	(void)snprintf(t.qid, sizeof(t.qid), "%05lX%05lX", c->connno & 0xFFFFF, t.k & 0xFFFFF);
	r->stage = MPROTO_ST_EOM;
	if (c->dead) {
		r->status = c->conn_status;
		r->stage = MPROTO_ST_CONNECT;
		return 0;
	}
	r->stage = MPROTO_ST_NONE;
	if (txn_envelope(&t, &st) < 0)
		goto fail;
	if (st != MPROTO_CONTINUE || r->stage != MPROTO_ST_NONE)
		goto early;
	if (txn_aborted(&t, MPROTO_ST_MAIL))
		goto do_abort;
	if (txn_headers(&t, &st) < 0)
		goto fail;
	if (st != MPROTO_CONTINUE)
		goto early;
	if (txn_aborted(&t, MPROTO_ST_DATA) || txn_aborted(&t, MPROTO_ST_HEADER) ||
	    txn_aborted(&t, MPROTO_ST_EOH))
		goto do_abort;
	if (txn_body(&t, &st) < 0)
		goto fail;
	if (st != MPROTO_CONTINUE)
		goto early;
	if (txn_aborted(&t, MPROTO_ST_BODY))
		goto do_abort;
	const struct mproto_macro imac[] = { { "i", t.qid } };
	if (send_macros(c, MPROTO_ST_EOM, MPROTO_C_BODYEOB, imac, 1) < 0 ||
	    command(c, MPROTO_ST_EOM, MPROTO_C_BODYEOB, NULL, 0, 0, r, &st, NULL) < 0)
		goto fail;
	r->status = st;
	r->stage = MPROTO_ST_EOM;
	if (st == MPROTO_CONNFAIL || st == MPROTO_SHUTDOWN) {
		c->dead = true;
		c->conn_status = st;
	}
	r->elapsed_ms = now_ms() - t0;
	return 0;
early:
	/* The milter ended the message before EOM; the MTA aborts the transaction. */
	r->status = st;
	r->elapsed_ms = now_ms() - t0;
	if (st == MPROTO_CONNFAIL || st == MPROTO_SHUTDOWN) {
		c->dead = true;
		c->conn_status = st;
		return 0;
	}
	if (send_packet(c, MPROTO_C_ABORT, NULL, 0) < 0)
		goto fail;
	return 0;
do_abort:
	r->elapsed_ms = now_ms() - t0;
	if (send_packet(c, MPROTO_C_ABORT, NULL, 0) < 0)
		goto fail;
	return 0;
fail:
	r->status = MPROTO_ERROR;
	free(r->reply);
	r->reply = xstrndup(c->err, strlen(c->err));
	r->elapsed_ms = now_ms() - t0;
	return -1;
}

/* ---- messages --------------------------------------------------------------------------------- */

/* first_addr - the address of an address header: inside <...>, else the first token with @. */
static char *first_addr(const char *v)
{
	const char *lt = strchr(v, '<');
	const char *gt = lt ? strchr(lt, '>') : NULL;

	if (lt && gt)
		return xstrndup(lt + 1, (size_t)(gt - lt - 1));
	for (const char *p = v; *p;) {
		while (*p && (isspace((unsigned char)*p) || *p == ','))
			p++;
		const char *s = p;
		while (*p && !isspace((unsigned char)*p) && *p != ',')
			p++;
		if (memchr(s, '@', (size_t)(p - s)))
			return xstrndup(s, (size_t)(p - s));
	}
	return NULL;
}

static char *angle(const char *addr)
{
	size_t n = strlen(addr);
	char *s = malloc(n + 3);

	if (s) {
		s[0] = '<';
		memcpy(s + 1, addr, n);
		s[n + 1] = '>';
		s[n + 2] = '\0';
	}
	return s;
}

static const char *find_header(const struct mproto_msg *m, const char *name)
{
	for (size_t i = 0; i < m->nhdr; i++)
		if (strcasecmp(m->hdrs[i].name, name) == 0)
			return m->hdrs[i].raw;
	return NULL;
}

/* default_addr - "<addr>" from a given address, else from a header, else a fallback. */
static char *default_addr(const char *given, const struct mproto_msg *m, const char *hdr,
			  const char *fallback)
{
	if (given)
		return given[0] == '<' ? xstrndup(given, strlen(given)) : angle(given);
	const char *v = find_header(m, hdr);
	char *a = v ? first_addr(v) : NULL;
	char *r = angle(a ? a : fallback);
	free(a);
	return r;
}

/* add_header - append one "Name: value" line (without its line end) to m. */
static int add_header(struct mproto_msg *m, size_t *cap, const char *line, size_t n)
{
	const char *colon = memchr(line, ':', n);
	size_t nlen;

	if (!colon)
		return 1;
	nlen = (size_t)(colon - line);
	while (nlen > 0 && (line[nlen - 1] == ' ' || line[nlen - 1] == '\t'))
		nlen--;
	if (nlen == 0)
		return 1;
	for (size_t i = 0; i < nlen; i++)
		if ((unsigned char)line[i] <= ' ' || (unsigned char)line[i] >= 0x7f)
			return 1;   /* not a header name: the body starts here */
	if (m->nhdr == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		struct mproto_header *nh = realloc(m->hdrs, ncap * sizeof(*nh));
		if (!nh)
			return -1;
		m->hdrs = nh;
		*cap = ncap;
	}
	struct mproto_header *h = &m->hdrs[m->nhdr];
	h->name = xstrndup(line, nlen);
	h->raw = xstrndup(colon + 1, n - (size_t)(colon + 1 - line));
	if (!h->name || !h->raw) {
		free(h->name);
		free(h->raw);
		return -1;
	}
	m->nhdr++;
	return 0;
}

/* continue_header - a folded line: join it to the last header with a bare "\n". */
static int continue_header(struct mproto_msg *m, const char *line, size_t n)
{
	struct mproto_header *h = &m->hdrs[m->nhdr - 1];
	size_t old = strlen(h->raw);
	char *nr = realloc(h->raw, old + n + 2);

	if (!nr)
		return -1;
	nr[old] = '\n';
	memcpy(nr + old + 1, line, n);
	nr[old + n + 1] = '\0';
	h->raw = nr;
	return 0;
}

/* crlf_body - copy the body with every bare LF turned into CRLF. */
static int crlf_body(struct mproto_msg *m, const char *p, size_t n)
{
	size_t lfs = 0;

	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n')
			lfs++;
	m->body = malloc(n + lfs + 1);
	if (!m->body)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			m->body[o++] = '\r';
		m->body[o++] = p[i];
	}
	m->body[o] = '\0';
	m->body_len = o;
	return 0;
}

int mproto_msg_parse(const char *buf, size_t len, const char *envfrom, char *const *rcpts,
		     size_t nrcpt, struct mproto_msg *m, char *err, size_t errlen)
{
	const char *p = buf, *end = buf + len;
	size_t cap = 0;

	memset(m, 0, sizeof(*m));
	if (len >= 5 && memcmp(buf, "From ", 5) == 0) {   /* an mbox separator line */
		const char *nl = memchr(p, '\n', len);
		p = nl ? nl + 1 : end;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : end;
		size_t n = (size_t)((nl ? nl : end) - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0) {             /* the empty line: the body follows */
			p = next;
			break;
		}
		int rc;
		if ((p[0] == ' ' || p[0] == '\t') && m->nhdr > 0)
			rc = continue_header(m, p, n);
		else
			rc = add_header(m, &cap, p, n);
		if (rc < 0)
			goto oom;
		if (rc > 0)               /* not a header: the body starts at this line */
			break;
		p = next;
	}
	if (crlf_body(m, p, (size_t)(end - p)) < 0)
		goto oom;
	/* no From address gives the null sender "<>", as for a bounce */
	m->envfrom = default_addr(envfrom, m, "From", "");
	if (!m->envfrom)
		goto oom;
	size_t want = nrcpt ? nrcpt : 1;
	m->rcpts = calloc(want, sizeof(*m->rcpts));
	if (!m->rcpts)
		goto oom;
	for (size_t i = 0; i < want; i++) {
		m->rcpts[i] = default_addr(nrcpt ? rcpts[i] : NULL, m, "To", "postmaster@example.test");
		if (!m->rcpts[i])
			goto oom;
		m->nrcpt++;
	}
	return 0;
oom:
	(void)snprintf(err, errlen, "out of memory");
	mproto_msg_free(m);
	return -1;
}

void mproto_msg_free(struct mproto_msg *m)
{
	for (size_t i = 0; i < m->nhdr; i++) {
		free(m->hdrs[i].name);
		free(m->hdrs[i].raw);
	}
	free(m->hdrs);
	for (size_t i = 0; i < m->nrcpt; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	free(m->envfrom);
	free(m->body);
	memset(m, 0, sizeof(*m));
}

/* ---- results ----------------------------------------------------------------------------------- */

void mproto_result_init(struct mproto_result *r)
{
	memset(r, 0, sizeof(*r));
}

void mproto_result_free(struct mproto_result *r)
{
	for (size_t i = 0; i < r->nact; i++) {
		free(r->acts[i].name);
		free(r->acts[i].value);
	}
	free(r->acts);
	free(r->reply);
	memset(r, 0, sizeof(*r));
}

/* put_escaped - print s with controls and backslash escaped, so one action is one line. */
static void put_escaped(FILE *fp, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		switch (ch) {
		case '\n': fputs("\\n", fp); break;
		case '\r': fputs("\\r", fp); break;
		case '\t': fputs("\\t", fp); break;
		case '\\': fputs("\\\\", fp); break;
		default:
			if (ch < 0x20 || ch == 0x7f)
				fprintf(fp, "\\x%02x", ch);
			else
				fputc(ch, fp);
		}
	}
}

static void print_action(FILE *fp, const struct mproto_action *a)
{
	switch (a->type) {
	case MPROTO_R_ADDHEADER:
		fputs("add: ", fp);
		put_escaped(fp, a->name);
		fputs(": ", fp);
		put_escaped(fp, a->value);
		break;
	case MPROTO_R_INSHEADER:
		fprintf(fp, "ins: %u ", a->index);
		put_escaped(fp, a->name);
		fputs(": ", fp);
		put_escaped(fp, a->value);
		break;
	case MPROTO_R_CHGHEADER:
		fputs("chg: ", fp);
		put_escaped(fp, a->name);
		fprintf(fp, "[%u]: ", a->index);
		if (a->deleted)
			fputs("(deleted)", fp);
		else
			put_escaped(fp, a->value);
		break;
	default: {
		const char *tag = a->type == MPROTO_R_ADDRCPT ? "rcpt-add" :
				  a->type == MPROTO_R_ADDRCPT_PAR ? "rcpt-add" :
				  a->type == MPROTO_R_DELRCPT ? "rcpt-del" :
				  a->type == MPROTO_R_CHGFROM ? "from" :
				  a->type == MPROTO_R_QUARANTINE ? "quarantine" : "action";
		fprintf(fp, "%s: ", tag);
		put_escaped(fp, a->name);
		if (a->value && a->value[0]) {
			fputc(' ', fp);
			put_escaped(fp, a->value);
		}
	}
	}
	fputc('\n', fp);
}

void mproto_result_print(FILE *fp, const char *label, const struct mproto_result *r)
{
	fprintf(fp, "%s: %s\n", label, mproto_status_name(r->status));
	if (r->status != MPROTO_ERROR && r->stage != MPROTO_ST_EOM)
		fprintf(fp, "stage: %s\n", mproto_stage_name(r->stage));
	if (r->reply) {
		fputs(r->status == MPROTO_ERROR ? "error: " : "reply: ", fp);
		put_escaped(fp, r->reply);
		fputc('\n', fp);
	}
	for (size_t i = 0; i < r->nact; i++)
		print_action(fp, &r->acts[i]);
	if (r->replbody)
		fprintf(fp, "body: replaced (%zu bytes)\n", r->replbody_bytes);
}
