/*
 * client_name - the client's host name from DNS, checked the way Postfix checks it.
 *
 * Hook: connect. The plugin asks the PTR records of the client's address, then the addresses
 * (A for an IPv4 client, AAAA for IPv6) of the first max_names of those names. The first name
 * whose addresses include the client's is the verified name; the first PTR name is kept either
 * way (porter_set_client_name). They show in the Received header ("from HELO (NAME [IP])"),
 * the logs, the milter macros {client_name} and {client_ptr}, and XCLIENT/XFORWARD NAME.
 * No PTR record, no name leading back, a name that is not a host name, or DNS failing: the
 * name stays "unknown" and the session goes on. This plugin never refuses a client.
 *
 * Arguments: max_names=N (default 3, at most 8): how many PTR names are checked.
 * time_limit=SECONDS (default 10): no new lookup starts after this; each lookup is bounded by
 * dns_timeout x servers x (dns_retries + 1), so keep hook_timeout= above both together.
 *
 * Memory: the settings are the plugin's state (freed by fini); one lookup state per session,
 * freed when the lookups end or the session goes.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <porter/plugin.h>

#include "plugin_clock_hash.h"

#define CLIENT_NAME_MAX_NAMES 8

struct client_name_settings {
    size_t max_names;
    double time_limit;
};

struct client_lookup {
    const struct client_name_settings *settings;
    double deadline;                     /* CLOCK_MONOTONIC seconds: no lookup starts after */
    char *ptr;                           /* the first PTR name, or NULL */
    char *names[CLIENT_NAME_MAX_NAMES];  /* PTR names to check */
    size_t count, next;
};

static void lookup_free(struct client_lookup *l)
{
    free(l->ptr);
    for (size_t i = 0; i < l->count; i++)
        free(l->names[i]);
    free(l);
}

/* same_address - do two textual addresses name the same IPv4 or IPv6 address? */
static int same_address(const char *a, const char *b)
{
    unsigned char x[16], y[16];
    int family = strchr(a, ':') != NULL ? AF_INET6 : AF_INET;
    return inet_pton(family, a, x) == 1 && inet_pton(family, b, y) == 1 &&
           memcmp(x, y, family == AF_INET6 ? 16 : 4) == 0;
}

static int forward_done(porter_session *s, void *arg, const struct porter_dns_answer *answer);

/* check_next - ask the addresses of the next PTR name; with none left (or no time left), only
 * the PTR name is known */
static int check_next(porter_session *s, struct client_lookup *l)
{
    if (l->next == l->count || plugin_monotonic() > l->deadline) {
        porter_set_client_name(s, NULL, l->ptr);
        lookup_free(l);
        return PORTER_DECLINED;
    }
    int type = strchr(porter_client_ip(s), ':') != NULL ? PORTER_DNS_AAAA : PORTER_DNS_A;
    return porter_dns_lookup(s, type, l->names[l->next], forward_done, l);
}

static int forward_done(porter_session *s, void *arg, const struct porter_dns_answer *answer)
{
    struct client_lookup *l = arg;
    if (s == NULL) {
        lookup_free(l);
        return PORTER_DECLINED;
    }
    const char *name = l->names[l->next++];
    for (size_t i = 0; answer->status == PORTER_DNS_OK && i < answer->count; i++) {
        if (same_address(answer->records[i].text, porter_client_ip(s))) {
            porter_set_client_name(s, name, l->ptr);
            lookup_free(l);
            return PORTER_DECLINED;
        }
    }
    return check_next(s, l);
}

static int ptr_done(porter_session *s, void *arg, const struct porter_dns_answer *answer)
{
    struct client_lookup *l = arg;
    if (s == NULL) {
        lookup_free(l);
        return PORTER_DECLINED;
    }
    for (size_t i = 0; answer->status == PORTER_DNS_OK && i < answer->count; i++) {
        const char *name = answer->records[i].text;
        /* porter_set_client_name checks that it is a host name: one it refuses is skipped */
        if (porter_set_client_name(s, NULL, name) != 0)
            continue;
        if (l->ptr == NULL)
            l->ptr = strdup(name); /* NULL (out of memory) leaves it unknown */
        char *copy = l->count < l->settings->max_names ? strdup(name) : NULL;
        if (copy != NULL)
            l->names[l->count++] = copy;
    }
    porter_set_client_name(s, NULL, NULL); /* nothing is known until the end */
    return check_next(s, l);
}

static int client_name_connect(porter_session *s, void *state)
{
    const char *ip = porter_client_ip(s);
    struct client_lookup *l = ip != NULL && ip[0] != '\0' ? calloc(1, sizeof *l) : NULL;
    if (l == NULL)
        return PORTER_DECLINED;
    l->settings = state;
    l->deadline = plugin_monotonic() + l->settings->time_limit;
    return porter_dns_ptr(s, ip, ptr_done, l);
}

static void *client_name_init(porter_args *a)
{
    struct client_name_settings *settings = calloc(1, sizeof *settings);
    if (settings == NULL)
        return NULL;
    settings->max_names = (size_t) porter_arg_integer(a, "max_names", 3, 1, CLIENT_NAME_MAX_NAMES);
    settings->time_limit = porter_arg_seconds(a, "time_limit", 10);
    return settings;
}

PORTER_PLUGIN(.name = "client_name",
              .description = "The client's host name from DNS, checked as Postfix checks it. "
                             "Porter asks the PTR names of the client's address, then the "
                             "addresses of the first max_names of them; the first name that leads "
                             "back to the client is the verified name, and the first PTR name is "
                             "kept either way. They show in the Received header, the logs, the "
                             "milter macros {client_name} and {client_ptr}, and XCLIENT/XFORWARD. "
                             "It never refuses: without an answer the name stays \"unknown\". Put "
                             "it first in the chain, so that every later plugin sees the name.",
              .arguments = PORTER_ARGUMENTS(
                  {"max_names", "3", "How many PTR names are checked (at most 8)."},
                  {"time_limit", "10",
                   "Seconds after which no new lookup starts; keep hook_timeout= above this plus "
                   "one lookup's time (dns_timeout x servers x (dns_retries + 1))."}),
              .init = client_name_init, .fini = free,
              .hooks[PORTER_HOOK_CONNECT] = client_name_connect);
