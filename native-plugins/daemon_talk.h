/*
 * daemon_talk.h - one request to a local daemon and its answer, on the worker's event loop:
 * what the clamd, spamassassin and p0f plugins share.
 *
 * Interface: daemon_talk_start connects to the daemon (socket_address.h), sends the request
 * head, then (when asked) the message - its header block, the empty line, and the body read
 * from the spool file in DAEMON_TALK_PIECE pieces as the socket drains, never the whole
 * message in memory - optionally framed as clamd's INSTREAM chunks, then reads the answer
 * until the daemon closes the connection or answer_max bytes are in. Then done() runs once,
 * always later from the event loop (never inside daemon_talk_start), with the answer or an
 * error. One deadline covers connecting, sending and answering.
 *
 * Failure contract: a daemon that cannot be reached, closes without answering, answers more
 * than answer_max bytes (unless answer_exact), or misses the deadline gives done() an error
 * text (static or the talk's own, valid during the call) and no answer. An answer that came
 * before the daemon closed or reset the connection, even in the middle of the request (clamd
 * refusing a stream over its size limit), is handed on: the plugin's parser judges it.
 *
 * daemon_talk_hook and daemon_talk_address are the plugin-side wrappers the three plugins
 * share (they call the plugin API, so this file is compiled into each plugin).
 * daemon_talk_hook also registers, once per process, a porter_at_loop_end function that ends
 * the talks still running when the worker's loop goes away, and daemon_talk_fini ends a
 * plugin instance's talks when it is unloaded first (done() gets an error then).
 *
 * Memory: the talk copies the header block and duplicates the spool file's descriptor, so
 * the transaction may end before the talk does; it owns its socket, buffers and timer and
 * frees them after done() returns. The answer handed to done() is NUL-terminated and valid
 * during the call. Fatal: out of memory, libevent object creation.
 */
#ifndef PORTER_DAEMON_TALK_H
#define PORTER_DAEMON_TALK_H

#include <stdbool.h>
#include <stddef.h>

#include <porter/plugin.h>

#include "socket_address.h"

struct event_base;

/* Body bytes read from the spool file at once (and clamd's chunk size). */
#define DAEMON_TALK_PIECE 65536

struct daemon_talk_request {
    const struct socket_address *address;
    double timeout;                       /* seconds for the whole exchange */
    const char *head;                     /* sent first (copied); may hold NUL bytes */
    size_t head_length;
    const struct porter_message *message; /* NULL: no message; else sent after head */
    bool chunked;                         /* clamd INSTREAM: each piece of the message after
                                             its 4-byte big-endian length, a zero length at
                                             the end */
    size_t answer_max;                    /* the most answer bytes taken */
    bool answer_exact;                    /* the answer is complete at answer_max bytes
                                             (p0f); otherwise when the daemon closes */
    const void *owner;                    /* the plugin state the talk belongs to, for
                                             daemon_talk_fini */
};

/* done - error is NULL and answer holds length bytes (NUL-terminated), or error says why */
typedef void (*daemon_talk_fn)(void *arg, const char *error, const char *answer, size_t length);

/* daemon_talk_start - start the exchange; done(arg, ...) follows exactly once */
void daemon_talk_start(struct event_base *base, const struct daemon_talk_request *request,
                       daemon_talk_fn done, void *arg);

/* daemon_talk_hook - in a hook: suspend it (its handle into *handle before the talk starts),
 * give the core's deadline a margin past the talk's own timeout (so the plugin's timeout and
 * on_error decide, not hook_timeout=), and start the talk on the session's loop. Returns
 * PORTER_PENDING; done() finds the session again with porter_waiting_session(*handle). */
int daemon_talk_hook(porter_session *s, const struct daemon_talk_request *request,
                     porter_handle *handle, daemon_talk_fn done, void *arg);

/* daemon_talk_fini - a plugin's fini: end its talks still running (done() gets an error;
 * nobody waits for them any more), then free(state) */
void daemon_talk_fini(void *state);

/* daemon_talk_address - in init: the socket= argument (fallback when absent) into out;
 * a bad address is reported with porter_arg_error */
void daemon_talk_address(porter_args *a, const char *fallback, struct socket_address *out);

/* What a plugin does when its daemon fails: its on_error= argument. */
enum daemon_talk_on_error { DAEMON_TALK_TEMPFAIL = 0, DAEMON_TALK_ACCEPT };

/* daemon_talk_on_error - the daemon failed or answered nonsense: log "event=EVENT
 * result=error error=\"...\" action=tempfail|accept" and resume the hook with 451 4.7.1
 * "SCANNER unavailable, try again later" (DAEMON_TALK_TEMPFAIL) or DECLINED (ACCEPT) */
void daemon_talk_on_error(porter_session *s, porter_handle handle, int on_error,
                          const char *event, const char *scanner, const char *error);

/* daemon_talk_message_length - what daemon_talk sends of a message, unframed: the header
 * block, the empty line, the body */
off_t daemon_talk_message_length(const struct porter_message *m);

#endif /* PORTER_DAEMON_TALK_H */
