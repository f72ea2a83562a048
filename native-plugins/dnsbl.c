/*
 * dnsbl - refuse mail from clients whose address is listed in DNS blocklists (RFC 5782).
 *
 * Hooks: connect starts one A lookup per zone for the client's address (IPv4 octets or IPv6
 * nibbles reversed, then the zone), all at once and in the background, so the session does not
 * wait for them; rcpt gives the verdict, waiting for lookups still running: the first listing
 * in zone order refuses (554 5.7.1 "Client host [IP] blocked using ZONE; TXT" by default).
 * Refusing at RCPT, not at connect, lets a listed sender still reach postmaster@ and abuse@
 * (allow_rcpt=), as RFC 5321 asks. Relay clients and authenticated users are never refused;
 * clients in allow= are never looked up. A lookup that times out or fails never refuses: it
 * is logged and counts as not listed. Answers are cached by the worker's resolver for their
 * TTL.
 *
 * Arguments: zones=ZONE[=MATCH][,...] (required), match=, action=, allow_rcpt=, allow=, txt=
 * (dnsbl_common.h, docs/plugins.md).
 *
 * Memory: the settings are the state (fini frees them); the lookups of a connection are its
 * porter_data, freed by the disconnect hook.
 */
#include <stdlib.h>

#include "dnsbl_common.h"

static int dnsbl_connect(porter_session *s, void *state)
{
    dnsbl_start(s, state, "client", porter_client_ip(s), true);
    return PORTER_DECLINED;
}

static int dnsbl_rcpt_hook(porter_session *s, void *state)
{
    return dnsbl_rcpt(s, state);
}

static void *dnsbl_init(porter_args *a)
{
    struct dnsbl_settings *settings = calloc(1, sizeof *settings);
    if (settings != NULL && dnsbl_settings_read(a, settings) != 0) {
        dnsbl_settings_free(settings);
        free(settings);
        return NULL;
    }
    return settings;
}

static void dnsbl_fini(void *state)
{
    dnsbl_settings_free(state);
    free(state);
}

PORTER_PLUGIN(.name = "dnsbl",
              .description = "DNS blocklists (RFC 5782): the client's IPv4 or IPv6 address is "
                             "looked up in each zone from the connection on, in parallel; a "
                             "listed client is refused at RCPT (postmaster@ and abuse@ stay "
                             "reachable) with the list's TXT record in the reply. Relay "
                             "clients and authenticated users pass; a DNS failure never "
                             "refuses.",
              .arguments = PORTER_ARGUMENTS(
                  {"zones", NULL, "Required. The DNS lists, comma-separated, each optionally ZONE=MATCH "
                                  "(zen.spamhaus.org=127.0.0.2-127.0.0.11)."},
                  DNSBL_ARGUMENTS),
              .init = dnsbl_init, .fini = dnsbl_fini,
              .hooks[PORTER_HOOK_CONNECT] = dnsbl_connect,
              .hooks[PORTER_HOOK_RCPT] = dnsbl_rcpt_hook,
              .hooks[PORTER_HOOK_DISCONNECT] = dnsbl_disconnect);
