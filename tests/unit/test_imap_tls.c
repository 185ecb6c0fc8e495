/* test_imap_tls.c - the IMAP server certificate check (imap_tls_*): CA, host name, IP address,
 * expiry, purpose, intermediates, SHA-256 pins and the policy's parsing of them. Every
 * certificate is made here with GnuTLS (ECDSA P-256, fast), so the test needs no tool or file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "imap.h"

#define DAY (24 * 3600)

/* A made certificate: its key and the DER the server would send. */
struct made {
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t der;
};

struct spec {
	const char *cn;
	const char *dns;          /* subjectAltName DNS, or NULL */
	const char *ip4;          /* subjectAltName IP (4 raw bytes), or NULL */
	bool ca;
	const char *purpose;      /* extended key usage OID, or NULL for none */
	long from_s, until_s;     /* validity relative to now */
};

static unsigned serial = 1;

static void make(struct made *m, const struct spec *s, const struct made *issuer)
{
	time_t now = time(NULL);
	assert_int_equal(gnutls_x509_privkey_init(&m->key), 0);
	assert_int_equal(gnutls_x509_privkey_generate(m->key, GNUTLS_PK_ECDSA,
		GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0), 0);
	assert_int_equal(gnutls_x509_crt_init(&m->crt), 0);
	gnutls_x509_crt_t c = m->crt;
	unsigned char sn[4] = { 0, 0, (unsigned char)(serial >> 8), (unsigned char)serial };
	serial++;
	assert_int_equal(gnutls_x509_crt_set_version(c, 3), 0);
	assert_int_equal(gnutls_x509_crt_set_serial(c, sn, sizeof(sn)), 0);
	assert_int_equal(gnutls_x509_crt_set_activation_time(c, now + s->from_s), 0);
	assert_int_equal(gnutls_x509_crt_set_expiration_time(c, now + s->until_s), 0);
	assert_int_equal(gnutls_x509_crt_set_dn_by_oid(c, GNUTLS_OID_X520_COMMON_NAME, 0, s->cn,
						       (unsigned)strlen(s->cn)), 0);
	assert_int_equal(gnutls_x509_crt_set_key(c, m->key), 0);
	assert_int_equal(gnutls_x509_crt_set_basic_constraints(c, s->ca, -1), 0);
	assert_int_equal(gnutls_x509_crt_set_key_usage(c, s->ca ? GNUTLS_KEY_KEY_CERT_SIGN |
		GNUTLS_KEY_CRL_SIGN : GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
	if (s->dns)
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_DNSNAME, s->dns,
			(unsigned)strlen(s->dns), GNUTLS_FSAN_APPEND), 0);
	if (s->ip4)
		assert_int_equal(gnutls_x509_crt_set_subject_alt_name(c, GNUTLS_SAN_IPADDRESS, s->ip4,
			4, GNUTLS_FSAN_APPEND), 0);
	if (s->purpose)
		assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(c, s->purpose, 0), 0);
	unsigned char id[64];
	size_t idlen = sizeof(id);
	assert_int_equal(gnutls_x509_crt_get_key_id(c, 0, id, &idlen), 0);
	assert_int_equal(gnutls_x509_crt_set_subject_key_id(c, id, idlen), 0);
	const struct made *by = issuer ? issuer : m;
	if (issuer) {
		idlen = sizeof(id);
		assert_int_equal(gnutls_x509_crt_get_subject_key_id(issuer->crt, id, &idlen, NULL),
				 0);
		assert_int_equal(gnutls_x509_crt_set_authority_key_id(c, id, idlen), 0);
	}
	assert_int_equal(gnutls_x509_crt_sign2(c, by->crt, by->key, GNUTLS_DIG_SHA256, 0), 0);
	assert_int_equal(gnutls_x509_crt_export2(c, GNUTLS_X509_FMT_DER, &m->der), 0);
}

static void made_free(struct made *m)
{
	gnutls_free(m->der.data);
	gnutls_x509_crt_deinit(m->crt);
	gnutls_x509_privkey_deinit(m->key);
}

static struct imap_tls_cert cert_of(const struct made *m)
{
	return (struct imap_tls_cert){ m->der.data, m->der.size };
}

/* The world of the tests, made once. */
static struct made root, other_root, inter, leaf, leaf_ip, leaf_via_inter, expired, client_only,
	self_signed;
static char dir[64], ca_file[128], other_ca_file[128], empty_file[128], self_file[128];

static void write_pem(const char *path, const struct made *m)
{
	gnutls_datum_t pem = { NULL, 0 };
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	if (m) {
		assert_int_equal(gnutls_x509_crt_export2(m->crt, GNUTLS_X509_FMT_PEM, &pem), 0);
		assert_int_equal(fwrite(pem.data, 1, pem.size, f), pem.size);
		gnutls_free(pem.data);
	} else {
		fputs("no certificate here\n", f);
	}
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	static const unsigned char lo[4] = { 127, 0, 0, 1 };
	const char *srv = GNUTLS_KP_TLS_WWW_SERVER;
	make(&root, &(struct spec){ "Test Root", NULL, NULL, true, NULL, -DAY, 30 * DAY }, NULL);
	make(&other_root, &(struct spec){ "Other Root", NULL, NULL, true, NULL, -DAY, 30 * DAY },
	     NULL);
	make(&inter, &(struct spec){ "Test Intermediate", NULL, NULL, true, NULL, -DAY, 30 * DAY },
	     &root);
	make(&leaf, &(struct spec){ "imap.test", "imap.test", NULL, false, srv, -DAY, 30 * DAY },
	     &root);
	make(&leaf_ip, &(struct spec){ "localhost", "localhost", (const char *)lo, false, srv,
				       -DAY, 30 * DAY }, &root);
	make(&leaf_via_inter, &(struct spec){ "mx.test", "mx.test", NULL, false, srv, -DAY,
					      30 * DAY }, &inter);
	make(&expired, &(struct spec){ "imap.test", "imap.test", NULL, false, srv, -30 * DAY,
				       -DAY }, &root);
	make(&client_only, &(struct spec){ "imap.test", "imap.test", NULL, false,
					   GNUTLS_KP_TLS_WWW_CLIENT, -DAY, 30 * DAY }, &root);
	make(&self_signed, &(struct spec){ "imap.test", "imap.test", NULL, false, srv, -DAY,
					   30 * DAY }, NULL);
	snprintf(dir, sizeof(dir), "/tmp/amends-tls-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(ca_file, sizeof(ca_file), "%s/ca.pem", dir);
	snprintf(other_ca_file, sizeof(other_ca_file), "%s/other.pem", dir);
	snprintf(empty_file, sizeof(empty_file), "%s/empty.pem", dir);
	snprintf(self_file, sizeof(self_file), "%s/self.pem", dir);
	write_pem(self_file, &self_signed);
	write_pem(ca_file, &root);
	write_pem(other_ca_file, &other_root);
	write_pem(empty_file, NULL);
	return 0;
}

static int teardown(void **state)
{
	struct made *all[] = { &root, &other_root, &inter, &leaf, &leaf_ip, &leaf_via_inter,
			       &expired, &client_only, &self_signed };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		made_free(all[i]);
	unlink(ca_file);
	unlink(other_ca_file);
	unlink(empty_file);
	unlink(self_file);
	rmdir(dir);
	return 0;
}

/* "sha256:" + the hex SHA-256 of m's DER, upper or lower case, with or without colons */
static void pin_of(const struct made *m, bool colons, bool upper, char *out, size_t outsz)
{
	unsigned char d[32];
	assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, m->der.data, m->der.size, d), 0);
	size_t o = (size_t)snprintf(out, outsz, "sha256:");
	for (size_t i = 0; i < sizeof(d); i++) {
		int n = snprintf(out + o, outsz - o, upper ? "%s%02X" : "%s%02x",
				 colons && i ? ":" : "", d[i]);
		assert_true(n > 0 && (size_t)n < outsz - o);
		o += (size_t)n;
	}
}

enum trust { T_NONE, T_CA, T_OTHER_CA, T_SELF, T_SYSTEM };
enum pin { P_NONE, P_LEAF, P_WRONG };

struct vcase {
	const char *name;
	enum trust trust;
	enum pin pin;
	const struct made *chain[3];
	const char *host;
	const char *want;         /* NULL: accepted; else a substring of the refusal */
};

static void test_verify_table(void **state)
{
	static const struct vcase cases[] = {
		{ "CA + name", T_CA, P_NONE, { &leaf }, "imap.test", NULL },
		{ "name is case-insensitive", T_CA, P_NONE, { &leaf }, "IMAP.Test", NULL },
		{ "wrong name", T_CA, P_NONE, { &leaf }, "evil.test", "does not match the expected" },
		{ "IP in SAN", T_CA, P_NONE, { &leaf_ip }, "127.0.0.1", NULL },
		{ "other IP", T_CA, P_NONE, { &leaf_ip }, "127.0.0.2", "does not match the expected" },
		{ "DNS name in SAN", T_CA, P_NONE, { &leaf_ip }, "localhost", NULL },
		{ "CA not trusted", T_OTHER_CA, P_NONE, { &leaf }, "imap.test", "issuer is unknown" },
		{ "private CA vs system", T_SYSTEM, P_NONE, { &leaf }, "imap.test", "issuer is unknown" },
		{ "expired", T_CA, P_NONE, { &expired }, "imap.test", "expired" },
		{ "client cert only", T_CA, P_NONE, { &client_only }, "imap.test", "purpose" },
		{ "self-signed", T_CA, P_NONE, { &self_signed }, "imap.test", "NOT trusted" },
		{ "self-signed in CA file", T_SELF, P_NONE, { &self_signed }, "imap.test", NULL },
		{ "self-signed, wrong name", T_SELF, P_NONE, { &self_signed }, "x.test", "match" },
		{ "self-signed file, CA leaf", T_SELF, P_NONE, { &leaf }, "imap.test", "issuer" },
		{ "intermediate sent", T_CA, P_NONE, { &leaf_via_inter, &inter }, "mx.test", NULL },
		{ "intermediate missing", T_CA, P_NONE, { &leaf_via_inter }, "mx.test", "issuer" },
		{ "CA cert as leaf", T_CA, P_NONE, { &inter }, "imap.test", "does not match" },
		{ "pin only, self-signed", T_NONE, P_LEAF, { &self_signed }, "any.name", NULL },
		{ "pin only, wrong pin", T_NONE, P_WRONG, { &self_signed }, "imap.test",
		  "is not drafts.imap_tls_fingerprint" },
		{ "CA + pin", T_CA, P_LEAF, { &leaf }, "imap.test", NULL },
		{ "CA ok, pin wrong", T_CA, P_WRONG, { &leaf }, "imap.test", "imap_tls_fingerprint" },
		{ "pin ok, name wrong", T_CA, P_LEAF, { &leaf }, "evil.test", "does not match" },
		{ "no checks at all", T_NONE, P_NONE, { &self_signed }, "evil.test", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct vcase *c = &cases[i];
		char pin[128] = "";
		if (c->pin == P_LEAF)
			pin_of(c->chain[0], i % 2 == 0, i % 3 == 0, pin, sizeof(pin));
		else if (c->pin == P_WRONG)
			pin_of(&other_root, false, false, pin, sizeof(pin));
		const char *ca = c->trust == T_CA ? ca_file : c->trust == T_OTHER_CA ? other_ca_file
							    : c->trust == T_SELF ? self_file : NULL;
		char *err = NULL;
		struct imap_tls_policy *p = imap_tls_policy_new(c->trust != T_NONE, ca, pin, &err);
		if (!p)
			fail_msg("%s: policy: %s", c->name, err);
		assert_int_equal(imap_tls_policy_checks(p), c->trust != T_NONE || c->pin != P_NONE);
		struct imap_tls_cert chain[3];
		size_t n = 0;
		while (n < 3 && c->chain[n]) {
			chain[n] = cert_of(c->chain[n]);
			n++;
		}
		int r = imap_tls_verify(p, chain, n, c->host, &err);
		if (c->want == NULL && r != 0)
			fail_msg("%s: refused: %s", c->name, err);
		if (c->want != NULL) {
			if (r != -1)
				fail_msg("%s: accepted", c->name);
			if (!err || !strstr(err, c->want))
				fail_msg("%s: reason %s, want '%s'", c->name, err ? err : "(none)",
					 c->want);
			if (!strstr(err, c->host))
				fail_msg("%s: reason does not name the host: %s", c->name, err);
		}
		free(err);
		imap_tls_policy_free(p);
	}
}

static void test_bad_chains(void **state)
{
	char *err = NULL;
	struct imap_tls_policy *p = imap_tls_policy_new(true, ca_file, NULL, &err);
	assert_non_null(p);
	/* no certificate at all */
	assert_int_equal(imap_tls_verify(p, NULL, 0, "imap.test", &err), -1);
	assert_non_null(strstr(err, "no certificate"));
	/* garbage, and a truncated certificate */
	static const unsigned char junk[] = "\x30\x03\x02\x01";
	struct imap_tls_cert c[2] = { { junk, sizeof(junk) - 1 }, cert_of(&leaf) };
	assert_int_equal(imap_tls_verify(p, c, 1, "imap.test", &err), -1);
	assert_non_null(strstr(err, "cannot be parsed"));
	c[0] = (struct imap_tls_cert){ leaf.der.data, leaf.der.size / 2 };
	assert_int_equal(imap_tls_verify(p, c, 2, "imap.test", &err), -1);
	assert_non_null(strstr(err, "cannot be parsed"));
	/* a good leaf followed by junk: the junk is refused, not skipped */
	c[0] = cert_of(&leaf);
	c[1] = (struct imap_tls_cert){ junk, sizeof(junk) - 1 };
	assert_int_equal(imap_tls_verify(p, c, 2, "imap.test", &err), -1);
	assert_non_null(strstr(err, "certificate 2"));
	/* an overlong chain is capped, not read past */
	struct imap_tls_cert many[IMAP_TLS_MAX_CHAIN + 4];
	for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++)
		many[i] = cert_of(i == 0 ? &leaf : &root);
	assert_int_equal(imap_tls_verify(p, many, sizeof(many) / sizeof(many[0]), "imap.test", &err),
			 0);
	free(err);
	imap_tls_policy_free(p);
}

static void test_policy_parse(void **state)
{
	char good_lower[128], good_colons[128];
	pin_of(&leaf, false, false, good_lower, sizeof(good_lower));
	pin_of(&leaf, true, true, good_colons, sizeof(good_colons));
	char upper_prefix[128];
	snprintf(upper_prefix, sizeof(upper_prefix), "SHA256:%s", good_lower + 7);
	const char *good[] = { good_lower, good_colons, upper_prefix, "", NULL };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *err = NULL;
		struct imap_tls_policy *p = imap_tls_policy_new(false, NULL, good[i], &err);
		if (!p)
			fail_msg("pin '%s' refused: %s", good[i] ? good[i] : "(null)", err);
		assert_int_equal(imap_tls_policy_checks(p), good[i] && *good[i]);
		imap_tls_policy_free(p);
	}
	char short_[256], long_[256], double_colon[256], trailing[256], nonhex[256];
	snprintf(short_, sizeof(short_), "%.*s", (int)strlen(good_lower) - 1, good_lower);
	snprintf(long_, sizeof(long_), "%s0", good_lower);
	snprintf(double_colon, sizeof(double_colon), "sha256:%.2s::%s", good_lower + 7,
		 good_lower + 9);
	snprintf(trailing, sizeof(trailing), "%s:", good_colons);
	snprintf(nonhex, sizeof(nonhex), "%s", good_lower);
	nonhex[20] = 'g';
	const char *bad[] = { "sha256:", "md5:00", "sha1:0123", good_lower + 7, short_, long_,
			      double_colon, trailing, nonhex, "sha256::00", "sha256:0:0" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *err = NULL;
		struct imap_tls_policy *p = imap_tls_policy_new(true, ca_file, bad[i], &err);
		if (p)
			fail_msg("pin '%s' accepted", bad[i]);
		assert_non_null(strstr(err, "imap_tls_fingerprint"));
		free(err);
	}
	/* CA files: missing, no certificate in it */
	char missing[160];
	snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
	const char *bad_ca[] = { missing, empty_file };
	for (size_t i = 0; i < 2; i++) {
		char *err = NULL;
		assert_null(imap_tls_policy_new(true, bad_ca[i], NULL, &err));
		assert_non_null(strstr(err, bad_ca[i]));
		free(err);
	}
	/* verify off ignores the CA file (it is not even read) */
	char *err = NULL;
	struct imap_tls_policy *p = imap_tls_policy_new(false, missing, NULL, &err);
	assert_non_null(p);
	assert_false(imap_tls_policy_checks(p));
	imap_tls_policy_free(p);
	imap_tls_policy_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_table),
		cmocka_unit_test(test_bad_chains),
		cmocka_unit_test(test_policy_parse),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
