/*
 * rcpt_ok - decide which recipients Porter accepts: never an open relay.
 *
 * Hooks: connect (marks clients listed in relayclients as relay clients), rcpt.
 * A recipient is accepted when its domain is listed in rcpthosts (one domain per line; a line
 * ".example.com" also accepts every subdomain), when it is the bare "postmaster" (RFC 5321),
 * or when the client may relay (listed in relayclients, or authenticated). Anything else
 * gets 550 5.7.1 "Relay access denied", and so does a local part with '%', '!' or a quoted
 * '@' (source routing through the downstream MTA) from a client that may not relay.
 *
 * Arguments: rcpthosts=FILE (default "rcpthosts" in the configuration directory),
 *            relayclients=FILE or CIDR list (default: none).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <porter/plugin.h>

struct rcpt_ok {
    char **domains;
    size_t count;
    porter_cidr_list *relayclients;
};

/* rcpt_ok_load - read the domain list; one domain per line, '#' comments */
static int rcpt_ok_load(struct rcpt_ok *r, const char *path)
{
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return -1;
    char line[512];
    while (fgets(line, sizeof line, file) != NULL) {
        line[strcspn(line, "#\r\n")] = '\0';
        char *domain = line + strspn(line, " \t");
        domain[strcspn(domain, " \t")] = '\0';
        if (*domain == '\0')
            continue;
        r->domains = realloc(r->domains, (r->count + 1) * sizeof *r->domains);
        r->domains[r->count++] = strdup(domain);
    }
    fclose(file);
    return 0;
}

static void *rcpt_ok_init(porter_args *a)
{
    struct rcpt_ok *r = calloc(1, sizeof *r);
    const char *path = porter_arg_path(a, "rcpthosts", "rcpthosts");
    if (rcpt_ok_load(r, path) != 0)
        porter_arg_error(a, "rcpthosts: cannot read %s", path);
    r->relayclients = porter_arg_cidr(a, "relayclients");
    return r;
}

static void rcpt_ok_fini(void *state)
{
    struct rcpt_ok *r = state;
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->count; i++)
        free(r->domains[i]);
    free(r->domains);
    porter_cidr_free(r->relayclients);
    free(r);
}

static int rcpt_ok_connect(porter_session *s, void *state)
{
    struct rcpt_ok *r = state;
    if (porter_cidr_match(r->relayclients, porter_client_ip(s)))
        porter_relay_client_set(s, true);
    return PORTER_DECLINED;
}

/* rcpt_ok_local - is domain one of ours? */
static int rcpt_ok_local(const struct rcpt_ok *r, const char *domain)
{
    size_t length = strlen(domain);
    for (size_t i = 0; i < r->count; i++) {
        const char *entry = r->domains[i];
        size_t entry_length = strlen(entry);
        if (strcasecmp(entry, domain) == 0)
            return 1;
        if (entry[0] == '.' && length > entry_length &&
            strcasecmp(domain + length - entry_length, entry) == 0)
            return 1;
    }
    return 0;
}

static int rcpt_ok_rcpt(porter_session *s, void *state)
{
    const char *recipient = porter_hook_argument(s);
    const char *at = strrchr(recipient, '@');
    if (at == NULL && strcasecmp(recipient, "postmaster") == 0)
        return PORTER_OK;
    if (porter_relay_client(s) || porter_auth_user(s) != NULL)
        return PORTER_OK;
    /* Routing tricks in the local part ("user%host@ours", "host!user@ours", a quoted "@") would
     * let a downstream MTA relay for us: only relay clients may use them. */
    if (at != NULL && strcspn(recipient, "%!@") < (size_t)(at - recipient))
        return porter_reply(s, PORTER_DENY, 550, "5.7.1", "<%s>: Relay access denied", recipient);
    if (at != NULL && rcpt_ok_local(state, at + 1))
        return PORTER_OK;
    return porter_reply(s, PORTER_DENY, 550, "5.7.1", "<%s>: Relay access denied", recipient);
}

PORTER_PLUGIN(.name = "rcpt_ok",
              .description = "Decides which recipients are accepted, so that Porter is never an "
                             "open relay. A recipient whose domain is in rcpthosts, the bare "
                             "postmaster, or any recipient of a client that may relay (listed in "
                             "relayclients, or authenticated). Anything else gets 550 5.7.1 Relay "
                             "access denied, and so does a local part with %, ! or a quoted @ "
                             "(source routing) from a client that may not relay.",
              .arguments = PORTER_ARGUMENTS(
                  {"rcpthosts", "rcpthosts",
                   "A file of domains, one per line (\".example.com\" also accepts its "
                   "subdomains), relative to the configuration directory."},
                  {"relayclients", NULL,
                   "Clients that may relay: a CIDR list or a file of them."}),
              .init = rcpt_ok_init, .fini = rcpt_ok_fini,
              .hooks[PORTER_HOOK_CONNECT] = rcpt_ok_connect,
              .hooks[PORTER_HOOK_RCPT] = rcpt_ok_rcpt);
