/*
 * imap.c - IMAP APPEND of spooled drafts with the \Draft flag (libetpan), by a background worker
 *
 * Debian 12's libcurl cannot set flags on APPEND, so this uses libetpan's mailimap. Everything
 * network-bound runs in the worker thread: the milter threads only write the spool (spool.c)
 * and kick the worker, so a dead server can never hold a message.
 *
 * libetpan does the TLS handshake (GnuTLS on Debian) but checks no certificate, so after each
 * handshake this file takes the peer chain from libetpan and verifies it itself with a GnuTLS
 * trust list, before anything secret is sent (imap_tls_*). libetpan offers no hook inside the
 * handshake, so the check comes right after it; for STARTTLS only CAPABILITY and STARTTLS have
 * been said in clear by then, as with any STARTTLS client. The check holds for the whole
 * session: GnuTLS (>= 3.5) refuses a renegotiation in which the server changes certificate.
 *
 * OWNERSHIP  See imap.h.
 * DIAGNOSTICS  The worker logs connection trouble (first failure, then every 10th) and every
 *              draft moved to failed/; functions return -1 with a malloc'd *err.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <libetpan/libetpan.h>

#include "imap.h"
#include "log.h"
#include "stats.h"
#include "util.h"

#define IMAP_MAX_DRAFT_BYTES ((size_t)16 * 1024 * 1024)
#define IMAP_MAX_BACKOFF_S 300
#define IMAP_BATCH 256

int imap_url_parse(const char *url, char **host, unsigned short *port, enum imap_tls *tls,
		   char **err)
{
	const char *p;
	if (util_ascii_casestarts(url, "imaps://")) {
		*tls = IMAP_TLS_IMPLICIT;
		*port = 993;
		p = url + 8;
	} else if (util_ascii_casestarts(url, "imap://")) {
		*tls = IMAP_TLS_STARTTLS;
		*port = 143;
		p = url + 7;
	} else {
		util_seterr(err, "imap_url must start with imap:// or imaps://");
		return -1;
	}
	const char *h = p, *he;
	if (*p == '[') {
		h = p + 1;
		he = strchr(h, ']');
		if (!he) {
			util_seterr(err, "imap_url: unterminated [ipv6] host");
			return -1;
		}
		p = he + 1;
	} else {
		he = p + strcspn(p, ":/");
		p = he;
	}
	if (he == h || he - h > 255) {
		util_seterr(err, "imap_url: missing host");
		return -1;
	}
	if (*p == ':') {
		char *end;
		long v = strtol(p + 1, &end, 10);
		if (end == p + 1 || v < 1 || v > 65535 || (*end && strcmp(end, "/") != 0)) {
			util_seterr(err, "imap_url: bad port");
			return -1;
		}
		*port = (unsigned short)v;
	} else if (*p && strcmp(p, "/") != 0) {
		util_seterr(err, "imap_url: unexpected '%s' (mailbox goes in imap_mailbox)", p);
		return -1;
	}
	*host = util_strndup(h, (size_t)(he - h));
	return *host ? 0 : -1;
}

int imap_password_read(const char *path, char **password, char **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		util_seterr(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		util_seterr(err, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		util_seterr(err, "%s: refusing a password file that group or others can access "
			    "(chmod 600)", path);
		close(fd);
		return -1;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		util_seterr(err, "%s: password file must be owned by the daemon's user or root", path);
		close(fd);
		return -1;
	}
	char buf[1025];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		util_seterr(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!buf[0]) {
		util_seterr(err, "%s: empty password file", path);
		return -1;
	}
	*password = util_strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return *password ? 0 : -1;
}

void imap_target_free(struct imap_target *t)
{
	if (!t)
		return;
	free(t->host);
	free(t->user);
	free(t->password_file);
	free(t->mailbox);
	imap_tls_policy_free(t->tls_policy);
	memset(t, 0, sizeof(*t));
}

/* ---- certificate verification ------------------------------------------------------------ */

struct imap_tls_policy {
	bool verify;
	gnutls_x509_trust_list_t trust;  /* only with verify */
	int n_cas;                       /* trust anchors loaded (0: empty system store) */
	bool pinned;
	unsigned char pin[IMAP_TLS_PIN_LEN];
};

/* "sha256:" and 64 hex digits, optionally "AB:CD:..." as openssl x509 -fingerprint prints. */
static int imap_tls_pin_parse(const char *s, unsigned char pin[IMAP_TLS_PIN_LEN], char **err)
{
	char hex[2 * IMAP_TLS_PIN_LEN + 1];
	size_t n = 0;
	if (!util_ascii_casestarts(s, "sha256:"))
		goto bad;
	for (const char *p = s + 7; *p; p++) {
		if (*p == ':' && n > 0 && n % 2 == 0 && p[1] && p[1] != ':')
			continue;
		if (!isxdigit((unsigned char)*p) || n == sizeof(hex) - 1)
			goto bad;
		hex[n++] = *p;
	}
	hex[n] = '\0';
	size_t len = IMAP_TLS_PIN_LEN;
	if (n != sizeof(hex) - 1 || gnutls_hex_decode(&(gnutls_datum_t){ (unsigned char *)hex,
				   (unsigned)n }, pin, &len) < 0 || len != IMAP_TLS_PIN_LEN)
		goto bad;
	return 0;
bad:
	util_seterr(err, "imap_tls_fingerprint: expected \"sha256:\" and 64 hex digits (as "
		    "\"openssl x509 -noout -fingerprint -sha256\" prints them)");
	return -1;
}

struct imap_tls_policy *imap_tls_policy_new(bool verify, const char *ca_file, const char *pin,
					     char **err)
{
	struct imap_tls_policy *p = calloc(1, sizeof(*p));
	if (!p) {
		util_seterr(err, "out of memory");
		return NULL;
	}
	p->verify = verify;
	if (pin && *pin) {
		if (imap_tls_pin_parse(pin, p->pin, err) < 0)
			goto fail;
		p->pinned = true;
	}
	if (!verify)
		return p;
	int r = gnutls_x509_trust_list_init(&p->trust, 0);
	if (r < 0) {
		util_seterr(err, "TLS trust list: %s", gnutls_strerror(r));
		goto fail;
	}
	if (ca_file && *ca_file) {
		/* the site's CA replaces the system store: a private server needs no public CA */
		r = gnutls_x509_trust_list_add_trust_file(p->trust, ca_file, NULL,
							  GNUTLS_X509_FMT_PEM, 0, 0);
		if (r <= 0) {
			util_seterr(err, "imap_ca_file %s: %s", ca_file,
				    r < 0 ? gnutls_strerror(r) : "no PEM certificate in it");
			goto fail;
		}
	} else {
		/* an empty store is not fatal here (imap:// on loopback needs none); a TLS
		 * server then fails verification with a hint */
		r = gnutls_x509_trust_list_add_system_trust(p->trust, 0, 0);
	}
	p->n_cas = r > 0 ? r : 0;
	return p;
fail:
	imap_tls_policy_free(p);
	return NULL;
}

void imap_tls_policy_free(struct imap_tls_policy *p)
{
	if (!p)
		return;
	if (p->trust)
		gnutls_x509_trust_list_deinit(p->trust, 1);
	free(p);
}

bool imap_tls_policy_checks(const struct imap_tls_policy *p)
{
	return p && (p->verify || p->pinned);
}

static int imap_tls_check_pin(const struct imap_tls_policy *p, const struct imap_tls_cert *leaf,
			      const char *host, char **err)
{
	unsigned char d[IMAP_TLS_PIN_LEN];
	char hex[2 * IMAP_TLS_PIN_LEN + 1];
	size_t hexlen = sizeof(hex);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, leaf->der, leaf->len, d) < 0) {
		util_seterr(err, "TLS certificate of %s: cannot hash it", host);
		return -1;
	}
	if (memcmp(d, p->pin, sizeof(d)) == 0)
		return 0;
	/* the actual value helps the admin after a legitimate renewal: it is public anyway */
	if (gnutls_hex_encode(&(gnutls_datum_t){ d, sizeof(d) }, hex, &hexlen) < 0)
		hex[0] = '\0';
	util_seterr(err, "TLS certificate of %s refused: its fingerprint sha256:%s is not "
		    "drafts.imap_tls_fingerprint", host, hex);
	return -1;
}

static void imap_tls_crts_free(gnutls_x509_crt_t *crts, size_t n)
{
	while (n > 0)
		gnutls_x509_crt_deinit(crts[--n]);
}

/* DER chain -> GnuTLS certificates (n <= IMAP_TLS_MAX_CHAIN). 0, or -1 with *err and none kept. */
static int imap_tls_crts_import(const struct imap_tls_cert *chain, size_t n,
				gnutls_x509_crt_t *crts, const char *host, char **err)
{
	for (size_t k = 0; k < n; k++) {
		gnutls_datum_t der = { (unsigned char *)chain[k].der, (unsigned)chain[k].len };
		int r = chain[k].len > UINT32_MAX ? GNUTLS_E_INVALID_REQUEST
						  : gnutls_x509_crt_init(&crts[k]);
		if (r >= 0 && (r = gnutls_x509_crt_import(crts[k], &der, GNUTLS_X509_FMT_DER)) < 0)
			gnutls_x509_crt_deinit(crts[k]);
		if (r < 0) {
			util_seterr(err, "TLS certificate %zu of %s cannot be parsed: %s", k + 1, host,
				    gnutls_strerror(r));
			imap_tls_crts_free(crts, k);
			return -1;
		}
	}
	return 0;
}

/* Chain up to a trust anchor, valid now, for a TLS server, and naming host. */
static int imap_tls_check_chain(const struct imap_tls_policy *p, const struct imap_tls_cert *chain,
				size_t n, const char *host, char **err)
{
	gnutls_x509_crt_t crts[IMAP_TLS_MAX_CHAIN];
	int rc = -1;
	if (imap_tls_crts_import(chain, n, crts, host, err) < 0)
		return -1;
	/* the host check covers IP literals too (matched against IP subjectAltNames) */
	gnutls_typed_vdata_st want[] = {
		{ .type = GNUTLS_DT_DNS_HOSTNAME, .data = (unsigned char *)host },
		{ .type = GNUTLS_DT_KEY_PURPOSE_OID, .data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER },
	};
	unsigned status = 0;
	int r = gnutls_x509_trust_list_verify_crt2(p->trust, crts, (unsigned)n, want,
					       UTIL_ARRAY_LEN(want), 0, &status, NULL);
	if (r < 0) {
		util_seterr(err, "TLS certificate of %s: verification failed: %s", host,
			    gnutls_strerror(r));
	} else if (status) {
		gnutls_datum_t why = { NULL, 0 };
		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why,
								  0) < 0)
			why.data = NULL;
		util_seterr(err, "TLS certificate of %s refused: %s%s", host,
			    why.data ? util_trim((char *)why.data) : "not trusted",
			    p->n_cas ? "" : " (no trusted CA: the system store is empty; install "
					    "ca-certificates or set drafts.imap_ca_file)");
		gnutls_free(why.data);
	} else {
		rc = 0;
	}
	imap_tls_crts_free(crts, n);
	return rc;
}

int imap_tls_verify(const struct imap_tls_policy *p, const struct imap_tls_cert *chain, size_t n,
		    const char *host, char **err)
{
	if (!imap_tls_policy_checks(p))
		return 0;
	if (!chain || n == 0 || !chain[0].der || chain[0].len == 0) {
		util_seterr(err, "TLS with %s: the server showed no certificate", host);
		return -1;
	}
	/* a real chain is 2-4 long; what lies beyond the cap cannot be needed to verify */
	if (n > IMAP_TLS_MAX_CHAIN)
		n = IMAP_TLS_MAX_CHAIN;
	if (p->pinned && imap_tls_check_pin(p, &chain[0], host, err) < 0)
		return -1;
	return p->verify ? imap_tls_check_chain(p, chain, n, host, err) : 0;
}

/* A mailbox name we can send as an IMAP astring without quoting trouble. */
static bool imap_mailbox_ok(const char *m)
{
	if (!m || !*m || strlen(m) > 200)
		return false;
	for (const char *p = m; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"' ||
		    *p == '\\' || *p == '{')
			return false;
	return true;
}

int imap_target_load(const struct config *cfg, struct imap_target *t, char **err)
{
	memset(t, 0, sizeof(*t));
	const struct config_drafts *d = &cfg->drafts;
	if (!d->imap_url || imap_url_parse(d->imap_url, &t->host, &t->port, &t->tls, err) < 0)
		goto fail;
	if (!imap_mailbox_ok(d->imap_mailbox)) {
		util_seterr(err, "imap_mailbox must be a plain ASCII mailbox name");
		goto fail;
	}
	t->user = util_strdup(d->imap_user ? d->imap_user : "");
	t->password_file = config_path(cfg, d->imap_password_file ? d->imap_password_file : "");
	t->mailbox = util_strdup(d->imap_mailbox);
	t->timeout_s = 20;
	t->retry_s = d->imap_retry_s > 0 ? d->imap_retry_s : 30;
	if (!t->user || !t->password_file || !t->mailbox) {
		util_seterr(err, "out of memory");
		goto fail;
	}
	/* a bad pin or CA file is a start-up error too, not a silent retry loop */
	char *ca = config_path(cfg, d->imap_ca_file ? d->imap_ca_file : "");
	t->tls_policy = ca ? imap_tls_policy_new(d->imap_tls_verify, ca,
						 d->imap_tls_fingerprint, err) : NULL;
	free(ca);
	if (!t->tls_policy)
		goto fail;
	/* check the password file now, so a bad mode is a start-up error, not a silent retry loop */
	char *pw = NULL;
	if (imap_password_read(t->password_file, &pw, err) < 0)
		goto fail;
	explicit_bzero(pw, strlen(pw));
	free(pw);
	return 0;
fail:
	imap_target_free(t);
	return -1;
}

/* ---- one connection ---------------------------------------------------------------------- */

struct imap_conn {
	mailimap *imap;
	const struct imap_target *t;
	bool created;     /* CREATE already tried on this connection */
};

static bool imap_is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "::1") == 0;
}

static const char *imap_server_text(mailimap *imap)
{
	return imap && imap->imap_response ? imap->imap_response : "";
}

static bool imap_is_ip_literal(const char *host)
{
	unsigned char a[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* Before the handshake: send the host name (SNI) so a server with several names (Gmail,
 * Exchange Online) shows the right certificate. RFC 6066 allows no IP literal there. */
static void imap_tls_setup(struct mailstream_ssl_context *ctx, void *data)
{
	char *host = data;
	if (ctx && !imap_is_ip_literal(host))
		mailstream_ssl_set_server_name(ctx, host);
}

/* After the handshake, before LOGIN: is this the server we meant? */
static int imap_tls_check(struct imap_conn *c, char **err)
{
	const struct imap_target *t = c->t;
	if (!imap_tls_policy_checks(t->tls_policy))
		return 0;
	/* (libetpan's GnuTLS code would return an unset pointer for a session without peer
	 * certificates; its client has certificate credentials only, so no such handshake
	 * completes and we never get here without a chain) */
	carray *chain = c->imap->imap_stream ? mailstream_get_certificate_chain(c->imap->imap_stream)
					     : NULL;
	struct imap_tls_cert certs[IMAP_TLS_MAX_CHAIN] = { { NULL, 0 } };
	size_t n = 0;
	for (unsigned i = 0; chain && i < carray_count(chain) && n < IMAP_TLS_MAX_CHAIN; i++) {
		MMAPString *s = carray_get(chain, i);
		if (s && s->str)
			certs[n++] = (struct imap_tls_cert){ (const unsigned char *)s->str, s->len };
	}
	int r = imap_tls_verify(t->tls_policy, certs, n, t->host, err);
	if (chain)
		mailstream_certificate_chain_free(chain);
	return r;
}

struct imap_conn *imap_connect(const struct imap_target *t, char **err)
{
	struct imap_conn *c = calloc(1, sizeof(*c));
	char *pw = NULL;
	if (!c)
		return NULL;
	c->t = t;
	c->imap = mailimap_new(0, NULL);
	if (!c->imap)
		goto fail;
	mailimap_set_timeout(c->imap, t->timeout_s);
	int r = t->tls == IMAP_TLS_IMPLICIT
			? mailimap_ssl_connect_with_callback(c->imap, t->host, t->port,
							     imap_tls_setup, t->host)
			: mailimap_socket_connect(c->imap, t->host, t->port);
	if (r != MAILIMAP_NO_ERROR && r != MAILIMAP_NO_ERROR_AUTHENTICATED &&
	    r != MAILIMAP_NO_ERROR_NON_AUTHENTICATED) {
		util_seterr(err, "connect %s:%u: libetpan error %d%s", t->host, t->port, r,
			    t->tls == IMAP_TLS_IMPLICIT && r == MAILIMAP_ERROR_SSL ? " (TLS handshake)"
										    : "");
		goto fail;
	}
	if (t->tls == IMAP_TLS_IMPLICIT && imap_tls_check(c, err) < 0)
		goto fail;
	if (t->tls == IMAP_TLS_STARTTLS) {
		struct mailimap_capability_data *cap = NULL;
		if (mailimap_capability(c->imap, &cap) == MAILIMAP_NO_ERROR && cap)
			mailimap_capability_data_free(cap);
		if (mailimap_has_extension(c->imap, "STARTTLS")) {
			r = mailimap_socket_starttls_with_callback(c->imap, imap_tls_setup, t->host);
			if (r != MAILIMAP_NO_ERROR) {
				util_seterr(err, "STARTTLS with %s failed (%d)", t->host, r);
				goto fail;
			}
			if (imap_tls_check(c, err) < 0)
				goto fail;
		} else if (!imap_is_loopback(t->host)) {
			util_seterr(err, "%s offers no STARTTLS: refusing to send the password in clear "
				    "(use imaps://)", t->host);
			goto fail;
		}
	}
	if (imap_password_read(t->password_file, &pw, err) < 0)
		goto fail;
	r = mailimap_login(c->imap, t->user, pw);
	explicit_bzero(pw, strlen(pw));
	free(pw);
	if (r != MAILIMAP_NO_ERROR) {
		util_seterr(err, "login as %s at %s refused (%d): %.200s", t->user, t->host, r,
			    imap_server_text(c->imap));
		goto fail;
	}
	return c;
fail:
	imap_disconnect(c);
	return NULL;
}

void imap_disconnect(struct imap_conn *c)
{
	if (!c)
		return;
	if (c->imap) {
		if (c->imap->imap_stream)
			mailimap_logout(c->imap);
		mailimap_free(c->imap);
	}
	free(c);
}

enum imap_result imap_append(struct imap_conn *c, const char *data, size_t len, char **err)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct mailimap_flag_list *fl = mailimap_flag_list_new_empty();
		struct mailimap_flag *draft = mailimap_flag_new_draft();
		if (!fl || !draft || mailimap_flag_list_add(fl, draft) != MAILIMAP_NO_ERROR) {
			if (draft)
				mailimap_flag_free(draft);
			if (fl)
				mailimap_flag_list_free(fl);
			util_seterr(err, "out of memory");
			return IMAP_TEMPFAIL;
		}
		int r = mailimap_append(c->imap, c->t->mailbox, fl, NULL, data, len);
		mailimap_flag_list_free(fl);
		if (r == MAILIMAP_NO_ERROR)
			return IMAP_OK;
		if (r != MAILIMAP_ERROR_APPEND) {
			util_seterr(err, "APPEND to %s: connection error %d", c->t->host, r);
			return IMAP_TEMPFAIL;
		}
		util_seterr(err, "APPEND to %s refused: %.200s", c->t->mailbox,
			    imap_server_text(c->imap));
		/* most often the mailbox does not exist yet ([TRYCREATE]): create it once */
		if (c->created)
			break;
		c->created = true;
		mailimap_create(c->imap, c->t->mailbox);
	}
	return IMAP_REJECTED;
}

/* ---- the worker -------------------------------------------------------------------------- */

struct imap_reject {
	char name[256];
	int count;
};

struct imap_worker {
	struct imap_target t;
	struct spool *sp;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, kicked;
	unsigned failures;              /* consecutive connection failures */
	struct imap_reject rejects[16]; /* recent refusals per draft */
};

/* Count a refusal for name; returns the new count. */
static int imap_reject_count(struct imap_worker *w, const char *name)
{
	size_t free_slot = 0, oldest = 0;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(w->rejects); i++) {
		if (strcmp(w->rejects[i].name, name) == 0)
			return ++w->rejects[i].count;
		if (!w->rejects[i].name[0])
			free_slot = i;
		if (w->rejects[i].count < w->rejects[oldest].count)
			oldest = i;
	}
	size_t k = w->rejects[free_slot].name[0] ? oldest : free_slot;
	/* a spool entry is one directory entry, at most NAME_MAX (255) bytes: it fits */
	(void)snprintf(w->rejects[k].name, sizeof(w->rejects[k].name), "%s", name);
	w->rejects[k].count = 1;
	return 1;
}

static void imap_reject_forget(struct imap_worker *w, const char *name)
{
	for (size_t i = 0; i < UTIL_ARRAY_LEN(w->rejects); i++)
		if (strcmp(w->rejects[i].name, name) == 0)
			w->rejects[i] = (struct imap_reject){ "", 0 };
}

/* Send what is spooled. Returns -1 when the server is down, 0 when the spool is empty, 1 when
 * another full batch may be waiting (go again now), 2 when refused drafts wait for a retry. */
static int imap_worker_pass(struct imap_worker *w)
{
	struct spool_entry *v = NULL;
	size_t n = 0;
	if (spool_list(w->sp, 0, IMAP_BATCH, &v, &n) < 0) {
		log_warn_errno("imap: cannot list spool %s", spool_path(w->sp));
		return -1;
	}
	if (n == 0)
		return 0;
	char *err = NULL;
	struct imap_conn *c = imap_connect(&w->t, &err);
	if (!c) {
		if (w->failures % 10 == 0)
			log_warn("imap: %s; %zu draft(s) stay spooled, retrying", err, n);
		free(err);
		spool_list_free(v, n);
		return -1;
	}
	int left = 0;
	for (size_t i = 0; i < n; i++) {
		char *data = NULL;
		size_t len = 0;
		if (spool_read(w->sp, &v[i], IMAP_MAX_DRAFT_BYTES, &data, &len) < 0) {
			if (errno != ENOENT)
				log_warn_errno("imap: cannot read spooled draft %s", v[i].name);
			continue;
		}
		enum imap_result r = imap_append(c, data, len, &err);
		free(data);
		if (r == IMAP_OK) {
			if (spool_done(w->sp, v[i].name) < 0)
				log_warn_errno("imap: appended %s but cannot remove it", v[i].name);
			else
				log_info("imap: draft %s appended to %s", v[i].name, w->t.mailbox);
			stats_inc(STATS_DRAFTS_WRITTEN);
			imap_reject_forget(w, v[i].name);
		} else if (r == IMAP_REJECTED &&
			   imap_reject_count(w, v[i].name) >= IMAP_MAX_REJECTS) {
			log_err("imap: %s; draft %s moved to %s/failed", err, v[i].name,
				spool_path(w->sp));
			stats_inc(STATS_DRAFTS_FAILED);
			if (spool_fail(w->sp, v[i].name) < 0)
				log_err_errno("imap: cannot move %s to failed/", v[i].name);
			imap_reject_forget(w, v[i].name);
		} else {
			log_warn("imap: %s; draft %s stays spooled", err, v[i].name);
			left++;
			if (r == IMAP_TEMPFAIL) {
				left = -1;
				break;
			}
		}
		free(err);
		err = NULL;
	}
	free(err);
	imap_disconnect(c);
	spool_list_free(v, n);
	if (left < 0)
		return -1;
	return n == IMAP_BATCH ? 1 : (left > 0 ? 2 : 0);
}

static void *imap_worker_main(void *arg)
{
	struct imap_worker *w = arg;
	/* a server that drops the connection must give EPIPE here, not kill the daemon */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		w->kicked = false;
		pthread_mutex_unlock(&w->mu);
		int r = imap_worker_pass(w);
		pthread_mutex_lock(&w->mu);
		long wait_s;
		if (r < 0) {
			w->failures++;
			wait_s = w->t.retry_s;
			for (unsigned i = 1; i < w->failures && wait_s < IMAP_MAX_BACKOFF_S; i++)
				wait_s *= 2;
			if (wait_s > IMAP_MAX_BACKOFF_S)
				wait_s = IMAP_MAX_BACKOFF_S;
		} else {
			if (w->failures)
				log_info("imap: server %s reachable again", w->t.host);
			w->failures = 0;
			/* refused drafts wait a retry interval; otherwise sleep until kicked (the
			 * hourly pass also picks up drafts another process spooled) */
			wait_s = r == 1 ? 0 : r == 2 ? w->t.retry_s : 3600;
		}
		struct timespec until = util_deadline_ms(wait_s * 1000LL);
		while (!w->stop && !w->kicked && wait_s > 0)
			if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
				break;
		/* a kick during backoff is a new draft, not a sign the server is back: keep
		 * the backoff length, but do try once now */
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

struct imap_worker *imap_worker_start(const struct config *cfg, struct spool *sp, char **err)
{
	struct imap_worker *w = calloc(1, sizeof(*w));
	if (!w) {
		util_seterr(err, "out of memory");
		return NULL;
	}
	if (imap_target_load(cfg, &w->t, err) < 0) {
		free(w);
		return NULL;
	}
	if (!imap_tls_policy_checks(w->t.tls_policy) &&
	    (w->t.tls == IMAP_TLS_IMPLICIT || !imap_is_loopback(w->t.host)))
		log_warn("imap: drafts.imap_tls_verify is false and no imap_tls_fingerprint is set: "
			 "the certificate of %s is not checked, a man in the middle can read the "
			 "IMAP password and the drafts", w->t.host);
	w->sp = sp;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	/* libetpan and TLS need more than the milter's small stacks */
	pthread_attr_setstacksize(&attr, (size_t)1024 * 1024);
	int rc = pthread_create(&w->thread, &attr, imap_worker_main, w);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		util_seterr(err, "cannot start the IMAP worker: %s", strerror(rc));
		imap_target_free(&w->t);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w);
		return NULL;
	}
	return w;
}

void imap_worker_kick(struct imap_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->kicked = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void imap_worker_stop(struct imap_worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	imap_target_free(&w->t);
	free(w);
}
