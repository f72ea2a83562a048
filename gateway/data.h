/*
 * data.h - the DATA/BDAT reader: a streaming state machine that turns the bytes of the DATA
 * phase (dot-stuffed, ended by CRLF "." CRLF) or of BDAT chunks (raw) into the message written
 * to a spool file, and parses its header block on the way.
 *
 * Interface: data_reader_new, then data_reader_feed_dot (DATA) or data_reader_feed_chunk (BDAT)
 * as bytes arrive, split anywhere, then data_reader_finish; the accessors give the size, the
 * parsed headers and where the body starts. data_error_name/data_error_reply map errors to log
 * names and SMTP replies.
 *
 * The message written is the header block, the empty line and the body, exactly as received
 * after dot-unstuffing (and, under DATA_BARE_NORMALIZE, with bare CR/LF turned into CRLF).
 *
 * The rules, which are security-critical (SMTP smuggling, CVE-2023-51764 class):
 *
 * - Wire lines. The input is split into lines at CRLF only. A "wire line start" is the very
 *   first byte of DATA or the byte right after a CRLF. A bare LF (LF not preceded by CR) or a
 *   bare CR (CR not followed by LF) never ends a wire line, under either policy.
 * - End of DATA. DATA ends only at a wire line that is exactly "." CRLF, i.e. the bytes
 *   CRLF "." CRLF, or "." CRLF as the very first bytes. "\n.\n", "\r.\r", "\n.\r\n",
 *   "\r\n.\n", "\r\n.\r" and the like never end it. The CRLF before the "." belongs to the
 *   message; "." CRLF alone is the empty message (size 0). Bytes after the terminator are not
 *   consumed (they are the next pipelined command).
 * - Dot-unstuffing. At a wire line start, a "." followed by any byte other than CR or LF is
 *   dropped ("..x" -> ".x", ".x" -> "x"). A "." followed by a bare LF, or by a CR that turns out
 *   not to be followed by LF, is kept as data (the line is written as ".\r\n" under NORMALIZE,
 *   and is an error under REJECT anyway). A "." anywhere else - in particular at the start of a
 *   line that began after a bare LF or bare CR - is ordinary data and is never unstuffed.
 * - Bare line ends. DATA_BARE_REJECT: a bare LF or bare CR makes the message fail
 *   (DATA_ERROR_BARE_LF / DATA_ERROR_BARE_CR); the reader keeps consuming to the real
 *   terminator so the session stays in sync. DATA_BARE_NORMALIZE: each bare LF and each bare CR
 *   is written as CRLF (so "\r\r\n" becomes "\r\n\r\n"); this does not make it a wire line end.
 * - NUL bytes fail the message (DATA_ERROR_NUL) under both policies.
 * - Lines are measured on the message as written (after unstuffing and normalising), without
 *   their CRLF; a line longer than max_line_length fails with DATA_ERROR_LINE_TOO_LONG.
 * - Size is the number of message bytes: after unstuffing, after normalising (a bare CR or LF
 *   that is an error counts as one byte, a NUL as one). Past max_message_size the message fails
 *   with DATA_ERROR_TOO_BIG. data_reader_size keeps counting whatever happens.
 * - After the first error nothing more is written to the spool and the header list is no
 *   longer updated, but bytes are still consumed and counted; finish reports that first error.
 *   A failed message must not be delivered.
 * - BDAT: chunks concatenate into one byte stream with no dot handling and no terminator; the
 *   bare CR/LF policy, NUL, line length and size rules apply the same way across chunk
 *   boundaries (a CR ending one chunk is judged by the first byte of the next; a CR ending the
 *   last chunk is bare).
 *
 * Header block: the lines from the start of the message up to the first empty line. Each line
 * must be a header ("Name:value", Name = characters 33..126 other than ':') or a continuation
 * (starts with SP or HTAB, after at least one header). The first line that is neither - or a
 * last line that has no CRLF (possible with BDAT only) - starts the body with an implicit
 * separator: the header block is the lines before it, data_reader_has_separator() is false and
 * data_reader_body_offset() points at that line. A message with no empty line and only header
 * lines is all headers with an empty body and no separator. So the exact message is always
 *     headers_render(headers) + (has_separator ? "\r\n" : "") + spool[body_offset .. end]
 * A header block longer than max_header_size, or with more than max_header_count headers,
 * fails with DATA_ERROR_HEADERS. (A line that would only overflow the limit while it is still
 * unknown whether it is a header, and then turns out not to be one, is body and no error.)
 *
 * Memory is bounded whatever the message size: a fixed write buffer (DATA_WRITE_BUFFER_SIZE)
 * plus the header block, at most max_header_size bytes, plus the parsed list.
 *
 * Ownership: the reader copies the limits; the spool fd is borrowed (never closed) and must be
 * a blocking descriptor opened for writing; the reader writes at its current position, which
 * it reads once at data_reader_new (0 if the fd cannot seek) to compute body offsets. The
 * process must ignore SIGPIPE if the fd can be a pipe. data_reader_headers returns a list owned
 * by the reader, valid until data_reader_free.
 *
 * Fatal: out of memory; calling a feed function after finish or mixing feed_dot and feed_chunk
 * on one reader (an internal inconsistency: abort with file and line). No globals.
 */
#ifndef PORTER_DATA_H
#define PORTER_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "headers.h"

/* The size of the reader's write buffer: the spool is written in blocks of this size. */
#define DATA_WRITE_BUFFER_SIZE (64 * 1024)

enum data_bare_policy { DATA_BARE_REJECT, DATA_BARE_NORMALIZE };

/* Every limit is taken literally: 0 means nothing is allowed, not "no limit". */
struct data_limits {
    unsigned long long max_message_size; /* message bytes, after unstuffing */
    size_t max_line_length;              /* bytes of one line, without its CRLF */
    size_t max_header_size;              /* bytes of the header block, CRLFs included */
    size_t max_header_count;             /* headers in the block (continuations not counted) */
    enum data_bare_policy bare_policy;
};

enum data_error {
    DATA_OK = 0,
    DATA_ERROR_TOO_BIG,
    DATA_ERROR_LINE_TOO_LONG,
    DATA_ERROR_BARE_LF,
    DATA_ERROR_BARE_CR,
    DATA_ERROR_NUL,
    DATA_ERROR_HEADERS, /* malformed or too large header block */
    DATA_ERROR_IO,      /* writing the spool failed */
    DATA_ERROR_COUNT
};

/* data_error_name - a short name for logs ("ok", "too_big", ...); "unknown" when out of range */
const char *data_error_name(enum data_error e);

/*
 * data_error_reply - the SMTP reply to the end of data for an error. Only codes RFC 5321 allows
 * after the final "." (250, 451, 552, 554) are used; enhanced codes are RFC 3463's:
 *   DATA_OK                  250 2.0.0  (the caller normally replies with its own 250 text)
 *   DATA_ERROR_TOO_BIG       552 5.3.4  message too big for system
 *   DATA_ERROR_LINE_TOO_LONG 554 5.5.2  the line length limit is an SMTP protocol limit
 *                                       (RFC 5321 4.5.3.1.6): a protocol syntax error
 *   DATA_ERROR_BARE_LF/CR    554 5.6.2  lines must end in CRLF; delivering would need the line
 *                                       ends converted, and the policy forbids that conversion
 *   DATA_ERROR_NUL           554 5.6.0  content error not covered by a more specific code
 *   DATA_ERROR_HEADERS       554 5.6.0  same: the header block is malformed or too large
 *   DATA_ERROR_IO            451 4.3.0  local error, try again later
 * Out of range values get the IO reply (temporary, never an acceptance). The strings are static.
 */
void data_error_reply(enum data_error e, int *code, const char **enhanced, const char **text);

struct data_reader;

/* data_reader_new - a reader writing to spool_fd (borrowed); limits are copied */
struct data_reader *data_reader_new(const struct data_limits *limits, int spool_fd);
/* data_reader_free - free the reader (NULL is fine); does not close the fd */
void data_reader_free(struct data_reader *r);

/*
 * data_reader_feed_dot - DATA mode: consume up to length bytes and return how many were
 * consumed. *done is set to true once the terminating CRLF "." CRLF has been consumed; the
 * bytes after it are not consumed (they are the next pipelined command), and later calls
 * consume nothing. Errors do not stop consumption: check data_reader_error or finish.
 */
size_t data_reader_feed_dot(struct data_reader *r, const char *bytes, size_t length, bool *done);
/*
 * data_reader_feed_chunk - BDAT mode: all length bytes are message data (no dot handling).
 * Call data_reader_finish after the LAST chunk.
 */
void data_reader_feed_chunk(struct data_reader *r, const char *bytes, size_t length);
/*
 * data_reader_finish - end the message (a pending CR of BDAT is judged bare, the header block
 * is closed if it was still open), flush the write buffer to the fd, and return the first error
 * seen (DATA_OK if none). Calling it again returns the same result. In DATA mode call it after
 * *done; before that the message is incomplete and must not be delivered whatever it returns.
 */
enum data_error data_reader_finish(struct data_reader *r);
/* data_reader_error - the first error seen so far (no flush); DATA_OK if none */
enum data_error data_reader_error(const struct data_reader *r);

/* data_reader_size - message bytes received (after unstuffing), counted even past the limit */
unsigned long long data_reader_size(const struct data_reader *r);
/* data_reader_headers - the parsed header list: empty until the header block has ended */
const struct header_list *data_reader_headers(const struct data_reader *r);
/* data_reader_headers_done - the header block has ended (so a data_headers hook may run) */
bool data_reader_headers_done(const struct data_reader *r);
/*
 * data_reader_has_separator - the header block ended with an empty line (written to the spool
 * just before body_offset); false when the body starts at a non-header line or is empty
 */
bool data_reader_has_separator(const struct data_reader *r);
/*
 * data_reader_body_offset - offset in the spool file of the first body byte: just after the
 * empty line's CRLF, or at the first non-header line; the end of the message when it is all
 * headers. Valid once data_reader_headers_done is true.
 */
off_t data_reader_body_offset(const struct data_reader *r);

#endif
