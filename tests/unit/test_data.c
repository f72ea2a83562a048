/*
 * test_data.c - unit tests for gateway/data.c (cmocka).
 *
 * Every message is run several ways - whole, byte by byte, and in random splits - and every
 * way must give the same consumed count, done flag, error, spool bytes, size, header list and
 * body offset. Whenever a message is accepted, the spool must equal the rendered headers, the
 * separator (if any) and the body read from the spool at the body offset.
 *
 * Covers: end of DATA and pipelined bytes left unconsumed, every SMTP smuggling variant under
 * both bare policies (one message or an error, never two), dot-unstuffing, NUL, size and line
 * limits (position-exact), header parsing (folding, no separator, no body, empty message,
 * header limits), BDAT across chunk boundaries, write errors (/dev/full, a closed fd, a pipe
 * whose reader is gone), large messages through the write buffer, error names and replies.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testlib.h"

#include "data.h"
#include "headers.h"

/* ---------------------------------------------------------------- helpers */

static void check_number(const char *what, unsigned long long got, unsigned long long want)
{
    if (got != want)
        fail_msg("%s: got %llu, want %llu", what, got, want);
}

static void check_error(const char *what, enum data_error got, enum data_error want)
{
    if (got != want)
        fail_msg("%s: got error %s, want %s", what, data_error_name(got), data_error_name(want));
}

static struct data_limits limits_default(enum data_bare_policy policy)
{
    struct data_limits limits = {
        .max_message_size = 10 * 1024 * 1024,
        .max_line_length = 998,
        .max_header_size = 64 * 1024,
        .max_header_count = 1000,
        .bare_policy = policy,
    };
    return limits;
}

enum mode { MODE_DOT, MODE_CHUNK };
enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM };

/* Everything one run of the reader produced. */
struct run {
    size_t consumed;
    bool done;
    enum data_error error;
    char *spool;
    size_t spool_length;
    unsigned long long size;
    bool headers_done;
    bool has_separator;
    long long body_offset;
    size_t header_count;
    char *headers; /* rendered */
    size_t headers_length;
};

static void run_free(struct run *r)
{
    free(r->spool);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

/* random_next - a small deterministic generator for splits */
static uint32_t random_next(uint32_t *seed)
{
    *seed ^= *seed << 13;
    *seed ^= *seed >> 17;
    *seed ^= *seed << 5;
    return *seed;
}

/* piece_length - the length of the next piece to feed */
static size_t piece_length(enum split split, uint32_t *seed, size_t remaining)
{
    if (split == SPLIT_WHOLE)
        return remaining;
    if (split == SPLIT_BYTES)
        return 1;
    size_t piece;
    switch (random_next(seed) % 4) {
    case 0: piece = 1; break;
    case 1: piece = 2 + random_next(seed) % 3; break;
    case 2: piece = 1 + random_next(seed) % 40; break;
    default: piece = 1 + random_next(seed) % (remaining + 1); break;
    }
    return piece < remaining ? piece : remaining;
}

/* read_all - the whole content of fd from offset 0 */
static char *read_all(int fd, size_t *length)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *bytes = malloc((size_t)st.st_size + 1);
    assert_non_null(bytes);
    ssize_t got = pread(fd, bytes, (size_t)st.st_size, 0);
    assert_int_equal(got, st.st_size);
    *length = (size_t)st.st_size;
    return bytes;
}

/* check_reconstruction - an accepted message equals headers + separator + body */
static void check_reconstruction(const char *what, const struct run *r)
{
    if (r->error != DATA_OK)
        return;
    if (!r->headers_done)
        fail_msg("%s: got headers_done false after an accepted message, want true", what);
    if (r->body_offset < 0 || (size_t)r->body_offset > r->spool_length)
        fail_msg("%s: got body offset %lld, want 0..%zu", what, r->body_offset, r->spool_length);
    size_t body_length = r->spool_length - (size_t)r->body_offset;
    size_t length = r->headers_length + (r->has_separator ? 2 : 0) + body_length;
    char *rebuilt = malloc(length + 1);
    assert_non_null(rebuilt);
    memcpy(rebuilt, r->headers, r->headers_length);
    if (r->has_separator)
        memcpy(rebuilt + r->headers_length, "\r\n", 2);
    memcpy(rebuilt + length - body_length, r->spool + r->body_offset, body_length);
    check_bytes(what, rebuilt, length, r->spool, r->spool_length);
    free(rebuilt);
    check_number("size of an accepted message", r->size, r->spool_length);
}

/* run_once - feed input to a new reader the given way; chunk mode calls finish at the end */
static void run_once(enum mode mode, const char *input, size_t length,
                     const struct data_limits *limits, enum split split, uint32_t seed,
                     struct run *out)
{
    FILE *file = tmpfile();
    assert_non_null(file);
    int fd = fileno(file);
    struct data_reader *r = data_reader_new(limits, fd);
    size_t offset = 0;
    bool done = false;
    memset(out, 0, sizeof *out);
    while (offset < length && !done) {
        size_t piece = piece_length(split, &seed, length - offset);
        if (mode == MODE_DOT) {
            size_t consumed = data_reader_feed_dot(r, input + offset, piece, &done);
            if (consumed > piece || (!done && consumed != piece))
                fail_msg("feed_dot consumed %zu of %zu (done %d)", consumed, piece, done);
            offset += consumed;
        } else {
            data_reader_feed_chunk(r, input + offset, piece);
            offset += piece;
        }
    }
    if (mode == MODE_DOT && done) {
        /* once done, nothing more is consumed */
        bool again = false;
        check_number("consumed after done", data_reader_feed_dot(r, "x\r\n", 3, &again), 0);
        assert_true(again);
    }
    out->consumed = offset;
    out->done = done;
    out->error = data_reader_finish(r);
    check_error("finish called twice", data_reader_finish(r), out->error);
    out->spool = read_all(fd, &out->spool_length);
    out->size = data_reader_size(r);
    out->headers_done = data_reader_headers_done(r);
    out->has_separator = data_reader_has_separator(r);
    out->body_offset = (long long)data_reader_body_offset(r);
    out->header_count = data_reader_headers(r)->count;
    out->headers = headers_render(data_reader_headers(r), &out->headers_length);
    data_reader_free(r);
    fclose(file);
    check_reconstruction("reconstruction", out);
}

/* check_same_run - two ways of feeding gave the same result */
static void check_same_run(const char *way, const struct run *got, const struct run *want)
{
    char what[128];
    snprintf(what, sizeof what, "%s: consumed", way);
    check_number(what, got->consumed, want->consumed);
    snprintf(what, sizeof what, "%s: done", way);
    check_number(what, got->done, want->done);
    snprintf(what, sizeof what, "%s: error", way);
    check_error(what, got->error, want->error);
    snprintf(what, sizeof what, "%s: size", way);
    check_number(what, got->size, want->size);
    if (want->error == DATA_OK) {
        snprintf(what, sizeof what, "%s: spool", way);
        check_bytes(what, got->spool, got->spool_length, want->spool, want->spool_length);
        snprintf(what, sizeof what, "%s: headers", way);
        check_bytes(what, got->headers, got->headers_length, want->headers, want->headers_length);
        snprintf(what, sizeof what, "%s: body offset", way);
        check_number(what, (unsigned long long)got->body_offset, (unsigned long long)want->body_offset);
        snprintf(what, sizeof what, "%s: separator", way);
        check_number(what, got->has_separator, want->has_separator);
    }
}

/* run_all_ways - run whole (the result), byte by byte and in random splits; all must agree */
static void run_all_ways(enum mode mode, const char *input, size_t length,
                         const struct data_limits *limits, struct run *out)
{
    run_once(mode, input, length, limits, SPLIT_WHOLE, 0, out);
    struct run other;
    run_once(mode, input, length, limits, SPLIT_BYTES, 0, &other);
    check_same_run("byte by byte", &other, out);
    run_free(&other);
    for (uint32_t seed = 1; seed <= 12; seed++) {
        char way[64];
        snprintf(way, sizeof way, "random split %u", seed);
        run_once(mode, input, length, limits, SPLIT_RANDOM, seed * 2654435761u, &other);
        check_same_run(way, &other, out);
        run_free(&other);
    }
}

/* ---------------------------------------------------------------- DATA mode tables */

struct dot_case {
    const char *name;
    const char *input;
    size_t length;              /* 0: strlen(input) */
    enum data_bare_policy policy;
    size_t consumed;            /* SIZE_MAX: all of the input */
    bool done;
    enum data_error error;
    const char *spool;          /* checked when error is DATA_OK */
};

#define ALL SIZE_MAX
#define REJ DATA_BARE_REJECT
#define NRM DATA_BARE_NORMALIZE

static void run_dot_cases(const struct dot_case *cases, size_t count,
                          const struct data_limits *base)
{
    for (size_t i = 0; i < count; i++) {
        const struct dot_case *c = &cases[i];
        struct data_limits limits = *base;
        limits.bare_policy = c->policy;
        size_t length = c->length ? c->length : strlen(c->input);
        struct run got;
        run_all_ways(MODE_DOT, c->input, length, &limits, &got);
        char what[256];
        snprintf(what, sizeof what, "%s: consumed", c->name);
        check_number(what, got.consumed, c->consumed == ALL ? length : c->consumed);
        snprintf(what, sizeof what, "%s: done", c->name);
        check_number(what, got.done, c->done);
        snprintf(what, sizeof what, "%s: error", c->name);
        check_error(what, got.error, c->error);
        if (c->error == DATA_OK && c->spool != NULL) {
            snprintf(what, sizeof what, "%s: spool", c->name);
            check_bytes(what, got.spool, got.spool_length, c->spool, strlen(c->spool));
        }
        run_free(&got);
    }
}

/* test_termination - only CRLF "." CRLF ends DATA; what follows is not consumed */
static void test_termination(void **state)
{
    static const struct dot_case cases[] = {
        {"empty message", ".\r\n", 0, REJ, 3, true, DATA_OK, ""},
        {"empty message, pipelined QUIT", ".\r\nQUIT\r\n", 0, REJ, 3, true, DATA_OK, ""},
        {"one line", "hello\r\n.\r\n", 0, REJ, ALL, true, DATA_OK, "hello\r\n"},
        {"pipelined command left", "Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n", 0, REJ, 21, true,
         DATA_OK, "Subject: x\r\n\r\nhi\r\n"},
        {"pipelined partial command left", "hi\r\n.\r\nMA", 0, REJ, 7, true, DATA_OK, "hi\r\n"},
        {"two terminators: first wins", "a\r\n.\r\nb\r\n.\r\n", 0, REJ, 6, true, DATA_OK, "a\r\n"},
        {"not finished", "hello\r\n", 0, REJ, ALL, false, DATA_OK, "hello\r\n"},
        {"not finished after dot", "hello\r\n.", 0, REJ, ALL, false, DATA_OK, "hello\r\n"},
        {"not finished after dot CR", "hello\r\n.\r", 0, REJ, ALL, false, DATA_OK, "hello\r\n"},
        {"dot not at line start", "a.\r\n.\r\n", 0, REJ, ALL, true, DATA_OK, "a.\r\n"},
        {"space dot line", "a\r\n .\r\n.\r\n", 0, REJ, ALL, true, DATA_OK, "a\r\n .\r\n"},
        {"dot space line", "a\r\n. \r\n.\r\n", 0, REJ, ALL, true, DATA_OK, "a\r\n \r\n"},
        {"empty lines kept", "\r\n\r\n.\r\n", 0, REJ, ALL, true, DATA_OK, "\r\n\r\n"},
        {"terminator after bare CR line end (reject)", "a\r\r\n.\r\nQUIT\r\n", 0, REJ, 7, true,
         DATA_ERROR_BARE_CR, NULL},
        {"terminator after bare CR line end (normalize)", "a\r\r\n.\r\nQUIT\r\n", 0, NRM, 7, true,
         DATA_OK, "a\r\n\r\n"},
        {"terminator after bare LF line (normalize)", "a\n\r\n.\r\nQUIT\r\n", 0, NRM, 7, true,
         DATA_OK, "a\r\n\r\n"},
    };
    struct data_limits limits = limits_default(REJ);
    run_dot_cases(cases, sizeof cases / sizeof cases[0], &limits);
}

/* test_unstuffing - a leading dot after CRLF is dropped; nowhere else */
static void test_unstuffing(void **state)
{
    static const struct dot_case cases[] = {
        {"stuffed dot line first", "..\r\n.\r\n", 0, REJ, ALL, true, DATA_OK, ".\r\n"},
        {"stuffed dots first", "...\r\n.\r\n", 0, REJ, ALL, true, DATA_OK, "..\r\n"},
        {"stuffed text first", ".x\r\n.\r\n", 0, REJ, ALL, true, DATA_OK, "x\r\n"},
        {"stuffed dot line", "a\r\n..\r\n.\r\n", 0, REJ, ALL, true, DATA_OK, "a\r\n.\r\n"},
        {"stuffed text", "a\r\n.b\r\n.\r\n", 0, REJ, ALL, true, DATA_OK, "a\r\nb\r\n"},
        {"stuffed CRLF.CRLF look-alike", "a\r\n..\r\n.\r\n.\r\n", 0, REJ, 10, true, DATA_OK,
         "a\r\n.\r\n"},
        {"mid-line dots kept", "a..b.\r\n.\r\n", 0, REJ, ALL, true, DATA_OK, "a..b.\r\n"},
        {"stuffed then bare LF (normalize)", "a\r\n..\nb\r\n.\r\n", 0, NRM, ALL, true, DATA_OK,
         "a\r\n.\r\nb\r\n"},
        {"dot then bare LF keeps the dot (normalize)", "a\r\n.\nb\r\n.\r\n", 0, NRM, ALL, true,
         DATA_OK, "a\r\n.\r\nb\r\n"},
        {"dot then bare CR keeps the dot (normalize)", "a\r\n.\rb\r\n.\r\n", 0, NRM, ALL, true,
         DATA_OK, "a\r\n.\r\nb\r\n"},
        {"no unstuffing after bare LF (normalize)", "a\n..b\r\n.\r\n", 0, NRM, ALL, true, DATA_OK,
         "a\r\n..b\r\n"},
        {"no unstuffing after bare CR (normalize)", "a\r.b\r\n.\r\n", 0, NRM, ALL, true, DATA_OK,
         "a\r\n.b\r\n"},
        {"stuffed line after bare LF line end", "a\n\r\n.b\r\n.\r\n", 0, NRM, ALL, true, DATA_OK,
         "a\r\n\r\nb\r\n"},
        {"dot then bare LF (reject)", "a\r\n.\nb\r\n.\r\n", 0, REJ, ALL, true, DATA_ERROR_BARE_LF,
         NULL},
    };
    struct data_limits limits = limits_default(REJ);
    run_dot_cases(cases, sizeof cases / sizeof cases[0], &limits);
}

/* test_nul - NUL bytes fail the message under both policies; consumption goes on */
static void test_nul(void **state)
{
    static const struct dot_case cases[] = {
        {"NUL in text (reject)", "a\0b\r\n.\r\nQUIT", 8, REJ, 8, true, DATA_ERROR_NUL, NULL},
        {"NUL in text (normalize)", "a\0b\r\n.\r\nQUIT", 8, NRM, 8, true, DATA_ERROR_NUL, NULL},
        {"NUL after dot", "a\r\n.\0\r\n.\r\n", 10, NRM, 10, true, DATA_ERROR_NUL, NULL},
        {"NUL first", "\0\r\n.\r\n", 6, REJ, 6, true, DATA_ERROR_NUL, NULL},
        {"bare LF before NUL: first error wins", "\n\0\r\n.\r\n", 7, REJ, 7, true,
         DATA_ERROR_BARE_LF, NULL},
    };
    struct data_limits limits = limits_default(REJ);
    run_dot_cases(cases, sizeof cases / sizeof cases[0], &limits);
}

/* ---------------------------------------------------------------- smuggling */

/*
 * test_smuggling - a fake end of data followed by a second transaction. Whatever the fake
 * end looks like, the reader must read on to the real CRLF "." CRLF: under REJECT the one
 * message fails, under NORMALIZE it is accepted as one message that contains the smuggled
 * text in its body. Either way the pipelined QUIT is the only byte left, never a second
 * transaction.
 */
static void test_smuggling(void **state)
{
    static const char prefix[] = "From: a@example.org\r\nSubject: s\r\n\r\nbody";
    static const char smuggled[] = "MAIL FROM:<admin@example.org>\r\nRCPT TO:<victim@example.net>\r\n"
                                   "DATA\r\nFrom: admin@example.org\r\n\r\nsmuggled\r\n";
    static const char terminator[] = ".\r\n";
    static const char after[] = "QUIT\r\n";
    static const struct {
        const char *fake;
        enum data_error reject_error;
        const char *normalized; /* how the fake end appears in the message under NORMALIZE */
    } variants[] = {
        {"\n.\n", DATA_ERROR_BARE_LF, "\r\n.\r\n"},
        {"\n.\r\n", DATA_ERROR_BARE_LF, "\r\n.\r\n"},
        {"\r\n.\n", DATA_ERROR_BARE_LF, "\r\n.\r\n"},
        {"\r.\r", DATA_ERROR_BARE_CR, "\r\n.\r\n"},
        {"\r.\n", DATA_ERROR_BARE_CR, "\r\n.\r\n"},
        {"\r.\r\n", DATA_ERROR_BARE_CR, "\r\n.\r\n"},
        {"\n.\r", DATA_ERROR_BARE_LF, "\r\n.\r\n"},
        {"\r\n.\r", DATA_ERROR_BARE_CR, "\r\n.\r\n"},
        {"\r\n.\r\r\n", DATA_ERROR_BARE_CR, "\r\n.\r\n\r\n"},
        {"\r\n.\n\r\n", DATA_ERROR_BARE_LF, "\r\n.\r\n\r\n"},
        {"\n\n.\n\n", DATA_ERROR_BARE_LF, "\r\n\r\n.\r\n\r\n"},
        {"\r\r.\r\r", DATA_ERROR_BARE_CR, "\r\n\r\n.\r\n\r\n"},
        {"\r\n..\r\n", DATA_OK, "\r\n.\r\n"},
        {"\r\n .\r\n", DATA_OK, "\r\n .\r\n"},
        {"\r\n.\x00\r\n", DATA_ERROR_NUL, NULL},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        size_t fake_length = strlen(variants[i].fake);
        if (variants[i].reject_error == DATA_ERROR_NUL)
            fake_length = 6;
        char input[512];
        size_t length = 0;
        memcpy(input + length, prefix, strlen(prefix));
        length += strlen(prefix);
        memcpy(input + length, variants[i].fake, fake_length);
        length += fake_length;
        memcpy(input + length, smuggled, strlen(smuggled));
        length += strlen(smuggled);
        memcpy(input + length, terminator, strlen(terminator));
        length += strlen(terminator);
        size_t message_end = length;
        memcpy(input + length, after, strlen(after));
        length += strlen(after);

        char name[64];
        escape(variants[i].fake, fake_length, name, sizeof name);
        for (int p = 0; p < 2; p++) {
            struct data_limits limits = limits_default(p == 0 ? REJ : NRM);
            struct run got;
            run_all_ways(MODE_DOT, input, length, &limits, &got);
            char what[128];
            snprintf(what, sizeof what, "fake end \"%s\" (%s): consumed", name,
                     p == 0 ? "reject" : "normalize");
            check_number(what, got.consumed, message_end);
            check_number(what, got.done, true);
            snprintf(what, sizeof what, "fake end \"%s\" (%s): error", name,
                     p == 0 ? "reject" : "normalize");
            enum data_error want = variants[i].reject_error;
            if (p == 1 && want != DATA_ERROR_NUL)
                want = DATA_OK;
            check_error(what, got.error, want);
            if (want == DATA_OK) {
                /* exactly one message: prefix, the fake end as data, the smuggled text */
                char expect[512];
                size_t expect_length = 0;
                memcpy(expect, prefix, strlen(prefix));
                expect_length += strlen(prefix);
                memcpy(expect + expect_length, variants[i].normalized,
                       strlen(variants[i].normalized));
                expect_length += strlen(variants[i].normalized);
                memcpy(expect + expect_length, smuggled, strlen(smuggled));
                expect_length += strlen(smuggled);
                snprintf(what, sizeof what, "fake end \"%s\" (%s): spool", name,
                         p == 0 ? "reject" : "normalize");
                check_bytes(what, got.spool, got.spool_length, expect, expect_length);
                check_number("one message: header count", got.header_count, 2);
                check_number("one message: separator", got.has_separator, true);
            } else if (got.spool_length != 0) {
                fail_msg("fake end \"%s\": got %zu bytes in the spool of a failed message, "
                         "want 0", name, got.spool_length);
            }
            run_free(&got);
        }
    }
}

/* test_smuggling_every_split_of_terminator - CRLF.CRLF split at every point still ends once */
static void test_terminator_every_split(void **state)
{
    static const char input[] = "Subject: x\r\n\r\nbody\r\n.\r\nRSET\r\n";
    size_t length = sizeof input - 1;
    size_t end = length - 6;
    for (size_t a = 0; a <= length; a++) {
        for (size_t b = a; b <= length; b++) {
            FILE *file = tmpfile();
            assert_non_null(file);
            struct data_limits limits = limits_default(REJ);
            struct data_reader *r = data_reader_new(&limits, fileno(file));
            bool done = false;
            size_t consumed = data_reader_feed_dot(r, input, a, &done);
            if (!done)
                consumed += data_reader_feed_dot(r, input + a, b - a, &done);
            if (!done)
                consumed += data_reader_feed_dot(r, input + b, length - b, &done);
            if (!done || consumed != end)
                fail_msg("split at %zu,%zu: got consumed %zu done %d, want %zu done 1", a, b,
                         consumed, done, end);
            check_error("split", data_reader_finish(r), DATA_OK);
            data_reader_free(r);
            fclose(file);
        }
    }
}

/* ---------------------------------------------------------------- limits */

/* test_size_limit - exactly the limit passes, one more byte fails, counting goes on */
static void test_size_limit(void **state)
{
    struct data_limits limits = limits_default(REJ);
    limits.max_message_size = 10;
    struct run got;

    run_all_ways(MODE_DOT, "12345678\r\n.\r\n", 13, &limits, &got);
    check_error("exactly the limit", got.error, DATA_OK);
    check_number("exactly the limit: size", got.size, 10);
    run_free(&got);

    run_all_ways(MODE_DOT, "123456789\r\n.\r\nQUIT\r\n", 20, &limits, &got);
    check_error("one over (in the CRLF)", got.error, DATA_ERROR_TOO_BIG);
    check_number("one over: size", got.size, 11);
    check_number("one over: consumed", got.consumed, 14);
    run_free(&got);

    run_all_ways(MODE_DOT, "12345678901\r\n.\r\n", 16, &limits, &got);
    check_error("one over (in the text)", got.error, DATA_ERROR_TOO_BIG);
    run_free(&got);

    /* counting goes on past the limit, on unstuffed bytes */
    char big[5000];
    size_t length = 0;
    for (int i = 0; i < 100; i++) {
        memcpy(big + length, "..line\r\n", 8);
        length += 8;
    }
    memcpy(big + length, ".\r\n", 3);
    length += 3;
    run_all_ways(MODE_DOT, big, length, &limits, &got);
    check_error("far over", got.error, DATA_ERROR_TOO_BIG);
    check_number("far over: size counts unstuffed bytes", got.size, 700);
    check_number("far over: consumed", got.consumed, length);
    check_number("far over: nothing past the limit written", got.spool_length <= 10, 1);
    run_free(&got);

    limits.max_message_size = 0;
    run_all_ways(MODE_DOT, ".\r\n", 3, &limits, &got);
    check_error("empty message under limit 0", got.error, DATA_OK);
    run_free(&got);
    run_all_ways(MODE_DOT, "\r\n.\r\n", 5, &limits, &got);
    check_error("one empty line under limit 0", got.error, DATA_ERROR_TOO_BIG);
    run_free(&got);
}

/* test_line_limit - lines are measured as written, without CRLF */
static void test_line_limit(void **state)
{
    struct data_limits limits = limits_default(REJ);
    limits.max_line_length = 5;
    static const struct dot_case cases[] = {
        {"exactly the limit", "12345\r\n.\r\n", 0, REJ, ALL, true, DATA_OK, "12345\r\n"},
        {"one over", "123456\r\n.\r\nQUIT\r\n", 0, REJ, 11, true, DATA_ERROR_LINE_TOO_LONG, NULL},
        {"stuffed line measured unstuffed", "..2345\r\n.\r\n", 0, REJ, ALL, true, DATA_OK,
         ".2345\r\n"},
        {"long line later", "a\r\nb\r\n1234567890\r\n.\r\n", 0, REJ, ALL, true,
         DATA_ERROR_LINE_TOO_LONG, NULL},
        {"normalized bare LF ends a line", "12345\n12345\r\n.\r\n", 0, NRM, ALL, true, DATA_OK,
         "12345\r\n12345\r\n"},
        {"bare CR before the long line wins", "1\r234567\r\n.\r\n", 0, REJ, ALL, true,
         DATA_ERROR_BARE_CR, NULL},
        {"long line before the bare CR wins", "123456\r7\r\n.\r\n", 0, REJ, ALL, true,
         DATA_ERROR_LINE_TOO_LONG, NULL},
    };
    run_dot_cases(cases, sizeof cases / sizeof cases[0], &limits);

    /* size and line crossed by the same byte: the size error, whatever the split */
    limits.max_message_size = 5;
    struct run got;
    run_all_ways(MODE_DOT, "123456\r\n.\r\n", 11, &limits, &got);
    check_error("both at once", got.error, DATA_ERROR_TOO_BIG);
    run_free(&got);
    /* the line crosses first */
    limits.max_message_size = 6;
    limits.max_line_length = 3;
    run_all_ways(MODE_DOT, "1234567\r\n.\r\n", 12, &limits, &got);
    check_error("line first", got.error, DATA_ERROR_LINE_TOO_LONG);
    run_free(&got);
    /* the size crosses first */
    limits.max_message_size = 3;
    limits.max_line_length = 6;
    run_all_ways(MODE_DOT, "1234567\r\n.\r\n", 12, &limits, &got);
    check_error("size first", got.error, DATA_ERROR_TOO_BIG);
    run_free(&got);
}

/* ---------------------------------------------------------------- headers */

struct header_case {
    const char *name;
    const char *input;     /* DATA bytes, terminator included */
    enum data_error error;
    size_t count;
    bool separator;
    long long body_offset;
    const char *header;    /* a header name to look up, or NULL */
    const char *value;     /* its first value */
};

/* test_headers - where the header block ends and what it holds */
static void test_headers(void **state)
{
    static const struct header_case cases[] = {
        {"simple", "From: a\r\nSubject: hi\r\n\r\nbody\r\n.\r\n", DATA_OK, 2, true, 24, "subject",
         " hi"},
        {"folded", "Subject: one\r\n two\r\n\tthree\r\nTo: x\r\n\r\nb\r\n.\r\n", DATA_OK, 2, true,
         37, "Subject", " one\r\n two\r\n\tthree"},
        {"empty message", ".\r\n", DATA_OK, 0, false, 0, NULL, NULL},
        {"only the empty line", "\r\n.\r\n", DATA_OK, 0, true, 2, NULL, NULL},
        {"headers, no body, no separator", "Subject: x\r\n.\r\n", DATA_OK, 1, false, 12, "Subject",
         " x"},
        {"headers, separator, empty body", "Subject: x\r\n\r\n.\r\n", DATA_OK, 1, true, 14,
         "Subject", " x"},
        {"no separator: body at first non-header", "Subject: x\r\nhello world\r\n.\r\n", DATA_OK,
         1, false, 12, "Subject", " x"},
        {"no separator: word without colon", "Subject: x\r\nhello\r\n\r\nmore\r\n.\r\n", DATA_OK,
         1, false, 12, "Subject", " x"},
        {"no headers at all", "hello\r\n.\r\n", DATA_OK, 0, false, 0, NULL, NULL},
        {"continuation first is body", " x: y\r\nA: b\r\n.\r\n", DATA_OK, 0, false, 0, NULL, NULL},
        {"space before colon is body", "Subject : x\r\n.\r\n", DATA_OK, 0, false, 0, NULL, NULL},
        {"empty name is body", ": x\r\n.\r\n", DATA_OK, 0, false, 0, NULL, NULL},
        {"8-bit name is body", "A: b\r\nCaf\xc3\xa9: x\r\n.\r\n", DATA_OK, 1, false, 6, "A", " b"},
        {"stuffed header line", "..X: y\r\n\r\n.\r\n", DATA_OK, 1, true, 9, ".X", " y"},
        {"colon in value", "Date: 10:00\r\n\r\n.\r\n", DATA_OK, 1, true, 15, "date", " 10:00"},
        {"empty value", "X:\r\n\r\n.\r\n", DATA_OK, 1, true, 6, "x", ""},
        {"separator with spaces is a continuation", "A: b\r\n \r\nc\r\n.\r\n", DATA_OK, 1, false,
         9, "A", " b\r\n "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct header_case *c = &cases[i];
        struct data_limits limits = limits_default(REJ);
        struct run got;
        run_all_ways(MODE_DOT, c->input, strlen(c->input), &limits, &got);
        char what[256];
        snprintf(what, sizeof what, "%s: error", c->name);
        check_error(what, got.error, c->error);
        snprintf(what, sizeof what, "%s: header count", c->name);
        check_number(what, got.header_count, c->count);
        snprintf(what, sizeof what, "%s: separator", c->name);
        check_number(what, got.has_separator, c->separator);
        snprintf(what, sizeof what, "%s: body offset", c->name);
        check_number(what, (unsigned long long)got.body_offset, (unsigned long long)c->body_offset);
        if (c->header != NULL) {
            struct header_list list;
            headers_init(&list);
            assert_int_equal(headers_parse(&list, got.headers, got.headers_length, 1000, NULL), 0);
            const char *value = headers_get(&list, c->header, 0);
            snprintf(what, sizeof what, "%s: value of %s", c->name, c->header);
            if (value == NULL)
                fail_msg("%s: got none, want \"%s\"", what, c->value);
            check_bytes(what, value, strlen(value), c->value, strlen(c->value));
            headers_clear(&list);
        }
        run_free(&got);
    }
}

/* test_header_limits - max_header_size and max_header_count */
static void test_header_limits(void **state)
{
    struct data_limits limits = limits_default(REJ);
    limits.max_header_size = 24;
    limits.max_header_count = 2;
    static const struct {
        const char *name;
        const char *input;
        enum data_error error;
        size_t count;
        long long body_offset;
    } cases[] = {
        {"exactly the size", "Subject: 1234567890123\r\n\r\nb\r\n.\r\n", DATA_OK, 1, 26},
        {"one byte over", "Subject: 12345678901234\r\n\r\nb\r\n.\r\n", DATA_ERROR_HEADERS, 0, 0},
        {"over in a continuation", "A: 1\r\nB: 2\r\n 3456789012345\r\n\r\n.\r\n",
         DATA_ERROR_HEADERS, 0, 0},
        {"exactly the count", "A: 1\r\nB: 2\r\n\r\n.\r\n", DATA_OK, 2, 14},
        {"one header too many", "A: 1\r\nB: 2\r\nC: 3\r\n\r\n.\r\n", DATA_ERROR_HEADERS, 0, 0},
        {"continuations do not count", "A: 1\r\n 2\r\nB: 2\r\n\r\n.\r\n", DATA_OK, 2, 18},
        {"long body line without colon is body", "A: 1\r\nabcdefghijklmnopqrstuvwxyz\r\n.\r\n",
         DATA_OK, 1, 6},
        {"long name that is a header", "A: 1\r\nabcdefghijklmnopqrstuvwxyz: x\r\n.\r\n",
         DATA_ERROR_HEADERS, 0, 0},
        {"a big body is fine", "A: 1\r\n\r\n0123456789012345678901234567890123456789\r\n.\r\n",
         DATA_OK, 1, 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run got;
        run_all_ways(MODE_DOT, cases[i].input, strlen(cases[i].input), &limits, &got);
        char what[256];
        snprintf(what, sizeof what, "%s: error", cases[i].name);
        check_error(what, got.error, cases[i].error);
        if (cases[i].error == DATA_OK) {
            snprintf(what, sizeof what, "%s: count", cases[i].name);
            check_number(what, got.header_count, cases[i].count);
            snprintf(what, sizeof what, "%s: body offset", cases[i].name);
            check_number(what, (unsigned long long)got.body_offset,
                         (unsigned long long)cases[i].body_offset);
        }
        run_free(&got);
    }
}

/* test_headers_done_early - the header block is known before the body has arrived */
static void test_headers_done_early(void **state)
{
    FILE *file = tmpfile();
    assert_non_null(file);
    struct data_limits limits = limits_default(REJ);
    struct data_reader *r = data_reader_new(&limits, fileno(file));
    bool done = false;
    const char *head = "From: a\r\nSubject: x\r\n";
    data_reader_feed_dot(r, head, strlen(head), &done);
    assert_false(data_reader_headers_done(r));
    check_number("no headers yet", data_reader_headers(r)->count, 0);
    data_reader_feed_dot(r, "\r", 1, &done);
    assert_false(data_reader_headers_done(r));
    data_reader_feed_dot(r, "\n", 1, &done);
    assert_true(data_reader_headers_done(r));
    assert_true(data_reader_has_separator(r));
    check_number("headers after the empty line", data_reader_headers(r)->count, 2);
    check_number("body offset", (unsigned long long)data_reader_body_offset(r), 23);
    const char *rest = "body\r\n.\r\n";
    check_number("rest consumed", data_reader_feed_dot(r, rest, strlen(rest), &done), 9);
    assert_true(done);
    check_error("finish", data_reader_finish(r), DATA_OK);
    data_reader_free(r);
    fclose(file);
}

/* test_body_offset_base - offsets count from where the fd was when the reader was made */
static void test_body_offset_base(void **state)
{
    FILE *file = tmpfile();
    assert_non_null(file);
    int fd = fileno(file);
    assert_int_equal(write(fd, "PREFIX", 6), 6);
    struct data_limits limits = limits_default(REJ);
    struct data_reader *r = data_reader_new(&limits, fd);
    bool done = false;
    const char *input = "A: b\r\n\r\nbody\r\n.\r\n";
    data_reader_feed_dot(r, input, strlen(input), &done);
    assert_true(done);
    check_error("finish", data_reader_finish(r), DATA_OK);
    check_number("body offset after a prefix", (unsigned long long)data_reader_body_offset(r), 14);
    size_t length;
    char *spool = read_all(fd, &length);
    check_bytes("spool after a prefix", spool, length, "PREFIXA: b\r\n\r\nbody\r\n", 20);
    free(spool);
    data_reader_free(r);
    fclose(file);
}

/* test_normalized_headers - bare line ends in the header block are normalised before parsing */
static void test_normalized_headers(void **state)
{
    struct data_limits limits = limits_default(NRM);
    struct run got;
    const char *input = "Subject: a\n b\nFrom: c\n\nbody\n.\r\n";
    /* "body\n.\r\n" is not an end: the dot follows a bare LF */
    run_all_ways(MODE_DOT, input, strlen(input), &limits, &got);
    check_number("not ended by a bare-LF dot line", got.done, false);
    run_free(&got);
    input = "Subject: a\n b\nFrom: c\n\nbody\r\n.\r\n";
    run_all_ways(MODE_DOT, input, strlen(input), &limits, &got);
    check_error("normalized", got.error, DATA_OK);
    const char *want = "Subject: a\r\n b\r\nFrom: c\r\n\r\nbody\r\n";
    check_bytes("normalized spool", got.spool, got.spool_length, want, strlen(want));
    check_number("normalized header count", got.header_count, 2);
    check_bytes("normalized headers", got.headers, got.headers_length,
                "Subject: a\r\n b\r\nFrom: c\r\n", 25);
    run_free(&got);
}

/* ---------------------------------------------------------------- BDAT */

/* feed_chunks - feed a list of chunks and finish */
static enum data_error feed_chunks(const char *const *chunks, size_t count,
                                   const struct data_limits *limits, struct run *out)
{
    FILE *file = tmpfile();
    assert_non_null(file);
    struct data_reader *r = data_reader_new(limits, fileno(file));
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < count; i++) {
        data_reader_feed_chunk(r, chunks[i], strlen(chunks[i]));
        out->consumed += strlen(chunks[i]);
    }
    out->error = data_reader_finish(r);
    out->spool = read_all(fileno(file), &out->spool_length);
    out->size = data_reader_size(r);
    out->headers_done = data_reader_headers_done(r);
    out->has_separator = data_reader_has_separator(r);
    out->body_offset = (long long)data_reader_body_offset(r);
    out->header_count = data_reader_headers(r)->count;
    out->headers = headers_render(data_reader_headers(r), &out->headers_length);
    data_reader_free(r);
    fclose(file);
    check_reconstruction("chunks", out);
    return out->error;
}

/* test_bdat - chunks concatenate; the rules hold across chunk boundaries; no dot handling */
static void test_bdat(void **state)
{
    static const struct {
        const char *name;
        const char *chunks[4];
        enum data_bare_policy policy;
        enum data_error error;
        const char *spool;
        size_t header_count;
        bool separator;
    } cases[] = {
        {"CRLF across chunks", {"Subject: x\r", "\n\r\nbody", "\r\n", NULL}, REJ, DATA_OK,
         "Subject: x\r\n\r\nbody\r\n", 1, true},
        {"dots are data", {"a\r\n.\r\n", "..b\r\n", NULL}, REJ, DATA_OK, "a\r\n.\r\n..b\r\n", 0,
         false},
        {"bare CR across chunks (reject)", {"a\r", "b\r\n", NULL}, REJ, DATA_ERROR_BARE_CR, NULL,
         0, false},
        {"bare CR across chunks (normalize)", {"A: a\r", "b\r\n", NULL}, NRM, DATA_OK,
         "A: a\r\nb\r\n", 1, false},
        {"CR ends the last chunk (reject)", {"a\r\n", "b\r", NULL}, REJ, DATA_ERROR_BARE_CR, NULL,
         0, false},
        {"CR ends the last chunk (normalize)", {"a\r\n", "b\r", NULL}, NRM, DATA_OK,
         "a\r\nb\r\n", 0, false},
        {"bare LF at chunk start", {"a\r\n", "\nb\r\n", NULL}, REJ, DATA_ERROR_BARE_LF, NULL, 0,
         false},
        {"no final CRLF: partial line is body", {"A: b\r\n", "Subject: x", NULL}, REJ, DATA_OK,
         "A: b\r\nSubject: x", 1, false},
        {"no final CRLF, no header", {"Subject: x", NULL}, REJ, DATA_OK, "Subject: x", 0, false},
        {"empty", {NULL}, REJ, DATA_OK, "", 0, false},
        {"empty chunks", {"", "A: b\r\n", "", NULL}, REJ, DATA_OK, "A: b\r\n", 1, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct data_limits limits = limits_default(cases[i].policy);
        size_t count = 0;
        while (count < 4 && cases[i].chunks[count] != NULL)
            count++;
        struct run got;
        char what[256];
        feed_chunks(cases[i].chunks, count, &limits, &got);
        snprintf(what, sizeof what, "%s: error", cases[i].name);
        check_error(what, got.error, cases[i].error);
        if (cases[i].error == DATA_OK) {
            snprintf(what, sizeof what, "%s: spool", cases[i].name);
            check_bytes(what, got.spool, got.spool_length, cases[i].spool, strlen(cases[i].spool));
            snprintf(what, sizeof what, "%s: header count", cases[i].name);
            check_number(what, got.header_count, cases[i].header_count);
            snprintf(what, sizeof what, "%s: separator", cases[i].name);
            check_number(what, got.has_separator, cases[i].separator);
        }
        /* the same bytes in one chunk, byte by byte and in random splits agree */
        char joined[256];
        size_t length = 0;
        for (size_t j = 0; j < count; j++) {
            memcpy(joined + length, cases[i].chunks[j], strlen(cases[i].chunks[j]));
            length += strlen(cases[i].chunks[j]);
        }
        struct run all;
        run_all_ways(MODE_CHUNK, joined, length, &limits, &all);
        snprintf(what, sizeof what, "%s: as listed vs whole", cases[i].name);
        check_same_run(what, &got, &all);
        run_free(&all);
        run_free(&got);
    }

    /* a NUL (strlen cannot carry it) and a line too long across chunks */
    struct data_limits limits = limits_default(REJ);
    struct run got;
    run_all_ways(MODE_CHUNK, "a\r\nb\0c\r\n", 8, &limits, &got);
    check_error("NUL in BDAT", got.error, DATA_ERROR_NUL);
    run_free(&got);
    limits.max_line_length = 5;
    const char *const long_line[] = {"123", "456\r\n"};
    feed_chunks(long_line, 2, &limits, &got);
    check_error("line across chunks", got.error, DATA_ERROR_LINE_TOO_LONG);
    run_free(&got);
    const char *const fits[] = {"123", "45\r\n"};
    feed_chunks(fits, 2, &limits, &got);
    check_error("line that fits across chunks", got.error, DATA_OK);
    run_free(&got);
    limits.max_message_size = 4;
    const char *const too_big[] = {"12", "345"};
    feed_chunks(too_big, 2, &limits, &got);
    check_error("size across chunks", got.error, DATA_ERROR_TOO_BIG);
    check_number("size across chunks: size", got.size, 5);
    run_free(&got);
}

/* ---------------------------------------------------------------- big messages and I/O */

/* test_large_message - a message far larger than the write buffer comes out intact */
static void test_large_message(void **state)
{
    size_t lines = 20000; /* about 1.6 MB, many write-buffer blocks */
    size_t length = 0;
    char *input = malloc(lines * 82 + 64);
    char *want = malloc(lines * 82 + 64);
    assert_non_null(input);
    assert_non_null(want);
    size_t want_length = 0;
    memcpy(input, "Subject: big\r\n\r\n", 16);
    memcpy(want, "Subject: big\r\n\r\n", 16);
    length = want_length = 16;
    for (size_t i = 0; i < lines; i++) {
        char line[96];
        int n = snprintf(line, sizeof line, "%s%06zu %s\r\n", i % 7 == 0 ? "." : "", i,
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.....");
        memcpy(input + length, i % 7 == 0 ? "." : "", i % 7 == 0 ? 1 : 0);
        length += i % 7 == 0 ? 1 : 0;
        memcpy(input + length, line, (size_t)n);
        length += (size_t)n;
        memcpy(want + want_length, line, (size_t)n);
        want_length += (size_t)n;
    }
    memcpy(input + length, ".\r\nQUIT\r\n", 9);
    length += 9;
    struct data_limits limits = limits_default(REJ);
    struct run got;
    run_once(MODE_DOT, input, length, &limits, SPLIT_WHOLE, 0, &got);
    check_error("large", got.error, DATA_OK);
    check_number("large: consumed", got.consumed, length - 6);
    check_number("large: size", got.size, want_length);
    if (got.spool_length != want_length || memcmp(got.spool, want, want_length) != 0)
        fail_msg("large: spool differs (got %zu bytes, want %zu)", got.spool_length, want_length);
    run_free(&got);
    run_once(MODE_DOT, input, length, &limits, SPLIT_RANDOM, 99, &got);
    check_error("large, random split", got.error, DATA_OK);
    if (got.spool_length != want_length || memcmp(got.spool, want, want_length) != 0)
        fail_msg("large, split: spool differs (got %zu bytes, want %zu)", got.spool_length,
                 want_length);
    run_free(&got);
    free(input);
    free(want);
}

/* feed_to_fd - one whole message to a reader on fd; returns finish's result */
static enum data_error feed_to_fd(int fd, size_t body_bytes, enum data_error *before_finish)
{
    struct data_limits limits = limits_default(REJ);
    struct data_reader *r = data_reader_new(&limits, fd);
    bool done = false;
    const char *head = "Subject: x\r\n\r\n";
    data_reader_feed_dot(r, head, strlen(head), &done);
    char line[82];
    memset(line, 'x', 80);
    line[80] = '\r';
    line[81] = '\n';
    for (size_t sent = 0; sent < body_bytes; sent += sizeof line)
        data_reader_feed_dot(r, line, sizeof line, &done);
    data_reader_feed_dot(r, ".\r\n", 3, &done);
    assert_true(done);
    *before_finish = data_reader_error(r);
    enum data_error e = data_reader_finish(r);
    data_reader_free(r);
    return e;
}

/* test_io_errors - write failures become DATA_ERROR_IO, never a crash or a silent loss */
static void test_io_errors(void **state)
{
    enum data_error early;
    /* /dev/full: ENOSPC, found at finish for a small message */
    int fd = open("/dev/full", O_WRONLY);
    if (fd >= 0) {
        check_error("/dev/full small", feed_to_fd(fd, 100, &early), DATA_ERROR_IO);
        check_error("/dev/full small, before finish", early, DATA_OK);
        /* and during the feed for a message larger than the write buffer */
        check_error("/dev/full large", feed_to_fd(fd, 200 * 1024, &early), DATA_ERROR_IO);
        check_error("/dev/full large, before finish", early, DATA_ERROR_IO);
        close(fd);
    } else {
        print_message("skipping /dev/full: %s\n", strerror(errno));
    }

    /* a closed descriptor: EBADF */
    fd = open("/dev/null", O_WRONLY);
    assert_true(fd >= 0);
    close(fd);
    check_error("closed fd", feed_to_fd(fd, 100, &early), DATA_ERROR_IO);

    /* a pipe whose reader is gone: EPIPE (SIGPIPE ignored, as the daemon does) */
    void (*previous)(int) = signal(SIGPIPE, SIG_IGN);
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    close(pipe_fds[0]);
    check_error("pipe without reader", feed_to_fd(pipe_fds[1], 100, &early), DATA_ERROR_IO);
    close(pipe_fds[1]);
    signal(SIGPIPE, previous);

    /* a working fd for contrast */
    FILE *file = tmpfile();
    assert_non_null(file);
    check_error("working fd", feed_to_fd(fileno(file), 200 * 1024, &early), DATA_OK);
    fclose(file);
}

/* test_error_names_replies - every error has a name and a sensible reply */
static void test_error_names_replies(void **state)
{
    for (int e = 0; e < DATA_ERROR_COUNT; e++) {
        const char *name = data_error_name((enum data_error)e);
        assert_non_null(name);
        if (strcmp(name, "unknown") == 0)
            fail_msg("error %d: got name \"unknown\", want a real name", e);
        for (int f = 0; f < e; f++)
            if (strcmp(name, data_error_name((enum data_error)f)) == 0)
                fail_msg("errors %d and %d: got the same name \"%s\", want distinct", e, f, name);
        int code = 0;
        const char *enhanced = NULL, *text = NULL;
        data_error_reply((enum data_error)e, &code, &enhanced, &text);
        assert_non_null(enhanced);
        assert_non_null(text);
        int want_class = e == DATA_OK ? 2 : e == DATA_ERROR_IO ? 4 : 5;
        if (code / 100 != want_class || enhanced[0] != '0' + want_class)
            fail_msg("%s: got %d %s, want class %d", name, code, enhanced, want_class);
        if (code != 250 && code != 451 && code != 552 && code != 554)
            fail_msg("%s: got code %d, want one RFC 5321 allows after DATA", name, code);
    }
    static const struct {
        enum data_error e;
        int code;
        const char *enhanced;
    } expected[] = {
        {DATA_ERROR_TOO_BIG, 552, "5.3.4"},  {DATA_ERROR_LINE_TOO_LONG, 554, "5.5.2"},
        {DATA_ERROR_BARE_LF, 554, "5.6.2"},  {DATA_ERROR_BARE_CR, 554, "5.6.2"},
        {DATA_ERROR_NUL, 554, "5.6.0"},      {DATA_ERROR_HEADERS, 554, "5.6.0"},
        {DATA_ERROR_IO, 451, "4.3.0"},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        int code;
        const char *enhanced, *text;
        data_error_reply(expected[i].e, &code, &enhanced, &text);
        if (code != expected[i].code || strcmp(enhanced, expected[i].enhanced) != 0)
            fail_msg("%s: got %d %s, want %d %s", data_error_name(expected[i].e), code, enhanced,
                     expected[i].code, expected[i].enhanced);
    }
    check_bytes("name of out of range", data_error_name(DATA_ERROR_COUNT), 7, "unknown", 7);
    int code;
    const char *enhanced, *text;
    data_error_reply(DATA_ERROR_COUNT, &code, &enhanced, &text);
    check_number("out of range is temporary", (unsigned long long)code, 451);
}

/* test_free_null - data_reader_free accepts NULL; a reader freed unfinished leaks nothing */
static void test_free_null(void **state)
{
    data_reader_free(NULL);
    struct data_limits limits = limits_default(REJ);
    struct data_reader *r = data_reader_new(&limits, -1);
    bool done;
    data_reader_feed_dot(r, "A: b\r\nC: d", 10, &done);
    data_reader_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_termination),
        cmocka_unit_test(test_unstuffing),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_smuggling),
        cmocka_unit_test(test_terminator_every_split),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_headers_done_early),
        cmocka_unit_test(test_body_offset_base),
        cmocka_unit_test(test_normalized_headers),
        cmocka_unit_test(test_bdat),
        cmocka_unit_test(test_large_message),
        cmocka_unit_test(test_io_errors),
        cmocka_unit_test(test_error_names_replies),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
