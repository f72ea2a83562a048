/*
 * milter_codec.c - Sendmail milter protocol version 6, MTA side: name tables, encoders for
 * MTA -> milter commands, the frame splitter and validating decoders (see milter_codec.h).
 *
 * Interface: pure functions over caller buffers; no I/O, no globals (the tables below are
 * constant). The encoders check every argument and the frame size before writing, so a
 * refused frame leaves the buffer as it was. The decoders walk the frame with a bounded
 * cursor: every integer is length-checked, every string must have its NUL inside the frame,
 * and bytes left over after the last field are an error.
 *
 * Fatal: out of memory while growing a milter_buffer (xrealloc aborts).
 * Memory: the caller owns struct milter_buffer and its bytes; decoded values point into the
 * caller's input and own nothing.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "milter_codec.h"

/* ---------------------------------------------------------------- tables */

/* What each command is on the wire and how negotiation affects it. */
struct command_info {
    int code;
    const char *name;
    uint32_t no_send_flag;  /* SMFIP_NO*: the milter does not want it */
    uint32_t no_reply_flag; /* SMFIP_NR_*: the milter will not answer it */
    uint32_t min_version;   /* first protocol version that has it */
    bool awaits_reply;      /* answered unless no_reply_flag was negotiated */
};

static const struct command_info command_table[MILTER_COMMAND_COUNT] = {
    [MILTER_COMMAND_ABORT] = {MILTER_SMFIC_ABORT, "SMFIC_ABORT", 0, 0, 2, false},
    [MILTER_COMMAND_BODY] = {MILTER_SMFIC_BODY, "SMFIC_BODY", MILTER_SMFIP_NOBODY,
                             MILTER_SMFIP_NR_BODY, 2, true},
    [MILTER_COMMAND_CONNECT] = {MILTER_SMFIC_CONNECT, "SMFIC_CONNECT", MILTER_SMFIP_NOCONNECT,
                                MILTER_SMFIP_NR_CONN, 2, true},
    [MILTER_COMMAND_MACRO] = {MILTER_SMFIC_MACRO, "SMFIC_MACRO", 0, 0, 2, false},
    [MILTER_COMMAND_BODYEOB] = {MILTER_SMFIC_BODYEOB, "SMFIC_BODYEOB", 0, 0, 2, true},
    [MILTER_COMMAND_HELO] = {MILTER_SMFIC_HELO, "SMFIC_HELO", MILTER_SMFIP_NOHELO,
                             MILTER_SMFIP_NR_HELO, 2, true},
    [MILTER_COMMAND_QUIT_NC] = {MILTER_SMFIC_QUIT_NC, "SMFIC_QUIT_NC", 0, 0, 6, false},
    [MILTER_COMMAND_HEADER] = {MILTER_SMFIC_HEADER, "SMFIC_HEADER", MILTER_SMFIP_NOHDRS,
                               MILTER_SMFIP_NR_HDR, 2, true},
    [MILTER_COMMAND_MAIL] = {MILTER_SMFIC_MAIL, "SMFIC_MAIL", MILTER_SMFIP_NOMAIL,
                             MILTER_SMFIP_NR_MAIL, 2, true},
    [MILTER_COMMAND_EOH] = {MILTER_SMFIC_EOH, "SMFIC_EOH", MILTER_SMFIP_NOEOH,
                            MILTER_SMFIP_NR_EOH, 2, true},
    [MILTER_COMMAND_OPTNEG] = {MILTER_SMFIC_OPTNEG, "SMFIC_OPTNEG", 0, 0, 2, true},
    [MILTER_COMMAND_QUIT] = {MILTER_SMFIC_QUIT, "SMFIC_QUIT", 0, 0, 2, false},
    [MILTER_COMMAND_RCPT] = {MILTER_SMFIC_RCPT, "SMFIC_RCPT", MILTER_SMFIP_NORCPT,
                             MILTER_SMFIP_NR_RCPT, 2, true},
    [MILTER_COMMAND_DATA] = {MILTER_SMFIC_DATA, "SMFIC_DATA", MILTER_SMFIP_NODATA,
                             MILTER_SMFIP_NR_DATA, 4, true},
    [MILTER_COMMAND_UNKNOWN] = {MILTER_SMFIC_UNKNOWN, "SMFIC_UNKNOWN", MILTER_SMFIP_NOUNKNOWN,
                                MILTER_SMFIP_NR_UNKN, 3, true},
};

/* When a reply may come, for milter_reply_allowed. */
enum reply_kind {
    REPLY_KIND_NEGOTIATION, /* only as the answer to OPTNEG */
    REPLY_KIND_DECISION,    /* at any stage that awaits a reply */
    REPLY_KIND_DISCARD,     /* a decision, but not at CONNECT or HELO */
    REPLY_KIND_SKIP,        /* at BODY, with SMFIP_SKIP */
    REPLY_KIND_MODIFY,      /* at BODYEOB, with action_flag */
};

struct reply_info {
    int code;
    const char *name;
    enum reply_kind kind;
    uint32_t action_flag; /* REPLY_KIND_MODIFY: the SMFIF_ flag it needs */
};

static const struct reply_info reply_table[MILTER_REPLY_COUNT] = {
    [MILTER_REPLY_OPTNEG] = {MILTER_SMFIC_OPTNEG, "SMFIC_OPTNEG", REPLY_KIND_NEGOTIATION, 0},
    [MILTER_REPLY_ADDRCPT] = {MILTER_SMFIR_ADDRCPT, "SMFIR_ADDRCPT", REPLY_KIND_MODIFY,
                              MILTER_SMFIF_ADDRCPT},
    [MILTER_REPLY_DELRCPT] = {MILTER_SMFIR_DELRCPT, "SMFIR_DELRCPT", REPLY_KIND_MODIFY,
                              MILTER_SMFIF_DELRCPT},
    [MILTER_REPLY_ADDRCPT_PAR] = {MILTER_SMFIR_ADDRCPT_PAR, "SMFIR_ADDRCPT_PAR",
                                  REPLY_KIND_MODIFY, MILTER_SMFIF_ADDRCPT_PAR},
    [MILTER_REPLY_SHUTDOWN] = {MILTER_SMFIR_SHUTDOWN, "SMFIR_SHUTDOWN", REPLY_KIND_DECISION, 0},
    [MILTER_REPLY_ACCEPT] = {MILTER_SMFIR_ACCEPT, "SMFIR_ACCEPT", REPLY_KIND_DECISION, 0},
    [MILTER_REPLY_REPLBODY] = {MILTER_SMFIR_REPLBODY, "SMFIR_REPLBODY", REPLY_KIND_MODIFY,
                               MILTER_SMFIF_CHGBODY},
    [MILTER_REPLY_CONTINUE] = {MILTER_SMFIR_CONTINUE, "SMFIR_CONTINUE", REPLY_KIND_DECISION, 0},
    [MILTER_REPLY_DISCARD] = {MILTER_SMFIR_DISCARD, "SMFIR_DISCARD", REPLY_KIND_DISCARD, 0},
    [MILTER_REPLY_CHGFROM] = {MILTER_SMFIR_CHGFROM, "SMFIR_CHGFROM", REPLY_KIND_MODIFY,
                              MILTER_SMFIF_CHGFROM},
    [MILTER_REPLY_CONN_FAIL] = {MILTER_SMFIR_CONN_FAIL, "SMFIR_CONN_FAIL", REPLY_KIND_DECISION,
                                0},
    [MILTER_REPLY_ADDHEADER] = {MILTER_SMFIR_ADDHEADER, "SMFIR_ADDHEADER", REPLY_KIND_MODIFY,
                                MILTER_SMFIF_ADDHDRS},
    [MILTER_REPLY_INSHEADER] = {MILTER_SMFIR_INSHEADER, "SMFIR_INSHEADER", REPLY_KIND_MODIFY,
                                MILTER_SMFIF_ADDHDRS},
    [MILTER_REPLY_CHGHEADER] = {MILTER_SMFIR_CHGHEADER, "SMFIR_CHGHEADER", REPLY_KIND_MODIFY,
                                MILTER_SMFIF_CHGHDRS},
    [MILTER_REPLY_PROGRESS] = {MILTER_SMFIR_PROGRESS, "SMFIR_PROGRESS", REPLY_KIND_DECISION, 0},
    [MILTER_REPLY_QUARANTINE] = {MILTER_SMFIR_QUARANTINE, "SMFIR_QUARANTINE",
                                 REPLY_KIND_MODIFY, MILTER_SMFIF_QUARANTINE},
    [MILTER_REPLY_REJECT] = {MILTER_SMFIR_REJECT, "SMFIR_REJECT", REPLY_KIND_DECISION, 0},
    [MILTER_REPLY_SKIP] = {MILTER_SMFIR_SKIP, "SMFIR_SKIP", REPLY_KIND_SKIP, 0},
    [MILTER_REPLY_TEMPFAIL] = {MILTER_SMFIR_TEMPFAIL, "SMFIR_TEMPFAIL", REPLY_KIND_DECISION, 0},
    [MILTER_REPLY_REPLYCODE] = {MILTER_SMFIR_REPLYCODE, "SMFIR_REPLYCODE", REPLY_KIND_DECISION,
                                0},
};

struct flag_name {
    uint32_t flag;
    const char *name;
};

static const struct flag_name action_flag_table[] = {
    {MILTER_SMFIF_ADDHDRS, "SMFIF_ADDHDRS"},
    {MILTER_SMFIF_CHGBODY, "SMFIF_CHGBODY"},
    {MILTER_SMFIF_ADDRCPT, "SMFIF_ADDRCPT"},
    {MILTER_SMFIF_DELRCPT, "SMFIF_DELRCPT"},
    {MILTER_SMFIF_CHGHDRS, "SMFIF_CHGHDRS"},
    {MILTER_SMFIF_QUARANTINE, "SMFIF_QUARANTINE"},
    {MILTER_SMFIF_CHGFROM, "SMFIF_CHGFROM"},
    {MILTER_SMFIF_ADDRCPT_PAR, "SMFIF_ADDRCPT_PAR"},
    {MILTER_SMFIF_SETSYMLIST, "SMFIF_SETSYMLIST"},
    {0, NULL},
};

static const struct flag_name protocol_flag_table[] = {
    {MILTER_SMFIP_NOCONNECT, "SMFIP_NOCONNECT"},
    {MILTER_SMFIP_NOHELO, "SMFIP_NOHELO"},
    {MILTER_SMFIP_NOMAIL, "SMFIP_NOMAIL"},
    {MILTER_SMFIP_NORCPT, "SMFIP_NORCPT"},
    {MILTER_SMFIP_NOBODY, "SMFIP_NOBODY"},
    {MILTER_SMFIP_NOHDRS, "SMFIP_NOHDRS"},
    {MILTER_SMFIP_NOEOH, "SMFIP_NOEOH"},
    {MILTER_SMFIP_NR_HDR, "SMFIP_NR_HDR"},
    {MILTER_SMFIP_NOUNKNOWN, "SMFIP_NOUNKNOWN"},
    {MILTER_SMFIP_NODATA, "SMFIP_NODATA"},
    {MILTER_SMFIP_SKIP, "SMFIP_SKIP"},
    {MILTER_SMFIP_RCPT_REJ, "SMFIP_RCPT_REJ"},
    {MILTER_SMFIP_NR_CONN, "SMFIP_NR_CONN"},
    {MILTER_SMFIP_NR_HELO, "SMFIP_NR_HELO"},
    {MILTER_SMFIP_NR_MAIL, "SMFIP_NR_MAIL"},
    {MILTER_SMFIP_NR_RCPT, "SMFIP_NR_RCPT"},
    {MILTER_SMFIP_NR_DATA, "SMFIP_NR_DATA"},
    {MILTER_SMFIP_NR_UNKN, "SMFIP_NR_UNKN"},
    {MILTER_SMFIP_NR_EOH, "SMFIP_NR_EOH"},
    {MILTER_SMFIP_NR_BODY, "SMFIP_NR_BODY"},
    {MILTER_SMFIP_HDR_LEADSPC, "SMFIP_HDR_LEADSPC"},
    {MILTER_SMFIP_MDS_256K, "SMFIP_MDS_256K"},
    {MILTER_SMFIP_MDS_1M, "SMFIP_MDS_1M"},
    {0, NULL},
};

/* Macro stage -> its name and the command its SMFIC_MACRO frame carries. */
struct macro_stage_info {
    const char *name;
    int command;
};

static const struct macro_stage_info macro_stage_table[MILTER_MACRO_STAGE_COUNT] = {
    [MILTER_SMFIM_CONNECT] = {"SMFIM_CONNECT", MILTER_SMFIC_CONNECT},
    [MILTER_SMFIM_HELO] = {"SMFIM_HELO", MILTER_SMFIC_HELO},
    [MILTER_SMFIM_ENVFROM] = {"SMFIM_ENVFROM", MILTER_SMFIC_MAIL},
    [MILTER_SMFIM_ENVRCPT] = {"SMFIM_ENVRCPT", MILTER_SMFIC_RCPT},
    [MILTER_SMFIM_DATA] = {"SMFIM_DATA", MILTER_SMFIC_DATA},
    [MILTER_SMFIM_EOM] = {"SMFIM_EOM", MILTER_SMFIC_BODYEOB},
    [MILTER_SMFIM_EOH] = {"SMFIM_EOH", MILTER_SMFIC_EOH},
};

/* Protocol flags per version, as Postfix's milter8.c offers them. */
#define PROTOCOL_V2                                                                          \
    (MILTER_SMFIP_NOCONNECT | MILTER_SMFIP_NOHELO | MILTER_SMFIP_NOMAIL | MILTER_SMFIP_NORCPT \
     | MILTER_SMFIP_NOBODY | MILTER_SMFIP_NOHDRS | MILTER_SMFIP_NOEOH)
#define PROTOCOL_V3 (PROTOCOL_V2 | MILTER_SMFIP_NOUNKNOWN)
#define PROTOCOL_V4 (PROTOCOL_V3 | MILTER_SMFIP_NODATA)
#define PROTOCOL_NO_REPLY                                                                      \
    (MILTER_SMFIP_NR_CONN | MILTER_SMFIP_NR_HELO | MILTER_SMFIP_NR_MAIL | MILTER_SMFIP_NR_RCPT \
     | MILTER_SMFIP_NR_DATA | MILTER_SMFIP_NR_UNKN | MILTER_SMFIP_NR_HDR | MILTER_SMFIP_NR_EOH \
     | MILTER_SMFIP_NR_BODY)
#define PROTOCOL_V6 \
    (PROTOCOL_V4 | MILTER_SMFIP_SKIP | MILTER_SMFIP_RCPT_REJ | PROTOCOL_NO_REPLY \
     | MILTER_SMFIP_HDR_LEADSPC)

/* ---------------------------------------------------------------- names */

const char *milter_command_type_name(enum milter_command_type type)
{
    if ((unsigned) type >= MILTER_COMMAND_COUNT)
        return "unknown";
    return command_table[type].name;
}

const char *milter_reply_type_name(enum milter_reply_type type)
{
    if ((unsigned) type >= MILTER_REPLY_COUNT)
        return "unknown";
    return reply_table[type].name;
}

int milter_command_code(enum milter_command_type type)
{
    if ((unsigned) type >= MILTER_COMMAND_COUNT)
        return -1;
    return command_table[type].code;
}

int milter_reply_code(enum milter_reply_type type)
{
    if ((unsigned) type >= MILTER_REPLY_COUNT)
        return -1;
    return reply_table[type].code;
}

int milter_command_type_of(int code)
{
    for (int i = 0; i < MILTER_COMMAND_COUNT; i++)
        if (command_table[i].code == code)
            return i;
    return -1;
}

int milter_reply_type_of(int code)
{
    for (int i = 0; i < MILTER_REPLY_COUNT; i++)
        if (reply_table[i].code == code)
            return i;
    return -1;
}

const char *milter_command_name(int code)
{
    int type = milter_command_type_of(code);
    return type < 0 ? "unknown" : command_table[type].name;
}

/* milter_reply_name - the reply's name; SETSYMLIST has a name but is no decodable reply */
const char *milter_reply_name(int code)
{
    if (code == MILTER_SMFIR_SETSYMLIST)
        return "SMFIR_SETSYMLIST";
    int type = milter_reply_type_of(code);
    return type < 0 ? "unknown" : reply_table[type].name;
}

const char *milter_macro_stage_name(enum milter_macro_stage stage)
{
    if ((unsigned) stage >= MILTER_MACRO_STAGE_COUNT)
        return "unknown";
    return macro_stage_table[stage].name;
}

int milter_macro_stage_command(enum milter_macro_stage stage)
{
    if ((unsigned) stage >= MILTER_MACRO_STAGE_COUNT)
        return -1;
    return macro_stage_table[stage].command;
}

const char *milter_family_name(int family)
{
    switch (family) {
    case MILTER_SMFIA_UNKNOWN:
        return "SMFIA_UNKNOWN";
    case MILTER_SMFIA_UNIX:
        return "SMFIA_UNIX";
    case MILTER_SMFIA_INET:
        return "SMFIA_INET";
    case MILTER_SMFIA_INET6:
        return "SMFIA_INET6";
    default:
        return "unknown";
    }
}

/* flag_lookup - the name of exactly one bit in a flag table */
static const char *flag_lookup(const struct flag_name *table, uint32_t flag)
{
    for (; table->name != NULL; table++)
        if (table->flag == flag)
            return table->name;
    return "unknown";
}

const char *milter_action_flag_name(uint32_t flag)
{
    return flag_lookup(action_flag_table, flag);
}

const char *milter_protocol_flag_name(uint32_t flag)
{
    return flag_lookup(protocol_flag_table, flag);
}

/* mask_format - "NAME|NAME|0x..." for a mask; -1 when out was too small */
static int mask_format(const struct flag_name *table, uint32_t mask, char *out, size_t size)
{
    size_t used = 0;
    bool cut = false;

    if (size == 0)
        return -1;
    out[0] = '\0';
    for (; table->name != NULL; table++) {
        if ((mask & table->flag) == 0)
            continue;
        mask &= ~table->flag;
        int n = snprintf(out + used, size - used, "%s%s", used ? "|" : "", table->name);
        if (n < 0 || (size_t) n >= size - used) {
            cut = true;
            break;
        }
        used += (size_t) n;
    }
    if (!cut && (mask != 0 || used == 0)) {
        int n = mask != 0 ? snprintf(out + used, size - used, "%s0x%x", used ? "|" : "",
                                     (unsigned) mask)
                          : snprintf(out + used, size - used, "0");
        if (n < 0 || (size_t) n >= size - used)
            cut = true;
    }
    if (cut)
        out[size - 1] = '\0';
    return cut ? -1 : 0;
}

int milter_actions_format(uint32_t mask, char *out, size_t size)
{
    return mask_format(action_flag_table, mask, out, size);
}

int milter_protocol_format(uint32_t mask, char *out, size_t size)
{
    return mask_format(protocol_flag_table, mask, out, size);
}

uint32_t milter_offered_actions(void)
{
    return MILTER_SMFIF_ALL;
}

/* milter_offered_protocol - the SMFIP_ mask Postfix offers for a version */
uint32_t milter_offered_protocol(uint32_t version)
{
    switch (version) {
    case 2:
        return PROTOCOL_V2;
    case 3:
        return PROTOCOL_V3;
    case 4:
        return PROTOCOL_V4;
    case 6:
        return PROTOCOL_V6;
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------- encoders */

void milter_buffer_free(struct milter_buffer *buffer)
{
    if (buffer == NULL)
        return;
    free(buffer->data);
    buffer->data = NULL;
    buffer->length = 0;
    buffer->capacity = 0;
}

void milter_buffer_reset(struct milter_buffer *buffer)
{
    if (buffer != NULL)
        buffer->length = 0;
}

/* buffer_reserve - make room for more bytes (at least doubling, so appends are linear) */
static void buffer_reserve(struct milter_buffer *buffer, size_t more)
{
    if (buffer->capacity - buffer->length >= more)
        return;
    size_t want = buffer->length + more;
    size_t capacity = buffer->capacity ? buffer->capacity : 256;
    while (capacity < want)
        capacity = capacity > SIZE_MAX / 2 ? want : capacity * 2;
    buffer->data = xrealloc(buffer->data, capacity);
    buffer->capacity = capacity;
}

static void put_bytes(struct milter_buffer *buffer, const void *bytes, size_t length)
{
    if (length > 0)
        memcpy(buffer->data + buffer->length, bytes, length);
    buffer->length += length;
}

void milter_buffer_append(struct milter_buffer *buffer, const struct milter_buffer *more)
{
    buffer_reserve(buffer, more->length);
    put_bytes(buffer, more->data, more->length);
}

static void put_byte(struct milter_buffer *buffer, int byte)
{
    buffer->data[buffer->length++] = (unsigned char) byte;
}

static void put_uint32(struct milter_buffer *buffer, uint32_t value)
{
    put_byte(buffer, (int) (value >> 24) & 0xff);
    put_byte(buffer, (int) (value >> 16) & 0xff);
    put_byte(buffer, (int) (value >> 8) & 0xff);
    put_byte(buffer, (int) value & 0xff);
}

static void put_uint16(struct milter_buffer *buffer, uint16_t value)
{
    put_byte(buffer, (value >> 8) & 0xff);
    put_byte(buffer, value & 0xff);
}

static void put_string(struct milter_buffer *buffer, const char *string)
{
    put_bytes(buffer, string, strlen(string) + 1);
}

/* data_add - add to a frame's data size; false once it passes MILTER_DATA_MAX */
static bool data_add(size_t *total, size_t more)
{
    if (more > MILTER_DATA_MAX || *total > MILTER_DATA_MAX - more)
        return false;
    *total += more;
    return true;
}

/* data_add_string - add a string and its NUL; false for NULL or too long */
static bool data_add_string(size_t *total, const char *string)
{
    if (string == NULL)
        return false;
    size_t length = strnlen(string, MILTER_DATA_MAX + 1);
    return length <= MILTER_DATA_MAX && data_add(total, length + 1);
}

/* frame_begin - reserve a whole frame and write its length and command byte */
static void frame_begin(struct milter_buffer *buffer, int command, size_t data_length)
{
    buffer_reserve(buffer, MILTER_LENGTH_BYTES + 1 + data_length);
    put_uint32(buffer, (uint32_t) (data_length + 1));
    put_byte(buffer, command);
}

/* encode_empty - a frame with a command byte and no data */
static int encode_empty(struct milter_buffer *buffer, int command)
{
    if (buffer == NULL)
        return -1;
    frame_begin(buffer, command, 0);
    return 0;
}

/* encode_strings - a frame whose data is one or more NUL-terminated strings */
static int encode_strings(struct milter_buffer *buffer, int command, const char *const argv[],
                          size_t count)
{
    size_t total = 0;

    if (buffer == NULL || argv == NULL)
        return -1;
    for (size_t i = 0; i < count; i++)
        if (!data_add_string(&total, argv[i]))
            return -1;
    frame_begin(buffer, command, total);
    for (size_t i = 0; i < count; i++)
        put_string(buffer, argv[i]);
    return 0;
}

int milter_encode_optneg(struct milter_buffer *buffer, uint32_t version, uint32_t actions,
                         uint32_t protocol)
{
    if (buffer == NULL)
        return -1;
    frame_begin(buffer, MILTER_SMFIC_OPTNEG, 3 * 4);
    put_uint32(buffer, version);
    put_uint32(buffer, actions);
    put_uint32(buffer, protocol);
    return 0;
}

/* is_macro_stage_command - one of the seven commands libmilter keeps macros for */
static bool is_macro_stage_command(int command)
{
    for (int i = 0; i < MILTER_MACRO_STAGE_COUNT; i++)
        if (macro_stage_table[i].command == command)
            return true;
    return false;
}

/* milter_encode_macro - stage command byte, then name/value string pairs */
int milter_encode_macro(struct milter_buffer *buffer, int stage_command,
                        const char *const names[], const char *const values[], size_t count)
{
    size_t total = 1;

    if (buffer == NULL || !is_macro_stage_command(stage_command))
        return -1;
    if (count > 0 && (names == NULL || values == NULL))
        return -1;
    for (size_t i = 0; i < count; i++) {
        if (names[i] == NULL || names[i][0] == '\0')
            return -1;
        if (!data_add_string(&total, names[i]) || !data_add_string(&total, values[i]))
            return -1;
    }
    frame_begin(buffer, MILTER_SMFIC_MACRO, total);
    put_byte(buffer, stage_command);
    for (size_t i = 0; i < count; i++) {
        put_string(buffer, names[i]);
        put_string(buffer, values[i]);
    }
    return 0;
}

/* milter_encode_connect - hostname, family, and for a known family port + address */
int milter_encode_connect(struct milter_buffer *buffer, const char *hostname, int family,
                          uint16_t port, const char *address)
{
    size_t total = 0;

    if (buffer == NULL || !data_add_string(&total, hostname) || !data_add(&total, 1))
        return -1;
    switch (family) {
    case MILTER_SMFIA_UNKNOWN:
        break;
    case MILTER_SMFIA_UNIX:
    case MILTER_SMFIA_INET:
    case MILTER_SMFIA_INET6:
        if (!data_add(&total, 2) || !data_add_string(&total, address))
            return -1;
        break;
    default:
        return -1;
    }
    frame_begin(buffer, MILTER_SMFIC_CONNECT, total);
    put_string(buffer, hostname);
    put_byte(buffer, family);
    if (family != MILTER_SMFIA_UNKNOWN) {
        put_uint16(buffer, port);
        put_string(buffer, address);
    }
    return 0;
}

int milter_encode_helo(struct milter_buffer *buffer, const char *name)
{
    const char *argv[1] = {name};
    return encode_strings(buffer, MILTER_SMFIC_HELO, argv, 1);
}

int milter_encode_mail(struct milter_buffer *buffer, const char *const argv[], size_t count)
{
    if (count == 0)
        return -1;
    return encode_strings(buffer, MILTER_SMFIC_MAIL, argv, count);
}

int milter_encode_rcpt(struct milter_buffer *buffer, const char *const argv[], size_t count)
{
    if (count == 0)
        return -1;
    return encode_strings(buffer, MILTER_SMFIC_RCPT, argv, count);
}

int milter_encode_data(struct milter_buffer *buffer)
{
    return encode_empty(buffer, MILTER_SMFIC_DATA);
}

int milter_encode_header(struct milter_buffer *buffer, const char *name, const char *value)
{
    const char *argv[2] = {name, value};
    if (name == NULL || name[0] == '\0')
        return -1;
    return encode_strings(buffer, MILTER_SMFIC_HEADER, argv, 2);
}

int milter_encode_eoh(struct milter_buffer *buffer)
{
    return encode_empty(buffer, MILTER_SMFIC_EOH);
}

int milter_encode_body(struct milter_buffer *buffer, const void *chunk, size_t length)
{
    if (buffer == NULL || chunk == NULL || length == 0 || length > MILTER_BODY_CHUNK_MAX)
        return -1;
    frame_begin(buffer, MILTER_SMFIC_BODY, length);
    put_bytes(buffer, chunk, length);
    return 0;
}

int milter_encode_eob(struct milter_buffer *buffer)
{
    return encode_empty(buffer, MILTER_SMFIC_BODYEOB);
}

int milter_encode_abort(struct milter_buffer *buffer)
{
    return encode_empty(buffer, MILTER_SMFIC_ABORT);
}

int milter_encode_quit(struct milter_buffer *buffer)
{
    return encode_empty(buffer, MILTER_SMFIC_QUIT);
}

int milter_encode_quit_nc(struct milter_buffer *buffer)
{
    return encode_empty(buffer, MILTER_SMFIC_QUIT_NC);
}

int milter_encode_unknown(struct milter_buffer *buffer, const char *line)
{
    const char *argv[1] = {line};
    return encode_strings(buffer, MILTER_SMFIC_UNKNOWN, argv, 1);
}

static bool is_header_name(const char *name);
static bool is_header_value(const char *value);

/* ---------------------------------------------------------------- replies (filter side) */

int milter_encode_reply(struct milter_buffer *buffer, enum milter_reply_type type)
{
    switch (type) {
    case MILTER_REPLY_ACCEPT:
    case MILTER_REPLY_CONTINUE:
    case MILTER_REPLY_DISCARD:
    case MILTER_REPLY_PROGRESS:
    case MILTER_REPLY_REJECT:
    case MILTER_REPLY_TEMPFAIL:
    case MILTER_REPLY_SHUTDOWN:
    case MILTER_REPLY_CONN_FAIL:
    case MILTER_REPLY_SKIP:
        return encode_empty(buffer, milter_reply_code(type));
    default:
        return -1;
    }
}

int milter_encode_replycode(struct milter_buffer *buffer, const char *reply)
{
    struct milter_replycode parsed;
    const char *argv[1] = {reply};
    if (reply == NULL || milter_replycode_parse(reply, strlen(reply), &parsed, NULL) != 0)
        return -1;
    return encode_strings(buffer, MILTER_SMFIR_REPLYCODE, argv, 1);
}

int milter_encode_header_edit(struct milter_buffer *buffer, enum milter_reply_type type,
                              uint32_t index, const char *name, const char *value)
{
    const char *argv[2] = {name, value};
    size_t total = 4;
    if (buffer == NULL || name == NULL || value == NULL || !is_header_name(name) ||
        !is_header_value(value) || index > INT32_MAX)
        return -1;
    if (type == MILTER_REPLY_ADDHEADER)
        return encode_strings(buffer, MILTER_SMFIR_ADDHEADER, argv, 2);
    if (type != MILTER_REPLY_INSHEADER && type != MILTER_REPLY_CHGHEADER)
        return -1;
    if (!data_add_string(&total, name) || !data_add_string(&total, value))
        return -1;
    frame_begin(buffer, milter_reply_code(type), total);
    put_uint32(buffer, index);
    put_string(buffer, name);
    put_string(buffer, value);
    return 0;
}

int milter_encode_envelope_edit(struct milter_buffer *buffer, enum milter_reply_type type,
                                const char *address, const char *args)
{
    const char *argv[2] = {address, args};
    if (address == NULL || address[0] == '\0')
        return -1;
    switch (type) {
    case MILTER_REPLY_ADDRCPT:
    case MILTER_REPLY_DELRCPT:
        return encode_strings(buffer, milter_reply_code(type), argv, 1);
    case MILTER_REPLY_ADDRCPT_PAR:
    case MILTER_REPLY_CHGFROM:
        return encode_strings(buffer, milter_reply_code(type), argv, args != NULL ? 2 : 1);
    default:
        return -1;
    }
}

int milter_encode_replbody(struct milter_buffer *buffer, const void *chunk, size_t length)
{
    if (buffer == NULL || (chunk == NULL && length > 0) || length > MILTER_BODY_CHUNK_MAX)
        return -1;
    frame_begin(buffer, MILTER_SMFIR_REPLBODY, length);
    put_bytes(buffer, chunk, length);
    return 0;
}

int milter_encode_quarantine(struct milter_buffer *buffer, const char *reason)
{
    const char *argv[1] = {reason};
    if (reason == NULL || reason[0] == '\0')
        return -1;
    return encode_strings(buffer, MILTER_SMFIR_QUARANTINE, argv, 1);
}

/* ---------------------------------------------------------------- frames */

/* read_uint32 - a network-order 32-bit integer from 4 bytes */
static uint32_t read_uint32(const unsigned char *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* milter_frame_next - the first complete frame in buffer, or 0 for "need more" */
int milter_frame_next(const unsigned char *buffer, size_t length, size_t max_frame,
                      struct milter_frame *out, size_t *consumed)
{
    *consumed = 0;
    out->error = NULL;
    if (buffer == NULL || length < MILTER_LENGTH_BYTES)
        return 0;
    uint32_t frame_length = read_uint32(buffer);
    if (frame_length == 0) {
        out->error = "frame length is 0 (no command byte)";
        return -1;
    }
    if (frame_length > max_frame) {
        out->error = "frame length exceeds the limit";
        return -1;
    }
    if (length - MILTER_LENGTH_BYTES < frame_length)
        return 0;
    out->command = buffer[MILTER_LENGTH_BYTES];
    out->data = buffer + MILTER_LENGTH_BYTES + 1;
    out->length = frame_length - 1;
    *consumed = MILTER_LENGTH_BYTES + (size_t) frame_length;
    return 1;
}

/* milter_string_list_next - step through a list the decoder validated */
const char *milter_string_list_next(const struct milter_string_list *list, const char *previous)
{
    if (list == NULL || list->count == 0)
        return NULL;
    if (previous == NULL)
        return list->data;
    const char *end = list->data + list->length;
    if (previous < list->data || previous >= end)
        return NULL;
    const char *nul = memchr(previous, '\0', (size_t) (end - previous));
    if (nul == NULL || nul + 1 >= end)
        return NULL;
    return nul + 1;
}

/* A bounded read position inside one frame's data. */
struct cursor {
    const unsigned char *at;
    size_t left;
    const char **error;
};

/* cursor_fail - record why decoding stopped; always -1 */
static int cursor_fail(struct cursor *c, const char *why)
{
    *c->error = why;
    return -1;
}

static int take_uint32(struct cursor *c, uint32_t *value)
{
    if (c->left < 4)
        return cursor_fail(c, "truncated 32-bit integer");
    *value = read_uint32(c->at);
    c->at += 4;
    c->left -= 4;
    return 0;
}

static int take_uint16(struct cursor *c, uint16_t *value)
{
    if (c->left < 2)
        return cursor_fail(c, "truncated 16-bit integer");
    *value = (uint16_t) (c->at[0] << 8 | c->at[1]);
    c->at += 2;
    c->left -= 2;
    return 0;
}

static int take_byte(struct cursor *c, int *value)
{
    if (c->left < 1)
        return cursor_fail(c, "truncated frame: a byte is missing");
    *value = c->at[0];
    c->at++;
    c->left--;
    return 0;
}

/* take_string - a NUL-terminated string whose NUL lies inside the frame */
static int take_string(struct cursor *c, const char **value)
{
    const unsigned char *nul = c->left ? memchr(c->at, '\0', c->left) : NULL;
    if (nul == NULL)
        return cursor_fail(c, c->left ? "string without NUL terminator" : "missing string");
    *value = (const char *) c->at;
    size_t used = (size_t) (nul - c->at) + 1;
    c->at += used;
    c->left -= used;
    return 0;
}

/* take_string_list - every remaining byte as NUL-terminated strings */
static int take_string_list(struct cursor *c, struct milter_string_list *list)
{
    list->data = (const char *) c->at;
    list->length = c->left;
    list->count = 0;
    if (c->left > 0 && c->at[c->left - 1] != '\0')
        return cursor_fail(c, "string without NUL terminator");
    for (size_t i = 0; i < c->left; i++)
        if (c->at[i] == '\0')
            list->count++;
    c->at += c->left;
    c->left = 0;
    return 0;
}

static int take_end(struct cursor *c)
{
    if (c->left != 0)
        return cursor_fail(c, "unexpected bytes after the last field");
    return 0;
}

/* ---------------------------------------------------------------- replies */

/* is_header_name - RFC 5322 field name: printable ASCII except ':', at least one byte */
static bool is_header_name(const char *name)
{
    if (name[0] == '\0')
        return false;
    for (const unsigned char *p = (const unsigned char *) name; *p; p++)
        if (*p < 33 || *p > 126 || *p == ':')
            return false;
    return true;
}

/* is_header_value - CR and LF only as folding: CRLF or LF, then a space or a tab */
static bool is_header_value(const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\r') {
            if (p[1] != '\n')
                return false;
            continue;
        }
        if (*p == '\n' && p[1] != ' ' && p[1] != '\t')
            return false;
    }
    return true;
}

/* decode_optneg - version, actions, protocol, then (stage, names) macro lists */
static int decode_optneg(struct cursor *c, struct milter_optneg *out)
{
    bool seen[MILTER_MACRO_STAGE_COUNT] = {false};

    if (take_uint32(c, &out->version) < 0 || take_uint32(c, &out->actions) < 0
        || take_uint32(c, &out->protocol) < 0)
        return -1;
    out->macro_list_count = 0;
    while (c->left > 0) {
        uint32_t stage;
        const char *names;
        if (take_uint32(c, &stage) < 0)
            return -1;
        if (stage >= MILTER_MACRO_STAGE_COUNT)
            return cursor_fail(c, "macro list for an unknown stage");
        if (seen[stage])
            return cursor_fail(c, "macro list given twice for one stage");
        if (take_string(c, &names) < 0)
            return -1;
        seen[stage] = true;
        out->macro_lists[out->macro_list_count].stage = (enum milter_macro_stage) stage;
        out->macro_lists[out->macro_list_count].names = names;
        out->macro_list_count++;
    }
    return 0;
}

/* decode_address - a non-empty address, optionally followed by an argument string */
static int decode_address(struct cursor *c, struct milter_reply *out, bool args_allowed)
{
    out->envelope.args = NULL;
    if (take_string(c, &out->envelope.address) < 0)
        return -1;
    if (out->envelope.address[0] == '\0')
        return cursor_fail(c, "empty address");
    if (args_allowed && c->left > 0 && take_string(c, &out->envelope.args) < 0)
        return -1;
    return take_end(c);
}

/* decode_header - [index,] name, value; checks the name and the folding of the value */
static int decode_header(struct cursor *c, struct milter_reply *out, bool has_index)
{
    out->header.index = 0;
    if (has_index) {
        if (take_uint32(c, &out->header.index) < 0)
            return -1;
        if (out->header.index > INT32_MAX)
            return cursor_fail(c, "header index out of range");
    }
    if (take_string(c, &out->header.name) < 0 || take_string(c, &out->header.value) < 0)
        return -1;
    if (!is_header_name(out->header.name))
        return cursor_fail(c, "invalid header name");
    if (!is_header_value(out->header.value))
        return cursor_fail(c, "header value has CR or LF outside folding");
    return take_end(c);
}

/* milter_reply_decode - one reply frame into a tagged struct, validated */
int milter_reply_decode(const struct milter_frame *frame, struct milter_reply *out,
                        const char **error)
{
    const char *ignored;
    if (error == NULL)
        error = &ignored;
    *error = NULL;
    struct cursor c = {frame->data, frame->length, error};

    memset(out, 0, sizeof *out);
    if (frame->command == MILTER_SMFIR_SETSYMLIST)
        return cursor_fail(&c, "SMFIR_SETSYMLIST outside option negotiation");
    int type = milter_reply_type_of(frame->command);
    if (type < 0)
        return cursor_fail(&c, "unknown reply");
    out->type = (enum milter_reply_type) type;

    switch (out->type) {
    case MILTER_REPLY_OPTNEG:
        return decode_optneg(&c, &out->optneg);
    case MILTER_REPLY_ADDRCPT:
    case MILTER_REPLY_DELRCPT:
        return decode_address(&c, out, false);
    case MILTER_REPLY_ADDRCPT_PAR:
    case MILTER_REPLY_CHGFROM:
        return decode_address(&c, out, true);
    case MILTER_REPLY_ADDHEADER:
        return decode_header(&c, out, false);
    case MILTER_REPLY_INSHEADER:
    case MILTER_REPLY_CHGHEADER:
        return decode_header(&c, out, true);
    case MILTER_REPLY_REPLBODY:
        out->body.data = c.at;
        out->body.length = c.left;
        return 0;
    case MILTER_REPLY_QUARANTINE:
        if (take_string(&c, &out->quarantine_reason) < 0)
            return -1;
        if (out->quarantine_reason[0] == '\0')
            return cursor_fail(&c, "empty quarantine reason");
        return take_end(&c);
    case MILTER_REPLY_REPLYCODE: {
        const char *text;
        if (take_string(&c, &text) < 0 || take_end(&c) < 0)
            return -1;
        return milter_replycode_parse(text, frame->length - 1, &out->replycode, error);
    }
    case MILTER_REPLY_SHUTDOWN:
    case MILTER_REPLY_ACCEPT:
    case MILTER_REPLY_CONTINUE:
    case MILTER_REPLY_DISCARD:
    case MILTER_REPLY_CONN_FAIL:
    case MILTER_REPLY_PROGRESS:
    case MILTER_REPLY_REJECT:
    case MILTER_REPLY_SKIP:
    case MILTER_REPLY_TEMPFAIL:
        if (c.left != 0)
            return cursor_fail(&c, "data after a reply that takes none");
        return 0;
    case MILTER_REPLY_COUNT:
        break;
    }
    return cursor_fail(&c, "unknown reply");
}

/* is_digit - ASCII digit (isdigit depends on the locale) */
static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* enhanced_length - bytes of "c.sss.ddd" at text (1-3 digits each), or 0 when malformed */
static size_t enhanced_length(const char *text, size_t length)
{
    size_t i = 0;
    if (length < 5 || !is_digit(text[0]) || text[1] != '.')
        return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t digits = 0;
        while (i < length && digits < 3 && is_digit(text[i])) {
            i++;
            digits++;
        }
        if (digits == 0)
            return 0;
        if (part == 0) {
            if (i >= length || text[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < length && text[i] != ' ')
        return 0;
    return i;
}

/* parse_reply_line - one "ddd[- ]text" line; last tells which separator it needs */
static int parse_reply_line(const char *line, size_t length, bool last, int *code,
                            struct milter_reply_line *out, const char **error)
{
    if (length < 4) {
        *error = "reply line too short";
        return -1;
    }
    if ((line[0] != '4' && line[0] != '5') || !is_digit(line[1]) || !is_digit(line[2])) {
        *error = "reply code is not 4xx or 5xx";
        return -1;
    }
    int line_code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (*code != 0 && line_code != *code) {
        *error = "reply lines have different codes";
        return -1;
    }
    *code = line_code;
    if (line[3] != (last ? ' ' : '-')) {
        *error = last ? "last reply line needs a space after the code"
                      : "reply line before the last needs '-' after the code";
        return -1;
    }
    const char *rest = line + 4;
    size_t rest_length = length - 4;
    out->enhanced = NULL;
    out->enhanced_length = 0;
    if (rest_length > 1 && is_digit(rest[0]) && rest[1] == '.') {
        size_t n = enhanced_length(rest, rest_length);
        if (n == 0) {
            *error = "malformed enhanced status code";
            return -1;
        }
        if (rest[0] != line[0]) {
            *error = "enhanced status code class differs from the reply code";
            return -1;
        }
        out->enhanced = rest;
        out->enhanced_length = n;
        rest += n;
        rest_length -= n;
        if (rest_length > 0) { /* the space after the enhanced code */
            rest++;
            rest_length--;
        }
    }
    out->text = rest;
    out->text_length = rest_length;
    return 0;
}

/* milter_replycode_parse - split an SMTP reply into CRLF lines and check each */
int milter_replycode_parse(const char *text, size_t length, struct milter_replycode *out,
                           const char **error)
{
    const char *ignored;
    if (error == NULL)
        error = &ignored;
    *error = NULL;
    memset(out, 0, sizeof *out);
    out->reply = text;
    if (text == NULL || length == 0) {
        *error = "empty reply";
        return -1;
    }
    size_t start = 0;
    for (;;) {
        /* Find this line's end; only CRLF may end it, no other control byte may occur. */
        size_t end = start;
        bool more = false;
        while (end < length) {
            unsigned char ch = (unsigned char) text[end];
            if (ch == '\r') {
                if (end + 1 >= length || text[end + 1] != '\n') {
                    *error = "bare CR in reply";
                    return -1;
                }
                more = true;
                break;
            }
            if (ch == '\n') {
                *error = "bare LF in reply";
                return -1;
            }
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                *error = "control character in reply";
                return -1;
            }
            end++;
        }
        if (end - start > MILTER_REPLY_LINE_MAX) {
            *error = "reply line too long";
            return -1;
        }
        if (out->line_count == MILTER_REPLY_LINES_MAX) {
            *error = "too many reply lines";
            return -1;
        }
        if (parse_reply_line(text + start, end - start, !more, &out->code,
                             &out->lines[out->line_count], error) < 0)
            return -1;
        out->line_count++;
        if (!more)
            return 0;
        start = end + 2;
    }
}

/* milter_percent_unescape - "%%" -> "%", lone '%' dropped (Postfix's rule) */
int milter_percent_unescape(const char *text, size_t length, char *out, size_t out_size)
{
    size_t used = 0;

    if (out == NULL || out_size == 0)
        return -1;
    for (size_t i = 0; i < length;) {
        char ch = text[i++];
        if (ch == '%') {
            if (i >= length)
                break;
            ch = text[i++];
        }
        if (used + 1 >= out_size) {
            out[0] = '\0';
            return -1;
        }
        out[used++] = ch;
    }
    out[used] = '\0';
    return 0;
}

/* milter_optneg_check - is the negotiation answer within what was offered? */
int milter_optneg_check(uint32_t offered_version, uint32_t offered_actions,
                        uint32_t offered_protocol, const struct milter_optneg *answer,
                        const char **error)
{
    const char *ignored;
    if (error == NULL)
        error = &ignored;
    *error = NULL;
    if (answer->version < MILTER_PROTOCOL_VERSION_MIN) {
        *error = "milter protocol version too old";
        return -1;
    }
    if (answer->version > offered_version) {
        *error = "milter protocol version newer than offered";
        return -1;
    }
    if ((answer->actions & ~offered_actions) != 0) {
        *error = "milter asks for actions that were not offered";
        return -1;
    }
    if ((answer->protocol & ~offered_protocol) != 0) {
        *error = "milter asks for protocol flags that were not offered";
        return -1;
    }
    if (answer->macro_list_count > 0 && (answer->actions & MILTER_SMFIF_SETSYMLIST) == 0) {
        *error = "macro lists without SMFIF_SETSYMLIST";
        return -1;
    }
    return 0;
}

/* milter_reply_allowed - the stage rules, from reply_table's kinds */
bool milter_reply_allowed(enum milter_command_type stage, enum milter_reply_type reply,
                          uint32_t actions, uint32_t protocol)
{
    if ((unsigned) stage >= MILTER_COMMAND_COUNT || (unsigned) reply >= MILTER_REPLY_COUNT)
        return false;
    if (!command_table[stage].awaits_reply)
        return false;
    const struct reply_info *info = &reply_table[reply];
    if (stage == MILTER_COMMAND_OPTNEG)
        return info->kind == REPLY_KIND_NEGOTIATION;
    switch (info->kind) {
    case REPLY_KIND_NEGOTIATION:
        return false;
    case REPLY_KIND_DECISION:
        return true;
    case REPLY_KIND_DISCARD:
        return stage != MILTER_COMMAND_CONNECT && stage != MILTER_COMMAND_HELO;
    case REPLY_KIND_SKIP:
        return stage == MILTER_COMMAND_BODY && (protocol & MILTER_SMFIP_SKIP) != 0;
    case REPLY_KIND_MODIFY:
        return stage == MILTER_COMMAND_BODYEOB && (actions & info->action_flag) != 0;
    }
    return false;
}

bool milter_reply_is_modification(enum milter_reply_type reply)
{
    return (unsigned) reply < MILTER_REPLY_COUNT && reply_table[reply].kind == REPLY_KIND_MODIFY;
}

/* milter_command_wanted - not refused by a SMFIP_NO* flag, and in the version */
bool milter_command_wanted(enum milter_command_type command, uint32_t version,
                           uint32_t protocol)
{
    if ((unsigned) command >= MILTER_COMMAND_COUNT)
        return false;
    const struct command_info *info = &command_table[command];
    if (version < info->min_version)
        return false;
    return (protocol & info->no_send_flag) == 0;
}

/* milter_command_awaits_reply - a reply comes unless SMFIP_NR_* says not */
bool milter_command_awaits_reply(enum milter_command_type command, uint32_t protocol)
{
    if ((unsigned) command >= MILTER_COMMAND_COUNT)
        return false;
    const struct command_info *info = &command_table[command];
    return info->awaits_reply && (protocol & info->no_reply_flag) == 0;
}

/* ---------------------------------------------------------------- commands */

/* decode_connect - hostname, family, and for a known family the port and address */
static int decode_connect(struct cursor *c, struct milter_command *out)
{
    out->connect.port = 0;
    out->connect.address = NULL;
    if (take_string(c, &out->connect.hostname) < 0 || take_byte(c, &out->connect.family) < 0)
        return -1;
    switch (out->connect.family) {
    case MILTER_SMFIA_UNKNOWN:
        return take_end(c);
    case MILTER_SMFIA_UNIX:
    case MILTER_SMFIA_INET:
    case MILTER_SMFIA_INET6:
        if (take_uint16(c, &out->connect.port) < 0 || take_string(c, &out->connect.address) < 0)
            return -1;
        return take_end(c);
    default:
        return cursor_fail(c, "unknown address family");
    }
}

/* milter_command_decode - one MTA -> milter frame into a tagged struct, validated */
int milter_command_decode(const struct milter_frame *frame, struct milter_command *out,
                          const char **error)
{
    const char *ignored;
    if (error == NULL)
        error = &ignored;
    *error = NULL;
    struct cursor c = {frame->data, frame->length, error};

    memset(out, 0, sizeof *out);
    int type = milter_command_type_of(frame->command);
    if (type < 0)
        return cursor_fail(&c, "unknown command");
    out->type = (enum milter_command_type) type;

    switch (out->type) {
    case MILTER_COMMAND_OPTNEG:
        if (take_uint32(&c, &out->optneg.version) < 0 || take_uint32(&c, &out->optneg.actions) < 0
            || take_uint32(&c, &out->optneg.protocol) < 0)
            return -1;
        return take_end(&c);
    case MILTER_COMMAND_MACRO:
        if (take_byte(&c, &out->macro.stage_command) < 0)
            return -1;
        if (!is_macro_stage_command(out->macro.stage_command))
            return cursor_fail(&c, "macros for a command that takes none");
        if (take_string_list(&c, &out->macro.pairs) < 0)
            return -1;
        if (out->macro.pairs.count % 2 != 0)
            return cursor_fail(&c, "macro name without a value");
        return 0;
    case MILTER_COMMAND_CONNECT:
        return decode_connect(&c, out);
    case MILTER_COMMAND_HELO:
        if (take_string(&c, &out->helo) < 0)
            return -1;
        return take_end(&c);
    case MILTER_COMMAND_MAIL:
    case MILTER_COMMAND_RCPT:
        if (take_string_list(&c, &out->argv) < 0)
            return -1;
        if (out->argv.count == 0)
            return cursor_fail(&c, "missing address");
        return 0;
    case MILTER_COMMAND_HEADER:
        if (take_string(&c, &out->header.name) < 0 || take_string(&c, &out->header.value) < 0)
            return -1;
        return take_end(&c);
    case MILTER_COMMAND_BODY:
    case MILTER_COMMAND_BODYEOB:
        out->body.data = c.at;
        out->body.length = c.left;
        return 0;
    case MILTER_COMMAND_UNKNOWN:
        if (take_string(&c, &out->unknown) < 0)
            return -1;
        return take_end(&c);
    case MILTER_COMMAND_ABORT:
    case MILTER_COMMAND_QUIT:
    case MILTER_COMMAND_QUIT_NC:
    case MILTER_COMMAND_DATA:
    case MILTER_COMMAND_EOH:
        if (c.left != 0)
            return cursor_fail(&c, "data after a command that takes none");
        return 0;
    case MILTER_COMMAND_COUNT:
        break;
    }
    return cursor_fail(&c, "unknown command");
}
