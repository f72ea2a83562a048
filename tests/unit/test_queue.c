/*
 * test_queue.c - unit tests of the relay and spool pieces that need no network: dot-stuffing
 * and xtext (smtp_client.c), queue file format, parser and in-place updates (spool.c), retry
 * schedule parsing (config.c), retry delays, NOTIFY and the DSN text (deliver.c).
 * Table-driven; failures print "got X, want Y". Fatal: none (cmocka reports).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "deliver.h"
#include "memory.h"
#include "smtp_client.h"
#include "spool.h"

/* ---------------------------------------------------------------- dot-stuffing */

struct stuff_case {
    const char *name;
    const char *chunks[4]; /* fed in order; NULL ends */
    const char *want;      /* stuffed data plus the end of data */
};

static const struct stuff_case stuff_cases[] = {
    {"plain", {"a\r\nb\r\n", NULL}, "a\r\nb\r\n.\r\n"},
    {"leading dot", {".a\r\n", NULL}, "..a\r\n.\r\n"},
    {"lone dot line", {"a\r\n.\r\nb\r\n", NULL}, "a\r\n..\r\nb\r\n.\r\n"},
    {"two dots", {"..\r\n", NULL}, "...\r\n.\r\n"},
    {"dot after chunk boundary", {"a\r\n", ".b\r\n", NULL}, "a\r\n..b\r\n.\r\n"},
    {"CR LF split across chunks", {"a\r", "\n.", "b\r\n", NULL}, "a\r\n..b\r\n.\r\n"},
    {"dot mid-line untouched", {"a.b\r\n.\r\n", NULL}, "a.b\r\n..\r\n.\r\n"},
    {"no final CRLF", {"a\r\n.b", NULL}, "a\r\n..b\r\n.\r\n"},
    {"final CR only", {"abc\r", NULL}, "abc\r\n.\r\n"},
    {"empty message", {NULL}, ".\r\n"},
    {"bare LF starts a line too", {"a\n.b\r\n", NULL}, "a\n..b\r\n.\r\n"},
    {"one byte chunks", {".", "\r", "\n", "."}, "..\r\n..\r\n.\r\n"},
};

static void test_stuffing(void **state)
{
    for (size_t i = 0; i < sizeof stuff_cases / sizeof stuff_cases[0]; i++) {
        const struct stuff_case *c = &stuff_cases[i];
        struct smtp_stuff_state s = {.line_start = true};
        char out[256];
        size_t used = 0;
        for (size_t k = 0; k < 4 && c->chunks[k] != NULL; k++)
            used += smtp_stuff_chunk(&s, c->chunks[k], strlen(c->chunks[k]), out + used);
        used += smtp_stuff_finish(&s, out + used);
        out[used] = '\0';
        if (strcmp(out, c->want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", c->name, out, c->want);
    }
}

static void test_xtext(void **state)
{
    static const struct {
        const char *in;
        const char *want;
        size_t size;
    } cases[] = {
        {"plain", "plain", 64},
        {"a+b=c d", "a+2Bb+3Dc+20d", 64},
        {"\xc3\xa9", "+C3+A9", 64},
        {"", "", 64},
        {"toolong", NULL, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        int rc = smtp_xtext_encode(cases[i].in, out, cases[i].size);
        if (cases[i].want == NULL) {
            if (rc != -1)
                fail_msg("xtext %s: got %d, want -1", cases[i].in, rc);
        } else if (rc != 0 || strcmp(out, cases[i].want) != 0) {
            fail_msg("xtext %s: got %d \"%s\", want \"%s\"", cases[i].in, rc, rc == 0 ? out : "",
                     cases[i].want);
        }
    }
    static const struct {
        const char *address;
        bool want;
    } addresses[] = {
        {"127.0.0.1:25", true}, {"[::1]:2525", true}, {"mx.example:10025", true},
        {"unix:/run/lmtp.sock", true}, {"unix:relative", false}, {"::1:25", false},
        {"host:0", false}, {"host:65536", false}, {"host", false}, {"[::1]25", false},
        {"host:25x", false}, {"", false},
    };
    for (size_t i = 0; i < sizeof addresses / sizeof addresses[0]; i++)
        if (smtp_client_address_valid(addresses[i].address) != addresses[i].want)
            fail_msg("address %s: got %d, want %d", addresses[i].address,
                     !addresses[i].want, addresses[i].want);
}

/* ---------------------------------------------------------------- queue files */

static void envelope_sample(struct spool_envelope *e, struct spool_recipient *r, struct spool_note *n)
{
    memset(e, 0, sizeof *e);
    r[0] = (struct spool_recipient){.address = (char *)"bob@example.com",
                                    .params = (char *)"NOTIFY=FAILURE ORCPT=rfc822;bob+40x"};
    r[1] = (struct spool_recipient){.address = (char *)"\"odd user\"@example.com", .params = (char *)""};
    r[2] = (struct spool_recipient){.address = (char *)"j\xc3\xb6rg@example.com", .params = (char *)"",
                                    .state = SPOOL_RCPT_DELIVERED};
    n[0] = (struct spool_note){.key = (char *)"spam score", .value = (char *)"5.1 % high"};
    e->queue_id = (char *)"ABC123";
    e->created = 1700000000;
    e->mail_from = (char *)"";
    e->mail_params = (char *)"RET=HDRS ENVID=x+2By";
    e->client_ip = (char *)"192.0.2.1";
    e->client_port = 4242;
    e->helo = (char *)"client.example";
    e->protocol = (char *)"ESMTP";
    e->quarantine = (char *)"virus: EICAR test";
    e->notes = n;
    e->note_count = 1;
    e->recipients = r;
    e->recipient_count = 3;
    e->attempts = 7;
    e->next_attempt = 1700003600;
}

static void test_spool_roundtrip(void **state)
{
    struct spool_envelope e;
    struct spool_recipient r[3];
    struct spool_note n[1];
    envelope_sample(&e, r, n);
    char *text = NULL;
    size_t length = 0;
    spool_envelope_format(&e, &text, &length);
    char error[128];
    struct spool_envelope back;
    if (spool_envelope_parse(text, length, &back, error, sizeof error) != 0)
        fail_msg("parse of formatted envelope: got error \"%s\", want success", error);
    assert_string_equal(back.queue_id, "ABC123");
    assert_string_equal(back.mail_from, "");
    assert_string_equal(back.mail_params, "RET=HDRS ENVID=x+2By");
    assert_string_equal(back.quarantine, "virus: EICAR test");
    assert_string_equal(back.notes[0].key, "spam score");
    assert_string_equal(back.notes[0].value, "5.1 % high");
    assert_int_equal(back.client_port, 4242);
    assert_int_equal(back.attempts, 7);
    assert_int_equal(back.next_attempt, 1700003600);
    assert_int_equal(back.recipient_count, 3);
    assert_string_equal(back.recipients[1].address, "\"odd user\"@example.com");
    assert_string_equal(back.recipients[2].address, "j\xc3\xb6rg@example.com");
    assert_string_equal(back.recipients[0].params, "NOTIFY=FAILURE ORCPT=rfc822;bob+40x");
    assert_int_equal(back.recipients[2].state, SPOOL_RCPT_DELIVERED);
    for (size_t i = 0; i < 3; i++) {
        char letter = text[back.recipients[i].state_offset];
        char want = i == 2 ? 'D' : 'P';
        if (letter != want || back.recipients[i].state_offset != e.recipients[i].state_offset)
            fail_msg("recipient %zu state offset: got '%c' at %lld, want '%c' at %lld", i, letter,
                     (long long)back.recipients[i].state_offset, want,
                     (long long)e.recipients[i].state_offset);
    }
    assert_int_equal(back.message_offset, (off_t)length);
    assert_int_equal(back.status_offset, e.status_offset);
    assert_memory_equal(text + back.status_offset, "status ", 7);
    spool_envelope_clear(&back);
    free(text);
}

static void test_spool_parse_errors(void **state)
{
    static const struct {
        const char *name;
        const char *text;
    } cases[] = {
        {"no magic", "id A\nmessage\n"},
        {"no message line", SPOOL_MAGIC "\nid A\n"},
        {"no recipient", SPOOL_MAGIC "\nid A\ncreated 1\nfrom \nstatus 0000000000 00000000000000000000 N\nmessage\n"},
        {"bad id", SPOOL_MAGIC "\nid ../x\ncreated 1\nfrom \nstatus 0000000000 00000000000000000000 N\nrcpt P a \nmessage\n"},
        {"repeated id", SPOOL_MAGIC "\nid A\nid B\ncreated 1\nfrom \nstatus 0000000000 00000000000000000000 N\nrcpt P a \nmessage\n"},
        {"short status", SPOOL_MAGIC "\nid A\ncreated 1\nfrom \nstatus 0 0 N\nrcpt P a \nmessage\n"},
        {"bad state", SPOOL_MAGIC "\nid A\ncreated 1\nfrom \nstatus 0000000000 00000000000000000000 N\nrcpt X a \nmessage\n"},
        {"bad escape", SPOOL_MAGIC "\nid A\ncreated 1\nfrom a%4\nstatus 0000000000 00000000000000000000 N\nrcpt P a \nmessage\n"},
        {"NUL escape", SPOOL_MAGIC "\nid A\ncreated 1\nfrom a%00\nstatus 0000000000 00000000000000000000 N\nrcpt P a \nmessage\n"},
        {"unknown record", SPOOL_MAGIC "\nid A\ncreated 1\nfrom \nstatus 0000000000 00000000000000000000 N\nrcpt P a \nbogus 1\nmessage\n"},
        {"raw space in value", SPOOL_MAGIC "\nid A\ncreated 1\nfrom a b\nstatus 0000000000 00000000000000000000 N\nrcpt P a \nmessage\n"},
        {"port too big", SPOOL_MAGIC "\nid A\ncreated 1\nfrom \nclient-port 70000\nstatus 0000000000 00000000000000000000 N\nrcpt P a \nmessage\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct spool_envelope e;
        char error[128];
        if (spool_envelope_parse(cases[i].text, strlen(cases[i].text), &e, error, sizeof error) == 0) {
            spool_envelope_clear(&e);
            fail_msg("%s: got success, want a parse error", cases[i].name);
        }
    }
    const char *good = SPOOL_MAGIC "\nid A\ncreated 1\nfrom \nstatus 0000000000 00000000000000000000 N\n"
                       "rcpt P a \nmessage\nbody";
    struct spool_envelope e;
    char error[128];
    if (spool_envelope_parse(good, strlen(good), &e, error, sizeof error) != 0)
        fail_msg("minimal file: got error \"%s\", want success", error);
    spool_envelope_clear(&e);
    static const struct {
        const char *id;
        bool want;
    } ids[] = {{"ABC123", true}, {"", false}, {"a/b", false}, {"..", false}, {"a b", false},
               {"0123456789012345678901234567890123456789012345678901234567890123", true},
               {"01234567890123456789012345678901234567890123456789012345678901234", false}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (spool_id_valid(ids[i].id) != ids[i].want)
            fail_msg("spool_id_valid(%s): got %d, want %d", ids[i].id, !ids[i].want, ids[i].want);
}

static int write_body(int fd, void *arg)
{
    const char *body = arg;
    return write(fd, body, strlen(body)) == (ssize_t)strlen(body) ? 0 : -1;
}

static void test_spool_files(void **state)
{
    char directory[] = "/tmp/porter-test-queue-XXXXXX";
    assert_non_null(mkdtemp(directory));
    char *queue = xasprintf("%s/q", directory);
    assert_int_equal(spool_prepare(queue), 0);
    struct spool_envelope e;
    struct spool_recipient r[3];
    struct spool_note n[1];
    envelope_sample(&e, r, n);
    const char *body = "Subject: x\r\n\r\nbody\r\n";
    assert_int_equal(spool_write(queue, SPOOL_ACTIVE, &e, write_body, (void *)body), 0);
    /* the same id again must not replace the first file */
    if (spool_write(queue, SPOOL_ACTIVE, &e, write_body, (void *)"other") == 0)
        fail_msg("second write of id ABC123: got success, want EEXIST");
    char *path = spool_path(queue, SPOOL_ACTIVE, "ABC123");
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct spool_envelope back;
    char error[128];
    if (spool_read(fd, &back, error, sizeof error) != 0)
        fail_msg("spool_read: got \"%s\", want success", error);
    assert_int_equal(back.message_length, (off_t)strlen(body));
    char message[64] = {0};
    assert_int_equal(pread(fd, message, sizeof message - 1, back.message_offset), (ssize_t)strlen(body));
    assert_string_equal(message, body);
    size_t marks[2] = {0, 1};
    assert_int_equal(spool_mark_recipients(fd, &back, marks, 2, SPOOL_RCPT_FAILED), 0);
    back.attempts = 8;
    back.next_attempt = 1800000000;
    back.delay_warned = true;
    assert_int_equal(spool_update_status(fd, &back), 0);
    spool_envelope_clear(&back);
    assert_int_equal(spool_read(fd, &back, error, sizeof error), 0);
    assert_int_equal(back.recipients[0].state, SPOOL_RCPT_FAILED);
    assert_int_equal(back.recipients[1].state, SPOOL_RCPT_FAILED);
    assert_int_equal(back.recipients[2].state, SPOOL_RCPT_DELIVERED);
    assert_int_equal(back.attempts, 8);
    assert_int_equal(back.next_attempt, 1800000000);
    assert_true(back.delay_warned);
    assert_int_equal(spool_pending_count(&back), 0);
    spool_envelope_clear(&back);
    close(fd);
    assert_int_equal(spool_move(queue, "ABC123", SPOOL_ACTIVE, SPOOL_HOLD), 0);
    char *held = spool_path(queue, SPOOL_HOLD, "ABC123");
    struct stat st;
    assert_int_equal(stat(held, &st), 0);
    assert_int_not_equal(stat(path, &st), 0);
    char *tmp = xasprintf("%s/tmp", queue);
    int rc = rmdir(tmp); /* empty: nothing was left in tmp/ */
    if (rc != 0)
        fail_msg("tmp/ after writes: got not empty, want empty");
    unlink(held);
    char *active = xasprintf("%s/active", queue), *hold = xasprintf("%s/hold", queue);
    rmdir(active);
    rmdir(hold);
    rmdir(queue);
    rmdir(directory);
    free(active);
    free(hold);
    free(tmp);
    free(held);
    free(path);
    free(queue);
}

/* ---------------------------------------------------------------- delivery */

static void test_retry_schedule(void **state)
{
    static const struct {
        const char *text;
        size_t want_count;
        double first, last;
    } good[] = {
        {"1m 5m 15m 1h 4h", 5, 60, 14400}, {"30s", 1, 30, 30}, {"  2s\t1.5m ", 2, 2, 90},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double steps[CONFIG_RETRY_STEPS_MAX];
        size_t count = 0;
        const char *error = config_retry_schedule_parse(good[i].text, steps, CONFIG_RETRY_STEPS_MAX, &count);
        if (error != NULL || count != good[i].want_count || steps[0] != good[i].first ||
            steps[count - 1] != good[i].last)
            fail_msg("\"%s\": got %s %zu steps, want %zu", good[i].text, error ? error : "ok", count,
                     good[i].want_count);
    }
    static const char *const bad[] = {"", "   ", "0s", "1x", "5m -1", "1m,5m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t count = 0;
        if (config_retry_schedule_parse(bad[i], NULL, CONFIG_RETRY_STEPS_MAX, &count) == NULL)
            fail_msg("\"%s\": got accepted, want an error", bad[i]);
    }
    double steps[3] = {60, 300, 900};
    static const struct {
        unsigned attempts;
        double want;
    } delays[] = {{0, 60}, {1, 60}, {2, 300}, {3, 900}, {4, 900}, {100, 900}};
    for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
        double got = deliver_retry_delay(steps, 3, delays[i].attempts);
        if (got != delays[i].want)
            fail_msg("delay after %u attempts: got %g, want %g", delays[i].attempts, got, delays[i].want);
    }
}

static void test_notify(void **state)
{
    static const struct {
        const char *params;
        int action;
        bool want;
    } cases[] = {
        {"", DELIVER_DSN_FAILED, true},
        {"", DELIVER_DSN_DELAYED, true},
        {"", DELIVER_DSN_RELAYED, false},
        {"NOTIFY=NEVER", DELIVER_DSN_FAILED, false},
        {"NOTIFY=SUCCESS,FAILURE", DELIVER_DSN_FAILED, true},
        {"NOTIFY=SUCCESS,FAILURE", DELIVER_DSN_DELAYED, false},
        {"NOTIFY=SUCCESS ORCPT=rfc822;a", DELIVER_DSN_RELAYED, true},
        {"ORCPT=rfc822;a NOTIFY=delay", DELIVER_DSN_DELAYED, true},
        {"NOTIFY=FAILUREX", DELIVER_DSN_FAILED, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (deliver_notify_wants(cases[i].params, cases[i].action) != cases[i].want)
            fail_msg("\"%s\" wants %s: got %d, want %d", cases[i].params,
                     deliver_dsn_action_name(cases[i].action), !cases[i].want, cases[i].want);
}

static void test_dsn_text(void **state)
{
    struct deliver_dsn_recipient r = {.address = "bob@example.com", .original = "rfc822;b+40x",
                                      .status = "5.1.1", .diagnostic = "smtp; 550 5.1.1 unknown"};
    struct deliver_dsn dsn = {.action = DELIVER_DSN_FAILED, .hostname = "mx.test", .queue_id = "Q1",
                              .dsn_id = "D1", .sender = "alice@example.org", .envid = "e+2Dv",
                              .remote_mta = "127.0.0.1:25", .arrival = 0, .now = 60,
                              .recipients = &r, .recipient_count = 1, .headers_only = true};
    size_t length = 0, tail_length = 0;
    char *head = deliver_dsn_head(&dsn, &length);
    char *tail = deliver_dsn_tail(&dsn, &tail_length);
    static const char *const wanted[] = {
        "To: <alice@example.org>\r\n", "Content-Type: multipart/report; report-type=delivery-status;",
        "Reporting-MTA: dns; mx.test\r\n", "Original-Envelope-Id: e-v\r\n",
        "Final-Recipient: rfc822; bob@example.com\r\n", "Original-Recipient: rfc822; b@x\r\n",
        "Action: failed\r\n", "Status: 5.1.1\r\n", "Diagnostic-Code: smtp; 550 5.1.1 unknown\r\n",
        "Content-Type: text/rfc822-headers\r\n\r\n", "Auto-Submitted: auto-replied\r\n",
    };
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++)
        if (strstr(head, wanted[i]) == NULL)
            fail_msg("DSN text: got no \"%s\", want it", wanted[i]);
    assert_int_equal(length, strlen(head));
    assert_string_equal(tail, "\r\n--D1/mx.test--\r\n");
    for (size_t i = 0; i + 1 < length; i++)
        if (head[i + 1] == '\n' && head[i] != '\r')
            fail_msg("DSN text: got a bare LF at %zu, want CRLF lines", i);
    free(head);
    free(tail);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stuffing),
        cmocka_unit_test(test_xtext),
        cmocka_unit_test(test_spool_roundtrip),
        cmocka_unit_test(test_spool_parse_errors),
        cmocka_unit_test(test_spool_files),
        cmocka_unit_test(test_retry_schedule),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_dsn_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
