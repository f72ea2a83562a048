/*
 * smtp_client.c - an asynchronous SMTP/LMTP client and a pool of its connections (see
 * smtp_client.h for the interface and the ownership rules).
 *
 * One connection runs one operation at a time. Commands of an operation are kept in a small
 * queue of what each expected reply means; MAIL and the RCPTs that follow it are written in
 * one go when the server offers PIPELINING (RFC 2920), everything else one command at a time.
 * Replies are read line by line (CRLF, a bare LF tolerated) with a limit on line length and
 * line count; anything malformed kills the connection. Each phase has its own timeout (one
 * timer, re-armed at every step). After STARTTLS the input must be empty (no injected
 * commands) and the connection continues through a bufferevent_openssl filter. The message is
 * dot-stuffed while it is sent, with write watermarks as back-pressure, so neither the
 * message nor its stuffed copy is ever whole in memory.
 *
 * Fatal: out of memory (memory.h). A server is never trusted: a bad reply is code 0.
 * Memory: the client owns copies of its settings, its replies and its recipients.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "memory.h"
#include "smtp_client.h"

#define CLIENT_OUTPUT_HIGH (256 * 1024) /* stop adding message bytes above this */
#define CLIENT_OUTPUT_LOW (64 * 1024)   /* and go on below this */
#define CLIENT_READ_CHUNK (64 * 1024)
#define CLIENT_COMMAND_MAX 512          /* RFC 5321 command line, CRLF included */

static const char *const tls_names[SMTP_CLIENT_TLS_COUNT] = {"none", "may", "encrypt", "verify"};
static const char *const identity_names[SMTP_CLIENT_IDENTITY_COUNT] = {"auto", "xforward",
                                                                      "xclient", "none"};
static const char *const operation_names[SMTP_CLIENT_OP_COUNT] = {"none", "open", "begin",
                                                                 "recipient", "data", "reset"};

const char *smtp_client_tls_name(int tls)
{
    return tls >= 0 && tls < SMTP_CLIENT_TLS_COUNT ? tls_names[tls] : "invalid";
}

const char *smtp_client_identity_name(int identity)
{
    return identity >= 0 && identity < SMTP_CLIENT_IDENTITY_COUNT ? identity_names[identity]
                                                                   : "invalid";
}

const char *smtp_client_operation_name(int operation)
{
    return operation >= 0 && operation < SMTP_CLIENT_OP_COUNT ? operation_names[operation]
                                                              : "invalid";
}

/* What an expected reply answers. */
enum client_command {
    CMD_GREETING = 0,
    CMD_EHLO,
    CMD_HELO,
    CMD_STARTTLS,
    CMD_AUTH,
    CMD_XCLIENT,
    CMD_XFORWARD,
    CMD_MAIL,
    CMD_RCPT,
    CMD_DATA,
    CMD_DOT,
    CMD_RSET,
    CMD_COUNT
};

/* Extensions the server offered. */
enum client_capability {
    CAP_PIPELINING = 1 << 0,
    CAP_STARTTLS = 1 << 1,
    CAP_8BITMIME = 1 << 2,
    CAP_SMTPUTF8 = 1 << 3,
    CAP_DSN = 1 << 4,
    CAP_SIZE = 1 << 5,
    CAP_AUTH_PLAIN = 1 << 6,
    CAP_XCLIENT = 1 << 7,
    CAP_XFORWARD = 1 << 8,
    CAP_ENHANCED = 1 << 9,
};

struct client_expect {
    enum client_command command;
    size_t index;  /* RCPT: the recipient */
    char *line;    /* to write (NULL for the greeting) */
};

/* The strings of a struct smtp_client_settings, owned (settings_strings_copy / _clear). */
struct settings_strings {
    char *address, *helo_name, *tls_server_name, *auth_user, *auth_password;
};

/* settings_strings_copy - owned copies of the strings in s (NULL stays NULL) */
static void settings_strings_copy(struct settings_strings *out, const struct smtp_client_settings *s)
{
    out->address = s->address ? xstrdup(s->address) : NULL;
    out->helo_name = s->helo_name ? xstrdup(s->helo_name) : NULL;
    out->tls_server_name = s->tls_server_name ? xstrdup(s->tls_server_name) : NULL;
    out->auth_user = s->auth_user ? xstrdup(s->auth_user) : NULL;
    out->auth_password = s->auth_password ? xstrdup(s->auth_password) : NULL;
}

/* settings_strings_clear - free them all, the password overwritten first */
static void settings_strings_clear(struct settings_strings *owned)
{
    free(owned->address);
    free(owned->helo_name);
    free(owned->tls_server_name);
    free(owned->auth_user);
    if (owned->auth_password) {
        explicit_bzero(owned->auth_password, strlen(owned->auth_password));
        free(owned->auth_password);
    }
    *owned = (struct settings_strings){0};
}

struct smtp_client {
    struct event_base *base;
    struct settings_strings own; /* never NULL but tls_server_name and auth_user */
    bool lmtp;
    int tls;
    SSL_CTX *tls_context;
    int identity;
    double connect_timeout, greeting_timeout, command_timeout, data_timeout, data_done_timeout;

    struct bufferevent *bev;
    struct event *timer;
    struct event *deferred;       /* ends an operation that failed before any I/O */
    bool connected;
    bool opened;                  /* open finished successfully */
    bool dead;
    bool closed_by_server;      /* it died because the server closed or reset the connection */
    bool tls_active;
    bool handshaking;
    unsigned capabilities;
    char xclient_attributes[256];  /* words offered after XCLIENT, uppercase */
    char xforward_attributes[256];

    int operation;                /* enum smtp_client_operation */
    smtp_client_done_fn done;
    void *done_arg;
    struct smtp_reply result;     /* the operation's decisive reply */
    bool result_set;

    /* the reply being read */
    struct evbuffer *text;
    size_t reply_lines;
    int reply_code;
    char reply_enhanced[16];

    /* commands of the operation */
    struct client_expect *queue;
    size_t queue_count, queue_capacity;
    size_t queue_sent, queue_answered;
    bool pipelined;               /* write the whole queue at once */
    int after_queue;              /* what to do when the queue is answered (enum client_next) */

    /* the transaction */
    struct smtp_client_recipient *recipients;
    size_t recipient_count, recipient_capacity;
    size_t accepted;
    bool in_transaction;
    unsigned long transactions;
    unsigned long begins;         /* begin operations started on this connection */
    struct smtp_client_envelope pending_envelope; /* begin: what is left to queue */
    char *pending_mail_line;
    bool identity_sent;
    char *identity_header;        /* SMTP_CLIENT_IDENTITY_HEADER line(s) to prepend, or NULL */
    size_t identity_header_length;
    bool identity_header_done;    /* written into this transaction's message */

    /* data */
    struct smtp_client_message message;
    size_t message_part;
    off_t message_done;           /* file bytes sent */
    struct smtp_stuff_state stuff;
    bool message_complete;        /* the final dot is in the output buffer */
    size_t finals_expected, finals_got;
    char *read_buffer;
    char *stuff_buffer;

    unsigned depth;               /* callbacks on the stack */
    bool free_requested;
};

/* What follows once every queued command is answered. */
enum client_next {
    NEXT_NONE = 0,
    NEXT_OPEN_AFTER_EHLO,  /* STARTTLS? AUTH? done */
    NEXT_OPEN_DONE,
    NEXT_BEGIN_IDENTITY_DONE,
    NEXT_BEGIN_DONE,
    NEXT_RECIPIENT_DONE,
    NEXT_DATA_BODY,
    NEXT_DATA_DONE,
    NEXT_RESET_DONE,
    NEXT_COUNT
};

static void client_fail(struct smtp_client *c, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void client_write_queue(struct smtp_client *c);
static void client_data_fill(struct smtp_client *c);

/* ---------------------------------------------------------------- small helpers */

/* reply_set - copy into a reply (text NULL becomes "") */
static void reply_set_fields(struct smtp_reply *r, int code, const char *enhanced, const char *text)
{
    free(r->text);
    r->code = code;
    snprintf(r->enhanced, sizeof r->enhanced, "%s", enhanced ? enhanced : "");
    r->text = xstrdup(text ? text : "");
}

static void reply_copy(struct smtp_reply *to, const struct smtp_reply *from)
{
    reply_set_fields(to, from->code, from->enhanced, from->text);
}

static void reply_clear(struct smtp_reply *r)
{
    free(r->text);
    memset(r, 0, sizeof *r);
}

char *smtp_reply_format(const struct smtp_reply *reply, char *out, size_t size)
{
    if (size == 0)
        return out;
    int n = snprintf(out, size, "%d%s%s ", reply->code, reply->enhanced[0] ? " " : "",
                     reply->enhanced);
    size_t used = n > 0 ? ((size_t)n < size ? (size_t)n : size - 1) : 0;
    for (const char *p = reply->text ? reply->text : ""; *p && used + 1 < size; p++) {
        if (*p == '\n') {
            if (used + 3 >= size)
                break;
            out[used++] = ';';
            out[used++] = ' ';
        } else {
            unsigned char byte = (unsigned char)*p;
            out[used++] = byte < 0x20 || byte == 0x7f ? '?' : *p;
        }
    }
    out[used] = '\0';
    return out;
}

/* timer_arm - (re)start the phase timer */
static void client_timer(struct smtp_client *c, double seconds)
{
    if (seconds <= 0)
        seconds = 300;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    evtimer_add(c->timer, &tv);
}

/* client_hold / client_unhold - keep c alive across user callbacks */
static void client_destroy(struct smtp_client *c);

static void client_hold(struct smtp_client *c)
{
    c->depth++;
}

/* client_unhold - false when c is gone */
static bool client_unhold(struct smtp_client *c)
{
    c->depth--;
    if (c->depth == 0 && c->free_requested) {
        client_destroy(c);
        return false;
    }
    return !c->free_requested;
}

static void client_queue_clear(struct smtp_client *c)
{
    for (size_t i = 0; i < c->queue_count; i++)
        free(c->queue[i].line);
    c->queue_count = c->queue_sent = c->queue_answered = 0;
    c->pipelined = false;
    c->after_queue = NEXT_NONE;
}

/* client_queue_add - one command and the reply it expects (line already ends in CRLF) */
static void client_queue_add(struct smtp_client *c, enum client_command command, size_t index,
                             char *line)
{
    if (c->queue_count == c->queue_capacity) {
        c->queue_capacity = c->queue_capacity ? c->queue_capacity * 2 : 8;
        c->queue = xrealloc(c->queue, c->queue_capacity * sizeof *c->queue);
    }
    c->queue[c->queue_count].command = command;
    c->queue[c->queue_count].index = index;
    c->queue[c->queue_count].line = line;
    c->queue_count++;
}

/* client_timeout_for - the phase timeout of a command */
static double client_timeout_for(const struct smtp_client *c, enum client_command command)
{
    switch (command) {
    case CMD_GREETING: case CMD_EHLO: case CMD_HELO: case CMD_STARTTLS: case CMD_AUTH:
    case CMD_XCLIENT:
        return c->greeting_timeout;
    case CMD_DOT:
        return c->data_done_timeout;
    default:
        return c->command_timeout;
    }
}

/* ---------------------------------------------------------------- ending operations */

/* client_finish - end the current operation with reply r (copied) and call back */
static void client_finish(struct smtp_client *c, const struct smtp_reply *r)
{
    if (c->operation == SMTP_CLIENT_OP_NONE)
        return;
    evtimer_del(c->timer);
    if (r != NULL)
        reply_copy(&c->result, r);
    else if (!c->result_set)
        reply_set_fields(&c->result, 0, "", "no reply");
    smtp_client_done_fn done = c->done;
    void *arg = c->done_arg;
    c->operation = SMTP_CLIENT_OP_NONE;
    c->done = NULL;
    c->done_arg = NULL;
    c->result_set = false;
    client_queue_clear(c);
    if (done != NULL) {
        client_hold(c);
        done(c, arg, &c->result);
        client_unhold(c);
    }
}

/* client_close_socket - drop the connection (the client object stays) */
static void client_close_socket(struct smtp_client *c)
{
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    c->connected = false;
    c->tls_active = false;
    c->in_transaction = false;
}

/* client_give_up - the connection is of no more use: close it and end the operation with r
 * (NULL: the result already set) */
static void client_give_up(struct smtp_client *c, const struct smtp_reply *r)
{
    c->dead = true;
    client_close_socket(c);
    client_finish(c, r);
}

/* client_fail - the connection is dead: no reply (code 0) ends the operation */
static void client_fail(struct smtp_client *c, const char *format, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, format);
    vsnprintf(text, sizeof text, format, ap);
    va_end(ap);
    struct smtp_reply r = {0};
    reply_set_fields(&r, 0, "", text);
    /* recipients without a final reply get this one */
    for (size_t i = 0; i < c->recipient_count; i++)
        if (c->operation == SMTP_CLIENT_OP_DATA && c->recipients[i].rcpt.code / 100 == 2 &&
            c->recipients[i].final.code == 0)
            reply_copy(&c->recipients[i].final, &r);
    client_give_up(c, &r);
    reply_clear(&r);
}

/* client_deferred_fire - an operation that could not start ends here, outside its caller */
static void client_deferred_fire(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_client *c = arg;
    client_hold(c);
    client_finish(c, NULL);
    client_unhold(c);
}

/* client_start - begin an operation; false (and a deferred failure) when it cannot start */
static bool client_start(struct smtp_client *c, int operation, smtp_client_done_fn done, void *arg)
{
    if (c->operation != SMTP_CLIENT_OP_NONE) {
        /* A caller bug: never two operations at once. */
        fprintf(stderr, "smtp_client: %s started while %s runs (%s:%d)\n",
                smtp_client_operation_name(operation), smtp_client_operation_name(c->operation),
                __FILE__, __LINE__);
        abort();
    }
    c->operation = operation;
    c->done = done;
    c->done_arg = arg;
    c->result_set = false;
    client_queue_clear(c);
    bool can = operation == SMTP_CLIENT_OP_OPEN ? !c->connected && !c->dead
                                                 : c->opened && !c->dead && c->bev != NULL;
    if (!can) {
        reply_set_fields(&c->result, 0, "", c->dead ? "connection is closed"
                                                    : "connection is not open");
        c->result_set = true;
        event_active(c->deferred, EV_TIMEOUT, 0);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- writing */

static void client_write(struct smtp_client *c, const char *line)
{
    bufferevent_write(c->bev, line, strlen(line));
}

/* client_write_queue - write what may be written now: everything (pipelined) or the next */
static void client_write_queue(struct smtp_client *c)
{
    if (c->queue_sent >= c->queue_count)
        return;
    if (c->pipelined) {
        while (c->queue_sent < c->queue_count) {
            if (c->queue[c->queue_sent].line != NULL)
                client_write(c, c->queue[c->queue_sent].line);
            c->queue_sent++;
        }
    } else if (c->queue_sent == c->queue_answered) {
        if (c->queue[c->queue_sent].line != NULL)
            client_write(c, c->queue[c->queue_sent].line);
        c->queue_sent++;
    }
    client_timer(c, client_timeout_for(c, c->queue[c->queue_answered].command));
}

/* ---------------------------------------------------------------- EHLO capabilities */

static void client_parse_ehlo(struct smtp_client *c, const char *text)
{
    c->capabilities = 0;
    c->xclient_attributes[0] = c->xforward_attributes[0] = '\0';
    const char *line = text;
    bool first = true;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t length = end ? (size_t)(end - line) : strlen(line);
        if (!first) {
            char word[64];
            size_t w = 0;
            while (w < length && w < sizeof word - 1 && line[w] != ' ' && line[w] != '=') {
                word[w] = line[w];
                w++;
            }
            word[w] = '\0';
            const char *rest = line + w;
            size_t rest_length = length - w;
            if (rest_length > 0 && (*rest == ' ' || *rest == '=')) {
                rest++;
                rest_length--;
            }
            if (strcasecmp(word, "PIPELINING") == 0)
                c->capabilities |= CAP_PIPELINING;
            else if (strcasecmp(word, "STARTTLS") == 0)
                c->capabilities |= CAP_STARTTLS;
            else if (strcasecmp(word, "8BITMIME") == 0)
                c->capabilities |= CAP_8BITMIME;
            else if (strcasecmp(word, "SMTPUTF8") == 0)
                c->capabilities |= CAP_SMTPUTF8;
            else if (strcasecmp(word, "DSN") == 0)
                c->capabilities |= CAP_DSN;
            else if (strcasecmp(word, "SIZE") == 0)
                c->capabilities |= CAP_SIZE;
            else if (strcasecmp(word, "ENHANCEDSTATUSCODES") == 0)
                c->capabilities |= CAP_ENHANCED;
            else if (strcasecmp(word, "AUTH") == 0) {
                char mechanisms[256];
                snprintf(mechanisms, sizeof mechanisms, " %.*s ", (int)rest_length, rest);
                for (char *p = mechanisms; *p; p++)
                    if (*p >= 'a' && *p <= 'z')
                        *p = (char)(*p - 'a' + 'A');
                if (strstr(mechanisms, " PLAIN ") != NULL)
                    c->capabilities |= CAP_AUTH_PLAIN;
            } else if (strcasecmp(word, "XCLIENT") == 0 || strcasecmp(word, "XFORWARD") == 0) {
                bool xclient = strcasecmp(word, "XCLIENT") == 0;
                char *attributes = xclient ? c->xclient_attributes : c->xforward_attributes;
                snprintf(attributes, sizeof c->xclient_attributes, " %.*s ", (int)rest_length, rest);
                for (char *p = attributes; *p; p++)
                    if (*p >= 'a' && *p <= 'z')
                        *p = (char)(*p - 'a' + 'A');
                c->capabilities |= xclient ? CAP_XCLIENT : CAP_XFORWARD;
            }
        }
        first = false;
        if (end == NULL)
            break;
        line = end + 1;
    }
}

bool smtp_client_has_extension(const struct smtp_client *c, const char *keyword)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {
        {"PIPELINING", CAP_PIPELINING}, {"STARTTLS", CAP_STARTTLS}, {"8BITMIME", CAP_8BITMIME},
        {"SMTPUTF8", CAP_SMTPUTF8}, {"DSN", CAP_DSN}, {"SIZE", CAP_SIZE},
        {"AUTH", CAP_AUTH_PLAIN}, {"XCLIENT", CAP_XCLIENT}, {"XFORWARD", CAP_XFORWARD},
        {"ENHANCEDSTATUSCODES", CAP_ENHANCED},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(names[i].name, keyword) == 0)
            return (c->capabilities & names[i].bit) != 0;
    return false;
}

/* ---------------------------------------------------------------- the open operation */

static void client_queue_ehlo(struct smtp_client *c, const char *name)
{
    client_queue_add(c, c->lmtp ? CMD_EHLO : CMD_EHLO, 0,
                     xasprintf("%s %s\r\n", c->lmtp ? "LHLO" : "EHLO", name));
}

/* client_tls_start - wrap the connection in TLS after "220" to STARTTLS */
static void client_read(struct bufferevent *bev, void *arg);
static void client_written(struct bufferevent *bev, void *arg);
static void client_event(struct bufferevent *bev, short what, void *arg);

static void client_tls_start(struct smtp_client *c)
{
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        client_fail(c, "the server sent data after its STARTTLS reply (injection attempt?)");
        return;
    }
    SSL *ssl = SSL_new(c->tls_context);
    if (ssl == NULL) {
        client_fail(c, "cannot create a TLS session");
        return;
    }
    const char *name = c->own.tls_server_name;
    struct in6_addr probe;
    bool literal = name == NULL || inet_pton(AF_INET, name, &probe) == 1 ||
                   inet_pton(AF_INET6, name, &probe) == 1;
    if (!literal)
        SSL_set_tlsext_host_name(ssl, name);
    if (c->tls == SMTP_CLIENT_TLS_VERIFY) {
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        if (name != NULL) {
            if (literal)
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
            else
                SSL_set1_host(ssl, name);
        }
    } else {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    }
    struct bufferevent *filter = bufferevent_openssl_filter_new(
        c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (filter == NULL) {
        SSL_free(ssl);
        client_fail(c, "cannot start TLS");
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
    c->bev = filter;
    c->handshaking = true;
    bufferevent_setcb(c->bev, client_read, client_written, client_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_OUTPUT_LOW, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    client_timer(c, c->connect_timeout);
}

/* client_auth_line - "AUTH PLAIN base64(\0user\0password)" */
static char *client_auth_line(const struct smtp_client *c)
{
    size_t user = strlen(c->own.auth_user), password = strlen(c->own.auth_password);
    size_t length = user + password + 2;
    unsigned char *raw = xmalloc(length);
    raw[0] = '\0';
    memcpy(raw + 1, c->own.auth_user, user);
    raw[1 + user] = '\0';
    memcpy(raw + 2 + user, c->own.auth_password, password);
    char *encoded = xmalloc(4 * ((length + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)encoded, raw, (int)length);
    char *line = xasprintf("AUTH PLAIN %s\r\n", encoded);
    explicit_bzero(raw, length);
    free(raw);
    explicit_bzero(encoded, strlen(encoded));
    free(encoded);
    return line;
}

/* client_open_after_ehlo - EHLO done: STARTTLS, then AUTH, then ready */
static void client_open_after_ehlo(struct smtp_client *c)
{
    if (!c->tls_active && c->tls != SMTP_CLIENT_TLS_NONE) {
        if (c->capabilities & CAP_STARTTLS) {
            client_queue_clear(c);
            client_queue_add(c, CMD_STARTTLS, 0, xstrdup("STARTTLS\r\n"));
            client_write_queue(c);
            return;
        }
        if (c->tls != SMTP_CLIENT_TLS_MAY) {
            struct smtp_reply r = {0};
            reply_set_fields(&r, 0, "4.7.5", "TLS is required but the server does not offer STARTTLS");
            client_give_up(c, &r);
            reply_clear(&r);
            return;
        }
    }
    if (c->own.auth_user != NULL) {
        if (!(c->capabilities & CAP_AUTH_PLAIN)) {
            struct smtp_reply r = {0};
            reply_set_fields(&r, 0, "4.7.0", "AUTH is configured but the server does not offer AUTH PLAIN");
            client_give_up(c, &r);
            reply_clear(&r);
            return;
        }
        client_queue_clear(c);
        client_queue_add(c, CMD_AUTH, 0, client_auth_line(c));
        c->after_queue = NEXT_OPEN_DONE;
        client_write_queue(c);
        return;
    }
    c->opened = true;
    client_finish(c, NULL);
}

/* client_split_address - "host:port" / "[v6]:port" into parts; -1 if malformed */
static int client_split_address(const char *address, char *host, size_t host_size, char *port,
                                size_t port_size)
{
    const char *colon;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - address - 1) >= host_size)
            return -1;
        memcpy(host, address + 1, (size_t)(close - address - 1));
        host[close - address - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(address, ':');
        if (colon == NULL || colon == address || (size_t)(colon - address) >= host_size ||
            memchr(address, ':', (size_t)(colon - address)) != NULL)
            return -1;
        memcpy(host, address, (size_t)(colon - address));
        host[colon - address] = '\0';
    }
    const char *digits = colon + 1;
    size_t length = strlen(digits);
    if (length == 0 || length >= port_size || length > 5 || strspn(digits, "0123456789") != length)
        return -1;
    long number = strtol(digits, NULL, 10);
    if (number < 1 || number > 65535)
        return -1;
    memcpy(port, digits, length + 1);
    return 0;
}

bool smtp_client_address_valid(const char *address)
{
    if (address == NULL)
        return false;
    if (strncmp(address, "unix:", 5) == 0)
        return address[5] == '/' && strlen(address + 5) < sizeof(((struct sockaddr_un *)0)->sun_path);
    char host[256], port[8];
    return client_split_address(address, host, sizeof host, port, sizeof port) == 0;
}

void smtp_client_open(struct smtp_client *c, smtp_client_done_fn done, void *arg)
{
    if (!client_start(c, SMTP_CLIENT_OP_OPEN, done, arg))
        return;
    struct sockaddr_storage storage;
    socklen_t length = 0;
    memset(&storage, 0, sizeof storage);
    if (strncmp(c->own.address, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&storage;
        un->sun_family = AF_UNIX;
        snprintf(un->sun_path, sizeof un->sun_path, "%s", c->own.address + 5);
        length = sizeof *un;
    } else {
        char host[256], port[8];
        if (client_split_address(c->own.address, host, sizeof host, port, sizeof port) != 0) {
            reply_set_fields(&c->result, 0, "", "bad downstream address");
            c->result_set = true;
            c->dead = true;
            event_active(c->deferred, EV_TIMEOUT, 0);
            return;
        }
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICSERV};
        struct addrinfo *found = NULL;
        int rc = getaddrinfo(host, port, &hints, &found);
        if (rc != 0 || found == NULL) {
            char text[300];
            snprintf(text, sizeof text, "cannot resolve %s: %s", host, gai_strerror(rc));
            reply_set_fields(&c->result, 0, "", text);
            c->result_set = true;
            c->dead = true;
            event_active(c->deferred, EV_TIMEOUT, 0);
            if (found)
                freeaddrinfo(found);
            return;
        }
        memcpy(&storage, found->ai_addr, found->ai_addrlen);
        length = found->ai_addrlen;
        freeaddrinfo(found);
    }
    c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL)
        abort();
    bufferevent_setcb(c->bev, client_read, client_written, client_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_OUTPUT_LOW, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    client_timer(c, c->connect_timeout);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&storage, (int)length) != 0) {
        char text[300];
        snprintf(text, sizeof text, "cannot connect to %s: %s", c->own.address, strerror(errno));
        reply_set_fields(&c->result, 0, "", text);
        c->result_set = true;
        c->dead = true;
        client_close_socket(c);
        event_active(c->deferred, EV_TIMEOUT, 0);
    }
}

/* ---------------------------------------------------------------- begin (identity, MAIL, RCPT) */

/* words_find - the value of KEY in "KEY=VALUE KEY2" words: NULL absent, "" no value */
struct client_word {
    char key[32];
    const char *value;
    size_t value_length;
    bool has_value;
};

/* client_words - split params into words (at most max); returns the count */
static size_t client_words(const char *params, struct client_word *words, size_t max)
{
    size_t count = 0;
    const char *p = params ? params : "";
    while (*p && count < max) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && *p != ' ')
            p++;
        const char *equals = memchr(start, '=', (size_t)(p - start));
        size_t key_length = equals ? (size_t)(equals - start) : (size_t)(p - start);
        if (key_length == 0 || key_length >= sizeof words[count].key)
            continue;
        memcpy(words[count].key, start, key_length);
        words[count].key[key_length] = '\0';
        for (char *k = words[count].key; *k; k++)
            if (*k >= 'a' && *k <= 'z')
                *k = (char)(*k - 'a' + 'A');
        words[count].has_value = equals != NULL;
        words[count].value = equals ? equals + 1 : "";
        words[count].value_length = equals ? (size_t)(p - equals - 1) : 0;
        count++;
    }
    return count;
}

static bool client_ascii(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        if (*p >= 0x80)
            return false;
    return true;
}

/* client_mail_line - MAIL FROM with the parameters the server supports; NULL with *why set
 * when the message cannot go to this server (SMTPUTF8 needed but not offered) */
static char *client_mail_line(const struct smtp_client *c, const struct smtp_client_envelope *e,
                              bool *utf8_needed)
{
    struct client_word words[16];
    size_t count = client_words(e->mail_params, words, 16);
    char params[1024];
    size_t used = 0;
    params[0] = '\0';
    *utf8_needed = false;
    for (size_t i = 0; i < count; i++) {
        const struct client_word *w = &words[i];
        bool keep = false;
        if (strcmp(w->key, "BODY") == 0)
            keep = (c->capabilities & CAP_8BITMIME) != 0;
        else if (strcmp(w->key, "SMTPUTF8") == 0) {
            *utf8_needed = true;
            keep = (c->capabilities & CAP_SMTPUTF8) != 0;
        } else if (strcmp(w->key, "RET") == 0 || strcmp(w->key, "ENVID") == 0)
            keep = (c->capabilities & CAP_DSN) != 0;
        if (!keep)
            continue;
        int n = w->has_value ? snprintf(params + used, sizeof params - used, " %s=%.*s", w->key,
                                        (int)w->value_length, w->value)
                             : snprintf(params + used, sizeof params - used, " %s", w->key);
        if (n > 0 && (size_t)n < sizeof params - used)
            used += (size_t)n;
    }
    if (e->size > 0 && (c->capabilities & CAP_SIZE)) {
        int n = snprintf(params + used, sizeof params - used, " SIZE=%llu", e->size);
        if (n > 0 && (size_t)n < sizeof params - used)
            used += (size_t)n;
    }
    return xasprintf("MAIL FROM:<%s>%s\r\n", e->mail_from ? e->mail_from : "", params);
}

/* client_rcpt_line - RCPT TO with NOTIFY/ORCPT when DSN is offered */
static char *client_rcpt_line(const struct smtp_client *c, const char *address, const char *params)
{
    char kept[1024];
    size_t used = 0;
    kept[0] = '\0';
    if (c->capabilities & CAP_DSN) {
        struct client_word words[8];
        size_t count = client_words(params, words, 8);
        for (size_t i = 0; i < count; i++) {
            if (strcmp(words[i].key, "NOTIFY") != 0 && strcmp(words[i].key, "ORCPT") != 0)
                continue;
            if (!words[i].has_value)
                continue;
            int n = snprintf(kept + used, sizeof kept - used, " %s=%.*s", words[i].key,
                             (int)words[i].value_length, words[i].value);
            if (n > 0 && (size_t)n < sizeof kept - used)
                used += (size_t)n;
        }
    }
    return xasprintf("RCPT TO:<%s>%s\r\n", address, kept);
}

int smtp_xtext_encode(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t used = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (*p >= 33 && *p <= 126 && *p != '+' && *p != '=') {
            if (used + 1 >= size)
                return -1;
            out[used++] = (char)*p;
        } else {
            if (used + 3 >= size)
                return -1;
            out[used++] = '+';
            out[used++] = hex[*p >> 4];
            out[used++] = hex[*p & 15];
        }
    }
    if (used >= size)
        return -1;
    out[used] = '\0';
    return 0;
}

/* client_identity_lines - queue XCLIENT or XFORWARD commands (several if one would be too
 * long) with the attributes the server accepts; true if any was queued */
static bool client_identity_lines(struct smtp_client *c, const struct smtp_client_identity_info *id,
                                  bool xclient)
{
    const char *offered = xclient ? c->xclient_attributes : c->xforward_attributes;
    char port[16];
    snprintf(port, sizeof port, "%d", id->port);
    struct {
        const char *name;
        const char *value;
    } attributes[] = {
        {"NAME", id->name && *id->name ? id->name : "[UNAVAILABLE]"},
        {"ADDR", id->address},
        {"PORT", id->port > 0 ? port : NULL},
        {"PROTO", id->protocol},
        {"HELO", id->helo && *id->helo ? id->helo : NULL},
        {"LOGIN", xclient ? id->login : NULL},
        {"IDENT", xclient ? NULL : id->queue_id},
        {"SOURCE", xclient ? NULL : "REMOTE"},
    };
    const char *verb = xclient ? "XCLIENT" : "XFORWARD";
    char line[CLIENT_COMMAND_MAX];
    size_t used = 0;
    bool queued = false;
    for (size_t i = 0; i < sizeof attributes / sizeof attributes[0]; i++) {
        if (attributes[i].value == NULL)
            continue;
        char probe[32];
        snprintf(probe, sizeof probe, " %s ", attributes[i].name);
        if (strstr(offered, probe) == NULL)
            continue;
        char encoded[SMTP_CLIENT_XTEXT_MAX + 1]; /* [UNAVAILABLE] is its own xtext */
        if (smtp_xtext_encode(attributes[i].value, encoded, sizeof encoded) != 0)
            continue; /* too long to pass on: leave it out */
        char word[SMTP_CLIENT_XTEXT_MAX + 40];
        snprintf(word, sizeof word, " %s=%s", attributes[i].name, encoded);
        if (used > 0 && used + strlen(word) + 2 > sizeof line) {
            client_queue_add(c, xclient ? CMD_XCLIENT : CMD_XFORWARD, 0, xasprintf("%s\r\n", line));
            queued = true;
            used = 0;
        }
        if (used == 0)
            used = (size_t)snprintf(line, sizeof line, "%s", verb);
        used += (size_t)snprintf(line + used, sizeof line - used, "%s", word);
    }
    if (used > 0) {
        client_queue_add(c, xclient ? CMD_XCLIENT : CMD_XFORWARD, 0, xasprintf("%s\r\n", line));
        queued = true;
    }
    return queued;
}

/* client_identity_header - the client's identity for a server that offers neither XFORWARD nor
 * XCLIENT (identity=auto): one header in XFORWARD's words, values in xtext, folded between
 * attributes, e.g. "X-Porter-Client: ADDR=192.0.2.1 PORT=4711 NAME=[UNAVAILABLE]\r\n\tHELO=..."
 * (Exim reads it with ${extract{ADDR}{$h_X-Porter-Client:}}); caller frees */
static char *client_identity_header(const struct smtp_client_identity_info *id, size_t *length)
{
    char port[16];
    snprintf(port, sizeof port, "%d", id->port);
    struct {
        const char *name;
        const char *value;
    } attributes[] = {
        {"ADDR", id->address},
        {"PORT", id->port > 0 ? port : NULL},
        {"NAME", id->name && *id->name ? id->name : "[UNAVAILABLE]"},
        {"HELO", id->helo && *id->helo ? id->helo : NULL},
        {"PROTO", id->protocol},
        {"LOGIN", id->login && *id->login ? id->login : NULL},
        {"IDENT", id->queue_id},
    };
    /* 7 attributes of at most SMTP_CLIENT_XTEXT_MAX bytes each, one per folded line at most */
    char header[8 * (SMTP_CLIENT_XTEXT_MAX + 16) + 64];
    size_t used = (size_t)snprintf(header, sizeof header, "%s:", SMTP_CLIENT_IDENTITY_HEADER);
    size_t line_start = 0;
    for (size_t i = 0; i < sizeof attributes / sizeof attributes[0]; i++) {
        char encoded[SMTP_CLIENT_XTEXT_MAX + 1]; /* [UNAVAILABLE] is its own xtext */
        if (attributes[i].value == NULL ||
            smtp_xtext_encode(attributes[i].value, encoded, sizeof encoded) != 0)
            continue; /* absent, or too long to pass on: leave it out, as XFORWARD does */
        size_t word = strlen(attributes[i].name) + 1 + strlen(encoded);
        bool fold = used - line_start + 1 + word > 78 && used - line_start > 20;
        if (fold)
            line_start = used + 2;
        int n = snprintf(header + used, sizeof header - used, "%s%s=%s", fold ? "\r\n\t" : " ",
                         attributes[i].name, encoded);
        if (n < 0 || (size_t)n >= sizeof header - used)
            break;
        used += (size_t)n;
    }
    memcpy(header + used, "\r\n", 3);
    *length = used + 2;
    return xstrdup(header);
}

/* client_recipient_add - a new recipient record of the transaction; its index */
static size_t client_recipient_add(struct smtp_client *c, const char *address)
{
    if (c->recipient_count == c->recipient_capacity) {
        c->recipient_capacity = c->recipient_capacity ? c->recipient_capacity * 2 : 8;
        c->recipients = xrealloc(c->recipients, c->recipient_capacity * sizeof *c->recipients);
    }
    struct smtp_client_recipient *r = &c->recipients[c->recipient_count];
    memset(r, 0, sizeof *r);
    r->address = xstrdup(address);
    r->rcpt.text = xstrdup("");
    r->final.text = xstrdup("");
    return c->recipient_count++;
}

static void client_recipients_clear(struct smtp_client *c)
{
    for (size_t i = 0; i < c->recipient_count; i++) {
        free(c->recipients[i].address);
        reply_clear(&c->recipients[i].rcpt);
        reply_clear(&c->recipients[i].final);
    }
    c->recipient_count = 0;
    c->accepted = 0;
}

/* client_begin_envelope - queue MAIL and the RCPTs (pipelined when offered) */
static void client_begin_envelope(struct smtp_client *c)
{
    const struct smtp_client_envelope *e = &c->pending_envelope;
    client_queue_add(c, CMD_MAIL, 0, c->pending_mail_line);
    c->pending_mail_line = NULL;
    for (size_t i = 0; i < e->recipient_count; i++) {
        size_t index = client_recipient_add(c, e->recipients[i]);
        const char *params = e->recipient_params ? e->recipient_params[i] : NULL;
        client_queue_add(c, CMD_RCPT, index, client_rcpt_line(c, e->recipients[i], params));
    }
    c->pipelined = (c->capabilities & CAP_PIPELINING) != 0;
    c->after_queue = NEXT_BEGIN_DONE;
    client_write_queue(c);
}

void smtp_client_begin(struct smtp_client *c, const struct smtp_client_envelope *envelope,
                       smtp_client_done_fn done, void *arg)
{
    if (!client_start(c, SMTP_CLIENT_OP_BEGIN, done, arg))
        return;
    client_recipients_clear(c);
    if (envelope->recipient_count > SMTP_CLIENT_RECIPIENTS_MAX) {
        reply_set_fields(&c->result, 452, "4.5.3", "too many recipients for one transaction (local)");
        c->result_set = true;
        event_active(c->deferred, EV_TIMEOUT, 0);
        return;
    }
    c->pending_envelope = *envelope;
    /* how the identity goes: XFORWARD or XCLIENT when offered and wanted; with identity=auto
     * and neither offered, a header prepended to the message (SIZE= counts it) */
    const struct smtp_client_identity_info *id = envelope->identity;
    bool xclient = false, xforward = false;
    if (id != NULL && id->address != NULL) {
        switch (c->identity) {
        case SMTP_CLIENT_IDENTITY_AUTO:
            xforward = (c->capabilities & CAP_XFORWARD) != 0;
            xclient = !xforward && (c->capabilities & CAP_XCLIENT) != 0;
            break;
        case SMTP_CLIENT_IDENTITY_XFORWARD:
            xforward = (c->capabilities & CAP_XFORWARD) != 0;
            break;
        case SMTP_CLIENT_IDENTITY_XCLIENT:
            xclient = (c->capabilities & CAP_XCLIENT) != 0;
            break;
        default:
            break;
        }
    }
    free(c->identity_header);
    c->identity_header = NULL;
    c->identity_header_length = 0;
    if (id != NULL && id->address != NULL && c->identity == SMTP_CLIENT_IDENTITY_AUTO && !xforward &&
        !xclient) {
        c->identity_header = client_identity_header(id, &c->identity_header_length);
        if (c->pending_envelope.size > 0)
            c->pending_envelope.size += c->identity_header_length;
    }
    bool utf8_needed = false;
    free(c->pending_mail_line);
    c->pending_mail_line = client_mail_line(c, &c->pending_envelope, &utf8_needed);
    if (utf8_needed && !(c->capabilities & CAP_SMTPUTF8)) {
        bool ascii = client_ascii(envelope->mail_from ? envelope->mail_from : "");
        for (size_t i = 0; i < envelope->recipient_count; i++)
            ascii = ascii && client_ascii(envelope->recipients[i]);
        if (!ascii) {
            reply_set_fields(&c->result, 553, "5.6.7",
                             "the downstream server does not support SMTPUTF8 (local)");
            c->result_set = true;
            event_active(c->deferred, EV_TIMEOUT, 0);
            return;
        }
    }
    /* The pointers of the envelope are the caller's until the callback: copy the recipient
     * list now, while queueing, and forget the rest. A transaction left open by the last user
     * of the connection is reset first; RSET, XFORWARD, MAIL and the RCPTs go in one group
     * when the server offers PIPELINING (XCLIENT cannot: a new greeting and EHLO follow it). */
    c->begins++;
    client_queue_clear(c);
    if (c->in_transaction)
        client_queue_add(c, CMD_RSET, 0, xstrdup("RSET\r\n"));
    c->identity_sent = c->identity_header != NULL;
    if (xforward && client_identity_lines(c, id, false))
        c->identity_sent = true;
    if (xclient && client_identity_lines(c, id, true)) {
        c->identity_sent = true;
        {
            /* XCLIENT ends with a new greeting: EHLO again, with the client's HELO name */
            bool usable = id->helo != NULL && *id->helo && strlen(id->helo) < 256 &&
                          strspn(id->helo, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789.-[]:_") == strlen(id->helo);
            client_queue_ehlo(c, usable ? id->helo : c->own.helo_name);
        }
        c->after_queue = NEXT_BEGIN_IDENTITY_DONE;
        /* the envelope must be queued now: its strings are borrowed only during this call */
        c->pending_envelope.mail_from = NULL;
        /* keep the recipients as records; their RCPT lines are made after the identity */
        for (size_t i = 0; i < envelope->recipient_count; i++) {
            size_t index = client_recipient_add(c, envelope->recipients[i]);
            const char *params = envelope->recipient_params ? envelope->recipient_params[i] : NULL;
            free(c->recipients[index].final.text);
            c->recipients[index].final.text = xstrdup(params ? params : "");
        }
        c->pending_envelope.recipient_count = 0;
        client_write_queue(c);
        return;
    }
    client_begin_envelope(c);
}

/* client_begin_after_identity - the identity is passed on: MAIL and the kept recipients */
static void client_begin_after_identity(struct smtp_client *c)
{
    client_queue_clear(c);
    client_queue_add(c, CMD_MAIL, 0, c->pending_mail_line);
    c->pending_mail_line = NULL;
    for (size_t i = 0; i < c->recipient_count; i++) {
        /* the parameters were parked in final.text */
        char *line = client_rcpt_line(c, c->recipients[i].address, c->recipients[i].final.text);
        reply_set_fields(&c->recipients[i].final, 0, "", "");
        client_queue_add(c, CMD_RCPT, i, line);
    }
    c->pipelined = (c->capabilities & CAP_PIPELINING) != 0;
    c->after_queue = NEXT_BEGIN_DONE;
    client_write_queue(c);
}

void smtp_client_recipient(struct smtp_client *c, const char *address, const char *params,
                           smtp_client_done_fn done, void *arg)
{
    if (!client_start(c, SMTP_CLIENT_OP_RECIPIENT, done, arg))
        return;
    if (!c->in_transaction) {
        reply_set_fields(&c->result, 503, "5.5.1", "no open transaction (local)");
        c->result_set = true;
        event_active(c->deferred, EV_TIMEOUT, 0);
        return;
    }
    size_t index = client_recipient_add(c, address);
    client_queue_add(c, CMD_RCPT, index, client_rcpt_line(c, address, params));
    c->after_queue = NEXT_RECIPIENT_DONE;
    client_write_queue(c);
}

/* ---------------------------------------------------------------- data */

size_t smtp_stuff_chunk(struct smtp_stuff_state *state, const char *in, size_t length, char *out)
{
    size_t used = 0;
    for (size_t i = 0; i < length;) {
        if (state->line_start && in[i] == '.')
            out[used++] = '.';
        const char *newline = memchr(in + i, '\n', length - i);
        size_t end = newline ? (size_t)(newline - in) + 1 : length;
        memcpy(out + used, in + i, end - i);
        used += end - i;
        state->line_start = newline != NULL;
        i = end;
    }
    if (length >= 2) {
        state->last[0] = in[length - 2];
        state->last[1] = in[length - 1];
    } else if (length == 1) {
        state->last[0] = state->last[1];
        state->last[1] = in[0];
    }
    state->bytes += length;
    return used;
}

size_t smtp_stuff_finish(const struct smtp_stuff_state *state, char *out)
{
    size_t used = 0;
    if (state->bytes > 0 && !(state->last[0] == '\r' && state->last[1] == '\n')) {
        if (state->last[1] == '\r') {
            out[used++] = '\n'; /* "...\r" ends: complete the CRLF */
        } else {
            out[used++] = '\r';
            out[used++] = '\n';
        }
    }
    memcpy(out + used, ".\r\n", 3);
    return used + 3;
}

/* client_data_fill - add message bytes to the output until the high mark or the end */
static void client_data_fill(struct smtp_client *c)
{
    struct evbuffer *output = bufferevent_get_output(c->bev);
    if (!c->identity_header_done && c->identity_header != NULL) {
        /* a header line never starts with a dot; through the stuffer all the same */
        size_t n = smtp_stuff_chunk(&c->stuff, c->identity_header, c->identity_header_length,
                                    c->stuff_buffer);
        evbuffer_add(output, c->stuff_buffer, n);
    }
    c->identity_header_done = true;
    while (!c->message_complete && evbuffer_get_length(output) < CLIENT_OUTPUT_HIGH) {
        const char *chunk = NULL;
        size_t length = 0;
        if (c->message_part < 3) {
            if (c->message.parts[c->message_part] == NULL ||
                c->message.part_lengths[c->message_part] == 0) {
                c->message_part++;
                continue;
            }
            chunk = c->message.parts[c->message_part];
            length = c->message.part_lengths[c->message_part];
            /* memory parts go in pieces too, so stuffing needs at most 2 * chunk bytes */
            size_t take = length < CLIENT_READ_CHUNK ? length : CLIENT_READ_CHUNK;
            size_t n = smtp_stuff_chunk(&c->stuff, chunk, take, c->stuff_buffer);
            evbuffer_add(output, c->stuff_buffer, n);
            c->message.parts[c->message_part] += take;
            c->message.part_lengths[c->message_part] -= take;
            continue;
        }
        if (c->message.fd >= 0 && c->message_done < c->message.length) {
            off_t left = c->message.length - c->message_done;
            size_t want = left < CLIENT_READ_CHUNK ? (size_t)left : CLIENT_READ_CHUNK;
            ssize_t got = pread(c->message.fd, c->read_buffer, want,
                                c->message.offset + c->message_done);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                /* Never send a truncated message: drop the connection without the dot. */
                client_fail(c, "cannot read the message: %s", got < 0 ? strerror(errno)
                                                                      : "file is shorter than expected");
                return;
            }
            size_t n = smtp_stuff_chunk(&c->stuff, c->read_buffer, (size_t)got, c->stuff_buffer);
            evbuffer_add(output, c->stuff_buffer, n);
            c->message_done += got;
            continue;
        }
        char end[8];
        size_t n = smtp_stuff_finish(&c->stuff, end);
        evbuffer_add(output, end, n);
        c->message_complete = true;
        client_queue_clear(c);
        c->finals_expected = c->lmtp ? c->accepted : 1;
        c->finals_got = 0;
        for (size_t i = 0; i < (c->finals_expected ? c->finals_expected : 1); i++)
            client_queue_add(c, CMD_DOT, i, NULL);
        c->queue_sent = c->queue_count;
        c->after_queue = NEXT_DATA_DONE;
        client_timer(c, c->data_done_timeout);
        return;
    }
    if (!c->message_complete)
        client_timer(c, c->data_timeout);
}

void smtp_client_data(struct smtp_client *c, const struct smtp_client_message *message,
                      smtp_client_done_fn done, void *arg)
{
    if (!client_start(c, SMTP_CLIENT_OP_DATA, done, arg))
        return;
    if (!c->in_transaction || c->accepted == 0) {
        reply_set_fields(&c->result, 503, "5.5.1", "no accepted recipient (local)");
        c->result_set = true;
        event_active(c->deferred, EV_TIMEOUT, 0);
        return;
    }
    c->message = *message;
    c->message_part = 0;
    c->message_done = 0;
    c->message_complete = false;
    c->identity_header_done = false;
    memset(&c->stuff, 0, sizeof c->stuff);
    c->stuff.line_start = true;
    if (c->read_buffer == NULL) {
        c->read_buffer = xmalloc(CLIENT_READ_CHUNK);
        c->stuff_buffer = xmalloc(2 * CLIENT_READ_CHUNK);
    }
    client_queue_add(c, CMD_DATA, 0, xstrdup("DATA\r\n"));
    c->after_queue = NEXT_DATA_BODY;
    client_write_queue(c);
}

void smtp_client_reset(struct smtp_client *c, smtp_client_done_fn done, void *arg)
{
    if (!client_start(c, SMTP_CLIENT_OP_RESET, done, arg))
        return;
    client_queue_add(c, CMD_RSET, 0, xstrdup("RSET\r\n"));
    c->after_queue = NEXT_RESET_DONE;
    client_write_queue(c);
}

/* ---------------------------------------------------------------- replies */

/* client_queue_done - every queued command is answered: the operation's next step */
static void client_queue_done(struct smtp_client *c)
{
    int next = c->after_queue;
    switch (next) {
    case NEXT_OPEN_AFTER_EHLO:
        client_open_after_ehlo(c);
        break;
    case NEXT_OPEN_DONE:
        c->opened = true;
        client_finish(c, NULL);
        break;
    case NEXT_BEGIN_IDENTITY_DONE:
        client_begin_after_identity(c);
        break;
    case NEXT_BEGIN_DONE:
    case NEXT_RECIPIENT_DONE:
    case NEXT_RESET_DONE:
    case NEXT_DATA_DONE:
        client_finish(c, NULL);
        break;
    case NEXT_DATA_BODY:
        client_queue_clear(c);
        client_data_fill(c);
        break;
    default:
        client_finish(c, NULL);
        break;
    }
}

/* client_set_result - remember the operation's decisive reply */
static void client_set_result(struct smtp_client *c, const struct smtp_reply *r)
{
    reply_copy(&c->result, r);
    c->result_set = true;
}

/* client_reply - one complete reply for the command at the head of the queue */
static void client_reply(struct smtp_client *c, const struct smtp_reply *r)
{
    if (c->operation == SMTP_CLIENT_OP_NONE || c->queue_answered >= c->queue_count) {
        /* Unasked: a 421 while idle, or garbage. Either way this connection is done. */
        c->dead = true;
        client_close_socket(c);
        return;
    }
    if (r->code == 421) {
        /* The server is closing: the reply counts, the connection does not. */
        c->dead = true;
    }
    struct client_expect *e = &c->queue[c->queue_answered++];
    int class = r->code / 100;
    switch (e->command) {
    case CMD_GREETING:
        if (class != 2) {
            client_set_result(c, r);
            client_give_up(c, NULL);
            return;
        }
        client_queue_clear(c);
        client_queue_ehlo(c, c->own.helo_name);
        c->after_queue = NEXT_OPEN_AFTER_EHLO;
        break;
    case CMD_EHLO:
        if (class != 2) {
            if (!c->lmtp && class == 5 && c->operation == SMTP_CLIENT_OP_OPEN && !c->tls_active &&
                c->tls != SMTP_CLIENT_TLS_ENCRYPT && c->tls != SMTP_CLIENT_TLS_VERIFY &&
                c->own.auth_user == NULL) {
                /* no ESMTP: plain HELO, no extensions */
                client_queue_clear(c);
                c->capabilities = 0;
                client_queue_add(c, CMD_HELO, 0, xasprintf("HELO %s\r\n", c->own.helo_name));
                c->after_queue = NEXT_OPEN_DONE;
                client_write_queue(c);
                return;
            }
            client_set_result(c, r);
            client_give_up(c, NULL);
            return;
        }
        client_parse_ehlo(c, r->text);
        client_set_result(c, r);
        break;
    case CMD_HELO:
    case CMD_AUTH:
        client_set_result(c, r);
        if (class != 2) {
            client_give_up(c, NULL);
            return;
        }
        break;
    case CMD_STARTTLS:
        if (class != 2) {
            if (c->tls == SMTP_CLIENT_TLS_MAY && r->code != 421) {
                /* opportunistic: go on in the clear */
                c->tls = SMTP_CLIENT_TLS_NONE;
                client_queue_clear(c);
                client_open_after_ehlo(c);
                return;
            }
            client_set_result(c, r);
            client_give_up(c, NULL);
            return;
        }
        client_queue_clear(c);
        client_tls_start(c);
        return;
    case CMD_XCLIENT:
        /* A refused XCLIENT is not fatal: the identity is best effort. Postfix answers 220
         * (a new greeting); the EHLO that follows is queued already. */
        break;
    case CMD_XFORWARD:
        break;
    case CMD_MAIL:
        client_set_result(c, r);
        c->in_transaction = class == 2;
        break;
    case CMD_RCPT:
        if (e->index < c->recipient_count) {
            reply_copy(&c->recipients[e->index].rcpt, r);
            if (class == 2)
                c->accepted++;
        }
        if (c->operation == SMTP_CLIENT_OP_RECIPIENT)
            client_set_result(c, r);
        break;
    case CMD_DATA:
        client_set_result(c, r);
        if (r->code != 354) {
            client_finish(c, NULL);
            return;
        }
        break;
    case CMD_DOT: {
        /* SMTP: one reply for all; LMTP: the reply of the e->index-th accepted recipient */
        size_t seen = 0;
        for (size_t i = 0; i < c->recipient_count; i++) {
            if (c->recipients[i].rcpt.code / 100 != 2)
                continue;
            if (!c->lmtp || seen == e->index)
                reply_copy(&c->recipients[i].final, r);
            seen++;
        }
        if (e->index == 0)
            client_set_result(c, r);
        c->finals_got++;
        if (c->queue_answered >= c->queue_count) {
            c->in_transaction = false;
            c->transactions++;
        }
        break;
    }
    case CMD_RSET:
        if (class == 2)
            c->in_transaction = false;
        if (c->operation == SMTP_CLIENT_OP_RESET) {
            client_set_result(c, r);
            if (class == 2)
                client_recipients_clear(c);
        }
        break;
    default:
        break;
    }
    if (c->dead) {
        client_close_socket(c);
        /* end the operation with what we have (recipients without replies keep code 0) */
        client_finish(c, NULL);
        return;
    }
    if (c->queue_answered >= c->queue_count)
        client_queue_done(c);
    else
        client_write_queue(c);
}

/* client_parse_line - one reply line into the reply being read; 1 complete, 0 more, -1 bad */
static int client_parse_line(struct smtp_client *c, const char *line, size_t length)
{
    if (length < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9')
        return -1;
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    bool last = length == 3 || line[3] == ' ';
    if (!last && line[3] != '-')
        return -1;
    if (c->reply_lines > 0 && code != c->reply_code)
        return -1;
    if (++c->reply_lines > SMTP_CLIENT_REPLY_LINES_MAX)
        return -1;
    c->reply_code = code;
    const char *text = length > 4 ? line + 4 : "";
    size_t text_length = length > 4 ? length - 4 : 0;
    /* an enhanced code "x.y.z " whose class matches: kept apart from the text */
    size_t skip = 0;
    if (text_length >= 6 && text[0] == line[0] && text[1] == '.') {
        size_t i = 2, digits = 0;
        while (i < text_length && text[i] >= '0' && text[i] <= '9' && digits < 3) {
            i++;
            digits++;
        }
        if (digits > 0 && i < text_length && text[i] == '.') {
            size_t j = i + 1, digits2 = 0;
            while (j < text_length && text[j] >= '0' && text[j] <= '9' && digits2 < 3) {
                j++;
                digits2++;
            }
            if (digits2 > 0 && (j == text_length || text[j] == ' ')) {
                if (c->reply_lines == 1)
                    snprintf(c->reply_enhanced, sizeof c->reply_enhanced, "%.*s", (int)j, text);
                skip = j < text_length ? j + 1 : j;
            }
        }
    }
    if (c->reply_lines > 1)
        evbuffer_add(c->text, "\n", 1);
    for (size_t i = skip; i < text_length; i++) {
        unsigned char byte = (unsigned char)text[i];
        char safe = byte < 0x20 || byte == 0x7f ? '?' : (char)byte;
        evbuffer_add(c->text, &safe, 1);
    }
    return last ? 1 : 0;
}

/* client_read_replies - every complete reply line in the input */
static void client_read_replies(struct smtp_client *c)
{
    while (c->bev != NULL && !c->free_requested) {
        struct evbuffer *input = bufferevent_get_input(c->bev);
        size_t eol_length = 0;
        struct evbuffer_ptr eol = evbuffer_search_eol(input, NULL, &eol_length, EVBUFFER_EOL_CRLF);
        if (eol.pos < 0) {
            if (evbuffer_get_length(input) > SMTP_CLIENT_REPLY_LINE_MAX)
                client_fail(c, "reply line longer than %d bytes", SMTP_CLIENT_REPLY_LINE_MAX);
            return;
        }
        if ((size_t)eol.pos > SMTP_CLIENT_REPLY_LINE_MAX) {
            client_fail(c, "reply line longer than %d bytes", SMTP_CLIENT_REPLY_LINE_MAX);
            return;
        }
        char line[SMTP_CLIENT_REPLY_LINE_MAX + 2];
        evbuffer_remove(input, line, (size_t)eol.pos);
        evbuffer_drain(input, eol_length);
        int state = client_parse_line(c, line, (size_t)eol.pos);
        if (state < 0) {
            client_fail(c, "malformed reply from the server");
            return;
        }
        if (state == 0)
            continue;
        struct smtp_reply r = {.code = c->reply_code};
        memcpy(r.enhanced, c->reply_enhanced, sizeof r.enhanced);
        size_t length = evbuffer_get_length(c->text);
        r.text = xmalloc(length + 1);
        evbuffer_remove(c->text, r.text, length);
        r.text[length] = '\0';
        c->reply_lines = 0;
        c->reply_code = 0;
        c->reply_enhanced[0] = '\0';
        client_reply(c, &r);
        free(r.text);
    }
}

static void client_read(struct bufferevent *bev, void *arg)
{
    struct smtp_client *c = arg;
    client_hold(c);
    client_read_replies(c);
    client_unhold(c);
}

static void client_written(struct bufferevent *bev, void *arg)
{
    struct smtp_client *c = arg;
    if (c->operation == SMTP_CLIENT_OP_DATA && !c->message_complete && c->queue_count == 0) {
        client_hold(c);
        client_data_fill(c);
        client_unhold(c);
    }
}

static void client_event(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_client *c = arg;
    client_hold(c);
    if (what & BEV_EVENT_CONNECTED) {
        if (c->handshaking) {
            c->handshaking = false;
            c->tls_active = true;
            SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
            if (c->tls == SMTP_CLIENT_TLS_VERIFY &&
                (ssl == NULL || SSL_get_verify_result(ssl) != X509_V_OK)) {
                client_fail(c, "the server's certificate does not verify: %s",
                            ssl ? X509_verify_cert_error_string(SSL_get_verify_result(ssl)) : "no session");
            } else {
                client_queue_clear(c);
                client_queue_ehlo(c, c->own.helo_name);
                c->after_queue = NEXT_OPEN_AFTER_EHLO;
                client_write_queue(c);
            }
        } else {
            c->connected = true;
            int one = 1;
            evutil_socket_t fd = bufferevent_getfd(c->bev);
            if (strncmp(c->own.address, "unix:", 5) != 0)
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            client_queue_clear(c);
            client_queue_add(c, CMD_GREETING, 0, NULL);
            c->queue_sent = 1;
            client_timer(c, c->greeting_timeout);
        }
    } else if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        char detail[256] = "";
        unsigned long ssl_error = c->bev ? bufferevent_get_openssl_error(c->bev) : 0;
        int error = EVUTIL_SOCKET_ERROR();
        if (ssl_error != 0)
            ERR_error_string_n(ssl_error, detail, sizeof detail);
        else if ((what & BEV_EVENT_ERROR) && error != 0)
            snprintf(detail, sizeof detail, "%s", evutil_socket_error_to_string(error));
        if (!c->connected)
            client_fail(c, "cannot connect to %s%s%s", c->own.address, detail[0] ? ": " : "", detail);
        else if (c->handshaking)
            client_fail(c, "TLS handshake with %s failed%s%s", c->own.address, detail[0] ? ": " : "", detail);
        else if (c->operation == SMTP_CLIENT_OP_NONE) {
            c->dead = true;
            client_close_socket(c);
        } else {
            c->closed_by_server = true;
            client_fail(c, "connection to %s %s%s%s", c->own.address,
                        (what & BEV_EVENT_EOF) ? "closed by the server" : "failed",
                        detail[0] ? ": " : "", detail);
        }
    }
    client_unhold(c);
}

static void client_timer_fired(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_client *c = arg;
    client_hold(c);
    const char *phase = "command";
    if (!c->connected)
        phase = "connect";
    else if (c->handshaking)
        phase = "TLS handshake";
    else if (c->operation == SMTP_CLIENT_OP_DATA)
        phase = c->message_complete ? "final reply after the message" : "message transfer";
    else if (c->queue_answered < c->queue_count)
        phase = c->queue[c->queue_answered].command == CMD_GREETING ? "greeting" : "reply";
    if (c->operation != SMTP_CLIENT_OP_NONE)
        client_fail(c, "timeout waiting for the %s from %s", phase, c->own.address);
    client_unhold(c);
}

/* ---------------------------------------------------------------- life cycle */

struct smtp_client *smtp_client_new(struct event_base *base, const struct smtp_client_settings *s)
{
    struct smtp_client *c = xcalloc(1, sizeof *c);
    c->base = base;
    settings_strings_copy(&c->own, s);
    if (c->own.address == NULL)
        c->own.address = xstrdup("");
    if (c->own.helo_name == NULL || c->own.helo_name[0] == '\0') {
        free(c->own.helo_name);
        c->own.helo_name = xstrdup("localhost");
    }
    if (c->own.tls_server_name == NULL && strncmp(c->own.address, "unix:", 5) != 0) {
        char host[256], port[8];
        if (client_split_address(c->own.address, host, sizeof host, port, sizeof port) == 0)
            c->own.tls_server_name = xstrdup(host);
    }
    if (c->own.auth_password == NULL)
        c->own.auth_password = xstrdup("");
    c->lmtp = s->lmtp;
    c->tls = s->tls_context != NULL ? s->tls : SMTP_CLIENT_TLS_NONE;
    if (s->tls_context == NULL && (s->tls == SMTP_CLIENT_TLS_ENCRYPT || s->tls == SMTP_CLIENT_TLS_VERIFY))
        c->tls = s->tls; /* required without a context: open fails below */
    c->tls_context = s->tls_context;
    c->identity = s->identity;
    c->connect_timeout = s->connect_timeout;
    c->greeting_timeout = s->greeting_timeout;
    c->command_timeout = s->command_timeout;
    c->data_timeout = s->data_timeout;
    c->data_done_timeout = s->data_done_timeout;
    c->timer = evtimer_new(base, client_timer_fired, c);
    c->deferred = event_new(base, -1, 0, client_deferred_fire, c);
    c->text = evbuffer_new();
    if (c->timer == NULL || c->deferred == NULL || c->text == NULL)
        abort();
    if (c->tls != SMTP_CLIENT_TLS_NONE && c->tls_context == NULL)
        c->dead = true;
    return c;
}

static void client_destroy(struct smtp_client *c)
{
    client_close_socket(c);
    event_free(c->timer);
    event_free(c->deferred);
    evbuffer_free(c->text);
    client_queue_clear(c);
    free(c->queue);
    client_recipients_clear(c);
    free(c->recipients);
    reply_clear(&c->result);
    free(c->pending_mail_line);
    free(c->identity_header);
    free(c->read_buffer);
    free(c->stuff_buffer);
    settings_strings_clear(&c->own);
    free(c);
}

void smtp_client_free(struct smtp_client *c)
{
    if (c == NULL || c->free_requested)
        return;
    if (c->bev != NULL && !c->dead && c->operation == SMTP_CLIENT_OP_NONE && c->opened) {
        /* a polite QUIT, written now (nobody waits for its reply); not through TLS */
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        if (!c->tls_active && fd >= 0 &&
            evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            (void)!send(fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    c->operation = SMTP_CLIENT_OP_NONE;
    c->done = NULL;
    c->free_requested = true;
    if (c->depth == 0)
        client_destroy(c);
}

bool smtp_client_usable(const struct smtp_client *c)
{
    return c != NULL && c->opened && !c->dead && c->bev != NULL &&
           c->operation == SMTP_CLIENT_OP_NONE && !c->free_requested;
}

bool smtp_client_in_transaction(const struct smtp_client *c)
{
    return c->in_transaction;
}

bool smtp_client_tls_active(const struct smtp_client *c)
{
    return c->tls_active;
}

const char *smtp_client_address(const struct smtp_client *c)
{
    return c->own.address;
}

const struct smtp_client_recipient *smtp_client_recipients(const struct smtp_client *c,
                                                           size_t *count)
{
    *count = c->recipient_count;
    return c->recipients;
}

size_t smtp_client_accepted_count(const struct smtp_client *c)
{
    return c->accepted;
}

unsigned long smtp_client_transactions(const struct smtp_client *c)
{
    return c->transactions;
}

bool smtp_client_reused(const struct smtp_client *c)
{
    return c->begins > 0;
}

bool smtp_client_closed_by_server(const struct smtp_client *c)
{
    return c->closed_by_server;
}

SSL_CTX *smtp_client_tls_context(const char *ca_file, const char **error)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        *error = "cannot create a TLS context";
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    int ok = ca_file != NULL && *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                         : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        SSL_CTX_free(ctx);
        *error = "cannot load the CA certificates";
        return NULL;
    }
    return ctx;
}

/* ---------------------------------------------------------------- the pool */

struct smtp_pool_waiter {
    struct smtp_pool_waiter *next;
    struct smtp_pool *pool;
    smtp_pool_done_fn done;
    void *arg;
    struct smtp_client *client;  /* the connection being prepared for this waiter */
    bool cancelled;
};

/* An idle connection; allocated so that its timer's argument never moves. */
struct pool_idle {
    struct smtp_client *client;
    struct event *expiry;
    struct smtp_pool *pool;
};

struct smtp_pool {
    struct event_base *base;
    struct smtp_client_settings settings; /* its strings point into own */
    struct settings_strings own;
    size_t max_idle, max_total;
    double idle_timeout;
    struct pool_idle **idle;        /* most recently used last */
    size_t idle_count;
    size_t total;                   /* connections that exist: idle, lent, being prepared */
    struct smtp_pool_waiter *waiting_head, *waiting_tail;
    struct event *kick;             /* serves waiters outside the caller's stack */
};

static void pool_serve(struct smtp_pool *pool);

static void pool_kick_fired(evutil_socket_t fd, short what, void *arg)
{
    pool_serve(arg);
}

/* pool_idle_remove - take entry i out of the idle list and free the entry (not its client) */
static struct smtp_client *pool_idle_remove(struct smtp_pool *pool, size_t i)
{
    struct pool_idle *entry = pool->idle[i];
    struct smtp_client *c = entry->client;
    event_free(entry->expiry);
    free(entry);
    memmove(&pool->idle[i], &pool->idle[i + 1], (pool->idle_count - i - 1) * sizeof *pool->idle);
    pool->idle_count--;
    return c;
}

static void pool_idle_expired(evutil_socket_t fd, short what, void *arg)
{
    struct pool_idle *entry = arg;
    struct smtp_pool *pool = entry->pool;
    for (size_t i = 0; i < pool->idle_count; i++) {
        if (pool->idle[i] == entry) {
            smtp_client_free(pool_idle_remove(pool, i));
            pool->total--;
            break;
        }
    }
    event_active(pool->kick, EV_TIMEOUT, 0);
}

struct smtp_pool *smtp_pool_new(struct event_base *base, const struct smtp_client_settings *s,
                                size_t max_idle, size_t max_total, double idle_timeout)
{
    struct smtp_pool *pool = xcalloc(1, sizeof *pool);
    pool->base = base;
    pool->settings = *s;
    settings_strings_copy(&pool->own, s);
    pool->settings.address = pool->own.address;
    pool->settings.helo_name = pool->own.helo_name;
    pool->settings.tls_server_name = pool->own.tls_server_name;
    pool->settings.auth_user = pool->own.auth_user;
    pool->settings.auth_password = pool->own.auth_password;
    pool->max_idle = max_idle;
    pool->max_total = max_total > 0 ? max_total : 1;
    pool->idle_timeout = idle_timeout > 0 ? idle_timeout : 30;
    pool->idle = xcalloc(max_idle + 1, sizeof *pool->idle);
    pool->kick = event_new(base, -1, 0, pool_kick_fired, pool);
    if (pool->kick == NULL)
        abort();
    return pool;
}

void smtp_pool_free(struct smtp_pool *pool)
{
    if (pool == NULL)
        return;
    while (pool->idle_count > 0)
        smtp_client_free(pool_idle_remove(pool, pool->idle_count - 1));
    struct smtp_pool_waiter *w = pool->waiting_head;
    while (w != NULL) {
        struct smtp_pool_waiter *next = w->next;
        free(w);
        w = next;
    }
    event_free(pool->kick);
    free(pool->idle);
    settings_strings_clear(&pool->own);
    free(pool);
}

/* pool_unlink - take a waiter out of the line */
static void pool_unlink(struct smtp_pool *pool, struct smtp_pool_waiter *w)
{
    struct smtp_pool_waiter **link = &pool->waiting_head;
    struct smtp_pool_waiter *previous = NULL;
    while (*link != NULL && *link != w) {
        previous = *link;
        link = &(*link)->next;
    }
    if (*link == NULL)
        return;
    *link = w->next;
    if (pool->waiting_tail == w)
        pool->waiting_tail = previous;
    w->next = NULL;
}

/* pool_ready - a waiter's connection is prepared (or failed): hand it over */
static void pool_ready(struct smtp_client *c, void *arg, const struct smtp_reply *reply)
{
    struct smtp_pool_waiter *w = arg;
    struct smtp_pool *pool = w->pool;
    w->client = NULL;
    bool ok = reply->code / 100 == 2 && smtp_client_usable(c);
    if (w->cancelled) {
        free(w);
        if (ok) {
            smtp_pool_put(pool, c);
        } else {
            smtp_client_free(c);
            pool->total--;
            event_active(pool->kick, EV_TIMEOUT, 0);
        }
        return;
    }
    smtp_pool_done_fn done = w->done;
    void *done_arg = w->arg;
    free(w);
    if (!ok) {
        struct smtp_reply copy = {.code = reply->code};
        memcpy(copy.enhanced, reply->enhanced, sizeof copy.enhanced);
        copy.text = xstrdup(reply->text ? reply->text : "");
        smtp_client_free(c);
        pool->total--;
        event_active(pool->kick, EV_TIMEOUT, 0);
        done(pool, NULL, done_arg, &copy);
        free(copy.text);
        return;
    }
    done(pool, c, done_arg, reply);
}

/* pool_serve - give waiters idle connections, or open new ones while under the total */
static void pool_serve(struct smtp_pool *pool)
{
    while (pool->waiting_head != NULL) {
        struct smtp_pool_waiter *w = pool->waiting_head;
        if (pool->idle_count > 0) {
            struct smtp_client *c = pool_idle_remove(pool, pool->idle_count - 1);
            pool_unlink(pool, w);
            w->client = c;
            if (smtp_client_usable(c)) {
                /* reused as is: a transaction it left open is reset by the next begin, and
                 * a connection the server closed meanwhile was seen (EOF) while idle */
                static const struct smtp_reply ready = {.code = 250, .text = (char *)""};
                w->client = NULL;
                pool_ready(c, w, &ready);
            } else {
                smtp_client_free(c);
                struct smtp_client *fresh = smtp_client_new(pool->base, &pool->settings);
                w->client = fresh;
                smtp_client_open(fresh, pool_ready, w);
            }
            continue;
        }
        if (pool->total >= pool->max_total)
            return;
        pool_unlink(pool, w);
        pool->total++;
        struct smtp_client *fresh = smtp_client_new(pool->base, &pool->settings);
        w->client = fresh;
        smtp_client_open(fresh, pool_ready, w);
    }
}

struct smtp_pool_waiter *smtp_pool_get(struct smtp_pool *pool, smtp_pool_done_fn done, void *arg)
{
    struct smtp_pool_waiter *w = xcalloc(1, sizeof *w);
    w->pool = pool;
    w->done = done;
    w->arg = arg;
    if (pool->waiting_tail != NULL)
        pool->waiting_tail->next = w;
    else
        pool->waiting_head = w;
    pool->waiting_tail = w;
    event_active(pool->kick, EV_TIMEOUT, 0);
    return w;
}

void smtp_pool_cancel(struct smtp_pool *pool, struct smtp_pool_waiter *waiter)
{
    if (waiter == NULL)
        return;
    if (waiter->client != NULL) {
        waiter->cancelled = true; /* being prepared: pool_ready frees it */
        return;
    }
    pool_unlink(pool, waiter);
    free(waiter);
}

void smtp_pool_put(struct smtp_pool *pool, struct smtp_client *c)
{
    if (c == NULL)
        return;
    if (smtp_client_usable(c) && pool->max_idle > 0) {
        if (pool->idle_count >= pool->max_idle) {
            /* full: the oldest idle connection makes room */
            smtp_client_free(pool_idle_remove(pool, 0));
            pool->total--;
        }
        struct pool_idle *entry = xcalloc(1, sizeof *entry);
        entry->client = c;
        entry->pool = pool;
        entry->expiry = evtimer_new(pool->base, pool_idle_expired, entry);
        if (entry->expiry == NULL)
            abort();
        struct timeval tv = {(time_t)pool->idle_timeout,
                             (suseconds_t)((pool->idle_timeout - (double)(time_t)pool->idle_timeout) * 1e6)};
        evtimer_add(entry->expiry, &tv);
        pool->idle[pool->idle_count++] = entry;
    } else {
        smtp_client_free(c);
        pool->total--;
    }
    event_active(pool->kick, EV_TIMEOUT, 0);
}

size_t smtp_pool_idle_count(const struct smtp_pool *pool)
{
    return pool->idle_count;
}

size_t smtp_pool_total_count(const struct smtp_pool *pool)
{
    return pool->total;
}
