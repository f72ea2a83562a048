/*
 * dnsbl_common.c - zones, names and background lookups shared by the dnsbl and rhsbl plugins
 * (see dnsbl_common.h for the behaviour). Compiled into each of the two plugins and into the
 * unit test; it reaches the core only through plugin.h.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dnsbl_common.h"

/* ---------------------------------------------------------------- zones and answers */

/* dnsbl_ipv4 - a dotted quad in host order; 0 or -1 */
static int dnsbl_ipv4(const char *text, uint32_t *out)
{
    struct in_addr address;
    if (inet_pton(AF_INET, text, &address) != 1)
        return -1;
    *out = ntohl(address.s_addr);
    return 0;
}

int dnsbl_match_parse(const char *text, struct dnsbl_range *ranges, size_t *count, char *error,
                      size_t error_size)
{
    *count = 0;
    const char *p = text;
    while (1) {
        size_t length = strcspn(p, ";");
        char part[64], *dash;
        if (length == 0 || length >= sizeof part) {
            snprintf(error, error_size, "match \"%s\": an empty or overlong part", text);
            return -1;
        }
        memcpy(part, p, length);
        part[length] = '\0';
        dash = strchr(part, '-');
        if (dash != NULL)
            *dash = '\0';
        struct dnsbl_range range;
        if (dnsbl_ipv4(part, &range.first) != 0 ||
            dnsbl_ipv4(dash ? dash + 1 : part, &range.last) != 0 || range.first > range.last) {
            snprintf(error, error_size, "match \"%s\": \"%.*s\" is not an IPv4 address or a "
                     "range FIRST-LAST", text, (int)length, p);
            return -1;
        }
        if (*count == DNSBL_RANGES_MAX) {
            snprintf(error, error_size, "match \"%s\": more than %d ranges", text,
                     DNSBL_RANGES_MAX);
            return -1;
        }
        ranges[(*count)++] = range;
        if (p[length] == '\0')
            return 0;
        p += length + 1;
    }
}

/* dnsbl_name_valid - a domain name as DNS lists use them: letters, digits, '_' and '-' (not
 * first or last in a label), labels of 1-63 bytes, no final dot (the caller drops it) */
static bool dnsbl_name_valid(const char *name)
{
    size_t label = 0;
    if (*name == '\0' || strlen(name) > 253)
        return false;
    for (const char *p = name;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || p[-1] == '-')
                return false;
            if (*p == '\0')
                return true;
            label = 0;
        } else if (isalnum((unsigned char)*p) || *p == '_' || (*p == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
}

void dnsbl_zones_free(struct dnsbl_zones *zones)
{
    for (size_t i = 0; i < zones->count; i++)
        free(zones->items[i].name);
    zones->count = 0;
}

int dnsbl_zones_parse(const char *text, const char *match_default, struct dnsbl_zones *zones,
                      char *error, size_t error_size)
{
    memset(zones, 0, sizeof *zones);
    const char *p = text;
    while (1) {
        size_t length = strcspn(p, ",");
        char entry[512];
        if (length >= sizeof entry) {
            snprintf(error, error_size, "zones: an entry is too long");
            goto fail;
        }
        memcpy(entry, p, length);
        entry[length] = '\0';
        char *match = strchr(entry, '=');
        if (match != NULL)
            *match++ = '\0';
        size_t name_length = strlen(entry);
        if (name_length > 1 && entry[name_length - 1] == '.')
            entry[name_length - 1] = '\0';
        for (char *c = entry; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (!dnsbl_name_valid(entry)) {
            snprintf(error, error_size, "zones: \"%s\" is not a DNS zone name", entry);
            goto fail;
        }
        for (size_t i = 0; i < zones->count; i++) {
            if (strcmp(zones->items[i].name, entry) == 0) {
                snprintf(error, error_size, "zones: %s is given twice", entry);
                goto fail;
            }
        }
        if (zones->count == DNSBL_ZONES_MAX) {
            snprintf(error, error_size, "zones: more than %d zones", DNSBL_ZONES_MAX);
            goto fail;
        }
        struct dnsbl_zone *zone = &zones->items[zones->count];
        if (dnsbl_match_parse(match ? match : match_default, zone->ranges, &zone->range_count,
                              error, error_size) != 0)
            goto fail;
        zone->name = strdup(entry);
        if (zone->name == NULL) {
            snprintf(error, error_size, "out of memory");
            goto fail;
        }
        zones->count++;
        if (p[length] == '\0')
            return 0;
        p += length + 1;
    }
fail:
    dnsbl_zones_free(zones);
    return -1;
}

enum dnsbl_answer_kind dnsbl_answer_kind(const struct dnsbl_zone *zone, const char *address)
{
    uint32_t value;
    if (dnsbl_ipv4(address, &value) != 0 || (value >> 24) != 127)
        return DNSBL_ANSWER_INVALID;
    for (size_t i = 0; i < zone->range_count; i++)
        if (value >= zone->ranges[i].first && value <= zone->ranges[i].last)
            return DNSBL_ANSWER_LISTED;
    return DNSBL_ANSWER_IGNORED;
}

/* ---------------------------------------------------------------- names */

int dnsbl_ip_name(const char *ip, const char *zone, char *out, size_t size)
{
    unsigned char bytes[16];
    int n;
    if (inet_pton(AF_INET, ip, bytes) == 1) {
        n = snprintf(out, size, "%u.%u.%u.%u.%s", bytes[3], bytes[2], bytes[1], bytes[0], zone);
    } else if (inet_pton(AF_INET6, ip, bytes) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(bytes, mapped, sizeof mapped) == 0)
            n = snprintf(out, size, "%u.%u.%u.%u.%s", bytes[15], bytes[14], bytes[13], bytes[12],
                         zone);
        else {
            static const char hex[] = "0123456789abcdef";
            char nibbles[64];
            for (int i = 0; i < 16; i++) {
                nibbles[4 * i] = hex[bytes[15 - i] & 15];
                nibbles[4 * i + 1] = '.';
                nibbles[4 * i + 2] = hex[bytes[15 - i] >> 4];
                nibbles[4 * i + 3] = '.';
            }
            n = snprintf(out, size, "%.64s%s", nibbles, zone);
        }
    } else {
        return -1;
    }
    return n < 0 || (size_t)n >= size || n > 253 ? -1 : 0;
}

int dnsbl_domain_name(const char *domain, const char *zone, char *out, size_t size)
{
    char name[256];
    size_t length = strlen(domain);
    if (length > 1 && domain[length - 1] == '.')
        length--;
    if (length == 0 || length >= sizeof name)
        return -1;
    memcpy(name, domain, length);
    name[length] = '\0';
    for (char *c = name; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if (!dnsbl_name_valid(name))
        return -1; /* address literals ("[192.0.2.1]") and odd names are not asked */
    int n = snprintf(out, size, "%s.%s", name, zone);
    return n < 0 || (size_t)n >= size || n > 253 ? -1 : 0;
}

void dnsbl_txt_clean(const char *text, size_t length, char *out, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < length && n + 1 < size && n < DNSBL_TXT_MAX; i++) {
        unsigned char c = (unsigned char)text[i];
        out[n++] = c == '"' ? '\'' : (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (size > 0)
        out[n] = '\0';
}

bool dnsbl_rcpt_allowed(const char *list, const char *recipient)
{
    if (list == NULL || recipient == NULL)
        return false;
    const char *at = strrchr(recipient, '@');
    size_t local_length = at ? (size_t)(at - recipient) : strlen(recipient);
    for (const char *p = list; *p;) {
        size_t length = strcspn(p, ",");
        if (length > 0) {
            bool whole = memchr(p, '@', length) != NULL;
            size_t want = whole ? strlen(recipient) : local_length;
            if (length == want && strncasecmp(p, recipient, length) == 0)
                return true;
        }
        p += length + (p[length] == ',');
    }
    return false;
}

/* ---------------------------------------------------------------- settings */

int dnsbl_settings_read(porter_args *a, struct dnsbl_settings *settings)
{
    static const int actions[] = {PORTER_DENY, PORTER_DENYSOFT, PORTER_DECLINED};
    memset(settings, 0, sizeof *settings);
    const char *zones = porter_arg_string(a, "zones", NULL);
    const char *match = porter_arg_string(a, "match", DNSBL_MATCH_DEFAULT);
    settings->action = actions[porter_arg_choice(a, "action", "deny|denysoft|log")];
    settings->code = settings->action == PORTER_DENYSOFT ? 451 : 554;
    snprintf(settings->enhanced, sizeof settings->enhanced, "%s",
             settings->action == PORTER_DENYSOFT ? "4.7.1" : "5.7.1");
    settings->allow_rcpt = strdup(porter_arg_string(a, "allow_rcpt", "postmaster,abuse"));
    settings->allow = porter_arg_cidr(a, "allow");
    settings->txt = porter_arg_bool(a, "txt", true);
    settings->wait = dnsbl_wait_seconds(a);
    char error[300];
    if (zones == NULL) {
        porter_arg_error(a, "zones= is required (zones=bl.example.net[,...])");
        return -1;
    }
    if (dnsbl_zones_parse(zones, match, &settings->zones, error, sizeof error) != 0) {
        porter_arg_error(a, "%s", error);
        return -1;
    }
    return settings->allow_rcpt != NULL ? 0 : -1;
}

void dnsbl_settings_free(struct dnsbl_settings *settings)
{
    if (settings == NULL)
        return;
    dnsbl_zones_free(&settings->zones);
    free(settings->allow_rcpt);
    porter_cidr_free(settings->allow);
}

/* dnsbl_count_words - words separated by commas or white space */
static size_t dnsbl_count_words(const char *text)
{
    size_t count = 0;
    for (const char *p = text; *p;) {
        p += strspn(p, ", \t");
        size_t length = strcspn(p, ", \t");
        count += length > 0;
        p += length;
    }
    return count;
}

double dnsbl_wait_seconds(porter_args *a)
{
    const char *timeout = porter_setting(a, "dns_timeout");
    const char *retries = porter_setting(a, "dns_retries");
    const char *servers = porter_setting(a, "dns_servers");
    size_t server_count = servers != NULL ? dnsbl_count_words(servers) : 0;
    if (servers == NULL) {
        FILE *f = fopen("/etc/resolv.conf", "r");
        char line[256];
        while (f != NULL && fgets(line, sizeof line, f) != NULL)
            server_count += strncmp(line, "nameserver", 10) == 0;
        if (f != NULL)
            fclose(f);
    }
    if (server_count == 0)
        server_count = 1;
    double one = (timeout ? atof(timeout) : 3) * (double)server_count *
                 (double)((retries ? atol(retries) : 2) + 1);
    return 2 * one + 5; /* the A lookup, then the TXT lookup */
}

/* ---------------------------------------------------------------- background lookups */

static const char *const dnsbl_status_names[DNSBL_STATUS_COUNT] = {
    "pending", "not_listed", "listed", "tempfail"};

/* dnsbl_label - how a reply names what was listed */
static const char *dnsbl_label(const char *what)
{
    return strcmp(what, "helo") == 0     ? "Helo command"
           : strcmp(what, "sender") == 0 ? "Sender domain"
                                         : "Client host";
}

static void dnsbl_set_free(struct dnsbl_set *set)
{
    for (size_t i = 0; i < set->count; i++)
        free(set->checks[i].txt);
    free(set);
}

/* dnsbl_check_name - the name k asks (built again when needed, never kept); 0 or -1 */
static int dnsbl_check_name(const struct dnsbl_check *k, char *out, size_t size)
{
    return k->set->ip ? dnsbl_ip_name(k->set->name, k->zone->name, out, size)
                      : dnsbl_domain_name(k->set->name, k->zone->name, out, size);
}

/* dnsbl_unlink - take set off its connection's list */
static void dnsbl_unlink(struct dnsbl_set *set)
{
    struct dnsbl_set **link = &set->connection->sets;
    while (*link != NULL && *link != set)
        link = &(*link)->next;
    if (*link == set)
        *link = set->next;
}

/* dnsbl_pending - lookups out in the sets that count (not retired) */
static size_t dnsbl_pending(const struct dnsbl_connection *c)
{
    size_t pending = 0;
    for (const struct dnsbl_set *set = c->sets; set != NULL; set = set->next)
        pending += set->retired ? 0 : set->pending;
    return pending;
}

/* dnsbl_verdict - the refusal for the first listing (newest set first: the sender before
 * the HELO name), or DECLINED; text receives the reply */
static int dnsbl_verdict(const struct dnsbl_connection *c, char *text, size_t size)
{
    const struct dnsbl_settings *settings = c->settings;
    if (settings->action == PORTER_DECLINED)
        return PORTER_DECLINED;
    for (const struct dnsbl_set *set = c->sets; set != NULL; set = set->next) {
        for (size_t i = 0; !set->retired && i < set->count; i++) {
            const struct dnsbl_check *k = &set->checks[i];
            if (k->status != DNSBL_LISTED)
                continue;
            snprintf(text, size, "Service unavailable; %s [%s] blocked using %s%s%s",
                     dnsbl_label(set->what), set->name, k->zone->name, k->txt ? "; " : "",
                     k->txt ? k->txt : "");
            return settings->action;
        }
    }
    return PORTER_DECLINED;
}

/* dnsbl_set_listed - whether a zone listed the set's name */
static bool dnsbl_set_listed(const struct dnsbl_set *set)
{
    for (size_t i = 0; i < set->count; i++)
        if (set->checks[i].status == DNSBL_LISTED)
            return true;
    return false;
}

/* dnsbl_wake - the last answer is in: give the waiting RCPT its verdict */
static void dnsbl_wake(struct dnsbl_connection *c)
{
    if (!c->waiting || dnsbl_pending(c) > 0)
        return;
    c->waiting = false;
    char text[512];
    int rc = dnsbl_verdict(c, text, sizeof text);
    if (rc == PORTER_DECLINED)
        porter_resume(c->handle, PORTER_DECLINED, 0, NULL, "%s", "");
    else
        porter_resume(c->handle, rc, c->settings->code, c->settings->enhanced, "%s", text);
}

/* dnsbl_log - one line per listing, failure or misbehaving answer */
static void dnsbl_log(porter_session *s, const struct dnsbl_check *k, int level, const char *why)
{
    char answer[32] = "";
    if (k->answer != 0)
        snprintf(answer, sizeof answer, " answer=%u.%u.%u.%u", k->answer >> 24,
                 (k->answer >> 16) & 255, (k->answer >> 8) & 255, k->answer & 255);
    porter_log(s, level, "event=dnsbl what=%s name=%s zone=%s result=%s%s%s%s%s%s",
               k->set->what, k->set->name, k->zone->name, dnsbl_status_names[k->status], answer,
               k->txt ? " txt=\"" : "", k->txt ? k->txt : "", k->txt ? "\"" : "",
               why ? why : "");
}

static void dnsbl_answered(porter_session *s, void *arg, const struct porter_dns_answer *answer);

/* dnsbl_read_a - what the A records of a check say */
static void dnsbl_read_a(porter_session *s, struct dnsbl_check *k,
                         const struct porter_dns_answer *answer)
{
    if (answer->status == PORTER_DNS_NXDOMAIN || answer->status == PORTER_DNS_NODATA) {
        k->status = DNSBL_NOT_LISTED;
        return;
    }
    if (answer->status != PORTER_DNS_OK) {
        k->status = DNSBL_FAILED;
        char why[64];
        snprintf(why, sizeof why, " dns=%s action=accept", porter_dns_status_name(answer->status));
        dnsbl_log(s, k, PORTER_LOG_WARNING, why);
        return;
    }
    k->status = DNSBL_NOT_LISTED;
    char query[256];
    for (size_t i = 0; i < answer->count; i++) {
        const char *address = answer->records[i].text;
        enum dnsbl_answer_kind kind = dnsbl_answer_kind(k->zone, address);
        if (kind == DNSBL_ANSWER_LISTED && k->status != DNSBL_LISTED) {
            k->status = DNSBL_LISTED;
            dnsbl_ipv4(address, &k->answer);
        } else if (kind == DNSBL_ANSWER_INVALID) {
            if (dnsbl_check_name(k, query, sizeof query) != 0)
                query[0] = '\0';
            porter_log(s, PORTER_LOG_WARNING, "event=dnsbl_invalid_answer zone=%s name=%s "
                       "answer=%s error=\"not in 127.0.0.0/8: the zone misbehaves (expired "
                       "or wildcard domain?); ignored\"", k->zone->name, query, address);
        }
    }
    if (k->status != DNSBL_LISTED)
        return;
    /* porter_dns_background copies the name: query may go when this returns */
    if (k->set->connection->settings->txt && !k->set->retired &&
        dnsbl_check_name(k, query, sizeof query) == 0 &&
        porter_dns_background(s, PORTER_DNS_TXT, query, dnsbl_answered, k) == 0) {
        k->set->pending++;
        return;
    }
    dnsbl_log(s, k, PORTER_LOG_NOTICE, NULL);
}

/* dnsbl_answered - a background lookup of check arg is in */
static void dnsbl_answered(porter_session *s, void *arg, const struct porter_dns_answer *answer)
{
    struct dnsbl_check *k = arg;
    struct dnsbl_set *set = k->set;
    set->pending--;
    if (answer->type == PORTER_DNS_TXT) {
        if (answer->status == PORTER_DNS_OK && answer->count > 0) {
            char txt[DNSBL_TXT_MAX + 1];
            dnsbl_txt_clean(answer->records[0].text, answer->records[0].length, txt, sizeof txt);
            if (txt[0] != '\0')
                k->txt = strdup(txt); /* out of memory: the reply goes without it */
        }
        dnsbl_log(s, k, PORTER_LOG_NOTICE, NULL);
    } else {
        dnsbl_read_a(s, k, answer);
    }
    if (set->pending > 0)
        return;
    struct dnsbl_connection *c = set->connection;
    if (set->retired || !dnsbl_set_listed(set) || c->settings->action == PORTER_DECLINED) {
        dnsbl_unlink(set); /* nothing left to say at RCPT (action=log: it was logged) */
        dnsbl_set_free(set);
    }
    dnsbl_wake(c);
    if (c->sets == NULL && !c->waiting) {
        free(c); /* an idle session the lists do not name holds nothing */
        porter_data_set(s, NULL);
    }
}

/* dnsbl_connection_get - the connection's state, made on first use; NULL out of memory */
static struct dnsbl_connection *dnsbl_connection_get(porter_session *s,
                                                     const struct dnsbl_settings *settings)
{
    struct dnsbl_connection *c = porter_data_get(s);
    if (c == NULL && (c = calloc(1, sizeof *c)) != NULL) {
        c->settings = settings;
        porter_data_set(s, c);
    }
    return c;
}

void dnsbl_forget(porter_session *s, const char *what)
{
    struct dnsbl_connection *c = porter_data_get(s);
    struct dnsbl_set *set = c ? c->sets : NULL;
    while (set != NULL) {
        struct dnsbl_set *next = set->next;
        if (!set->retired && strcmp(set->what, what) == 0) {
            if (set->pending == 0) {
                dnsbl_unlink(set);
                dnsbl_set_free(set);
            } else {
                set->retired = true;
            }
        }
        set = next;
    }
}

void dnsbl_start(porter_session *s, const struct dnsbl_settings *settings, const char *what,
                 const char *name, bool ip)
{
    dnsbl_forget(s, what);
    if (porter_cidr_match(settings->allow, porter_client_ip(s)))
        return;
    struct dnsbl_connection *c = dnsbl_connection_get(s, settings);
    size_t count = settings->zones.count, name_size = strlen(name) + 1;
    struct dnsbl_set *set =
        c ? calloc(1, sizeof *set + count * sizeof set->checks[0] + name_size) : NULL;
    if (set == NULL) {
        porter_log(s, PORTER_LOG_ERR, "event=dnsbl what=%s error=\"out of memory\"", what);
        return;
    }
    set->what = what;
    set->name = memcpy(&set->checks[count], name, name_size);
    set->ip = ip;
    set->connection = c;
    set->next = c->sets;
    c->sets = set;
    for (size_t i = 0; i < count; i++) {
        struct dnsbl_check *k = &set->checks[set->count++];
        k->set = set;
        k->zone = &settings->zones.items[i];
        char query[256]; /* porter_dns_background copies it */
        if (dnsbl_check_name(k, query, sizeof query) == 0 &&
            porter_dns_background(s, PORTER_DNS_A, query, dnsbl_answered, k) == 0) {
            set->pending++;
        } else {
            k->status = DNSBL_FAILED;
            dnsbl_log(s, k, PORTER_LOG_INFO, " error=\"no name to ask\"");
        }
    }
}

int dnsbl_rcpt(porter_session *s, const struct dnsbl_settings *settings)
{
    struct dnsbl_connection *c = porter_data_get(s);
    if (c == NULL || porter_relay_client(s) || porter_auth_user(s) != NULL ||
        dnsbl_rcpt_allowed(settings->allow_rcpt, porter_hook_argument(s)))
        return PORTER_DECLINED;
    if (dnsbl_pending(c) > 0) {
        c->handle = porter_suspend(s);
        c->waiting = true;
        porter_wait_extend(c->handle, settings->wait);
        return PORTER_PENDING;
    }
    char text[512];
    int rc = dnsbl_verdict(c, text, sizeof text);
    if (rc == PORTER_DECLINED)
        return rc;
    return porter_reply(s, rc, settings->code, settings->enhanced, "%s", text);
}

int dnsbl_disconnect(porter_session *s, void *state)
{
    (void)state;
    struct dnsbl_connection *c = porter_data_get(s);
    if (c == NULL)
        return PORTER_DECLINED;
    while (c->sets != NULL) {
        struct dnsbl_set *next = c->sets->next;
        dnsbl_set_free(c->sets);
        c->sets = next;
    }
    free(c);
    porter_data_set(s, NULL);
    return PORTER_DECLINED;
}
