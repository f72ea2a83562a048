/*
 * daemon_talk.c - one request to a local daemon and its answer (see daemon_talk.h).
 *
 * A bufferevent carries the exchange. The output is refilled from the write callback while
 * it holds less than DAEMON_TALK_LOW bytes, up to DAEMON_TALK_HIGH: so at most about that
 * much of a message is in memory, however large the message is. The spool file is read with
 * pread (the descriptor is a duplicate, and pread leaves the shared offset alone); these
 * reads of a local file are the only waits on the loop, DAEMON_TALK_PIECE bytes each.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "daemon_talk.h"

#define DAEMON_TALK_LOW (64 * 1024)   /* refill the output below this */
#define DAEMON_TALK_HIGH (256 * 1024) /* ... up to this */
#define DAEMON_TALK_ERROR_MAX 300
#define DAEMON_TALK_MARGIN 5.0        /* the core's deadline: the talk's timeout plus this */

struct daemon_talk {
    struct bufferevent *connection;
    struct event *timer;          /* the deadline; also delivers an early failure */
    daemon_talk_fn done;
    void *arg;
    char *headers;                /* the message's header block and empty line, until sent */
    size_t headers_length;
    int body_fd;                  /* -1 without a message */
    off_t body_offset, body_end;  /* what is left to send */
    bool chunked, request_sent, connected;
    int connect_error;            /* a refusal libevent reports later without its errno */
    size_t answer_max;
    bool answer_exact;
    char error[DAEMON_TALK_ERROR_MAX]; /* set: done() gets it when the timer fires */
    const void *owner;
    struct daemon_talk *next, **link; /* in talks_live */
    char piece[DAEMON_TALK_PIECE];
};

/* This process's talks, ended by talk_loop_end when the worker's loop goes away first. */
static struct daemon_talk *talks_live;
static bool talk_loop_end_registered;

off_t daemon_talk_message_length(const struct porter_message *m)
{
    return (off_t)m->headers_length + 2 + m->body_length;
}

/* talk_free - everything the talk owns */
static void talk_free(struct daemon_talk *t)
{
    *t->link = t->next;
    if (t->next != NULL)
        t->next->link = t->link;
    if (t->connection != NULL)
        bufferevent_free(t->connection);
    event_free(t->timer);
    if (t->body_fd >= 0)
        close(t->body_fd);
    free(t->headers);
    free(t);
}

/* talk_finish - done() with the answer so far (error NULL) or an error, then free */
static void talk_finish(struct daemon_talk *t, const char *error)
{
    size_t length = 0;
    char *answer = NULL;
    if (error == NULL) {
        struct evbuffer *input = bufferevent_get_input(t->connection);
        length = evbuffer_get_length(input);
        if (t->answer_exact && length > t->answer_max)
            length = t->answer_max;
        answer = malloc(length + 1);
        if (answer == NULL)
            abort();
        evbuffer_remove(input, answer, length);
        answer[length] = '\0';
    }
    t->done(t->arg, error, answer, length);
    free(answer);
    talk_free(t);
}

/* talk_fail - finish with an error formatted into the talk */
static void talk_fail(struct daemon_talk *t, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void talk_fail(struct daemon_talk *t, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vsnprintf(t->error, sizeof t->error, format, ap);
    va_end(ap);
    talk_finish(t, t->error);
}

/* talk_piece - one piece of the message into the output, framed when chunked */
static void talk_piece(struct daemon_talk *t, const void *data, size_t length)
{
    struct evbuffer *output = bufferevent_get_output(t->connection);
    if (t->chunked) {
        uint32_t size = htonl((uint32_t)length);
        evbuffer_add(output, &size, sizeof size);
    }
    if (length > 0)
        evbuffer_add(output, data, length);
}

/* talk_fill - more of the message into the output, up to DAEMON_TALK_HIGH; -1 when the spool
 * file cannot be read */
static int talk_fill(struct daemon_talk *t)
{
    struct evbuffer *output = bufferevent_get_output(t->connection);
    while (!t->request_sent && evbuffer_get_length(output) < DAEMON_TALK_HIGH) {
        if (t->headers != NULL) {
            talk_piece(t, t->headers, t->headers_length);
            free(t->headers);
            t->headers = NULL;
        } else if (t->body_offset < t->body_end) {
            off_t left = t->body_end - t->body_offset;
            size_t want = left < DAEMON_TALK_PIECE ? (size_t)left : DAEMON_TALK_PIECE;
            ssize_t got = pread(t->body_fd, t->piece, want, t->body_offset);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                return -1;
            talk_piece(t, t->piece, (size_t)got);
            t->body_offset += got;
        } else {
            if (t->chunked)
                talk_piece(t, NULL, 0); /* the zero-length chunk ends the stream */
            t->request_sent = true;
        }
    }
    return 0;
}

static void talk_writable(struct bufferevent *connection, void *arg)
{
    struct daemon_talk *t = arg;
    if (talk_fill(t) != 0)
        talk_fail(t, "cannot read the message from the spool: %s", strerror(errno));
}

static void talk_readable(struct bufferevent *connection, void *arg)
{
    struct daemon_talk *t = arg;
    size_t length = evbuffer_get_length(bufferevent_get_input(connection));
    if (t->answer_exact && length >= t->answer_max)
        talk_finish(t, NULL);
    else if (length > t->answer_max)
        talk_fail(t, "answer longer than %zu bytes", t->answer_max);
}

/* talk_event - connected, or the daemon closed or reset the connection */
static void talk_event(struct bufferevent *connection, short what, void *arg)
{
    struct daemon_talk *t = arg;
    if (what & BEV_EVENT_CONNECTED) {
        t->connected = true;
        return;
    }
    int error = EVUTIL_SOCKET_ERROR();
    struct evbuffer *input = bufferevent_get_input(connection);
    /* an answer may still wait in the socket after a failed write (clamd answers and closes
     * before it read the whole stream) */
    evutil_socket_t fd = bufferevent_getfd(connection);
    while (fd >= 0 && t->connected && evbuffer_get_length(input) <= t->answer_max &&
           evbuffer_read(input, fd, 4096) > 0)
        ;
    size_t length = evbuffer_get_length(input);
    if (length > t->answer_max && !t->answer_exact)
        talk_fail(t, "answer longer than %zu bytes", t->answer_max);
    else if (t->answer_exact && length > 0 && length < t->answer_max)
        talk_fail(t, "answer cut short: %zu of %zu bytes", length, t->answer_max);
    else if (length > 0)
        talk_finish(t, NULL);
    else if (!t->connected)
        talk_fail(t, "cannot connect: %s",
                  strerror(t->connect_error ? t->connect_error : error ? error : ECONNREFUSED));
    else if (what & BEV_EVENT_EOF)
        talk_fail(t, "closed the connection without an answer");
    else
        talk_fail(t, "connection failed: %s", strerror(error ? error : ECONNRESET));
}

/* talk_timer - the deadline passed, or an early failure waits to be delivered */
static void talk_timer(evutil_socket_t fd, short what, void *arg)
{
    struct daemon_talk *t = arg;
    if (t->error[0] != '\0')
        talk_finish(t, t->error);
    else
        talk_fail(t, "no answer within the timeout");
}

void daemon_talk_start(struct event_base *base, const struct daemon_talk_request *request,
                       daemon_talk_fn done, void *arg)
{
    struct daemon_talk *t = calloc(1, sizeof *t);
    if (t == NULL)
        abort();
    t->done = done;
    t->arg = arg;
    t->body_fd = -1;
    t->chunked = request->chunked;
    t->owner = request->owner;
    t->answer_max = request->answer_max;
    t->answer_exact = request->answer_exact;
    t->next = talks_live;
    t->link = &talks_live;
    if (talks_live != NULL)
        talks_live->link = &t->next;
    talks_live = t;
    t->timer = evtimer_new(base, talk_timer, t);
    t->connection = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (t->timer == NULL || t->connection == NULL)
        abort();
    bufferevent_setcb(t->connection, talk_readable, talk_writable, talk_event, t);
    bufferevent_setwatermark(t->connection, EV_WRITE, DAEMON_TALK_LOW, 0);
    evbuffer_add(bufferevent_get_output(t->connection), request->head, request->head_length);
    const struct porter_message *m = request->message;
    if (m != NULL) {
        t->headers_length = m->headers_length + 2;
        t->headers = malloc(t->headers_length);
        if (t->headers == NULL)
            abort();
        memcpy(t->headers, m->headers, m->headers_length);
        memcpy(t->headers + m->headers_length, "\r\n", 2);
        t->body_fd = fcntl(m->body_fd, F_DUPFD_CLOEXEC, 0);
        t->body_offset = m->body_offset;
        t->body_end = m->body_offset + m->body_length;
        if (t->body_fd < 0)
            snprintf(t->error, sizeof t->error, "cannot use the spool file: %s", strerror(errno));
    } else {
        t->request_sent = true;
    }
    double seconds = request->timeout > 0 ? request->timeout : 0.001;
    struct timeval deadline = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    if (t->error[0] == '\0' && talk_fill(t) != 0)
        snprintf(t->error, sizeof t->error, "cannot read the message from the spool: %s",
                 strerror(errno));
    errno = 0;
    if (t->error[0] == '\0' &&
        bufferevent_socket_connect(t->connection, (struct sockaddr *)&request->address->sockaddr,
                                   (int)request->address->length) != 0)
        snprintf(t->error, sizeof t->error, "cannot connect: %s",
                 strerror(errno ? errno : ECONNREFUSED));
    else if (errno == ECONNREFUSED)
        t->connect_error = errno; /* refused at once: the event callback follows */
    if (t->error[0] != '\0') {
        deadline.tv_sec = 0; /* deliver the failure from the loop, not from here */
        deadline.tv_usec = 0;
    } else {
        bufferevent_enable(t->connection, EV_READ | EV_WRITE);
    }
    evtimer_add(t->timer, &deadline);
}

/* talk_loop_end - the worker's loop is about to be freed: end every talk (done() gets an
 * error; nobody waits for it any more) */
static void talk_loop_end(void *unused)
{
    while (talks_live != NULL)
        talk_finish(talks_live, "the worker stopped");
}

void daemon_talk_fini(void *state)
{
    for (struct daemon_talk *t = talks_live, *next; t != NULL; t = next) {
        next = t->next;
        if (t->owner == state)
            talk_finish(t, "the plugin was unloaded");
    }
    free(state);
}

int daemon_talk_hook(porter_session *s, const struct daemon_talk_request *request,
                     porter_handle *handle, daemon_talk_fn done, void *arg)
{
    if (!talk_loop_end_registered && porter_at_loop_end(s, talk_loop_end, NULL) == 0)
        talk_loop_end_registered = true;
    *handle = porter_suspend(s);
    porter_wait_extend(*handle, request->timeout + DAEMON_TALK_MARGIN);
    daemon_talk_start(porter_event_base(s), request, done, arg);
    return PORTER_PENDING;
}

void daemon_talk_address(porter_args *a, const char *fallback, struct socket_address *out)
{
    char error[SOCKET_ADDRESS_TEXT_MAX + 100];
    if (socket_address_parse(porter_arg_string(a, "socket", fallback), out, error,
                             sizeof error) != 0)
        porter_arg_error(a, "socket: %s", error);
}

void daemon_talk_on_error(porter_session *s, porter_handle handle, int on_error,
                          const char *event, const char *scanner, const char *error)
{
    bool accept = on_error == DAEMON_TALK_ACCEPT;
    porter_log(s, PORTER_LOG_WARNING, "event=%s result=error error=\"%s\" action=%s", event,
               error, accept ? "accept" : "tempfail");
    if (accept)
        porter_resume(handle, PORTER_DECLINED, 0, NULL, "%s", "");
    else
        porter_resume(handle, PORTER_DENYSOFT, 451, "4.7.1", "%s unavailable, try again later",
                      scanner);
}
