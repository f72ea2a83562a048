/*
 * tls.c - the TLS server side of Porter: one SSL_CTX per configuration, built in the master
 * before the workers fork (so keys readable only by root still load, and every worker of a
 * generation shares the session ticket keys), certificates picked by SNI, and the facts of an
 * established connection for plugins, the Received header and the log.
 *
 * Hardening: TLS 1.2 and newer by default, no compression, no renegotiation, server cipher
 * preference, a passphrase-protected key is refused (nobody is there to type it), a key that
 * does not match its certificate is refused, and an unexpected EOF from a client is an EOF,
 * not an error. Session resumption: tickets (keys new at each reload) and a per-worker cache.
 *
 * Interface: tls.h. Fatal: out of memory. Configuration problems are returned as messages;
 * nothing here exits. Memory: see tls.h.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "log.h"
#include "memory.h"
#include "tls.h"

#define TLS_CERTIFICATES_MAX 64        /* files in tls_cert */
#define TLS_CHAIN_MAX 16               /* intermediates per certificate */
#define TLS_VERIFY_DEPTH 5
#define TLS_SESSION_CONTEXT "porter-smtp"
#define TLS_FINGERPRINT_SIZE 96        /* "AB:" x 32, without the last ':', plus NUL */
#define TLS_CN_MAX 64                  /* ub_common_name */

static const char *const tls_verify_names[TLS_VERIFY_COUNT] = {"no", "ask", "require"};

const char *tls_verify_name(int verify)
{
    return verify >= 0 && verify < TLS_VERIFY_COUNT ? tls_verify_names[verify] : "invalid";
}

/* One certificate with its key and the intermediates sent with it. */
struct tls_certificate {
    char *file;
    X509 *leaf;
    EVP_PKEY *key;
    STACK_OF(X509) *chain;
};

struct tls_server {
    SSL_CTX *ctx;
    struct tls_certificate *certificates;
    size_t certificate_count;
    enum tls_verify verify;
    char **relay_fingerprints;  /* sorted, "AB:CD:..." */
    size_t relay_count;
};

/* ---------------------------------------------------------------- pure helpers */

/* The versions tls_protocols may name, oldest first. */
static const struct {
    const char *name;
    int version;
} tls_versions[] = {
    {"TLSv1", TLS1_VERSION},
    {"TLSv1.1", TLS1_1_VERSION},
    {"TLSv1.2", TLS1_2_VERSION},
    {"TLSv1.3", TLS1_3_VERSION},
};
#define TLS_VERSION_COUNT (sizeof tls_versions / sizeof tls_versions[0])

/* tls_words - split a list separated by spaces, tabs or commas; returns how many words there
 * are, the first limit of them copied into words (the caller frees each) */
static size_t tls_words(const char *value, char **words, size_t limit)
{
    size_t count = 0;
    const char *p = value != NULL ? value : "";
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        const char *start = p;
        while (*p != '\0' && *p != ' ' && *p != '\t' && *p != ',')
            p++;
        if (count < limit)
            words[count] = xstrndup(start, (size_t)(p - start));
        count++;
    }
    return count;
}

/* tls_protocols_parse - the version indexes named in value; NULL or why not (static) */
static const char *tls_protocols_parse(const char *value, int *lowest, int *highest)
{
    bool seen[TLS_VERSION_COUNT] = {false};
    char *list[TLS_VERSION_COUNT * 2];
    size_t words = tls_words(value, list, sizeof list / sizeof list[0]);
    size_t kept = words < sizeof list / sizeof list[0] ? words : sizeof list / sizeof list[0];
    const char *error = words > kept ? "is too long a list of TLS versions" : NULL;
    for (size_t w = 0; w < kept; w++) {
        size_t i = 0;
        while (i < TLS_VERSION_COUNT && strcasecmp(tls_versions[i].name, list[w]) != 0)
            i++;
        if (i < TLS_VERSION_COUNT)
            seen[i] = true;
        else if (error == NULL)
            error = strncasecmp(list[w], "SSL", 3) == 0
                        ? "names an SSL version, which is broken and not supported"
                        : "is not a list of TLSv1, TLSv1.1, TLSv1.2 and TLSv1.3";
        free(list[w]);
    }
    if (error != NULL)
        return error;
    if (words == 0)
        return "names no TLS version";
    int low = -1, high = -1;
    for (int i = 0; i < (int)TLS_VERSION_COUNT; i++) {
        if (seen[i]) {
            if (low < 0)
                low = i;
            high = i;
        }
    }
    for (int i = low; i <= high; i++)
        if (!seen[i])
            return "leaves a gap between versions (OpenSSL offers a contiguous range)";
    *lowest = low;
    *highest = high;
    return NULL;
}

const char *tls_protocols_check(const char *value)
{
    int low, high;
    return tls_protocols_parse(value, &low, &high);
}

int tls_protocols_range(const char *value, int *minimum, int *maximum)
{
    int low, high;
    if (tls_protocols_parse(value, &low, &high) != NULL)
        return -1;
    *minimum = tls_versions[low].version;
    *maximum = tls_versions[high].version;
    return 0;
}

/* tls_hex_value - a hex digit's value, or -1 */
static int tls_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tls_fingerprint_normalize(const char *text, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    if (out_size < TLS_FINGERPRINT_SIZE)
        return -1;
    size_t length = strlen(text);
    bool colons = length == 95;
    if (length != 64 && !colons)
        return -1;
    size_t n = 0;
    for (size_t byte = 0; byte < 32; byte++) {
        size_t at = colons ? byte * 3 : byte * 2;
        if (colons && byte > 0 && text[at - 1] != ':')
            return -1;
        int high = tls_hex_value(text[at]), low = tls_hex_value(text[at + 1]);
        if (high < 0 || low < 0)
            return -1;
        if (byte > 0)
            out[n++] = ':';
        out[n++] = hex[high];
        out[n++] = hex[low];
    }
    out[n] = '\0';
    return 0;
}

/* tls_clean_text - printable ASCII without quotes, backslashes and parentheses; others '?' */
static char *tls_clean_text(const char *text, size_t limit)
{
    size_t length = strlen(text);
    if (length > limit)
        length = limit;
    char *out = xstrndup(text, length);
    for (char *p = out; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '(' || c == ')')
            *p = '?';
    }
    return out;
}

/* ---------------------------------------------------------------- OpenSSL errors */

/* tls_openssl_errors - OpenSSL's queued errors as one line (then cleared) */
static void tls_openssl_errors(char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    unsigned long error;
    while ((error = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(error, one, sizeof one);
        int n = snprintf(out + used, size - used, "%s%s", used ? "; " : "", one);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
    ERR_clear_error();
    if (out[0] == '\0')
        snprintf(out, size, "unknown error");
}

void tls_error_describe(struct bufferevent *bev, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    unsigned long error, outcome = 0;
    while (bev != NULL && (error = bufferevent_get_openssl_error(bev)) != 0) {
        if (ERR_GET_LIB(error) == 0 && ERR_GET_REASON(error) <= SSL_ERROR_WANT_CLIENT_HELLO_CB) {
            /* libevent records SSL_get_error()'s outcome (1: SSL_ERROR_SSL, 5: _SYSCALL)
             * before the error queue: no reason of OpenSSL's, "error:00000001:lib(0)::reason(1)"
             * if printed. Keep it for when nothing better follows. */
            outcome = error;
            continue;
        }
        char one[256];
        const char *reason = ERR_reason_error_string(error);
        const char *library = ERR_lib_error_string(error);
        if (reason != NULL)
            snprintf(one, sizeof one, "%s%s%s", library ? library : "", library ? ": " : "",
                     reason);
        else
            ERR_error_string_n(error, one, sizeof one);
        int n = snprintf(out + used, size - used, "%s%s", used ? "; " : "", one);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
    if (out[0] == '\0') {
        if (outcome == SSL_ERROR_SYSCALL)
            snprintf(out, size, "the connection closed or failed during the handshake, without "
                     "a TLS alert");
        else if (outcome == SSL_ERROR_SSL)
            snprintf(out, size, "a TLS protocol error that OpenSSL gave no reason for");
        else
            snprintf(out, size, "the connection failed or closed without a TLS alert");
    }
    for (char *p = out; *p != '\0'; p++)
        if (*p == '"' || (unsigned char)*p < 0x20)
            *p = '\'';
}

/* ---------------------------------------------------------------- loading */

/* tls_no_passphrase - the PEM password callback: there is nobody to ask */
static int tls_no_passphrase(char *buffer, int size, int rwflag, void *userdata)
{
    return -1;
}

static void tls_certificate_clear(struct tls_certificate *c)
{
    free(c->file);
    X509_free(c->leaf);
    EVP_PKEY_free(c->key);
    if (c->chain != NULL)
        sk_X509_pop_free(c->chain, X509_free);
    memset(c, 0, sizeof *c);
}

/* tls_read_certificates - every certificate in a PEM file; NULL with *error (caller frees) */
static STACK_OF(X509) *tls_read_certificates(const char *path, size_t limit, char **error)
{
    ERR_clear_error();
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        *error = xasprintf("%s: cannot open: %s", path, strerror(errno));
        ERR_clear_error();
        return NULL;
    }
    STACK_OF(X509) *certificates = sk_X509_new_null();
    if (certificates == NULL)
        abort();
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, tls_no_passphrase, NULL)) != NULL) {
        if ((size_t)sk_X509_num(certificates) >= limit) {
            X509_free(x);
            *error = xasprintf("%s: more than %zu certificates", path, limit);
            sk_X509_pop_free(certificates, X509_free);
            BIO_free(bio);
            return NULL;
        }
        if (sk_X509_push(certificates, x) <= 0)
            abort();
    }
    unsigned long last = ERR_peek_last_error();
    bool clean_end =
        ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
    BIO_free(bio);
    if (sk_X509_num(certificates) == 0 || (last != 0 && !clean_end)) {
        char reason[512];
        tls_openssl_errors(reason, sizeof reason);
        if (sk_X509_num(certificates) == 0 && clean_end)
            *error = xasprintf("%s: no PEM certificate in the file", path);
        else
            *error = xasprintf("%s: cannot read the certificates: %s", path, reason);
        sk_X509_pop_free(certificates, X509_free);
        return NULL;
    }
    ERR_clear_error();
    return certificates;
}

/* tls_read_key - the first private key in a PEM file; NULL with *error (caller frees) */
static EVP_PKEY *tls_read_key(const char *path, char **error)
{
    ERR_clear_error();
    BIO *bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        *error = xasprintf("%s: cannot open: %s", path, strerror(errno));
        ERR_clear_error();
        return NULL;
    }
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase, NULL);
    BIO_free(bio);
    if (key == NULL) {
        unsigned long last = ERR_peek_last_error();
        char reason[512];
        tls_openssl_errors(reason, sizeof reason);
        if (ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)
            *error = xasprintf("%s: no PEM private key in the file", path);
        else if (ERR_GET_LIB(last) == ERR_LIB_PEM &&
                 ERR_GET_REASON(last) == PEM_R_BAD_PASSWORD_READ)
            *error = xasprintf("%s: the private key is encrypted; porter cannot ask for a "
                               "passphrase (store it without one, readable only by root)", path);
        else
            *error = xasprintf("%s: cannot read the private key: %s", path, reason);
        return NULL;
    }
    return key;
}

/* tls_warn_validity - a log line for a certificate outside its validity period */
static void tls_warn_validity(const char *path, X509 *leaf)
{
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
        log_message(PORTER_LOG_WARNING, NULL, "event=tls_warning file=%s warning=\"the "
                    "certificate has expired; clients that verify it will fail\"", path);
    else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
        log_message(PORTER_LOG_WARNING, NULL, "event=tls_warning file=%s warning=\"the "
                    "certificate is not valid yet\"", path);
}

/* tls_load_certificate - one certificate, its key and intermediates; -1 with *error */
static int tls_load_certificate(const char *certificate_path, const char *key_path,
                                STACK_OF(X509) *extra_chain, struct tls_certificate *out,
                                char **error)
{
    memset(out, 0, sizeof *out);
    STACK_OF(X509) *certificates = tls_read_certificates(certificate_path, TLS_CHAIN_MAX + 1,
                                                         error);
    if (certificates == NULL)
        return -1;
    out->file = xstrdup(certificate_path);
    out->leaf = sk_X509_shift(certificates);
    out->chain = certificates;
    for (int i = 0; extra_chain != NULL && i < sk_X509_num(extra_chain); i++) {
        X509 *x = sk_X509_value(extra_chain, i);
        if (X509_up_ref(x) != 1 || sk_X509_push(out->chain, x) <= 0)
            abort();
    }
    out->key = tls_read_key(key_path, error);
    if (out->key == NULL) {
        tls_certificate_clear(out);
        return -1;
    }
    ERR_clear_error();
    if (X509_check_private_key(out->leaf, out->key) != 1) {
        ERR_clear_error();
        *error = xasprintf("%s: the private key does not match the certificate in %s",
                           key_path, certificate_path);
        tls_certificate_clear(out);
        return -1;
    }
    tls_warn_validity(certificate_path, out->leaf);
    return 0;
}

/* tls_fingerprint_compare - qsort/bsearch order of fingerprint strings */
static int tls_fingerprint_compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* tls_load_fingerprints - tls_relay_clientcerts: one fingerprint per line, '#' comments */
static int tls_load_fingerprints(struct tls_server *t, const char *path, const char *file_name,
                                 struct config_error_list *errors)
{
    char *text = NULL, *error = NULL;
    size_t length = 0;
    if (config_read_file(path, CONFIG_FILE_MAX, &text, &length, &error) != 0) {
        config_error_add(errors, "%s: tls_relay_clientcerts: %s", file_name, error);
        free(error);
        return -1;
    }
    int failures = 0;
    int line_number = 0;
    char *next = text;
    while (next != NULL && *next != '\0') {
        char *line = next;
        char *newline = strchr(line, '\n');
        if (newline != NULL)
            *newline = '\0';
        next = newline != NULL ? newline + 1 : NULL;
        line_number++;
        line[strcspn(line, "#\r")] = '\0';
        char *word = line + strspn(line, " \t");
        size_t word_length = strcspn(word, " \t");
        char *rest = word + word_length;
        rest += strspn(rest, " \t");
        if (*word == '\0')
            continue;
        if (*rest == '\0')
            word[word_length] = '\0';
        char normalized[TLS_FINGERPRINT_SIZE];
        if (*rest != '\0' || tls_fingerprint_normalize(word, normalized, sizeof normalized) != 0) {
            char *quoted = config_quote(word);
            config_error_add(errors, "%s:%d: %s is not one SHA-256 fingerprint (64 hex digits, "
                                     "bytes optionally separated by ':')", path, line_number,
                             quoted);
            free(quoted);
            if (++failures >= CONFIG_ERRORS_MAX)
                break;
            continue;
        }
        t->relay_fingerprints = xrealloc(t->relay_fingerprints,
                                         (t->relay_count + 1) * sizeof *t->relay_fingerprints);
        t->relay_fingerprints[t->relay_count++] = xstrdup(normalized);
    }
    free(text);
    if (t->relay_count > 1)
        qsort(t->relay_fingerprints, t->relay_count, sizeof *t->relay_fingerprints,
              tls_fingerprint_compare);
    return failures > 0 ? -1 : 0;
}

/* tls_pick_certificate - the certificate callback: the client's SNI chooses the certificate */
static int tls_pick_certificate(SSL *ssl, void *arg)
{
    const struct tls_server *t = arg;
    if (t->certificate_count < 2)
        return 1;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL || name[0] == '\0')
        return 1;
    size_t length = strlen(name);
    for (size_t i = 0; i < t->certificate_count; i++) {
        const struct tls_certificate *c = &t->certificates[i];
        if (X509_check_host(c->leaf, name, length, 0, NULL) != 1)
            continue;
        if (i == 0)
            return 1; /* the default is already in place */
        if (SSL_use_cert_and_key(ssl, c->leaf, c->key, c->chain, 1) != 1) {
            ERR_clear_error();
            return 0; /* the handshake fails rather than showing the wrong name */
        }
        return 1;
    }
    return 1;
}

/* tls_verify_any - ask mode: keep the handshake going; the verdict stays in the result */
static int tls_verify_any(int preverify_ok, X509_STORE_CTX *store)
{
    return 1;
}

/* tls_context_setup - options, protocols, ciphers, resumption, client certificates */
static int tls_context_setup(struct tls_server *t, const struct porter_config *c,
                             const char *file_name, struct config_error_list *errors)
{
    SSL_CTX *ctx = t->ctx;
    int failures = 0;
    char reason[512];
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_dh_auto(ctx, 1);
    int minimum = TLS1_2_VERSION, maximum = TLS1_3_VERSION;
    if (tls_protocols_range(c->tls_protocols, &minimum, &maximum) != 0) {
        config_error_add(errors, "%s: tls_protocols: invalid", file_name);
        failures++;
    }
    if (minimum < TLS1_2_VERSION)
        SSL_CTX_set_security_level(ctx, 0); /* OpenSSL 3 refuses TLS < 1.2 at level 1 */
    if (SSL_CTX_set_min_proto_version(ctx, minimum) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, maximum) != 1) {
        tls_openssl_errors(reason, sizeof reason);
        config_error_add(errors, "%s: tls_protocols: OpenSSL refuses the range: %s", file_name,
                         reason);
        failures++;
    }
    if (c->tls_ciphers != NULL && SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) {
        tls_openssl_errors(reason, sizeof reason);
        config_error_add(errors, "%s: tls_ciphers: '%s' selects no cipher OpenSSL knows: %s",
                         file_name, c->tls_ciphers, reason);
        failures++;
    }
    if (c->tls_ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, c->tls_ciphersuites) != 1) {
        tls_openssl_errors(reason, sizeof reason);
        config_error_add(errors, "%s: tls_ciphersuites: '%s' is not a list of TLS 1.3 cipher "
                         "suites OpenSSL knows: %s", file_name, c->tls_ciphersuites, reason);
        failures++;
    }
    /* Resumption: tickets (stateless) and the per-worker cache (session ids). */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SESSION_CONTEXT,
                                   sizeof TLS_SESSION_CONTEXT - 1);
    SSL_CTX_set_timeout(ctx, (long)c->tls_session_timeout);
    if (c->tls_session_cache_size > 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, c->tls_session_cache_size);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    if (!c->tls_session_tickets) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        if (c->tls_session_cache_size == 0)
            SSL_CTX_set_num_tickets(ctx, 0);
    }
    /* Client certificates. */
    if (c->tls_ca_file != NULL) {
        char *path = config_path(c, c->tls_ca_file);
        ERR_clear_error();
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(path);
        if (SSL_CTX_load_verify_locations(ctx, path, NULL) != 1 || names == NULL) {
            tls_openssl_errors(reason, sizeof reason);
            config_error_add(errors, "%s: tls_ca_file: %s: cannot load CA certificates: %s",
                             file_name, path, reason);
            failures++;
            if (names != NULL)
                sk_X509_NAME_pop_free(names, X509_NAME_free);
        } else {
            SSL_CTX_set_client_CA_list(ctx, names);
        }
        free(path);
    }
    t->verify = (enum tls_verify)c->tls_verify_client;
    if (t->verify == TLS_VERIFY_ASK)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, tls_verify_any);
    else if (t->verify == TLS_VERIFY_REQUIRE)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT |
                                    SSL_VERIFY_CLIENT_ONCE, NULL);
    else
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
    return failures > 0 ? -1 : 0;
}

/* tls_load_certificates - tls_cert / tls_key / tls_chain into t; -1 after reporting */
static int tls_load_certificates(struct tls_server *t, const struct porter_config *c,
                                 const char *file_name, struct config_error_list *errors)
{
    char *certificate_files[TLS_CERTIFICATES_MAX] = {NULL};
    char *key_files[TLS_CERTIFICATES_MAX] = {NULL};
    size_t certificate_count = tls_words(c->tls_cert, certificate_files, TLS_CERTIFICATES_MAX);
    size_t key_count = tls_words(c->tls_key, key_files, TLS_CERTIFICATES_MAX);
    int failures = 0;
    STACK_OF(X509) *extra_chain = NULL;
    if (certificate_count == 0 || certificate_count > TLS_CERTIFICATES_MAX) {
        config_error_add(errors, "%s: tls_cert: want 1 to %d certificate files", file_name,
                         TLS_CERTIFICATES_MAX);
        failures++;
        goto done;
    }
    if (key_count != 0 && key_count != certificate_count) {
        config_error_add(errors, "%s: tls_key: %zu key files for %zu certificate files (want one "
                                 "per certificate, in the same order, or none when each "
                                 "certificate file holds its key)", file_name, key_count,
                         certificate_count);
        failures++;
        goto done;
    }
    if (c->tls_chain != NULL) {
        char *path = config_path(c, c->tls_chain);
        char *error = NULL;
        extra_chain = tls_read_certificates(path, TLS_CHAIN_MAX, &error);
        free(path);
        if (extra_chain == NULL) {
            config_error_add(errors, "%s: tls_chain: %s", file_name, error);
            free(error);
            failures++;
            goto done;
        }
    }
    t->certificates = xcalloc(certificate_count, sizeof *t->certificates);
    for (size_t i = 0; i < certificate_count; i++) {
        char *certificate_path = config_path(c, certificate_files[i]);
        char *key_path = config_path(c, key_count > 0 ? key_files[i] : certificate_files[i]);
        char *error = NULL;
        if (tls_load_certificate(certificate_path, key_path, extra_chain,
                                 &t->certificates[t->certificate_count], &error) == 0) {
            t->certificate_count++;
        } else {
            config_error_add(errors, "%s: tls_cert: %s", file_name, error);
            free(error);
            failures++;
        }
        free(certificate_path);
        free(key_path);
    }
    if (failures == 0) {
        const struct tls_certificate *first = &t->certificates[0];
        if (SSL_CTX_use_cert_and_key(t->ctx, first->leaf, first->key, first->chain, 1) != 1) {
            char reason[512];
            tls_openssl_errors(reason, sizeof reason);
            config_error_add(errors, "%s: tls_cert: %s: OpenSSL refuses the certificate: %s",
                             file_name, first->file, reason);
            failures++;
        }
        SSL_CTX_set_cert_cb(t->ctx, tls_pick_certificate, t);
    }
done:
    for (size_t i = 0; i < TLS_CERTIFICATES_MAX; i++) {
        free(certificate_files[i]);
        free(key_files[i]);
    }
    if (extra_chain != NULL)
        sk_X509_pop_free(extra_chain, X509_free);
    return failures > 0 ? -1 : 0;
}

/* tls_check_listeners - roles that cannot work without a certificate */
static int tls_check_listeners(const struct porter_config *c, const char *file_name,
                               struct config_error_list *errors)
{
    int failures = 0;
    if (c->tls_cert != NULL)
        return 0;
    for (size_t i = 0; i < c->listen_count; i++) {
        const char *role = c->listen[i].role;
        if (strcmp(role, "submissions") == 0) {
            config_error_add(errors, "%s: listen: %s submissions is implicit TLS and needs a "
                             "certificate (set tls_cert and tls_key)", file_name,
                             c->listen[i].address);
            failures++;
        } else if (strcmp(role, "submission") == 0 && c->submission_requires_tls) {
            config_error_add(errors, "%s: listen: %s submission needs STARTTLS before AUTH, "
                             "so it needs a certificate (set tls_cert and tls_key, or "
                             "submission_requires_tls = no)", file_name, c->listen[i].address);
            failures++;
        }
    }
    return failures > 0 ? -1 : 0;
}

int tls_config_load(struct porter_config *c, const char *file_name,
                    struct config_error_list *errors)
{
    int failures = tls_check_listeners(c, file_name, errors) != 0;
    bool certificate = c->tls_cert != NULL;
    if (!certificate) {
        static const struct {
            const char *name;
            size_t offset;
        } needing[] = {
            {"tls_key", offsetof(struct porter_config, tls_key)},
            {"tls_chain", offsetof(struct porter_config, tls_chain)},
            {"tls_ca_file", offsetof(struct porter_config, tls_ca_file)},
            {"tls_relay_clientcerts", offsetof(struct porter_config, tls_relay_clientcerts)},
        };
        for (size_t i = 0; i < sizeof needing / sizeof needing[0]; i++) {
            if (*(char *const *)(const void *)((const char *)c + needing[i].offset) != NULL) {
                config_error_add(errors, "%s: %s is set but tls_cert is not (TLS is off "
                                 "without a certificate)", file_name, needing[i].name);
                failures++;
            }
        }
        if (c->tls_verify_client != TLS_VERIFY_NO) {
            config_error_add(errors, "%s: tls_verify_client is %s but tls_cert is not set",
                             file_name, tls_verify_name(c->tls_verify_client));
            failures++;
        }
        return failures > 0 ? -1 : 0;
    }
    if (c->tls_verify_client == TLS_VERIFY_REQUIRE && c->tls_ca_file == NULL) {
        config_error_add(errors, "%s: tls_verify_client = require needs tls_ca_file (the CA "
                         "certificates client certificates must verify against)", file_name);
        failures++;
    }
    if (c->tls_relay_clientcerts != NULL && c->tls_verify_client == TLS_VERIFY_NO) {
        config_error_add(errors, "%s: tls_relay_clientcerts needs tls_verify_client = ask or "
                         "require (otherwise no client sends a certificate)", file_name);
        failures++;
    }
    struct tls_server *t = xcalloc(1, sizeof *t);
    ERR_clear_error();
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (t->ctx == NULL) {
        char reason[512];
        tls_openssl_errors(reason, sizeof reason);
        config_error_add(errors, "%s: tls_cert: OpenSSL cannot create a TLS context: %s",
                         file_name, reason);
        free(t);
        return -1;
    }
    if (tls_context_setup(t, c, file_name, errors) != 0)
        failures++;
    if (tls_load_certificates(t, c, file_name, errors) != 0)
        failures++;
    if (c->tls_relay_clientcerts != NULL) {
        char *path = config_path(c, c->tls_relay_clientcerts);
        if (tls_load_fingerprints(t, path, file_name, errors) != 0)
            failures++;
        free(path);
    }
    if (failures > 0) {
        tls_server_free(t);
        return -1;
    }
    tls_server_free(c->tls);
    c->tls = t;
    return 0;
}

void tls_server_free(struct tls_server *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    for (size_t i = 0; i < t->certificate_count; i++)
        tls_certificate_clear(&t->certificates[i]);
    free(t->certificates);
    for (size_t i = 0; i < t->relay_count; i++)
        free(t->relay_fingerprints[i]);
    free(t->relay_fingerprints);
    free(t);
}

enum tls_verify tls_server_verify(const struct tls_server *t)
{
    return t != NULL ? t->verify : TLS_VERIFY_NO;
}

/* ---------------------------------------------------------------- connections */

struct bufferevent *tls_accept(const struct tls_server *t, struct event_base *base, int fd,
                               const char *session_id)
{
    ERR_clear_error();
    SSL *ssl = SSL_new(t->ctx);
    if (ssl == NULL) {
        char reason[512];
        tls_openssl_errors(reason, sizeof reason);
        log_message(PORTER_LOG_ERR, session_id, "event=tls_error error=\"cannot create a TLS "
                    "connection: %s\"", reason);
        close(fd);
        return NULL;
    }
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, fd, ssl,
                                                             BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        log_message(PORTER_LOG_ERR, session_id, "event=tls_error error=\"cannot create a TLS "
                    "bufferevent\"");
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    /* A client that closes without close_notify has ended the session, not broken it. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* tls_name_text - a certificate name in OpenSSL's one-line form ("/C=../CN=..") */
static char *tls_name_text(const X509_NAME *name)
{
    char *line = X509_NAME_oneline(name, NULL, 0);
    if (line == NULL)
        return xstrdup("");
    char *copy = xstrdup(line);
    OPENSSL_free(line);
    return copy;
}

/* tls_name_common - the common name of a certificate name, cleaned; NULL without one */
static char *tls_name_common(const X509_NAME *name)
{
    int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (index < 0)
        return NULL;
    const ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
    unsigned char *utf8 = NULL;
    int length = ASN1_STRING_to_UTF8(&utf8, data);
    if (length < 0)
        return NULL;
    char *raw = xstrndup((const char *)utf8, (size_t)length);
    OPENSSL_free(utf8);
    char *clean = tls_clean_text(raw, TLS_CN_MAX);
    free(raw);
    return clean;
}

struct tls_facts *tls_facts_collect(const struct tls_server *t, struct bufferevent *bev)
{
    struct tls_facts *f = xcalloc(1, sizeof *f);
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    if (ssl == NULL)
        return f;
    f->version = xstrdup(SSL_get_version(ssl));
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    if (cipher != NULL) {
        int alg_bits = 0;
        int bits = SSL_CIPHER_get_bits(cipher, &alg_bits);
        f->cipher = xstrdup(SSL_CIPHER_get_name(cipher));
        f->bits = xasprintf("%d", bits);
        f->alg_bits = xasprintf("%d", alg_bits);
    }
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (sni != NULL && sni[0] != '\0')
        f->sni = tls_clean_text(sni, 255);
    f->resumed = xstrdup(SSL_session_reused(ssl) ? "yes" : "no");
    f->requested = t != NULL && t->verify != TLS_VERIFY_NO;
    X509 *peer = SSL_get1_peer_certificate(ssl);
    if (peer != NULL) {
        f->subject = tls_name_text(X509_get_subject_name(peer));
        f->issuer = tls_name_text(X509_get_issuer_name(peer));
        f->subject_cn = tls_name_common(X509_get_subject_name(peer));
        f->issuer_cn = tls_name_common(X509_get_issuer_name(peer));
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int digest_length = 0;
        if (X509_digest(peer, EVP_sha256(), digest, &digest_length) == 1 && digest_length == 32) {
            static const char hex[] = "0123456789ABCDEF";
            char text[TLS_FINGERPRINT_SIZE];
            size_t n = 0;
            for (unsigned i = 0; i < digest_length; i++) {
                if (i > 0)
                    text[n++] = ':';
                text[n++] = hex[digest[i] >> 4];
                text[n++] = hex[digest[i] & 15];
            }
            text[n] = '\0';
            f->fingerprint = xstrdup(text);
            const char *key = text;
            f->relay = t != NULL && t->relay_count > 0 &&
                       bsearch(&key, t->relay_fingerprints, t->relay_count,
                               sizeof *t->relay_fingerprints, tls_fingerprint_compare) != NULL;
        }
        long result = SSL_get_verify_result(ssl);
        bool verified = result == X509_V_OK && t != NULL && t->verify != TLS_VERIFY_NO;
        f->verified = xstrdup(verified ? "yes" : "no");
        if (!verified)
            f->verify_error = xstrdup(result != X509_V_OK
                                          ? X509_verify_cert_error_string(result)
                                          : "no CA to verify against");
        X509_free(peer);
    }
    ERR_clear_error();
    return f;
}

void tls_facts_free(struct tls_facts *f)
{
    if (f == NULL)
        return;
    free(f->version);
    free(f->cipher);
    free(f->bits);
    free(f->alg_bits);
    free(f->sni);
    free(f->resumed);
    free(f->subject);
    free(f->issuer);
    free(f->subject_cn);
    free(f->issuer_cn);
    free(f->fingerprint);
    free(f->verified);
    free(f->verify_error);
    free(f->proxied);
    free(f);
}

/* tls_fact_copy - a proxied fact: NULL for NULL or "" */
static char *tls_fact_copy(const char *text)
{
    return text != NULL && text[0] != '\0' ? xstrdup(text) : NULL;
}

struct tls_facts *tls_facts_proxied(const char *version, const char *cipher, const char *sni,
                                    const char *subject_cn, bool certificate, bool verified)
{
    struct tls_facts *f = xcalloc(1, sizeof *f);
    f->version = tls_fact_copy(version);
    f->cipher = tls_fact_copy(cipher);
    f->sni = tls_fact_copy(sni);
    f->subject_cn = certificate ? tls_fact_copy(subject_cn) : NULL;
    f->requested = certificate;
    f->verified = certificate ? xstrdup(verified ? "yes" : "no") : NULL;
    f->proxied = xstrdup("yes");
    return f;
}

/* The keys of tls_facts_get. */
static const struct {
    const char *key;
    size_t offset;
} tls_fact_keys[] = {
    {"version", offsetof(struct tls_facts, version)},
    {"cipher", offsetof(struct tls_facts, cipher)},
    {"bits", offsetof(struct tls_facts, bits)},
    {"alg_bits", offsetof(struct tls_facts, alg_bits)},
    {"sni", offsetof(struct tls_facts, sni)},
    {"resumed", offsetof(struct tls_facts, resumed)},
    {"subject", offsetof(struct tls_facts, subject)},
    {"issuer", offsetof(struct tls_facts, issuer)},
    {"subject_cn", offsetof(struct tls_facts, subject_cn)},
    {"issuer_cn", offsetof(struct tls_facts, issuer_cn)},
    {"fingerprint", offsetof(struct tls_facts, fingerprint)},
    {"verified", offsetof(struct tls_facts, verified)},
    {"verify_error", offsetof(struct tls_facts, verify_error)},
    {"proxied", offsetof(struct tls_facts, proxied)},
};

const char *tls_facts_get(const struct tls_facts *f, const char *key)
{
    if (f == NULL || key == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof tls_fact_keys / sizeof tls_fact_keys[0]; i++)
        if (strcmp(tls_fact_keys[i].key, key) == 0)
            return *(char *const *)(const void *)((const char *)f + tls_fact_keys[i].offset);
    return NULL;
}

char *tls_received_comment(const struct tls_facts *f)
{
    char *using = xasprintf("\r\n\t(using %s with cipher %s (%s/%s bits))",
                            f->version ? f->version : "TLS", f->cipher ? f->cipher : "unknown",
                            f->bits ? f->bits : "0", f->alg_bits ? f->alg_bits : "0");
    char *client;
    if (f->proxied != NULL)
        client = f->subject_cn != NULL
                     ? xasprintf("\r\n\t(Client CN \"%s\" (%s) at the load balancer)", f->subject_cn,
                                 f->verified && strcmp(f->verified, "yes") == 0 ? "verified OK"
                                                                                : "not verified")
                     : xstrdup("\r\n\t(TLS ended at the load balancer)");
    else if (!f->requested)
        client = xstrdup("\r\n\t(No client certificate requested)");
    else if (f->fingerprint == NULL)
        client = xstrdup("\r\n\t(Client did not present a certificate)");
    else
        client = xasprintf("\r\n\t(Client CN \"%s\", Issuer \"%s\" (%s))",
                           f->subject_cn ? f->subject_cn : "", f->issuer_cn ? f->issuer_cn : "",
                           f->verified && strcmp(f->verified, "yes") == 0 ? "verified OK"
                                                                          : "not verified");
    char *comment = xasprintf("%s%s", using, client);
    free(using);
    free(client);
    return comment;
}
