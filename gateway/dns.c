/*
 * dns.c - the worker's DNS resolver: asynchronous lookups on the event loop, blocking lookups
 * for pool threads, one cache (see dns.h for the behaviour, dns_packet.c for the wire format).
 *
 * A try is one question to one server: a fresh UDP socket connected to the server (so the
 * kernel drops datagrams from anyone else and picks a random source port), a random id, and a
 * deadline of dns_timeout. A truncated reply moves the same try to TCP with a fresh deadline.
 * The asynchronous and the blocking paths share the decision of what a reply means
 * (dns_try_next); they differ only in how they wait (libevent events, or poll()).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/event.h>

#include "clock.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "memory.h"
#include "metrics.h"

#define DNS_RESOLV_CONF "/etc/resolv.conf"
#define DNS_RESOLV_CONF_MAX (64 * 1024)

/* ---------------------------------------------------------------- small helpers */

/* dns_random_id - a 16-bit query id from the kernel's generator */
static unsigned dns_random_id(void)
{
    static _Atomic unsigned fallback;
    uint16_t id;
    if (getrandom(&id, sizeof id, GRND_NONBLOCK) == (ssize_t)sizeof id)
        return id;
    /* Never expected on Linux; ids stay unpredictable enough with the random source port. */
    return (unsigned)(clock_monotonic() * 1e6) ^ (++fallback * 40503u);
}

static socklen_t dns_address_length(const struct sockaddr_storage *server)
{
    return server->ss_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                                         : (socklen_t)sizeof(struct sockaddr_in);
}

void dns_server_text(const struct sockaddr_storage *server, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    if (server->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)server;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        snprintf(out, size, "[%s]:%u", host, ntohs(v6->sin6_port));
    } else {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)(const void *)server;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        snprintf(out, size, "%s:%u", host, ntohs(v4->sin_port));
    }
}

size_t dns_resolv_conf_parse(const char *text, size_t length, struct sockaddr_storage *servers,
                             size_t max)
{
    size_t found = 0, position = 0;
    while (position < length && found < max) {
        const char *line = text + position;
        const char *newline = memchr(line, '\n', length - position);
        size_t line_length = newline ? (size_t)(newline - line) : length - position;
        position += line_length + (newline != NULL);
        char buffer[256];
        if (line_length >= sizeof buffer)
            continue;
        memcpy(buffer, line, line_length);
        buffer[line_length] = '\0';
        char *saveptr = NULL;
        char *keyword = strtok_r(buffer, " \t\r", &saveptr);
        char *value = keyword ? strtok_r(NULL, " \t\r", &saveptr) : NULL;
        if (keyword == NULL || value == NULL || strcmp(keyword, "nameserver") != 0)
            continue;
        struct sockaddr_storage *out = &servers[found];
        memset(out, 0, sizeof *out);
        struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)out;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)out;
        if (inet_pton(AF_INET, value, &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            v4->sin_port = htons(53);
            found++;
        } else if (inet_pton(AF_INET6, value, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(53);
            found++;
        }
    }
    return found;
}

/* ---------------------------------------------------------------- the cache */

struct dns_cache_entry {
    struct dns_cache_entry *next;
    int type;
    char *key;                      /* the name, lower case */
    struct porter_dns_answer *answer;
    double expires;
};

struct dns_cache {
    pthread_mutex_t lock;
    struct dns_cache_entry **buckets;
    size_t bucket_count;            /* a power of two */
    size_t count, capacity;
};

/* dns_cache_key - the name in lower case, without a final dot (caller frees) */
static char *dns_cache_key(const char *name)
{
    char *key = xstrdup(name);
    size_t length = strlen(key);
    if (length > 0 && key[length - 1] == '.')
        key[length - 1] = '\0';
    for (char *p = key; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    return key;
}

static size_t dns_cache_hash(int type, const char *key)
{
    size_t hash = 2166136261u ^ (size_t)type;
    for (const char *p = key; *p; p++)
        hash = (hash ^ (unsigned char)*p) * 16777619u;
    return hash;
}

struct dns_cache *dns_cache_new(size_t capacity)
{
    struct dns_cache *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    c->capacity = capacity;
    c->bucket_count = 64;
    while (c->bucket_count < capacity && c->bucket_count < ((size_t)1 << 20))
        c->bucket_count *= 2;
    c->buckets = xcalloc(c->bucket_count, sizeof *c->buckets);
    return c;
}

static void dns_cache_entry_free(struct dns_cache_entry *e)
{
    free(e->key);
    dns_answer_free(e->answer);
    free(e);
}

void dns_cache_free(struct dns_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->bucket_count; i++) {
        struct dns_cache_entry *e = c->buckets[i];
        while (e != NULL) {
            struct dns_cache_entry *next = e->next;
            dns_cache_entry_free(e);
            e = next;
        }
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

size_t dns_cache_count(struct dns_cache *c)
{
    pthread_mutex_lock(&c->lock);
    size_t count = c->count;
    pthread_mutex_unlock(&c->lock);
    return count;
}

/* dns_cache_unlink - remove the entry at *link (lock held) */
static void dns_cache_unlink(struct dns_cache *c, struct dns_cache_entry **link)
{
    struct dns_cache_entry *e = *link;
    *link = e->next;
    dns_cache_entry_free(e);
    c->count--;
}

/* dns_cache_make_room - drop expired entries; if still full, the one closest to expiry */
static void dns_cache_make_room(struct dns_cache *c, double now)
{
    struct dns_cache_entry **soonest = NULL;
    for (size_t i = 0; i < c->bucket_count; i++) {
        for (struct dns_cache_entry **link = &c->buckets[i]; *link != NULL;) {
            if ((*link)->expires <= now) {
                dns_cache_unlink(c, link);
                continue;
            }
            if (soonest == NULL || (*link)->expires < (*soonest)->expires)
                soonest = link;
            link = &(*link)->next;
        }
    }
    if (c->count >= c->capacity && soonest != NULL)
        dns_cache_unlink(c, soonest);
}

struct porter_dns_answer *dns_cache_get(struct dns_cache *c, int type, const char *name,
                                        double now)
{
    if (c == NULL || c->capacity == 0)
        return NULL;
    char *key = dns_cache_key(name);
    struct porter_dns_answer *copy = NULL;
    pthread_mutex_lock(&c->lock);
    struct dns_cache_entry **link = &c->buckets[dns_cache_hash(type, key) & (c->bucket_count - 1)];
    for (; *link != NULL; link = &(*link)->next) {
        struct dns_cache_entry *e = *link;
        if (e->type != type || strcmp(e->key, key) != 0)
            continue;
        if (e->expires <= now) {
            dns_cache_unlink(c, link);
        } else {
            copy = dns_answer_copy(e->answer);
            copy->ttl = (unsigned)(e->expires - now);
            if (copy->ttl == 0)
                copy->ttl = 1;
        }
        break;
    }
    pthread_mutex_unlock(&c->lock);
    free(key);
    return copy;
}

void dns_cache_put(struct dns_cache *c, const struct porter_dns_answer *answer, double now)
{
    if (c == NULL || c->capacity == 0 || answer->ttl == 0 ||
        (answer->status != PORTER_DNS_OK && answer->status != PORTER_DNS_NXDOMAIN &&
         answer->status != PORTER_DNS_NODATA))
        return;
    char *key = dns_cache_key(answer->name);
    pthread_mutex_lock(&c->lock);
    struct dns_cache_entry **bucket =
        &c->buckets[dns_cache_hash(answer->type, key) & (c->bucket_count - 1)];
    for (struct dns_cache_entry **link = bucket; *link != NULL; link = &(*link)->next) {
        if ((*link)->type == answer->type && strcmp((*link)->key, key) == 0) {
            dns_cache_unlink(c, link);
            break;
        }
    }
    if (c->count >= c->capacity)
        dns_cache_make_room(c, now);
    struct dns_cache_entry *e = xcalloc(1, sizeof *e);
    e->type = answer->type;
    e->key = key;
    e->answer = dns_answer_copy(answer);
    e->expires = now + answer->ttl;
    e->next = *bucket;
    *bucket = e;
    c->count++;
    pthread_mutex_unlock(&c->lock);
}

/* ---------------------------------------------------------------- the resolver */

struct dns_resolver {
    struct event_base *base;
    struct sockaddr_storage servers[CONFIG_DNS_SERVERS_MAX];
    size_t server_count;
    double timeout;
    unsigned tries;                 /* servers x (retries + 1) */
    struct dns_cache *cache;
    pthread_t loop_thread;
    struct dns_query *queries;      /* running asynchronous queries */
    unsigned char *receive_buffer;  /* DNS_PACKET_MAX bytes, loop thread only */
};

/* What a try ended with, and what comes next. */
enum dns_try_outcome {
    DNS_TRY_DONE = 0,     /* an answer: deliver it */
    DNS_TRY_WAIT,         /* not ours (UDP): keep waiting for the real reply */
    DNS_TRY_TCP,          /* truncated: ask the same server over TCP */
    DNS_TRY_NEXT,         /* this server failed: the next try */
    DNS_TRY_OUTCOME_COUNT
};

/* A question, after validation. */
struct dns_question {
    int type;
    const char *name;               /* in storage of the question's owner */
};

#define DNS_QUESTION_NAME_SIZE (DNS_NAME_MAX + 2)

/* dns_question_make - validate; for PTR turn an address into its reverse name, written into
 * storage (DNS_QUESTION_NAME_SIZE bytes), which q->name then points to; 0 or -1 (q->name then
 * holds as much of the name as fits, for logs and the error answer) */
static int dns_question_make(struct dns_question *q, int type, const char *name, char *storage)
{
    unsigned char wire[DNS_WIRE_NAME_MAX];
    q->type = type;
    q->name = storage;
    if (name == NULL)
        name = "";
    if (type != PORTER_DNS_PTR || dns_reverse_name(name, storage, DNS_QUESTION_NAME_SIZE) != 0)
        snprintf(storage, DNS_QUESTION_NAME_SIZE, "%s", name);
    size_t length = strlen(storage);
    if (length > 1 && storage[length - 1] == '.')
        storage[length - 1] = '\0';
    if (strlen(name) > DNS_NAME_MAX + 1 || !dns_type_supported(type) ||
        dns_name_wire(storage, wire) < 0)
        return -1;
    return 0;
}

/*
 * dns_try_next - what a received packet means for the try; *answer may be set (DONE: the
 * answer; NEXT: a server failure worth reporting if every try fails)
 */
static enum dns_try_outcome dns_try_next(const struct dns_question *q, unsigned id,
                                         const unsigned char *packet, size_t length, bool tcp,
                                         struct porter_dns_answer **answer, const char **why)
{
    enum dns_reply_verdict verdict = dns_reply_decode(packet, length, id, q->type, q->name, answer);
    *why = dns_reply_verdict_name((int)verdict);
    switch (verdict) {
    case DNS_REPLY_ANSWER:
        return DNS_TRY_DONE;
    case DNS_REPLY_MISMATCH:
        return tcp ? DNS_TRY_NEXT : DNS_TRY_WAIT;
    case DNS_REPLY_TRUNCATED:
        return tcp ? DNS_TRY_NEXT : DNS_TRY_TCP;
    case DNS_REPLY_SERVER_FAILURE:
    case DNS_REPLY_MALFORMED:
    case DNS_REPLY_VERDICT_COUNT:
        break;
    }
    return DNS_TRY_NEXT;
}

/* dns_log_try - one failed try, at debug level */
static void dns_log_try(const struct dns_resolver *r, const struct dns_question *q,
                        unsigned try_index, const char *why)
{
    if (!log_enabled(PORTER_LOG_DEBUG))
        return;
    char server[80];
    dns_server_text(&r->servers[try_index % r->server_count], server, sizeof server);
    log_message(PORTER_LOG_DEBUG, NULL, "event=dns_try_failed server=%s type=%s name=%s "
                "try=%u reason=%s", server, dns_type_name(q->type), q->name, try_index + 1, why);
}

/* dns_socket - a non-blocking socket connected (or connecting, for TCP) to server; -1 */
static int dns_socket(const struct sockaddr_storage *server, int socket_type)
{
    int fd = socket(server->ss_family, socket_type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)server, dns_address_length(server)) != 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---------------------------------------------------------------- asynchronous queries */

/* What a query costs while it waits matters: a flood of connections can have one per session
 * in flight at once. So a query holds its name at its length, the buffers of a try are
 * allocated only when a try starts, and a cached answer is read when it is delivered, not
 * held meanwhile. A query whose question (type and name) another query is already asking
 * the servers does not ask again: it follows that leader and gets its answer (one packet for
 * a flood of sessions from one client). A leader cancelled while others follow it runs on
 * without its callback. */
#define DNS_QUERY_SIZE (DNS_QUERY_MAX + 2)

struct dns_query {
    struct dns_resolver *resolver;  /* NULL once the resolver is gone */
    struct dns_query *prev, *next;
    struct dns_question question;   /* its name follows the struct, in the same allocation */
    dns_callback callback;
    void *arg;
    unsigned try_index;
    unsigned id;
    int fd;
    bool tcp;
    bool started;                   /* the first try was sent (else the timer starts it) */
    struct event *io;
    struct event *timer;
    unsigned char *packet;          /* DNS_QUERY_SIZE bytes from the first try on (a cached
                                       answer never needs it): TCP length, then the query */
    size_t packet_length;
    size_t tcp_sent;                /* bytes of length + query written */
    unsigned char *tcp_reply;       /* 2 bytes of length, then the reply */
    size_t tcp_received;
    struct porter_dns_answer *answer;  /* the answer to deliver */
    struct porter_dns_answer *failure; /* the last server failure */
    struct dns_query *leader;       /* asks our question for us: we wait for its answer */
    struct dns_query *followers;    /* wait for our answer (follower_prev/next) */
    struct dns_query *follower_prev, *follower_next;
    bool finishing;                 /* its answer is being delivered */
};

static void dns_query_try(struct dns_query *q);

/* dns_query_close - stop the current try's socket and events */
static void dns_query_close(struct dns_query *q)
{
    if (q->io != NULL) {
        event_free(q->io);
        q->io = NULL;
    }
    if (q->timer != NULL)
        evtimer_del(q->timer);
    if (q->fd >= 0) {
        close(q->fd);
        q->fd = -1;
    }
    free(q->tcp_reply);
    q->tcp_reply = NULL;
    q->tcp = false;
}

/* dns_query_unlink - out of the resolver's list (if on it) */
static void dns_query_unlink(struct dns_query *q)
{
    if (q->resolver == NULL || (q->prev == NULL && q->resolver->queries != q))
        return;
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        q->resolver->queries = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

/* dns_query_unfollow - off its leader's list of followers */
static void dns_query_unfollow(struct dns_query *q)
{
    if (q->leader == NULL)
        return;
    if (q->follower_prev != NULL)
        q->follower_prev->follower_next = q->follower_next;
    else
        q->leader->followers = q->follower_next;
    if (q->follower_next != NULL)
        q->follower_next->follower_prev = q->follower_prev;
    q->leader = q->follower_prev = q->follower_next = NULL;
}

/* dns_query_follow - wait for the answer of a query that is asking the servers the same
 * question; false when none is */
static bool dns_query_follow(struct dns_query *q)
{
    for (struct dns_query *l = q->resolver->queries; l != NULL; l = l->next) {
        if (l == q || !l->started || l->leader != NULL || l->finishing ||
            l->question.type != q->question.type ||
            strcasecmp(l->question.name, q->question.name) != 0)
            continue;
        q->leader = l;
        q->follower_next = l->followers;
        if (l->followers != NULL)
            l->followers->follower_prev = q;
        l->followers = q;
        return true;
    }
    return false;
}

/* dns_query_release - everything the query holds, and the query */
static void dns_query_release(struct dns_query *q)
{
    dns_query_unfollow(q);
    dns_query_unlink(q);
    dns_query_close(q);
    if (q->timer != NULL)
        event_free(q->timer);
    dns_answer_free(q->answer);
    dns_answer_free(q->failure);
    free(q->packet);
    free(q);
}

/* dns_query_finish - deliver the answer to the query's followers (each gone before its
 * callback runs), then to the query itself unless it was cancelled meanwhile (a callback may
 * cancel any query: finishing keeps this one until the end) */
static void dns_query_finish(struct dns_query *q, struct porter_dns_answer *answer)
{
    if (q->answer == answer)
        q->answer = NULL;
    if (answer->status == PORTER_DNS_OK || answer->status == PORTER_DNS_NXDOMAIN ||
        answer->status == PORTER_DNS_NODATA)
        dns_cache_put(q->resolver->cache, answer, clock_monotonic());
    q->finishing = true;
    dns_query_unlink(q); /* nothing follows it from now on */
    dns_query_close(q);
    while (q->followers != NULL) {
        struct dns_query *f = q->followers;
        dns_callback callback = f->callback;
        void *arg = f->arg;
        dns_query_release(f);
        callback(answer, arg);
    }
    if (q->callback != NULL)
        q->callback(answer, q->arg);
    dns_query_release(q);
    dns_answer_free(answer);
}

/* dns_query_give_up - every try failed: TEMPFAIL (with the last server failure's packet) */
static void dns_query_give_up(struct dns_query *q)
{
    struct porter_dns_answer *answer = q->failure;
    q->failure = NULL;
    if (answer == NULL)
        answer = dns_answer_new(PORTER_DNS_TEMPFAIL, q->question.type, q->question.name, NULL, 0,
                                0, NULL, 0);
    log_message(PORTER_LOG_INFO, NULL, "event=dns_failed type=%s name=%s tries=%u",
                dns_type_name(q->question.type), q->question.name, q->try_index);
    dns_query_finish(q, answer);
}

/* dns_query_failed - this try is over: log it and start the next */
static void dns_query_failed(struct dns_query *q, const char *why)
{
    dns_log_try(q->resolver, &q->question, q->try_index, why);
    dns_query_close(q);
    q->try_index++;
    dns_query_try(q);
}

/* dns_query_outcome - act on a reply */
static void dns_query_outcome(struct dns_query *q, enum dns_try_outcome outcome,
                              struct porter_dns_answer *answer, const char *why);

/* dns_query_tcp_event - the TCP exchange: write length + query, read length + reply */
static void dns_query_tcp_event(evutil_socket_t fd, short what, void *arg)
{
    struct dns_query *q = arg;
    size_t total = q->packet_length + 2;
    if (q->tcp_sent < total) {
        ssize_t n = send(fd, q->packet + q->tcp_sent, total - q->tcp_sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            dns_query_failed(q, "tcp_error");
            return;
        }
        q->tcp_sent += (size_t)n;
        if (q->tcp_sent == total) {
            event_free(q->io);
            q->io = event_new(q->resolver->base, q->fd, EV_READ | EV_PERSIST, dns_query_tcp_event,
                              q);
            event_add(q->io, NULL);
        }
        return;
    }
    if (q->tcp_reply == NULL)
        q->tcp_reply = xmalloc(DNS_PACKET_MAX + 2);
    size_t want = q->tcp_received < 2
                      ? 2 - q->tcp_received
                      : ((size_t)q->tcp_reply[0] << 8 | q->tcp_reply[1]) + 2 - q->tcp_received;
    ssize_t n = recv(fd, q->tcp_reply + q->tcp_received, want, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        dns_query_failed(q, n == 0 ? "tcp_closed" : "tcp_error");
        return;
    }
    q->tcp_received += (size_t)n;
    if (q->tcp_received < 2)
        return;
    size_t length = (size_t)q->tcp_reply[0] << 8 | q->tcp_reply[1];
    if (q->tcp_received < length + 2)
        return;
    struct porter_dns_answer *answer = NULL;
    const char *why = NULL;
    enum dns_try_outcome outcome =
        dns_try_next(&q->question, q->id, q->tcp_reply + 2, length, true, &answer, &why);
    dns_query_outcome(q, outcome, answer, why);
}

/* dns_query_tcp - the try goes on over TCP to the same server, with a fresh deadline */
static void dns_query_tcp(struct dns_query *q)
{
    struct dns_resolver *r = q->resolver;
    dns_query_close(q);
    q->tcp = true;
    q->tcp_sent = 0;
    q->tcp_received = 0;
    q->fd = dns_socket(&r->servers[q->try_index % r->server_count], SOCK_STREAM);
    if (q->fd < 0) {
        dns_query_failed(q, "tcp_error");
        return;
    }
    q->io = event_new(r->base, q->fd, EV_WRITE | EV_PERSIST, dns_query_tcp_event, q);
    event_add(q->io, NULL);
    struct timeval tv = clock_timeval(r->timeout);
    evtimer_add(q->timer, &tv);
}

static void dns_query_outcome(struct dns_query *q, enum dns_try_outcome outcome,
                              struct porter_dns_answer *answer, const char *why)
{
    switch (outcome) {
    case DNS_TRY_DONE:
        dns_query_finish(q, answer);
        return;
    case DNS_TRY_WAIT:
        return;
    case DNS_TRY_TCP:
        dns_query_tcp(q);
        return;
    case DNS_TRY_NEXT:
    case DNS_TRY_OUTCOME_COUNT:
        break;
    }
    if (answer != NULL) {
        dns_answer_free(q->failure);
        q->failure = answer;
    }
    dns_query_failed(q, why);
}

/* dns_query_udp_readable - datagrams from the server (or an ICMP error) */
static void dns_query_udp_readable(evutil_socket_t fd, short what, void *arg)
{
    struct dns_query *q = arg;
    unsigned char *buffer = q->resolver->receive_buffer;
    for (int datagrams = 0; datagrams < 16; datagrams++) {
        ssize_t n = recv(fd, buffer, DNS_PACKET_MAX, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n < 0) {
            dns_query_failed(q, errno == ECONNREFUSED ? "refused" : "network_error");
            return;
        }
        struct porter_dns_answer *answer = NULL;
        const char *why = NULL;
        enum dns_try_outcome outcome =
            dns_try_next(&q->question, q->id, buffer, (size_t)n, false, &answer, &why);
        if (outcome != DNS_TRY_WAIT) {
            dns_query_outcome(q, outcome, answer, why);
            return;
        }
    }
}

/* dns_query_timer - a try's deadline, or the first loop turn of a query: the answer known
 * at once (a bad name), the cached one, or the first try */
static void dns_query_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dns_query *q = arg;
    if (q->answer != NULL) {
        dns_query_finish(q, q->answer);
    } else if (!q->started) {
        q->started = true;
        q->answer = dns_cache_get(q->resolver->cache, q->question.type, q->question.name,
                                  clock_monotonic());
        if (q->answer != NULL) {
            metrics_add(&metrics_here->dns_cache_hits, 1);
            dns_query_finish(q, q->answer);
        } else if (!dns_query_follow(q)) {
            dns_query_try(q);
        }
    } else {
        dns_query_failed(q, q->tcp ? "tcp_timeout" : "timeout");
    }
}

/* dns_query_try - start try number q->try_index (or give up after the last) */
static void dns_query_try(struct dns_query *q)
{
    struct dns_resolver *r = q->resolver;
    while (q->try_index < r->tries) {
        const struct sockaddr_storage *server = &r->servers[q->try_index % r->server_count];
        q->id = dns_random_id();
        if (q->packet == NULL)
            q->packet = xmalloc(DNS_QUERY_SIZE);
        ssize_t length = dns_query_encode(q->id, q->question.type, q->question.name, true,
                                          q->packet + 2, DNS_QUERY_SIZE - 2);
        if (length < 0)
            abort(); /* the question was validated: an internal inconsistency */
        q->packet_length = (size_t)length;
        q->packet[0] = (unsigned char)(length >> 8);
        q->packet[1] = (unsigned char)length;
        q->fd = dns_socket(server, SOCK_DGRAM);
        if (q->fd >= 0 && send(q->fd, q->packet + 2, q->packet_length, 0) == length) {
            q->io = event_new(r->base, q->fd, EV_READ | EV_PERSIST, dns_query_udp_readable, q);
            event_add(q->io, NULL);
            struct timeval tv = clock_timeval(r->timeout);
            evtimer_add(q->timer, &tv);
            return;
        }
        dns_log_try(r, &q->question, q->try_index, "send_error");
        dns_query_close(q);
        q->try_index++;
    }
    dns_query_give_up(q);
}

struct dns_query *dns_lookup(struct dns_resolver *r, int type, const char *name,
                             dns_callback callback, void *arg)
{
    char name_storage[DNS_QUESTION_NAME_SIZE];
    struct dns_question question;
    int valid = dns_question_make(&question, type, name, name_storage);
    size_t name_size = strlen(question.name) + 1;
    struct dns_query *q = xcalloc(1, sizeof *q + name_size);
    q->question.type = type;
    q->question.name = memcpy(q + 1, question.name, name_size);
    q->resolver = r;
    q->fd = -1;
    q->callback = callback;
    q->arg = arg;
    q->timer = evtimer_new(r->base, dns_query_timer, q);
    if (q->timer == NULL)
        abort();
    q->next = r->queries;
    if (r->queries != NULL)
        r->queries->prev = q;
    r->queries = q;
    struct timeval now = {0, 0};
    if (valid != 0) {
        q->answer = dns_answer_new(PORTER_DNS_ERROR, type, q->question.name, NULL, 0, 0, NULL, 0);
        evtimer_add(q->timer, &now);
        return q;
    }
    metrics_add(&metrics_here->dns_queries, 1);
    /* The cache is read and the first try starts from the loop: the callback must never run
     * inside dns_lookup. */
    evtimer_add(q->timer, &now);
    return q;
}

void dns_query_cancel(struct dns_query *q)
{
    if (q == NULL)
        return;
    if (q->finishing || (q->followers != NULL && q->resolver != NULL))
        q->callback = NULL; /* dns_query_finish frees it; followers still want the answer */
    else
        dns_query_release(q);
}

/* ---------------------------------------------------------------- blocking queries */

/* dns_wait - poll fd for events until deadline; 1 ready, 0 timed out, -1 error */
static int dns_wait(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - clock_monotonic();
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            continue; /* re-check the deadline */
        return 1;
    }
}

/* dns_sync_tcp - one try over TCP; the outcome (DONE or NEXT) */
static enum dns_try_outcome dns_sync_tcp(const struct dns_resolver *r,
                                         const struct sockaddr_storage *server,
                                         const struct dns_question *q, unsigned id,
                                         const unsigned char *query, size_t query_length,
                                         struct porter_dns_answer **answer, const char **why)
{
    double deadline = clock_monotonic() + r->timeout;
    *why = "tcp_error";
    int fd = dns_socket(server, SOCK_STREAM);
    if (fd < 0)
        return DNS_TRY_NEXT;
    unsigned char *buffer = xmalloc(DNS_PACKET_MAX + 2);
    enum dns_try_outcome outcome = DNS_TRY_NEXT;
    size_t total = query_length + 2, done = 0;
    buffer[0] = (unsigned char)(query_length >> 8);
    buffer[1] = (unsigned char)query_length;
    memcpy(buffer + 2, query, query_length);
    while (done < total) {
        int ready = dns_wait(fd, POLLOUT, deadline);
        ssize_t n = ready > 0 ? send(fd, buffer + done, total - done, MSG_NOSIGNAL) : -1;
        if (n < 0 && ready > 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            *why = ready == 0 ? "tcp_timeout" : "tcp_error";
            goto out;
        }
        done += (size_t)n;
    }
    size_t received = 0, want = 2;
    while (received < want) {
        int ready = dns_wait(fd, POLLIN, deadline);
        ssize_t n = ready > 0 ? recv(fd, buffer + received, want - received, 0) : -1;
        if (n < 0 && ready > 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0) {
            *why = ready == 0 ? "tcp_timeout" : n == 0 ? "tcp_closed" : "tcp_error";
            goto out;
        }
        received += (size_t)n;
        if (received >= 2)
            want = ((size_t)buffer[0] << 8 | buffer[1]) + 2;
    }
    outcome = dns_try_next(q, id, buffer + 2, want - 2, true, answer, why);
out:
    free(buffer);
    close(fd);
    return outcome;
}

/* dns_sync_try - one try to one server (UDP, then TCP if truncated); DONE or NEXT */
static enum dns_try_outcome dns_sync_try(const struct dns_resolver *r,
                                         const struct sockaddr_storage *server,
                                         const struct dns_question *q,
                                         struct porter_dns_answer **answer, const char **why)
{
    unsigned char query[DNS_QUERY_MAX];
    unsigned id = dns_random_id();
    ssize_t length = dns_query_encode(id, q->type, q->name, true, query, sizeof query);
    if (length < 0)
        abort(); /* the question was validated: an internal inconsistency */
    *why = "send_error";
    int fd = dns_socket(server, SOCK_DGRAM);
    if (fd < 0)
        return DNS_TRY_NEXT;
    if (send(fd, query, (size_t)length, 0) != length) {
        close(fd);
        return DNS_TRY_NEXT;
    }
    double deadline = clock_monotonic() + r->timeout;
    unsigned char *buffer = xmalloc(DNS_PACKET_MAX);
    enum dns_try_outcome outcome = DNS_TRY_NEXT;
    for (;;) {
        int ready = dns_wait(fd, POLLIN, deadline);
        if (ready <= 0) {
            *why = ready == 0 ? "timeout" : "network_error";
            break;
        }
        ssize_t n = recv(fd, buffer, DNS_PACKET_MAX, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0) {
            *why = errno == ECONNREFUSED ? "refused" : "network_error";
            break;
        }
        outcome = dns_try_next(q, id, buffer, (size_t)n, false, answer, why);
        if (outcome != DNS_TRY_WAIT)
            break;
    }
    free(buffer);
    close(fd);
    if (outcome == DNS_TRY_TCP)
        outcome = dns_sync_tcp(r, server, q, id, query, (size_t)length, answer, why);
    return outcome;
}

struct porter_dns_answer *dns_query_sync(struct dns_resolver *r, int type, const char *name)
{
    char name_storage[DNS_QUESTION_NAME_SIZE];
    struct dns_question q;
    if (dns_question_make(&q, type, name, name_storage) != 0 || r == NULL)
        return dns_answer_new(PORTER_DNS_ERROR, type, q.name, NULL, 0, 0, NULL, 0);
    if (pthread_equal(pthread_self(), r->loop_thread)) {
        log_message(PORTER_LOG_ERR, NULL, "event=dns_error type=%s name=%s error=\"a blocking DNS "
                    "query on the event loop thread is refused (use porter_dns_lookup, or "
                    "porter_run_blocking)\"", dns_type_name(type), q.name);
        return dns_answer_new(PORTER_DNS_ERROR, type, q.name, NULL, 0, 0, NULL, 0);
    }
    struct porter_dns_answer *answer = dns_cache_get(r->cache, type, q.name, clock_monotonic());
    metrics_add(&metrics_here->dns_queries, 1);
    if (answer != NULL) {
        metrics_add(&metrics_here->dns_cache_hits, 1);
        return answer;
    }
    struct porter_dns_answer *failure = NULL;
    for (unsigned try_index = 0; try_index < r->tries; try_index++) {
        const char *why = NULL;
        answer = NULL;
        enum dns_try_outcome outcome =
            dns_sync_try(r, &r->servers[try_index % r->server_count], &q, &answer, &why);
        if (outcome == DNS_TRY_DONE) {
            dns_answer_free(failure);
            dns_cache_put(r->cache, answer, clock_monotonic());
            return answer;
        }
        if (answer != NULL) {
            dns_answer_free(failure);
            failure = answer;
        }
        dns_log_try(r, &q, try_index, why);
    }
    log_message(PORTER_LOG_INFO, NULL, "event=dns_failed type=%s name=%s tries=%u",
                dns_type_name(type), q.name, r->tries);
    if (failure != NULL)
        return failure;
    return dns_answer_new(PORTER_DNS_TEMPFAIL, type, q.name, NULL, 0, 0, NULL, 0);
}

/* ---------------------------------------------------------------- the resolver's life */

struct dns_resolver *dns_resolver_new(struct event_base *base, const struct porter_config *config)
{
    struct dns_resolver *r = xcalloc(1, sizeof *r);
    r->base = base;
    r->loop_thread = pthread_self();
    r->timeout = config->dns_timeout > 0 ? config->dns_timeout : 3;
    const char *source = "dns_servers";
    if (config->dns_servers != NULL &&
        config_dns_servers_parse(config->dns_servers, r->servers, CONFIG_DNS_SERVERS_MAX,
                                 &r->server_count) != NULL)
        r->server_count = 0; /* checked when the configuration was read: not expected */
    if (r->server_count == 0) {
        char *text = NULL, *error = NULL;
        size_t length = 0;
        source = DNS_RESOLV_CONF;
        if (config_read_file(DNS_RESOLV_CONF, DNS_RESOLV_CONF_MAX, &text, &length, &error) == 0) {
            r->server_count = dns_resolv_conf_parse(text, length, r->servers,
                                                    CONFIG_DNS_SERVERS_MAX);
            free(text);
        } else {
            log_message(PORTER_LOG_WARNING, NULL, "event=dns_config error=\"%s\"", error);
            free(error);
        }
    }
    if (r->server_count == 0) {
        struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)&r->servers[0];
        v4->sin_family = AF_INET;
        v4->sin_port = htons(53);
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        r->server_count = 1;
        source = "default";
    }
    r->tries = (unsigned)r->server_count * (unsigned)(config->dns_retries + 1);
    r->cache = dns_cache_new(config->dns_cache_size > 0 ? (size_t)config->dns_cache_size : 0);
    r->receive_buffer = xmalloc(DNS_PACKET_MAX);
    char list[CONFIG_DNS_SERVERS_MAX * 56] = "";
    size_t used = 0;
    for (size_t i = 0; i < r->server_count; i++) {
        char server[56];
        dns_server_text(&r->servers[i], server, sizeof server);
        int n = snprintf(list + used, sizeof list - used, "%s%s", i ? "," : "", server);
        if (n > 0 && (size_t)n < sizeof list - used)
            used += (size_t)n;
    }
    log_message(PORTER_LOG_DEBUG, NULL, "event=dns_resolver servers=%s source=%s timeout=%.3gs "
                "tries=%u cache=%ld", list, source, r->timeout, r->tries, config->dns_cache_size);
    return r;
}

void dns_resolver_free(struct dns_resolver *r)
{
    if (r == NULL)
        return;
    for (struct dns_query *q = r->queries; q != NULL; q = q->next)
        q->leader = q->followers = q->follower_prev = q->follower_next = NULL;
    while (r->queries != NULL) {
        struct dns_query *q = r->queries;
        dns_query_unlink(q);
        dns_query_close(q);
        if (q->timer != NULL) {
            event_free(q->timer);
            q->timer = NULL;
        }
        q->resolver = NULL;
        if (q->callback == NULL)
            dns_query_release(q); /* a leader cancelled by its owner: nobody else frees it */
    }
    dns_cache_free(r->cache);
    free(r->receive_buffer);
    free(r);
}
