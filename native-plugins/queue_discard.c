/*
 * queue_discard - accept every message and drop it. For benchmarks and tests only: with this
 * plugin a 250 means nothing was delivered. Hook: queue. No arguments.
 */
#include <porter/plugin.h>

static int queue_discard_queue(porter_session *s, void *state)
{
    porter_log(s, PORTER_LOG_DEBUG, "event=discarded queue_id=%s", porter_queue_id(s));
    return porter_reply(s, PORTER_OK, 250, "2.0.0", "Ok: queued as %s (discarded)",
                        porter_queue_id(s));
}

PORTER_PLUGIN(.name = "queue_discard",
              .description = "Accepts every message and drops it. For benchmarks and tests only: "
                             "with it, a 250 means nothing was delivered.",
              .hooks[PORTER_HOOK_QUEUE] = queue_discard_queue);
