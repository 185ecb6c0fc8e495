/*
 * milterproto.h - the MTA side of the milter wire protocol, written from the protocol itself
 *
 * An independent client for testing milters: it does not use libmilter, so a bug shared by
 * libmilter and a test built on it cannot hide. It speaks what Postfix 3.x speaks: option
 * negotiation (protocol 2 or 6), the macros Postfix sends at each stage, connect/helo/mail/
 * rcpt/data/header/eoh/body (65535-byte chunks)/eom, abort and quit, honouring the steps and
 * no-reply flags the milter asks for. It records every modification the milter sends at
 * end of message and the final reply, so a test can assert exactly what changed.
 *
 * A packet is a 4-byte big-endian length (counting the command byte), a command byte and
 * data; strings are NUL-terminated. Every read and write waits at most conn->timeout_ms.
 *
 * OWNERSHIP  mproto_msg_parse() fills a message owning its strings: mproto_msg_free().
 *            mproto_result_* owns the actions it records: mproto_result_free().
 *            mproto_conn_open() returns a connection: mproto_conn_close().
 * DIAGNOSTICS  Functions return 0 or -1; on -1 conn->err (or the err buffer passed in) says why
 *              ("read timeout after 30000 ms at eom", "unexpected reply 'x' to mail").
 *              Nothing here prints or exits.
 */
#ifndef AMENDS_MILTERPROTO_H
#define AMENDS_MILTERPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>

/* Commands (MTA -> milter). */
#define MPROTO_C_ABORT   'A'
#define MPROTO_C_BODY    'B'
#define MPROTO_C_CONNECT 'C'
#define MPROTO_C_MACRO   'D'
#define MPROTO_C_BODYEOB 'E'
#define MPROTO_C_HELO    'H'
#define MPROTO_C_QUIT_NC 'K'
#define MPROTO_C_HEADER  'L'
#define MPROTO_C_MAIL    'M'
#define MPROTO_C_EOH     'N'
#define MPROTO_C_OPTNEG  'O'
#define MPROTO_C_QUIT    'Q'
#define MPROTO_C_RCPT    'R'
#define MPROTO_C_DATA    'T'
#define MPROTO_C_UNKNOWN 'U'

/* Replies (milter -> MTA). */
#define MPROTO_R_ADDRCPT     '+'
#define MPROTO_R_DELRCPT     '-'
#define MPROTO_R_ADDRCPT_PAR '2'
#define MPROTO_R_SHUTDOWN    '4'
#define MPROTO_R_ACCEPT      'a'
#define MPROTO_R_REPLBODY    'b'
#define MPROTO_R_CONTINUE    'c'
#define MPROTO_R_DISCARD     'd'
#define MPROTO_R_CHGFROM     'e'
#define MPROTO_R_CONN_FAIL   'f'
#define MPROTO_R_ADDHEADER   'h'
#define MPROTO_R_INSHEADER   'i'
#define MPROTO_R_SETSYMLIST  'l'
#define MPROTO_R_CHGHEADER   'm'
#define MPROTO_R_OPTNEG      'O'
#define MPROTO_R_PROGRESS    'p'
#define MPROTO_R_QUARANTINE  'q'
#define MPROTO_R_REJECT      'r'
#define MPROTO_R_SKIP        's'
#define MPROTO_R_TEMPFAIL    't'
#define MPROTO_R_REPLYCODE   'y'

/* Actions the MTA allows (SMFIF_*). */
#define MPROTO_ACT_V2  0x0000003FU
#define MPROTO_ACT_V6  0x000001FFU

/* Protocol steps (SMFIP_*). */
#define MPROTO_P_NOCONNECT  0x00000001U
#define MPROTO_P_NOHELO     0x00000002U
#define MPROTO_P_NOMAIL     0x00000004U
#define MPROTO_P_NORCPT     0x00000008U
#define MPROTO_P_NOBODY     0x00000010U
#define MPROTO_P_NOHDRS     0x00000020U
#define MPROTO_P_NOEOH      0x00000040U
#define MPROTO_P_NR_HDR     0x00000080U
#define MPROTO_P_NOUNKNOWN  0x00000100U
#define MPROTO_P_NODATA     0x00000200U
#define MPROTO_P_SKIP       0x00000400U
#define MPROTO_P_RCPT_REJ   0x00000800U
#define MPROTO_P_NR_CONN    0x00001000U
#define MPROTO_P_NR_HELO    0x00002000U
#define MPROTO_P_NR_MAIL    0x00004000U
#define MPROTO_P_NR_RCPT    0x00008000U
#define MPROTO_P_NR_DATA    0x00010000U
#define MPROTO_P_NR_UNKN    0x00020000U
#define MPROTO_P_NR_EOH     0x00040000U
#define MPROTO_P_NR_BODY    0x00080000U
#define MPROTO_P_HDR_LEADSPC 0x00100000U
#define MPROTO_P_V2   0x0000007FU
#define MPROTO_P_V6   0x001FFFFFU

#define MPROTO_CHUNK_SIZE 65535U
/* The largest reply packet we accept (a REPLBODY chunk may be up to 1 MiB when negotiated). */
#define MPROTO_MAX_PACKET (16U * 1024U * 1024U)

/* Stages, in protocol order; the macro-list indexes of SMFIR_OPTNEG follow SMFIM_*. */
enum mproto_stage {
	MPROTO_ST_NONE = 0,
	MPROTO_ST_OPTNEG,
	MPROTO_ST_CONNECT,
	MPROTO_ST_HELO,
	MPROTO_ST_MAIL,
	MPROTO_ST_RCPT,
	MPROTO_ST_DATA,
	MPROTO_ST_HEADER,
	MPROTO_ST_EOH,
	MPROTO_ST_BODY,
	MPROTO_ST_EOM,
	MPROTO_ST_COUNT
};

enum mproto_status {
	MPROTO_CONTINUE = 0,
	MPROTO_ACCEPT,
	MPROTO_REJECT,
	MPROTO_TEMPFAIL,
	MPROTO_DISCARD,
	MPROTO_CONNFAIL,
	MPROTO_SHUTDOWN,
	MPROTO_ABORTED,   /* the client aborted the message on purpose (--abort-at) */
	MPROTO_ERROR      /* I/O or protocol error: see the result's reply text */
};

/* One header of a message as read from the file. name is trimmed; raw is everything after
 * the colon, folded lines joined with "\n" (no CR), as Postfix keeps it. */
struct mproto_header {
	char *name;
	char *raw;
};

struct mproto_msg {
	char *envfrom;                /* "<addr>" */
	char **rcpts;                 /* "<addr>" each */
	size_t nrcpt;
	struct mproto_header *hdrs;
	size_t nhdr;
	char *body;                   /* CRLF line ends, as SMTP carries it */
	size_t body_len;
};

/* A modification the milter asked for (SMFIR_ADDHEADER, _CHGHEADER, ...). */
struct mproto_action {
	char type;                    /* the SMFIR_ code */
	uint32_t index;               /* chg/ins only */
	char *name;                   /* header name, or address, or reason */
	char *value;                  /* header value, or ESMTP args; may be NULL */
	size_t value_len;
	bool deleted;                 /* chg with an empty value: the header goes */
};

struct mproto_result {
	enum mproto_status status;
	enum mproto_stage stage;      /* where the final answer came (MPROTO_ST_EOM normally) */
	char *reply;                  /* SMFIR_REPLYCODE text, or the error text */
	struct mproto_action *acts;
	size_t nact, capact;
	size_t replbody_bytes;        /* total bytes of SMFIR_REPLBODY chunks */
	bool replbody;
	double elapsed_ms;            /* MAIL to the final reply */
};

/* Macros of one stage: pairs of name/value; value NULL = undefined, not sent. */
struct mproto_macro {
	const char *name;
	const char *value;
};

struct mproto_conn {
	int fd;
	int timeout_ms;
	uint32_t version;             /* sent; after negotiation the milter's */
	uint32_t actions;             /* offered; after negotiation the milter's */
	uint32_t protocol;            /* offered; after negotiation the milter's */
	char *symlist[MPROTO_ST_COUNT]; /* macros the milter asked for, per stage, or NULL */
	bool dead;                    /* the milter accepted/rejected the whole connection */
	enum mproto_status conn_status;
	unsigned long msgno;          /* for queue ids */
	unsigned long connno;
	char err[256];
};

/* What the client pretends to be. */
struct mproto_env {
	const char *client_name;      /* "mail.example.net" */
	const char *client_addr;      /* "192.0.2.10" */
	unsigned short client_port;
	const char *helo;
	const char *myhostname;       /* j, {daemon_name} */
};

/* Abort a message on purpose after a stage (tests of xxfi_abort). */
struct mproto_abort {
	enum mproto_stage stage;      /* MPROTO_ST_NONE = never */
	unsigned long only_msg;       /* 0 = every message; else the k-th (1-based) of a connection */
};

const char *mproto_stage_name(enum mproto_stage st);
const char *mproto_status_name(enum mproto_status s);
int mproto_stage_parse(const char *s, enum mproto_stage *out);

/* mproto_conn_open - connect to "unix:/path", "local:/path", "/path", "inet:port@host",
 * "inet6:port@host" or "inet:host:port". Returns 0, or -1 with c->err set. */
int mproto_conn_open(struct mproto_conn *c, const char *spec, int timeout_ms);
void mproto_conn_close(struct mproto_conn *c);

/* mproto_negotiate - SMFIC_OPTNEG with version 2 or 6 and everything that version allows;
 * stores the milter's answer in c->version/actions/protocol/symlist. */
int mproto_negotiate(struct mproto_conn *c, uint32_t version);

/* mproto_connect_helo - the connection-level stages. Sets c->dead when the milter answered
 * for the whole connection (its status is in c->conn_status). */
int mproto_connect_helo(struct mproto_conn *c, const struct mproto_env *env);

/* mproto_send_message - one transaction MAIL..EOM; the result says what the milter did.
 * Returns 0 when the exchange completed (whatever the milter answered), -1 on I/O or protocol
 * error (result->status = MPROTO_ERROR, reply = the reason; the connection is unusable). */
int mproto_send_message(struct mproto_conn *c, const struct mproto_env *env,
			const struct mproto_msg *m, const struct mproto_abort *ab,
			struct mproto_result *r);

/* mproto_quit - SMFIC_QUIT; no reply is expected. */
int mproto_quit(struct mproto_conn *c);

/* mproto_msg_parse - split an RFC 5322 message (LF or CRLF) into headers and a CRLF body.
 * envfrom/rcpt default to the From:/To: addresses when NULL. Returns 0 or -1 (err). */
int mproto_msg_parse(const char *buf, size_t len, const char *envfrom, char *const *rcpts,
		     size_t nrcpt, struct mproto_msg *m, char *err, size_t errlen);
void mproto_msg_free(struct mproto_msg *m);

void mproto_result_init(struct mproto_result *r);
void mproto_result_free(struct mproto_result *r);
/* mproto_result_print - the stable transcript: "label: STATUS" then one line per action. */
void mproto_result_print(FILE *fp, const char *label, const struct mproto_result *r);

#endif
