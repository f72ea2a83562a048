/*
 * fuzz_milter_codec.c - libFuzzer target for milter-bridge/milter_codec.c.
 *
 * Interface: LLVMFuzzerTestOneInput. The input is a byte stream from a peer: it is split
 * with milter_frame_next, and every frame is copied into a heap block of its exact size (so
 * that ASan sees any read past the frame) and decoded both as a milter reply and as an MTA
 * command. Whatever decodes is then used the way the bridge would use it (strings read to
 * their end, reply lines unescaped, stage rules asked), and every decoded command is encoded
 * again and must give back the very same frame. The whole input is also parsed as REPLYCODE
 * text. Fatal: a mismatch aborts, which libFuzzer reports as a crash. Memory: everything
 * allocated is freed before returning.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memory.h"
#include "milter_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* touch - read every byte of a string so that ASan checks it; returns a value to keep */
static size_t touch(const char *s)
{
    return s ? strlen(s) : 0;
}

/* use_reply - what the bridge does with a decoded reply */
static size_t use_reply(const struct milter_reply *r)
{
    size_t sum = 0;
    char out[MILTER_REPLY_LINE_MAX + 1];

    for (int stage = 0; stage < MILTER_COMMAND_COUNT; stage++)
        sum += milter_reply_allowed(stage, r->type, MILTER_SMFIF_ALL, MILTER_SMFIP_SKIP);
    sum += touch(milter_reply_type_name(r->type));
    switch (r->type) {
    case MILTER_REPLY_OPTNEG: {
        const char *error;
        if (r->optneg.macro_list_count > MILTER_MACRO_STAGE_COUNT)
            abort();
        for (size_t i = 0; i < r->optneg.macro_list_count; i++) {
            if ((unsigned) r->optneg.macro_lists[i].stage >= MILTER_MACRO_STAGE_COUNT)
                abort();
            sum += touch(r->optneg.macro_lists[i].names);
        }
        sum += (size_t) milter_optneg_check(MILTER_PROTOCOL_VERSION, milter_offered_actions(),
                                            milter_offered_protocol(MILTER_PROTOCOL_VERSION),
                                            &r->optneg, &error);
        char mask[512];
        sum += (size_t) milter_actions_format(r->optneg.actions, mask, sizeof mask);
        sum += (size_t) milter_protocol_format(r->optneg.protocol, mask, sizeof mask);
        sum += (size_t) milter_protocol_format(r->optneg.protocol, mask, 16);
        break;
    }
    case MILTER_REPLY_ADDRCPT:
    case MILTER_REPLY_DELRCPT:
    case MILTER_REPLY_ADDRCPT_PAR:
    case MILTER_REPLY_CHGFROM:
        if (r->envelope.address[0] == '\0')
            abort();
        sum += touch(r->envelope.address) + touch(r->envelope.args);
        break;
    case MILTER_REPLY_ADDHEADER:
    case MILTER_REPLY_INSHEADER:
    case MILTER_REPLY_CHGHEADER:
        if (r->header.index > INT32_MAX || r->header.name[0] == '\0')
            abort();
        sum += touch(r->header.name) + touch(r->header.value);
        break;
    case MILTER_REPLY_REPLBODY:
        for (size_t i = 0; i < r->body.length; i++)
            sum += r->body.data[i];
        break;
    case MILTER_REPLY_QUARANTINE:
        sum += touch(r->quarantine_reason);
        break;
    case MILTER_REPLY_REPLYCODE:
        if (r->replycode.code < 400 || r->replycode.code > 599 || r->replycode.line_count == 0
            || r->replycode.line_count > MILTER_REPLY_LINES_MAX)
            abort();
        sum += touch(r->replycode.reply);
        for (size_t i = 0; i < r->replycode.line_count; i++) {
            const struct milter_reply_line *line = &r->replycode.lines[i];
            if (line->text_length > MILTER_REPLY_LINE_MAX)
                abort();
            for (size_t j = 0; j < line->enhanced_length; j++)
                sum += (unsigned char) line->enhanced[j];
            if (line->enhanced != NULL && line->enhanced[0] != r->replycode.reply[0])
                abort();
            if (milter_percent_unescape(line->text, line->text_length, out, sizeof out) != 0)
                abort(); /* the output is never longer than the input */
            sum += strlen(out);
        }
        break;
    default:
        break;
    }
    return sum;
}

/* same_frame - the encoder's output is exactly the original frame */
static void same_frame(const struct milter_buffer *b, const unsigned char *frame, size_t length)
{
    if (b->length != length || memcmp(b->data, frame, length) != 0)
        abort();
}

/* collect - the strings of a decoded list, as the argv the encoders take */
static const char **collect(const struct milter_string_list *list)
{
    const char **argv = xcalloc(list->count + 1, sizeof *argv);
    const char *s = NULL;
    for (size_t i = 0; i < list->count; i++) {
        s = milter_string_list_next(list, s);
        if (s == NULL)
            abort();
        argv[i] = s;
    }
    if (milter_string_list_next(list, s) != NULL)
        abort();
    return argv;
}

/* reencode - encode a decoded command again; it must reproduce the frame byte for byte */
static void reencode(const struct milter_command *c, const unsigned char *frame, size_t length)
{
    struct milter_buffer b = {0};
    int rc = -1;

    switch (c->type) {
    case MILTER_COMMAND_OPTNEG:
        rc = milter_encode_optneg(&b, c->optneg.version, c->optneg.actions, c->optneg.protocol);
        break;
    case MILTER_COMMAND_MACRO: {
        const char **argv = collect(&c->macro.pairs);
        size_t pairs = c->macro.pairs.count / 2;
        const char **names = xcalloc(pairs + 1, sizeof *names);
        const char **values = xcalloc(pairs + 1, sizeof *values);
        bool empty_name = false;
        for (size_t i = 0; i < pairs; i++) {
            names[i] = argv[2 * i];
            values[i] = argv[2 * i + 1];
            empty_name |= names[i][0] == '\0';
        }
        rc = milter_encode_macro(&b, c->macro.stage_command, names, values, pairs);
        if (rc != 0 && !empty_name) /* the encoder refuses only empty names */
            abort();
        free(names);
        free(values);
        free(argv);
        break;
    }
    case MILTER_COMMAND_CONNECT:
        rc = milter_encode_connect(&b, c->connect.hostname, c->connect.family, c->connect.port,
                                   c->connect.address);
        if (rc != 0)
            abort();
        break;
    case MILTER_COMMAND_HELO:
        rc = milter_encode_helo(&b, c->helo);
        break;
    case MILTER_COMMAND_MAIL:
    case MILTER_COMMAND_RCPT: {
        const char **argv = collect(&c->argv);
        rc = c->type == MILTER_COMMAND_MAIL ? milter_encode_mail(&b, argv, c->argv.count)
                                            : milter_encode_rcpt(&b, argv, c->argv.count);
        free(argv);
        if (rc != 0)
            abort();
        break;
    }
    case MILTER_COMMAND_HEADER:
        rc = milter_encode_header(&b, c->header.name, c->header.value);
        if (rc != 0 && c->header.name[0] != '\0')
            abort();
        break;
    case MILTER_COMMAND_BODY:
        rc = milter_encode_body(&b, c->body.data, c->body.length);
        if (rc != 0 && c->body.length != 0)
            abort();
        break;
    case MILTER_COMMAND_BODYEOB:
        if (c->body.length == 0)
            rc = milter_encode_eob(&b);
        break;
    case MILTER_COMMAND_UNKNOWN:
        rc = milter_encode_unknown(&b, c->unknown);
        break;
    case MILTER_COMMAND_DATA:
        rc = milter_encode_data(&b);
        break;
    case MILTER_COMMAND_EOH:
        rc = milter_encode_eoh(&b);
        break;
    case MILTER_COMMAND_ABORT:
        rc = milter_encode_abort(&b);
        break;
    case MILTER_COMMAND_QUIT:
        rc = milter_encode_quit(&b);
        break;
    case MILTER_COMMAND_QUIT_NC:
        rc = milter_encode_quit_nc(&b);
        break;
    case MILTER_COMMAND_COUNT:
        abort();
    }
    if (rc == 0)
        same_frame(&b, frame, length);
    milter_buffer_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    volatile size_t sink = 0;
    size_t at = 0;

    for (;;) {
        struct milter_frame frame;
        size_t consumed;
        int rc = milter_frame_next(data + at, size - at, MILTER_MAX_FRAME, &frame, &consumed);
        if (rc == 0) {
            if (consumed != 0 || frame.error != NULL)
                abort();
            break;
        }
        if (rc < 0) {
            if (frame.error == NULL || consumed != 0)
                abort();
            break;
        }
        if (rc != 1 || consumed != frame.length + 5 || consumed > size - at)
            abort();

        /* The frame in a heap block of exactly its size, data in a block of its own. */
        unsigned char *whole = xmalloc(consumed);
        memcpy(whole, data + at, consumed);
        unsigned char *copy = xmalloc(frame.length);
        memcpy(copy, frame.data, frame.length);
        struct milter_frame exact = {frame.command, copy, frame.length, NULL};

        struct milter_reply reply;
        const char *error = NULL;
        if (milter_reply_decode(&exact, &reply, &error) == 0)
            sink += use_reply(&reply);
        else if (error == NULL)
            abort();

        struct milter_command command;
        error = NULL;
        if (milter_command_decode(&exact, &command, &error) == 0)
            reencode(&command, whole, consumed);
        else if (error == NULL)
            abort();

        sink += touch(milter_reply_name(frame.command)) + touch(milter_command_name(frame.command));
        free(copy);
        free(whole);
        at += consumed;
    }

    /* The whole input as REPLYCODE text (NUL-terminated, as the decoder hands it over). */
    char *text = xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    struct milter_replycode code;
    const char *error = NULL;
    if (milter_replycode_parse(text, strnlen(text, size), &code, &error) == 0) {
        struct milter_reply r = {.type = MILTER_REPLY_REPLYCODE, .replycode = code};
        sink += use_reply(&r);
    } else if (error == NULL) {
        abort();
    }
    char *out = xmalloc(size + 1);
    if (milter_percent_unescape(text, size, out, size + 1) != 0)
        abort();
    free(out);
    free(text);
    (void) sink;
    return 0;
}
