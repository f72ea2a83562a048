/*
 * tls.h - TLS for SMTP sessions on OpenSSL 3 through libevent's bufferevent_openssl: the server
 * context built from the tls_* settings, the TLS side of a connection (STARTTLS, RFC 3207, and
 * implicit TLS, RFC 8314), and the facts of an established TLS connection.
 *
 * Interface:
 *   tls_config_load      builds c->tls from the settings when tls_cert is set, and checks the
 *                        settings and listeners that depend on TLS (called by config_load)
 *   tls_server_free      frees what tls_config_load built (config_free calls it)
 *   tls_accept           a server-side TLS bufferevent on an accepted socket
 *   tls_facts_collect    what a completed handshake established (version, cipher, SNI, client
 *                        certificate); tls_facts_get reads one fact by key for plugins
 *   tls_received_comment the "(using TLSv1.3 with cipher ...)" comment of a Received header
 *   tls_error_describe   OpenSSL's reasons for a failed handshake, for a log line
 *   tls_protocols_check / tls_protocols_range / tls_fingerprint_normalize: pure helpers
 *
 * Certificates: tls_cert lists one or more PEM files (certificate, then its intermediates);
 * tls_key the matching keys in the same order (default: the key is in the certificate file).
 * The first certificate is the default; a client's SNI picks the first certificate whose names
 * (subjectAltName, or the common name without one) match it, wildcards included.
 *
 * Errors: tls_config_load reports every problem as "FILE: SETTING: message" and returns -1;
 * a configuration error is fatal at start and refuses a reload (the caller decides). A TLS
 * peer that misbehaves fails its handshake, which the session logs. Fatal: out of memory.
 *
 * Memory: struct tls_server belongs to the configuration that holds it (config_free). A
 * bufferevent from tls_accept owns its socket and its SSL object (freeing it closes both).
 * struct tls_facts belongs to the caller (tls_facts_free); strings from tls_facts_get are
 * borrowed from the facts.
 */
#ifndef PORTER_TLS_H
#define PORTER_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct event_base;
struct porter_config;
struct config_error_list;
struct tls_server;

/* Whether and how clients are asked for a certificate (setting tls_verify_client). */
enum tls_verify {
    TLS_VERIFY_NO = 0, /* no certificate requested */
    TLS_VERIFY_ASK,    /* requested; the handshake goes on without one or with a bad one */
    TLS_VERIFY_REQUIRE, /* a certificate that verifies against tls_ca_file, or no TLS */
    TLS_VERIFY_COUNT
};
const char *tls_verify_name(int verify);

/* The facts of an established TLS connection; NULL members are absent facts. */
struct tls_facts {
    char *version;      /* "TLSv1.3" */
    char *cipher;       /* "TLS_AES_256_GCM_SHA384" */
    char *bits;         /* secret bits of the cipher, "256" */
    char *alg_bits;     /* bits of the algorithm, "256" */
    char *sni;          /* server name the client asked for (sanitised), or NULL */
    char *resumed;      /* "yes" or "no" */
    char *subject;      /* client certificate subject, "/C=../O=../CN=..", or NULL */
    char *issuer;       /* its issuer, same form */
    char *subject_cn;   /* common names, printable ASCII only (for logs and headers) */
    char *issuer_cn;
    char *fingerprint;  /* SHA-256 of the client certificate, "AB:CD:..." (95 characters) */
    char *verified;     /* "yes" when it verified against tls_ca_file, else "no" */
    char *verify_error; /* why it did not verify, or NULL */
    bool requested;     /* a client certificate was asked for */
    bool relay;         /* the fingerprint is listed in tls_relay_clientcerts */
    char *proxied;      /* "yes": TLS ended at the load balancer, which told us these facts in
                           its PROXY v2 header (no fingerprint, bits or issuer then); else NULL */
};

/*
 * tls_config_load - build c->tls (NULL when tls_cert is unset) and check what depends on it:
 * listeners with role submissions need a certificate, so does submission unless
 * submission_requires_tls is off; tls_verify_client = require needs tls_ca_file. file_name
 * (porter.conf's path) prefixes messages. 0, or -1 with every problem appended to errors.
 * Reads the certificate, key, CA and fingerprint files; relative paths are relative to the
 * configuration directory.
 */
int tls_config_load(struct porter_config *c, const char *file_name,
                    struct config_error_list *errors);
void tls_server_free(struct tls_server *t);
/* tls_server_verify - the server's tls_verify_client setting */
enum tls_verify tls_server_verify(const struct tls_server *t);

/* tls_accept - a server TLS bufferevent on socket fd (owned by it from now on, also on
 * failure), handshake started; NULL with a log line when OpenSSL cannot make one. */
struct bufferevent *tls_accept(const struct tls_server *t, struct event_base *base, int fd,
                               const char *session_id);

/* tls_facts_collect - the facts of bev's completed handshake (caller frees) */
struct tls_facts *tls_facts_collect(const struct tls_server *t, struct bufferevent *bev);
void tls_facts_free(struct tls_facts *f);
/* tls_facts_proxied - the facts a PROXY v2 header passed for a client whose TLS ended at the
 * load balancer; NULL arguments or "" are absent facts (caller frees) */
struct tls_facts *tls_facts_proxied(const char *version, const char *cipher, const char *sni,
                                    const char *subject_cn, bool certificate, bool verified);
/*
 * tls_facts_get - one fact by key: "version", "cipher", "bits", "alg_bits", "sni", "resumed",
 * "subject", "issuer", "subject_cn", "issuer_cn", "fingerprint", "verified", "verify_error",
 * "proxied".
 * NULL for an absent fact or an unknown key.
 */
const char *tls_facts_get(const struct tls_facts *f, const char *key);

/* tls_received_comment - "\r\n\t(using ... with cipher ... (256/256 bits))" plus the client
 * certificate comment, for the Received header (caller frees) */
char *tls_received_comment(const struct tls_facts *f);

/* tls_error_describe - OpenSSL's errors recorded on bev (or "unknown"), into out */
void tls_error_describe(struct bufferevent *bev, char *out, size_t size);

/* tls_protocols_check - NULL if value is a valid tls_protocols setting ("TLSv1.2 TLSv1.3":
 * names of a contiguous range of versions, separated by spaces or commas), else why not */
const char *tls_protocols_check(const char *value);
/* tls_protocols_range - the lowest and highest version of a checked value (OpenSSL's
 * TLS1_2_VERSION style numbers); -1 if value is invalid. Pure. */
int tls_protocols_range(const char *value, int *minimum, int *maximum);
/*
 * tls_fingerprint_normalize - a SHA-256 fingerprint written as 64 hex digits, with or without
 * ':' between bytes, in any case, into "AB:CD:..." (out_size >= 96). 0, or -1 if malformed.
 * Pure.
 */
int tls_fingerprint_normalize(const char *text, char *out, size_t out_size);

#endif
