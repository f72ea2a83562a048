/*
 * milter_codec.h - the Sendmail milter protocol (version 6), MTA side: constants with name
 * tables for logs, frame encoders for every MTA->milter command, a frame splitter, and
 * validating decoders for milter replies (and, for tests and fuzzing, for commands).
 *
 * Interface: pure functions over buffers. Nothing here does I/O, keeps global state or trusts
 * the peer: every malformed frame is reported as -1 with a static error string that names the
 * problem, never as a crash or a silently accepted value.
 *
 * Frame format: a 4-byte network-order length that covers the command byte and the data,
 * then 1 command byte, then the data. Strings are NUL-terminated inside the frame; 32-bit
 * integers are network order; the CONNECT port is a 16-bit network-order integer.
 *
 * Frame size: without SMFIP_MDS_* negotiation (Porter never offers it) libmilter accepts and
 * sendmail/Postfix expect at most MILTER_DATA_MAX data bytes, so a frame is at most
 * MILTER_MAX_FRAME bytes after the length field. The encoders refuse to build a larger frame
 * (-1); milter_frame_next refuses any frame longer than the max_frame its caller passes
 * (MILTER_MAX_FRAME is the right value for a peer that negotiated no MDS flag;
 * MILTER_MAX_FRAME_1M is the most any libmilter will ever send).
 *
 * Ownership: the caller owns struct milter_buffer (free its data with milter_buffer_free).
 * Decoded frames, commands and replies own nothing: every pointer in them points into the
 * bytes given to milter_frame_next, which must stay unchanged until the caller is done with
 * the decoded value. Decoded strings are NUL-terminated in place (the decoder checks that the
 * terminator is inside the frame), so they can be used as C strings directly.
 *
 * Fatal: out of memory (the encoders grow the buffer with xrealloc). Nothing else.
 *
 * References: draft-adams-milter-protocol (the wire format), Postfix MILTER_README and
 * src/milter/milter8.c (the MTA side, reply rules), libmilter mfdef.h/mfapi.h (constants).
 */
#ifndef PORTER_MILTER_CODEC_H
#define PORTER_MILTER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol versions: Porter speaks 6 and lets a milter answer with 2 or later. */
#define MILTER_PROTOCOL_VERSION 6
#define MILTER_PROTOCOL_VERSION_MIN 2

/* Sizes on the wire. */
#define MILTER_LENGTH_BYTES 4                       /* the frame length field */
#define MILTER_BODY_CHUNK_MAX 65535                 /* largest BODY / REPLBODY data */
#define MILTER_DATA_MAX 65535                       /* data limit without SMFIP_MDS_* */
#define MILTER_MAX_FRAME (1 + MILTER_DATA_MAX)      /* command byte + data: 65536 */
#define MILTER_MAX_FRAME_1M (1 + (1024 * 1024 - 1)) /* the same with SMFIP_MDS_1M */

/* Limits on what a decoded SMFIR_REPLYCODE may hold (libmilter's own limits). */
#define MILTER_REPLY_LINES_MAX 32   /* libmilter MAXREPLIES */
#define MILTER_REPLY_LINE_MAX 1000  /* bytes per line without CRLF; libmilter text <= 980 */

/* Commands, MTA -> milter (SMFIC_*). */
#define MILTER_SMFIC_ABORT 'A'      /* abort the current message */
#define MILTER_SMFIC_BODY 'B'       /* body chunk */
#define MILTER_SMFIC_CONNECT 'C'    /* connection information */
#define MILTER_SMFIC_MACRO 'D'      /* define macros for the next command */
#define MILTER_SMFIC_BODYEOB 'E'    /* end of body (may carry a last chunk) */
#define MILTER_SMFIC_HELO 'H'       /* HELO/EHLO name */
#define MILTER_SMFIC_QUIT_NC 'K'    /* quit, but a new connection follows on this socket */
#define MILTER_SMFIC_HEADER 'L'     /* one header */
#define MILTER_SMFIC_MAIL 'M'       /* MAIL FROM: sender and ESMTP arguments */
#define MILTER_SMFIC_EOH 'N'        /* end of headers */
#define MILTER_SMFIC_OPTNEG 'O'     /* option negotiation (also the milter's answer) */
#define MILTER_SMFIC_QUIT 'Q'       /* quit */
#define MILTER_SMFIC_RCPT 'R'       /* RCPT TO: recipient and ESMTP arguments */
#define MILTER_SMFIC_DATA 'T'       /* DATA */
#define MILTER_SMFIC_UNKNOWN 'U'    /* a command the MTA did not recognize */

/* Replies, milter -> MTA (SMFIR_*). */
#define MILTER_SMFIR_ADDRCPT '+'     /* add recipient */
#define MILTER_SMFIR_DELRCPT '-'     /* delete recipient */
#define MILTER_SMFIR_ADDRCPT_PAR '2' /* add recipient with ESMTP arguments */
#define MILTER_SMFIR_SHUTDOWN '4'    /* 421: shut the connection down */
#define MILTER_SMFIR_ACCEPT 'a'      /* accept */
#define MILTER_SMFIR_REPLBODY 'b'    /* replace body (one chunk) */
#define MILTER_SMFIR_CONTINUE 'c'    /* continue */
#define MILTER_SMFIR_DISCARD 'd'     /* accept and discard */
#define MILTER_SMFIR_CHGFROM 'e'     /* change envelope sender */
#define MILTER_SMFIR_CONN_FAIL 'f'   /* cause a connection failure */
#define MILTER_SMFIR_ADDHEADER 'h'   /* append header */
#define MILTER_SMFIR_INSHEADER 'i'   /* insert header */
#define MILTER_SMFIR_SETSYMLIST 'l'  /* macro list: only inside the SMFIC_OPTNEG answer */
#define MILTER_SMFIR_CHGHEADER 'm'   /* change or delete header */
#define MILTER_SMFIR_PROGRESS 'p'    /* still working: wait again */
#define MILTER_SMFIR_QUARANTINE 'q'  /* quarantine the message */
#define MILTER_SMFIR_REJECT 'r'      /* reject (5xx) */
#define MILTER_SMFIR_SKIP 's'        /* skip further events of this type */
#define MILTER_SMFIR_TEMPFAIL 't'    /* temporary failure (4xx) */
#define MILTER_SMFIR_REPLYCODE 'y'   /* reject or tempfail with this SMTP reply */

/* Actions a milter may ask for in negotiation (SMFIF_*). */
#define MILTER_SMFIF_ADDHDRS 0x00000001u     /* add (and insert) headers */
#define MILTER_SMFIF_CHGBODY 0x00000002u     /* replace the body */
#define MILTER_SMFIF_ADDRCPT 0x00000004u     /* add recipients */
#define MILTER_SMFIF_DELRCPT 0x00000008u     /* delete recipients */
#define MILTER_SMFIF_CHGHDRS 0x00000010u     /* change or delete headers */
#define MILTER_SMFIF_QUARANTINE 0x00000020u  /* quarantine */
#define MILTER_SMFIF_CHGFROM 0x00000040u     /* change the envelope sender */
#define MILTER_SMFIF_ADDRCPT_PAR 0x00000080u /* add recipients with ESMTP arguments */
#define MILTER_SMFIF_SETSYMLIST 0x00000100u  /* send macro lists in negotiation */
#define MILTER_SMFIF_ALL 0x000001FFu         /* every action above */

/* Protocol flags (SMFIP_*): events not to send, replies not to expect, extensions. */
#define MILTER_SMFIP_NOCONNECT 0x00000001u   /* do not send CONNECT */
#define MILTER_SMFIP_NOHELO 0x00000002u      /* do not send HELO */
#define MILTER_SMFIP_NOMAIL 0x00000004u      /* do not send MAIL */
#define MILTER_SMFIP_NORCPT 0x00000008u      /* do not send RCPT */
#define MILTER_SMFIP_NOBODY 0x00000010u      /* do not send BODY */
#define MILTER_SMFIP_NOHDRS 0x00000020u      /* do not send HEADER */
#define MILTER_SMFIP_NOEOH 0x00000040u       /* do not send EOH */
#define MILTER_SMFIP_NR_HDR 0x00000080u      /* no reply to HEADER */
#define MILTER_SMFIP_NOUNKNOWN 0x00000100u   /* do not send UNKNOWN */
#define MILTER_SMFIP_NODATA 0x00000200u      /* do not send DATA */
#define MILTER_SMFIP_SKIP 0x00000400u        /* the MTA understands SMFIR_SKIP */
#define MILTER_SMFIP_RCPT_REJ 0x00000800u    /* send rejected RCPTs too */
#define MILTER_SMFIP_NR_CONN 0x00001000u     /* no reply to CONNECT */
#define MILTER_SMFIP_NR_HELO 0x00002000u     /* no reply to HELO */
#define MILTER_SMFIP_NR_MAIL 0x00004000u     /* no reply to MAIL */
#define MILTER_SMFIP_NR_RCPT 0x00008000u     /* no reply to RCPT */
#define MILTER_SMFIP_NR_DATA 0x00010000u     /* no reply to DATA */
#define MILTER_SMFIP_NR_UNKN 0x00020000u     /* no reply to UNKNOWN */
#define MILTER_SMFIP_NR_EOH 0x00040000u      /* no reply to EOH */
#define MILTER_SMFIP_NR_BODY 0x00080000u     /* no reply to BODY */
#define MILTER_SMFIP_HDR_LEADSPC 0x00100000u /* header values keep their leading space */
#define MILTER_SMFIP_MDS_256K 0x10000000u    /* data limit 256 KiB - 1 */
#define MILTER_SMFIP_MDS_1M 0x20000000u      /* data limit 1 MiB - 1 */

/* Address families in SMFIC_CONNECT (SMFIA_*). */
#define MILTER_SMFIA_UNKNOWN 'U' /* no port and no address follow */
#define MILTER_SMFIA_UNIX 'L'
#define MILTER_SMFIA_INET '4'
#define MILTER_SMFIA_INET6 '6'

/* Macro stages (SMFIM_*): the index in a negotiated macro list. */
enum milter_macro_stage {
    MILTER_SMFIM_CONNECT = 0,
    MILTER_SMFIM_HELO = 1,
    MILTER_SMFIM_ENVFROM = 2,
    MILTER_SMFIM_ENVRCPT = 3,
    MILTER_SMFIM_DATA = 4,
    MILTER_SMFIM_EOM = 5,
    MILTER_SMFIM_EOH = 6,
    MILTER_MACRO_STAGE_COUNT
};

/* The commands, as an index for tables; milter_command_code() gives the wire byte. */
enum milter_command_type {
    MILTER_COMMAND_ABORT = 0,
    MILTER_COMMAND_BODY,
    MILTER_COMMAND_CONNECT,
    MILTER_COMMAND_MACRO,
    MILTER_COMMAND_BODYEOB,
    MILTER_COMMAND_HELO,
    MILTER_COMMAND_QUIT_NC,
    MILTER_COMMAND_HEADER,
    MILTER_COMMAND_MAIL,
    MILTER_COMMAND_EOH,
    MILTER_COMMAND_OPTNEG,
    MILTER_COMMAND_QUIT,
    MILTER_COMMAND_RCPT,
    MILTER_COMMAND_DATA,
    MILTER_COMMAND_UNKNOWN,
    MILTER_COMMAND_COUNT
};

/* The replies a milter may send, as an index; milter_reply_code() gives the wire byte. */
enum milter_reply_type {
    MILTER_REPLY_OPTNEG = 0, /* wire byte 'O' (SMFIC_OPTNEG), the negotiation answer */
    MILTER_REPLY_ADDRCPT,
    MILTER_REPLY_DELRCPT,
    MILTER_REPLY_ADDRCPT_PAR,
    MILTER_REPLY_SHUTDOWN,
    MILTER_REPLY_ACCEPT,
    MILTER_REPLY_REPLBODY,
    MILTER_REPLY_CONTINUE,
    MILTER_REPLY_DISCARD,
    MILTER_REPLY_CHGFROM,
    MILTER_REPLY_CONN_FAIL,
    MILTER_REPLY_ADDHEADER,
    MILTER_REPLY_INSHEADER,
    MILTER_REPLY_CHGHEADER,
    MILTER_REPLY_PROGRESS,
    MILTER_REPLY_QUARANTINE,
    MILTER_REPLY_REJECT,
    MILTER_REPLY_SKIP,
    MILTER_REPLY_TEMPFAIL,
    MILTER_REPLY_REPLYCODE,
    MILTER_REPLY_COUNT
};

/* Names for logs. Unknown values give "unknown"; nothing returned is ever NULL. */
const char *milter_command_name(int code);          /* wire byte -> "SMFIC_MAIL" */
const char *milter_reply_name(int code);            /* wire byte -> "SMFIR_ACCEPT" */
const char *milter_command_type_name(enum milter_command_type type);
const char *milter_reply_type_name(enum milter_reply_type type);
const char *milter_macro_stage_name(enum milter_macro_stage stage); /* "SMFIM_EOH" */
const char *milter_family_name(int family);         /* 'L' -> "SMFIA_UNIX" */
const char *milter_action_flag_name(uint32_t flag); /* one bit -> "SMFIF_CHGBODY" */
const char *milter_protocol_flag_name(uint32_t flag); /* one bit -> "SMFIP_NR_HDR" */

/*
 * milter_actions_format, milter_protocol_format - a mask as "SMFIF_ADDHDRS|SMFIF_CHGBODY"
 * ("0" when empty; bits without a name as one trailing "0x..." part). Always NUL-terminates
 * out when size > 0; returns 0, or -1 when out was too small and the text was cut.
 */
int milter_actions_format(uint32_t mask, char *out, size_t size);
int milter_protocol_format(uint32_t mask, char *out, size_t size);

/* Wire byte <-> index. The *_type_of functions return -1 for a byte that is not one. */
int milter_command_code(enum milter_command_type type);
int milter_reply_code(enum milter_reply_type type);
int milter_command_type_of(int code);
int milter_reply_type_of(int code);

/* milter_macro_stage_command - the SMFIC_MACRO command byte for a macro stage ('C' ...) */
int milter_macro_stage_command(enum milter_macro_stage stage);

/*
 * What Porter offers in SMFIC_OPTNEG, as Postfix's milter8.c does for a protocol version:
 * every SMFIF_ action, and the SMFIP_ bits defined for that version (for 6: every bit up to
 * SMFIP_HDR_LEADSPC, 0x001FFFFF; never SMFIP_MDS_*). Versions other than 2, 3, 4 and 6 give 0.
 */
uint32_t milter_offered_actions(void);
uint32_t milter_offered_protocol(uint32_t version);

/* ---------------------------------------------------------------- encoders */

/* A growable byte buffer owned by the caller; start it zeroed: struct milter_buffer b = {0}. */
struct milter_buffer {
    unsigned char *data;
    size_t length;
    size_t capacity;
};

/* milter_buffer_free - free the bytes and zero the struct; accepts NULL */
void milter_buffer_free(struct milter_buffer *buffer);
/* milter_buffer_append - append the bytes of more (frames) to buffer (which grows) */
void milter_buffer_append(struct milter_buffer *buffer, const struct milter_buffer *more);
/* milter_buffer_reset - forget the bytes but keep the allocation */
void milter_buffer_reset(struct milter_buffer *buffer);

/*
 * Each encoder appends one complete frame to buffer and returns 0, or returns -1 and leaves
 * buffer unchanged when an argument is invalid (NULL string, bad family or stage, empty
 * header name, body chunk of 0 or more than MILTER_BODY_CHUNK_MAX bytes) or the frame's data
 * would exceed MILTER_DATA_MAX (libmilter drops the connection on such a frame).
 */
int milter_encode_optneg(struct milter_buffer *buffer, uint32_t version, uint32_t actions,
                         uint32_t protocol);
/* stage_command: the command the macros go with: 'C', 'H', 'M', 'R', 'T', 'E' or 'N'. */
int milter_encode_macro(struct milter_buffer *buffer, int stage_command,
                        const char *const names[], const char *const values[], size_t count);
/* family 'U' sends only the hostname; 'L', '4', '6' also send port and address. */
int milter_encode_connect(struct milter_buffer *buffer, const char *hostname, int family,
                          uint16_t port, const char *address);
int milter_encode_helo(struct milter_buffer *buffer, const char *name);
/* argv[0] is the address (with its angle brackets), then the ESMTP arguments; count >= 1. */
int milter_encode_mail(struct milter_buffer *buffer, const char *const argv[], size_t count);
int milter_encode_rcpt(struct milter_buffer *buffer, const char *const argv[], size_t count);
int milter_encode_data(struct milter_buffer *buffer);
int milter_encode_header(struct milter_buffer *buffer, const char *name, const char *value);
int milter_encode_eoh(struct milter_buffer *buffer);
int milter_encode_body(struct milter_buffer *buffer, const void *chunk, size_t length);
int milter_encode_eob(struct milter_buffer *buffer);
int milter_encode_abort(struct milter_buffer *buffer);
int milter_encode_quit(struct milter_buffer *buffer);
int milter_encode_quit_nc(struct milter_buffer *buffer);
int milter_encode_unknown(struct milter_buffer *buffer, const char *line);

/* ---------------------------------------------------------------- replies (filter side) */

/*
 * The filter direction (Porter as a milter, gateway/milter_listener.c): each appends one reply
 * frame and returns 0, or -1 with buffer unchanged for an argument the MTA would refuse.
 * milter_encode_reply: a reply without data (ACCEPT, CONTINUE, DISCARD, PROGRESS, REJECT,
 * TEMPFAIL, SHUTDOWN, CONN_FAIL, SKIP). milter_encode_replycode: reply must pass
 * milter_replycode_parse (and any '%' in it must already be doubled). Header edits: type
 * ADDHEADER (index ignored), INSHEADER or CHGHEADER; name a valid field name, value without
 * a CR or LF that is not folding ("" with CHGHEADER deletes). Envelope edits: ADDRCPT,
 * DELRCPT (args ignored), ADDRCPT_PAR, CHGFROM (args NULL when none). The negotiation answer
 * is milter_encode_optneg.
 */
int milter_encode_reply(struct milter_buffer *buffer, enum milter_reply_type type);
int milter_encode_replycode(struct milter_buffer *buffer, const char *reply);
int milter_encode_header_edit(struct milter_buffer *buffer, enum milter_reply_type type,
                              uint32_t index, const char *name, const char *value);
int milter_encode_envelope_edit(struct milter_buffer *buffer, enum milter_reply_type type,
                                const char *address, const char *args);
int milter_encode_replbody(struct milter_buffer *buffer, const void *chunk, size_t length);
int milter_encode_quarantine(struct milter_buffer *buffer, const char *reason);

/* ---------------------------------------------------------------- frames */

/* One frame; data points into the buffer given to milter_frame_next. */
struct milter_frame {
    int command;               /* the command or reply byte */
    const unsigned char *data; /* the bytes after the command byte */
    size_t length;             /* how many */
    const char *error;         /* set (static text) when milter_frame_next returns -1 */
};

/*
 * milter_frame_next - find the first frame in buffer[0..length).
 * Returns 1 with *out filled and *consumed = the frame's size including the length field;
 * 0 when more bytes are needed (*consumed = 0); -1 on a protocol error: a length field of 0,
 * or one larger than max_frame (detected as soon as the 4 length bytes are there), with the
 * reason in out->error. The connection cannot be resynchronized after -1.
 */
int milter_frame_next(const unsigned char *buffer, size_t length, size_t max_frame,
                      struct milter_frame *out, size_t *consumed);

/* A run of NUL-terminated strings inside a frame (MAIL/RCPT argv, macro name/value pairs). */
struct milter_string_list {
    const char *data; /* first string */
    size_t length;    /* bytes, including every terminator */
    size_t count;     /* strings */
};

/* milter_string_list_next - the string after previous (NULL: the first); NULL at the end */
const char *milter_string_list_next(const struct milter_string_list *list, const char *previous);

/* ---------------------------------------------------------------- replies */

/* One macro list from the negotiation answer: space-separated macro names for a stage. */
struct milter_macro_list {
    enum milter_macro_stage stage;
    const char *names; /* may be "" (send no macros at that stage) */
};

/* The negotiation answer (SMFIC_OPTNEG from the milter). */
struct milter_optneg {
    uint32_t version;
    uint32_t actions;  /* SMFIF_* the milter will use */
    uint32_t protocol; /* SMFIP_* the milter wants */
    size_t macro_list_count;
    struct milter_macro_list macro_lists[MILTER_MACRO_STAGE_COUNT]; /* each stage at most once */
};

/* One line of an SMFIR_REPLYCODE reply, without "ddd-" / "ddd " and without CRLF. */
struct milter_reply_line {
    const char *enhanced;   /* "5.7.1" (not NUL-terminated) or NULL when absent */
    size_t enhanced_length;
    const char *text;       /* the text after the code(s) and one space; not NUL-terminated */
    size_t text_length;     /* may be 0 */
};

struct milter_replycode {
    int code;          /* 400..599, the same on every line */
    const char *reply; /* the whole reply as sent, NUL-terminated, lines joined by CRLF */
    size_t line_count; /* 1..MILTER_REPLY_LINES_MAX */
    struct milter_reply_line lines[MILTER_REPLY_LINES_MAX];
};

/* A decoded, validated reply. Only the member that matches type is set. */
struct milter_reply {
    enum milter_reply_type type;
    union {
        struct milter_optneg optneg; /* OPTNEG */
        struct {
            const char *address;     /* not empty */
            const char *args;        /* ESMTP args of ADDRCPT_PAR, CHGFROM; NULL if none */
        } envelope;                  /* ADDRCPT, ADDRCPT_PAR, DELRCPT, CHGFROM */
        struct {
            uint32_t index;          /* INSHEADER: 0 is the top; CHGHEADER: 1 is the first
                                        header of that name (Postfix/sendmail read 0 as 1);
                                        ADDHEADER: 0. Never above INT32_MAX. */
            const char *name;        /* a valid header field name */
            const char *value;       /* CHGHEADER: "" means delete */
        } header;                    /* ADDHEADER, INSHEADER, CHGHEADER */
        struct {
            const unsigned char *data;
            size_t length;           /* may be 0 */
        } body;                      /* REPLBODY */
        const char *quarantine_reason; /* QUARANTINE: not empty */
        struct milter_replycode replycode; /* REPLYCODE */
    };
};

/*
 * milter_reply_decode - validate and decode one reply frame.
 * Returns 0 with *out filled, or -1 with *error set (static text) when the frame is not a
 * well-formed reply: unknown byte, SMFIR_SETSYMLIST outside negotiation, data after a
 * bodyless reply, a string without its NUL inside the frame, a truncated integer, leftover
 * bytes, an empty address or header name, a header name with a byte outside 33..126 or a
 * ':', a header value with CR or LF that is not folding, a header index above INT32_MAX, a
 * macro stage above SMFIM_EOH or given twice, or a REPLYCODE that is not a valid 4xx/5xx
 * reply (see milter_replycode_parse). error may be NULL (so in the functions below).
 */
int milter_reply_decode(const struct milter_frame *frame, struct milter_reply *out,
                        const char **error);

/*
 * milter_replycode_parse - parse and check "ddd text" or "ddd-text\r\n...\r\nddd text":
 * every line has the same 4xx or 5xx code followed by '-' (not last) or ' ' (last); text
 * that starts with "digit." must be an enhanced code (class.subject.detail, 1-3 digits
 * each, followed by a space or the line's end) of the reply code's class; at most
 * MILTER_REPLY_LINES_MAX lines of at most MILTER_REPLY_LINE_MAX bytes; lines are separated
 * by CRLF only and hold no other control byte except TAB; no empty line after a final CRLF.
 * text[0..length) is read; out's pointers point into text. Returns 0, or -1 with *error.
 */
int milter_replycode_parse(const char *text, size_t length, struct milter_replycode *out,
                           const char **error);

/*
 * milter_percent_unescape - undo the '%' doubling that libmilter requires in reply text
 * (sendmail uses it as a format string): "%%" -> "%", and a lone '%' is dropped, as Postfix
 * does. Writes a NUL-terminated result to out; returns 0, or -1 when out_size is smaller
 * than the result plus its NUL (nothing is cut silently; out_size >= length + 1 is enough).
 */
int milter_percent_unescape(const char *text, size_t length, char *out, size_t out_size);

/*
 * milter_optneg_check - may Porter work with this negotiation answer, given what it offered?
 * The version must be MILTER_PROTOCOL_VERSION_MIN..offered_version, the actions and the
 * protocol flags a subset of what was offered, and macro lists need SMFIF_SETSYMLIST.
 * Returns 0, or -1 with *error set.
 */
int milter_optneg_check(uint32_t offered_version, uint32_t offered_actions,
                        uint32_t offered_protocol, const struct milter_optneg *answer,
                        const char **error);

/*
 * milter_reply_allowed - may a milter send reply at this stage? stage is the command the
 * MTA sent and is waiting on. Rules: only OPTNEG answers OPTNEG; ABORT, MACRO, QUIT and
 * QUIT_NC get no reply at all; every other stage takes ACCEPT, CONTINUE, REJECT, TEMPFAIL,
 * REPLYCODE, SHUTDOWN, CONN_FAIL and PROGRESS; DISCARD is refused at CONNECT and HELO
 * (there is no message to discard); SKIP only at BODY and only with SMFIP_SKIP in
 * protocol; modification replies (ADDRCPT, ADDRCPT_PAR, DELRCPT, CHGFROM, ADDHEADER,
 * INSHEADER, CHGHEADER, REPLBODY, QUARANTINE) only at BODYEOB and only when their SMFIF_
 * flag is in actions (INSHEADER goes with SMFIF_ADDHDRS, as in libmilter).
 */
bool milter_reply_allowed(enum milter_command_type stage, enum milter_reply_type reply,
                          uint32_t actions, uint32_t protocol);

/*
 * milter_reply_is_modification - one of the end-of-message modification replies (ADDRCPT,
 * ADDRCPT_PAR, DELRCPT, CHGFROM, ADDHEADER, INSHEADER, CHGHEADER, REPLBODY, QUARANTINE):
 * they come before the final verdict and are not an answer themselves.
 */
bool milter_reply_is_modification(enum milter_reply_type reply);

/*
 * milter_command_wanted - should this command be sent to a milter that negotiated version
 * and protocol? False when it asked not to get it (SMFIP_NOCONNECT ...) or when the command
 * does not exist in its version (UNKNOWN before 3, DATA before 4, QUIT_NC before 6).
 */
bool milter_command_wanted(enum milter_command_type command, uint32_t version,
                           uint32_t protocol);

/*
 * milter_command_awaits_reply - does the milter answer this command? False for ABORT, MACRO,
 * QUIT and QUIT_NC, and for the commands whose SMFIP_NR_* flag was negotiated.
 */
bool milter_command_awaits_reply(enum milter_command_type command, uint32_t protocol);

/* ---------------------------------------------------------------- commands (milter side) */

/* A decoded MTA -> milter command; used by the test milter and the fuzz target. */
struct milter_command {
    enum milter_command_type type;
    union {
        struct {
            uint32_t version, actions, protocol;
        } optneg;                       /* OPTNEG */
        struct {
            int stage_command;          /* 'C', 'H', 'M', 'R', 'T', 'E' or 'N' */
            struct milter_string_list pairs; /* name, value, name, value ...; count even */
        } macro;                        /* MACRO */
        struct {
            const char *hostname;
            int family;                 /* MILTER_SMFIA_* */
            uint16_t port;              /* 0 for 'U' */
            const char *address;        /* NULL for 'U' */
        } connect;                      /* CONNECT */
        const char *helo;               /* HELO */
        struct milter_string_list argv; /* MAIL, RCPT: count >= 1 */
        struct {
            const char *name;
            const char *value;
        } header;                       /* HEADER */
        struct {
            const unsigned char *data;
            size_t length;              /* may be 0 */
        } body;                         /* BODY, BODYEOB */
        const char *unknown;            /* UNKNOWN: the command line */
    };
};

/*
 * milter_command_decode - validate and decode one MTA -> milter frame. Returns 0, or -1 with
 * *error set (unknown byte, missing NUL, truncated integer, bad family or macro stage, odd
 * macro string count, data after a bodyless command, leftover bytes).
 */
int milter_command_decode(const struct milter_frame *frame, struct milter_command *out,
                          const char **error);

#endif
