/*
 * refusal_log.h - connections refused before a session exists (connection limits, floods),
 * logged as a summary instead of one line each: a flood of 2,000 connections writes a few
 * lines, not 2,000.
 *
 * Interface: refusal_log_note counts one refusal of a cause. The first refusal of a cause is
 * logged at once (event=connection_refused client=IP reason=CAUSE count=1 limit=N); while
 * refusals of that cause go on, one line per cause and second gives how many there were
 * (count=N period=1s last_client=IP). A cause quiet for a second starts over. Causes are
 * static strings ("max_connections", "max_connections_per_ip", ...), at most
 * REFUSAL_LOG_CAUSES of them. Runs on one event loop (a libevent timer). Nothing is fatal but
 * out of memory. Memory: refusal_log_free frees it all; the causes are borrowed.
 */
#ifndef PORTER_REFUSAL_LOG_H
#define PORTER_REFUSAL_LOG_H

#include <event2/event.h>

#define REFUSAL_LOG_CAUSES 16

struct refusal_log;

struct refusal_log *refusal_log_new(struct event_base *base);
void refusal_log_free(struct refusal_log *r);
/* refusal_log_note - one connection from client refused for cause (limit: the setting's
 * value, or -1 when there is none) */
void refusal_log_note(struct refusal_log *r, const char *cause, const char *client, long limit);

#endif
