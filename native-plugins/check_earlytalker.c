/*
 * check_earlytalker - enforce "the server says hello first" (RFC 5321 3.1): a client that
 * talks before the greeting is usually spamware that does not wait for replies.
 *
 * Hook: connect. The greeting is held for wait seconds with a timer (the hook answers PENDING;
 * the worker goes on serving other sessions). When the timer fires, bytes the client sent
 * meanwhile (porter_input_pending) make the verdict:
 *     action=denysoft  421 4.7.0 and the connection closes (the default; a real MTA retries)
 *     action=deny      554 5.7.1 and the connection closes
 *     action=log       a log line only; the session goes on
 * Either way no mail is accepted on a refused connection. A polite client gets the 220 after
 * the wait. Clients listed in allow= skip the wait and may talk first. With this plugin in
 * the chain the core's reject_unauth_pipelining does not judge input before the greeting.
 *
 * Arguments: wait=SECONDS (default 1; fractions allowed; 0 checks on the next loop turn),
 *            action=denysoft|deny|log (default denysoft),
 *            allow=CIDR list or file (default: none).
 *
 * Memory: the state (and its CIDR list) is freed by fini.
 */
#include <stdlib.h>

#include <porter/plugin.h>

/* The verdict of each action=, in the order of the choices denysoft|deny|log. */
static const int earlytalker_verdicts[] = {PORTER_DENYSOFT, PORTER_DENY, PORTER_DECLINED};

struct earlytalker {
    double wait;
    int verdict; /* for a client that talked first */
    porter_cidr_list *allow;
};

static void *earlytalker_init(porter_args *a)
{
    struct earlytalker *e = calloc(1, sizeof *e);
    e->wait = porter_arg_seconds(a, "wait", 1.0);
    e->verdict = earlytalker_verdicts[porter_arg_choice(a, "action", "denysoft|deny|log")];
    e->allow = porter_arg_cidr(a, "allow");
    return e;
}

static void earlytalker_fini(void *state)
{
    porter_cidr_free(state != NULL ? ((struct earlytalker *)state)->allow : NULL);
    free(state);
}

/* earlytalker_done - the wait is over: did the client talk? */
static int earlytalker_done(porter_session *s, void *state, int result)
{
    const struct earlytalker *e = state;
    if (s == NULL || porter_input_pending(s) == 0)
        return PORTER_DECLINED;
    porter_log(s, PORTER_LOG_NOTICE, "event=earlytalker bytes=%zu", porter_input_pending(s));
    if (e->verdict == PORTER_DECLINED) /* action=log */
        return PORTER_DECLINED;
    return porter_reply(s, e->verdict, 0, NULL, "Don't be rude and talk before I say hello!");
}

static int earlytalker_connect(porter_session *s, void *state)
{
    const struct earlytalker *e = state;
    /* Asking for pending input at connect tells the core that this plugin judges early
     * talkers, so its reject_unauth_pipelining leaves listed clients alone. */
    if (porter_cidr_match(e->allow, porter_client_ip(s))) {
        (void)porter_input_pending(s);
        return PORTER_DECLINED;
    }
    return porter_timer(s, e->wait, earlytalker_done, state);
}

PORTER_PLUGIN(.name = "check_earlytalker",
              .description = "Refuses clients that talk before the greeting. The 220 is held for "
                             "wait seconds; a client that talks meanwhile (RFC 5321 section 3.1: "
                             "the server speaks first; spamware often does not wait) is refused. "
                             "A polite client gets the 220 after the wait.",
              .arguments = PORTER_ARGUMENTS(
                  {"wait", "1",
                   "Seconds to hold the greeting (fractions allowed; 0 checks on the next loop "
                   "turn)."},
                  {"action", "denysoft",
                   "What an early talker gets: denysoft (421 4.7.0, then close), deny (554 5.7.1, "
                   "then close) or log (a log line; the session goes on)."},
                  {"allow", NULL,
                   "Clients that skip the wait: a CIDR list (127.0.0.0/8,::1) or a file of them."}),
              .init = earlytalker_init, .fini = earlytalker_fini,
              .hooks[PORTER_HOOK_CONNECT] = earlytalker_connect);
