/*
 * dkim_sign - sign the mail of authenticated users and relay clients with DKIM (RFC 6376):
 * RSA-SHA256 or Ed25519-SHA256 (RFC 8463), relaxed/relaxed canonicalization, with libopendkim.
 *
 * Hook: data_post (put it after every plugin that edits headers or the body). The signing
 * domain is the From header's domain, or the nearest parent domain of it that the key table
 * lists. Every key of that domain signs (an RSA and an Ed25519 key give two signatures, as RFC
 * 8463 suggests); each DKIM-Signature goes on top of the message (porter_header_insert at 0).
 * The work runs on the worker's thread pool: the header fields, then the body read from the
 * spool file with pread in 64 KiB pieces, are fed once to one libopendkim handle per key.
 * Mail from other clients, or from a domain without a key, is left alone.
 *
 * Key table (keytable=FILE, required): one key per line, '#' comments,
 *     DOMAIN SELECTOR KEYFILE [rsa-sha256|ed25519-sha256]
 * KEYFILE is a PEM private key (PKCS#1 or PKCS#8; a relative path is in the key table's
 * directory), read and checked at start; its type gives the algorithm (RSA: rsa-sha256,
 * Ed25519: ed25519-sha256); a fourth word, if given, must agree with it.
 *
 * Signed headers: headers=LIST (colon-separated names; default RFC 6376 5.4.1's list; From is
 * always signed), oversign=LIST (names signed once more than present, so none can be added
 * later; default "from"; they are added to headers= if missing there, since libopendkim
 * signs an oversigned name that is not in its list as absent even when it is present).
 * A signing failure (a local problem) answers 451 4.7.5 unless on_error=accept (then the mail
 * goes unsigned, with a log line).
 *
 * Arguments: keytable=FILE, headers=LIST, oversign=LIST, on_error=denysoft|accept.
 *
 * Known library bug: libopendkim 2.11.0~beta2 (Debian 12) does not free an Ed25519
 * signature's key objects in dkim_free (about 900 bytes per signature; fixed upstream by
 * OpenDKIM pull request 321). RSA keys do not leak. Until the fix reaches the distribution,
 * a site that signs a lot with Ed25519 should let workers be replaced now and then (reload).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <porter/plugin.h>

#include "dkim_common.h"

#define SIGNER_KEYS_MAX 64          /* lines in the key table */
#define SIGNER_KEYS_PER_DOMAIN 4    /* signatures on one message */
#define SIGNER_KEY_FILE_MAX 65536
#define SIGNER_HEADERS_MAX 64

#define SIGNER_DEFAULT_HEADERS                                                                  \
    "from:reply-to:subject:date:to:cc:resent-date:resent-from:resent-to:resent-cc:in-reply-to:" \
    "references:list-id:list-help:list-unsubscribe:list-subscribe:list-post:list-owner:"       \
    "list-archive:message-id:mime-version:content-type:content-transfer-encoding"

/* One line of the key table. */
struct signer_key {
    char domain[DKIM_DOMAIN_MAX];
    char selector[64];
    dkim_alg_t algorithm;
    unsigned char *pem;         /* the key file's contents, NUL-terminated */
};

struct signer {
    DKIM_LIB *lib;
    struct signer_key keys[SIGNER_KEYS_MAX];
    size_t key_count;
    bool accept_on_error;
    char *headers[SIGNER_HEADERS_MAX + 2];   /* NULL-terminated, for DKIM_OPTS_SIGNHDRS */
    char *oversign[SIGNER_HEADERS_MAX + 1];
};

/* One signing, handed to a pool thread. */
struct signer_job {
    struct signer *plugin;
    struct dkim_message message;
    char id[64];
    const struct signer_key *keys[SIGNER_KEYS_PER_DOMAIN];
    size_t key_count;
    char *values[SIGNER_KEYS_PER_DOMAIN];    /* DKIM-Signature values made (malloc) */
    char error[512];
};

/* ---------------------------------------------------------------- the key table */

/* signer_read_key - the PEM file, checked with OpenSSL; its algorithm, or -1 (error set, the
 * path not included) */
static int signer_read_key(const char *path, struct signer_key *key, char *error, size_t size)
{
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        snprintf(error, size, "cannot read: %s", strerror(errno));
        return -1;
    }
    key->pem = calloc(1, SIGNER_KEY_FILE_MAX + 1);
    size_t length = key->pem ? fread(key->pem, 1, SIGNER_KEY_FILE_MAX + 1, file) : 0;
    fclose(file);
    if (length == 0 || length > SIGNER_KEY_FILE_MAX) {
        snprintf(error, size, "empty or larger than %d bytes", SIGNER_KEY_FILE_MAX);
        return -1;
    }
    key->pem[length] = '\0';
    BIO *bio = BIO_new_mem_buf(key->pem, (int)length);
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (pkey == NULL) {
        snprintf(error, size, "not a PEM private key");
        return -1;
    }
    int type = EVP_PKEY_get_base_id(pkey);
    int bits = EVP_PKEY_get_bits(pkey);
    EVP_PKEY_free(pkey);
    if (type == EVP_PKEY_RSA && bits >= 1024)
        return DKIM_SIGN_RSASHA256;
    if (type == EVP_PKEY_ED25519)
        return DKIM_SIGN_ED25519SHA256;
    snprintf(error, size, "want an RSA key of at least 1024 bits or an Ed25519 key");
    return -1;
}

/* signer_load_table - read the key table; 0, or -1 after porter_arg_error */
static int signer_load_table(porter_args *a, struct signer *plugin, const char *path)
{
    porter_list *table = porter_list_file(a, path);
    if (table == NULL)
        return -1;
    int errors = 0;
    for (size_t entry = 0; entry < porter_list_count(table); entry++) {
        int number = porter_list_line(table, entry);
        size_t count = porter_list_word_count(table, entry);
        const char *words[4];
        for (size_t i = 0; i < 4; i++)
            words[i] = porter_list_word(table, entry, i);
        if (count < 3 || count > 4 || !dkim_domain_valid(words[0]) ||
            strlen(words[1]) >= sizeof plugin->keys[0].selector || !dkim_domain_valid(words[1])) {
            porter_arg_error(a, "keytable: %s:%d: want DOMAIN SELECTOR KEYFILE [ALGORITHM]", path,
                             number);
            errors++;
            continue;
        }
        if (plugin->key_count == SIGNER_KEYS_MAX) {
            porter_arg_error(a, "keytable: %s:%d: more than %d keys", path, number,
                             SIGNER_KEYS_MAX);
            errors++;
            break;
        }
        struct signer_key *key = &plugin->keys[plugin->key_count];
        snprintf(key->domain, sizeof key->domain, "%s", words[0]);
        dkim_lower(key->domain);
        snprintf(key->selector, sizeof key->selector, "%s", words[1]);
        /* a relative KEYFILE is in the key table's directory */
        char key_path[4096], error[300];
        const char *slash = strrchr(path, '/');
        if (words[2][0] == '/' || slash == NULL)
            snprintf(key_path, sizeof key_path, "%s", words[2]);
        else
            snprintf(key_path, sizeof key_path, "%.*s/%s", (int)(slash - path), path, words[2]);
        int algorithm = signer_read_key(key_path, key, error, sizeof error);
        if (algorithm < 0) {
            porter_arg_error(a, "keytable: %s:%d: %s: %s", path, number, key_path, error);
            free(key->pem);
            key->pem = NULL;
            errors++;
            continue;
        }
        const char *name = algorithm == DKIM_SIGN_RSASHA256 ? "rsa-sha256" : "ed25519-sha256";
        if (count == 4 && strcasecmp(words[3], name) != 0) {
            porter_arg_error(a, "keytable: %s:%d: the key is %s, not %s", path, number, name,
                             words[3]);
            free(key->pem);
            key->pem = NULL;
            errors++;
            continue;
        }
        key->algorithm = algorithm;
        plugin->key_count++;
    }
    porter_list_free(table);
    return errors > 0 ? -1 : 0;
}

/* signer_names - a colon-separated list of header names (letters, digits, '-'; libopendkim
 * makes a regular expression of them) into a NULL-terminated array, lower case, "from" added
 * when add_from; 0, or -1 for a bad name or more than max (out then holds what was read) */
static int signer_names(const char *list, char **out, size_t max, bool add_from)
{
    size_t count = 0;
    bool has_from = false;
    int result = 0;
    out[0] = NULL;
    for (const char *p = list; *p != '\0' && result == 0;) {
        size_t length = strcspn(p, ":");
        if (length > 0 && count == max) {
            result = -1;
        } else if (length > 0) {
            for (size_t i = 0; i < length; i++)
                if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
                      (p[i] >= '0' && p[i] <= '9') || p[i] == '-'))
                    result = -1;
            out[count] = strndup(p, length);
            if (out[count] == NULL)
                abort();
            dkim_lower(out[count]);
            has_from = has_from || strcmp(out[count], "from") == 0;
            out[++count] = NULL;
        }
        p += length + (p[length] == ':');
    }
    if (result == 0 && add_from && !has_from) {
        out[count] = strdup("from");
        if (out[count] == NULL)
            abort();
        out[++count] = NULL;
    }
    return result;
}

/* signer_names_merge - add to list (room for max names) every name of more it lacks */
static void signer_names_merge(char **list, size_t max, char *const *more)
{
    size_t count = 0;
    while (list[count] != NULL)
        count++;
    for (size_t i = 0; more[i] != NULL && count < max; i++) {
        size_t j = 0;
        while (j < count && strcmp(list[j], more[i]) != 0)
            j++;
        if (j < count)
            continue;
        list[count] = strdup(more[i]);
        if (list[count] == NULL)
            abort();
        list[++count] = NULL;
    }
}

/* ---------------------------------------------------------------- signing */

/* signer_work - every signature in one pass over the message, on a pool thread */
static int signer_work(void *arg)
{
    struct signer_job *job = arg;
    DKIM *handles[SIGNER_KEYS_PER_DOMAIN] = {NULL};
    DKIM_STAT status = DKIM_STAT_OK;
    size_t made = 0;
    for (; made < job->key_count; made++) {
        const struct signer_key *key = job->keys[made];
        handles[made] = dkim_sign(job->plugin->lib, (const unsigned char *)job->id, NULL, key->pem,
                                  (const unsigned char *)key->selector,
                                  (const unsigned char *)key->domain, DKIM_CANON_RELAXED,
                                  DKIM_CANON_RELAXED, key->algorithm, -1, &status);
        if (handles[made] == NULL)
            break;
    }
    if (made == job->key_count)
        status = dkim_message_feed(handles, made, &job->message);
    for (size_t i = 0; i < made && status == DKIM_STAT_OK; i++) {
        status = dkim_eom(handles[i], NULL);
        unsigned char *value = NULL;
        size_t length = 0;
        if (status == DKIM_STAT_OK)
            status = dkim_getsighdr_d(handles[i], strlen("DKIM-Signature: "), &value, &length);
        if (status == DKIM_STAT_OK) {
            job->values[i] = strndup((const char *)value, length);
            if (job->values[i] == NULL)
                status = DKIM_STAT_NORESOURCE;
        }
        if (status != DKIM_STAT_OK)
            snprintf(job->error, sizeof job->error, "d=%s s=%s: %s (%s)", job->keys[i]->domain,
                     job->keys[i]->selector, dkim_getresultstr(status),
                     dkim_geterror(handles[i]) ? dkim_geterror(handles[i]) : "");
    }
    if (status != DKIM_STAT_OK && job->error[0] == '\0')
        snprintf(job->error, sizeof job->error, "%s", dkim_getresultstr(status));
    for (size_t i = 0; i < made; i++)
        dkim_free(handles[i]);
    return status == DKIM_STAT_OK ? 0 : -1;
}

/* signer_done - back on the loop: the signatures on top of the message */
static int signer_done(porter_session *s, void *arg, int result)
{
    struct signer_job *job = arg;
    int rc = PORTER_DECLINED;
    if (s != NULL && result != 0) {
        porter_log(s, PORTER_LOG_ERR, "event=dkim_sign_failed error=\"%s\"", job->error);
        if (!job->plugin->accept_on_error)
            rc = porter_reply(s, PORTER_DENYSOFT, 451, "4.7.5",
                              "DKIM signing failed, try again later");
    } else if (s != NULL) {
        /* the last key's signature first, so that they read in key-table order */
        for (size_t i = job->key_count; i-- > 0;) {
            porter_header_insert(s, 0, "DKIM-Signature", job->values[i]);
            porter_log(s, PORTER_LOG_INFO, "event=dkim_signed domain=%s selector=%s algorithm=%s",
                       job->keys[i]->domain, job->keys[i]->selector,
                       job->keys[i]->algorithm == DKIM_SIGN_RSASHA256 ? "rsa-sha256"
                                                                      : "ed25519-sha256");
        }
    }
    for (size_t i = 0; i < job->key_count; i++)
        free(job->values[i]);
    dkim_message_release(&job->message);
    free(job);
    return rc;
}

/* signer_keys_for - the keys of domain, or of its nearest listed parent; how many */
static size_t signer_keys_for(const struct signer *plugin, const char *domain,
                              const struct signer_key **out)
{
    for (const char *d = domain; d != NULL; d = strchr(d, '.') ? strchr(d, '.') + 1 : NULL) {
        size_t count = 0;
        for (size_t i = 0; i < plugin->key_count && count < SIGNER_KEYS_PER_DOMAIN; i++)
            if (strcmp(plugin->keys[i].domain, d) == 0)
                out[count++] = &plugin->keys[i];
        if (count > 0)
            return count;
    }
    return 0;
}

static int signer_data_post(porter_session *s, void *state)
{
    struct signer *plugin = state;
    if (!porter_relay_client(s) && porter_auth_user(s) == NULL)
        return PORTER_DECLINED;
    char from[DKIM_DOMAIN_MAX];
    if (porter_header_count(s, "From") != 1 ||
        !dkim_address_domain(porter_header_get(s, "From", 0), from)) {
        porter_log(s, PORTER_LOG_INFO, "event=dkim_not_signed reason=\"no single From address\"");
        return PORTER_DECLINED;
    }
    const struct signer_key *keys[SIGNER_KEYS_PER_DOMAIN];
    size_t count = signer_keys_for(plugin, from, keys);
    if (count == 0) {
        porter_log(s, PORTER_LOG_DEBUG, "event=dkim_not_signed from=%s reason=\"no key\"", from);
        return PORTER_DECLINED;
    }
    struct signer_job *job = calloc(1, sizeof *job);
    if (job == NULL || dkim_message_take(s, &job->message) != 0) {
        free(job);
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Temporary local problem");
    }
    job->plugin = plugin;
    memcpy(job->keys, keys, count * sizeof keys[0]);
    job->key_count = count;
    snprintf(job->id, sizeof job->id, "%s", porter_queue_id(s) ? porter_queue_id(s) : "-");
    return porter_run_blocking(s, signer_work, signer_done, job);
}

static void *signer_init(porter_args *a)
{
    struct signer *plugin = calloc(1, sizeof *plugin);
    if (plugin == NULL)
        abort();
    const char *table = porter_arg_path(a, "keytable", NULL);
    const char *headers = porter_arg_string(a, "headers", SIGNER_DEFAULT_HEADERS);
    const char *oversign = porter_arg_string(a, "oversign", "from");
    plugin->accept_on_error = porter_arg_choice(a, "on_error", "denysoft|accept") == 1;
    if (table == NULL)
        porter_arg_error(a, "keytable=FILE is required");
    else
        signer_load_table(a, plugin, table);
    if (signer_names(headers, plugin->headers, SIGNER_HEADERS_MAX, true) != 0)
        porter_arg_error(a, "headers: want at most %d colon-separated header names",
                         SIGNER_HEADERS_MAX);
    if (signer_names(oversign, plugin->oversign, SIGNER_HEADERS_MAX, false) != 0)
        porter_arg_error(a, "oversign: want at most %d colon-separated header names",
                         SIGNER_HEADERS_MAX);
    signer_names_merge(plugin->headers, SIGNER_HEADERS_MAX + 1, plugin->oversign);
    plugin->lib = dkim_init(NULL, NULL);
    if (plugin->lib == NULL) {
        porter_arg_error(a, "libopendkim: dkim_init failed");
        return plugin;
    }
    if (!dkim_libfeature(plugin->lib, DKIM_FEATURE_ED25519))
        for (size_t i = 0; i < plugin->key_count; i++)
            if (plugin->keys[i].algorithm == DKIM_SIGN_ED25519SHA256)
                porter_arg_error(a, "keytable: %s: this libopendkim cannot sign with Ed25519",
                                 plugin->keys[i].domain);
    /* both take the NULL-terminated array itself, with the size of a pointer */
    if (dkim_options(plugin->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, plugin->headers,
                     sizeof(char **)) != DKIM_STAT_OK ||
        dkim_options(plugin->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, plugin->oversign,
                     sizeof(char **)) != DKIM_STAT_OK)
        porter_arg_error(a, "libopendkim refused the headers= or oversign= list");
    return plugin;
}

static void signer_fini(void *state)
{
    struct signer *plugin = state;
    if (plugin == NULL)
        return;
    if (plugin->lib != NULL)
        dkim_close(plugin->lib);
    for (size_t i = 0; i < plugin->key_count; i++)
        free(plugin->keys[i].pem);
    for (size_t i = 0; plugin->headers[i] != NULL; i++)
        free(plugin->headers[i]);
    for (size_t i = 0; plugin->oversign[i] != NULL; i++)
        free(plugin->oversign[i]);
    free(plugin);
}

PORTER_PLUGIN(.name = "dkim_sign",
              .description = "Signs the mail of authenticated users and relay clients with DKIM. "
                             "RFC 6376 signatures, RSA-SHA256 or Ed25519-SHA256 (RFC 8463), "
                             "relaxed/relaxed, with libopendkim on the thread pool. The signing "
                             "domain is the From: domain, or its nearest parent that the key "
                             "table lists; every key of that domain signs (an RSA and an Ed25519 "
                             "key give two signatures). Other mail is left alone. Put it after "
                             "every plugin that changes the message.",
              .arguments = PORTER_ARGUMENTS(
                  {"keytable", NULL,
                   "Required. The key table: one \"DOMAIN SELECTOR KEYFILE "
                   "[rsa-sha256|ed25519-sha256]\" per line, # comments; KEYFILE is a PEM private "
                   "key (relative to the table's folder), read and checked at start."},
                  {"headers", SIGNER_DEFAULT_HEADERS,
                   "Colon-separated names of the headers to sign (RFC 6376 section 5.4.1's list); "
                   "From is always signed."},
                  {"oversign", "from",
                   "Colon-separated names signed once more than present, so that none can be "
                   "added later; they are added to headers= when missing there."},
                  {"on_error", "denysoft",
                   "A signing failure (a local problem): denysoft answers 451 4.7.5; accept lets "
                   "the mail go unsigned, with a log line."}),
              .init = signer_init, .fini = signer_fini,
              .hooks[PORTER_HOOK_DATA_POST] = signer_data_post);
