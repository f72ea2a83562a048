/*
 * test_milter_codec.c - unit tests for milter-bridge/milter_codec.c (cmocka).
 *
 * Interface: a cmocka test program; exit status 0 when every test passes.
 * Covers: every constant against libmilter's own headers (included here only), name tables,
 * every command encoder round-tripped through milter_frame_next + milter_command_decode,
 * every reply type decoded from hand-built bytes, malformed replies and commands, REPLYCODE
 * parsing, '%' unescaping, frames split at every byte boundary, negotiation checks and the
 * reply/command stage rules. Fatal: none (failures are reported by cmocka). Memory: every
 * milter_buffer is freed by the test that made it.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* libmilter's definitions, only to cross-check ours (SMFIF_ and SMFIM_ live in mfapi.h). */
#include <libmilter/mfapi.h>
#include <libmilter/mfdef.h>

#include "milter_codec.h"

/* ---------------------------------------------------------------- helpers */

#define EXPECT_INT(got, want, what)                                                     \
    do {                                                                                \
        long long got_ = (long long) (got), want_ = (long long) (want);                 \
        if (got_ != want_)                                                              \
            fail_msg("%s: got %lld (0x%llx), want %lld (0x%llx)", (what), got_,         \
                     (unsigned long long) got_, want_, (unsigned long long) want_);     \
    } while (0)

#define EXPECT_STR(got, want, what)                                                     \
    do {                                                                                \
        const char *got_ = (got), *want_ = (want);                                      \
        if ((got_ == NULL) != (want_ == NULL) || (got_ && strcmp(got_, want_) != 0))    \
            fail_msg("%s: got \"%s\", want \"%s\"", (what), got_ ? got_ : "(null)",     \
                     want_ ? want_ : "(null)");                                         \
    } while (0)

#define EXPECT_MEM(got, got_length, want, want_length, what)                            \
    do {                                                                                \
        size_t gl_ = (got_length), wl_ = (want_length);                                 \
        if (gl_ != wl_ || (gl_ > 0 && memcmp((got), (want), gl_) != 0))                 \
            fail_msg("%s: got \"%.*s\" (%zu bytes), want \"%.*s\" (%zu bytes)", (what), \
                     (int) gl_, (const char *) (got), gl_, (int) wl_,                   \
                     (const char *) (want), wl_);                                       \
    } while (0)

/* A test-side frame builder, independent of the encoders: length prefix + command + data. */
struct raw_frame {
    unsigned char bytes[MILTER_MAX_FRAME + MILTER_LENGTH_BYTES];
    size_t length;
};

static void raw_frame_make(struct raw_frame *f, int command, const void *data, size_t length)
{
    uint32_t n = (uint32_t) length + 1;
    f->bytes[0] = (unsigned char) (n >> 24);
    f->bytes[1] = (unsigned char) (n >> 16);
    f->bytes[2] = (unsigned char) (n >> 8);
    f->bytes[3] = (unsigned char) n;
    f->bytes[4] = (unsigned char) command;
    if (length > 0)
        memcpy(f->bytes + 5, data, length);
    f->length = length + 5;
}

/* next_frame_ok - the buffer holds exactly one frame; return it */
static void next_frame_ok(const unsigned char *bytes, size_t length, struct milter_frame *frame)
{
    size_t consumed = 99;
    int rc = milter_frame_next(bytes, length, MILTER_MAX_FRAME, frame, &consumed);
    if (rc != 1)
        fail_msg("milter_frame_next: got %d (%s), want 1", rc,
                 frame->error ? frame->error : "no error");
    EXPECT_INT(consumed, length, "consumed");
}

/* decode_command_ok - the buffer holds exactly one valid command; decode it */
static void decode_command_ok(const struct milter_buffer *b, struct milter_command *command)
{
    static struct milter_frame frame; /* the command points into b, not into frame */
    const char *error = NULL;
    next_frame_ok(b->data, b->length, &frame);
    int rc = milter_command_decode(&frame, command, &error);
    if (rc != 0)
        fail_msg("milter_command_decode: got %d (%s), want 0", rc, error ? error : "");
}

/* decode_reply_bytes - build a frame from (command, data) and decode it as a reply */
static int decode_reply_bytes(int command, const void *data, size_t length,
                              struct milter_reply *reply, const char **error)
{
    static struct raw_frame raw; /* decoded pointers stay valid until the next call */
    struct milter_frame frame;
    raw_frame_make(&raw, command, data, length);
    next_frame_ok(raw.bytes, raw.length, &frame);
    return milter_reply_decode(&frame, reply, error);
}

static void decode_reply_ok(int command, const void *data, size_t length,
                            struct milter_reply *reply)
{
    const char *error = NULL;
    int rc = decode_reply_bytes(command, data, length, reply, &error);
    if (rc != 0)
        fail_msg("reply '%c': got %d (%s), want 0", command, rc, error ? error : "");
}

/* S(x) - a string literal and its length without the literal's own final NUL */
#define S(x) (x), (sizeof(x) - 1)

/* ---------------------------------------------------------------- constants */

struct constant_case {
    const char *name;
    long long ours;
    long long theirs;
};

#define SAME(ours, theirs) {#theirs, (long long) (ours), (long long) (theirs)}

static const struct constant_case constant_cases[] = {
    SAME(MILTER_PROTOCOL_VERSION, SMFI_PROT_VERSION),
    SAME(MILTER_LENGTH_BYTES, MILTER_LEN_BYTES),
    SAME(MILTER_BODY_CHUNK_MAX, MILTER_CHUNK_SIZE),
    SAME(MILTER_DATA_MAX, MILTER_MAX_DATA_SIZE),
    SAME(MILTER_SMFIC_ABORT, SMFIC_ABORT),
    SAME(MILTER_SMFIC_BODY, SMFIC_BODY),
    SAME(MILTER_SMFIC_CONNECT, SMFIC_CONNECT),
    SAME(MILTER_SMFIC_MACRO, SMFIC_MACRO),
    SAME(MILTER_SMFIC_BODYEOB, SMFIC_BODYEOB),
    SAME(MILTER_SMFIC_HELO, SMFIC_HELO),
    SAME(MILTER_SMFIC_QUIT_NC, SMFIC_QUIT_NC),
    SAME(MILTER_SMFIC_HEADER, SMFIC_HEADER),
    SAME(MILTER_SMFIC_MAIL, SMFIC_MAIL),
    SAME(MILTER_SMFIC_EOH, SMFIC_EOH),
    SAME(MILTER_SMFIC_OPTNEG, SMFIC_OPTNEG),
    SAME(MILTER_SMFIC_QUIT, SMFIC_QUIT),
    SAME(MILTER_SMFIC_RCPT, SMFIC_RCPT),
    SAME(MILTER_SMFIC_DATA, SMFIC_DATA),
    SAME(MILTER_SMFIC_UNKNOWN, SMFIC_UNKNOWN),
    SAME(MILTER_SMFIR_ADDRCPT, SMFIR_ADDRCPT),
    SAME(MILTER_SMFIR_DELRCPT, SMFIR_DELRCPT),
    SAME(MILTER_SMFIR_ADDRCPT_PAR, SMFIR_ADDRCPT_PAR),
    SAME(MILTER_SMFIR_SHUTDOWN, SMFIR_SHUTDOWN),
    SAME(MILTER_SMFIR_ACCEPT, SMFIR_ACCEPT),
    SAME(MILTER_SMFIR_REPLBODY, SMFIR_REPLBODY),
    SAME(MILTER_SMFIR_CONTINUE, SMFIR_CONTINUE),
    SAME(MILTER_SMFIR_DISCARD, SMFIR_DISCARD),
    SAME(MILTER_SMFIR_CHGFROM, SMFIR_CHGFROM),
    SAME(MILTER_SMFIR_CONN_FAIL, SMFIR_CONN_FAIL),
    SAME(MILTER_SMFIR_ADDHEADER, SMFIR_ADDHEADER),
    SAME(MILTER_SMFIR_INSHEADER, SMFIR_INSHEADER),
    SAME(MILTER_SMFIR_SETSYMLIST, SMFIR_SETSYMLIST),
    SAME(MILTER_SMFIR_CHGHEADER, SMFIR_CHGHEADER),
    SAME(MILTER_SMFIR_PROGRESS, SMFIR_PROGRESS),
    SAME(MILTER_SMFIR_QUARANTINE, SMFIR_QUARANTINE),
    SAME(MILTER_SMFIR_REJECT, SMFIR_REJECT),
    SAME(MILTER_SMFIR_SKIP, SMFIR_SKIP),
    SAME(MILTER_SMFIR_TEMPFAIL, SMFIR_TEMPFAIL),
    SAME(MILTER_SMFIR_REPLYCODE, SMFIR_REPLYCODE),
    SAME(MILTER_SMFIF_ADDHDRS, SMFIF_ADDHDRS),
    SAME(MILTER_SMFIF_CHGBODY, SMFIF_CHGBODY),
    SAME(MILTER_SMFIF_ADDRCPT, SMFIF_ADDRCPT),
    SAME(MILTER_SMFIF_DELRCPT, SMFIF_DELRCPT),
    SAME(MILTER_SMFIF_CHGHDRS, SMFIF_CHGHDRS),
    SAME(MILTER_SMFIF_QUARANTINE, SMFIF_QUARANTINE),
    SAME(MILTER_SMFIF_CHGFROM, SMFIF_CHGFROM),
    SAME(MILTER_SMFIF_ADDRCPT_PAR, SMFIF_ADDRCPT_PAR),
    SAME(MILTER_SMFIF_SETSYMLIST, SMFIF_SETSYMLIST),
    SAME(MILTER_SMFIF_ALL, SMFI_CURR_ACTS),
    SAME(MILTER_SMFIP_NOCONNECT, SMFIP_NOCONNECT),
    SAME(MILTER_SMFIP_NOHELO, SMFIP_NOHELO),
    SAME(MILTER_SMFIP_NOMAIL, SMFIP_NOMAIL),
    SAME(MILTER_SMFIP_NORCPT, SMFIP_NORCPT),
    SAME(MILTER_SMFIP_NOBODY, SMFIP_NOBODY),
    SAME(MILTER_SMFIP_NOHDRS, SMFIP_NOHDRS),
    SAME(MILTER_SMFIP_NOEOH, SMFIP_NOEOH),
    SAME(MILTER_SMFIP_NR_HDR, SMFIP_NR_HDR),
    SAME(MILTER_SMFIP_NOUNKNOWN, SMFIP_NOUNKNOWN),
    SAME(MILTER_SMFIP_NODATA, SMFIP_NODATA),
    SAME(MILTER_SMFIP_SKIP, SMFIP_SKIP),
    SAME(MILTER_SMFIP_RCPT_REJ, SMFIP_RCPT_REJ),
    SAME(MILTER_SMFIP_NR_CONN, SMFIP_NR_CONN),
    SAME(MILTER_SMFIP_NR_HELO, SMFIP_NR_HELO),
    SAME(MILTER_SMFIP_NR_MAIL, SMFIP_NR_MAIL),
    SAME(MILTER_SMFIP_NR_RCPT, SMFIP_NR_RCPT),
    SAME(MILTER_SMFIP_NR_DATA, SMFIP_NR_DATA),
    SAME(MILTER_SMFIP_NR_UNKN, SMFIP_NR_UNKN),
    SAME(MILTER_SMFIP_NR_EOH, SMFIP_NR_EOH),
    SAME(MILTER_SMFIP_NR_BODY, SMFIP_NR_BODY),
    SAME(MILTER_SMFIP_HDR_LEADSPC, SMFIP_HDR_LEADSPC),
    SAME(MILTER_SMFIP_MDS_256K, SMFIP_MDS_256K),
    SAME(MILTER_SMFIP_MDS_1M, SMFIP_MDS_1M),
    SAME(MILTER_SMFIA_UNKNOWN, SMFIA_UNKNOWN),
    SAME(MILTER_SMFIA_UNIX, SMFIA_UNIX),
    SAME(MILTER_SMFIA_INET, SMFIA_INET),
    SAME(MILTER_SMFIA_INET6, SMFIA_INET6),
    SAME(MILTER_SMFIM_CONNECT, SMFIM_CONNECT),
    SAME(MILTER_SMFIM_HELO, SMFIM_HELO),
    SAME(MILTER_SMFIM_ENVFROM, SMFIM_ENVFROM),
    SAME(MILTER_SMFIM_ENVRCPT, SMFIM_ENVRCPT),
    SAME(MILTER_SMFIM_DATA, SMFIM_DATA),
    SAME(MILTER_SMFIM_EOM, SMFIM_EOM),
    SAME(MILTER_SMFIM_EOH, SMFIM_EOH),
    SAME(MILTER_MACRO_STAGE_COUNT, SMFIM_LAST + 1),
};

static void test_constants_match_libmilter(void **state)
{
    for (size_t i = 0; i < sizeof constant_cases / sizeof constant_cases[0]; i++)
        EXPECT_INT(constant_cases[i].ours, constant_cases[i].theirs, constant_cases[i].name);
    EXPECT_INT(milter_offered_actions(), SMFI_CURR_ACTS, "offered actions");
    EXPECT_INT(milter_offered_protocol(6), SMFI_CURR_PROT, "offered protocol, version 6");
    EXPECT_INT(milter_offered_protocol(2), SMFI_V2_PROT, "offered protocol, version 2");
}

static void test_offered_protocol_versions(void **state)
{
    EXPECT_INT(milter_offered_protocol(3), SMFI_V2_PROT | SMFIP_NOUNKNOWN, "version 3");
    EXPECT_INT(milter_offered_protocol(4), SMFI_V2_PROT | SMFIP_NOUNKNOWN | SMFIP_NODATA,
               "version 4");
    EXPECT_INT(milter_offered_protocol(5), 0, "version 5");
    EXPECT_INT(milter_offered_protocol(7), 0, "version 7");
    EXPECT_INT(milter_offered_protocol(6) & (SMFIP_MDS_256K | SMFIP_MDS_1M), 0,
               "no MDS offered");
}

/* ---------------------------------------------------------------- names */

struct name_case {
    int code;
    const char *name;
};

static const struct name_case command_names[] = {
    {'A', "SMFIC_ABORT"}, {'B', "SMFIC_BODY"},    {'C', "SMFIC_CONNECT"}, {'D', "SMFIC_MACRO"},
    {'E', "SMFIC_BODYEOB"}, {'H', "SMFIC_HELO"},  {'K', "SMFIC_QUIT_NC"}, {'L', "SMFIC_HEADER"},
    {'M', "SMFIC_MAIL"},  {'N', "SMFIC_EOH"},     {'O', "SMFIC_OPTNEG"},  {'Q', "SMFIC_QUIT"},
    {'R', "SMFIC_RCPT"},  {'T', "SMFIC_DATA"},    {'U', "SMFIC_UNKNOWN"}, {'Z', "unknown"},
    {0, "unknown"},       {-1, "unknown"},
};

static const struct name_case reply_names[] = {
    {'+', "SMFIR_ADDRCPT"},    {'-', "SMFIR_DELRCPT"},    {'2', "SMFIR_ADDRCPT_PAR"},
    {'4', "SMFIR_SHUTDOWN"},   {'a', "SMFIR_ACCEPT"},     {'b', "SMFIR_REPLBODY"},
    {'c', "SMFIR_CONTINUE"},   {'d', "SMFIR_DISCARD"},    {'e', "SMFIR_CHGFROM"},
    {'f', "SMFIR_CONN_FAIL"},  {'h', "SMFIR_ADDHEADER"},  {'i', "SMFIR_INSHEADER"},
    {'l', "SMFIR_SETSYMLIST"}, {'m', "SMFIR_CHGHEADER"},  {'p', "SMFIR_PROGRESS"},
    {'q', "SMFIR_QUARANTINE"}, {'r', "SMFIR_REJECT"},     {'s', "SMFIR_SKIP"},
    {'t', "SMFIR_TEMPFAIL"},   {'y', "SMFIR_REPLYCODE"},  {'O', "SMFIC_OPTNEG"},
    {'x', "unknown"},          {0, "unknown"},
};

static void test_names(void **state)
{
    for (size_t i = 0; i < sizeof command_names / sizeof command_names[0]; i++)
        EXPECT_STR(milter_command_name(command_names[i].code), command_names[i].name,
                   "milter_command_name");
    for (size_t i = 0; i < sizeof reply_names / sizeof reply_names[0]; i++)
        EXPECT_STR(milter_reply_name(reply_names[i].code), reply_names[i].name,
                   "milter_reply_name");

    /* Every enum value has a name and a code that maps back to it. */
    for (int t = 0; t < MILTER_COMMAND_COUNT; t++) {
        int code = milter_command_code((enum milter_command_type) t);
        EXPECT_INT(milter_command_type_of(code), t, milter_command_type_name(t));
        EXPECT_STR(milter_command_name(code), milter_command_type_name(t), "command name");
    }
    for (int t = 0; t < MILTER_REPLY_COUNT; t++) {
        int code = milter_reply_code((enum milter_reply_type) t);
        EXPECT_INT(milter_reply_type_of(code), t, milter_reply_type_name(t));
        EXPECT_STR(milter_reply_name(code), milter_reply_type_name(t), "reply name");
    }
    EXPECT_STR(milter_command_type_name(MILTER_COMMAND_COUNT), "unknown", "command COUNT");
    EXPECT_STR(milter_reply_type_name(MILTER_REPLY_COUNT), "unknown", "reply COUNT");
    EXPECT_INT(milter_command_code(MILTER_COMMAND_COUNT), -1, "command code of COUNT");
    EXPECT_INT(milter_reply_code(MILTER_REPLY_COUNT), -1, "reply code of COUNT");
    EXPECT_INT(milter_reply_type_of('l'), -1, "SETSYMLIST is no reply type");

    EXPECT_STR(milter_macro_stage_name(MILTER_SMFIM_CONNECT), "SMFIM_CONNECT", "stage 0");
    EXPECT_STR(milter_macro_stage_name(MILTER_SMFIM_EOH), "SMFIM_EOH", "stage 6");
    EXPECT_STR(milter_macro_stage_name(MILTER_MACRO_STAGE_COUNT), "unknown", "stage 7");
    static const int stage_commands[MILTER_MACRO_STAGE_COUNT] = {'C', 'H', 'M', 'R',
                                                                 'T', 'E', 'N'};
    for (int s = 0; s < MILTER_MACRO_STAGE_COUNT; s++)
        EXPECT_INT(milter_macro_stage_command((enum milter_macro_stage) s), stage_commands[s],
                   milter_macro_stage_name(s));
    EXPECT_INT(milter_macro_stage_command(MILTER_MACRO_STAGE_COUNT), -1, "stage 7 command");

    EXPECT_STR(milter_family_name('U'), "SMFIA_UNKNOWN", "family U");
    EXPECT_STR(milter_family_name('L'), "SMFIA_UNIX", "family L");
    EXPECT_STR(milter_family_name('4'), "SMFIA_INET", "family 4");
    EXPECT_STR(milter_family_name('6'), "SMFIA_INET6", "family 6");
    EXPECT_STR(milter_family_name('x'), "unknown", "family x");

    EXPECT_STR(milter_action_flag_name(SMFIF_CHGBODY), "SMFIF_CHGBODY", "action flag");
    EXPECT_STR(milter_action_flag_name(SMFIF_SETSYMLIST), "SMFIF_SETSYMLIST", "action flag");
    EXPECT_STR(milter_action_flag_name(0x200), "unknown", "unknown action flag");
    EXPECT_STR(milter_protocol_flag_name(SMFIP_NR_HDR), "SMFIP_NR_HDR", "protocol flag");
    EXPECT_STR(milter_protocol_flag_name(SMFIP_MDS_1M), "SMFIP_MDS_1M", "protocol flag");
    EXPECT_STR(milter_protocol_flag_name(0x40000000), "unknown", "unknown protocol flag");
}

struct format_case {
    bool actions;
    uint32_t mask;
    size_t size;
    int rc;
    const char *want;
};

static const struct format_case format_cases[] = {
    {true, 0, 64, 0, "0"},
    {true, SMFIF_ADDHDRS | SMFIF_CHGBODY, 64, 0, "SMFIF_ADDHDRS|SMFIF_CHGBODY"},
    {true, SMFIF_QUARANTINE | 0x1000, 64, 0, "SMFIF_QUARANTINE|0x1000"},
    {true, 0x1000, 64, 0, "0x1000"},
    {false, SMFIP_NOCONNECT | SMFIP_HDR_LEADSPC, 64, 0, "SMFIP_NOCONNECT|SMFIP_HDR_LEADSPC"},
    {false, SMFIP_SKIP, 11, 0, "SMFIP_SKIP"},
    {false, SMFIP_SKIP, 10, -1, "SMFIP_SKI"},
    {true, SMFIF_ADDHDRS | SMFIF_CHGBODY, 20, -1, "SMFIF_ADDHDRS|SMFIF"},
    {true, 0, 1, -1, ""},
};

static void test_mask_format(void **state)
{
    for (size_t i = 0; i < sizeof format_cases / sizeof format_cases[0]; i++) {
        const struct format_case *c = &format_cases[i];
        char out[64];
        memset(out, 'x', sizeof out);
        int rc = c->actions ? milter_actions_format(c->mask, out, c->size)
                            : milter_protocol_format(c->mask, out, c->size);
        EXPECT_INT(rc, c->rc, c->want);
        EXPECT_STR(out, c->want, "formatted mask");
    }
    char one[1];
    EXPECT_INT(milter_actions_format(1, one, 0), -1, "size 0");
}

/* ---------------------------------------------------------------- encoders */

static void test_buffer(void **state)
{
    struct milter_buffer b = {0};
    milter_buffer_free(NULL);
    milter_buffer_reset(NULL);
    assert_int_equal(milter_encode_quit(&b), 0);
    EXPECT_INT(b.length, 5, "quit frame length");
    milter_buffer_reset(&b);
    EXPECT_INT(b.length, 0, "after reset");
    assert_non_null(b.data);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(milter_encode_abort(&b), 0);
    EXPECT_INT(b.length, 5000, "1000 aborts");
    for (size_t i = 0; i < b.length; i += 5)
        EXPECT_MEM(b.data + i, 5, "\0\0\0\1A", 5, "abort frame");
    milter_buffer_free(&b);
    assert_null(b.data);
    EXPECT_INT(b.length, 0, "after free");
    EXPECT_INT(b.capacity, 0, "capacity after free");
    milter_buffer_free(&b);
    /* append: frames joined in order; an empty buffer on either side changes nothing */
    struct milter_buffer quit = {0}, joined = {0}, empty = {0};
    assert_int_equal(milter_encode_quit(&quit), 0);
    milter_buffer_append(&joined, &empty);
    EXPECT_INT(joined.length, 0, "empty appended to empty");
    for (int i = 0; i < 300; i++)
        milter_buffer_append(&joined, &quit);
    milter_buffer_append(&joined, &empty);
    EXPECT_INT(joined.length, 1500, "300 quit frames appended");
    for (size_t i = 0; i < joined.length; i += 5)
        EXPECT_MEM(joined.data + i, 5, "\0\0\0\1Q", 5, "appended quit frame");
    milter_buffer_free(&quit);
    milter_buffer_free(&joined);
}

static void test_encode_optneg(void **state)
{
    struct milter_buffer b = {0};
    struct milter_command c;
    static const unsigned char want[] = {0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 1, 0xff,
                                         0, 0x1f, 0xff, 0xff};
    assert_int_equal(milter_encode_optneg(&b, 6, milter_offered_actions(),
                                          milter_offered_protocol(6)), 0);
    EXPECT_MEM(b.data, b.length, want, sizeof want, "optneg bytes");
    decode_command_ok(&b, &c);
    EXPECT_INT(c.type, MILTER_COMMAND_OPTNEG, "type");
    EXPECT_INT(c.optneg.version, 6, "version");
    EXPECT_INT(c.optneg.actions, SMFI_CURR_ACTS, "actions");
    EXPECT_INT(c.optneg.protocol, SMFI_CURR_PROT, "protocol");
    milter_buffer_free(&b);
}

static void test_encode_macro(void **state)
{
    struct milter_buffer b = {0};
    struct milter_command c;
    const char *names[] = {"j", "{daemon_name}", "_"};
    const char *values[] = {"mx.example.org", "", "client.example [192.0.2.1]"};
    static const char want[] = "\0\0\0\x3f"
                               "DCj\0mx.example.org\0{daemon_name}\0\0_\0"
                               "client.example [192.0.2.1]";

    assert_int_equal(milter_encode_macro(&b, 'C', names, values, 3), 0);
    EXPECT_MEM(b.data, b.length, want, sizeof want, "macro bytes");
    decode_command_ok(&b, &c);
    EXPECT_INT(c.type, MILTER_COMMAND_MACRO, "type");
    EXPECT_INT(c.macro.stage_command, 'C', "stage command");
    EXPECT_INT(c.macro.pairs.count, 6, "strings");
    const char *s = NULL;
    for (size_t i = 0; i < 3; i++) {
        s = milter_string_list_next(&c.macro.pairs, s);
        EXPECT_STR(s, names[i], "macro name");
        s = milter_string_list_next(&c.macro.pairs, s);
        EXPECT_STR(s, values[i], "macro value");
    }
    assert_null(milter_string_list_next(&c.macro.pairs, s));

    /* No pairs at all is a valid (empty) macro frame. */
    milter_buffer_reset(&b);
    assert_int_equal(milter_encode_macro(&b, 'N', NULL, NULL, 0), 0);
    decode_command_ok(&b, &c);
    EXPECT_INT(c.macro.stage_command, 'N', "stage command");
    EXPECT_INT(c.macro.pairs.count, 0, "strings");
    assert_null(milter_string_list_next(&c.macro.pairs, NULL));

    /* Every stage command is accepted; others are not. */
    for (int s2 = 0; s2 < MILTER_MACRO_STAGE_COUNT; s2++) {
        milter_buffer_reset(&b);
        int command = milter_macro_stage_command((enum milter_macro_stage) s2);
        EXPECT_INT(milter_encode_macro(&b, command, names, values, 1), 0, "stage command");
        decode_command_ok(&b, &c);
        EXPECT_INT(c.macro.stage_command, command, "decoded stage command");
    }
    milter_buffer_free(&b);
}

struct connect_case {
    const char *hostname;
    int family;
    uint16_t port;
    const char *address;
    const char *want;
    size_t want_length;
};

static const struct connect_case connect_cases[] = {
    {"client.example", '4', 25, "192.0.2.1",
     S("\0\0\0\x1d"
       "Cclient.example\0"
       "4\0\x19"
       "192.0.2.1\0")},
    {"[2001:db8::1]", '6', 0xabcd, "2001:db8::1",
     S("\0\0\0\x1e"
       "C[2001:db8::1]\0"
       "6\xab\xcd"
       "2001:db8::1\0")},
    {"localhost", 'L', 0, "/run/porter.sock",
     S("\0\0\0\x1f"
       "Clocalhost\0"
       "L\0\0/run/porter.sock\0")},
    {"unknown", 'U', 0, NULL, S("\0\0\0\x0a"
                                "Cunknown\0U")},
};

static void test_encode_connect(void **state)
{
    for (size_t i = 0; i < sizeof connect_cases / sizeof connect_cases[0]; i++) {
        const struct connect_case *t = &connect_cases[i];
        struct milter_buffer b = {0};
        struct milter_command c;
        EXPECT_INT(milter_encode_connect(&b, t->hostname, t->family, t->port, t->address), 0,
                   t->hostname);
        EXPECT_MEM(b.data, b.length, t->want, t->want_length, "connect bytes");
        decode_command_ok(&b, &c);
        EXPECT_INT(c.type, MILTER_COMMAND_CONNECT, "type");
        EXPECT_STR(c.connect.hostname, t->hostname, "hostname");
        EXPECT_INT(c.connect.family, t->family, "family");
        EXPECT_INT(c.connect.port, t->port, "port");
        EXPECT_STR(c.connect.address, t->address, "address");
        milter_buffer_free(&b);
    }
}

/* check_argv - a decoded string list holds exactly these strings */
static void check_argv(const struct milter_string_list *list, const char *const *want,
                       size_t count)
{
    EXPECT_INT(list->count, count, "argv count");
    const char *s = NULL;
    for (size_t i = 0; i < count; i++) {
        s = milter_string_list_next(list, s);
        EXPECT_STR(s, want[i], "argv string");
    }
    assert_null(milter_string_list_next(list, s));
}

static void test_encode_envelope(void **state)
{
    struct milter_buffer b = {0};
    struct milter_command c;
    const char *mail[] = {"<sender@example.org>", "SIZE=1000", "BODY=8BITMIME"};
    const char *rcpt[] = {"<rcpt@example.net>"};
    const char *null_sender[] = {"<>"};

    assert_int_equal(milter_encode_helo(&b, "client.example"), 0);
    decode_command_ok(&b, &c);
    EXPECT_INT(c.type, MILTER_COMMAND_HELO, "type");
    EXPECT_STR(c.helo, "client.example", "helo");

    milter_buffer_reset(&b);
    assert_int_equal(milter_encode_mail(&b, mail, 3), 0);
    EXPECT_MEM(b.data, b.length,
               "\0\0\0\x2e"
               "M<sender@example.org>\0SIZE=1000\0BODY=8BITMIME\0",
               50, "mail bytes");
    decode_command_ok(&b, &c);
    EXPECT_INT(c.type, MILTER_COMMAND_MAIL, "type");
    check_argv(&c.argv, mail, 3);

    milter_buffer_reset(&b);
    assert_int_equal(milter_encode_mail(&b, null_sender, 1), 0);
    decode_command_ok(&b, &c);
    check_argv(&c.argv, null_sender, 1);

    milter_buffer_reset(&b);
    assert_int_equal(milter_encode_rcpt(&b, rcpt, 1), 0);
    decode_command_ok(&b, &c);
    EXPECT_INT(c.type, MILTER_COMMAND_RCPT, "type");
    check_argv(&c.argv, rcpt, 1);

    milter_buffer_reset(&b);
    assert_int_equal(milter_encode_unknown(&b, "XCLIENT NAME=x"), 0);
    decode_command_ok(&b, &c);
    EXPECT_INT(c.type, MILTER_COMMAND_UNKNOWN, "type");
    EXPECT_STR(c.unknown, "XCLIENT NAME=x", "unknown line");
    milter_buffer_free(&b);
}

static void test_encode_message(void **state)
{
    struct milter_buffer b = {0};
    struct milter_command c;

    assert_int_equal(milter_encode_header(&b, "Subject", " hello\r\n\tworld"), 0);
    decode_command_ok(&b, &c);
    EXPECT_INT(c.type, MILTER_COMMAND_HEADER, "type");
    EXPECT_STR(c.header.name, "Subject", "header name");
    EXPECT_STR(c.header.value, " hello\r\n\tworld", "header value");

    milter_buffer_reset(&b);
    assert_int_equal(milter_encode_header(&b, "X-Empty", ""), 0);
    decode_command_ok(&b, &c);
    EXPECT_STR(c.header.value, "", "empty header value");

    milter_buffer_reset(&b);
    assert_int_equal(milter_encode_body(&b, "a", 1), 0);
    decode_command_ok(&b, &c);
    EXPECT_INT(c.type, MILTER_COMMAND_BODY, "type");
    EXPECT_MEM(c.body.data, c.body.length, "a", 1, "one-byte body");

    /* A full chunk of binary bytes, NULs included. */
    unsigned char *chunk = malloc(MILTER_BODY_CHUNK_MAX);
    assert_non_null(chunk);
    for (size_t i = 0; i < MILTER_BODY_CHUNK_MAX; i++)
        chunk[i] = (unsigned char) (i * 7);
    milter_buffer_reset(&b);
    assert_int_equal(milter_encode_body(&b, chunk, MILTER_BODY_CHUNK_MAX), 0);
    EXPECT_INT(b.length, MILTER_BODY_CHUNK_MAX + 5, "full chunk frame");
    decode_command_ok(&b, &c);
    EXPECT_INT(c.body.length, MILTER_BODY_CHUNK_MAX, "full chunk length");
    assert_memory_equal(c.body.data, chunk, MILTER_BODY_CHUNK_MAX);
    free(chunk);

    struct {
        int (*encode)(struct milter_buffer *);
        enum milter_command_type type;
        int code;
    } empties[] = {
        {milter_encode_data, MILTER_COMMAND_DATA, 'T'},
        {milter_encode_eoh, MILTER_COMMAND_EOH, 'N'},
        {milter_encode_eob, MILTER_COMMAND_BODYEOB, 'E'},
        {milter_encode_abort, MILTER_COMMAND_ABORT, 'A'},
        {milter_encode_quit, MILTER_COMMAND_QUIT, 'Q'},
        {milter_encode_quit_nc, MILTER_COMMAND_QUIT_NC, 'K'},
    };
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        milter_buffer_reset(&b);
        assert_int_equal(empties[i].encode(&b), 0);
        unsigned char want[5] = {0, 0, 0, 1, (unsigned char) empties[i].code};
        EXPECT_MEM(b.data, b.length, want, 5, milter_command_type_name(empties[i].type));
        decode_command_ok(&b, &c);
        EXPECT_INT(c.type, empties[i].type, "empty command type");
    }
    milter_buffer_free(&b);
}

/* A whole session in one buffer decodes back frame by frame, in order. */
static void test_encode_session_stream(void **state)
{
    struct milter_buffer b = {0};
    const char *names[] = {"i"};
    const char *values[] = {"QUEUEID"};
    const char *from[] = {"<a@example.org>"};
    const char *to[] = {"<b@example.net>"};
    static const enum milter_command_type want[] = {
        MILTER_COMMAND_OPTNEG, MILTER_COMMAND_MACRO,   MILTER_COMMAND_CONNECT,
        MILTER_COMMAND_HELO,   MILTER_COMMAND_MAIL,    MILTER_COMMAND_RCPT,
        MILTER_COMMAND_DATA,   MILTER_COMMAND_HEADER,  MILTER_COMMAND_EOH,
        MILTER_COMMAND_BODY,   MILTER_COMMAND_BODYEOB, MILTER_COMMAND_ABORT,
        MILTER_COMMAND_UNKNOWN, MILTER_COMMAND_QUIT_NC, MILTER_COMMAND_QUIT,
    };

    assert_int_equal(milter_encode_optneg(&b, 6, SMFI_CURR_ACTS, SMFI_CURR_PROT), 0);
    assert_int_equal(milter_encode_macro(&b, 'M', names, values, 1), 0);
    assert_int_equal(milter_encode_connect(&b, "h", '4', 1, "192.0.2.9"), 0);
    assert_int_equal(milter_encode_helo(&b, "h"), 0);
    assert_int_equal(milter_encode_mail(&b, from, 1), 0);
    assert_int_equal(milter_encode_rcpt(&b, to, 1), 0);
    assert_int_equal(milter_encode_data(&b), 0);
    assert_int_equal(milter_encode_header(&b, "From", " a@example.org"), 0);
    assert_int_equal(milter_encode_eoh(&b), 0);
    assert_int_equal(milter_encode_body(&b, "hi\r\n", 4), 0);
    assert_int_equal(milter_encode_eob(&b), 0);
    assert_int_equal(milter_encode_abort(&b), 0);
    assert_int_equal(milter_encode_unknown(&b, "FOO"), 0);
    assert_int_equal(milter_encode_quit_nc(&b), 0);
    assert_int_equal(milter_encode_quit(&b), 0);

    size_t at = 0, n = 0;
    for (;;) {
        struct milter_frame frame;
        struct milter_command c;
        size_t consumed;
        const char *error;
        int rc = milter_frame_next(b.data + at, b.length - at, MILTER_MAX_FRAME, &frame,
                                   &consumed);
        if (rc == 0)
            break;
        EXPECT_INT(rc, 1, "frame_next");
        assert_true(n < sizeof want / sizeof want[0]);
        EXPECT_INT(milter_command_decode(&frame, &c, &error), 0, "command decode");
        EXPECT_INT(c.type, want[n], milter_command_type_name(want[n]));
        at += consumed;
        n++;
    }
    EXPECT_INT(at, b.length, "consumed everything");
    EXPECT_INT(n, sizeof want / sizeof want[0], "frames");
    milter_buffer_free(&b);
}

static void test_encode_refusals(void **state)
{
    struct milter_buffer b = {0};
    const char *names[] = {"j", ""};
    const char *values[] = {"x", "y"};
    const char *null_argv[] = {NULL};
    const char *argv[] = {"<a@example.org>"};
    char *big = malloc(MILTER_DATA_MAX + 2);
    assert_non_null(big);
    memset(big, 'a', MILTER_DATA_MAX + 1);
    big[MILTER_DATA_MAX + 1] = '\0';

    /* Start with bytes in the buffer: a refusal must leave them untouched. */
    assert_int_equal(milter_encode_quit(&b), 0);
    struct {
        const char *what;
        int rc;
    } cases[] = {
        {"body of 0 bytes", milter_encode_body(&b, "x", 0)},
        {"body over one chunk", milter_encode_body(&b, big, MILTER_BODY_CHUNK_MAX + 1)},
        {"body NULL", milter_encode_body(&b, NULL, 1)},
        {"empty header name", milter_encode_header(&b, "", "v")},
        {"NULL header name", milter_encode_header(&b, NULL, "v")},
        {"NULL header value", milter_encode_header(&b, "X", NULL)},
        {"header too big", milter_encode_header(&b, "X", big)},
        {"connect family", milter_encode_connect(&b, "h", 'x', 0, "a")},
        {"connect NULL host", milter_encode_connect(&b, NULL, 'U', 0, NULL)},
        {"connect NULL address", milter_encode_connect(&b, "h", '4', 25, NULL)},
        {"macro stage", milter_encode_macro(&b, 'Q', names, values, 1)},
        {"macro empty name", milter_encode_macro(&b, 'C', names, values, 2)},
        {"macro NULL arrays", milter_encode_macro(&b, 'C', NULL, NULL, 1)},
        {"macro too big", milter_encode_macro(&b, 'C', names, (const char *[]){big}, 1)},
        {"mail no args", milter_encode_mail(&b, argv, 0)},
        {"mail NULL arg", milter_encode_mail(&b, null_argv, 1)},
        {"rcpt NULL argv", milter_encode_rcpt(&b, NULL, 1)},
        {"helo NULL", milter_encode_helo(&b, NULL)},
        {"helo too big", milter_encode_helo(&b, big)},
        {"unknown NULL", milter_encode_unknown(&b, NULL)},
        {"NULL buffer", milter_encode_quit(NULL)},
        {"NULL buffer optneg", milter_encode_optneg(NULL, 6, 0, 0)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        EXPECT_INT(cases[i].rc, -1, cases[i].what);
    EXPECT_MEM(b.data, b.length, "\0\0\0\1Q", 5, "buffer untouched");

    /* The largest string that fits: 65534 bytes + NUL = 65535 data bytes. */
    big[MILTER_DATA_MAX - 1] = '\0';
    milter_buffer_reset(&b);
    EXPECT_INT(milter_encode_helo(&b, big), 0, "helo of the largest size");
    EXPECT_INT(b.length, MILTER_MAX_FRAME + MILTER_LENGTH_BYTES, "largest frame");
    big[MILTER_DATA_MAX - 1] = 'a';
    big[MILTER_DATA_MAX] = '\0';
    EXPECT_INT(milter_encode_helo(&b, big), -1, "helo one byte too long");
    free(big);
    milter_buffer_free(&b);
}

/* ---------------------------------------------------------------- frames */

static void test_frame_next_basics(void **state)
{
    struct milter_frame frame;
    size_t consumed;
    static const unsigned char accept[] = {0, 0, 0, 1, 'a', 0xee};

    for (size_t n = 0; n < 5; n++) {
        EXPECT_INT(milter_frame_next(accept, n, MILTER_MAX_FRAME, &frame, &consumed), 0,
                   "incomplete");
        EXPECT_INT(consumed, 0, "consumed when incomplete");
    }
    EXPECT_INT(milter_frame_next(accept, sizeof accept, MILTER_MAX_FRAME, &frame, &consumed), 1,
               "complete");
    EXPECT_INT(consumed, 5, "consumed");
    EXPECT_INT(frame.command, 'a', "command");
    EXPECT_INT(frame.length, 0, "data length");
    assert_null(frame.error);
    EXPECT_INT(milter_frame_next(NULL, 0, MILTER_MAX_FRAME, &frame, &consumed), 0, "NULL");

    static const unsigned char zero[] = {0, 0, 0, 0};
    EXPECT_INT(milter_frame_next(zero, sizeof zero, MILTER_MAX_FRAME, &frame, &consumed), -1,
               "zero length");
    assert_non_null(frame.error);
    EXPECT_INT(consumed, 0, "consumed on error");

    /* Oversize is refused as soon as the length field is there. */
    static const unsigned char over[] = {0, 1, 0, 1};
    EXPECT_INT(milter_frame_next(over, sizeof over, MILTER_MAX_FRAME, &frame, &consumed), -1,
               "oversize");
    assert_non_null(frame.error);
    static const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff};
    EXPECT_INT(milter_frame_next(huge, sizeof huge, MILTER_MAX_FRAME_1M, &frame, &consumed), -1,
               "4 GiB length");
    static const unsigned char small[] = {0, 0, 0, 3, 'y', '4', 0};
    EXPECT_INT(milter_frame_next(small, sizeof small, 2, &frame, &consumed), -1,
               "over a caller limit of 2");
    EXPECT_INT(milter_frame_next(small, sizeof small, 3, &frame, &consumed), 1,
               "exactly the caller limit");
    EXPECT_INT(milter_frame_next(small, sizeof small, 0, &frame, &consumed), -1, "limit 0");

    /* The largest default frame is accepted. */
    static struct raw_frame raw;
    static unsigned char body[MILTER_DATA_MAX];
    raw_frame_make(&raw, 'b', body, sizeof body);
    EXPECT_INT(milter_frame_next(raw.bytes, raw.length, MILTER_MAX_FRAME, &frame, &consumed), 1,
               "largest frame");
    EXPECT_INT(frame.length, MILTER_DATA_MAX, "largest data");
}

/* A stream of replies, cut at every byte boundary and fed in two parts or byte by byte. */
struct fed_frame {
    int command;
    size_t length;
    unsigned char data[400];
};

/* feed - run milter_frame_next over pending[*have], keep unconsumed bytes, collect frames */
static void feed(unsigned char *pending, size_t *have, struct fed_frame *frames, size_t *count,
                 size_t max_count)
{
    for (;;) {
        struct milter_frame frame;
        size_t consumed;
        int rc = milter_frame_next(pending, *have, MILTER_MAX_FRAME, &frame, &consumed);
        if (rc == 0)
            return;
        if (rc != 1)
            fail_msg("frame_next: got %d (%s), want 1", rc, frame.error);
        assert_true(*count < max_count);
        assert_true(frame.length <= sizeof frames[0].data);
        frames[*count].command = frame.command;
        frames[*count].length = frame.length;
        memcpy(frames[*count].data, frame.data, frame.length);
        (*count)++;
        memmove(pending, pending + consumed, *have - consumed);
        *have -= consumed;
    }
}

static void test_frame_split_everywhere(void **state)
{
    unsigned char stream[2048];
    size_t length = 0;
    struct fed_frame want[8];
    size_t want_count = 0;
    struct raw_frame raw;
    unsigned char body[300];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (unsigned char) i;

    struct {
        int command;
        const void *data;
        size_t length;
    } parts[] = {
        {'O', S("\0\0\0\x06\0\0\x01\xff\0\0\0\0\0\0\0\x01j {daemon_name}\0")},
        {'c', S("")},
        {'h', S("X-Spam\0 yes\0")},
        {'y', S("550-5.7.1 a\r\n550 5.7.1 b\0")},
        {'b', body, sizeof body},
        {'p', "", 0},
        {'a', "", 0},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        raw_frame_make(&raw, parts[i].command, parts[i].data, parts[i].length);
        memcpy(stream + length, raw.bytes, raw.length);
        length += raw.length;
        want[want_count].command = parts[i].command;
        want[want_count].length = parts[i].length;
        memcpy(want[want_count].data, parts[i].data, parts[i].length);
        want_count++;
    }

    for (size_t cut = 0; cut <= length; cut++) {
        unsigned char pending[2048];
        size_t have = 0, count = 0;
        struct fed_frame got[8];
        memcpy(pending, stream, cut);
        have = cut;
        feed(pending, &have, got, &count, 8);
        memcpy(pending + have, stream + cut, length - cut);
        have += length - cut;
        feed(pending, &have, got, &count, 8);
        EXPECT_INT(have, 0, "bytes left over");
        EXPECT_INT(count, want_count, "frames");
        for (size_t i = 0; i < count; i++) {
            EXPECT_INT(got[i].command, want[i].command, "command");
            EXPECT_MEM(got[i].data, got[i].length, want[i].data, want[i].length, "data");
            /* And every frame still decodes as a valid reply. */
            struct milter_frame frame = {got[i].command, got[i].data, got[i].length, NULL};
            struct milter_reply reply;
            const char *error;
            EXPECT_INT(milter_reply_decode(&frame, &reply, &error), 0, "decode after split");
        }
    }

    /* One byte at a time. */
    unsigned char pending[2048];
    size_t have = 0, count = 0;
    struct fed_frame got[8];
    for (size_t i = 0; i < length; i++) {
        pending[have++] = stream[i];
        feed(pending, &have, got, &count, 8);
    }
    EXPECT_INT(count, want_count, "frames byte by byte");
    EXPECT_INT(have, 0, "left over byte by byte");
}

/* ---------------------------------------------------------------- replies */

static void test_reply_bodyless(void **state)
{
    static const struct {
        int code;
        enum milter_reply_type type;
    } cases[] = {
        {'a', MILTER_REPLY_ACCEPT},   {'c', MILTER_REPLY_CONTINUE},
        {'d', MILTER_REPLY_DISCARD},  {'r', MILTER_REPLY_REJECT},
        {'t', MILTER_REPLY_TEMPFAIL}, {'s', MILTER_REPLY_SKIP},
        {'p', MILTER_REPLY_PROGRESS}, {'4', MILTER_REPLY_SHUTDOWN},
        {'f', MILTER_REPLY_CONN_FAIL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct milter_reply reply;
        const char *error = NULL;
        decode_reply_ok(cases[i].code, "", 0, &reply);
        EXPECT_INT(reply.type, cases[i].type, milter_reply_name(cases[i].code));
        EXPECT_INT(decode_reply_bytes(cases[i].code, "x", 1, &reply, &error), -1,
                   "bodyless reply with data");
        assert_non_null(error);
    }
}

static void test_reply_optneg(void **state)
{
    struct milter_reply r;
    static const unsigned char plain[] = {0, 0, 0, 6, 0, 0, 0, 0x21, 0, 0, 0x10, 0x80};
    decode_reply_ok('O', plain, sizeof plain, &r);
    EXPECT_INT(r.type, MILTER_REPLY_OPTNEG, "type");
    EXPECT_INT(r.optneg.version, 6, "version");
    EXPECT_INT(r.optneg.actions, SMFIF_ADDHDRS | SMFIF_QUARANTINE, "actions");
    EXPECT_INT(r.optneg.protocol, SMFIP_NR_HDR | SMFIP_NR_CONN, "protocol");
    EXPECT_INT(r.optneg.macro_list_count, 0, "macro lists");

    static const char lists[] = "\0\0\0\x06"
                                "\0\0\x01\x00"
                                "\0\0\0\0"
                                "\0\0\0\x02{auth_authen} {mail_addr}\0"
                                "\0\0\0\x00j _\0"
                                "\0\0\0\x06\0";
    decode_reply_ok('O', lists, sizeof lists - 1, &r);
    EXPECT_INT(r.optneg.actions, SMFIF_SETSYMLIST, "actions");
    EXPECT_INT(r.optneg.macro_list_count, 3, "macro lists");
    EXPECT_INT(r.optneg.macro_lists[0].stage, MILTER_SMFIM_ENVFROM, "stage 0");
    EXPECT_STR(r.optneg.macro_lists[0].names, "{auth_authen} {mail_addr}", "names 0");
    EXPECT_INT(r.optneg.macro_lists[1].stage, MILTER_SMFIM_CONNECT, "stage 1");
    EXPECT_STR(r.optneg.macro_lists[1].names, "j _", "names 1");
    EXPECT_INT(r.optneg.macro_lists[2].stage, MILTER_SMFIM_EOH, "stage 2");
    EXPECT_STR(r.optneg.macro_lists[2].names, "", "names 2");

    /* All seven stages at once is the most there can be. */
    char all[7 * 6 + 12];
    memset(all, 0, sizeof all);
    all[3] = 6;
    for (int s = 0; s < 7; s++) {
        all[12 + s * 6 + 3] = (char) s;
        all[12 + s * 6 + 4] = 'x';
    }
    decode_reply_ok('O', all, sizeof all, &r);
    EXPECT_INT(r.optneg.macro_list_count, 7, "all stages");
}

static void test_reply_envelope(void **state)
{
    struct milter_reply r;

    decode_reply_ok('+', S("<new@example.org>\0"), &r);
    EXPECT_INT(r.type, MILTER_REPLY_ADDRCPT, "type");
    EXPECT_STR(r.envelope.address, "<new@example.org>", "address");
    assert_null(r.envelope.args);

    decode_reply_ok('-', S("<old@example.org>\0"), &r);
    EXPECT_INT(r.type, MILTER_REPLY_DELRCPT, "type");
    EXPECT_STR(r.envelope.address, "<old@example.org>", "address");

    decode_reply_ok('2', S("<new@example.org>\0NOTIFY=NEVER\0"), &r);
    EXPECT_INT(r.type, MILTER_REPLY_ADDRCPT_PAR, "type");
    EXPECT_STR(r.envelope.address, "<new@example.org>", "address");
    EXPECT_STR(r.envelope.args, "NOTIFY=NEVER", "args");

    decode_reply_ok('2', S("<new@example.org>\0"), &r);
    assert_null(r.envelope.args);

    decode_reply_ok('e', S("<bounce@example.org>\0"), &r);
    EXPECT_INT(r.type, MILTER_REPLY_CHGFROM, "type");
    EXPECT_STR(r.envelope.address, "<bounce@example.org>", "address");
    assert_null(r.envelope.args);

    decode_reply_ok('e', S("<>\0SIZE=10\0"), &r);
    EXPECT_STR(r.envelope.address, "<>", "address");
    EXPECT_STR(r.envelope.args, "SIZE=10", "args");

    decode_reply_ok('e', S("<a@b>\0\0"), &r);
    EXPECT_STR(r.envelope.args, "", "empty args");
}

static void test_reply_headers(void **state)
{
    struct milter_reply r;

    decode_reply_ok('h', S("X-Spam-Flag\0YES\0"), &r);
    EXPECT_INT(r.type, MILTER_REPLY_ADDHEADER, "type");
    EXPECT_INT(r.header.index, 0, "index");
    EXPECT_STR(r.header.name, "X-Spam-Flag", "name");
    EXPECT_STR(r.header.value, "YES", "value");

    decode_reply_ok('h', S("X-Long\0first\r\n\tsecond\n third\0"), &r);
    EXPECT_STR(r.header.value, "first\r\n\tsecond\n third", "folded value");

    decode_reply_ok('i', S("\0\0\0\0Received\0 from x\0"), &r);
    EXPECT_INT(r.type, MILTER_REPLY_INSHEADER, "type");
    EXPECT_INT(r.header.index, 0, "index");
    EXPECT_STR(r.header.name, "Received", "name");
    EXPECT_STR(r.header.value, " from x", "value");

    decode_reply_ok('m', S("\0\0\0\x02Subject\0[SPAM] hi\0"), &r);
    EXPECT_INT(r.type, MILTER_REPLY_CHGHEADER, "type");
    EXPECT_INT(r.header.index, 2, "index");
    EXPECT_STR(r.header.name, "Subject", "name");
    EXPECT_STR(r.header.value, "[SPAM] hi", "value");

    decode_reply_ok('m', S("\x7f\xff\xff\xffX-Del\0\0"), &r);
    EXPECT_INT(r.header.index, INT32_MAX, "largest index");
    EXPECT_STR(r.header.value, "", "delete");
}

static void test_reply_body_quarantine(void **state)
{
    struct milter_reply r;

    decode_reply_ok('b', S("new body\r\n\0with NUL"), &r);
    EXPECT_INT(r.type, MILTER_REPLY_REPLBODY, "type");
    EXPECT_MEM(r.body.data, r.body.length, "new body\r\n\0with NUL", 19, "body");

    decode_reply_ok('b', "", 0, &r);
    EXPECT_INT(r.body.length, 0, "empty body chunk");

    decode_reply_ok('q', S("virus found\0"), &r);
    EXPECT_INT(r.type, MILTER_REPLY_QUARANTINE, "type");
    EXPECT_STR(r.quarantine_reason, "virus found", "reason");
}

static void test_reply_replycode(void **state)
{
    struct milter_reply r;

    decode_reply_ok('y', S("550 5.7.1 Command rejected\0"), &r);
    EXPECT_INT(r.type, MILTER_REPLY_REPLYCODE, "type");
    EXPECT_INT(r.replycode.code, 550, "code");
    EXPECT_STR(r.replycode.reply, "550 5.7.1 Command rejected", "reply");
    EXPECT_INT(r.replycode.line_count, 1, "lines");
    EXPECT_MEM(r.replycode.lines[0].enhanced, r.replycode.lines[0].enhanced_length, "5.7.1", 5,
               "enhanced");
    EXPECT_MEM(r.replycode.lines[0].text, r.replycode.lines[0].text_length, "Command rejected",
               16, "text");

    decode_reply_ok('y', S("451-4.7.1 first\r\n451-4.7.1 second\r\n451 4.7.1 third\0"), &r);
    EXPECT_INT(r.replycode.code, 451, "code");
    EXPECT_INT(r.replycode.line_count, 3, "lines");
    EXPECT_MEM(r.replycode.lines[1].text, r.replycode.lines[1].text_length, "second", 6,
               "second line");
    EXPECT_MEM(r.replycode.lines[2].text, r.replycode.lines[2].text_length, "third", 5,
               "third line");
}

struct replycode_case {
    const char *text;
    int rc;
    int code;
    size_t lines;
    const char *last_enhanced; /* of the last line; NULL when absent */
    const char *last_text;
};

static const struct replycode_case replycode_cases[] = {
    /* valid */
    {"550 5.7.1 Go away", 0, 550, 1, "5.7.1", "Go away"},
    {"451 4.7.1", 0, 451, 1, "4.7.1", ""},
    {"550 ", 0, 550, 1, NULL, ""},
    {"554 plain text", 0, 554, 1, NULL, "plain text"},
    {"421 4.3.2 Shutting down", 0, 421, 1, "4.3.2", "Shutting down"},
    {"550 5.7.123 three digits", 0, 550, 1, "5.7.123", "three digits"},
    {"550 5.123.1 x", 0, 550, 1, "5.123.1", "x"},
    {"550 text\twith tab", 0, 550, 1, NULL, "text\twith tab"},
    {"550-5.7.1 a\r\n550 5.7.1 b", 0, 550, 2, "5.7.1", "b"},
    {"550-a\r\n550-b\r\n550 c", 0, 550, 3, NULL, "c"},
    {"450-4.2.0 x\r\n450 y", 0, 450, 2, NULL, "y"},
    {"550 100%% sure", 0, 550, 1, NULL, "100%% sure"},
    {"550 5 is a number", 0, 550, 1, NULL, "5 is a number"},
    {"550 5.7.1", 0, 550, 1, "5.7.1", ""},
    /* invalid */
    {"", -1, 0, 0, NULL, NULL},
    {"250 ok", -1, 0, 0, NULL, NULL},
    {"350 go on", -1, 0, 0, NULL, NULL},
    {"550", -1, 0, 0, NULL, NULL},
    {"550x text", -1, 0, 0, NULL, NULL},
    {"55 text", -1, 0, 0, NULL, NULL},
    {"5a0 text", -1, 0, 0, NULL, NULL},
    {"550-single line with dash", -1, 0, 0, NULL, NULL},
    {"550 a\r\n550 b", -1, 0, 0, NULL, NULL},
    {"550-a\r\n551 b", -1, 0, 0, NULL, NULL},
    {"550-a\r\n450 b", -1, 0, 0, NULL, NULL},
    {"550-a\r\n", -1, 0, 0, NULL, NULL},
    {"550 a\r\n", -1, 0, 0, NULL, NULL},
    {"550 a\nb", -1, 0, 0, NULL, NULL},
    {"550-a\n550 b", -1, 0, 0, NULL, NULL},
    {"550 a\rb", -1, 0, 0, NULL, NULL},
    {"550 a\r", -1, 0, 0, NULL, NULL},
    {"550 4.7.1 class differs", -1, 0, 0, NULL, NULL},
    {"450 5.7.1 class differs", -1, 0, 0, NULL, NULL},
    {"550 2.0.0 class differs", -1, 0, 0, NULL, NULL},
    {"550 5.7 short", -1, 0, 0, NULL, NULL},
    {"550 5.7.1x", -1, 0, 0, NULL, NULL},
    {"550 5.1234.1 x", -1, 0, 0, NULL, NULL},
    {"550 5.1.1234 x", -1, 0, 0, NULL, NULL},
    {"550 5. x", -1, 0, 0, NULL, NULL},
    {"550 5.1. x", -1, 0, 0, NULL, NULL},
    {"550 a\x01" "b", -1, 0, 0, NULL, NULL},
    {"550 a\x7f", -1, 0, 0, NULL, NULL},
    {"550-5.7.1 a\r\n551 5.7.1 b", -1, 0, 0, NULL, NULL},
};

static void test_replycode_parse(void **state)
{
    for (size_t i = 0; i < sizeof replycode_cases / sizeof replycode_cases[0]; i++) {
        const struct replycode_case *c = &replycode_cases[i];
        struct milter_replycode out;
        const char *error = NULL;
        int rc = milter_replycode_parse(c->text, strlen(c->text), &out, &error);
        if (rc != c->rc)
            fail_msg("\"%s\": got %d (%s), want %d", c->text, rc, error ? error : "", c->rc);
        if (rc < 0) {
            assert_non_null(error);
            /* The same text inside a REPLYCODE frame is refused too. */
            struct milter_reply r;
            EXPECT_INT(decode_reply_bytes('y', c->text, strlen(c->text) + 1, &r, &error), -1,
                       c->text);
            continue;
        }
        EXPECT_INT(out.code, c->code, c->text);
        EXPECT_INT(out.line_count, c->lines, c->text);
        const struct milter_reply_line *last = &out.lines[out.line_count - 1];
        if (c->last_enhanced == NULL)
            assert_null(last->enhanced);
        else
            EXPECT_MEM(last->enhanced, last->enhanced_length, c->last_enhanced,
                       strlen(c->last_enhanced), c->text);
        EXPECT_MEM(last->text, last->text_length, c->last_text, strlen(c->last_text), c->text);
    }
}

static void test_replycode_limits(void **state)
{
    static char text[MILTER_REPLY_LINES_MAX * 12 + 64];
    struct milter_replycode out;
    const char *error;
    size_t length = 0;

    /* 32 lines pass, 33 do not. */
    for (int i = 0; i < MILTER_REPLY_LINES_MAX; i++)
        length += (size_t) sprintf(text + length, "550%c5.0.0 %02d%s",
                                   i == MILTER_REPLY_LINES_MAX - 1 ? ' ' : '-', i,
                                   i == MILTER_REPLY_LINES_MAX - 1 ? "" : "\r\n");
    EXPECT_INT(milter_replycode_parse(text, length, &out, &error), 0, "32 lines");
    EXPECT_INT(out.line_count, 32, "line count");
    EXPECT_MEM(out.lines[31].text, out.lines[31].text_length, "31", 2, "last line");
    length = 0;
    for (int i = 0; i <= MILTER_REPLY_LINES_MAX; i++)
        length += (size_t) sprintf(text + length, "550%c%02d%s",
                                   i == MILTER_REPLY_LINES_MAX ? ' ' : '-', i,
                                   i == MILTER_REPLY_LINES_MAX ? "" : "\r\n");
    EXPECT_INT(milter_replycode_parse(text, length, &out, &error), -1, "33 lines");

    /* A line of MILTER_REPLY_LINE_MAX bytes passes; one byte more does not. */
    static char line[MILTER_REPLY_LINE_MAX + 2];
    memset(line, 'x', sizeof line);
    memcpy(line, "550 ", 4);
    line[MILTER_REPLY_LINE_MAX] = '\0';
    EXPECT_INT(milter_replycode_parse(line, MILTER_REPLY_LINE_MAX, &out, &error), 0,
               "longest line");
    line[MILTER_REPLY_LINE_MAX] = 'x';
    line[MILTER_REPLY_LINE_MAX + 1] = '\0';
    EXPECT_INT(milter_replycode_parse(line, MILTER_REPLY_LINE_MAX + 1, &out, &error), -1,
               "line one byte too long");
    EXPECT_INT(milter_replycode_parse(NULL, 0, &out, NULL), -1, "NULL text");
}

struct malformed_case {
    const char *what;
    int command;
    const char *data;
    size_t length;
};

static const struct malformed_case malformed_replies[] = {
    {"unknown reply", 'Z', S("")},
    {"SETSYMLIST outside negotiation", 'l', S("\0\0\0\0j\0")},
    {"optneg truncated", 'O', S("\0\0\0\x06\0\0\0\0\0\0\0")},
    {"optneg empty", 'O', S("")},
    {"optneg truncated stage", 'O', S("\0\0\0\x06\0\0\x01\0\0\0\0\0\0\0")},
    {"optneg stage without names", 'O', S("\0\0\0\x06\0\0\x01\0\0\0\0\0\0\0\0\x01")},
    {"optneg names without NUL", 'O', S("\0\0\0\x06\0\0\x01\0\0\0\0\0\0\0\0\x01j")},
    {"optneg stage 7", 'O', S("\0\0\0\x06\0\0\x01\0\0\0\0\0\0\0\0\x07j\0")},
    {"optneg huge stage", 'O', S("\0\0\0\x06\0\0\x01\0\0\0\0\0\xff\xff\xff\xffj\0")},
    {"optneg stage twice", 'O',
     S("\0\0\0\x06\0\0\x01\0\0\0\0\0\0\0\0\x01j\0\0\0\0\x01k\0")},
    {"addrcpt without NUL", '+', S("<a@b>")},
    {"addrcpt empty", '+', S("\0")},
    {"addrcpt missing", '+', S("")},
    {"addrcpt trailing", '+', S("<a@b>\0x\0")},
    {"delrcpt trailing", '-', S("<a@b>\0\0")},
    {"addrcpt_par args without NUL", '2', S("<a@b>\0NOTIFY=NEVER")},
    {"addrcpt_par trailing", '2', S("<a@b>\0A\0B\0")},
    {"addrcpt_par empty", '2', S("\0A\0")},
    {"chgfrom empty", 'e', S("\0")},
    {"chgfrom trailing", 'e', S("<a@b>\0A\0B")},
    {"addheader value missing", 'h', S("X-A\0")},
    {"addheader value without NUL", 'h', S("X-A\0v")},
    {"addheader empty name", 'h', S("\0v\0")},
    {"addheader name with space", 'h', S("X A\0v\0")},
    {"addheader name with colon", 'h', S("X:A\0v\0")},
    {"addheader name with CR", 'h', S("X\rA\0v\0")},
    {"addheader name with 8-bit byte", 'h', S("X\xe9\0v\0")},
    {"addheader value with bare LF", 'h', S("X\0a\nb\0")},
    {"addheader value with bare CR", 'h', S("X\0a\rb\0")},
    {"addheader value ending in CRLF", 'h', S("X\0a\r\n\0")},
    {"addheader value with CRLF then text", 'h', S("X\0a\r\nBcc: x\0")},
    {"addheader trailing", 'h', S("X\0v\0z")},
    {"insheader truncated index", 'i', S("\0\0\0")},
    {"insheader no strings", 'i', S("\0\0\0\0")},
    {"insheader index over INT32_MAX", 'i', S("\x80\0\0\0X\0v\0")},
    {"chgheader index over INT32_MAX", 'm', S("\xff\xff\xff\xffX\0v\0")},
    {"chgheader empty name", 'm', S("\0\0\0\x01\0\0")},
    {"chgheader value without NUL", 'm', S("\0\0\0\x01X\0v")},
    {"quarantine empty", 'q', S("\0")},
    {"quarantine without NUL", 'q', S("reason")},
    {"quarantine trailing", 'q', S("reason\0x")},
    {"replycode without NUL", 'y', S("550 5.7.1 no")},
    {"replycode trailing after NUL", 'y', S("550 5.7.1 no\0x")},
    {"replycode with NUL inside", 'y', S("550 5.7.1\0no\0")},
    {"replycode empty", 'y', S("\0")},
    {"replycode missing", 'y', S("")},
    {"replycode 250", 'y', S("250 2.0.0 ok\0")},
    {"replycode mismatched lines", 'y', S("550-5.7.1 a\r\n451 4.7.1 b\0")},
};

static void test_reply_malformed(void **state)
{
    for (size_t i = 0; i < sizeof malformed_replies / sizeof malformed_replies[0]; i++) {
        const struct malformed_case *c = &malformed_replies[i];
        struct milter_reply r;
        const char *error = NULL;
        int rc = decode_reply_bytes(c->command, c->data, c->length, &r, &error);
        if (rc != -1)
            fail_msg("%s: got %d, want -1", c->what, rc);
        if (error == NULL || error[0] == '\0')
            fail_msg("%s: got no error text, want one", c->what);
    }
    /* The error pointer may be NULL. */
    struct milter_frame frame = {'Z', NULL, 0, NULL};
    struct milter_reply r;
    EXPECT_INT(milter_reply_decode(&frame, &r, NULL), -1, "NULL error pointer");
}

static const struct malformed_case malformed_commands[] = {
    {"unknown command", 'Z', S("")},
    {"optneg short", 'O', S("\0\0\0\x06\0\0\0\0\0\0\0")},
    {"optneg long", 'O', S("\0\0\0\x06\0\0\0\0\0\0\0\0\0")},
    {"macro empty", 'D', S("")},
    {"macro bad stage", 'D', S("Xj\0v\0")},
    {"macro stage for abort", 'D', S("Aj\0v\0")},
    {"macro odd strings", 'D', S("Cj\0")},
    {"macro without NUL", 'D', S("Cj\0v")},
    {"connect no family", 'C', S("host\0")},
    {"connect no hostname NUL", 'C', S("host")},
    {"connect bad family", 'C', S("host\0X")},
    {"connect truncated port", 'C', S("host\0" "4\0")},
    {"connect no address", 'C', S("host\0" "4\0\x19")},
    {"connect address without NUL", 'C', S("host\0" "4\0\x19" "1.2.3.4")},
    {"connect trailing", 'C', S("host\0" "4\0\x19" "1.2.3.4\0x")},
    {"connect unknown with data", 'C', S("host\0Ux")},
    {"helo missing", 'H', S("")},
    {"helo trailing", 'H', S("a\0b\0")},
    {"mail missing", 'M', S("")},
    {"mail without NUL", 'M', S("<a@b>")},
    {"rcpt last without NUL", 'R', S("<a@b>\0X=1")},
    {"header value missing", 'L', S("X\0")},
    {"header trailing", 'L', S("X\0v\0w")},
    {"unknown trailing", 'U', S("FOO\0x")},
    {"data with data", 'T', S("x")},
    {"eoh with data", 'N', S("x")},
    {"abort with data", 'A', S("x")},
    {"quit with data", 'Q', S("x")},
    {"quit_nc with data", 'K', S("x")},
};

static void test_command_malformed(void **state)
{
    for (size_t i = 0; i < sizeof malformed_commands / sizeof malformed_commands[0]; i++) {
        const struct malformed_case *c = &malformed_commands[i];
        struct raw_frame raw;
        struct milter_frame frame;
        struct milter_command command;
        const char *error = NULL;
        raw_frame_make(&raw, c->command, c->data, c->length);
        next_frame_ok(raw.bytes, raw.length, &frame);
        int rc = milter_command_decode(&frame, &command, &error);
        if (rc != -1)
            fail_msg("%s: got %d, want -1", c->what, rc);
        if (error == NULL || error[0] == '\0')
            fail_msg("%s: got no error text, want one", c->what);
    }
    /* BODYEOB may carry a last chunk. */
    struct raw_frame raw;
    struct milter_frame frame;
    struct milter_command command;
    raw_frame_make(&raw, 'E', "tail", 4);
    next_frame_ok(raw.bytes, raw.length, &frame);
    EXPECT_INT(milter_command_decode(&frame, &command, NULL), 0, "eob with a chunk");
    EXPECT_MEM(command.body.data, command.body.length, "tail", 4, "eob chunk");
}

struct unescape_case {
    const char *in;
    size_t out_size;
    int rc;
    const char *want;
};

static const struct unescape_case unescape_cases[] = {
    {"plain", 64, 0, "plain"},
    {"100%% sure", 64, 0, "100% sure"},
    {"%%%%", 64, 0, "%%"},
    {"a%b", 64, 0, "ab"},
    {"end%", 64, 0, "end"},
    {"%", 64, 0, ""},
    {"", 1, 0, ""},
    {"abc", 4, 0, "abc"},
    {"abc", 3, -1, ""},
    {"a%%", 2, -1, ""}, /* "a%" needs 3 bytes */
};

static void test_percent_unescape(void **state)
{
    for (size_t i = 0; i < sizeof unescape_cases / sizeof unescape_cases[0]; i++) {
        const struct unescape_case *c = &unescape_cases[i];
        char out[64];
        int rc = milter_percent_unescape(c->in, strlen(c->in), out, c->out_size);
        EXPECT_INT(rc, c->rc, c->in);
        EXPECT_STR(out, c->want, c->in);
    }
    char one[1];
    EXPECT_INT(milter_percent_unescape("x", 1, one, 0), -1, "out_size 0");
    EXPECT_INT(milter_percent_unescape("%%", 2, one, 1), -1, "no room for %");
    EXPECT_INT(milter_percent_unescape("%", 1, one, 1), 0, "lone % into 1 byte");
    EXPECT_STR(one, "", "lone %");
}

/* ---------------------------------------------------------------- negotiation rules */

struct optneg_case {
    const char *what;
    uint32_t version, actions, protocol;
    size_t macro_lists;
    int rc;
};

static const struct optneg_case optneg_cases[] = {
    {"everything offered", 6, SMFI_CURR_ACTS, SMFI_CURR_PROT, 0, 0},
    {"nothing", 6, 0, 0, 0, 0},
    {"version 2", 2, SMFIF_ADDHDRS, SMFIP_NOHELO, 0, 0},
    {"version 1", 1, 0, 0, 0, -1},
    {"version 0", 0, 0, 0, 0, -1},
    {"version 7", 7, 0, 0, 0, -1},
    {"unknown action", 6, 0x200, 0, 0, -1},
    {"MDS not offered", 6, 0, SMFIP_MDS_256K, 0, -1},
    {"unknown protocol bit", 6, 0, 0x00200000, 0, -1},
    {"macro lists with SETSYMLIST", 6, SMFIF_SETSYMLIST, 0, 1, 0},
    {"macro lists without SETSYMLIST", 6, SMFIF_ADDHDRS, 0, 1, -1},
};

static void test_optneg_check(void **state)
{
    for (size_t i = 0; i < sizeof optneg_cases / sizeof optneg_cases[0]; i++) {
        const struct optneg_case *c = &optneg_cases[i];
        struct milter_optneg answer = {c->version, c->actions, c->protocol, c->macro_lists,
                                       {{MILTER_SMFIM_CONNECT, "j"}}};
        const char *error = NULL;
        int rc = milter_optneg_check(6, milter_offered_actions(), milter_offered_protocol(6),
                                     &answer, &error);
        EXPECT_INT(rc, c->rc, c->what);
        if (rc < 0)
            assert_non_null(error);
    }
    struct milter_optneg v6 = {6, 0, 0, 0, {{0, NULL}}};
    EXPECT_INT(milter_optneg_check(4, SMFI_CURR_ACTS, SMFI_CURR_PROT, &v6, NULL), -1,
               "answer newer than a version 4 offer");
}

struct allowed_case {
    enum milter_command_type stage;
    enum milter_reply_type reply;
    uint32_t actions, protocol;
    bool want;
};

static const struct allowed_case allowed_cases[] = {
    {MILTER_COMMAND_OPTNEG, MILTER_REPLY_OPTNEG, 0, 0, true},
    {MILTER_COMMAND_OPTNEG, MILTER_REPLY_CONTINUE, 0, 0, false},
    {MILTER_COMMAND_OPTNEG, MILTER_REPLY_PROGRESS, 0, 0, false},
    {MILTER_COMMAND_CONNECT, MILTER_REPLY_OPTNEG, 0, 0, false},
    {MILTER_COMMAND_CONNECT, MILTER_REPLY_ACCEPT, 0, 0, true},
    {MILTER_COMMAND_CONNECT, MILTER_REPLY_REPLYCODE, 0, 0, true},
    {MILTER_COMMAND_CONNECT, MILTER_REPLY_DISCARD, 0, 0, false},
    {MILTER_COMMAND_HELO, MILTER_REPLY_DISCARD, 0, 0, false},
    {MILTER_COMMAND_MAIL, MILTER_REPLY_DISCARD, 0, 0, true},
    {MILTER_COMMAND_RCPT, MILTER_REPLY_TEMPFAIL, 0, 0, true},
    {MILTER_COMMAND_HEADER, MILTER_REPLY_PROGRESS, 0, 0, true},
    {MILTER_COMMAND_UNKNOWN, MILTER_REPLY_REJECT, 0, 0, true},
    {MILTER_COMMAND_DATA, MILTER_REPLY_SHUTDOWN, 0, 0, true},
    {MILTER_COMMAND_EOH, MILTER_REPLY_CONN_FAIL, 0, 0, true},
    {MILTER_COMMAND_BODY, MILTER_REPLY_SKIP, 0, MILTER_SMFIP_SKIP, true},
    {MILTER_COMMAND_BODY, MILTER_REPLY_SKIP, 0, 0, false},
    {MILTER_COMMAND_HEADER, MILTER_REPLY_SKIP, 0, MILTER_SMFIP_SKIP, false},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_SKIP, 0, MILTER_SMFIP_SKIP, false},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_ADDHEADER, MILTER_SMFIF_ADDHDRS, 0, true},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_ADDHEADER, MILTER_SMFIF_CHGHDRS, 0, false},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_INSHEADER, MILTER_SMFIF_ADDHDRS, 0, true},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_CHGHEADER, MILTER_SMFIF_CHGHDRS, 0, true},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_CHGHEADER, MILTER_SMFIF_ADDHDRS, 0, false},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_REPLBODY, MILTER_SMFIF_CHGBODY, 0, true},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_REPLBODY, 0, 0, false},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_ADDRCPT, MILTER_SMFIF_ADDRCPT, 0, true},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_ADDRCPT, MILTER_SMFIF_ADDRCPT_PAR, 0, false},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_ADDRCPT_PAR, MILTER_SMFIF_ADDRCPT_PAR, 0, true},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_DELRCPT, MILTER_SMFIF_DELRCPT, 0, true},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_CHGFROM, MILTER_SMFIF_CHGFROM, 0, true},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_CHGFROM, SMFI_CURR_ACTS & ~MILTER_SMFIF_CHGFROM, 0,
     false},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_QUARANTINE, MILTER_SMFIF_QUARANTINE, 0, true},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_QUARANTINE, 0, 0, false},
    {MILTER_COMMAND_BODY, MILTER_REPLY_QUARANTINE, SMFI_CURR_ACTS, 0, false},
    {MILTER_COMMAND_RCPT, MILTER_REPLY_ADDRCPT, SMFI_CURR_ACTS, 0, false},
    {MILTER_COMMAND_EOH, MILTER_REPLY_ADDHEADER, SMFI_CURR_ACTS, 0, false},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_ACCEPT, 0, 0, true},
    {MILTER_COMMAND_BODYEOB, MILTER_REPLY_DISCARD, 0, 0, true},
    {MILTER_COMMAND_COUNT, MILTER_REPLY_ACCEPT, 0, 0, false},
    {MILTER_COMMAND_BODY, MILTER_REPLY_COUNT, 0, 0, false},
};

static void test_reply_allowed(void **state)
{
    char what[128];
    for (size_t i = 0; i < sizeof allowed_cases / sizeof allowed_cases[0]; i++) {
        const struct allowed_case *c = &allowed_cases[i];
        snprintf(what, sizeof what, "%s after %s", milter_reply_type_name(c->reply),
                 milter_command_type_name(c->stage));
        EXPECT_INT(milter_reply_allowed(c->stage, c->reply, c->actions, c->protocol), c->want,
                   what);
    }
    /* Commands without a reply take none, whatever was negotiated. */
    static const enum milter_command_type silent[] = {MILTER_COMMAND_ABORT, MILTER_COMMAND_MACRO,
                                                      MILTER_COMMAND_QUIT,
                                                      MILTER_COMMAND_QUIT_NC};
    for (size_t i = 0; i < sizeof silent / sizeof silent[0]; i++)
        for (int r = 0; r < MILTER_REPLY_COUNT; r++) {
            snprintf(what, sizeof what, "%s after %s", milter_reply_type_name(r),
                     milter_command_type_name(silent[i]));
            EXPECT_INT(milter_reply_allowed(silent[i], r, SMFI_CURR_ACTS, SMFI_CURR_PROT), 0,
                       what);
        }
    /* The modification replies, and only they, come before the final verdict. */
    for (int r = 0; r < MILTER_REPLY_COUNT; r++) {
        bool modification = false;
        switch (r) {
        case MILTER_REPLY_ADDRCPT:
        case MILTER_REPLY_DELRCPT:
        case MILTER_REPLY_ADDRCPT_PAR:
        case MILTER_REPLY_CHGFROM:
        case MILTER_REPLY_ADDHEADER:
        case MILTER_REPLY_INSHEADER:
        case MILTER_REPLY_CHGHEADER:
        case MILTER_REPLY_REPLBODY:
        case MILTER_REPLY_QUARANTINE:
            modification = true;
            break;
        default:
            break;
        }
        EXPECT_INT(milter_reply_is_modification(r), modification, milter_reply_type_name(r));
    }
    EXPECT_INT(milter_reply_is_modification(MILTER_REPLY_COUNT), false, "out of range");
    /* With nothing negotiated, modifications (and SKIP) are refused everywhere. */
    for (int s = 0; s < MILTER_COMMAND_COUNT; s++)
        for (int r = 0; r < MILTER_REPLY_COUNT; r++)
            if (milter_reply_allowed(s, r, 0, 0) &&
                (milter_reply_is_modification(r) || r == MILTER_REPLY_SKIP))
                fail_msg("%s after %s without negotiation: got allowed, want refused",
                         milter_reply_type_name(r), milter_command_type_name(s));
}

struct wanted_case {
    enum milter_command_type command;
    uint32_t version, protocol;
    bool wanted, awaits;
};

static const struct wanted_case wanted_cases[] = {
    {MILTER_COMMAND_CONNECT, 6, 0, true, true},
    {MILTER_COMMAND_CONNECT, 6, MILTER_SMFIP_NOCONNECT, false, true},
    {MILTER_COMMAND_CONNECT, 6, MILTER_SMFIP_NR_CONN, true, false},
    {MILTER_COMMAND_HELO, 6, MILTER_SMFIP_NOHELO | MILTER_SMFIP_NR_HELO, false, false},
    {MILTER_COMMAND_MAIL, 6, MILTER_SMFIP_NOMAIL, false, true},
    {MILTER_COMMAND_MAIL, 6, MILTER_SMFIP_NR_MAIL, true, false},
    {MILTER_COMMAND_RCPT, 6, MILTER_SMFIP_NORCPT | MILTER_SMFIP_NR_RCPT, false, false},
    {MILTER_COMMAND_DATA, 6, 0, true, true},
    {MILTER_COMMAND_DATA, 3, 0, false, true},
    {MILTER_COMMAND_DATA, 6, MILTER_SMFIP_NODATA | MILTER_SMFIP_NR_DATA, false, false},
    {MILTER_COMMAND_UNKNOWN, 2, 0, false, true},
    {MILTER_COMMAND_UNKNOWN, 3, 0, true, true},
    {MILTER_COMMAND_UNKNOWN, 6, MILTER_SMFIP_NOUNKNOWN | MILTER_SMFIP_NR_UNKN, false, false},
    {MILTER_COMMAND_HEADER, 6, MILTER_SMFIP_NOHDRS, false, true},
    {MILTER_COMMAND_HEADER, 6, MILTER_SMFIP_NR_HDR, true, false},
    {MILTER_COMMAND_EOH, 6, MILTER_SMFIP_NOEOH | MILTER_SMFIP_NR_EOH, false, false},
    {MILTER_COMMAND_BODY, 6, MILTER_SMFIP_NOBODY, false, true},
    {MILTER_COMMAND_BODY, 6, MILTER_SMFIP_NR_BODY, true, false},
    {MILTER_COMMAND_BODYEOB, 2, SMFI_CURR_PROT, true, true},
    {MILTER_COMMAND_OPTNEG, 6, SMFI_CURR_PROT, true, true},
    {MILTER_COMMAND_MACRO, 6, SMFI_CURR_PROT, true, false},
    {MILTER_COMMAND_ABORT, 2, 0, true, false},
    {MILTER_COMMAND_QUIT, 2, 0, true, false},
    {MILTER_COMMAND_QUIT_NC, 4, 0, false, false},
    {MILTER_COMMAND_QUIT_NC, 6, 0, true, false},
    {MILTER_COMMAND_COUNT, 6, 0, false, false},
};

static void test_command_wanted(void **state)
{
    char what[128];
    for (size_t i = 0; i < sizeof wanted_cases / sizeof wanted_cases[0]; i++) {
        const struct wanted_case *c = &wanted_cases[i];
        snprintf(what, sizeof what, "%s version %u protocol 0x%x",
                 milter_command_type_name(c->command), (unsigned) c->version,
                 (unsigned) c->protocol);
        EXPECT_INT(milter_command_wanted(c->command, c->version, c->protocol), c->wanted, what);
        EXPECT_INT(milter_command_awaits_reply(c->command, c->protocol), c->awaits, what);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constants_match_libmilter),
        cmocka_unit_test(test_offered_protocol_versions),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_mask_format),
        cmocka_unit_test(test_buffer),
        cmocka_unit_test(test_encode_optneg),
        cmocka_unit_test(test_encode_macro),
        cmocka_unit_test(test_encode_connect),
        cmocka_unit_test(test_encode_envelope),
        cmocka_unit_test(test_encode_message),
        cmocka_unit_test(test_encode_session_stream),
        cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_frame_next_basics),
        cmocka_unit_test(test_frame_split_everywhere),
        cmocka_unit_test(test_reply_bodyless),
        cmocka_unit_test(test_reply_optneg),
        cmocka_unit_test(test_reply_envelope),
        cmocka_unit_test(test_reply_headers),
        cmocka_unit_test(test_reply_body_quarantine),
        cmocka_unit_test(test_reply_replycode),
        cmocka_unit_test(test_replycode_parse),
        cmocka_unit_test(test_replycode_limits),
        cmocka_unit_test(test_reply_malformed),
        cmocka_unit_test(test_command_malformed),
        cmocka_unit_test(test_percent_unescape),
        cmocka_unit_test(test_optneg_check),
        cmocka_unit_test(test_reply_allowed),
        cmocka_unit_test(test_command_wanted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
