/*
 * data.c - the DATA/BDAT reader (see data.h for the rules it enforces).
 *
 * Interface: data_reader_new, data_reader_feed_dot / data_reader_feed_chunk, data_reader_finish,
 * the accessors, data_error_name and data_error_reply.
 *
 * Two layers. The transport layer (data_reader_consume) reads the wire bytes: it finds line
 * ends, the terminator and stuffing dots, and classifies CR, LF and NUL. It hands the message
 * layer only two kinds of events: a run of text bytes (never CR, LF or NUL) and a line end
 * (CRLF). The message layer counts the size and line length, writes to the spool through a
 * fixed buffer, and follows the header block. Because the message layer never sees a raw CR or
 * LF, every line the header parser and the spool see ends in exactly CRLF.
 *
 * The common path is a run of text: the transport finds the next LF, CR and NUL with memchr
 * and remembers where they are for the rest of the call, so each input byte is scanned at most
 * once per kind whatever the input (no quadratic rescans on inputs full of bare CRs or NULs).
 *
 * Fatal: out of memory; an internal inconsistency (feed after finish, mixed modes) aborts with
 * file and line. Write errors are not fatal: they become DATA_ERROR_IO. The reader owns its
 * buffers and header list; the fd is borrowed.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "memory.h"

/* Where the transport is on the wire. */
enum data_state {
    DATA_STATE_LINE_START, /* at a wire line start (DATA start or just after CRLF) */
    DATA_STATE_DOT,        /* "." at a wire line start; its fate depends on the next byte */
    DATA_STATE_DOT_CR,     /* "." CR at a wire line start; LF next ends DATA */
    DATA_STATE_TEXT,       /* inside a line (also: after a bare CR or LF) */
    DATA_STATE_CR,         /* a CR whose next byte is not known yet */
    DATA_STATE_DONE,       /* the terminator was consumed (DATA only) */
    DATA_STATE_COUNT
};

enum data_mode { DATA_MODE_UNSET, DATA_MODE_DOT, DATA_MODE_CHUNK, DATA_MODE_COUNT };

/* What the current line of the header block is, as far as its bytes so far tell. */
enum data_header_line {
    DATA_HEADER_LINE_START, /* nothing of the line seen yet */
    DATA_HEADER_LINE_NAME,  /* one or more name characters, no colon yet */
    DATA_HEADER_LINE_VALUE, /* a header (colon seen) or a continuation line */
    DATA_HEADER_LINE_COUNT
};

struct data_reader {
    struct data_limits limits;
    int fd;
    off_t base_offset; /* the fd's position when the reader was made */
    enum data_mode mode;
    enum data_state state;
    bool ended;    /* the message has ended (terminator or finish) */
    bool finished; /* data_reader_finish ran */
    enum data_error error;
    unsigned long long size;
    size_t line_length;

    /* header block */
    bool header_phase; /* still inside the header block */
    bool headers_done;
    bool has_separator;
    enum data_header_line header_line;
    bool name_overflow;       /* the current line's name did not fit in max_header_size */
    char *header_block;       /* the header lines seen so far, CRLFs included */
    size_t header_used;       /* bytes stored in header_block */
    size_t header_capacity;   /* bytes allocated for header_block */
    size_t header_line_start; /* bytes of complete header lines (the current line starts here) */
    size_t header_count;
    off_t body_offset;
    struct header_list headers;

    /* spool output */
    size_t out_used;
    char out[DATA_WRITE_BUFFER_SIZE];
};

static const char *const data_error_names[DATA_ERROR_COUNT] = {
    [DATA_OK] = "ok",
    [DATA_ERROR_TOO_BIG] = "too_big",
    [DATA_ERROR_LINE_TOO_LONG] = "line_too_long",
    [DATA_ERROR_BARE_LF] = "bare_lf",
    [DATA_ERROR_BARE_CR] = "bare_cr",
    [DATA_ERROR_NUL] = "nul",
    [DATA_ERROR_HEADERS] = "headers",
    [DATA_ERROR_IO] = "io",
};

struct data_reply {
    int code;
    const char *enhanced;
    const char *text;
};

/* The reasons for each choice are in data.h. */
static const struct data_reply data_replies[DATA_ERROR_COUNT] = {
    [DATA_OK] = {250, "2.0.0", "Message accepted"},
    [DATA_ERROR_TOO_BIG] = {552, "5.3.4", "Message size exceeds fixed maximum message size"},
    [DATA_ERROR_LINE_TOO_LONG] = {554, "5.5.2", "Message contains a line that is too long"},
    [DATA_ERROR_BARE_LF] = {554, "5.6.2",
                            "Message contains a bare LF; lines must end in CRLF (RFC 5321 2.3.8)"},
    [DATA_ERROR_BARE_CR] = {554, "5.6.2",
                            "Message contains a bare CR; lines must end in CRLF (RFC 5321 2.3.8)"},
    [DATA_ERROR_NUL] = {554, "5.6.0", "Message contains NUL characters"},
    [DATA_ERROR_HEADERS] = {554, "5.6.0", "Message header block is malformed or too large"},
    [DATA_ERROR_IO] = {451, "4.3.0", "Local error in processing, try again later"},
};

const char *data_error_name(enum data_error e)
{
    if ((unsigned)e >= DATA_ERROR_COUNT)
        return "unknown";
    return data_error_names[e];
}

void data_error_reply(enum data_error e, int *code, const char **enhanced, const char **text)
{
    const struct data_reply *reply =
        (unsigned)e < DATA_ERROR_COUNT ? &data_replies[e] : &data_replies[DATA_ERROR_IO];
    *code = reply->code;
    *enhanced = reply->enhanced;
    *text = reply->text;
}

/* data_bug - an internal inconsistency: the caller broke the contract */
static void data_bug(const char *file, int line, const char *what)
{
    fprintf(stderr, "porter: fatal: %s:%d: data reader: %s\n", file, line, what);
    abort();
}
#define DATA_BUG(what) data_bug(__FILE__, __LINE__, (what))

struct data_reader *data_reader_new(const struct data_limits *limits, int spool_fd)
{
    if (limits == NULL)
        DATA_BUG("no limits");
    /* Everything zeroed but the write buffer (64 KiB, filled before it is read): zeroing it
     * touched every page of it for every message. */
    struct data_reader *r = xmalloc(sizeof *r);
    memset(r, 0, offsetof(struct data_reader, out));
    r->limits = *limits;
    r->fd = spool_fd;
    r->base_offset = lseek(spool_fd, 0, SEEK_CUR);
    if (r->base_offset < 0)
        r->base_offset = 0;
    r->mode = DATA_MODE_UNSET;
    r->state = DATA_STATE_LINE_START;
    r->error = DATA_OK;
    r->header_phase = true;
    r->header_line = DATA_HEADER_LINE_START;
    r->body_offset = r->base_offset;
    headers_init(&r->headers);
    return r;
}

void data_reader_free(struct data_reader *r)
{
    if (r == NULL)
        return;
    headers_clear(&r->headers);
    free(r->header_block);
    free(r);
}

/* data_fail - record an error; only the first one counts */
static void data_fail(struct data_reader *r, enum data_error e)
{
    if (r->error == DATA_OK)
        r->error = e;
}

/* data_write_all - write every byte to the fd, retrying on EINTR and short writes */
static int data_write_all(int fd, const char *bytes, size_t length)
{
    while (length > 0) {
        ssize_t written = write(fd, bytes, length);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return -1;
        bytes += written;
        length -= (size_t)written;
    }
    return 0;
}

/* data_output_flush - write the buffer to the spool */
static void data_output_flush(struct data_reader *r)
{
    if (r->out_used > 0 && data_write_all(r->fd, r->out, r->out_used) != 0)
        data_fail(r, DATA_ERROR_IO);
    r->out_used = 0;
}

/* data_output_append - message bytes for the spool, through the fixed buffer */
static void data_output_append(struct data_reader *r, const char *bytes, size_t length)
{
    while (length > 0 && r->error == DATA_OK) {
        if (r->out_used == 0 && length >= sizeof r->out) {
            /* a whole block or more: skip the copy */
            if (data_write_all(r->fd, bytes, length) != 0)
                data_fail(r, DATA_ERROR_IO);
            return;
        }
        size_t room = sizeof r->out - r->out_used;
        size_t take = length < room ? length : room;
        memcpy(r->out + r->out_used, bytes, take);
        r->out_used += take;
        bytes += take;
        length -= take;
        if (r->out_used == sizeof r->out)
            data_output_flush(r);
    }
}

/* data_header_store - keep header bytes; more than max_header_size is an error */
static void data_header_store(struct data_reader *r, const char *bytes, size_t length)
{
    if (length > r->limits.max_header_size - r->header_used) {
        data_fail(r, DATA_ERROR_HEADERS);
        return;
    }
    if (r->header_used + length > r->header_capacity) {
        size_t capacity = r->header_capacity ? r->header_capacity : 1024;
        while (capacity < r->header_used + length)
            capacity = capacity > SIZE_MAX / 2 ? SIZE_MAX : capacity * 2;
        if (capacity > r->limits.max_header_size)
            capacity = r->limits.max_header_size;
        r->header_block = xrealloc(r->header_block, capacity);
        r->header_capacity = capacity;
    }
    memcpy(r->header_block + r->header_used, bytes, length);
    r->header_used += length;
}

/*
 * data_header_close - the header block has ended: with the empty line (separator), or at a line
 * that is not a header, or at the end of the message (no separator). Parses the complete lines.
 */
static void data_header_close(struct data_reader *r, bool separator)
{
    const char *problem = NULL;
    r->header_phase = false;
    if (headers_parse(&r->headers, r->header_block ? r->header_block : "", r->header_line_start,
                      r->limits.max_header_count, &problem) != 0) {
        /* the line classification here and headers_parse disagree: refuse the message */
        data_fail(r, DATA_ERROR_HEADERS);
    } else {
        r->has_separator = separator;
        r->body_offset = r->base_offset + (off_t)r->header_line_start + (separator ? 2 : 0);
        r->headers_done = true;
    }
    free(r->header_block);
    r->header_block = NULL;
    r->header_used = r->header_capacity = 0;
}

/* data_header_name_char - a character allowed in a header name */
static bool data_header_name_char(unsigned char c)
{
    return c >= 33 && c <= 126 && c != ':';
}

/* data_header_text - follow a run of text bytes (no CR, LF, NUL) through the header block */
static void data_header_text(struct data_reader *r, const char *bytes, size_t length)
{
    size_t i = 0;
    while (i < length && r->header_phase && r->error == DATA_OK) {
        unsigned char c = (unsigned char)bytes[i];
        switch (r->header_line) {
        case DATA_HEADER_LINE_START:
            if ((c == ' ' || c == '\t') && r->header_count > 0)
                r->header_line = DATA_HEADER_LINE_VALUE;
            else if (data_header_name_char(c))
                r->header_line = DATA_HEADER_LINE_NAME;
            else
                data_header_close(r, false); /* not a header: the body starts here */
            break;
        case DATA_HEADER_LINE_NAME: {
            size_t j = i;
            while (j < length && data_header_name_char((unsigned char)bytes[j]))
                j++;
            if (!r->name_overflow) {
                if (j - i > r->limits.max_header_size - r->header_used)
                    r->name_overflow = true; /* an error only if this proves to be a header */
                else
                    data_header_store(r, bytes + i, j - i);
            }
            i = j;
            if (i == length)
                break;
            if (bytes[i] != ':') {
                data_header_close(r, false);
            } else if (r->name_overflow || r->header_count >= r->limits.max_header_count) {
                data_fail(r, DATA_ERROR_HEADERS);
            } else {
                r->header_count++;
                r->header_line = DATA_HEADER_LINE_VALUE;
            }
            break;
        }
        case DATA_HEADER_LINE_VALUE:
            data_header_store(r, bytes + i, length - i);
            i = length;
            break;
        default:
            DATA_BUG("bad header line state");
        }
    }
}

/* data_header_line_end - a CRLF while inside the header block */
static void data_header_line_end(struct data_reader *r)
{
    switch (r->header_line) {
    case DATA_HEADER_LINE_START:
        data_header_close(r, true); /* the empty line */
        break;
    case DATA_HEADER_LINE_NAME:
        data_header_close(r, false); /* a line without a colon: the body starts here */
        break;
    case DATA_HEADER_LINE_VALUE:
        data_header_store(r, "\r\n", 2);
        r->header_line_start = r->header_used;
        r->header_line = DATA_HEADER_LINE_START;
        break;
    default:
        DATA_BUG("bad header line state");
    }
}

/*
 * data_message_text - a run of message bytes that holds no CR, LF or NUL. When a limit is
 * crossed inside the run, the bytes before the crossing are handled first, so the error
 * reported depends only on byte positions, never on how the input was split.
 */
static void data_message_text(struct data_reader *r, const char *bytes, size_t length)
{
    unsigned long long size_before = r->size;
    r->size += length;
    if (r->error != DATA_OK)
        return;
    /* while there is no error, size_before <= max_message_size and line_length <= max */
    size_t fit = length;
    enum data_error limit = DATA_OK;
    unsigned long long size_room = r->limits.max_message_size - size_before;
    if (size_room < fit) {
        fit = (size_t)size_room;
        limit = DATA_ERROR_TOO_BIG;
    }
    size_t line_room = r->limits.max_line_length - r->line_length;
    if (line_room < fit) {
        fit = line_room;
        limit = DATA_ERROR_LINE_TOO_LONG;
    }
    r->line_length += fit;
    if (r->header_phase)
        data_header_text(r, bytes, fit);
    if (r->error == DATA_OK)
        data_output_append(r, bytes, fit);
    if (limit != DATA_OK)
        data_fail(r, limit);
}

/* data_message_line_end - a CRLF in the message */
static void data_message_line_end(struct data_reader *r)
{
    r->size += 2;
    if (r->error != DATA_OK)
        return;
    if (r->size > r->limits.max_message_size) {
        data_fail(r, DATA_ERROR_TOO_BIG);
        return;
    }
    r->line_length = 0;
    if (r->header_phase) {
        data_header_line_end(r);
        if (r->error != DATA_OK)
            return;
    }
    data_output_append(r, "\r\n", 2);
}

/* data_message_end - the message is complete: close the header block if it is still open */
static void data_message_end(struct data_reader *r)
{
    if (r->ended)
        return;
    r->ended = true;
    if (r->error == DATA_OK && r->header_phase)
        data_header_close(r, false); /* a partial last line (BDAT) is body */
}

/* data_bare - a bare CR or LF: an error, or a CRLF under the normalize policy */
static void data_bare(struct data_reader *r, enum data_error e)
{
    if (r->limits.bare_policy == DATA_BARE_NORMALIZE) {
        data_message_line_end(r);
    } else {
        r->size += 1;
        data_fail(r, e);
    }
}

/* data_scan - the index of the first c in bytes[from..length), or length */
static size_t data_scan(const char *bytes, size_t from, size_t length, int c)
{
    const char *hit = memchr(bytes + from, c, length - from);
    return hit ? (size_t)(hit - bytes) : length;
}

/*
 * data_reader_consume - run the transport over bytes; returns how many were consumed (all of
 * them, except in DATA mode once the terminator is reached).
 */
static size_t data_reader_consume(struct data_reader *r, const char *bytes, size_t length)
{
    const bool dot_mode = r->mode == DATA_MODE_DOT;
    /* where the next LF, CR and NUL are (length: none); SIZE_MAX: not looked for yet */
    size_t next_lf = SIZE_MAX, next_cr = SIZE_MAX, next_nul = SIZE_MAX;
    size_t at = 0;

    while (at < length && r->state != DATA_STATE_DONE) {
        char c = bytes[at];
        switch (r->state) {
        case DATA_STATE_LINE_START:
            if (dot_mode && c == '.') {
                at++;
                r->state = DATA_STATE_DOT;
            } else {
                r->state = DATA_STATE_TEXT;
            }
            break;
        case DATA_STATE_DOT:
            if (c == '\r') {
                at++;
                r->state = DATA_STATE_DOT_CR;
                break;
            }
            if (c == '\n')
                data_message_text(r, ".", 1); /* ".\n" is not a dot line: keep the dot */
            /* otherwise the dot was a stuffing dot and is dropped */
            r->state = DATA_STATE_TEXT;
            break;
        case DATA_STATE_DOT_CR:
            if (c == '\n') {
                at++;
                r->state = DATA_STATE_DONE;
                data_message_end(r);
                break;
            }
            data_message_text(r, ".", 1); /* ".\r" + not LF: the dot is data, the CR bare */
            data_bare(r, DATA_ERROR_BARE_CR);
            r->state = DATA_STATE_TEXT;
            break;
        case DATA_STATE_CR:
            if (c == '\n') {
                at++;
                data_message_line_end(r);
                r->state = DATA_STATE_LINE_START;
            } else {
                data_bare(r, DATA_ERROR_BARE_CR);
                r->state = DATA_STATE_TEXT;
            }
            break;
        case DATA_STATE_TEXT: {
            if (next_lf == SIZE_MAX || next_lf < at)
                next_lf = data_scan(bytes, at, length, '\n');
            if (next_cr == SIZE_MAX || next_cr < at)
                next_cr = data_scan(bytes, at, length, '\r');
            if (next_nul == SIZE_MAX || next_nul < at)
                next_nul = data_scan(bytes, at, length, '\0');
            size_t stop = next_lf;
            if (next_cr < stop)
                stop = next_cr;
            if (next_nul < stop)
                stop = next_nul;
            if (stop > at) {
                data_message_text(r, bytes + at, stop - at);
                at = stop;
            }
            if (at == length)
                break;
            c = bytes[at++];
            if (c == '\r') {
                r->state = DATA_STATE_CR;
            } else if (c == '\n') {
                data_bare(r, DATA_ERROR_BARE_LF);
            } else {
                r->size += 1;
                data_fail(r, DATA_ERROR_NUL);
            }
            break;
        }
        default:
            DATA_BUG("bad transport state");
        }
    }
    return at;
}

/* data_reader_enter - check the call is allowed and fix the reader's mode */
static void data_reader_enter(struct data_reader *r, enum data_mode mode)
{
    if (r->finished)
        DATA_BUG("feed after finish");
    if (r->mode == DATA_MODE_UNSET)
        r->mode = mode;
    else if (r->mode != mode)
        DATA_BUG("feed_dot and feed_chunk mixed on one reader");
}

size_t data_reader_feed_dot(struct data_reader *r, const char *bytes, size_t length, bool *done)
{
    data_reader_enter(r, DATA_MODE_DOT);
    size_t consumed = length > 0 ? data_reader_consume(r, bytes, length) : 0;
    *done = r->state == DATA_STATE_DONE;
    return consumed;
}

void data_reader_feed_chunk(struct data_reader *r, const char *bytes, size_t length)
{
    data_reader_enter(r, DATA_MODE_CHUNK);
    if (length > 0)
        data_reader_consume(r, bytes, length);
}

enum data_error data_reader_finish(struct data_reader *r)
{
    if (r->finished)
        return r->error;
    r->finished = true;
    if (r->mode == DATA_MODE_CHUNK && r->state == DATA_STATE_CR) {
        data_bare(r, DATA_ERROR_BARE_CR); /* a CR that ends the last chunk */
        r->state = DATA_STATE_TEXT;
    }
    data_message_end(r);
    if (r->error == DATA_OK)
        data_output_flush(r);
    r->out_used = 0;
    return r->error;
}

enum data_error data_reader_error(const struct data_reader *r)
{
    return r->error;
}

unsigned long long data_reader_size(const struct data_reader *r)
{
    return r->size;
}

const struct header_list *data_reader_headers(const struct data_reader *r)
{
    return &r->headers;
}

bool data_reader_headers_done(const struct data_reader *r)
{
    return r->headers_done;
}

bool data_reader_has_separator(const struct data_reader *r)
{
    return r->has_separator;
}

off_t data_reader_body_offset(const struct data_reader *r)
{
    return r->body_offset;
}
