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
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <porter/plugin.h>

struct rcpt_ok {
    porter_list *rcpthosts;
    porter_cidr_list *relayclients;
};

static void *rcpt_ok_init(porter_args *a)
{
    struct rcpt_ok *r = calloc(1, sizeof *r);
    r->rcpthosts = porter_list_file(a, porter_arg_path(a, "rcpthosts", "rcpthosts"));
    r->relayclients = porter_arg_cidr(a, "relayclients");
    return r;
}

static void rcpt_ok_fini(void *state)
{
    struct rcpt_ok *r = state;
    if (r == NULL)
        return;
    porter_list_free(r->rcpthosts);
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
    const struct rcpt_ok *r = state;
    if (at != NULL && porter_list_match_domain(r->rcpthosts, at + 1))
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
