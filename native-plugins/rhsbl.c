/*
 * rhsbl - refuse mail whose sender domain or HELO name is listed in domain-based DNS lists
 * (RFC 5782 section 2.2: the name, then the zone).
 *
 * Hooks: helo/ehlo start the lookups of the HELO name (not an address literal), mail those of
 * the sender's domain (not for the null sender), in the background and in parallel; rcpt gives
 * the verdict, waiting for lookups still running: a listed sender domain, then a listed HELO
 * name refuses (554 5.7.1 "Sender domain [D] blocked using ZONE; TXT" by default), except for
 * allow_rcpt= recipients, relay clients and authenticated users. A DNS failure never refuses.
 *
 * Arguments: zones=ZONE[=MATCH][,...] (required), check=sender,helo, and match=, action=,
 * allow_rcpt=, allow=, txt= as the dnsbl plugin (dnsbl_common.h, docs/plugins.md).
 *
 * Memory: the settings are the state (fini frees them); the lookups of a connection are its
 * porter_data, freed by the disconnect hook.
 */
#include <stdlib.h>
#include <string.h>

#include "dnsbl_common.h"

struct rhsbl {
    struct dnsbl_settings settings;
    bool sender, helo;                /* what is checked */
};

static int rhsbl_helo(porter_session *s, void *state)
{
    struct rhsbl *r = state;
    if (r->helo)
        dnsbl_start(s, &r->settings, "helo", porter_hook_argument(s), false);
    return PORTER_DECLINED;
}

static int rhsbl_mail(porter_session *s, void *state)
{
    struct rhsbl *r = state;
    const char *at = strrchr(porter_hook_argument(s), '@');
    if (!r->sender || at == NULL)
        dnsbl_forget(s, "sender");
    else
        dnsbl_start(s, &r->settings, "sender", at + 1, false);
    return PORTER_DECLINED;
}

static int rhsbl_rcpt(porter_session *s, void *state)
{
    struct rhsbl *r = state;
    return dnsbl_rcpt(s, &r->settings);
}

static void rhsbl_fini(void *state)
{
    struct rhsbl *r = state;
    if (r != NULL)
        dnsbl_settings_free(&r->settings);
    free(r);
}

static void *rhsbl_init(porter_args *a)
{
    struct rhsbl *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    const char *check = porter_arg_string(a, "check", "sender,helo");
    r->sender = strstr(check, "sender") != NULL;
    r->helo = strstr(check, "helo") != NULL;
    if (strspn(check, "senderhlo,") != strlen(check) || !(r->sender || r->helo))
        porter_arg_error(a, "check: \"%s\" is not sender, helo or sender,helo", check);
    if (dnsbl_settings_read(a, &r->settings) != 0) {
        rhsbl_fini(r);
        return NULL;
    }
    return r;
}

PORTER_PLUGIN(.name = "rhsbl",
              .description = "Domain-based DNS lists (RFC 5782): the sender's domain and the "
                             "HELO name are looked up in each zone as soon as they are known, "
                             "in parallel; a listed one is refused at RCPT (postmaster@ and "
                             "abuse@ stay reachable) with the list's TXT record in the reply. "
                             "Relay clients and authenticated users pass; a DNS failure never "
                             "refuses.",
              .arguments = PORTER_ARGUMENTS(
                  {"zones", NULL, "Required. The DNS lists, comma-separated, each optionally ZONE=MATCH "
                                  "(dbl.spamhaus.org=127.0.1.2-127.0.1.99)."},
                  {"check", "sender,helo", "What is looked up: sender (the MAIL FROM domain), "
                                           "helo (the HELO/EHLO name), or both."},
                  DNSBL_ARGUMENTS),
              .init = rhsbl_init, .fini = rhsbl_fini,
              .hooks[PORTER_HOOK_HELO] = rhsbl_helo, .hooks[PORTER_HOOK_EHLO] = rhsbl_helo,
              .hooks[PORTER_HOOK_MAIL] = rhsbl_mail, .hooks[PORTER_HOOK_RCPT] = rhsbl_rcpt,
              .hooks[PORTER_HOOK_DISCONNECT] = dnsbl_disconnect);
