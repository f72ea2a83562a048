/*
 * spf - refuse mail whose sender's domain does not allow the client to send it (SPF, RFC 7208),
 * with libspf2, before the message is accepted.
 *
 * Hooks: mail (the check), rcpt (the refusal, with reject_at=rcpt), data_post (the optional
 * Received-SPF header), disconnect (frees). libspf2 resolves synchronously, so the check runs
 * on the worker's thread pool (porter_run_blocking), and its DNS goes through a DNS layer of
 * our own (an SPF_dns_server_t) that asks porter_dns_query_sync: the servers, timeout,
 * retries and cache of porter.conf, so that every check is testable against a local server.
 * Type SPF (99) records are never asked for (RFC 7208 3.1 and 14.1): the layer answers them
 * with "no data" at once and libspf2 goes on with TXT.
 *
 * Identities: the MAIL FROM domain; for the null sender the HELO name (postmaster@HELO, RFC
 * 7208 2.4); with check_helo=yes also the HELO name for every other sender (RFC 7208 2.3). A
 * HELO that is not a domain (an address literal, no dot) gives "none" without a lookup.
 * Exempt (no check, no note): relay clients, authenticated users, clients in trusted=. Note
 * that libspf2 itself passes loopback clients ("localhost is always allowed").
 *
 * Results and what they do: each of fail=, softfail=, neutral=, none=, temperror=, permerror=
 * is accept, deny or denysoft. Defaults: fail=deny, temperror=denysoft, the rest accept.
 *   deny       550 5.7.23 (5.7.24 for permerror), RFC 7372
 *   denysoft   451 4.7.24 for temperror, 451 4.7.23 otherwise
 * reject_at=rcpt (default) answers the refusal to every RCPT of the transaction; reject_at=mail
 * answers it to MAIL. With check_helo=yes a HELO result is acted on like the MAIL FROM one;
 * the stricter of the two wins.
 *
 * Notes (native-plugins/auth_notes.h): spf, spf-identity, spf-domain, spf-helo, and
 * auth-results:spf ("spf=RESULT smtp.mailfrom=DOMAIN", or "smtp.helo=NAME").
 * received_spf=yes adds libspf2's Received-SPF header (RFC 7208 9.1) on top of the message.
 *
 * Arguments: fail=, softfail=, neutral=, none=, temperror=, permerror= (accept|deny|denysoft),
 *            reject_at=rcpt|mail, check_helo=no|yes, received_spf=no|yes,
 *            trusted=CIDR list or FILE (clients never checked).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include <porter/plugin.h>

#include "auth_notes.h"

/* SPF results, in RFC 7208's words. */
enum spf_check {
    SPF_CHECK_PASS = 0,
    SPF_CHECK_FAIL,
    SPF_CHECK_SOFTFAIL,
    SPF_CHECK_NEUTRAL,
    SPF_CHECK_NONE,
    SPF_CHECK_TEMPERROR,
    SPF_CHECK_PERMERROR,
    SPF_CHECK_COUNT
};

static const char *const spf_check_names[SPF_CHECK_COUNT] = {
    "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror",
};

static const char *spf_check_name(int check)
{
    return check >= 0 && check < SPF_CHECK_COUNT ? spf_check_names[check] : "none";
}

/* What a result does. */
enum spf_action { SPF_ACTION_ACCEPT = 0, SPF_ACTION_DENY, SPF_ACTION_DENYSOFT, SPF_ACTION_COUNT };

static const char *const spf_action_names[SPF_ACTION_COUNT] = {"accept", "deny", "denysoft"};

static const char *spf_action_name(int action)
{
    return action >= 0 && action < SPF_ACTION_COUNT ? spf_action_names[action] : "invalid";
}

struct spf {
    int actions[SPF_CHECK_COUNT];
    bool reject_at_mail;
    bool check_helo;
    bool received_spf;
    porter_cidr_list *trusted;
    SPF_dns_server_t layer;        /* our DNS layer, shared by every check (no state) */
};

/* One check, handed to a pool thread. */
struct spf_job {
    struct spf *plugin;
    char ip[64];
    char helo[256];
    char sender[512];              /* "" for the null sender */
    char hostname[256];
    bool check_helo;               /* a separate HELO check is wanted */
    int result;                    /* enum spf_check of the main identity */
    int helo_result;               /* of the HELO check, or -1 */
    char received[1024];           /* Received-SPF value of the main identity */
};

/* What this connection's current transaction is told at RCPT and DATA. */
struct spf_session {
    char queue_id[64];
    int rc;                        /* PORTER_DECLINED: nothing to refuse */
    int code;
    char enhanced[16];
    char text[512];
    char received[1024];           /* "" when no header is to be added */
};

/* ---------------------------------------------------------------- DNS for libspf2 */

/* spf_dns_lookup - libspf2's lookup, answered by porter_dns_query_sync (pool thread) */
static SPF_dns_rr_t *spf_dns_lookup(SPF_dns_server_t *layer, const char *domain, ns_type type,
                                    int should_cache)
{
    int porter_type;
    switch (type) {
    case ns_t_a: porter_type = PORTER_DNS_A; break;
    case ns_t_aaaa: porter_type = PORTER_DNS_AAAA; break;
    case ns_t_mx: porter_type = PORTER_DNS_MX; break;
    case ns_t_txt: porter_type = PORTER_DNS_TXT; break;
    case ns_t_ptr: porter_type = PORTER_DNS_PTR; break;
    default:
        /* type SPF (99) and anything else: "no data", without asking */
        return SPF_dns_rr_new_init(layer, domain, type, 0, NO_DATA);
    }
    struct porter_dns_answer *answer = porter_dns_query_sync(porter_type, domain);
    int herrno;
    switch (answer->status) {
    case PORTER_DNS_OK: herrno = NETDB_SUCCESS; break;
    case PORTER_DNS_NODATA: herrno = NO_DATA; break;
    case PORTER_DNS_TEMPFAIL: herrno = TRY_AGAIN; break;
    default:
        /* NXDOMAIN, and a name that is not a valid domain (RFC 7208 4.3: "none") */
        herrno = HOST_NOT_FOUND;
        break;
    }
    SPF_dns_rr_t *rr = SPF_dns_rr_new_init(layer, domain, type, (int)answer->ttl, herrno);
    if (rr == NULL) {
        porter_dns_answer_free(answer);
        return NULL;
    }
    int count = 0;
    for (size_t i = 0; herrno == NETDB_SUCCESS && i < answer->count; i++) {
        const struct porter_dns_record *record = &answer->records[i];
        size_t size = type == ns_t_a      ? sizeof(struct in_addr)
                      : type == ns_t_aaaa ? sizeof(struct in6_addr)
                                          : strlen(record->text) + 1;
        if (SPF_dns_rr_buf_realloc(rr, count, size) != SPF_E_SUCCESS)
            break;
        if (type == ns_t_a) {
            if (inet_pton(AF_INET, record->text, &rr->rr[count]->a) != 1)
                continue;
        } else if (type == ns_t_aaaa) {
            if (inet_pton(AF_INET6, record->text, &rr->rr[count]->aaaa) != 1)
                continue;
        } else {
            memcpy(rr->rr[count]->txt, record->text, size); /* txt, mx and ptr share the union */
        }
        count++;
    }
    rr->num_rr = count;
    if (herrno == NETDB_SUCCESS && count == 0)
        rr->herrno = NO_DATA;
    porter_dns_answer_free(answer);
    return rr;
}

/* ---------------------------------------------------------------- the check */

/* spf_domain_like - is name a domain one can look up (not an address literal, has a dot)? */
static bool spf_domain_like(const char *name)
{
    if (name[0] == '\0' || name[0] == '[' || strchr(name, '.') == NULL)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.' || *p == '_'))
            return false;
    return true;
}

/* spf_check_map - libspf2's result as ours */
static int spf_check_map(SPF_result_t result)
{
    switch (result) {
    case SPF_RESULT_PASS: return SPF_CHECK_PASS;
    case SPF_RESULT_FAIL: return SPF_CHECK_FAIL;
    case SPF_RESULT_SOFTFAIL: return SPF_CHECK_SOFTFAIL;
    case SPF_RESULT_NEUTRAL: return SPF_CHECK_NEUTRAL;
    case SPF_RESULT_TEMPERROR: return SPF_CHECK_TEMPERROR;
    case SPF_RESULT_PERMERROR: return SPF_CHECK_PERMERROR;
    default: return SPF_CHECK_NONE;
    }
}

/*
 * spf_evaluate - check_host() for one identity (pool thread): sender NULL checks the HELO
 * identity alone; received (may be NULL) gets the Received-SPF value
 */
static int spf_evaluate(struct spf_job *job, const char *sender, char *received, size_t size)
{
    SPF_server_t *server = SPF_server_new_dns(&job->plugin->layer, 0);
    if (server == NULL)
        return SPF_CHECK_TEMPERROR;
    SPF_server_set_rec_dom(server, job->hostname);
    SPF_server_set_sanitize(server, 1);
    SPF_request_t *request = SPF_request_new(server);
    int result = SPF_CHECK_NONE;
    SPF_errcode_t error = strchr(job->ip, ':') != NULL
                              ? SPF_request_set_ipv6_str(request, job->ip)
                              : SPF_request_set_ipv4_str(request, job->ip);
    if (error == SPF_E_SUCCESS && job->helo[0] != '\0')
        SPF_request_set_helo_dom(request, job->helo);
    if (error == SPF_E_SUCCESS && sender != NULL && sender[0] != '\0' &&
        SPF_request_set_env_from(request, sender) != 0)
        error = SPF_E_INVALID_CHAR;
    if (error == SPF_E_SUCCESS) {
        SPF_response_t *response = NULL;
        error = SPF_request_query_mailfrom(request, &response);
        if (response != NULL) {
            SPF_result_t outcome = SPF_response_result(response);
            if (outcome == SPF_RESULT_INVALID) {
                /* libspf2 1.2.10 leaves the result unset when it stops early: a DNS error
                 * (TRY_AGAIN) is a temperror; a record that does not compile is a permerror
                 * (its "no record" paths all set none themselves) */
                result = error == SPF_E_DNS_ERROR ? SPF_CHECK_TEMPERROR : SPF_CHECK_PERMERROR;
            } else {
                result = spf_check_map(outcome);
                const char *value = SPF_response_get_received_spf_value(response);
                if (received != NULL && value != NULL)
                    snprintf(received, size, "%s", value);
            }
            SPF_response_free(response);
        }
    }
    if (received != NULL && received[0] == '\0') {
        /* libspf2 wrote no Received-SPF (it stopped early): the same fields, our comment */
        const char *domain = sender != NULL && strrchr(sender, '@') ? strrchr(sender, '@') + 1
                                                                    : job->helo;
        snprintf(received, size, "%s (%s: %s for %s) client-ip=%s; envelope-from=%s; helo=%s;",
                 spf_check_name(result), job->hostname,
                 result == SPF_CHECK_TEMPERROR ? "temporary DNS error in processing"
                 : result == SPF_CHECK_PERMERROR ? "permanent error in processing"
                                                 : "no usable SPF record",
                 domain, job->ip,
                 sender != NULL && sender[0] != '\0' ? sender : "<>", job->helo);
    }
    SPF_request_free(request);
    SPF_server_free(server);
    return result;
}

/* spf_work - both checks, on a pool thread */
static int spf_work(void *arg)
{
    struct spf_job *job = arg;
    job->helo_result = -1;
    if (job->sender[0] == '\0') {
        job->result = spf_domain_like(job->helo)
                          ? spf_evaluate(job, "", job->received, sizeof job->received)
                          : SPF_CHECK_NONE;
        return 0;
    }
    const char *at = strrchr(job->sender, '@');
    job->result = at != NULL && spf_domain_like(at + 1)
                      ? spf_evaluate(job, job->sender, job->received, sizeof job->received)
                      : SPF_CHECK_NONE;
    if (job->check_helo)
        job->helo_result = spf_domain_like(job->helo) ? spf_evaluate(job, NULL, NULL, 0)
                                                      : SPF_CHECK_NONE;
    return 0;
}

/* spf_refusal - the reply for a refused result into session state */
static void spf_refusal(struct spf_session *state, int action, int result, const char *domain,
                        const char *ip, bool helo)
{
    bool temporary = action == SPF_ACTION_DENYSOFT;
    state->rc = temporary ? PORTER_DENYSOFT : PORTER_DENY;
    state->code = temporary ? 451 : 550;
    const char *detail = result == SPF_CHECK_TEMPERROR || result == SPF_CHECK_PERMERROR ? "24"
                                                                                        : "23";
    snprintf(state->enhanced, sizeof state->enhanced, "%c.7.%s", temporary ? '4' : '5', detail);
    const char *what = helo ? "HELO name" : "sender domain";
    switch (result) {
    case SPF_CHECK_TEMPERROR:
        snprintf(state->text, sizeof state->text,
                 "SPF: temporary DNS error checking %s %s, try again later", what, domain);
        break;
    case SPF_CHECK_PERMERROR:
        snprintf(state->text, sizeof state->text, "SPF: the SPF record of %s %s is not valid",
                 what, domain);
        break;
    default:
        snprintf(state->text, sizeof state->text,
                 "SPF validation failed: %s %s does not allow %s to send its mail (%s)", what,
                 domain, ip, spf_check_name(result));
        break;
    }
}

/* spf_done - back on the loop: notes, log, verdict */
static int spf_done(porter_session *s, void *arg, int work_result)
{
    struct spf_job *job = arg;
    if (s == NULL) {
        free(job);
        return PORTER_DECLINED;
    }
    struct spf *p = job->plugin;
    bool null_sender = job->sender[0] == '\0';
    const char *at = strrchr(job->sender, '@');
    const char *domain = null_sender ? job->helo : at != NULL ? at + 1 : job->sender;
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_SPF, spf_check_name(job->result));
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_SPF_IDENTITY,
                    null_sender ? "helo" : "mailfrom");
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_SPF_DOMAIN, domain);
    char results[1024];
    snprintf(results, sizeof results, "spf=%s smtp.%s=%s", spf_check_name(job->result),
             null_sender ? "helo" : "mailfrom", domain);
    if (job->helo_result >= 0) {
        porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_SPF_HELO,
                        spf_check_name(job->helo_result));
        size_t used = strlen(results);
        snprintf(results + used, sizeof results - used, "\nspf=%s smtp.helo=%s",
                 spf_check_name(job->helo_result), job->helo);
    }
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_RESULTS_SPF, results);

    struct spf_session *state = porter_data_get(s);
    if (state == NULL) {
        state = calloc(1, sizeof *state);
        if (state == NULL)
            abort();
        porter_data_set(s, state);
    }
    memset(state, 0, sizeof *state);
    snprintf(state->queue_id, sizeof state->queue_id, "%s", porter_queue_id(s));
    state->rc = PORTER_DECLINED;
    if (p->received_spf)
        snprintf(state->received, sizeof state->received, "%s", job->received);
    /* the stricter of the two identities wins: deny, then denysoft, then accept */
    int action = p->actions[job->result];
    int helo_action = job->helo_result >= 0 ? p->actions[job->helo_result] : SPF_ACTION_ACCEPT;
    if (action == SPF_ACTION_DENY ||
        (action == SPF_ACTION_DENYSOFT && helo_action != SPF_ACTION_DENY))
        spf_refusal(state, action, job->result, domain, job->ip, null_sender);
    else if (helo_action != SPF_ACTION_ACCEPT)
        spf_refusal(state, helo_action, job->helo_result, job->helo, job->ip, true);
    const char *decided = state->rc == PORTER_DECLINED ? spf_action_name(SPF_ACTION_ACCEPT)
                          : state->rc == PORTER_DENY   ? spf_action_name(SPF_ACTION_DENY)
                                                       : spf_action_name(SPF_ACTION_DENYSOFT);
    porter_log(s, PORTER_LOG_INFO, "event=spf result=%s identity=%s domain=%s client=%s%s%s "
               "action=%s at=%s", spf_check_name(job->result), null_sender ? "helo" : "mailfrom",
               domain, job->ip, job->helo_result >= 0 ? " helo_result=" : "",
               job->helo_result >= 0 ? spf_check_name(job->helo_result) : "", decided,
               p->reject_at_mail ? "mail" : "rcpt");
    free(job);
    if (state->rc != PORTER_DECLINED && p->reject_at_mail)
        return porter_reply(s, state->rc, state->code, state->enhanced, "%s", state->text);
    return PORTER_DECLINED;
}

/* spf_exempt - relay clients, authenticated users and trusted clients are not checked */
static bool spf_exempt(porter_session *s, const struct spf *p)
{
    return porter_relay_client(s) || porter_auth_user(s) != NULL ||
           porter_cidr_match(p->trusted, porter_client_ip(s));
}

static int spf_mail(porter_session *s, void *state)
{
    struct spf *p = state;
    struct spf_session *session = porter_data_get(s);
    if (session != NULL)
        memset(session, 0, sizeof *session); /* a new transaction: forget the last one */
    if (spf_exempt(s, p))
        return PORTER_DECLINED;
    struct spf_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Temporary local problem");
    job->plugin = p;
    snprintf(job->ip, sizeof job->ip, "%s", porter_client_ip(s));
    snprintf(job->helo, sizeof job->helo, "%s", porter_helo(s));
    snprintf(job->sender, sizeof job->sender, "%s", porter_mail_from(s) ? porter_mail_from(s) : "");
    snprintf(job->hostname, sizeof job->hostname, "%s", porter_hostname(s));
    job->check_helo = p->check_helo;
    return porter_run_blocking(s, spf_work, spf_done, job);
}

/* spf_current - the session state if it belongs to the current transaction */
static struct spf_session *spf_current(porter_session *s)
{
    struct spf_session *state = porter_data_get(s);
    const char *queue_id = porter_queue_id(s);
    if (state == NULL || queue_id == NULL || strcmp(state->queue_id, queue_id) != 0)
        return NULL;
    return state;
}

static int spf_rcpt(porter_session *s, void *plugin)
{
    struct spf_session *state = spf_current(s);
    if (state == NULL || state->rc == PORTER_DECLINED)
        return PORTER_DECLINED;
    return porter_reply(s, state->rc, state->code, state->enhanced, "%s", state->text);
}

static int spf_data_post(porter_session *s, void *plugin)
{
    struct spf_session *state = spf_current(s);
    if (state != NULL && state->received[0] != '\0')
        porter_header_insert(s, 0, "Received-SPF", state->received);
    return PORTER_DECLINED;
}

static int spf_disconnect(porter_session *s, void *plugin)
{
    free(porter_data_get(s));
    porter_data_set(s, NULL);
    return PORTER_DECLINED;
}

/* spf_action_arg - KEY=accept|deny|denysoft; fallback when absent */
static int spf_action_arg(porter_args *a, const char *key, int fallback)
{
    /* porter_arg_choice answers 0 when the key is absent: the fallback goes first */
    static const char *const choices[SPF_ACTION_COUNT] = {
        "accept|deny|denysoft", "deny|accept|denysoft", "denysoft|accept|deny",
    };
    static const int values[SPF_ACTION_COUNT][SPF_ACTION_COUNT] = {
        {SPF_ACTION_ACCEPT, SPF_ACTION_DENY, SPF_ACTION_DENYSOFT},
        {SPF_ACTION_DENY, SPF_ACTION_ACCEPT, SPF_ACTION_DENYSOFT},
        {SPF_ACTION_DENYSOFT, SPF_ACTION_ACCEPT, SPF_ACTION_DENY},
    };
    return values[fallback][porter_arg_choice(a, key, choices[fallback])];
}

static void *spf_init(porter_args *a)
{
    struct spf *p = calloc(1, sizeof *p);
    if (p == NULL)
        abort();
    p->actions[SPF_CHECK_PASS] = SPF_ACTION_ACCEPT;
    p->actions[SPF_CHECK_FAIL] = spf_action_arg(a, "fail", SPF_ACTION_DENY);
    p->actions[SPF_CHECK_SOFTFAIL] = spf_action_arg(a, "softfail", SPF_ACTION_ACCEPT);
    p->actions[SPF_CHECK_NEUTRAL] = spf_action_arg(a, "neutral", SPF_ACTION_ACCEPT);
    p->actions[SPF_CHECK_NONE] = spf_action_arg(a, "none", SPF_ACTION_ACCEPT);
    p->actions[SPF_CHECK_TEMPERROR] = spf_action_arg(a, "temperror", SPF_ACTION_DENYSOFT);
    p->actions[SPF_CHECK_PERMERROR] = spf_action_arg(a, "permerror", SPF_ACTION_ACCEPT);
    p->reject_at_mail = porter_arg_choice(a, "reject_at", "rcpt|mail") == 1;
    p->check_helo = porter_arg_bool(a, "check_helo", false);
    p->received_spf = porter_arg_bool(a, "received_spf", false);
    p->trusted = porter_arg_cidr(a, "trusted");
    p->layer.destroy = NULL; /* shared by every SPF_server_t; freed with the plugin */
    p->layer.lookup = spf_dns_lookup;
    p->layer.name = "porter";
    /* libspf2 prints warnings and notes on stderr; errors (internal ones) still abort */
    SPF_warning_handler = NULL;
    SPF_info_handler = NULL;
    SPF_debug_handler = NULL;
    return p;
}

static void spf_fini(void *state)
{
    struct spf *p = state;
    if (p == NULL)
        return;
    porter_cidr_free(p->trusted);
    free(p);
}

PORTER_PLUGIN(.name = "spf",
              .description = "Checks with SPF (RFC 7208) that the sender's domain lets the client "
                             "send its mail. libspf2 runs on the thread pool with DNS through "
                             "Porter's resolver; the plugin records the result for dmarc and the "
                             "Authentication-Results header. The MAIL FROM domain is checked (for "
                             "the null sender the HELO name; with check_helo=yes the HELO name as "
                             "well). Relay clients, authenticated users and trusted= clients are "
                             "not checked. Each result is accept, deny (550 5.7.23; 5.7.24 for "
                             "permerror) or denysoft (451 4.7.23; 4.7.24 for temperror).",
              .arguments = PORTER_ARGUMENTS(
                  {"fail", "deny", "What a fail gets: accept, deny or denysoft."},
                  {"softfail", "accept", "What a softfail gets."},
                  {"neutral", "accept", "What a neutral gets."},
                  {"none", "accept", "What none (no SPF record) gets."},
                  {"temperror", "denysoft", "What a temporary DNS error gets."},
                  {"permerror", "accept", "What a broken SPF record gets."},
                  {"reject_at", "rcpt",
                   "Where a refusal is answered: rcpt (to every RCPT of the transaction; put spf "
                   "before rcpt_ok) or mail."},
                  {"check_helo", "no",
                   "yes also checks the HELO name; the stricter result wins."},
                  {"received_spf", "no",
                   "yes adds a Received-SPF header (RFC 7208 section 9.1) on top of the message."},
                  {"trusted", NULL, "Clients never checked: a CIDR list or a file of them."}),
              .init = spf_init, .fini = spf_fini,
              .hooks[PORTER_HOOK_MAIL] = spf_mail, .hooks[PORTER_HOOK_RCPT] = spf_rcpt,
              .hooks[PORTER_HOOK_DATA_POST] = spf_data_post,
              .hooks[PORTER_HOOK_DISCONNECT] = spf_disconnect);
