/*
 * greylist - greylisting: the first delivery attempt of a triplet (client network, sender,
 * recipient) is deferred; a real MTA retries, most spamware does not.
 *
 * Hook: rcpt. A triplet never seen gets "451 4.7.1" with the time to retry after (black=);
 * a retry before then gets the same with the time left; a retry after it, within grey=, passes
 * and the triplet is whitelisted for white= (refreshed as mail keeps coming). The client
 * network is the client's /24 (IPv4) or /64 (IPv6), so that a pool of outgoing servers counts
 * as one. A network whose triplets passed autowhitelist= times skips greylisting (for white=).
 * Relay clients, authenticated users, allow= clients, allow_from= senders and allow_rcpt=
 * recipients are never greylisted. State lives in the store (porter.conf store=: LMDB, or
 * Redis shared by several gateways); when the store cannot answer, on_store_error=accept
 * lets the recipient through (logged), tempfail answers 451 4.3.0.
 * Sender addresses are normalised so that a retry matches: BATV tags (prvs=TAG=) are dropped
 * and digit runs in the local part (VERP, SRS counters) read as '#'.
 * Each worker remembers whitelisted triplets and autowhitelisted networks for white_cache=
 * (never past their expiry in the store), so that the mail of known correspondents costs no
 * store round trip; a whitelisting removed from the store takes effect within that time.
 *
 * Memory: the settings and the worker's cache (allocated on first use) are the plugin's state,
 * freed by fini; one check per RCPT waiting for the store, freed by its last callback.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <porter/plugin.h>

#include "plugin_clock_hash.h"

/* A whitelisted triplet's expiry is pushed back at most this often, seconds. */
#define GREYLIST_REFRESH 3600.0
/* Triplet keys longer than this use a hash of the two addresses. */
#define GREYLIST_KEY_MAX 380
/* Slots of a worker's cache of whitelisted keys (a power of two: 16 bytes each). */
#define GREYLIST_CACHE_SLOTS 8192

/* One whitelisted key a worker remembers: its 64-bit hash, and until when (monotonic). */
struct greylist_cache_slot {
    uint64_t hash;                 /* 0: empty */
    double until;
};

struct greylist {
    double black, grey, white;
    long autowhitelist;
    int ipv4_prefix, ipv6_prefix;
    porter_cidr_list *allow;
    porter_list *allow_from, *allow_rcpt;
    bool tempfail;                 /* on_store_error=tempfail */
    double white_cache;            /* seconds a worker remembers a whitelisting; 0: never */
    struct greylist_cache_slot *cache; /* GREYLIST_CACHE_SLOTS, allocated on first use */
};

enum greylist_action {
    GREYLIST_NEW = 0,              /* never seen (or expired): record it, defer */
    GREYLIST_WAIT,                 /* seen, black period not over: defer */
    GREYLIST_PASS,                 /* retried after the black period: whitelist, pass */
    GREYLIST_WHITE,                /* whitelisted: pass */
    GREYLIST_WHITE_REFRESH,        /* whitelisted, expiry worth pushing back: pass */
    GREYLIST_ACTION_COUNT
};

/* One RCPT's check, from the hook to the store's answers. */
struct greylist_check {
    struct greylist *g;
    char network[64];
    char key[GREYLIST_KEY_MAX + 64];
    double now;
};

/* greylist_now - the wall clock, seconds (shared by processes and gateways) */
static double greylist_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* greylist_key_hash - a key's hash, never 0 (0 marks an empty cache slot) */
static uint64_t greylist_key_hash(const char *key)
{
    uint64_t hash = plugin_fnv(PLUGIN_FNV_START, key);
    return hash != 0 ? hash : 1;
}

/* greylist_cached - is key whitelisted in this worker's cache? */
static bool greylist_cached(const struct greylist *g, const char *key)
{
    if (g->cache == NULL)
        return false;
    uint64_t hash = greylist_key_hash(key);
    const struct greylist_cache_slot *slot = &g->cache[hash & (GREYLIST_CACHE_SLOTS - 1)];
    return slot->hash == hash && slot->until > plugin_monotonic();
}

/* greylist_remember - key is whitelisted for ttl more seconds in the store (-1: no expiry):
 * remember it for white_cache, at most ttl (a slot's older key is replaced) */
static void greylist_remember(struct greylist *g, const char *key, double ttl)
{
    if (g->white_cache <= 0)
        return;
    if (g->cache == NULL && (g->cache = calloc(GREYLIST_CACHE_SLOTS, sizeof *g->cache)) == NULL)
        return; /* no cache: every RCPT asks the store */
    double keep = ttl >= 0 && ttl < g->white_cache ? ttl : g->white_cache;
    uint64_t hash = greylist_key_hash(key);
    struct greylist_cache_slot *slot = &g->cache[hash & (GREYLIST_CACHE_SLOTS - 1)];
    slot->hash = hash;
    slot->until = plugin_monotonic() + keep;
}

/* greylist_network - the client's network ("192.0.2.0/24", "2001:db8::/64"); an IPv4-mapped
 * address is IPv4; -1 for something that is not an address */
static int greylist_network(const char *ip, int ipv4_prefix, int ipv6_prefix, char *out,
                            size_t size)
{
    unsigned char bytes[16];
    char text[INET6_ADDRSTRLEN];
    int family = AF_INET, prefix = ipv4_prefix, length = 4;
    if (inet_pton(AF_INET, ip, bytes) != 1) {
        if (inet_pton(AF_INET6, ip, bytes) != 1)
            return -1;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(bytes, mapped, 12) == 0) {
            memmove(bytes, bytes + 12, 4);
        } else {
            family = AF_INET6;
            prefix = ipv6_prefix;
            length = 16;
        }
    }
    for (int bit = prefix; bit < length * 8; bit++)
        bytes[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
    if (inet_ntop(family, bytes, text, sizeof text) == NULL)
        return -1;
    int written = snprintf(out, size, "%s/%d", text, prefix);
    return written > 0 && (size_t)written < size ? 0 : -1;
}

/* greylist_sender - the sender as greylisting compares it: lower case, a BATV tag
 * ("prvs=1234abcd=user@", "btv1==...==user@") dropped, digit runs in the local part as '#';
 * "<>" for the null sender */
static void greylist_sender(const char *sender, char *out, size_t size)
{
    if (sender == NULL || sender[0] == '\0') {
        snprintf(out, size, "<>");
        return;
    }
    const char *at = strrchr(sender, '@');
    const char *local = sender;
    const char *tag_end = NULL;
    if (strncasecmp(local, "prvs=", 5) == 0)
        tag_end = strchr(local + 5, '=');
    else if (strncasecmp(local, "btv1==", 6) == 0 && (tag_end = strstr(local + 6, "==")) != NULL)
        tag_end++;
    if (tag_end != NULL && (at == NULL || tag_end < at))
        local = tag_end + 1;
    size_t used = 0;
    bool in_domain = false;
    for (const char *p = local; *p != '\0' && used + 1 < size; p++) {
        if (p == at)
            in_domain = true;
        if (!in_domain && isdigit((unsigned char)*p)) {
            while (isdigit((unsigned char)p[1]))
                p++;
            out[used++] = '#';
            continue;
        }
        out[used++] = (char)tolower((unsigned char)*p);
    }
    out[used] = '\0';
}

/* greylist_triplet_key - "t:NETWORK,SENDER,RECIPIENT" (addresses as greylist_sender and lower
 * case); addresses too long for a key are replaced by their FNV-1a hash */
static void greylist_triplet_key(const char *network, const char *sender, const char *recipient,
                                 char *out, size_t size)
{
    char from[600], to[600];
    greylist_sender(sender, from, sizeof from);
    snprintf(to, sizeof to, "%s", recipient != NULL ? recipient : "");
    for (char *p = to; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    int written = snprintf(out, size, "t:%s,%s,%s", network, from, to);
    if (written > 0 && (size_t)written < size && written <= GREYLIST_KEY_MAX)
        return;
    uint64_t hash = plugin_fnv(plugin_fnv(plugin_fnv(PLUGIN_FNV_START, from), ","), to);
    snprintf(out, size, "t:%s,#%016llx", network, (unsigned long long)hash);
}

/* greylist_decide - what a triplet's record ("g FIRST" while grey, "w FIRST" once passed,
 * FIRST in milliseconds; NULL when there is none) and its ttl mean at now; *first gets the
 * time the triplet was first seen (now for a new one) */
static enum greylist_action greylist_decide(const struct greylist *g, const char *record,
                                            double ttl, double now, double *first)
{
    long long milliseconds = 0;
    char kind = 0, end = 0;
    *first = now;
    if (record == NULL || sscanf(record, "%c %lld%c", &kind, &milliseconds, &end) != 2 ||
        (kind != 'g' && kind != 'w') || milliseconds <= 0)
        return GREYLIST_NEW;
    *first = (double)milliseconds / 1000.0;
    if (kind == 'w')
        return ttl >= 0 && ttl < g->white - GREYLIST_REFRESH ? GREYLIST_WHITE_REFRESH
                                                             : GREYLIST_WHITE;
    return now - *first < g->black ? GREYLIST_WAIT : GREYLIST_PASS;
}

/* greylist_defer - the 451 that says when to come back */
static int greylist_defer(porter_session *s, const struct greylist_check *c, double first)
{
    double retry_at = first + c->g->black;
    double wait = retry_at - c->now;
    if (wait < 1)
        wait = 1;
    time_t when = (time_t)(retry_at + 0.999);
    struct tm tm;
    char clock[32];
    gmtime_r(&when, &tm);
    strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    porter_log(s, PORTER_LOG_INFO, "event=greylist result=defer network=%s retry_in=%.0fs",
               c->network, wait);
    return porter_reply(s, PORTER_DENYSOFT, 451, "4.7.1", "Greylisted: please try again in %.0f "
                        "seconds (at %s UTC or later)", wait, clock);
}

/* greylist_store_error - the store did not answer: on_store_error decides */
static int greylist_store_error(porter_session *s, struct greylist_check *c,
                                const struct porter_store_result *r)
{
    bool tempfail = c->g->tempfail;
    porter_log(s, PORTER_LOG_WARNING, "event=store_error action=%s error=\"%s\"",
               tempfail ? "tempfail" : "accept", r->error != NULL ? r->error : "unknown");
    free(c);
    if (tempfail)
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Temporary local problem, please "
                            "try again later");
    return PORTER_DECLINED;
}

/* greylist_answered - the start of every store callback: the check, or NULL when the session
 * is gone or the store failed (c is then freed and *rc is the verdict) */
static struct greylist_check *greylist_answered(porter_session *s, void *arg,
                                                const struct porter_store_result *r, int *rc)
{
    struct greylist_check *c = arg;
    *rc = PORTER_DECLINED;
    if (s == NULL) {
        free(c);
        return NULL;
    }
    if (r->status == PORTER_STORE_ERROR) {
        *rc = greylist_store_error(s, c, r);
        return NULL;
    }
    return c;
}

/* greylist_client_key - the store key of a network's count of passed triplets */
static void greylist_client_key(const char *network, char *out, size_t size)
{
    snprintf(out, size, "c:%s", network);
}

/* greylist_recorded - a new triplet was written: defer it */
static int greylist_recorded(porter_session *s, void *arg, const struct porter_store_result *r)
{
    int rc;
    struct greylist_check *c = greylist_answered(s, arg, r, &rc);
    if (c == NULL)
        return rc;
    rc = greylist_defer(s, c, c->now);
    free(c);
    return rc;
}

/* greylist_triplet - the triplet's record is in: decide */
static int greylist_triplet(porter_session *s, void *arg, const struct porter_store_result *r)
{
    int rc;
    struct greylist_check *c = greylist_answered(s, arg, r, &rc);
    if (c == NULL)
        return rc;
    struct greylist *g = c->g;
    double first;
    char record[64];
    switch (greylist_decide(g, r->status == PORTER_STORE_OK ? r->value : NULL, r->ttl, c->now,
                            &first)) {
    case GREYLIST_NEW:
        snprintf(record, sizeof record, "g %lld", (long long)(c->now * 1000.0));
        return porter_store_set(s, c->key, record, g->black + g->grey, greylist_recorded, c);
    case GREYLIST_WAIT:
        rc = greylist_defer(s, c, first);
        break;
    case GREYLIST_PASS:
        porter_log(s, PORTER_LOG_INFO, "event=greylist result=pass network=%s delay=%.0fs",
                   c->network, c->now - first);
        snprintf(record, sizeof record, "w %lld", (long long)(first * 1000.0));
        porter_store_set(s, c->key, record, g->white, NULL, NULL);
        greylist_remember(g, c->key, g->white);
        if (g->autowhitelist > 0) {
            char client[96];
            greylist_client_key(c->network, client, sizeof client);
            porter_store_increment(s, client, 1, g->white, NULL, NULL);
        }
        break;
    case GREYLIST_WHITE_REFRESH:
        porter_store_set(s, c->key, r->value, g->white, NULL, NULL);
        greylist_remember(g, c->key, g->white);
        break;
    case GREYLIST_WHITE:
        greylist_remember(g, c->key, r->ttl);
        break;
    default:
        break;
    }
    free(c);
    return rc;
}

/* greylist_client - the network's count of passed triplets: enough skips greylisting */
static int greylist_client(porter_session *s, void *arg, const struct porter_store_result *r)
{
    int rc;
    struct greylist_check *c = greylist_answered(s, arg, r, &rc);
    if (c == NULL)
        return rc;
    if (r->status == PORTER_STORE_OK && atol(r->value) >= c->g->autowhitelist) {
        char client[96];
        greylist_client_key(c->network, client, sizeof client);
        greylist_remember(c->g, client, r->ttl);
        free(c);
        return PORTER_DECLINED;
    }
    return porter_store_get(s, c->key, greylist_triplet, c);
}

static int greylist_rcpt(porter_session *s, void *state)
{
    struct greylist *g = state;
    const char *recipient = porter_hook_argument(s);
    if (porter_relay_client(s) || porter_auth_user(s) != NULL ||
        porter_cidr_match(g->allow, porter_client_ip(s)) ||
        porter_list_match_address(g->allow_from, porter_mail_from(s)) ||
        porter_list_match_address(g->allow_rcpt, recipient))
        return PORTER_DECLINED;
    struct greylist_check *c = calloc(1, sizeof *c);
    if (c == NULL)
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Temporary local problem");
    c->g = g;
    c->now = greylist_now();
    if (greylist_network(porter_client_ip(s), g->ipv4_prefix, g->ipv6_prefix, c->network,
                         sizeof c->network) != 0)
        snprintf(c->network, sizeof c->network, "%s", porter_client_ip(s));
    greylist_triplet_key(c->network, porter_mail_from(s), recipient, c->key, sizeof c->key);
    char client[96];
    greylist_client_key(c->network, client, sizeof client);
    if (greylist_cached(g, c->key) || (g->autowhitelist > 0 && greylist_cached(g, client))) {
        free(c);
        return PORTER_DECLINED;
    }
    if (g->autowhitelist > 0)
        return porter_store_get(s, client, greylist_client, c);
    return porter_store_get(s, c->key, greylist_triplet, c);
}

static void *greylist_init(porter_args *a)
{
    struct greylist *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->black = porter_arg_seconds(a, "black", 300);
    g->grey = porter_arg_seconds(a, "grey", 4 * 3600);
    g->white = porter_arg_seconds(a, "white", 36 * 86400);
    g->autowhitelist = porter_arg_integer(a, "autowhitelist", 0, 0, 1000000);
    g->ipv4_prefix = (int)porter_arg_integer(a, "ipv4_prefix", 24, 8, 32);
    g->ipv6_prefix = (int)porter_arg_integer(a, "ipv6_prefix", 64, 16, 128);
    g->allow = porter_arg_cidr(a, "allow");
    g->allow_from = porter_arg_list(a, "allow_from", NULL);
    g->allow_rcpt = porter_arg_list(a, "allow_rcpt", NULL);
    g->tempfail = porter_arg_choice(a, "on_store_error", "accept|tempfail") == 1;
    g->white_cache = porter_arg_seconds(a, "white_cache", 300);
    if (g->white_cache < 0)
        porter_arg_error(a, "white_cache must be 0 (off) or longer");
    if (g->black <= 0 || g->grey <= 0 || g->white <= 0)
        porter_arg_error(a, "black, grey and white must be longer than 0 seconds");
    return g;
}

static void greylist_fini(void *state)
{
    struct greylist *g = state;
    if (g == NULL)
        return;
    porter_cidr_free(g->allow);
    porter_list_free(g->allow_from);
    porter_list_free(g->allow_rcpt);
    free(g->cache);
    free(g);
}

PORTER_PLUGIN(.name = "greylist",
              .description = "Greylisting: the first attempt of a triplet (the client's /24 or "
                             "/64, the sender, the recipient) gets 451 4.7.1 saying when to try "
                             "again; a retry after black passes and whitelists the triplet for "
                             "white. Relay clients, authenticated users and allow= clients skip "
                             "it. State is in the store (porter.conf store=), so gateways that "
                             "share a Redis share it. Put it before rcpt_ok.",
              .arguments = PORTER_ARGUMENTS(
                  {"black", "5m", "How long a new triplet waits before a retry passes."},
                  {"grey", "4h", "How long after that a retry is still awaited; later, the "
                                 "triplet starts over."},
                  {"white", "36d", "How long a triplet that passed stays whitelisted (pushed "
                                   "back as its mail keeps coming)."},
                  {"allow", NULL, "Clients that are never greylisted: a CIDR list or a file "
                                  "of them."},
                  {"allow_from", NULL, "Senders never greylisted: addresses, @domain, domain or "
                                       ".domain (its subdomains), inline or a file."},
                  {"allow_rcpt", NULL, "Recipients never greylisted (postmaster@, abuse@), as "
                                       "allow_from."},
                  {"autowhitelist", "0", "A network whose triplets passed this many times skips "
                                         "greylisting for white; 0: never."},
                  {"ipv4_prefix", "24", "The IPv4 network a client counts as."},
                  {"ipv6_prefix", "64", "The IPv6 network a client counts as."},
                  {"on_store_error", "accept", "When the store cannot answer: accept (let the "
                                               "recipient through, logged) or tempfail "
                                               "(451 4.3.0)."},
                  {"white_cache", "5m", "How long each worker remembers a whitelisted triplet "
                                        "or network without asking the store again (never past "
                                        "its expiry there); 0: always ask."}),
              .init = greylist_init, .fini = greylist_fini,
              .hooks[PORTER_HOOK_RCPT] = greylist_rcpt);
