/*
 * test_daemon_talk.c - unit tests of native-plugins/daemon_talk.c on a real libevent loop,
 * against a peer on a unix socket in a temporary directory, served by a thread with blocking
 * I/O: a message of several pieces arrives whole, framed as clamd's INSTREAM chunks or plain;
 * answers end at the peer's close or at exactly answer_max bytes; an answer that is too long,
 * a peer that closes without answering, one that never answers (the deadline) and one that is
 * not there each give done() an error, always from the loop, never inside daemon_talk_start.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>
#include <event2/event.h>

#include "../../native-plugins/daemon_talk.h"

const struct porter_api *porter_api; /* daemon_talk_hook's calls; not used here */

#define BODY_SIZE (300 * 1024 + 17) /* five pieces and a bit */

/* What the peer does once it accepted. */
enum peer_mode { PEER_CHUNKS, PEER_PLAIN, PEER_EXACT, PEER_TOO_LONG, PEER_CLOSE, PEER_SILENT };

struct peer {
    int listener;
    enum peer_mode mode;
    size_t expect;              /* PEER_PLAIN: request bytes to read */
    char *received;             /* the request as the peer saw it (unframed) */
    size_t received_length;
    bool framing_ok;
};

struct outcome {
    bool called, inside_start;
    char error[300];
    char answer[1024];
    size_t length;
};

static char directory[64], socket_path[128];
static struct outcome outcome;
static bool in_start;

/* read_all - exactly n bytes, or false at EOF or error */
static bool read_all(int fd, void *buffer, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)buffer + got, n - got);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static void keep(struct peer *p, const void *data, size_t n)
{
    p->received = realloc(p->received, p->received_length + n + 1);
    memcpy(p->received + p->received_length, data, n);
    p->received_length += n;
}

static void *peer_run(void *arg)
{
    struct peer *p = arg;
    int fd = accept(p->listener, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buffer[70000];
    if (p->mode == PEER_CHUNKS) {
        char command[10];
        p->framing_ok = read_all(fd, command, sizeof command) && memcmp(command, "zINSTREAM", 10) == 0;
        for (;;) {
            uint32_t size;
            if (!read_all(fd, &size, sizeof size)) {
                p->framing_ok = false;
                break;
            }
            size = ntohl(size);
            if (size == 0)
                break;
            if (size > sizeof buffer || !read_all(fd, buffer, size)) {
                p->framing_ok = false;
                break;
            }
            keep(p, buffer, size);
        }
        if (write(fd, "stream: OK", 11) != 11)
            p->framing_ok = false;
    } else if (p->mode == PEER_PLAIN) {
        for (size_t left = p->expect; left > 0;) {
            ssize_t r = read(fd, buffer, left < sizeof buffer ? left : sizeof buffer);
            if (r <= 0)
                break;
            keep(p, buffer, (size_t)r);
            left -= (size_t)r;
        }
        if (write(fd, "SPAMD/1.1 0 EX_OK\r\n", 19) != 19)
            p->framing_ok = false;
    } else if (p->mode == PEER_EXACT) {
        memset(buffer, 'p', 232);
        if (read(fd, buffer + 300, 21) > 0 && write(fd, buffer, 232) == 232) {
            char one;
            (void)!read(fd, &one, 1); /* stays open until the talk closes */
        }
    } else if (p->mode == PEER_TOO_LONG) {
        memset(buffer, 'x', 2000); /* after reading the request: a close with unread data */
        if (read_all(fd, buffer + 2000, 6)) /* would be a reset, not an end */
            (void)!write(fd, buffer, 2000);
    } else if (p->mode == PEER_CLOSE) {
        (void)!read_all(fd, buffer, 6);
    } else if (p->mode == PEER_SILENT) {
        char one;
        (void)!read(fd, &one, 1); /* holds the connection until the talk gives up */
        while (read(fd, buffer, sizeof buffer) > 0)
            ;
    }
    close(fd);
    return NULL;
}

static void done(void *arg, const char *error, const char *answer, size_t length)
{
    struct event_base *base = arg;
    outcome.called = true;
    outcome.inside_start = in_start;
    snprintf(outcome.error, sizeof outcome.error, "%s", error ? error : "");
    if (answer != NULL) {
        assert_int_equal(answer[length], '\0');
        memcpy(outcome.answer, answer, length < sizeof outcome.answer ? length : sizeof outcome.answer);
    }
    outcome.length = length;
    event_base_loopbreak(base);
}

/* run - one talk against a peer in mode (none when mode < 0) that, in PEER_PLAIN, reads expect
 * bytes; the outcome is in `outcome`, what the peer saw in *p */
static void run(int mode, size_t expect, const struct daemon_talk_request *request, struct peer *p)
{
    struct socket_address address;
    char error[200];
    char text[160];
    snprintf(text, sizeof text, "unix:%s", socket_path);
    assert_int_equal(socket_address_parse(text, &address, error, sizeof error), 0);
    pthread_t thread;
    memset(p, 0, sizeof *p);
    p->listener = -1;
    p->expect = expect;
    if (mode >= 0) {
        p->mode = (enum peer_mode)mode;
        p->framing_ok = true;
        p->listener = socket(AF_UNIX, SOCK_STREAM, 0);
        unlink(socket_path);
        assert_int_equal(bind(p->listener, (struct sockaddr *)&address.sockaddr, address.length), 0);
        assert_int_equal(listen(p->listener, 4), 0);
        assert_int_equal(pthread_create(&thread, NULL, peer_run, p), 0);
    }
    struct event_base *base = event_base_new();
    struct daemon_talk_request r = *request;
    r.address = &address;
    memset(&outcome, 0, sizeof outcome);
    in_start = true;
    daemon_talk_start(base, &r, done, base);
    in_start = false;
    event_base_dispatch(base);
    event_base_free(base);
    if (mode >= 0) {
        pthread_join(thread, NULL);
        close(p->listener);
        unlink(socket_path);
    }
    assert_true(outcome.called);
    assert_false(outcome.inside_start);
}

/* message_file - a spool-like file: junk, then the body at offset 100 */
static int message_file(char *body, size_t size)
{
    char path[160];
    snprintf(path, sizeof path, "%s/body", directory);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    unlink(path);
    for (size_t i = 0; i < size; i++)
        body[i] = (char)('a' + i % 23);
    assert_int_equal(pwrite(fd, "junk", 4, 0), 4);
    assert_int_equal(pwrite(fd, body, size, 100), (ssize_t)size);
    return fd;
}

static void test_chunked_message(void **unused)
{
    static char body[BODY_SIZE];
    int fd = message_file(body, sizeof body);
    const char headers[] = "Received: from x\r\nSubject: test\r\n";
    struct porter_message m = {.headers = headers, .headers_length = sizeof headers - 1,
                               .body_fd = fd, .body_offset = 100, .body_length = BODY_SIZE};
    struct daemon_talk_request r = {.timeout = 10, .head = "zINSTREAM", .head_length = 10,
                                    .message = &m, .chunked = true, .answer_max = 100};
    struct peer p;
    run(PEER_CHUNKS, 0, &r, &p);
    close(fd);
    assert_string_equal(outcome.error, "");
    assert_int_equal(outcome.length, 11);
    assert_string_equal(outcome.answer, "stream: OK");
    assert_true(p.framing_ok);
    assert_int_equal(p.received_length, daemon_talk_message_length(&m));
    assert_memory_equal(p.received, "Received: from x\r\nSubject: test\r\n\r\n", sizeof headers + 1);
    assert_memory_equal(p.received + sizeof headers + 1, body, BODY_SIZE);
    free(p.received);
}

static void test_plain_message(void **unused)
{
    static char body[BODY_SIZE];
    int fd = message_file(body, sizeof body);
    const char headers[] = "Subject: plain\r\n";
    struct porter_message m = {.headers = headers, .headers_length = sizeof headers - 1,
                               .body_fd = fd, .body_offset = 100, .body_length = BODY_SIZE};
    struct daemon_talk_request r = {.timeout = 10, .head = "HEAD\r\n", .head_length = 6,
                                    .message = &m, .answer_max = 100};
    struct peer p;
    /* the peer reads exactly the request, then answers and closes */
    run(PEER_PLAIN, 6 + (size_t)daemon_talk_message_length(&m), &r, &p);
    close(fd);
    assert_string_equal(outcome.error, "");
    assert_string_equal(outcome.answer, "SPAMD/1.1 0 EX_OK\r\n");
    assert_int_equal(p.received_length, 6 + daemon_talk_message_length(&m));
    assert_memory_equal(p.received, "HEAD\r\nSubject: plain\r\n\r\n", 24);
    assert_memory_equal(p.received + 24, body, BODY_SIZE);
    free(p.received);
}

static void test_exact_answer(void **unused)
{
    struct daemon_talk_request r = {.timeout = 10, .head = "012345678901234567890",
                                    .head_length = 21, .answer_max = 232, .answer_exact = true};
    struct peer p;
    run(PEER_EXACT, 0, &r, &p);
    assert_string_equal(outcome.error, "");
    assert_int_equal(outcome.length, 232);
    assert_int_equal(outcome.answer[0], 'p');
    assert_int_equal(outcome.answer[231], 'p');
}

static void test_failures(void **unused)
{
    struct daemon_talk_request r = {.timeout = 10, .head = "HELLO\n", .head_length = 6,
                                    .answer_max = 1000};
    struct peer p;
    run(PEER_TOO_LONG, 0, &r, &p);
    assert_string_equal(outcome.error, "answer longer than 1000 bytes");
    run(PEER_CLOSE, 0, &r, &p);
    assert_string_equal(outcome.error, "closed the connection without an answer");
    r.timeout = 0.2;
    run(PEER_SILENT, 0, &r, &p);
    assert_string_equal(outcome.error, "no answer within the timeout");
    run(-1, 0, &r, &p); /* nobody listens there */
    assert_string_equal(outcome.error, "cannot connect: No such file or directory");
    r.answer_exact = true; /* a cut exact answer */
    r.answer_max = 2001;
    r.timeout = 10;
    run(PEER_TOO_LONG, 0, &r, &p);
    assert_string_equal(outcome.error, "answer cut short: 2000 of 2001 bytes");
}

int main(void)
{
    snprintf(directory, sizeof directory, "/tmp/porter-talk-XXXXXX");
    if (mkdtemp(directory) == NULL)
        return 1;
    snprintf(socket_path, sizeof socket_path, "%s/peer.sock", directory);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunked_message),
        cmocka_unit_test(test_plain_message),
        cmocka_unit_test(test_exact_answer),
        cmocka_unit_test(test_failures),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(directory);
    return failed;
}
