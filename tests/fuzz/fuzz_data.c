/*
 * fuzz_data.c - libFuzzer target for the DATA/BDAT reader (gateway/data.c) and, through it,
 * the header parser and renderer (gateway/headers.c).
 *
 * Input: byte 0 chooses the mode (DATA or BDAT), the bare policy and a limits profile; bytes
 * 1..3 seed the split generator; the rest is the wire data. Each input is fed twice, in random
 * splits and whole, to a temporary spool file, and the target aborts when:
 *   - feed_dot consumes more than it was given, or stops early without done;
 *   - the two runs disagree (consumed, done, error, size, spool, headers, body offset);
 *   - the DATA end differs from a plain reference scan (the first CRLF "." CRLF, or "." CRLF
 *     at the very start): consumed past the terminator, or stopped at a fake one;
 *   - with unbounded limits, the error or the spool differ from a simple byte-at-a-time
 *     reference of unstuffing and normalising (so nothing past the terminator is written);
 *   - an accepted message is not exactly headers_render + separator + body;
 *   - the rendered headers do not parse back to the same bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"
#include "headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Everything one run produced. */
struct fuzz_run {
    size_t consumed;
    bool done;
    enum data_error error;
    unsigned long long size;
    char *spool;
    size_t spool_length;
    char *headers;
    size_t headers_length;
    bool headers_done;
    bool separator;
    off_t body_offset;
};

#define FUZZ_CHECK(condition)                                                                    \
    do {                                                                                         \
        if (!(condition)) {                                                                      \
            fprintf(stderr, "fuzz_data: check failed: %s (line %d)\n", #condition, __LINE__);    \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

static int fuzz_spool_fd = -1;

/* fuzz_spool - the temporary spool, emptied for each run */
static int fuzz_spool(void)
{
    if (fuzz_spool_fd < 0) {
        FILE *file = tmpfile();
        FUZZ_CHECK(file != NULL);
        fuzz_spool_fd = fileno(file); /* kept open for the life of the process */
    }
    FUZZ_CHECK(ftruncate(fuzz_spool_fd, 0) == 0);
    FUZZ_CHECK(lseek(fuzz_spool_fd, 0, SEEK_SET) == 0);
    return fuzz_spool_fd;
}

/* fuzz_read_spool - the spool's bytes */
static char *fuzz_read_spool(int fd, size_t *length)
{
    struct stat st;
    FUZZ_CHECK(fstat(fd, &st) == 0);
    char *bytes = malloc((size_t)st.st_size + 1);
    FUZZ_CHECK(bytes != NULL);
    FUZZ_CHECK(pread(fd, bytes, (size_t)st.st_size, 0) == st.st_size);
    *length = (size_t)st.st_size;
    return bytes;
}

static uint32_t fuzz_random(uint32_t *seed)
{
    *seed = *seed * 1664525u + 1013904223u;
    return *seed >> 8;
}

/* fuzz_feed - one run; seed 0 feeds everything at once */
static void fuzz_feed(bool dot, const struct data_limits *limits, const char *bytes, size_t length,
                      uint32_t seed, struct fuzz_run *out)
{
    int fd = fuzz_spool();
    struct data_reader *r = data_reader_new(limits, fd);
    size_t offset = 0;
    bool done = false;
    memset(out, 0, sizeof *out);
    while (offset < length && !done) {
        size_t piece = length - offset;
        if (seed != 0) {
            size_t limit = (fuzz_random(&seed) & 1) ? 8 : piece;
            piece = 1 + fuzz_random(&seed) % limit;
            if (piece > length - offset)
                piece = length - offset;
        }
        if (dot) {
            size_t consumed = data_reader_feed_dot(r, bytes + offset, piece, &done);
            FUZZ_CHECK(consumed <= piece);
            FUZZ_CHECK(done || consumed == piece);
            offset += consumed;
        } else {
            data_reader_feed_chunk(r, bytes + offset, piece);
            offset += piece;
        }
    }
    if (dot && done) {
        bool again = false;
        FUZZ_CHECK(data_reader_feed_dot(r, "x", 1, &again) == 0 && again);
    }
    out->consumed = offset;
    out->done = done;
    out->error = data_reader_finish(r);
    FUZZ_CHECK(out->error >= DATA_OK && out->error < DATA_ERROR_COUNT);
    out->size = data_reader_size(r);
    out->spool = fuzz_read_spool(fd, &out->spool_length);
    out->headers = headers_render(data_reader_headers(r), &out->headers_length);
    out->headers_done = data_reader_headers_done(r);
    out->separator = data_reader_has_separator(r);
    out->body_offset = data_reader_body_offset(r);
    data_reader_free(r);
}

static void fuzz_run_free(struct fuzz_run *run)
{
    free(run->spool);
    free(run->headers);
}

/* fuzz_terminator - where a plain scan says DATA ends (bytes consumed), or SIZE_MAX */
static size_t fuzz_terminator(const char *bytes, size_t length)
{
    for (size_t i = 0; i + 3 <= length; i++) {
        bool line_start = i == 0 || (i >= 2 && bytes[i - 2] == '\r' && bytes[i - 1] == '\n');
        if (line_start && memcmp(bytes + i, ".\r\n", 3) == 0)
            return i + 3;
    }
    return SIZE_MAX;
}

/*
 * fuzz_reference - the message a byte-at-a-time reading of data.h's rules gives for the
 * bytes before the terminator (message, length m): the spool under unbounded limits and the
 * first error. out must hold 2 * m bytes.
 */
static enum data_error fuzz_reference(bool dot, enum data_bare_policy policy, const char *m,
                                      size_t length, char *out, size_t *out_length)
{
    enum data_error first = DATA_OK;
    size_t used = 0;
    bool line_start = true;
    for (size_t j = 0; j < length;) {
        char c = m[j];
        if (dot && line_start && c == '.') {
            line_start = false;
            char next = j + 1 < length ? m[j + 1] : '\0';
            if (next == '\r' || next == '\n')
                out[used++] = '.'; /* ".\r" (not LF next) or ".\n": the dot is data */
            j++;
            continue;
        }
        line_start = false;
        if (c == '\r' && j + 1 < length && m[j + 1] == '\n') {
            out[used++] = '\r';
            out[used++] = '\n';
            j += 2;
            line_start = true;
            continue;
        }
        if (c == '\r' || c == '\n') {
            if (policy == DATA_BARE_NORMALIZE) {
                out[used++] = '\r';
                out[used++] = '\n';
            } else if (first == DATA_OK) {
                first = c == '\r' ? DATA_ERROR_BARE_CR : DATA_ERROR_BARE_LF;
            }
        } else if (c == '\0') {
            if (first == DATA_OK)
                first = DATA_ERROR_NUL;
        } else {
            out[used++] = c;
        }
        j++;
    }
    *out_length = used;
    return first;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    const bool dot = (data[0] & 1) == 0;
    const enum data_bare_policy policy = (data[0] & 2) ? DATA_BARE_NORMALIZE : DATA_BARE_REJECT;
    const int profile = (data[0] >> 2) & 3;
    uint32_t seed = ((uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3]) | 1;
    const char *bytes = (const char *)data + 4;
    size_t length = size - 4;

    struct data_limits limits = {
        .max_message_size = ~0ULL,
        .max_line_length = SIZE_MAX,
        .max_header_size = SIZE_MAX,
        .max_header_count = SIZE_MAX,
        .bare_policy = policy,
    };
    if (profile == 1) {
        limits.max_line_length = 1 + data[1] % 40;
        limits.max_message_size = 1 + data[2] % 200;
    } else if (profile == 2) {
        limits.max_header_size = data[1] % 64;
        limits.max_header_count = data[2] % 4;
    } else if (profile == 3) {
        limits.max_message_size = data[1] % 8;
        limits.max_line_length = data[2] % 8;
        limits.max_header_size = data[3] % 16;
        limits.max_header_count = data[3] % 3;
    }

    struct fuzz_run split, whole;
    fuzz_feed(dot, &limits, bytes, length, seed, &split);
    fuzz_feed(dot, &limits, bytes, length, 0, &whole);

    /* split and whole agree */
    FUZZ_CHECK(split.consumed == whole.consumed);
    FUZZ_CHECK(split.done == whole.done);
    FUZZ_CHECK(split.error == whole.error);
    FUZZ_CHECK(split.size == whole.size);
    if (whole.error == DATA_OK) {
        FUZZ_CHECK(split.spool_length == whole.spool_length);
        FUZZ_CHECK(memcmp(split.spool, whole.spool, whole.spool_length) == 0);
        FUZZ_CHECK(split.headers_length == whole.headers_length);
        FUZZ_CHECK(memcmp(split.headers, whole.headers, whole.headers_length) == 0);
        FUZZ_CHECK(split.body_offset == whole.body_offset);
        FUZZ_CHECK(split.separator == whole.separator);
    }

    /* the end of DATA is exactly the first real terminator */
    size_t message_length = length;
    if (dot) {
        size_t end = fuzz_terminator(bytes, length);
        if (end == SIZE_MAX) {
            FUZZ_CHECK(!whole.done && whole.consumed == length);
        } else {
            FUZZ_CHECK(whole.done && whole.consumed == end);
            message_length = end - 3;
        }
    } else {
        FUZZ_CHECK(whole.consumed == length);
    }
    /* nothing past the terminator is ever written: normalising at most doubles the bytes */
    FUZZ_CHECK(whole.spool_length <= 2 * message_length);
    FUZZ_CHECK(whole.size <= 2 * (unsigned long long)message_length);

    /* unbounded limits: the error and the spool are exactly the reference's */
    if (profile == 0 && (whole.done || !dot)) {
        char *expect = malloc(2 * message_length + 1);
        FUZZ_CHECK(expect != NULL);
        size_t expect_length = 0;
        enum data_error want = fuzz_reference(dot, policy, bytes, message_length, expect,
                                              &expect_length);
        FUZZ_CHECK(whole.error == want);
        if (want == DATA_OK) {
            FUZZ_CHECK(whole.spool_length == expect_length);
            FUZZ_CHECK(memcmp(whole.spool, expect, expect_length) == 0);
        }
        free(expect);
    }

    if (whole.error == DATA_OK) {
        /* an accepted message is exactly headers + separator + body */
        FUZZ_CHECK(whole.headers_done);
        FUZZ_CHECK(whole.size == whole.spool_length);
        FUZZ_CHECK(whole.body_offset >= 0 && (size_t)whole.body_offset <= whole.spool_length);
        size_t body = whole.spool_length - (size_t)whole.body_offset;
        size_t separator = whole.separator ? 2 : 0;
        FUZZ_CHECK(whole.headers_length + separator + body == whole.spool_length);
        FUZZ_CHECK(memcmp(whole.spool, whole.headers, whole.headers_length) == 0);
        if (separator)
            FUZZ_CHECK(memcmp(whole.spool + whole.headers_length, "\r\n", 2) == 0);

        /* and the rendered block parses back to the same bytes */
        struct header_list list;
        const char *problem = NULL;
        headers_init(&list);
        FUZZ_CHECK(headers_parse(&list, whole.headers, whole.headers_length, SIZE_MAX, &problem) == 0);
        size_t again_length;
        char *again = headers_render(&list, &again_length);
        FUZZ_CHECK(again_length == whole.headers_length);
        FUZZ_CHECK(memcmp(again, whole.headers, again_length) == 0);
        free(again);
        headers_clear(&list);
    }

    fuzz_run_free(&split);
    fuzz_run_free(&whole);
    return 0;
}
