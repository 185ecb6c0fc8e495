/*
 * imap.h - IMAP APPEND of spooled drafts with the \Draft flag (libetpan), by a background worker
 *
 * The worker thread takes drafts from the spool (spool.c), oldest first, logs in and APPENDs
 * each with \Draft to the configured mailbox (created on the first refusal), and removes a
 * spool file only after the server said OK. A down or slow server only delays drafts: the
 * worker retries with exponential backoff (imap_retry_s doubling up to 5 minutes). A draft the
 * server refuses IMAP_MAX_REJECTS times in a row is moved to the spool's failed/ directory.
 * imaps:// uses TLS from the start; imap:// upgrades with STARTTLS when offered, and speaks
 * plain text only to a loopback address (never a password in clear over a network).
 * After every TLS handshake (imaps:// and STARTTLS) and before LOGIN, the server's certificate
 * chain is verified with GnuTLS (imap_tls_verify()): against the system trust store or
 * drafts.imap_ca_file, for the host name of imap_url, and/or against a drafts.imap_tls_fingerprint
 * pin. A server that fails is treated like a down server: no LOGIN is sent, the drafts stay
 * spooled, and the worker logs why and retries.
 * The password is read from a file that must not be readable by group or others.
 *
 * OWNERSHIP  imap_target_load() fills a target freed with imap_target_free().
 *            imap_worker_start() copies what it needs from the config; stop it with
 *            imap_worker_stop(), which joins the thread. The spool stays the caller's.
 */
#ifndef AMENDS_IMAP_H
#define AMENDS_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "spool.h"

#define IMAP_MAX_REJECTS 5

enum imap_tls { IMAP_TLS_STARTTLS, IMAP_TLS_IMPLICIT };

/* How the server's certificate is checked (see imap_tls_policy_new()). */
struct imap_tls_policy;

/* One certificate of a peer chain, DER, leaf first. Borrowed: not copied. */
struct imap_tls_cert {
	const unsigned char *der;
	size_t len;
};

#define IMAP_TLS_MAX_CHAIN 16
#define IMAP_TLS_PIN_LEN 32     /* SHA-256 */

struct imap_target {
	char *host;
	unsigned short port;
	enum imap_tls tls;
	char *user;
	char *password_file;
	char *mailbox;
	int timeout_s;
	int retry_s;
	struct imap_tls_policy *tls_policy; /* never NULL after imap_target_load() */
};

enum imap_result {
	IMAP_OK = 0,
	IMAP_TEMPFAIL = -1,   /* connection, TLS, login, timeout: keep it and retry */
	IMAP_REJECTED = -2,   /* the server answered NO/BAD to this message */
};

/* Parse "imap://host[:port]" / "imaps://host[:port]" ([v6] hosts too). 0 or -1 with *err. */
int imap_url_parse(const char *url, char **host, unsigned short *port, enum imap_tls *tls,
		   char **err);
/* Read the first line of a password file; refuses files readable by group or others, or owned
 * by someone other than us or root. 0 or -1 with *err. */
int imap_password_read(const char *path, char **password, char **err);
int imap_target_load(const struct config *cfg, struct imap_target *t, char **err);

/* imap_tls_policy_new - what a server certificate must satisfy.
 *   verify:  chain up to a trusted CA (ca_file, or the system store when ca_file is NULL or "")
 *            and names the host (DNS name or IP address in subjectAltName), for TLS servers;
 *   pin:     NULL/"" or "sha256:HEX" (64 hex digits, ':' between bytes allowed): the SHA-256 of
 *            the server's own (leaf) certificate must equal it. With verify it is checked in
 *            addition to the CA; without verify it replaces the CA check (a self-signed server).
 * With neither, nothing is checked (imap_tls_policy_checks() says so, for a warning).
 * Returns NULL with *err on a bad pin, or a CA file that cannot be read or holds no certificate.
 * OWNERSHIP  Free with imap_tls_policy_free(). Read-only after creation (one thread at a time
 *            may call imap_tls_verify(): GnuTLS trust lists are not documented thread-safe). */
struct imap_tls_policy *imap_tls_policy_new(bool verify, const char *ca_file, const char *pin,
					     char **err);
void imap_tls_policy_free(struct imap_tls_policy *p);
bool imap_tls_policy_checks(const struct imap_tls_policy *p);
/* imap_tls_verify - check a peer's chain (leaf first, n <= IMAP_TLS_MAX_CHAIN) for host.
 * Returns 0 when it may be trusted, -1 with *err saying why (GnuTLS's verification status). */
int imap_tls_verify(const struct imap_tls_policy *p, const struct imap_tls_cert *chain, size_t n,
		    const char *host, char **err);
void imap_target_free(struct imap_target *t);

/* One connection: connect, TLS, login. */
struct imap_conn;
struct imap_conn *imap_connect(const struct imap_target *t, char **err);
enum imap_result imap_append(struct imap_conn *c, const char *data, size_t len, char **err);
void imap_disconnect(struct imap_conn *c);

struct imap_worker;
struct imap_worker *imap_worker_start(const struct config *cfg, struct spool *sp, char **err);
/* A new draft is in the spool: try now (also resets the backoff wait). */
void imap_worker_kick(struct imap_worker *w);
/* Stop and join. Spooled drafts stay for the next start. */
void imap_worker_stop(struct imap_worker *w);

#endif
