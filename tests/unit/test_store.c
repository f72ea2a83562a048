/*
 * test_store.c - unit tests of the store's pure parts (gateway/store.c, store_lmdb.c,
 * store_redis.c): the store setting (lmdb, redis://, redis+unix://, credentials, bad ones),
 * its log form without the password, LMDB records, counters, time left, the reconnection
 * backoff; and the dispatch on a real event loop with the LMDB backend in a temporary
 * directory: outcomes arrive on a later loop turn, never inside store_submit, and a cancelled
 * request's callback never runs; and the deadlines of the Redis backend's requests (one timer
 * per store), writes larger than the socket's buffers, and a cancelled request still written
 * at once (its callback dropped, never its command), against a fake Redis on a loopback
 * socket that answers only what the test says.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "gateway/config.h"
#include "gateway/store.h"
#include "gateway/thread_pool.h"

struct address_case {
    const char *text;
    int want;                /* 0 or -1 */
    enum store_kind kind;
    const char *host;
    int port;
    const char *path;
    int database;
    const char *user, *password;
};

static const struct address_case address_cases[] = {
    {"lmdb", 0, STORE_LMDB, "", 0, "", 0, "", ""},
    {"redis://127.0.0.1:6380/2", 0, STORE_REDIS_TCP, "127.0.0.1", 6380, "", 2, "", ""},
    {"redis://localhost", 0, STORE_REDIS_TCP, "localhost", 6379, "", 0, "", ""},
    {"redis://localhost/", 0, STORE_REDIS_TCP, "localhost", 6379, "", 0, "", ""},
    {"redis://[::1]:7000/15", 0, STORE_REDIS_TCP, "::1", 7000, "", 15, "", ""},
    {"redis://:s3cret@10.0.0.1:6379/1", 0, STORE_REDIS_TCP, "10.0.0.1", 6379, "", 1, "", "s3cret"},
    {"redis://porter:pw@redis.example:6379", 0, STORE_REDIS_TCP, "redis.example", 6379, "", 0,
     "porter", "pw"},
    {"redis+unix:///run/redis/redis.sock", 0, STORE_REDIS_UNIX, "", 0, "/run/redis/redis.sock",
     0, "", ""},
    {"redis+unix:///tmp/r.sock?db=4", 0, STORE_REDIS_UNIX, "", 0, "/tmp/r.sock", 4, "", ""},
    {"redis+unix://:pw@/tmp/r.sock", 0, STORE_REDIS_UNIX, "", 0, "/tmp/r.sock", 0, "", "pw"},
    {"sqlite", -1, 0, NULL, 0, NULL, 0, NULL, NULL},
    {"redis://", -1, 0, NULL, 0, NULL, 0, NULL, NULL},
    {"redis://host:0", -1, 0, NULL, 0, NULL, 0, NULL, NULL},
    {"redis://host:65536", -1, 0, NULL, 0, NULL, 0, NULL, NULL},
    {"redis://host:port", -1, 0, NULL, 0, NULL, 0, NULL, NULL},
    {"redis://host:6379/x", -1, 0, NULL, 0, NULL, 0, NULL, NULL},
    {"redis://[::1", -1, 0, NULL, 0, NULL, 0, NULL, NULL},
    {"redis://user@host", -1, 0, NULL, 0, NULL, 0, NULL, NULL},
    {"redis+unix://relative.sock", -1, 0, NULL, 0, NULL, 0, NULL, NULL},
    {"redis+unix:///tmp/r.sock?database=1", -1, 0, NULL, 0, NULL, 0, NULL, NULL},
    {"redis://ho st:1", -1, 0, NULL, 0, NULL, 0, NULL, NULL},
};

static void test_address_parse(void **unused)
{
    for (size_t i = 0; i < sizeof address_cases / sizeof address_cases[0]; i++) {
        const struct address_case *c = &address_cases[i];
        struct store_address a;
        char error[256] = "";
        int got = store_address_parse(c->text, &a, error, sizeof error);
        if (got != c->want)
            fail_msg("%s: got %d (%s), want %d", c->text, got, error, c->want);
        if (got != 0) {
            if (error[0] == '\0')
                fail_msg("%s: refused without a reason", c->text);
            continue;
        }
        if (a.kind != c->kind || strcmp(a.host, c->host) != 0 || a.port != c->port ||
            strcmp(a.path, c->path) != 0 || a.database != c->database ||
            strcmp(a.user, c->user) != 0 || strcmp(a.password, c->password) != 0)
            fail_msg("%s: got kind %d host '%s' port %d path '%s' db %d user '%s' password '%s'",
                     c->text, a.kind, a.host, a.port, a.path, a.database, a.user, a.password);
    }
}

static void test_address_text_hides_password(void **unused)
{
    struct store_address a;
    char error[256], text[400];
    assert_int_equal(store_address_parse("redis://:hunter2@[::1]:7000/3", &a, error, sizeof error), 0);
    store_address_text(&a, text, sizeof text);
    assert_string_equal(text, "redis://:***@[::1]:7000/3");
    assert_int_equal(store_address_parse("lmdb", &a, error, sizeof error), 0);
    store_address_text(&a, text, sizeof text);
    assert_string_equal(text, "lmdb");
}

static void test_record(void **unused)
{
    unsigned char buffer[STORE_RECORD_HEADER + 5];
    store_record_encode(buffer, 0x0102030405060708ull, "hello", 5);
    assert_int_equal(buffer[0], 1);
    assert_int_equal(buffer[7], 8);
    uint64_t expires;
    const char *value;
    size_t length;
    assert_int_equal(store_record_decode(buffer, sizeof buffer, &expires, &value, &length), 0);
    assert_true(expires == 0x0102030405060708ull);
    assert_int_equal(length, 5);
    assert_memory_equal(value, "hello", 5);
    assert_int_equal(store_record_decode(buffer, 7, &expires, &value, &length), -1);
    store_record_encode(buffer, 0, "", 0);
    assert_int_equal(store_record_decode(buffer, STORE_RECORD_HEADER, &expires, &value, &length), 0);
    assert_true(expires == 0 && length == 0);
}

static void test_counter_parse(void **unused)
{
    long long n;
    assert_int_equal(store_counter_parse("42", 2, &n), 0);
    assert_true(n == 42);
    assert_int_equal(store_counter_parse("-7", 2, &n), 0);
    assert_true(n == -7);
    assert_int_equal(store_counter_parse("9223372036854775807", 19, &n), 0);
    assert_int_equal(store_counter_parse("9223372036854775808", 19, &n), -1);
    assert_int_equal(store_counter_parse("", 0, &n), -1);
    assert_int_equal(store_counter_parse("4x", 2, &n), -1);
    assert_int_equal(store_counter_parse(" 4", 2, &n), -1);
    assert_int_equal(store_counter_parse("+4", 2, &n), -1);
    assert_int_equal(store_counter_parse("12", 1, &n), 0); /* only the length given counts */
    assert_true(n == 1);
}

static void test_ttl_and_backoff(void **unused)
{
    assert_true(store_ttl_seconds(0, 5000) == -1);
    assert_true(store_ttl_seconds(6500, 5000) == 1.5);
    assert_true(store_ttl_seconds(4000, 5000) == 0);
    assert_true(store_redis_backoff(0) == 0.1);
    assert_true(store_redis_backoff(1) == 0.2);
    assert_true(store_redis_backoff(3) == 0.8);
    assert_true(store_redis_backoff(9) == 30);
    assert_true(store_redis_backoff(1000) == 30);
}

/* ---- the dispatch on a real loop, LMDB backend ---- */

struct outcome {
    int calls;
    int status;
    char value[256];
    long long count;
    double ttl;
    bool inside_submit;
};

static bool submitting;

static void record_outcome(const struct porter_store_result *result, void *arg)
{
    struct outcome *o = arg;
    o->calls++;
    o->status = result->status;
    snprintf(o->value, sizeof o->value, "%s", result->value != NULL ? result->value : "");
    o->count = result->count;
    o->ttl = result->ttl;
    o->inside_submit = submitting;
}

static void run(struct event_base *base, struct store *store, enum store_operation op,
                const char *key, const char *value, long long by, double ttl, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    submitting = true;
    store_submit(store, op, key, value, by, ttl, record_outcome, o);
    submitting = false;
    assert_int_equal(o->calls, 0); /* never inside store_submit */
    for (int i = 0; i < 100 && o->calls == 0; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(o->calls, 1);
    assert_false(o->inside_submit);
}

static void test_lmdb_dispatch(void **unused)
{
    char directory[] = "/tmp/porter-test-store-XXXXXX";
    assert_non_null(mkdtemp(directory));
    struct porter_config config = {0};
    config.store = "lmdb";
    config.spool_dir = directory;
    config.store_size = 8 << 20;
    config.store_timeout = 1;
    config.store_sweep_interval = 60;
    struct event_base *base = event_base_new();
    struct thread_pool *pool = thread_pool_start(base, 1);
    struct store *store = store_new(&config, base, pool);
    assert_non_null(store);
    struct outcome o;
    run(base, store, STORE_GET, "t:absent", NULL, 0, 0, &o);
    assert_int_equal(o.status, PORTER_STORE_NOT_FOUND);
    run(base, store, STORE_SET, "t:k", "v1", 0, 30, &o);
    assert_int_equal(o.status, PORTER_STORE_OK);
    run(base, store, STORE_GET, "t:k", NULL, 0, 0, &o);
    assert_int_equal(o.status, PORTER_STORE_OK);
    assert_string_equal(o.value, "v1");
    assert_true(o.ttl > 29 && o.ttl <= 30);
    /* a value longer than the request's inline room comes back whole */
    char long_value[200];
    memset(long_value, 'v', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    run(base, store, STORE_SET, "t:long", long_value, 0, 30, &o);
    run(base, store, STORE_GET, "t:long", NULL, 0, 0, &o);
    assert_int_equal(o.status, PORTER_STORE_OK);
    assert_string_equal(o.value, long_value);
    run(base, store, STORE_INCREMENT, "t:n", NULL, 3, 10, &o);
    assert_true(o.status == PORTER_STORE_OK && o.count == 3);
    run(base, store, STORE_INCREMENT, "t:n", NULL, -1, 10, &o);
    assert_true(o.status == PORTER_STORE_OK && o.count == 2);
    run(base, store, STORE_INCREMENT, "t:k", NULL, 1, 10, &o);
    assert_int_equal(o.status, PORTER_STORE_ERROR);
    run(base, store, STORE_DELETE, "t:k", NULL, 0, 0, &o);
    assert_true(o.status == PORTER_STORE_OK && o.count == 1);
    /* limits */
    char key[STORE_KEY_MAX + 2];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    run(base, store, STORE_GET, key, NULL, 0, 0, &o);
    assert_int_equal(o.status, PORTER_STORE_ERROR);
    run(base, store, STORE_GET, "", NULL, 0, 0, &o);
    assert_int_equal(o.status, PORTER_STORE_ERROR);
    /* a cancelled request's callback never runs */
    memset(&o, 0, sizeof o);
    store_request_cancel(store_submit(store, STORE_GET, "t:n", NULL, 0, 0, record_outcome, &o));
    for (int i = 0; i < 10; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(o.calls, 0);
    thread_pool_stop(pool);
    store_free(store);
    event_base_free(base);
    char *command = NULL;
    assert_true(asprintf(&command, "rm -rf '%s'", directory) > 0);
    assert_int_equal(system(command), 0);
    free(command);
}


/* seconds_now - the monotonic clock */
static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* fake_read_until - turn the loop and read what the store sent to fd until text shows up in
 * it (bounded: 5 s) */
static void fake_read_until(struct event_base *base, int fd, char *seen, size_t size,
                            const char *text)
{
    size_t used = strlen(seen);
    double give_up = seconds_now() + 5;
    while (strstr(seen, text) == NULL && seconds_now() < give_up) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        ssize_t n = read(fd, seen + used, size - 1 - used);
        if (n > 0)
            seen[used += (size_t)n] = '\0';
        else
            usleep(2000);
    }
    assert_non_null(strstr(seen, text));
}

/* fake_listen - the fake Redis: a loopback listener (the test accepts and answers by hand);
 * its store setting in setting */
static int fake_listen(char *setting, size_t size, int receive_buffer)
{
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(listener >= 0);
    if (receive_buffer > 0) /* the accepted socket inherits it */
        assert_int_equal(setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &receive_buffer,
                                    sizeof receive_buffer), 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    assert_int_equal(bind(listener, (struct sockaddr *)&address, sizeof address), 0);
    assert_int_equal(listen(listener, 8), 0);
    assert_int_equal(getsockname(listener, (struct sockaddr *)&address, &length), 0);
    snprintf(setting, size, "redis://127.0.0.1:%d/0", ntohs(address.sin_port));
    return listener;
}

/* fake_accept - turn the loop until the store connects (bounded: 5 s) */
static int fake_accept(struct event_base *base, int listener)
{
    int fd = -1;
    for (double give_up = seconds_now() + 5; fd < 0 && seconds_now() < give_up; usleep(2000)) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
    }
    assert_true(fd >= 0);
    return fd;
}

/* The answers to the three SCRIPT LOADs every connection starts with (get, increment, and
 * increments in a batch). */
#define FAKE_SCRIPT_LOADS                                                                      \
    "$40\r\n0000000000000000000000000000000000000000\r\n"                                       \
    "$40\r\n0000000000000000000000000000000000000000\r\n"                                       \
    "$40\r\n0000000000000000000000000000000000000000\r\n"

static void test_redis_deadline(void **unused)
{
    char setting[64];
    int listener = fake_listen(setting, sizeof setting, 0);
    struct porter_config config = {0};
    config.store = setting;
    config.store_timeout = 0.3;
    struct event_base *base = event_base_new();
    struct store *store = store_new(&config, base, NULL);
    assert_non_null(store);

    /* A: answered in time. */
    struct outcome a = {0}, b = {0};
    double started = seconds_now();
    store_submit(store, STORE_DELETE, "t:a", NULL, 0, 0, record_outcome, &a);
    int fd = fake_accept(base, listener);
    char seen[4096] = "";
    fake_read_until(base, fd, seen, sizeof seen, "t:a");
    static const char replies[] = FAKE_SCRIPT_LOADS ":1\r\n"; /* A's DEL */
    assert_int_equal(write(fd, replies, sizeof replies - 1), (ssize_t)(sizeof replies - 1));
    for (double give_up = seconds_now() + 5; a.calls == 0 && seconds_now() < give_up;)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, PORTER_STORE_OK);
    assert_int_equal(a.count, 1);

    /* B: submitted later, never answered. The timer was set for A's deadline; B's own comes
     * store_timeout after B, not at A's. */
    while (seconds_now() < started + 0.2)
        usleep(5000);
    double submitted = seconds_now();
    store_submit(store, STORE_GET, "t:b", NULL, 0, 0, record_outcome, &b);
    fake_read_until(base, fd, seen, sizeof seen, "t:b");
    for (double give_up = seconds_now() + 5; b.calls == 0 && seconds_now() < give_up;)
        event_base_loop(base, EVLOOP_ONCE);
    double waited = seconds_now() - submitted;
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, PORTER_STORE_ERROR);
    printf("deadline after %.3f s, want 0.3 s after its own submission\n", waited);
    assert_true(waited >= 0.29 && waited < 5);

    store_free(store);
    event_base_free(base);
    close(fd);
    close(listener);
}

/* fake_established - a first request makes the store's connection to the fake, which answers
 * it; the fake's end of the connection */
static int fake_established(struct event_base *base, struct store *store, int listener)
{
    struct outcome first = {0};
    store_submit(store, STORE_DELETE, "t:first", NULL, 0, 0, record_outcome, &first);
    int fd = fake_accept(base, listener);
    char seen[4096] = "";
    fake_read_until(base, fd, seen, sizeof seen, "t:first");
    static const char first_replies[] = FAKE_SCRIPT_LOADS ":0\r\n";
    assert_int_equal(write(fd, first_replies, sizeof first_replies - 1),
                     (ssize_t)(sizeof first_replies - 1));
    for (double give_up = seconds_now() + 5; first.calls == 0 && seconds_now() < give_up;)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(first.status, PORTER_STORE_OK);
    return fd;
}

/* A request with a callback is written at once, also when it is cancelled right away (its
 * callback is dropped, never its command: porter_store_increments_background's counts of a
 * client that left are made), unlike a background one, which waits up to REDIS_LINGER for
 * company; its answer, when it comes, is read and dropped. */
static void test_redis_cancelled_written_at_once(void **unused)
{
    char setting[64];
    int listener = fake_listen(setting, sizeof setting, 0);
    struct porter_config config = {0};
    config.store = setting;
    config.store_timeout = 5;
    struct event_base *base = event_base_new();
    struct store *store = store_new(&config, base, NULL);
    struct outcome cancelled = {0};
    int fd = fake_established(base, store, listener);
    /* Established: the cancelled increment goes out in the loop passes that follow, without
     * any wait (a held-back one would need REDIS_LINGER to pass). */
    store_request_cancel(store_submit(store, STORE_INCREMENT, "t:now", NULL, 1, 60,
                                      record_outcome, &cancelled));
    char seen[4096] = "";
    size_t used = 0;
    for (int i = 0; i < 10 && strstr(seen, "t:now") == NULL; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        ssize_t n = read(fd, seen + used, sizeof seen - 1 - used);
        if (n > 0)
            seen[used += (size_t)n] = '\0';
    }
    if (strstr(seen, "t:now") == NULL)
        fail_msg("got \"%s\" after 10 loop passes, want the cancelled increment written", seen);
    static const char reply[] = ":1\r\n";
    assert_int_equal(write(fd, reply, sizeof reply - 1), (ssize_t)(sizeof reply - 1));
    for (int i = 0; i < 20; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
    assert_int_equal(cancelled.calls, 0);
    store_free(store);
    event_base_free(base);
    close(fd);
    close(listener);
}

/* Sets far larger than the socket's buffers: the writes that cannot finish wait for the socket
 * to drain (the connection's write event), and every byte arrives in order. */
static void test_redis_large_writes(void **unused)
{
    char setting[64];
    int listener = fake_listen(setting, sizeof setting, 65536);
    struct porter_config config = {0};
    config.store = setting;
    config.store_timeout = 30;
    struct event_base *base = event_base_new();
    struct store *store = store_new(&config, base, NULL);
    enum { SETS = 64 };
    size_t value_length = STORE_VALUE_MAX;
    char *value = malloc(value_length + 1);
    assert_non_null(value);
    memset(value, 'x', value_length);
    value[value_length] = '\0';
    struct outcome outcomes[SETS];
    memset(outcomes, 0, sizeof outcomes);
    int fd = fake_established(base, store, listener);
    /* Then the sets, on the established connection, before the fake reads anything. */
    for (int i = 0; i < SETS; i++) {
        char key[32];
        snprintf(key, sizeof key, "t:big%d", i);
        store_submit(store, STORE_SET, key, value, 0, 0, record_outcome, &outcomes[i]);
    }
    for (int i = 0; i < 20; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    /* Read everything; count the value bytes. */
    size_t want = (size_t)SETS * value_length, got = 0;
    char buffer[65536];
    for (double give_up = seconds_now() + 20; got < want && seconds_now() < give_up;) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n <= 0) {
            usleep(1000);
            continue;
        }
        for (ssize_t i = 0; i < n; i++)
            got += buffer[i] == 'x';
    }
    printf("%zu of %zu value bytes\n", got, want);
    assert_true(got == want);
    char replies[SETS * 5 + 1];
    int length = 0;
    for (int i = 0; i < SETS; i++)
        length += snprintf(replies + length, sizeof replies - (size_t)length, "+OK\r\n");
    assert_int_equal(write(fd, replies, (size_t)length), length);
    int answered = 0;
    for (double give_up = seconds_now() + 5; answered < SETS && seconds_now() < give_up;) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        answered = 0;
        for (int i = 0; i < SETS; i++)
            answered += outcomes[i].calls == 1 && outcomes[i].status == PORTER_STORE_OK;
    }
    assert_int_equal(answered, SETS);
    store_free(store);
    event_base_free(base);
    free(value);
    close(fd);
    close(listener);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_parse),
        cmocka_unit_test(test_address_text_hides_password),
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_counter_parse),
        cmocka_unit_test(test_ttl_and_backoff),
        cmocka_unit_test(test_lmdb_dispatch),
        cmocka_unit_test(test_redis_deadline),
        cmocka_unit_test(test_redis_large_writes),
        cmocka_unit_test(test_redis_cancelled_written_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
