/*
 * dkim_verify - verify every DKIM signature of a message (RFC 6376, RSA-SHA256, RSA-SHA1 and
 * Ed25519-SHA256 / RFC 8463) with libopendkim, and refuse mail from listed domains that
 * carries no valid signature.
 *
 * Hook: data_post. The work runs on the worker's thread pool (porter_run_blocking): the header
 * fields are fed one by one, then the body is read from the spool file with pread in 64 KiB
 * pieces (never copied whole), then every signature is verified. Key lookups go through
 * libopendkim's DNS callbacks (dkim_dns_set_query_start / _waitreply / _cancel), answered by
 * porter_dns_query_sync: the servers, timeout, retries and cache of porter.conf; libopendkim
 * parses the raw reply itself. A lookup that fails for good (timeout, SERVFAIL) is a temperror.
 *
 * Results, per signature, in RFC 8601's words: pass; fail (the signature or the body hash does
 * not match, or it expired); temperror (the key could not be fetched now); permerror (no key,
 * a broken or revoked key, a key for another use); policy (a key shorter than min_key_bits);
 * neutral (a signature with syntax errors, or one beyond max_signatures, left unverified).
 *
 * Policy: must_sign=FILE lists From domains ("example.org"; ".example.org" also covers its
 * subdomains) whose mail must carry a passing signature whose d= is the From domain or a
 * parent of it within the listed entry. Otherwise 550 5.7.20 "No passing DKIM signature"
 * (RFC 7372), or 451 4.7.20 when a candidate signature got a temperror.
 *
 * Notes (native-plugins/auth_notes.h): dkim, dkim-signatures, auth-results:dkim (one resinfo
 * per signature: 'dkim=pass header.d=example.org header.s=sel header.a=rsa-sha256
 * header.b=AbCdEfGh', with reason="..." when it did not pass; "dkim=none" when unsigned).
 * Relay clients and authenticated users are not checked unless verify_relay=yes.
 *
 * Arguments: must_sign=FILE, max_signatures=N (10), min_key_bits=N (1024),
 *            verify_relay=no|yes.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <porter/plugin.h>

#include "auth_notes.h"
#include "dkim_common.h"

#define DKIM_VERIFY_SIGNATURES_MAX 50
#define DKIM_VERIFY_NOTE_MAX 8192

/* Per-signature results, RFC 8601 2.7.1. */
enum dkim_result {
    DKIM_RESULT_PASS = 0,
    DKIM_RESULT_FAIL,
    DKIM_RESULT_PERMERROR,
    DKIM_RESULT_TEMPERROR,
    DKIM_RESULT_POLICY,
    DKIM_RESULT_NEUTRAL,
    DKIM_RESULT_NONE,
    DKIM_RESULT_COUNT
};

static const char *const dkim_result_names[DKIM_RESULT_COUNT] = {
    "pass", "fail", "permerror", "temperror", "policy", "neutral", "none",
};

static const char *dkim_result_name(int result)
{
    return result >= 0 && result < DKIM_RESULT_COUNT ? dkim_result_names[result] : "neutral";
}

struct verifier {
    DKIM_LIB *lib;
    struct dkim_domains must_sign;
    long max_signatures;
    bool verify_relay;
};

/* One signature's outcome, as text safe to put in a header. */
struct dkim_signature {
    int result;
    char domain[DKIM_DOMAIN_MAX];
    char selector[64];
    char algorithm[24];
    char b[16];                 /* the first 8 characters of b=, RFC 6008 */
    char reason[96];
};

/* One verification, handed to a pool thread. */
struct verifier_job {
    struct verifier *plugin;
    struct dkim_message message;
    char id[64];
    struct dkim_signature signatures[DKIM_VERIFY_SIGNATURES_MAX];
    size_t count;
    char error[160];            /* a failure of the whole verification, or "" */
};

/* ---------------------------------------------------------------- DNS for libopendkim */

/* A finished query: libopendkim asks for it in waitreply and frees it with cancel. */
struct dkim_dns_reply {
    size_t length;
};

/* verifier_dns_start - libopendkim's query start: answered at once by porter_dns_query_sync */
static int verifier_dns_start(void *service, int type, unsigned char *query,
                              unsigned char *buffer, size_t size, void **handle)
{
    struct porter_dns_answer *answer = porter_dns_query_sync(type, (const char *)query);
    /* libopendkim reads NXDOMAIN and empty answers from the packet; a failure (no packet,
     * SERVFAIL) becomes DKIM_DNS_ERROR: a key failure, a temperror */
    bool usable = answer->packet != NULL && answer->packet_length <= size &&
                  (answer->status == PORTER_DNS_OK || answer->status == PORTER_DNS_NXDOMAIN ||
                   answer->status == PORTER_DNS_NODATA);
    struct dkim_dns_reply *reply = usable ? calloc(1, sizeof *reply) : NULL;
    if (reply != NULL) {
        memcpy(buffer, answer->packet, answer->packet_length);
        reply->length = answer->packet_length;
    }
    porter_dns_answer_free(answer);
    if (reply == NULL)
        return DKIM_DNS_ERROR;
    *handle = reply;
    return DKIM_DNS_SUCCESS;
}

static int verifier_dns_waitreply(void *service, void *handle, struct timeval *timeout,
                                  size_t *bytes, int *error, int *dnssec)
{
    const struct dkim_dns_reply *reply = handle;
    if (bytes != NULL)
        *bytes = reply->length;
    if (error != NULL)
        *error = 0;
    if (dnssec != NULL)
        *dnssec = DKIM_DNSSEC_UNKNOWN;
    return DKIM_DNS_SUCCESS;
}

static int verifier_dns_cancel(void *service, void *handle)
{
    free(handle);
    return 0;
}

static void verifier_dns_close(void *service)
{
}

/* ---------------------------------------------------------------- verification */

/* dkim_safe_copy - a tag value for a header: letters, digits and "-._+/=", at most size-1 */
static void dkim_safe_copy(char *out, size_t size, const unsigned char *value, size_t limit)
{
    size_t used = 0;
    for (const unsigned char *p = value; p != NULL && *p && used + 1 < size && used < limit; p++) {
        unsigned char c = *p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue; /* folding inside b= */
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '+' || c == '/' || c == '=';
        out[used++] = plain ? (char)c : '_';
    }
    out[used] = '\0';
}

/* dkim_classify - one signature's result after dkim_eom */
static int dkim_classify(DKIM_SIGINFO *sig, const char **reason)
{
    unsigned flags = dkim_sig_getflags(sig);
    int error = dkim_sig_geterror(sig);
    *reason = NULL;
    if (flags & DKIM_SIGFLAG_IGNORE) {
        *reason = "not verified: too many signatures";
        return DKIM_RESULT_NEUTRAL;
    }
    if ((flags & DKIM_SIGFLAG_PASSED) && dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH)
        return DKIM_RESULT_PASS;
    if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) {
        *reason = "body hash did not verify";
        return DKIM_RESULT_FAIL;
    }
    *reason = dkim_sig_geterrorstr(error);
    switch (error) {
    case DKIM_SIGERROR_BADSIG:
    case DKIM_SIGERROR_EXPIRED:
    case DKIM_SIGERROR_FUTURE:
        return DKIM_RESULT_FAIL;
    case DKIM_SIGERROR_KEYFAIL:
        return DKIM_RESULT_TEMPERROR;
    case DKIM_SIGERROR_KEYTOOSMALL:
        return DKIM_RESULT_POLICY;
    case DKIM_SIGERROR_NOKEY:
    case DKIM_SIGERROR_DNSSYNTAX:
    case DKIM_SIGERROR_MULTIREPLY:
    case DKIM_SIGERROR_SUBDOMAIN:
    case DKIM_SIGERROR_KEYVERSION:
    case DKIM_SIGERROR_KEYUNKNOWNHASH:
    case DKIM_SIGERROR_KEYHASHMISMATCH:
    case DKIM_SIGERROR_NOTEMAILKEY:
    case DKIM_SIGERROR_KEYTYPEMISSING:
    case DKIM_SIGERROR_KEYTYPEUNKNOWN:
    case DKIM_SIGERROR_KEYREVOKED:
    case DKIM_SIGERROR_KEYDECODE:
    case DKIM_SIGERROR_MBSFAILED:
        return DKIM_RESULT_PERMERROR;
    case DKIM_SIGERROR_OK:
        *reason = "signature not verified";
        return DKIM_RESULT_NEUTRAL;
    default:
        return DKIM_RESULT_NEUTRAL; /* syntax errors in the signature itself */
    }
}

/* verifier_prescreen - leave signatures beyond max_signatures unverified */
static DKIM_CBSTAT verifier_prescreen(DKIM *dkim, DKIM_SIGINFO **sigs, int count)
{
    const struct verifier *plugin = dkim_get_user_context(dkim);
    for (int i = (int)plugin->max_signatures; i < count; i++)
        dkim_sig_ignore(sigs[i]);
    return DKIM_CBSTAT_CONTINUE;
}

/* verifier_work - the whole verification, on a pool thread */
static int verifier_work(void *arg)
{
    struct verifier_job *job = arg;
    DKIM_STAT status;
    DKIM *dkim = dkim_verify(job->plugin->lib, (const unsigned char *)job->id, NULL, &status);
    if (dkim == NULL) {
        snprintf(job->error, sizeof job->error, "dkim_verify: %s", dkim_getresultstr(status));
        return -1;
    }
    dkim_set_user_context(dkim, job->plugin);
    status = dkim_message_feed(&dkim, 1, &job->message);
    if (status == DKIM_STAT_NOSIG) {
        dkim_free(dkim);
        return 0;
    }
    if (status == DKIM_STAT_OK)
        status = dkim_eom(dkim, NULL);
    DKIM_SIGINFO **sigs = NULL;
    int count = 0;
    if (dkim_getsiglist(dkim, &sigs, &count) != DKIM_STAT_OK || count <= 0) {
        if (status != DKIM_STAT_OK && status != DKIM_STAT_NOSIG)
            snprintf(job->error, sizeof job->error, "%s", dkim_getresultstr(status));
        dkim_free(dkim);
        return 0;
    }
    for (int i = 0; i < count && job->count < DKIM_VERIFY_SIGNATURES_MAX; i++) {
        struct dkim_signature *out = &job->signatures[job->count++];
        const char *reason;
        out->result = dkim_classify(sigs[i], &reason);
        if (reason != NULL)
            snprintf(out->reason, sizeof out->reason, "%s", reason);
        dkim_safe_copy(out->domain, sizeof out->domain, dkim_sig_getdomain(sigs[i]), 253);
        dkim_lower(out->domain);
        dkim_safe_copy(out->selector, sizeof out->selector, dkim_sig_getselector(sigs[i]), 63);
        dkim_safe_copy(out->algorithm, sizeof out->algorithm,
                       dkim_sig_gettagvalue(sigs[i], false, (u_char *)"a"), 23);
        dkim_safe_copy(out->b, sizeof out->b,
                       dkim_sig_gettagvalue(sigs[i], false, (u_char *)"b"), 8);
    }
    dkim_free(dkim);
    return 0;
}

/* verifier_summary - pass if any passed, else the first of fail, permerror, temperror,
 * policy, neutral that occurred; none without signatures */
static int verifier_summary(const struct verifier_job *job)
{
    int best = DKIM_RESULT_NONE;
    for (size_t i = 0; i < job->count; i++)
        if (job->signatures[i].result < best)
            best = job->signatures[i].result;
    return best;
}

/* verifier_notes - the notes for later plugins and the Authentication-Results header */
static void verifier_notes(porter_session *s, const struct verifier_job *job)
{
    char signatures[DKIM_VERIFY_NOTE_MAX] = "", results[DKIM_VERIFY_NOTE_MAX] = "";
    size_t used_signatures = 0, used_results = 0;
    for (size_t i = 0; i < job->count; i++) {
        const struct dkim_signature *sig = &job->signatures[i];
        int n = snprintf(signatures + used_signatures, sizeof signatures - used_signatures,
                         "%s%s %s %s", i ? "\n" : "", dkim_result_name(sig->result),
                         sig->domain[0] ? sig->domain : "-",
                         sig->selector[0] ? sig->selector : "-");
        if (n > 0 && (size_t)n < sizeof signatures - used_signatures)
            used_signatures += (size_t)n;
        char reason[128] = "";
        if (sig->reason[0] != '\0')
            snprintf(reason, sizeof reason, " reason=\"%s\"", sig->reason);
        n = snprintf(results + used_results, sizeof results - used_results,
                     "%sdkim=%s%s header.d=%s header.s=%s header.a=%s header.b=%s", i ? "\n" : "",
                     dkim_result_name(sig->result), reason, sig->domain[0] ? sig->domain : "-",
                     sig->selector[0] ? sig->selector : "-",
                     sig->algorithm[0] ? sig->algorithm : "-", sig->b[0] ? sig->b : "-");
        if (n > 0 && (size_t)n < sizeof results - used_results)
            used_results += (size_t)n;
    }
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_DKIM, dkim_result_name(verifier_summary(job)));
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_DKIM_SIGNATURES, signatures);
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_RESULTS_DKIM,
                    job->count > 0 ? results : "dkim=none");
}

/* verifier_policy - must_sign: the verdict for the message (DECLINED when it may pass) */
static int verifier_policy(porter_session *s, const struct verifier_job *job)
{
    char from[DKIM_DOMAIN_MAX];
    if (job->plugin->must_sign.count == 0 ||
        !dkim_address_domain(porter_header_get(s, "From", 0), from))
        return PORTER_DECLINED;
    const char *entry = dkim_domains_match(&job->plugin->must_sign, from);
    if (entry == NULL)
        return PORTER_DECLINED;
    const char *top = entry[0] == '.' ? entry + 1 : entry;
    bool temporary = false;
    for (size_t i = 0; i < job->count; i++) {
        const struct dkim_signature *sig = &job->signatures[i];
        /* d= must be the From domain or a parent of it, and within the listed entry */
        if (!dkim_domain_under(from, sig->domain) || !dkim_domain_under(sig->domain, top))
            continue;
        if (sig->result == DKIM_RESULT_PASS)
            return PORTER_DECLINED;
        if (sig->result == DKIM_RESULT_TEMPERROR)
            temporary = true;
    }
    porter_log(s, PORTER_LOG_INFO, "event=dkim_policy from=%s entry=%s action=%s", from, entry,
               temporary ? "denysoft" : "deny");
    if (temporary)
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.7.20",
                            "DKIM key lookup failed for %s, try again later", from);
    return porter_reply(s, PORTER_DENY, 550, "5.7.20",
                        "No passing DKIM signature found for %s", from);
}

/* verifier_done - back on the loop: notes, log, the policy */
static int verifier_done(porter_session *s, void *arg, int work_result)
{
    struct verifier_job *job = arg;
    int rc = PORTER_DECLINED;
    if (s != NULL) {
        if (job->error[0] != '\0')
            porter_log(s, PORTER_LOG_WARNING, "event=dkim_error error=\"%s\"", job->error);
        verifier_notes(s, job);
        for (size_t i = 0; i < job->count; i++) {
            const struct dkim_signature *sig = &job->signatures[i];
            porter_log(s, PORTER_LOG_INFO, "event=dkim_verify result=%s domain=%s selector=%s "
                       "algorithm=%s%s%s%s", dkim_result_name(sig->result), sig->domain,
                       sig->selector, sig->algorithm, sig->reason[0] ? " reason=\"" : "",
                       sig->reason, sig->reason[0] ? "\"" : "");
        }
        rc = verifier_policy(s, job);
    }
    dkim_message_release(&job->message);
    free(job);
    return rc;
}

static int verifier_data_post(porter_session *s, void *state)
{
    struct verifier *plugin = state;
    if (!plugin->verify_relay && (porter_relay_client(s) || porter_auth_user(s) != NULL))
        return PORTER_DECLINED;
    struct verifier_job *job = calloc(1, sizeof *job);
    if (job == NULL || dkim_message_take(s, &job->message) != 0) {
        free(job);
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Temporary local problem");
    }
    job->plugin = plugin;
    snprintf(job->id, sizeof job->id, "%s", porter_queue_id(s) ? porter_queue_id(s) : "-");
    return porter_run_blocking(s, verifier_work, verifier_done, job);
}

static void *verifier_init(porter_args *a)
{
    struct verifier *plugin = calloc(1, sizeof *plugin);
    if (plugin == NULL)
        abort();
    const char *must_sign = porter_arg_path(a, "must_sign", NULL);
    plugin->max_signatures =
        porter_arg_integer(a, "max_signatures", 10, 1, DKIM_VERIFY_SIGNATURES_MAX);
    long min_key_bits = porter_arg_integer(a, "min_key_bits", 1024, 0, 16384);
    plugin->verify_relay = porter_arg_bool(a, "verify_relay", false);
    int bad_line = 0;
    if (must_sign != NULL && dkim_domains_load(must_sign, &plugin->must_sign, &bad_line) != 0) {
        if (bad_line > 0)
            porter_arg_error(a, "must_sign: %s:%d: not a domain", must_sign, bad_line);
        else
            porter_arg_error(a, "must_sign: cannot read %s: %s", must_sign, strerror(errno));
    }
    plugin->lib = dkim_init(NULL, NULL);
    if (plugin->lib == NULL) {
        porter_arg_error(a, "libopendkim: dkim_init failed");
        return plugin;
    }
    unsigned flags = DKIM_LIBFLAGS_BADSIGHANDLES;
    unsigned bits = (unsigned)min_key_bits;
    dkim_options(plugin->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
    dkim_options(plugin->lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &bits, sizeof bits);
    dkim_set_prescreen(plugin->lib, verifier_prescreen);
    dkim_dns_set_query_service(plugin->lib, plugin);
    dkim_dns_set_query_start(plugin->lib, verifier_dns_start);
    dkim_dns_set_query_waitreply(plugin->lib, verifier_dns_waitreply);
    dkim_dns_set_query_cancel(plugin->lib, verifier_dns_cancel);
    dkim_dns_set_close(plugin->lib, verifier_dns_close);
    dkim_dns_set_init(plugin->lib, NULL);
    return plugin;
}

static void verifier_fini(void *state)
{
    struct verifier *plugin = state;
    if (plugin == NULL)
        return;
    if (plugin->lib != NULL)
        dkim_close(plugin->lib);
    dkim_domains_free(&plugin->must_sign);
    free(plugin);
}

PORTER_PLUGIN(.name = "dkim_verify",
              .description = "Verifies DKIM signatures, and requires them from listed domains. "
                             "Every signature (RFC 6376; RSA-SHA256, RSA-SHA1 and Ed25519-SHA256) "
                             "is verified with libopendkim on the thread pool, keys fetched "
                             "through Porter's resolver, and records each result for dmarc and "
                             "the Authentication-Results header. Mail From a domain listed in "
                             "must_sign without a passing signature of that domain gets 550 "
                             "5.7.20 (451 4.7.20 when a key could not be fetched). Relay clients "
                             "and authenticated users are not checked unless verify_relay=yes.",
              .arguments = PORTER_ARGUMENTS(
                  {"must_sign", NULL,
                   "A file of From domains whose mail must carry a passing signature, one per "
                   "line; \".example.org\" covers its subdomains too."},
                  {"max_signatures", "10",
                   "Signatures verified per message; later ones are left unverified (neutral)."},
                  {"min_key_bits", "1024", "Shorter keys give the result policy, not pass."},
                  {"verify_relay", "no",
                   "yes also checks mail from relay clients and authenticated users."}),
              .init = verifier_init, .fini = verifier_fini,
              .hooks[PORTER_HOOK_DATA_POST] = verifier_data_post);
