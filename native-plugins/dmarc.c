/*
 * dmarc - apply the DMARC policy (RFC 7489) of the message's From domain, with libopendmarc,
 * from the SPF and DKIM results that the spf and dkim_verify plugins left in notes.
 *
 * Hook: data_post; put it after dkim_verify (and spf anywhere before) in conf/plugins. The
 * policy record is fetched with the worker's asynchronous resolver (porter_dns_txt:
 * _dmarc.FROM-DOMAIN, then _dmarc.ORGANIZATIONAL-DOMAIN when the first has none), so nothing
 * waits on the event loop; libopendmarc parses it, checks SPF and DKIM alignment (adkim= and
 * aspf=, relaxed by default) and picks the policy (p=, or sp= for a subdomain). pct= is
 * honoured: a message outside the sample gets the next milder policy (RFC 7489 6.6.4).
 *
 * The organizational domain (RFC 7489 3.2: the public suffix plus one label) comes from libpsl
 * with the public suffix list (public_suffix_list=FILE; by default the newest of Debian's
 * /usr/share/publicsuffix list and libpsl's built-in copy; public_suffix_list=none turns it
 * off: then it is the last two labels of the domain). libopendmarc's relaxed alignment reads
 * the same file (Debian's public_suffix_list.dat by default) through its own loader.
 *
 * Inputs (native-plugins/auth_notes.h): spf, spf-domain, spf-identity (SPF counts only when it
 * passed, for an aligned domain); dkim-signatures (every passing signature counts; libopendmarc
 * prefers the one whose d= equals the From domain). A plugin that did not run counts as none.
 *
 * What happens on failure:
 *   p=reject      550 5.7.1 "Rejected by the DMARC policy of DOMAIN"
 *   p=quarantine  the message is accepted but held: porter_quarantine (queue_maildir then
 *                 delivers it to its quarantine Maildir)
 *   p=none        nothing (recorded)
 * A local override list (override=FILE: "DOMAIN ACTION" lines, ".DOMAIN" for its subdomains
 * too, ACTION none | quarantine | reject) caps what is done for a From domain: "none" only
 * records (for a mailing list that breaks DKIM, say), "quarantine" never rejects.
 * A temporary DNS error gives dmarc=temperror (accepted, or 451 4.7.1 with temperror=denysoft);
 * a broken record gives dmarc=permerror (accepted); no record gives dmarc=none. A message with
 * From addresses in different domains (several From headers) is refused: 550 5.7.1.
 * Relay clients and authenticated users are not checked unless check_relay=yes.
 *
 * Notes: dmarc, dmarc-domain, dmarc-policy, dmarc-disposition, and auth-results:dmarc
 * ("dmarc=fail (p=reject dis=reject) header.from=example.org").
 *
 * Arguments: public_suffix_list=FILE|none, override=FILE, temperror=accept|denysoft,
 *            check_relay=no|yes.
 * libopendmarc keeps its public suffix list in process-wide state: it is loaded by the first
 * instance and freed with the last one (so a reload keeps the list that was loaded first).
 * libpsl's list is the instance's own (freed by fini).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/types.h>
#include <unistd.h>

#include <libpsl.h>
#include <opendmarc/dmarc.h>

#include <porter/plugin.h>

#include "auth_notes.h"

#define DMARC_DEFAULT_PSL "/usr/share/publicsuffix/public_suffix_list.dat"
#define DMARC_DOMAIN_MAX 256
#define DMARC_FROM_MAX 16           /* From headers looked at */
#define DMARC_RECORD_MAX 2048


/* What is done with a message, mildest first. */
enum dmarc_action { DMARC_ACTION_NONE = 0, DMARC_ACTION_QUARANTINE, DMARC_ACTION_REJECT,
                    DMARC_ACTION_COUNT };

static const char *const dmarc_action_names[DMARC_ACTION_COUNT] = {"none", "quarantine", "reject"};

static const char *dmarc_action_name(int action)
{
    return action >= 0 && action < DMARC_ACTION_COUNT ? dmarc_action_names[action] : "none";
}

/* One line of the override list. */
struct dmarc_override {
    char *domain;               /* "example.org", or ".example.org" for it and subdomains */
    int action;                 /* the most that is done */
};

/* Instances that use libopendmarc's process-wide state; init and fini run on one thread. */
static unsigned dmarc_library_users;

struct dmarc {
    struct dmarc_override *overrides;
    size_t override_count;
    psl_ctx_t *suffixes;        /* libpsl's list; NULL with public_suffix_list=none */
    bool temperror_denysoft;
    bool check_relay;
};

/* One evaluation, across its DNS lookups. */
struct dmarc_job {
    struct dmarc *plugin;
    DMARC_POLICY_T *policy;
    char from[DMARC_DOMAIN_MAX];
    char organizational[DMARC_DOMAIN_MAX];
};

/* ---------------------------------------------------------------- helpers */

static void dmarc_lower(char *text)
{
    for (; *text; text++)
        if (*text >= 'A' && *text <= 'Z')
            *text = (char)(*text + 32);
}

/* dmarc_domain_valid - letters, digits, '-', '_' and '.'; at least one dot */
static bool dmarc_domain_valid(const char *domain)
{
    size_t length = strlen(domain);
    if (length == 0 || length > 253 || strchr(domain, '.') == NULL)
        return false;
    for (const char *p = domain; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return true;
}

/* dmarc_under - is domain equal to parent or below it? */
static bool dmarc_under(const char *domain, const char *parent)
{
    size_t length = strlen(domain), parent_length = strlen(parent);
    if (length == parent_length)
        return strcasecmp(domain, parent) == 0;
    return length > parent_length && domain[length - parent_length - 1] == '.' &&
           strcasecmp(domain + length - parent_length, parent) == 0;
}

/* dmarc_last_two - the last two labels of domain (the whole domain if it has two or fewer) */
static const char *dmarc_last_two(const char *domain)
{
    const char *last = strrchr(domain, '.');
    const char *second = NULL;
    for (const char *p = domain; last != NULL && p < last; p++)
        if (*p == '.')
            second = p;
    return second != NULL ? second + 1 : domain;
}

/* dmarc_organizational - RFC 7489 3.2: the public suffix plus one label (libpsl; a name that
 * is itself a public suffix stays as it is); without a list, the last two labels */
static void dmarc_organizational(const struct dmarc *plugin, const char *domain, char *out,
                                 size_t size)
{
    const char *registrable =
        plugin->suffixes != NULL ? psl_registrable_domain(plugin->suffixes, domain) : NULL;
    snprintf(out, size, "%s", registrable != NULL        ? registrable
                              : plugin->suffixes != NULL ? domain
                                                         : dmarc_last_two(domain));
}

/* dmarc_override_for - the most that may be done for domain (reject when not listed) */
static int dmarc_override_for(const struct dmarc *plugin, const char *domain)
{
    for (size_t i = 0; i < plugin->override_count; i++) {
        const char *entry = plugin->overrides[i].domain;
        if (entry[0] == '.' ? dmarc_under(domain, entry + 1) : strcasecmp(domain, entry) == 0)
            return plugin->overrides[i].action;
    }
    return DMARC_ACTION_REJECT;
}

/* dmarc_record - the one DMARC record among TXT records; NULL when none or several
 * (RFC 7489 6.6.3: then DMARC does not apply) */
static const char *dmarc_record(const struct porter_dns_answer *answer)
{
    const char *found = NULL;
    for (size_t i = 0; i < answer->count; i++) {
        const char *text = answer->records[i].text;
        if (strncasecmp(text, "v=DMARC1", 8) != 0 || strlen(text) != answer->records[i].length)
            continue;
        const char *rest = text + 8 + strspn(text + 8, " \t");
        if (*rest != ';' && *rest != '\0')
            continue;
        if (found != NULL)
            return NULL;
        found = text;
    }
    return found;
}

/* ---------------------------------------------------------------- the evaluation */

static void dmarc_job_free(struct dmarc_job *job)
{
    if (job->policy != NULL)
        opendmarc_policy_connect_shutdown(job->policy);
    free(job);
}

/* dmarc_finish - notes, log and verdict; frees the job */
static int dmarc_finish(porter_session *s, struct dmarc_job *job, const char *result,
                        const char *policy, int action, const char *detail)
{
    char resinfo[512];
    if (policy != NULL)
        snprintf(resinfo, sizeof resinfo, "dmarc=%s (p=%s dis=%s) header.from=%s", result, policy,
                 dmarc_action_name(action), job->from);
    else
        snprintf(resinfo, sizeof resinfo, "dmarc=%s header.from=%s", result, job->from);
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_DMARC, result);
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_DMARC_DOMAIN, job->from);
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_DMARC_POLICY, policy ? policy : "none");
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_DMARC_DISPOSITION, dmarc_action_name(action));
    porter_note_set(s, PORTER_TRANSACTION, AUTH_NOTE_RESULTS_DMARC, resinfo);
    porter_log(s, PORTER_LOG_INFO, "event=dmarc result=%s domain=%s policy=%s disposition=%s%s%s",
               result, job->from, policy ? policy : "-", dmarc_action_name(action),
               detail ? " detail=" : "", detail ? detail : "");
    char from[DMARC_DOMAIN_MAX];
    snprintf(from, sizeof from, "%s", job->from);
    bool denysoft = strcmp(result, "temperror") == 0 && job->plugin->temperror_denysoft;
    dmarc_job_free(job);
    if (denysoft)
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.7.1",
                            "Temporary DNS error checking the DMARC policy of %s, try again later",
                            from);
    if (action == DMARC_ACTION_REJECT)
        return porter_reply(s, PORTER_DENY, 550, "5.7.1", "Rejected by the DMARC policy of %s",
                            from);
    if (action == DMARC_ACTION_QUARANTINE) {
        char reason[300];
        snprintf(reason, sizeof reason, "dmarc: the policy of %s says quarantine", from);
        porter_quarantine(s, reason);
    }
    return PORTER_DECLINED;
}

/* dmarc_store_results - the SPF and DKIM notes into libopendmarc */
static void dmarc_store_results(porter_session *s, struct dmarc_job *job)
{
    const char *spf = porter_note_get(s, PORTER_TRANSACTION, AUTH_NOTE_SPF);
    const char *spf_domain = porter_note_get(s, PORTER_TRANSACTION, AUTH_NOTE_SPF_DOMAIN);
    const char *identity = porter_note_get(s, PORTER_TRANSACTION, AUTH_NOTE_SPF_IDENTITY);
    if (spf != NULL && spf_domain != NULL && dmarc_domain_valid(spf_domain)) {
        int outcome = DMARC_POLICY_SPF_OUTCOME_NONE;
        if (strcmp(spf, "pass") == 0)
            outcome = DMARC_POLICY_SPF_OUTCOME_PASS;
        else if (strcmp(spf, "fail") == 0 || strcmp(spf, "softfail") == 0)
            outcome = DMARC_POLICY_SPF_OUTCOME_FAIL;
        else if (strcmp(spf, "temperror") == 0)
            outcome = DMARC_POLICY_SPF_OUTCOME_TMPFAIL;
        int origin = identity != NULL && strcmp(identity, "helo") == 0
                         ? DMARC_POLICY_SPF_ORIGIN_HELO
                         : DMARC_POLICY_SPF_ORIGIN_MAILFROM;
        opendmarc_policy_store_spf(job->policy, (u_char *)spf_domain, outcome, origin, NULL);
    }
    const char *signatures = porter_note_get(s, PORTER_TRANSACTION, AUTH_NOTE_DKIM_SIGNATURES);
    for (const char *line = signatures; line != NULL && *line != '\0';) {
        size_t length = strcspn(line, "\n");
        char copy[512], result[32], domain[DMARC_DOMAIN_MAX], selector[128];
        snprintf(copy, sizeof copy, "%.*s", (int)(length < sizeof copy ? length : sizeof copy - 1),
                 line);
        if (sscanf(copy, "%31s %255s %127s", result, domain, selector) == 3 &&
            dmarc_domain_valid(domain)) {
            int outcome = strcmp(result, "pass") == 0        ? DMARC_POLICY_DKIM_OUTCOME_PASS
                          : strcmp(result, "temperror") == 0 ? DMARC_POLICY_DKIM_OUTCOME_TMPFAIL
                                                             : DMARC_POLICY_DKIM_OUTCOME_FAIL;
            opendmarc_policy_store_dkim(job->policy, (u_char *)domain, (u_char *)selector, outcome,
                                        NULL);
        }
        line += length + (line[length] == '\n');
    }
}

/* dmarc_evaluate - a record was found (for the From domain, or its organizational domain) */
static int dmarc_evaluate(porter_session *s, struct dmarc_job *job, const char *record,
                          bool organizational)
{
    u_char copy[DMARC_RECORD_MAX];
    snprintf((char *)copy, sizeof copy, "%s", record);
    u_char *organizational_domain = organizational ? (u_char *)job->organizational : NULL;
    int status = opendmarc_policy_store_dmarc(job->policy, copy, (u_char *)job->from,
                                              organizational_domain);
    if (status != DMARC_PARSE_OKAY)
        return dmarc_finish(s, job, "permerror", NULL, DMARC_ACTION_NONE,
                            opendmarc_policy_status_to_str(status));
    dmarc_store_results(s, job);
    int verdict = opendmarc_get_policy_to_enforce(job->policy);
    int p = 0, sp = 0, pct = 100;
    opendmarc_policy_fetch_p(job->policy, &p);
    opendmarc_policy_fetch_sp(job->policy, &sp);
    opendmarc_policy_fetch_pct(job->policy, &pct);
    bool subdomain_policy = opendmarc_get_policy_token_used(job->policy) == DMARC_USED_POLICY_IS_SP;
    int published = subdomain_policy ? sp : p;
    const char *policy = published == DMARC_RECORD_P_REJECT       ? "reject"
                         : published == DMARC_RECORD_P_QUARANTINE ? "quarantine"
                                                                  : "none";
    int action = DMARC_ACTION_NONE;
    switch (verdict) {
    case DMARC_POLICY_PASS:
        return dmarc_finish(s, job, "pass", policy, DMARC_ACTION_NONE, NULL);
    case DMARC_POLICY_REJECT:
        action = DMARC_ACTION_REJECT;
        break;
    case DMARC_POLICY_QUARANTINE:
        action = DMARC_ACTION_QUARANTINE;
        break;
    case DMARC_POLICY_NONE:
        break;
    default:
        return dmarc_finish(s, job, "none", NULL, DMARC_ACTION_NONE,
                            opendmarc_policy_status_to_str(verdict));
    }
    const char *detail = NULL;
    if (pct >= 0 && pct < 100 && action != DMARC_ACTION_NONE) {
        unsigned char draw = 0;
        if (getrandom(&draw, 1, GRND_NONBLOCK) != 1)
            draw = (unsigned char)getpid();
        if (draw % 100 >= (unsigned)pct) {
            action--; /* outside the sample: the next milder policy */
            detail = "outside_pct";
        }
    }
    int most = dmarc_override_for(job->plugin, job->from);
    if (action > most) {
        action = most;
        detail = "local_override";
    }
    return dmarc_finish(s, job, "fail", policy, action, detail);
}

/* dmarc_answer - a _dmarc TXT answer: evaluate, ask the organizational domain, or finish */
static int dmarc_answer(porter_session *s, struct dmarc_job *job,
                        const struct porter_dns_answer *answer, bool organizational);

static int dmarc_answer_organizational(porter_session *s, void *arg,
                                       const struct porter_dns_answer *answer)
{
    return dmarc_answer(s, arg, answer, true);
}

static int dmarc_answer_from(porter_session *s, void *arg, const struct porter_dns_answer *answer)
{
    return dmarc_answer(s, arg, answer, false);
}

static int dmarc_answer(porter_session *s, struct dmarc_job *job,
                        const struct porter_dns_answer *answer, bool organizational)
{
    if (s == NULL) {
        dmarc_job_free(job);
        return PORTER_DECLINED;
    }
    if (answer->status == PORTER_DNS_TEMPFAIL)
        return dmarc_finish(s, job, "temperror", NULL, DMARC_ACTION_NONE, NULL);
    const char *record = answer->status == PORTER_DNS_OK ? dmarc_record(answer) : NULL;
    if (record != NULL)
        return dmarc_evaluate(s, job, record, organizational);
    if (!organizational && strcasecmp(job->from, job->organizational) != 0) {
        char name[DMARC_DOMAIN_MAX + 8];
        snprintf(name, sizeof name, "_dmarc.%s", job->organizational);
        return porter_dns_txt(s, name, dmarc_answer_organizational, job);
    }
    return dmarc_finish(s, job, "none", NULL, DMARC_ACTION_NONE, NULL);
}

/* dmarc_from_domain - the one From domain (libopendmarc's parser); 0, -1 when there is no
 * usable From, -2 when From addresses are in different domains */
static int dmarc_from_domain(porter_session *s, struct dmarc_job *job)
{
    size_t count = porter_header_count(s, "From");
    if (count == 0)
        return -1;
    for (size_t i = 0; i < count && i < DMARC_FROM_MAX; i++) {
        const char *value = porter_header_get(s, "From", i);
        char copy[1024];
        snprintf(copy, sizeof copy, "%s", value ? value : "");
        DMARC_POLICY_T *probe = opendmarc_policy_connect_init((u_char *)"0.0.0.0", 0);
        if (probe == NULL)
            return -1;
        u_char domain[DMARC_DOMAIN_MAX] = "";
        int status = opendmarc_policy_store_from_domain(probe, (u_char *)copy);
        if (status == DMARC_PARSE_OKAY)
            opendmarc_policy_fetch_from_domain(probe, domain, sizeof domain);
        opendmarc_policy_connect_shutdown(probe);
        dmarc_lower((char *)domain);
        if (status != DMARC_PARSE_OKAY || !dmarc_domain_valid((const char *)domain))
            return -1;
        if (i == 0)
            snprintf(job->from, sizeof job->from, "%s", (const char *)domain);
        else if (strcmp(job->from, (const char *)domain) != 0)
            return -2;
    }
    return 0;
}

static int dmarc_data_post(porter_session *s, void *state)
{
    struct dmarc *plugin = state;
    if (!plugin->check_relay && (porter_relay_client(s) || porter_auth_user(s) != NULL))
        return PORTER_DECLINED;
    struct dmarc_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Temporary local problem");
    job->plugin = plugin;
    int found = dmarc_from_domain(s, job);
    if (found == -2) {
        porter_log(s, PORTER_LOG_INFO, "event=dmarc result=permerror reason=\"From addresses in "
                   "different domains\"");
        dmarc_job_free(job);
        return porter_reply(s, PORTER_DENY, 550, "5.7.1",
                            "From addresses in different domains are not accepted");
    }
    if (found != 0) {
        porter_log(s, PORTER_LOG_INFO, "event=dmarc result=none reason=\"no usable From domain\"");
        dmarc_job_free(job);
        return PORTER_DECLINED;
    }
    const char *ip = porter_client_ip(s);
    job->policy = opendmarc_policy_connect_init((u_char *)ip, strchr(ip, ':') != NULL);
    if (job->policy == NULL ||
        opendmarc_policy_store_from_domain(job->policy, (u_char *)job->from) != DMARC_PARSE_OKAY) {
        dmarc_job_free(job);
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Temporary local problem");
    }
    dmarc_organizational(plugin, job->from, job->organizational, sizeof job->organizational);
    char name[DMARC_DOMAIN_MAX + 8];
    snprintf(name, sizeof name, "_dmarc.%s", job->from);
    return porter_dns_txt(s, name, dmarc_answer_from, job);
}

/* dmarc_load_overrides - the override file; 0, or -1 after porter_arg_error */
static int dmarc_load_overrides(porter_args *a, struct dmarc *plugin, const char *path)
{
    porter_list *list = porter_list_file(a, path);
    if (list == NULL)
        return -1;
    int errors = 0;
    for (size_t entry = 0; entry < porter_list_count(list); entry++) {
        const char *domain = porter_list_word(list, entry, 0);
        const char *action = porter_list_word(list, entry, 1);
        int index = -1;
        for (int i = 0; action != NULL && i < DMARC_ACTION_COUNT; i++)
            if (strcasecmp(action, dmarc_action_names[i]) == 0)
                index = i;
        const char *bare = domain[0] == '.' ? domain + 1 : domain;
        if (porter_list_word_count(list, entry) != 2 || index < 0 || strlen(domain) >= 300 ||
            !dmarc_domain_valid(bare)) {
            porter_arg_error(a, "override: %s:%d: want DOMAIN none|quarantine|reject", path,
                             porter_list_line(list, entry));
            errors++;
            continue;
        }
        struct dmarc_override *grown =
            realloc(plugin->overrides, (plugin->override_count + 1) * sizeof *grown);
        if (grown == NULL)
            abort();
        plugin->overrides = grown;
        plugin->overrides[plugin->override_count].domain = strdup(domain);
        if (plugin->overrides[plugin->override_count].domain == NULL)
            abort();
        dmarc_lower(plugin->overrides[plugin->override_count].domain);
        plugin->overrides[plugin->override_count++].action = index;
    }
    porter_list_free(list);
    return errors > 0 ? -1 : 0;
}

static void *dmarc_init(porter_args *a)
{
    struct dmarc *plugin = calloc(1, sizeof *plugin);
    if (plugin == NULL)
        abort();
    const char *psl = porter_arg_string(a, "public_suffix_list", NULL);
    const char *override = porter_arg_path(a, "override", NULL);
    plugin->temperror_denysoft = porter_arg_choice(a, "temperror", "accept|denysoft") == 1;
    plugin->check_relay = porter_arg_bool(a, "check_relay", false);
    if (override != NULL)
        dmarc_load_overrides(a, plugin, override);
    /* libpsl gives the organizational domain; libopendmarc loads the same file (Debian's
     * .dat by default) for its relaxed alignment checks */
    bool none = psl != NULL && strcmp(psl, "none") == 0;
    const char *path = psl != NULL && !none ? porter_arg_path(a, "public_suffix_list", psl) : NULL;
    if (!none) {
        plugin->suffixes = path != NULL ? psl_load_file(path) : psl_latest(NULL);
        if (plugin->suffixes == NULL)
            porter_arg_error(a, "public_suffix_list: libpsl cannot load %s",
                             path != NULL ? path : "the system's list");
    }
    const char *library_list = none             ? NULL
                               : path != NULL   ? path
                               : access(DMARC_DEFAULT_PSL, R_OK) == 0 ? DMARC_DEFAULT_PSL
                                                                      : NULL;
    OPENDMARC_LIB_T library;
    memset(&library, 0, sizeof library);
    library.tld_type = OPENDMARC_TLD_TYPE_NONE;
    if (library_list != NULL) {
        if (strlen(library_list) >= sizeof library.tld_source_file ||
            access(library_list, R_OK) != 0) {
            porter_arg_error(a, "public_suffix_list: cannot read %s", library_list);
        } else {
            library.tld_type = OPENDMARC_TLD_TYPE_MOZILLA;
            snprintf((char *)library.tld_source_file, sizeof library.tld_source_file, "%s",
                     library_list);
        }
    }
    if (++dmarc_library_users == 1) {
        int status = opendmarc_policy_library_init(&library);
        if (status != DMARC_PARSE_OKAY)
            porter_arg_error(a, "libopendmarc: cannot initialise (%s)", strerror(status));
    }
    return plugin;
}

static void dmarc_fini(void *state)
{
    struct dmarc *plugin = state;
    if (plugin == NULL)
        return;
    if (dmarc_library_users > 0 && --dmarc_library_users == 0) {
        OPENDMARC_LIB_T library;
        memset(&library, 0, sizeof library);
        opendmarc_policy_library_shutdown(&library);
    }
    for (size_t i = 0; i < plugin->override_count; i++)
        free(plugin->overrides[i].domain);
    free(plugin->overrides);
    psl_free(plugin->suffixes);
    free(plugin);
}

PORTER_PLUGIN(.name = "dmarc",
              .description = "Applies the DMARC policy (RFC 7489) of the From: domain. It uses "
                             "libopendmarc and the results that spf and dkim_verify recorded: put "
                             "it after both. p=reject gets 550 5.7.1; p=quarantine accepts and "
                             "holds the message (queue_maildir's quarantine Maildir, "
                             "queue_spool's hold queue); p=none only records. pct= is honoured. "
                             "The policy record is fetched with Porter's asynchronous resolver. A "
                             "message with From: addresses in different domains gets 550 5.7.1. "
                             "Relay clients and authenticated users are not checked unless "
                             "check_relay=yes.",
              .arguments = PORTER_ARGUMENTS(
                  {"public_suffix_list", "/usr/share/publicsuffix/public_suffix_list.dat",
                   "The public suffix list that gives organizational domains, read with libpsl "
                   "(by default the newest of Debian's list and libpsl's own copy); none: the "
                   "last two labels of the domain."},
                  {"override", NULL,
                   "A file of \"DOMAIN none|quarantine|reject\" lines (\".DOMAIN\" for its "
                   "subdomains too) that caps what is done for a From domain: none for a mailing "
                   "list that breaks DKIM, say."},
                  {"temperror", "accept",
                   "A temporary DNS error: accept (dmarc=temperror is recorded) or denysoft (451 "
                   "4.7.1)."},
                  {"check_relay", "no",
                   "yes also checks mail from relay clients and authenticated users."}),
              .init = dmarc_init, .fini = dmarc_fini,
              .hooks[PORTER_HOOK_DATA_POST] = dmarc_data_post);
