/*
 * clamd - scan every message with ClamAV's clamd and refuse viruses.
 *
 * Hook: data_post. The message as it will be delivered (Porter's Received header first, every
 * edit so far, then the body from the spool file) is streamed to clamd with zINSTREAM on the
 * worker's event loop (daemon_talk.c: chunks read as the socket drains, never the whole
 * message in memory, never a blocked loop). clamd's answer decides:
 *   "stream: OK"              no opinion (DECLINED): the next plugin decides
 *   "stream: NAME FOUND"      554 5.7.1 Virus found: NAME
 *   anything else, clamd down, or no answer within timeout=: on_error=tempfail answers
 *                             451 4.7.1 (the client keeps the message and retries);
 *                             on_error=accept lets the message through. Both are logged.
 * A message larger than max_size= is not scanned (logged): clamd refuses streams over its
 * StreamMaxLength (25m by default), so keep the two equal.
 *
 * Log: event=clamd result=clean|virus|error|skipped, with virus=NAME, error="..." and
 * action=tempfail|accept as they apply. Note (transaction): "virus" = NAME when one was found.
 *
 * Arguments: socket=unix:/PATH|inet:HOST:PORT (unix:/run/clamav/clamd.ctl),
 *            on_error=tempfail|accept, timeout=SECONDS (60), max_size=BYTES (25m).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <porter/plugin.h>

#include "daemon_talk.h"

#define CLAMD_ANSWER_MAX 1024   /* "stream: NAME FOUND" and error texts are short */
#define CLAMD_NAME_MAX 256      /* a virus name or an error text as logged and replied */

enum clamd_result { CLAMD_CLEAN = 0, CLAMD_VIRUS, CLAMD_ERROR, CLAMD_RESULT_COUNT };

struct clamd {
    struct socket_address address;
    int on_error;
    double timeout;
    long max_size;
};

/* One scan; it may outlive the session and the plugin's state, so it copies what it needs. */
struct clamd_job {
    porter_handle handle;
    int on_error;
};

/* clamd_clean_copy - text for a reply and a log line: printable ASCII but quotes and
 * backslashes, others as '?', at most size-1 bytes */
static void clamd_clean_copy(char *out, size_t size, const char *text, size_t length)
{
    size_t used = 0;
    for (size_t i = 0; i < length && used + 1 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        out[used++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
    }
    out[used] = '\0';
}

/*
 * clamd_answer_parse - clamd's answer to zINSTREAM ("stream: OK", "stream: NAME FOUND", or an
 * error such as "INSTREAM size limit exceeded. ERROR"), up to its NUL or newline. Returns
 * CLAMD_CLEAN, CLAMD_VIRUS with the virus's name in name, or CLAMD_ERROR with the answer in
 * name (both cleaned with clamd_clean_copy).
 */
static int clamd_answer_parse(const char *answer, size_t length, char *name, size_t size)
{
    static const char prefix[] = "stream: ", found[] = " FOUND";
    size_t end = 0;
    while (end < length && answer[end] != '\0' && answer[end] != '\n')
        end++;
    const char *text = answer + (sizeof prefix - 1);
    size_t text_length = end >= sizeof prefix - 1 ? end - (sizeof prefix - 1) : 0;
    if (end >= sizeof prefix - 1 && memcmp(answer, prefix, sizeof prefix - 1) == 0) {
        if (text_length == 2 && memcmp(text, "OK", 2) == 0) {
            clamd_clean_copy(name, size, "", 0);
            return CLAMD_CLEAN;
        }
        if (text_length > sizeof found - 1 &&
            memcmp(text + text_length - (sizeof found - 1), found, sizeof found - 1) == 0) {
            clamd_clean_copy(name, size, text, text_length - (sizeof found - 1));
            return CLAMD_VIRUS;
        }
    }
    clamd_clean_copy(name, size, answer, end);
    if (name[0] == '\0')
        clamd_clean_copy(name, size, "empty answer", 12);
    return CLAMD_ERROR;
}

/* clamd_done - clamd answered (or did not): the verdict */
static void clamd_done(void *arg, const char *error, const char *answer, size_t length)
{
    struct clamd_job *job = arg;
    porter_session *s = porter_waiting_session(job->handle);
    if (s != NULL) {
        char name[CLAMD_NAME_MAX];
        int result = CLAMD_ERROR;
        if (error != NULL)
            clamd_clean_copy(name, sizeof name, error, strlen(error));
        else
            result = clamd_answer_parse(answer, length, name, sizeof name);
        if (result == CLAMD_CLEAN) {
            porter_log(s, PORTER_LOG_INFO, "event=clamd result=clean");
            porter_resume(job->handle, PORTER_DECLINED, 0, NULL, "%s", "");
        } else if (result == CLAMD_VIRUS) {
            porter_log(s, PORTER_LOG_NOTICE, "event=clamd result=virus virus=\"%s\"", name);
            porter_note_set(s, PORTER_TRANSACTION, "virus", name);
            porter_resume(job->handle, PORTER_DENY, 554, "5.7.1", "Virus found: %s", name);
        } else
            daemon_talk_on_error(s, job->handle, job->on_error, "clamd", "Virus scanner", name);
    }
    free(job);
}

static int clamd_data_post(porter_session *s, void *state)
{
    struct clamd *c = state;
    struct porter_message m;
    if (porter_message(s, &m) != 0)
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Temporary local problem");
    if (daemon_talk_message_length(&m) > c->max_size) {
        porter_log(s, PORTER_LOG_NOTICE, "event=clamd result=skipped size=%lld max_size=%ld",
                   (long long)daemon_talk_message_length(&m), c->max_size);
        return PORTER_DECLINED;
    }
    struct clamd_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        abort();
    job->on_error = c->on_error;
    const struct daemon_talk_request request = {
        .address = &c->address, .timeout = c->timeout,
        .head = "zINSTREAM", .head_length = sizeof "zINSTREAM", /* with its NUL */
        .message = &m, .chunked = true, .answer_max = CLAMD_ANSWER_MAX, .owner = c,
    };
    return daemon_talk_hook(s, &request, &job->handle, clamd_done, job);
}

static void *clamd_init(porter_args *a)
{
    struct clamd *c = calloc(1, sizeof *c);
    if (c == NULL)
        abort();
    daemon_talk_address(a, "unix:/run/clamav/clamd.ctl", &c->address);
    c->on_error = porter_arg_choice(a, "on_error", "tempfail|accept");
    c->timeout = porter_arg_seconds(a, "timeout", 60.0);
    c->max_size = porter_arg_integer(a, "max_size", 25L * 1024 * 1024, 1, 4L * 1024 * 1024 * 1024 - 1);
    return c;
}

PORTER_PLUGIN(.name = "clamd",
              .description = "Scans each message with ClamAV's clamd (INSTREAM, streamed on the "
                             "event loop) and refuses a virus with 554 5.7.1 naming it; clamd "
                             "down or slow follows on_error=.",
              .arguments = PORTER_ARGUMENTS(
                  {"socket", "unix:/run/clamav/clamd.ctl",
                   "Where clamd listens: unix:/PATH or inet:HOST:PORT."},
                  {"on_error", "tempfail",
                   "When clamd cannot be reached, fails or is slow: tempfail (451 4.7.1) or "
                   "accept (let the message through); logged either way."},
                  {"timeout", "60s", "The longest a scan may take, connection included."},
                  {"max_size", "25m",
                   "Larger messages are not scanned (logged); keep it equal to clamd's "
                   "StreamMaxLength."}),
              .init = clamd_init, .fini = daemon_talk_fini,
              .hooks[PORTER_HOOK_DATA_POST] = clamd_data_post);
