/*
 * queue_spool - store accepted mail durably in Porter's queue and answer 250; the delivery
 * process (deliver.c, started by the master) relays it to the downstream MTA with retries.
 *
 * Hook: queue. On a pool thread the message and its envelope (sender and its parameters,
 * recipients with NOTIFY/ORCPT, the client's identity for XFORWARD/XCLIENT, the notes named
 * in notes=, the quarantine reason) are written to QUEUE/tmp/, fsynced, linked into
 * QUEUE/active/ (QUEUE/hold/ for a quarantined message: never delivered until `porter queue
 * release`), and the folder fsynced (spool.c). Only then does the client get
 * "250 2.0.0 Ok: queued as ID". Any failure before that is 4xx and leaves nothing behind:
 * disk full (ENOSPC, EDQUOT) is 452 4.3.1, anything else 451 4.3.0.
 *
 * Concurrent fsyncs of many sessions are committed together by the file system's journal
 * (each pool thread waits for the same commit), which is the group commit this needs.
 *
 * Arguments: queue_dir=DIR (default: queue_dir of porter.conf, so the delivery process and
 * `porter queue` see the same queue), notes=KEY,KEY (transaction notes kept with the message).
 *
 * Memory: a job owns copies of the envelope; the message itself is borrowed from the core
 * until the verdict. Fatal: out of memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <porter/plugin.h>

#include "memory.h"
#include "spool.h"

#define SPOOL_PLUGIN_NOTES_MAX 16

struct queue_spool {
    char *queue_dir;
    char *notes[SPOOL_PLUGIN_NOTES_MAX];
    size_t note_count;
};

/* One message on its way to the queue. */
struct spool_job {
    const char *queue_dir;
    struct spool_envelope envelope;
    struct porter_message message;
    int queue;
    int error;
};

static void *spool_init(porter_args *a)
{
    struct queue_spool *q = xcalloc(1, sizeof *q);
    const char *fallback = porter_setting(a, "queue_dir");
    q->queue_dir = xstrdup(porter_arg_path(a, "queue_dir", fallback ? fallback
                                                                    : "/var/spool/porter/queue"));
    const char *notes = porter_arg_string(a, "notes", "");
    char *copy = xstrdup(notes);
    char *saveptr = NULL;
    for (char *key = strtok_r(copy, ",", &saveptr); key != NULL; key = strtok_r(NULL, ",", &saveptr)) {
        if (q->note_count >= SPOOL_PLUGIN_NOTES_MAX) {
            porter_arg_error(a, "notes: at most %d keys", SPOOL_PLUGIN_NOTES_MAX);
            break;
        }
        q->notes[q->note_count++] = xstrdup(key);
    }
    free(copy);
    if (spool_prepare(q->queue_dir) != 0)
        porter_arg_error(a, "cannot create the queue %s: %s", q->queue_dir, strerror(errno));
    return q;
}

static void spool_fini(void *state)
{
    struct queue_spool *q = state;
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->note_count; i++)
        free(q->notes[i]);
    free(q->queue_dir);
    free(q);
}

/* spool_write_message - the message bytes, through the core (thread-safe) */
static int spool_write_message(int fd, void *arg)
{
    const struct spool_job *job = arg;
    return porter_message_write(&job->message, fd);
}

/* spool_work - on a pool thread: the durable write */
static int spool_work(void *arg)
{
    struct spool_job *job = arg;
    if (spool_write(job->queue_dir, job->queue, &job->envelope, spool_write_message, job) != 0) {
        job->error = errno;
        return -1;
    }
    return 0;
}

/* spool_done - back on the loop: the verdict */
static int spool_done(porter_session *s, void *arg, int result)
{
    struct spool_job *job = arg;
    int error = job->error;
    int queue = job->queue;
    if (s == NULL && result == 0) {
        /* The hook timed out or the client left: it never got our 250, so the message must
         * not stay queued (the client sends it again). Only an attempt the delivery process
         * started in the meantime can still deliver it. */
        char *path = spool_path(job->queue_dir, job->queue, job->envelope.queue_id);
        unlink(path);
        free(path);
    }
    spool_envelope_clear(&job->envelope);
    free(job);
    if (s == NULL)
        return PORTER_DECLINED;
    if (result != 0) {
        porter_log(s, PORTER_LOG_ERR, "event=queue_write_failed error=\"%s\"", strerror(error));
        if (error == ENOSPC || error == EDQUOT)
            return porter_reply(s, PORTER_DENYSOFT, 452, "4.3.1",
                                "Insufficient system storage, try again later");
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0",
                            "Local error in queueing, try again later");
    }
    porter_log(s, PORTER_LOG_INFO, "event=queued queue=%s queue_id=%s", spool_queue_name(queue),
               porter_queue_id(s));
    return porter_reply(s, PORTER_OK, 250, "2.0.0", "Ok: queued as %s", porter_queue_id(s));
}

static char *spool_copy(const char *value)
{
    return value != NULL && *value ? xstrdup(value) : NULL;
}

/* spool_params - "KEY=VALUE" words of the listed keys of the sender or a recipient */
static char *spool_params(porter_session *s, long index, const char *const *keys, size_t count)
{
    char out[1024];
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = 0; k < count; k++) {
        const char *value = index < 0 ? porter_mail_param(s, keys[k])
                                      : porter_rcpt_param(s, (size_t)index, keys[k]);
        if (value == NULL)
            continue;
        int n = *value ? snprintf(out + used, sizeof out - used, "%s%s=%s", used ? " " : "",
                                  keys[k], value)
                       : snprintf(out + used, sizeof out - used, "%s%s", used ? " " : "", keys[k]);
        if (n > 0 && (size_t)n < sizeof out - used)
            used += (size_t)n;
    }
    return xstrdup(out);
}

static int spool_queue_hook(porter_session *s, void *state)
{
    static const char *const mail_keys[] = {"BODY", "SMTPUTF8", "RET", "ENVID"};
    static const char *const rcpt_keys[] = {"NOTIFY", "ORCPT"};
    struct queue_spool *q = state;
    struct spool_job *job = xcalloc(1, sizeof *job);
    if (porter_message(s, &job->message) != 0 || !spool_id_valid(porter_queue_id(s))) {
        free(job);
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Local error in queueing, try again later");
    }
    job->queue_dir = q->queue_dir;
    job->queue = porter_quarantined(s) != NULL ? SPOOL_HOLD : SPOOL_ACTIVE;
    struct spool_envelope *e = &job->envelope;
    e->queue_id = xstrdup(porter_queue_id(s));
    e->created = (long long)time(NULL);
    e->mail_from = xstrdup(porter_mail_from(s) ? porter_mail_from(s) : "");
    e->mail_params = spool_params(s, -1, mail_keys, 4);
    e->client_ip = spool_copy(porter_client_ip(s));
    e->client_port = porter_client_port(s);
    const char *name = porter_client_name(s);
    e->client_name = name && strcmp(name, "unknown") != 0 ? spool_copy(name) : NULL;
    e->helo = spool_copy(porter_helo(s));
    e->protocol = xstrdup(porter_said_ehlo(s) ? "ESMTP" : "SMTP");
    e->auth_user = spool_copy(porter_auth_user(s));
    e->quarantine = spool_copy(porter_quarantined(s));
    for (size_t i = 0; i < q->note_count; i++) {
        const char *value = porter_note_get(s, PORTER_TRANSACTION, q->notes[i]);
        if (value == NULL)
            continue;
        e->notes = xrealloc(e->notes, (e->note_count + 1) * sizeof *e->notes);
        e->notes[e->note_count].key = xstrdup(q->notes[i]);
        e->notes[e->note_count].value = xstrdup(value);
        e->note_count++;
    }
    size_t count = porter_rcpt_count(s);
    e->recipients = xcalloc(count + 1, sizeof *e->recipients);
    for (size_t i = 0; i < count; i++) {
        e->recipients[i].address = xstrdup(porter_rcpt(s, i));
        e->recipients[i].params = spool_params(s, (long)i, rcpt_keys, 2);
        e->recipients[i].state = SPOOL_RCPT_PENDING;
    }
    e->recipient_count = count;
    if (count == 0) {
        spool_envelope_clear(e);
        free(job);
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "No recipients left, try again later");
    }
    return porter_run_blocking(s, spool_work, spool_done, job);
}

PORTER_PLUGIN(.name = "queue_spool",
              .description = "Stores accepted mail in Porter's own queue for the delivery "
                             "process. The message is written, fsynced and linked into active/ "
                             "before the 250; the delivery process then relays it to relay_host "
                             "with retries, delay notices and bounces (docs/queue.md). A "
                             "quarantined message waits in the hold queue for `porter queue "
                             "release ID`. A full disk answers 452 4.3.1, any other failure 451 "
                             "4.3.0, and leaves nothing behind.",
              .arguments = PORTER_ARGUMENTS(
                  {"queue_dir", NULL,
                   "The queue (default: queue_dir in porter.conf, so that the delivery process "
                   "and `porter queue` see the same queue)."},
                  {"notes", NULL,
                   "Transaction notes kept with the message: comma-separated keys."}),
              .init = spool_init, .fini = spool_fini,
              .hooks[PORTER_HOOK_QUEUE] = spool_queue_hook);
