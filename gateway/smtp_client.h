/*
 * smtp_client.h - an asynchronous SMTP/LMTP client on libevent, for relaying to the downstream
 * MTA (queue_smtp) and for the spool's delivery process (deliver.c).
 *
 * One struct smtp_client is one connection to one server ("host:port", "[v6]:port" or
 * "unix:/path"). It runs one operation at a time; each operation ends with exactly one call
 * of its callback (never from inside the call that started it):
 *   smtp_client_open      connect, greeting, EHLO/LHLO, STARTTLS (opportunistic or required,
 *                         then EHLO again), AUTH PLAIN (optional)
 *   smtp_client_begin     the client's identity (XCLIENT or XFORWARD when offered and
 *                         wanted), MAIL and any number of RCPT, pipelined when the server
 *                         offers PIPELINING
 *   smtp_client_recipient one more RCPT in the open transaction (proxy mode)
 *   smtp_client_data      DATA, the message (dot-stuffed on the fly: the source holds
 *                         unstuffed CRLF lines), the final dot and the final reply, or with
 *                         LMTP one final reply per accepted recipient
 *   smtp_client_reset     RSET (also proves that a pooled connection is still alive)
 * smtp_client_free sends QUIT when the connection is idle and frees everything.
 * MAIL and RCPT parameters are passed through only when the server offers the extension they
 * belong to (8BITMIME: BODY; SMTPUTF8; DSN: RET, ENVID, NOTIFY, ORCPT; SIZE).
 *
 * smtp_pool keeps idle connections to one server for reuse, bounded in idle and in total
 * connections; callers over the total wait in line. A reused connection whose last
 * transaction is still open gets RSET at the head of the next begin's pipelined group.
 *
 * Errors: a misbehaving or unreachable server is never fatal: the operation ends with a
 * reply whose code is 0 (no reply: connection failure, timeout, malformed reply; the text
 * says which) or with the server's own 4xx/5xx reply. After a code-0 reply the connection is
 * dead (smtp_client_usable is false). Out of memory is fatal (memory.h).
 *
 * Memory: the settings are copied by smtp_client_new / smtp_pool_new (the SSL_CTX is
 * referenced: the caller keeps it alive until every client using it is freed). Replies and
 * recipient records belong to the client and are valid until its next operation starts or
 * it is freed. The message source's memory and file descriptor are borrowed until the
 * data operation's callback. A callback may free its client (smtp_client_free) or start its
 * next operation.
 *
 * Logging: none here (the file is also compiled into the queue_smtp plugin, which may not
 * link core symbols); callers log the replies they get.
 */
#ifndef PORTER_SMTP_CLIENT_H
#define PORTER_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct event_base;
struct smtp_client;
struct smtp_pool;
typedef struct ssl_ctx_st SSL_CTX;

/* Limits of what a server may send us. */
#define SMTP_CLIENT_REPLY_LINE_MAX 2048   /* bytes in one reply line */
#define SMTP_CLIENT_REPLY_LINES_MAX 100   /* lines in one reply */
#define SMTP_CLIENT_XTEXT_MAX 255         /* bytes of one XCLIENT/XFORWARD value, encoded */
#define SMTP_CLIENT_RECIPIENTS_MAX 100000 /* RCPTs in one begin (more: 452 4.5.3, local) */

/* STARTTLS policy, Postfix's words. */
enum smtp_client_tls {
    SMTP_CLIENT_TLS_NONE = 0, /* never */
    SMTP_CLIENT_TLS_MAY,      /* when offered; a failed handshake is a failed connection */
    SMTP_CLIENT_TLS_ENCRYPT,  /* required: no STARTTLS offered means no delivery (4.7.5) */
    SMTP_CLIENT_TLS_VERIFY,   /* required, and the certificate must verify for the name */
    SMTP_CLIENT_TLS_COUNT
};
const char *smtp_client_tls_name(int tls);

/* How the original client's identity is passed on. */
enum smtp_client_identity {
    SMTP_CLIENT_IDENTITY_AUTO = 0, /* XFORWARD when offered, else XCLIENT when offered, else
                                      the SMTP_CLIENT_IDENTITY_HEADER header (Exim) */
    SMTP_CLIENT_IDENTITY_XFORWARD, /* only XFORWARD (logs and Received see the client) */
    SMTP_CLIENT_IDENTITY_XCLIENT,  /* only XCLIENT (policies see the client too) */
    SMTP_CLIENT_IDENTITY_NONE,
    SMTP_CLIENT_IDENTITY_COUNT
};
const char *smtp_client_identity_name(int identity);
/* The header identity=auto prepends when the server offers neither XFORWARD nor XCLIENT:
 * XFORWARD's attributes (ADDR PORT NAME HELO PROTO LOGIN IDENT) as KEY=xtext words. */
#define SMTP_CLIENT_IDENTITY_HEADER "X-Porter-Client"

/* Operations, for messages and logs. */
enum smtp_client_operation {
    SMTP_CLIENT_OP_NONE = 0,
    SMTP_CLIENT_OP_OPEN,
    SMTP_CLIENT_OP_BEGIN,
    SMTP_CLIENT_OP_RECIPIENT,
    SMTP_CLIENT_OP_DATA,
    SMTP_CLIENT_OP_RESET,
    SMTP_CLIENT_OP_COUNT
};
const char *smtp_client_operation_name(int operation);

/* Everything about how to talk to one server. Strings are copied. */
struct smtp_client_settings {
    const char *address;        /* "host:port", "[v6]:port", "unix:/path"; host is an IP
                                   literal or a name (resolved with getaddrinfo, blocking) */
    bool lmtp;                  /* LHLO and per-recipient replies after DATA */
    const char *helo_name;      /* our name in EHLO/LHLO */
    int tls;                    /* enum smtp_client_tls */
    SSL_CTX *tls_context;       /* required unless tls is NONE (smtp_client_tls_context) */
    const char *tls_server_name;/* SNI and the verified name; NULL: the address's host */
    const char *auth_user;      /* NULL: no AUTH; else AUTH PLAIN must be offered */
    const char *auth_password;
    int identity;               /* enum smtp_client_identity */
    double connect_timeout;     /* TCP connect (and TLS handshake) */
    double greeting_timeout;    /* greeting, EHLO, STARTTLS, AUTH, XCLIENT */
    double command_timeout;     /* MAIL, RCPT, RSET, XFORWARD, DATA's 354 */
    double data_timeout;        /* no progress while sending the message */
    double data_done_timeout;   /* the final reply(ies) after the dot */
};

/* One reply. code 0: no reply (the text says why; the connection is dead). */
struct smtp_reply {
    int code;
    char enhanced[16];  /* "5.1.1" or "" */
    char *text;         /* lines without code and enhanced code, joined with '\n'; never NULL */
};

/* The original client, for XCLIENT/XFORWARD. NULL fields are not sent. */
struct smtp_client_identity_info {
    const char *address;   /* IP */
    int port;              /* 0: unknown */
    const char *name;      /* verified PTR name or NULL ("unknown") */
    const char *helo;
    const char *protocol;  /* "SMTP" or "ESMTP" */
    const char *login;     /* authenticated user (XCLIENT only) */
    const char *queue_id;  /* XFORWARD IDENT */
};

/* One RCPT of the open transaction. */
struct smtp_client_recipient {
    char *address;
    struct smtp_reply rcpt;   /* RCPT's reply */
    struct smtp_reply final;  /* after DATA: the final reply that concerns this recipient
                                 (SMTP: the one reply; LMTP: its own); code 0 if not
                                 accepted at RCPT or no data was sent */
};

/* The message: up to three memory parts, then length bytes of fd from offset (pread).
 * Bytes are unstuffed CRLF lines; a missing final CRLF is added. */
struct smtp_client_message {
    const char *parts[3];
    size_t part_lengths[3];
    int fd;             /* -1: no file part */
    off_t offset;
    off_t length;
};

/* The envelope of one transaction. Parameters are "KEY=VALUE KEY" words as received. */
struct smtp_client_envelope {
    const char *mail_from;             /* without <>; "" is the null sender */
    const char *mail_params;           /* NULL or words */
    const char *const *recipients;     /* may be empty for proxy mode */
    const char *const *recipient_params; /* NULL, or one entry (NULL or words) each */
    size_t recipient_count;
    const struct smtp_client_identity_info *identity; /* NULL: nothing to pass on */
    unsigned long long size;           /* message size for SIZE=, 0: unknown */
};

/* Called once at the end of each operation. reply is the operation's decisive reply: open:
 * the failure or the last EHLO/AUTH reply; begin: MAIL's (the RCPT replies are in
 * smtp_client_recipients); recipient: that RCPT's; data: the final reply (LMTP: the first
 * accepted recipient's, see the recipients for all); reset: RSET's. */
typedef void (*smtp_client_done_fn)(struct smtp_client *c, void *arg, const struct smtp_reply *reply);

/* smtp_client_tls_context - a client SSL_CTX (TLS 1.2+); ca_file NULL: the system's CAs.
 * NULL with *error set (static text) on failure. Free with SSL_CTX_free. */
SSL_CTX *smtp_client_tls_context(const char *ca_file, const char **error);

/* smtp_client_address_valid - whether address has one of the three forms; pure */
bool smtp_client_address_valid(const char *address);

struct smtp_client *smtp_client_new(struct event_base *base, const struct smtp_client_settings *s);
/* smtp_client_free - QUIT if idle and open, then close; a pending callback is never called */
void smtp_client_free(struct smtp_client *c);

void smtp_client_open(struct smtp_client *c, smtp_client_done_fn done, void *arg);
void smtp_client_begin(struct smtp_client *c, const struct smtp_client_envelope *envelope,
                       smtp_client_done_fn done, void *arg);
void smtp_client_recipient(struct smtp_client *c, const char *address, const char *params,
                           smtp_client_done_fn done, void *arg);
void smtp_client_data(struct smtp_client *c, const struct smtp_client_message *message,
                      smtp_client_done_fn done, void *arg);
void smtp_client_reset(struct smtp_client *c, smtp_client_done_fn done, void *arg);

/* Facts about the connection. */
bool smtp_client_usable(const struct smtp_client *c);      /* open, idle and not dead */
bool smtp_client_in_transaction(const struct smtp_client *c); /* MAIL accepted, not ended */
bool smtp_client_tls_active(const struct smtp_client *c);
bool smtp_client_has_extension(const struct smtp_client *c, const char *keyword);
const char *smtp_client_address(const struct smtp_client *c);
/* the recipients of the current transaction, in RCPT order */
const struct smtp_client_recipient *smtp_client_recipients(const struct smtp_client *c,
                                                           size_t *count);
size_t smtp_client_accepted_count(const struct smtp_client *c);
/* smtp_client_transactions - transactions completed (DATA's final reply given) */
unsigned long smtp_client_transactions(const struct smtp_client *c);
/* smtp_client_reused - a begin ran on this connection before (so a failure of the next one
 * may be a connection the server closed meanwhile: see smtp_client_closed_by_server) */
bool smtp_client_reused(const struct smtp_client *c);
/* smtp_client_closed_by_server - the connection died because the server closed or reset it
 * (not a timeout or a malformed reply): on a reused connection, the one case for a retry on a
 * fresh connection; after a timeout the server is slow or hung, and a retry would hold the
 * delivery slot for a second timeout */
bool smtp_client_closed_by_server(const struct smtp_client *c);

/* smtp_reply_format - "CODE ENH text" on one line (lines joined by "; "), for logs and
 * DSNs, cut to fit; returns out */
char *smtp_reply_format(const struct smtp_reply *reply, char *out, size_t size);

/* ---- dot-stuffing (pure; exported for the unit test and the fuzzer) ---- */

/* The stuffer's memory between chunks. Start from {.line_start = true}. */
struct smtp_stuff_state {
    bool line_start;  /* the next byte starts a line */
    char last[2];     /* the last two bytes seen */
    unsigned long long bytes;
};
/* smtp_stuff_chunk - copy in to out, doubling every '.' that starts a line; out must hold
 * 2 * length bytes; returns the bytes written */
size_t smtp_stuff_chunk(struct smtp_stuff_state *state, const char *in, size_t length, char *out);
/* smtp_stuff_finish - the end of data: CRLF if the data did not end with one, then ".\r\n";
 * out must hold 5 bytes; returns the bytes written */
size_t smtp_stuff_finish(const struct smtp_stuff_state *state, char *out);

/* ---- xtext (RFC 3461) and XCLIENT/XFORWARD values ---- */

/* smtp_xtext_encode - xtext of in into out (NUL-terminated); -1 when it does not fit */
int smtp_xtext_encode(const char *in, char *out, size_t size);

/* ---- the pool ---- */

/* Called when smtp_pool_get has a ready connection (opened, or idle and reused) or failed:
 * c is NULL then and reply says why. */
typedef void (*smtp_pool_done_fn)(struct smtp_pool *pool, struct smtp_client *c, void *arg,
                                  const struct smtp_reply *reply);
struct smtp_pool_waiter;

struct smtp_pool *smtp_pool_new(struct event_base *base, const struct smtp_client_settings *s,
                                size_t max_idle, size_t max_total, double idle_timeout);
/* smtp_pool_free - close every idle connection; connections lent out must come back first
 * (smtp_pool_put) or be freed by their holders; waiting callers are never called */
void smtp_pool_free(struct smtp_pool *pool);
/* smtp_pool_get - a ready connection through done (never called from inside this call);
 * returns a waiter handle that smtp_pool_cancel can withdraw until done is called */
struct smtp_pool_waiter *smtp_pool_get(struct smtp_pool *pool, smtp_pool_done_fn done, void *arg);
void smtp_pool_cancel(struct smtp_pool *pool, struct smtp_pool_waiter *waiter);
/* smtp_pool_put - give a lent connection back (every one must come back, dead or alive):
 * kept idle when usable and there is room (it is reset when reused), else freed. The next
 * waiter, if any, gets a connection. */
void smtp_pool_put(struct smtp_pool *pool, struct smtp_client *c);
size_t smtp_pool_idle_count(const struct smtp_pool *pool);
size_t smtp_pool_total_count(const struct smtp_pool *pool);

#endif
