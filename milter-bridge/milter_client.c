/*
 * milter_client.c - one asynchronous connection to one milter (see milter_client.h).
 *
 * Interface: milter_client.h. The client is a small state machine (IDLE -> CONNECTING ->
 * NEGOTIATING -> READY, and FAILED from anywhere) over a non-blocking socket with two
 * libevent events of its own: commands are written with send() at once, and only what the
 * socket does not take waits in an output buffer for the write event; replies are read with
 * one read() per readable event into a flat input buffer and cut in place (no bufferevent:
 * that costs two epoll_ctl, an ioctl and a loop turn per command). Frames are cut with
 * milter_frame_next (limit MILTER_MAX_FRAME: Porter never offers SMFIP_MDS_*) and
 * decoded and validated with milter_codec.c; each reply is checked against the command that
 * awaits it with milter_reply_allowed and the negotiated actions and protocol flags. One
 * timer covers connect, every awaited reply and output that does not drain; it restarts on
 * every command sent, every SMFIR_PROGRESS and every write that the milter took.
 *
 * Fatal: out of memory and libevent object creation failures (abort). A misbehaving milter
 * only ever makes the client FAILED, with one failed() call that names the reason.
 * Memory: the client owns everything it points to; it is freed by milter_client_close, and
 * when that is called from inside one of its own callbacks the free waits until the
 * callback returned (the depth counter).
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/event.h>
#include <event2/util.h>

#include "memory.h"
#include "milter_client.h"

#define MILTER_CLIENT_REASON_MAX 300
#define MILTER_CLIENT_INPUT_FIRST 4096 /* first input buffer; grows to one whole frame */
#define MILTER_CLIENT_INPUT_MAX (MILTER_MAX_FRAME + MILTER_LENGTH_BYTES)
#define MILTER_CLIENT_OUTPUT_KEEP (64 * 1024) /* an emptied output buffer above this is freed */

struct milter_client {
    struct event_base *base;
    char *name;
    struct socket_address address;
    double connect_timeout, command_timeout, content_timeout;
    struct milter_client_callbacks callbacks;
    void *arg;

    enum milter_client_state state;
    evutil_socket_t fd;          /* -1 when there is no socket */
    struct event *read_event;    /* persistent, from negotiation on */
    struct event *write_event;   /* persistent, pending while connecting or output waits */
    struct milter_buffer output; /* unsent bytes: output.data[output_start..output.length) */
    size_t output_start;
    unsigned char *input;        /* read, not yet cut: input[input_start..input_end) */
    size_t input_capacity, input_start, input_end;
    struct event *timer;       /* connect, reply and drain deadline */
    struct event *fail_event;  /* delivers a failure detected inside a milter_client_* call */
    int awaited;               /* command type whose reply is awaited, or -1 */
    double timeout;            /* the deadline that goes with the current wait */
    bool failed_called;
    struct milter_negotiated negotiated;
    char reason[MILTER_CLIENT_REASON_MAX];

    bool parked;               /* between SMTP sessions (milter_client_park) */
    unsigned depth;            /* callbacks on the stack */
    bool closing;              /* milter_client_close was called during a callback */
};

static const char *const client_state_names[MILTER_CLIENT_STATE_COUNT] = {
    "idle", "connecting", "negotiating", "ready", "failed",
};

const char *milter_client_state_name(enum milter_client_state state)
{
    return (unsigned) state < MILTER_CLIENT_STATE_COUNT ? client_state_names[state] : "invalid";
}

/* ---------------------------------------------------------------- life cycle */

static void client_timer_fired(evutil_socket_t fd, short what, void *arg);
static void client_fail_fired(evutil_socket_t fd, short what, void *arg);
static void client_readable(evutil_socket_t fd, short what, void *arg);
static void client_writable(evutil_socket_t fd, short what, void *arg);
static void client_negotiate(struct milter_client *c);

struct milter_client *milter_client_new(struct event_base *base,
                                        const struct milter_client_settings *settings,
                                        const struct milter_client_callbacks *callbacks,
                                        void *arg)
{
    struct milter_client *c = xcalloc(1, sizeof *c);
    c->base = base;
    c->name = xstrdup(settings->name ? settings->name : "milter");
    c->address = *settings->address;
    c->connect_timeout = settings->connect_timeout;
    c->command_timeout = settings->command_timeout;
    c->content_timeout = settings->content_timeout;
    c->callbacks = *callbacks;
    c->arg = arg;
    c->state = MILTER_CLIENT_IDLE;
    c->fd = -1;
    c->awaited = -1;
    c->timer = evtimer_new(base, client_timer_fired, c);
    c->fail_event = event_new(base, -1, 0, client_fail_fired, c);
    if (c->timer == NULL || c->fail_event == NULL)
        abort();
    return c;
}

/* client_socket_close - stop both I/O events and close the socket */
static void client_socket_close(struct milter_client *c)
{
    if (c->read_event != NULL)
        event_free(c->read_event);
    if (c->write_event != NULL)
        event_free(c->write_event);
    c->read_event = c->write_event = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* client_free - release everything; only when no callback is on the stack */
static void client_free(struct milter_client *c)
{
    client_socket_close(c);
    milter_buffer_free(&c->output);
    free(c->input);
    event_free(c->timer);
    event_free(c->fail_event);
    for (int i = 0; i < MILTER_MACRO_STAGE_COUNT; i++)
        free(c->negotiated.macro_lists[i]);
    free(c->name);
    free(c);
}

/* client_timer_arm - (re)start the deadline */
static void client_timer_arm(struct milter_client *c, double seconds)
{
    if (seconds <= 0)
        seconds = 0.001;
    struct timeval tv = {(time_t) seconds,
                         (suseconds_t) ((seconds - (double) (time_t) seconds) * 1e6)};
    c->timeout = seconds;
    evtimer_add(c->timer, &tv);
    if (c->callbacks.deadline != NULL)
        c->callbacks.deadline(c->arg, seconds);
}

/* client_mark_failed - FAILED: stop I/O and timers, remember why (first reason wins) */
static void client_mark_failed(struct milter_client *c, const char *format, va_list ap)
{
    if (c->state == MILTER_CLIENT_FAILED)
        return;
    c->state = MILTER_CLIENT_FAILED;
    vsnprintf(c->reason, sizeof c->reason, format, ap);
    c->awaited = -1;
    evtimer_del(c->timer);
    if (c->read_event != NULL)
        event_del(c->read_event);
    if (c->write_event != NULL)
        event_del(c->write_event);
}

/* client_callback_begin / _end - guard callbacks so a close inside one is deferred;
 * client_callback_end returns true when the client is gone */
static void client_callback_begin(struct milter_client *c)
{
    c->depth++;
}

static bool client_callback_end(struct milter_client *c)
{
    c->depth--;
    if (c->depth == 0 && c->closing) {
        client_free(c);
        return true;
    }
    return c->closing;
}

/* client_fail - FAILED and failed() now (we are in an event callback of our own) */
static void client_fail(struct milter_client *c, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void client_fail(struct milter_client *c, const char *format, ...)
{
    if (c->state == MILTER_CLIENT_FAILED)
        return;
    va_list ap;
    va_start(ap, format);
    client_mark_failed(c, format, ap);
    va_end(ap);
    if (!c->failed_called && !c->closing) {
        c->failed_called = true;
        client_callback_begin(c);
        c->callbacks.failed(c->arg, c->reason);
        client_callback_end(c);
    }
}

/* client_fail_later - FAILED now, failed() from the loop (we are inside an API call) */
static void client_fail_later(struct milter_client *c, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void client_fail_later(struct milter_client *c, const char *format, ...)
{
    if (c->state == MILTER_CLIENT_FAILED)
        return;
    va_list ap;
    va_start(ap, format);
    client_mark_failed(c, format, ap);
    va_end(ap);
    event_active(c->fail_event, EV_READ, 0);
}

static void client_fail_fired(evutil_socket_t fd, short what, void *arg)
{
    struct milter_client *c = arg;
    if (c->failed_called || c->closing)
        return;
    c->failed_called = true;
    client_callback_begin(c);
    c->callbacks.failed(c->arg, c->reason);
    client_callback_end(c);
}

void milter_client_close(struct milter_client *c, bool abort_message)
{
    if (c == NULL || c->closing)
        return;
    if (c->state == MILTER_CLIENT_READY && c->awaited < 0 && c->fd >= 0 && !c->parked &&
        milter_client_output_pending(c) == 0) {
        struct milter_buffer frames = {0};
        if (abort_message)
            milter_encode_abort(&frames);
        milter_encode_quit(&frames);
        ssize_t sent = send(c->fd, frames.data, frames.length, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void) sent; /* best effort: the milter also handles EOF */
        milter_buffer_free(&frames);
    }
    c->closing = true;
    client_socket_close(c);
    evtimer_del(c->timer);
    event_del(c->fail_event);
    if (c->depth == 0)
        client_free(c);
}

int milter_client_park(struct milter_client *c, double idle_timeout,
                       const struct milter_client_callbacks *callbacks, void *arg)
{
    if (c == NULL || c->closing)
        return -1;
    bool ok = c->state == MILTER_CLIENT_READY && c->awaited < 0 && c->fd >= 0 && !c->parked &&
              c->depth == 0 && milter_client_output_pending(c) == 0 &&
              c->input_start == c->input_end && c->negotiated.version >= 6;
    if (ok) {
        struct milter_buffer frame = {0};
        milter_encode_quit_nc(&frame);
        ssize_t sent = send(c->fd, frame.data, frame.length, MSG_DONTWAIT | MSG_NOSIGNAL);
        ok = sent == (ssize_t) frame.length;
        milter_buffer_free(&frame);
    }
    if (!ok) {
        milter_client_close(c, false);
        return -1;
    }
    c->parked = true;
    c->callbacks = *callbacks;
    c->arg = arg;
    client_timer_arm(c, idle_timeout);
    return 0;
}

int milter_client_unpark(struct milter_client *c, const struct milter_client_callbacks *callbacks,
                         void *arg)
{
    bool usable = c->parked && c->state == MILTER_CLIENT_READY && c->fd >= 0;
    if (usable) {
        unsigned char byte;
        ssize_t n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        usable = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK); /* not EOF, no stray bytes */
    }
    if (!usable) {
        milter_client_close(c, false);
        return -1;
    }
    c->parked = false;
    evtimer_del(c->timer);
    c->callbacks = *callbacks;
    c->arg = arg;
    return 0;
}

/* ---------------------------------------------------------------- connecting */

/* client_output - write what the socket takes now, keep the rest for the write event;
 * 0, or an errno value (the socket is broken) */
static int client_output(struct milter_client *c, const unsigned char *data, size_t length)
{
    size_t written = 0;
    if (milter_client_output_pending(c) == 0) {
        while (written < length) {
            ssize_t n = send(c->fd, data + written, length - written, MSG_NOSIGNAL);
            if (n > 0) {
                written += (size_t) n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            return n < 0 ? errno : EPIPE;
        }
    }
    if (written == length)
        return 0;
    struct milter_buffer *out = &c->output;
    size_t rest = length - written;
    if (c->output_start > 0 && out->capacity - out->length < rest) {
        memmove(out->data, out->data + c->output_start, out->length - c->output_start);
        out->length -= c->output_start;
        c->output_start = 0;
    }
    if (out->capacity - out->length < rest) {
        out->capacity = out->length + rest > 2 * out->capacity ? out->length + rest
                                                                : 2 * out->capacity;
        out->data = xrealloc(out->data, out->capacity);
    }
    memcpy(out->data + out->length, data + written, rest);
    out->length += rest;
    event_add(c->write_event, NULL);
    return 0;
}

int milter_client_open(struct milter_client *c)
{
    if (c->state != MILTER_CLIENT_IDLE) {
        snprintf(c->reason, sizeof c->reason, "open called twice");
        return -1;
    }
    int family = c->address.sockaddr.ss_family;
    c->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int error = c->fd < 0 ? errno : 0;
    if (c->fd >= 0 && family != AF_UNIX) {
        /* commands that await no reply (SMFIP_NR_*) go out one after another: without this,
         * Nagle could hold the next one until the milter's delayed ACK */
        int one = 1;
        (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (c->fd >= 0) {
        int rc;
        do {
            rc = connect(c->fd, (struct sockaddr *) &c->address.sockaddr, c->address.length);
        } while (rc != 0 && errno == EINTR);
        error = rc == 0 ? 0 : errno;
    }
    if (error != 0 && error != EINPROGRESS) {
        c->state = MILTER_CLIENT_FAILED;
        snprintf(c->reason, sizeof c->reason, "cannot connect to %s: %s", c->address.text,
                 strerror(error));
        c->failed_called = true; /* the caller learns it from the return value */
        client_socket_close(c);
        return -1;
    }
    c->read_event = event_new(c->base, c->fd, EV_READ | EV_PERSIST, client_readable, c);
    c->write_event = event_new(c->base, c->fd, EV_WRITE | EV_PERSIST, client_writable, c);
    if (c->read_event == NULL || c->write_event == NULL)
        abort();
    c->state = MILTER_CLIENT_CONNECTING;
    client_timer_arm(c, c->connect_timeout);
    if (error == EINPROGRESS)
        event_add(c->write_event, NULL); /* writable: the connect finished, one way or other */
    else
        client_negotiate(c); /* a unix socket connects at once */
    return 0;
}

/* client_negotiate - connected: send SMFIC_OPTNEG with everything Postfix offers (failure
 * reaches failed() from the loop: this runs inside milter_client_open too) */
static void client_negotiate(struct milter_client *c)
{
    struct milter_buffer frame = {0};
    milter_encode_optneg(&frame, MILTER_PROTOCOL_VERSION, milter_offered_actions(),
                         milter_offered_protocol(MILTER_PROTOCOL_VERSION));
    c->state = MILTER_CLIENT_NEGOTIATING;
    c->awaited = MILTER_COMMAND_OPTNEG;
    int error = client_output(c, frame.data, frame.length);
    milter_buffer_free(&frame);
    if (error != 0) {
        client_fail_later(c, "cannot write to the milter: %s", strerror(error));
        return;
    }
    event_add(c->read_event, NULL);
    client_timer_arm(c, c->command_timeout);
}

/* client_negotiated - take the OPTNEG answer: check it and keep a copy of the macro lists */
static void client_negotiated(struct milter_client *c, const struct milter_optneg *answer)
{
    const char *error = NULL;
    if (milter_optneg_check(MILTER_PROTOCOL_VERSION, milter_offered_actions(),
                            milter_offered_protocol(MILTER_PROTOCOL_VERSION), answer,
                            &error) != 0) {
        client_fail(c, "negotiation refused: %s (version %u, actions 0x%x, protocol 0x%x)",
                    error, (unsigned) answer->version, (unsigned) answer->actions,
                    (unsigned) answer->protocol);
        return;
    }
    c->negotiated.version = answer->version;
    c->negotiated.actions = answer->actions;
    c->negotiated.protocol = answer->protocol;
    for (size_t i = 0; i < answer->macro_list_count; i++) {
        const struct milter_macro_list *list = &answer->macro_lists[i];
        free(c->negotiated.macro_lists[list->stage]);
        c->negotiated.macro_lists[list->stage] = xstrdup(list->names);
    }
    c->state = MILTER_CLIENT_READY;
    c->awaited = -1;
    evtimer_del(c->timer);
    client_callback_begin(c);
    c->callbacks.ready(c->arg);
    client_callback_end(c);
}

/* ---------------------------------------------------------------- sending */

/* client_timeout_for - content_timeout for message content, command_timeout otherwise */
static double client_timeout_for(const struct milter_client *c, enum milter_command_type command)
{
    switch (command) {
    case MILTER_COMMAND_HEADER:
    case MILTER_COMMAND_EOH:
    case MILTER_COMMAND_BODY:
    case MILTER_COMMAND_BODYEOB:
        return c->content_timeout;
    default:
        return c->command_timeout;
    }
}

int milter_client_send(struct milter_client *c, const struct milter_buffer *buffer,
                       enum milter_command_type command, bool awaits_reply)
{
    if (c->state != MILTER_CLIENT_READY || c->closing)
        return -1;
    if (c->awaited >= 0) {
        client_fail_later(c, "internal error: %s sent while the reply to %s is awaited",
                          milter_command_type_name(command),
                          milter_command_type_name(c->awaited));
        return -1;
    }
    int error = buffer->length > 0 ? client_output(c, buffer->data, buffer->length) : 0;
    if (error != 0) {
        client_fail_later(c, "cannot write to the milter: %s", strerror(error));
        return -1;
    }
    c->awaited = awaits_reply ? (int) command : -1;
    double timeout = client_timeout_for(c, command);
    if (awaits_reply || milter_client_output_pending(c) > 0)
        client_timer_arm(c, timeout);
    else
        c->timeout = timeout;
    return 0;
}

enum milter_client_state milter_client_state(const struct milter_client *c)
{
    return c->state;
}

bool milter_client_waiting(const struct milter_client *c)
{
    return c->awaited >= 0;
}

size_t milter_client_output_pending(const struct milter_client *c)
{
    return c->output.length - c->output_start;
}

const struct milter_negotiated *milter_client_negotiated(const struct milter_client *c)
{
    return &c->negotiated;
}

const char *milter_client_reason(const struct milter_client *c)
{
    return c->reason;
}

/* ---------------------------------------------------------------- events */

static void client_timer_fired(evutil_socket_t fd, short what, void *arg)
{
    struct milter_client *c = arg;
    switch (c->state) {
    case MILTER_CLIENT_CONNECTING:
        client_fail(c, "timeout: no connection to %s after %.1fs", c->address.text, c->timeout);
        break;
    case MILTER_CLIENT_NEGOTIATING:
        client_fail(c, "timeout: no answer to SMFIC_OPTNEG after %.1fs", c->timeout);
        break;
    case MILTER_CLIENT_READY:
        if (c->parked)
            client_fail(c, "parked connection idle for %.0fs", c->timeout);
        else if (c->awaited >= 0)
            client_fail(c, "timeout: no reply to %s after %.1fs",
                        milter_command_type_name(c->awaited), c->timeout);
        else if (milter_client_output_pending(c) > 0)
            client_fail(c, "timeout: the milter read nothing for %.1fs (%zu bytes unsent)",
                        c->timeout, milter_client_output_pending(c));
        break;
    default:
        break;
    }
}

/* client_connected - the write event while connecting: the connect finished */
static void client_connected(struct milter_client *c)
{
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0)
        error = errno;
    if (error == EINPROGRESS || error == EINTR)
        return; /* not yet */
    event_del(c->write_event);
    if (error != 0) {
        client_fail(c, "cannot connect to %s: %s", c->address.text, strerror(error));
        return;
    }
    client_negotiate(c);
}

/* client_writable - write what waits; once the output fell to MILTER_CLIENT_OUTPUT_LOW,
 * restart the drain deadline and tell (drained) */
static void client_writable(evutil_socket_t fd, short what, void *arg)
{
    struct milter_client *c = arg;
    if (c->state == MILTER_CLIENT_CONNECTING) {
        client_connected(c);
        return;
    }
    if (c->state != MILTER_CLIENT_READY && c->state != MILTER_CLIENT_NEGOTIATING) {
        event_del(c->write_event);
        return;
    }
    struct milter_buffer *out = &c->output;
    size_t before = milter_client_output_pending(c);
    while (c->output_start < out->length) {
        ssize_t n = send(c->fd, out->data + c->output_start, out->length - c->output_start,
                         MSG_NOSIGNAL);
        if (n > 0) {
            c->output_start += (size_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break; /* still full: the event stays */
        client_fail(c, "socket error: %s", n < 0 ? strerror(errno) : "nothing written");
        return;
    }
    size_t pending = milter_client_output_pending(c);
    if (pending == 0) {
        event_del(c->write_event);
        if (out->capacity > MILTER_CLIENT_OUTPUT_KEEP)
            milter_buffer_free(out);
        out->length = 0;
        c->output_start = 0;
    }
    if (c->state != MILTER_CLIENT_READY || pending == before)
        return;
    if (c->awaited >= 0 || pending > 0)
        client_timer_arm(c, c->timeout); /* the milter reads: the deadline starts again */
    else
        evtimer_del(c->timer);
    if (pending <= MILTER_CLIENT_OUTPUT_LOW && c->callbacks.drained != NULL) {
        client_callback_begin(c);
        c->callbacks.drained(c->arg);
        client_callback_end(c);
    }
}

/* client_frame - one frame from the milter; false when the client is gone or failed */
static bool client_frame(struct milter_client *c, const struct milter_frame *frame)
{
    if (c->awaited < 0) {
        client_fail(c, "unexpected %s while no command awaits a reply",
                    milter_reply_name(frame->command));
        return false;
    }
    struct milter_reply reply;
    const char *error = NULL;
    if (milter_reply_decode(frame, &reply, &error) != 0) {
        client_fail(c, "malformed %s (%zu bytes) in reply to %s: %s",
                    milter_reply_name(frame->command), frame->length,
                    milter_command_type_name(c->awaited), error ? error : "invalid");
        return false;
    }
    const struct milter_negotiated *n = &c->negotiated;
    if (!milter_reply_allowed(c->awaited, reply.type, n->actions, n->protocol)) {
        client_fail(c, "%s is not allowed in reply to %s", milter_reply_type_name(reply.type),
                    milter_command_type_name(c->awaited));
        return false;
    }
    if (c->state == MILTER_CLIENT_NEGOTIATING) {
        client_negotiated(c, &reply.optneg);
        return c->state == MILTER_CLIENT_READY && !c->closing;
    }
    if (reply.type == MILTER_REPLY_PROGRESS) {
        client_timer_arm(c, c->timeout);
        return true;
    }
    /* modifications come before the end-of-message verdict */
    bool final = !milter_reply_is_modification(reply.type);
    if (final) {
        c->awaited = -1;
        if (milter_client_output_pending(c) == 0)
            evtimer_del(c->timer);
    } else {
        client_timer_arm(c, c->timeout);
    }
    client_callback_begin(c);
    c->callbacks.reply(c->arg, &reply);
    bool gone = client_callback_end(c);
    return !gone && c->state == MILTER_CLIENT_READY;
}

/* client_input_room - room for need bytes from input_start on: compact, then grow (need is
 * at most MILTER_CLIENT_INPUT_MAX) */
static void client_input_room(struct milter_client *c, size_t need)
{
    if (c->input_start > 0 && (c->input_capacity - c->input_start < need ||
                               c->input_end == c->input_capacity)) {
        memmove(c->input, c->input + c->input_start, c->input_end - c->input_start);
        c->input_end -= c->input_start;
        c->input_start = 0;
    }
    if (c->input_capacity < need) {
        size_t capacity = c->input_capacity ? c->input_capacity : MILTER_CLIENT_INPUT_FIRST;
        while (capacity < need)
            capacity *= 2;
        if (capacity > MILTER_CLIENT_INPUT_MAX)
            capacity = MILTER_CLIENT_INPUT_MAX;
        c->input = xrealloc(c->input, capacity);
        c->input_capacity = capacity;
    }
}

/* client_frames - cut the input into frames and handle each, until one is incomplete */
static void client_frames(struct milter_client *c)
{
    while (c->state == MILTER_CLIENT_NEGOTIATING || c->state == MILTER_CLIENT_READY) {
        size_t available = c->input_end - c->input_start;
        if (available < MILTER_LENGTH_BYTES)
            break;
        const unsigned char *bytes = c->input + c->input_start;
        uint32_t length = ((uint32_t) bytes[0] << 24) | ((uint32_t) bytes[1] << 16) |
                          ((uint32_t) bytes[2] << 8) | bytes[3];
        size_t need = MILTER_LENGTH_BYTES;
        if (length > 0 && length <= MILTER_MAX_FRAME) {
            need += length;
            if (available < need) {
                client_input_room(c, need); /* the next read completes it */
                break;
            }
        }
        struct milter_frame frame;
        size_t consumed = 0;
        int rc = milter_frame_next(bytes, need, MILTER_MAX_FRAME, &frame, &consumed);
        if (rc < 0) {
            client_fail(c, "bad frame from the milter: %s (length field %u)",
                        frame.error ? frame.error : "invalid", (unsigned) length);
            break;
        }
        if (rc == 0)
            break;
        bool go_on = client_frame(c, &frame);
        if (c->closing)
            break;
        c->input_start += consumed;
        if (!go_on)
            break;
    }
    if (!c->closing && c->input_start == c->input_end)
        c->input_start = c->input_end = 0;
}

/* client_readable - one read() into the input buffer, then the frames it completed */
static void client_readable(evutil_socket_t fd, short what, void *arg)
{
    struct milter_client *c = arg;
    if (c->state != MILTER_CLIENT_NEGOTIATING && c->state != MILTER_CLIENT_READY)
        return;
    client_input_room(c, c->input_end - c->input_start + 1);
    if (c->input_end == c->input_capacity) {
        client_fail(c, "internal error: %zu bytes from the milter hold no whole frame",
                    c->input_end - c->input_start);
        return;
    }
    ssize_t n;
    do {
        n = read(c->fd, c->input + c->input_end, c->input_capacity - c->input_end);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    client_callback_begin(c);
    if (n == 0)
        client_fail(c, "the milter closed the connection%s%s",
                    c->awaited >= 0 ? " while Porter waited for the reply to " : "",
                    c->awaited >= 0 ? milter_command_type_name(c->awaited) : "");
    else if (n < 0)
        client_fail(c, "socket error: %s", strerror(errno));
    else {
        c->input_end += (size_t) n;
        client_frames(c);
    }
    client_callback_end(c);
}
