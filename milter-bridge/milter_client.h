/*
 * milter_client.h - one asynchronous connection from Porter (the MTA side) to one milter, on
 * a libevent loop: connect, option negotiation, sending command frames, reading and
 * validating replies, per-stage timeouts.
 *
 * Interface: a socket= value becomes an address with socket_address_parse (socket_address.h,
 * at configuration time, never on the event loop). milter_client_new makes a client for one
 * SMTP session; milter_client_open starts the connection and the negotiation (version 6,
 * every action and protocol flag Postfix offers) and calls ready() when the milter answered.
 * milter_client_send queues frames built with milter_codec.h and, when the last command
 * awaits a reply, waits for it with the given timeout. Each reply that belongs to the
 * awaited command is handed to reply(): modification replies at end of message one by one,
 * then the final verdict, after which the client is idle again. SMFIR_PROGRESS restarts the
 * timer and is not handed on. milter_client_close sends SMFIC_ABORT (if asked) and
 * SMFIC_QUIT when that can be done without waiting, and frees the client;
 * milter_client_park instead ends the milter's session with SMFIC_QUIT_NC and keeps the
 * negotiated connection idle until milter_client_unpark hands it to the next SMTP session.
 *
 * Failure contract: anything the milter does wrong - it cannot be reached, it does not
 * answer in time, it closes the connection, it sends a malformed or oversized frame, a reply
 * while nothing is awaited or one that the stage does not allow, or an unacceptable
 * negotiation - makes the client FAILED and calls failed(reason) exactly once, later, from
 * the event loop (never from inside a milter_client_* call). reason is a static or
 * client-owned string valid during the call. A FAILED client sends nothing more; the owner
 * frees it. Nothing the milter sends can crash the process or block the loop.
 *
 * Callbacks may call any milter_client_* function, including milter_client_close on the
 * client that called them (the free is deferred until the callback returns).
 *
 * Memory: the client owns its socket, buffers, timer and the negotiated macro lists; the
 * reply handed to reply() points into the client's input and is valid only during the call.
 * The config strings are copied. Fatal: out of memory (memory.h), failure to create a
 * libevent object.
 */
#ifndef PORTER_MILTER_CLIENT_H
#define PORTER_MILTER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "milter_codec.h"
#include "socket_address.h"

struct event_base;

/* Unsent output above this many bytes means "wait for drained() before sending more body". */
#define MILTER_CLIENT_OUTPUT_HIGH (256 * 1024)
/* drained() is called when the output falls to this many bytes or fewer. */
#define MILTER_CLIENT_OUTPUT_LOW (64 * 1024)

/* The client's life, for logs. */
enum milter_client_state {
    MILTER_CLIENT_IDLE = 0,     /* made, not opened */
    MILTER_CLIENT_CONNECTING,   /* socket connect in progress */
    MILTER_CLIENT_NEGOTIATING,  /* SMFIC_OPTNEG sent, waiting for the answer */
    MILTER_CLIENT_READY,        /* negotiated; commands may be sent */
    MILTER_CLIENT_FAILED,       /* unusable; failed() was or will be called */
    MILTER_CLIENT_STATE_COUNT
};
const char *milter_client_state_name(enum milter_client_state state);

/* What the milter agreed to in negotiation. Macro lists are NULL where the milter sent none
 * (use the default list) and "" when it asked for no macros at that stage. */
struct milter_negotiated {
    uint32_t version;
    uint32_t actions;
    uint32_t protocol;
    char *macro_lists[MILTER_MACRO_STAGE_COUNT];
};

struct milter_client_settings {
    const char *name;                  /* the milter's name, for logs (copied) */
    const struct socket_address *address;
    double connect_timeout;            /* socket connect */
    double command_timeout;            /* negotiation and every command but content */
    double content_timeout;            /* header, end of headers, body, end of message */
};

struct milter_client_callbacks {
    void (*ready)(void *arg);                                   /* negotiation done */
    void (*reply)(void *arg, const struct milter_reply *reply); /* a reply to the awaited command */
    void (*drained)(void *arg);                                 /* output fell to OUTPUT_LOW */
    void (*failed)(void *arg, const char *reason);              /* once; see above */
    /* The client (re)started its one timer: unless the milter answers (or reads, or shows
     * progress) within seconds, failed() follows. Called on connect, every command sent,
     * every SMFIR_PROGRESS and modification reply, every write the milter took, also from
     * inside milter_client_open and milter_client_send; it must not call milter_client_*
     * functions. May be NULL. The plugin uses it to push the core's hook deadline past
     * this one. */
    void (*deadline)(void *arg, double seconds);
};

struct milter_client;

/* milter_client_new - a client that is not connected yet; arg goes to every callback */
struct milter_client *milter_client_new(struct event_base *base,
                                        const struct milter_client_settings *settings,
                                        const struct milter_client_callbacks *callbacks,
                                        void *arg);

/* milter_client_open - start connecting and negotiating. Returns 0 (ready() or failed()
 * follows), or -1 when the connect failed at once (milter_client_reason tells why; no
 * callback follows; the client is FAILED). */
int milter_client_open(struct milter_client *c);

/*
 * milter_client_send - send the frames in buffer: written at once as far as the socket takes
 * them, the rest copied and written when it can (buffer is not changed).
 * command is the type of the last command in buffer: it picks the timeout (content_timeout
 * for HEADER, EOH, BODY and BODYEOB, command_timeout for the rest) and, when awaits_reply,
 * names the command whose reply the client now waits for. Without a reply to wait for, the
 * same timeout limits how long the output may take to drain.
 * Returns 0, or -1 when the client is not READY (nothing happens) or already waits for a
 * reply (a bug in the caller: the client becomes FAILED and failed() follows).
 */
int milter_client_send(struct milter_client *c, const struct milter_buffer *buffer,
                       enum milter_command_type command, bool awaits_reply);

/* milter_client_state - where the client is */
enum milter_client_state milter_client_state(const struct milter_client *c);
/* milter_client_waiting - true while a reply is awaited */
bool milter_client_waiting(const struct milter_client *c);
/* milter_client_output_pending - bytes queued but not yet written to the socket */
size_t milter_client_output_pending(const struct milter_client *c);
/* milter_client_negotiated - the negotiation result (valid once ready() was called) */
const struct milter_negotiated *milter_client_negotiated(const struct milter_client *c);
/* milter_client_reason - why the client failed ("" if it did not) */
const char *milter_client_reason(const struct milter_client *c);

/*
 * milter_client_park - keep the connection for another SMTP session instead of closing it.
 * When the client is READY, idle, has nothing left to write and negotiated version 6 or
 * later, SMFIC_QUIT_NC is written (the milter ends its session but keeps the connection and
 * the negotiation, and takes SMFIC_CONNECT next) and the client is parked: callbacks and arg
 * are replaced by the given ones and only failed() is called from now on, when the milter
 * closes the connection or sends anything, or after idle_timeout seconds. Returns 0, or -1
 * when the connection cannot be kept (then the client is closed and freed, as by
 * milter_client_close). libmilter takes SMFIC_QUIT_NC only right after an end of message
 * answered with continue: the caller parks a client only then.
 */
int milter_client_park(struct milter_client *c, double idle_timeout,
                       const struct milter_client_callbacks *callbacks, void *arg);

/*
 * milter_client_unpark - take a parked client for a new SMTP session: READY again, with these
 * callbacks and arg, the negotiation kept (send SMFIC_CONNECT next, not SMFIC_OPTNEG).
 * Returns 0, or -1 when the milter closed the connection or sent something while it was
 * parked and the loop has not noticed yet (then the client is closed and freed).
 */
int milter_client_unpark(struct milter_client *c, const struct milter_client_callbacks *callbacks,
                         void *arg);

/*
 * milter_client_close - free the client; accepts NULL. When it is READY, idle, not parked and
 * nothing is left to write, SMFIC_ABORT (if abort is true) and SMFIC_QUIT are written first
 * with one non-blocking send; otherwise the connection is just closed (the milter sees EOF, which
 * libmilter handles like QUIT). No callback is called after this.
 */
void milter_client_close(struct milter_client *c, bool abort_message);

#endif
