/*
 * deliver.c - the spool's delivery process (see deliver.h).
 *
 * At start it takes QUEUE/deliver.lock (one delivery process per queue: an old one still
 * finishing blocks a new one), writes QUEUE/deliver.pid, removes tmp/ files older than an hour
 * (left by a crash mid-write) and lists active/. New files are learned from inotify on
 * active/ and from a rescan every minute; `porter queue flush` touches QUEUE/flush (seen within
 * a second) or sends SIGUSR1, which makes every message due now.
 *
 * One attempt: open and lock (flock) the file, read its envelope, give up on recipients whose
 * message is older than max_queue_lifetime, optionally send a delay notice, then relay the
 * pending recipients through the shared SMTP/LMTP client (smtp_client.c, a pool of
 * connections bounded by delivery_concurrency). Afterwards, in this order, each durable
 * before the next: recipients the downstream took are marked delivered (one fdatasync); a
 * notification for the recipients that failed for good is queued (never to the null sender);
 * they are marked failed; then the file is removed when nothing is pending, else its attempt
 * count and next attempt time are written (retry_schedule, the last step repeating).
 * The single duplicate window: a crash after the downstream's 250 and before the delivered
 * mark is durable sends those recipients the message again on restart (docs/queue.md).
 *
 * Interface: deliver.h. Fatal: out of memory; no lock or queue at start (exit 1).
 * Memory: entries and jobs belong to the process state and are freed on exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"
#include "deliver.h"
#include "log.h"
#include "memory.h"
#include "smtp_client.h"
#include "smtp_parse.h"
#include "spool.h"
#include "transaction.h"

#define DELIVER_BUCKETS 4096
#define DELIVER_RESCAN_INTERVAL 60      /* seconds between full listings of active/ */
#define DELIVER_TMP_MAX_AGE 3600        /* tmp/ files older than this are crash leftovers */
#define DELIVER_LOCKED_RETRY 5          /* seconds before retrying a file someone else holds */

static const char *const dsn_action_names[DELIVER_DSN_ACTION_COUNT] = {"failed", "delayed",
                                                                        "relayed"};

const char *deliver_dsn_action_name(int action)
{
    return action >= 0 && action < DELIVER_DSN_ACTION_COUNT ? dsn_action_names[action] : "invalid";
}

/* One queue file known to the process. */
struct deliver_entry {
    struct deliver_entry *next;   /* hash chain */
    char id[SPOOL_ID_MAX + 1];
    long long next_attempt;       /* 0: due now */
    bool in_flight;
    bool seen;                    /* found by the current rescan */
    char *last_error;             /* the last temporary failure, for an expiry notice */
};

struct deliver {
    const struct porter_config *config;
    struct event_base *base;
    char *queue_dir;
    char *active_dir;
    struct smtp_client_settings settings;
    SSL_CTX *tls_context;
    char *auth_password;
    struct smtp_pool *pool;
    double steps[CONFIG_RETRY_STEPS_MAX];
    size_t step_count;
    struct deliver_entry *buckets[DELIVER_BUCKETS];
    size_t entry_count;
    size_t in_flight;
    struct deliver_job *jobs;     /* attempts in flight */
    int inotify_fd;
    struct event *inotify_event;
    struct event *tick;
    struct event *signals[4];
    struct event *stop_deadline;
    bool stopping;
    bool flush_requested;
    time_t last_rescan;
};

/* One attempt at one queue file. */
struct deliver_job {
    struct deliver_job *previous, *next; /* the process's list of attempts in flight */
    struct deliver *d;
    struct deliver_entry *entry;
    int fd;
    struct spool_envelope envelope;
    size_t *pending;              /* indexes of the recipients tried */
    size_t pending_count;
    const char **addresses;
    const char **params;
    struct smtp_client *client;
    struct smtp_pool_waiter *waiter;
    struct smtp_client_identity_info identity;
    bool reused;                  /* the connection served an earlier transaction */
    bool retried;                 /* already went on with a fresh connection once */
};

static void deliver_schedule(struct deliver *d);

/* ---------------------------------------------------------------- pure pieces */

double deliver_retry_delay(const double *steps, size_t count, unsigned attempts)
{
    if (count == 0)
        return 300;
    size_t index = attempts == 0 ? 0 : attempts - 1;
    return steps[index < count ? index : count - 1];
}

bool deliver_notify_wants(const char *params, int action)
{
    const char *notify = NULL;
    for (const char *p = params ? params : ""; *p;) {
        while (*p == ' ')
            p++;
        if (strncasecmp(p, "NOTIFY=", 7) == 0) {
            notify = p + 7;
            break;
        }
        while (*p && *p != ' ')
            p++;
    }
    if (notify == NULL)
        return action == DELIVER_DSN_FAILED || action == DELIVER_DSN_DELAYED;
    static const char *const words[DELIVER_DSN_ACTION_COUNT] = {"FAILURE", "DELAY", "SUCCESS"};
    size_t length = strcspn(notify, " ");
    const char *end = notify + length;
    for (const char *w = notify; w < end;) {
        size_t n = strcspn(w, ", ");
        if (n > (size_t)(end - w))
            n = (size_t)(end - w);
        if (action >= 0 && action < DELIVER_DSN_ACTION_COUNT && n == strlen(words[action]) &&
            strncasecmp(w, words[action], n) == 0)
            return true;
        w += n;
        if (w < end && *w == ',')
            w++;
    }
    return false;
}

/* dsn_date - RFC 5322 date of t */
static void dsn_date(long long t, char *out, size_t size)
{
    time_t when = (time_t)t;
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(out, size, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* dsn_xtext_plain - decode xtext for display; the raw text when it does not decode */
static void dsn_xtext_plain(const char *in, char *out, size_t size)
{
    if (smtp_xtext_decode(in, out, size) < 0)
        snprintf(out, size, "%s", in);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
}

struct dsn_text {
    char *data;
    size_t length, capacity;
};

static void dsn_add(struct dsn_text *t, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void dsn_add(struct dsn_text *t, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(NULL, 0, format, ap);
    va_end(ap);
    if (n <= 0)
        return;
    if (t->length + (size_t)n + 1 > t->capacity) {
        t->capacity = (t->length + (size_t)n + 1) * 2;
        t->data = xrealloc(t->data, t->capacity);
    }
    va_start(ap, format);
    vsnprintf(t->data + t->length, (size_t)n + 1, format, ap);
    va_end(ap);
    t->length += (size_t)n;
}

char *deliver_dsn_head(const struct deliver_dsn *dsn, size_t *length)
{
    struct dsn_text t = {0};
    char date[64], arrival[64];
    dsn_date(dsn->now, date, sizeof date);
    dsn_date(dsn->arrival, arrival, sizeof arrival);
    const char *subject = dsn->action == DELIVER_DSN_FAILED ? "Undelivered Mail Returned to Sender"
                          : dsn->action == DELIVER_DSN_DELAYED ? "Delayed Mail (still being retried)"
                                                               : "Successful Mail Delivery Report";
    dsn_add(&t, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", dsn->hostname);
    dsn_add(&t, "To: <%s>\r\n", dsn->sender);
    dsn_add(&t, "Subject: %s\r\n", subject);
    dsn_add(&t, "Date: %s\r\n", date);
    dsn_add(&t, "Message-ID: <%s.dsn@%s>\r\n", dsn->dsn_id, dsn->hostname);
    dsn_add(&t, "Auto-Submitted: auto-replied\r\n");
    dsn_add(&t, "MIME-Version: 1.0\r\n");
    dsn_add(&t, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                "\tboundary=\"%s/%s\"\r\n", dsn->dsn_id, dsn->hostname);
    dsn_add(&t, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
    dsn_add(&t, "--%s/%s\r\n", dsn->dsn_id, dsn->hostname);
    dsn_add(&t, "Content-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    dsn_add(&t, "This is the mail system at host %s.\r\n\r\n", dsn->hostname);
    if (dsn->action == DELIVER_DSN_FAILED)
        dsn_add(&t, "I'm sorry to have to inform you that your message could not\r\n"
                    "be delivered to one or more recipients.\r\n\r\n");
    else if (dsn->action == DELIVER_DSN_DELAYED) {
        char until[64];
        dsn_date(dsn->retry_until, until, sizeof until);
        dsn_add(&t, "Your message could not be delivered yet to one or more recipients.\r\n"
                    "It will be retried until %s.\r\nNo action is required on your part.\r\n\r\n",
                until);
    } else
        dsn_add(&t, "Your message was relayed to a system that does not send delivery\r\n"
                    "notifications; no further notice will come from it.\r\n\r\n");
    for (size_t i = 0; i < dsn->recipient_count; i++) {
        const struct deliver_dsn_recipient *r = &dsn->recipients[i];
        dsn_add(&t, "<%s>: %s\r\n", r->address, r->diagnostic ? r->diagnostic : r->status);
    }
    dsn_add(&t, "\r\n--%s/%s\r\n", dsn->dsn_id, dsn->hostname);
    dsn_add(&t, "Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n");
    dsn_add(&t, "Reporting-MTA: dns; %s\r\n", dsn->hostname);
    dsn_add(&t, "X-Porter-Queue-ID: %s\r\n", dsn->queue_id);
    if (dsn->envid != NULL && *dsn->envid) {
        char plain[256];
        dsn_xtext_plain(dsn->envid, plain, sizeof plain);
        dsn_add(&t, "Original-Envelope-Id: %s\r\n", plain);
    }
    dsn_add(&t, "Arrival-Date: %s\r\n", arrival);
    for (size_t i = 0; i < dsn->recipient_count; i++) {
        const struct deliver_dsn_recipient *r = &dsn->recipients[i];
        dsn_add(&t, "\r\nFinal-Recipient: rfc822; %s\r\n", r->address);
        if (r->original != NULL && *r->original) {
            char plain[600];
            dsn_xtext_plain(r->original, plain, sizeof plain);
            char *semicolon = strchr(plain, ';');
            if (semicolon != NULL)
                dsn_add(&t, "Original-Recipient: %.*s; %s\r\n", (int)(semicolon - plain), plain,
                        semicolon + 1);
        }
        dsn_add(&t, "Action: %s\r\n", deliver_dsn_action_name(dsn->action));
        dsn_add(&t, "Status: %s\r\n", r->status);
        if (dsn->remote_mta != NULL)
            dsn_add(&t, "Remote-MTA: dns; %s\r\n", dsn->remote_mta);
        if (r->diagnostic != NULL)
            dsn_add(&t, "Diagnostic-Code: %s\r\n", r->diagnostic);
        dsn_add(&t, "Last-Attempt-Date: %s\r\n", date);
        if (dsn->action == DELIVER_DSN_DELAYED) {
            char until[64];
            dsn_date(dsn->retry_until, until, sizeof until);
            dsn_add(&t, "Will-Retry-Until: %s\r\n", until);
        }
    }
    dsn_add(&t, "\r\n--%s/%s\r\n", dsn->dsn_id, dsn->hostname);
    if (dsn->headers_only)
        dsn_add(&t, "Content-Description: Undelivered Message Headers\r\n"
                    "Content-Type: text/rfc822-headers\r\n\r\n");
    else
        dsn_add(&t, "Content-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n");
    *length = t.length;
    return t.data;
}

char *deliver_dsn_tail(const struct deliver_dsn *dsn, size_t *length)
{
    char *text = xasprintf("\r\n--%s/%s--\r\n", dsn->dsn_id, dsn->hostname);
    *length = strlen(text);
    return text;
}

/* ---------------------------------------------------------------- entries */

static size_t deliver_hash(const char *id)
{
    size_t h = 5381;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = h * 33 + *p;
    return h % DELIVER_BUCKETS;
}

static struct deliver_entry *deliver_find(struct deliver *d, const char *id)
{
    for (struct deliver_entry *e = d->buckets[deliver_hash(id)]; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

/* deliver_add - a queue file to know about (existing entry returned as is) */
static struct deliver_entry *deliver_add(struct deliver *d, const char *id, long long next)
{
    struct deliver_entry *e = deliver_find(d, id);
    if (e != NULL)
        return e;
    e = xcalloc(1, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", id);
    e->next_attempt = next;
    size_t h = deliver_hash(id);
    e->next = d->buckets[h];
    d->buckets[h] = e;
    d->entry_count++;
    return e;
}

static void deliver_remove(struct deliver *d, struct deliver_entry *entry)
{
    struct deliver_entry **link = &d->buckets[deliver_hash(entry->id)];
    while (*link != NULL && *link != entry)
        link = &(*link)->next;
    if (*link == NULL)
        return;
    *link = entry->next;
    free(entry->last_error);
    free(entry);
    d->entry_count--;
}

/* deliver_file_next - the next attempt time written in a queue file (0 if unreadable) */
static long long deliver_file_next(struct deliver *d, const char *id)
{
    char *path = spool_path(d->queue_dir, SPOOL_ACTIVE, id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return 0;
    struct spool_envelope e;
    char error[128];
    long long next = 0;
    if (spool_read(fd, &e, error, sizeof error) == 0) {
        next = e.next_attempt;
        spool_envelope_clear(&e);
    }
    close(fd);
    return next;
}

/* deliver_rescan - list active/: add new files, forget vanished ones */
static void deliver_rescan(struct deliver *d)
{
    d->last_rescan = time(NULL);
    DIR *dir = opendir(d->active_dir);
    if (dir == NULL) {
        log_message(PORTER_LOG_ERR, NULL, "event=queue_error dir=%s error=\"%s\"", d->active_dir,
                    strerror(errno));
        return;
    }
    for (size_t b = 0; b < DELIVER_BUCKETS; b++)
        for (struct deliver_entry *e = d->buckets[b]; e; e = e->next)
            e->seen = false;
    struct dirent *item;
    while ((item = readdir(dir)) != NULL) {
        if (!spool_id_valid(item->d_name))
            continue;
        struct deliver_entry *e = deliver_find(d, item->d_name);
        if (e == NULL)
            e = deliver_add(d, item->d_name, d->flush_requested ? 0 : deliver_file_next(d, item->d_name));
        e->seen = true;
    }
    closedir(dir);
    for (size_t b = 0; b < DELIVER_BUCKETS; b++) {
        struct deliver_entry *e = d->buckets[b];
        while (e != NULL) {
            struct deliver_entry *next = e->next;
            if (!e->seen && !e->in_flight)
                deliver_remove(d, e);
            e = next;
        }
    }
}

/* deliver_clean_tmp - crash leftovers in tmp/ */
static void deliver_clean_tmp(struct deliver *d)
{
    char *tmp = xasprintf("%s/tmp", d->queue_dir);
    DIR *dir = opendir(tmp);
    if (dir != NULL) {
        struct dirent *item;
        time_t now = time(NULL);
        while ((item = readdir(dir)) != NULL) {
            if (item->d_name[0] == '.')
                continue;
            char *path = xasprintf("%s/%s", tmp, item->d_name);
            struct stat st;
            if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > DELIVER_TMP_MAX_AGE) {
                unlink(path);
                log_message(PORTER_LOG_NOTICE, NULL, "event=queue_tmp_removed file=%s", item->d_name);
            }
            free(path);
        }
        closedir(dir);
    }
    free(tmp);
}

/* ---------------------------------------------------------------- notifications */

/* The original message appended to a notification. */
struct deliver_dsn_source {
    const char *head;
    size_t head_length;
    int fd;
    off_t offset, length;
    const char *tail;
    size_t tail_length;
};

static int deliver_write_all(int fd, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        length -= (size_t)n;
    }
    return 0;
}

static int deliver_dsn_writer(int fd, void *arg)
{
    const struct deliver_dsn_source *source = arg;
    if (deliver_write_all(fd, source->head, source->head_length) != 0)
        return -1;
    char buffer[65536];
    off_t done = 0;
    while (done < source->length) {
        size_t want = (size_t)(source->length - done) < sizeof buffer ? (size_t)(source->length - done)
                                                                       : sizeof buffer;
        ssize_t n = pread(source->fd, buffer, want, source->offset + done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        if (deliver_write_all(fd, buffer, (size_t)n) != 0)
            return -1;
        done += n;
    }
    return deliver_write_all(fd, source->tail, source->tail_length);
}

/* deliver_header_length - bytes of the original's header block, the empty line included */
static off_t deliver_header_length(int fd, off_t offset, off_t length)
{
    char buffer[65536];
    off_t done = 0;
    char previous[3] = {0, 0, 0};
    while (done < length) {
        size_t want = (size_t)(length - done) < sizeof buffer ? (size_t)(length - done) : sizeof buffer;
        ssize_t n = pread(fd, buffer, want, offset + done);
        if (n <= 0)
            return length;
        for (ssize_t i = 0; i < n; i++) {
            if (previous[0] == '\r' && previous[1] == '\n' && previous[2] == '\r' && buffer[i] == '\n')
                return done + i + 1;
            previous[0] = previous[1];
            previous[1] = previous[2];
            previous[2] = buffer[i];
        }
        done += n;
    }
    return length;
}

/* deliver_notify - queue a notification about some recipients of job's message; 0, or -1 when
 * it could not be queued (the caller keeps the recipients pending so that it is tried again) */
static int deliver_notify(struct deliver_job *job, int action,
                          const struct deliver_dsn_recipient *recipients, size_t count)
{
    struct deliver *d = job->d;
    const struct spool_envelope *original = &job->envelope;
    if (count == 0)
        return 0;
    if (original->mail_from[0] == '\0') {
        log_message(PORTER_LOG_INFO, NULL, "event=dsn_suppressed queue_id=%s action=%s "
                    "reason=\"null sender\"", original->queue_id, deliver_dsn_action_name(action));
        return 0;
    }
    char *dsn_id = queue_id_new();
    const char *ret = NULL, *envid = NULL;
    char params[1024];
    snprintf(params, sizeof params, "%s", original->mail_params ? original->mail_params : "");
    for (char *saveptr = NULL, *word = strtok_r(params, " ", &saveptr); word;
         word = strtok_r(NULL, " ", &saveptr)) {
        if (strncasecmp(word, "RET=", 4) == 0)
            ret = word + 4;
        else if (strncasecmp(word, "ENVID=", 6) == 0)
            envid = word + 6;
    }
    bool headers_only = action != DELIVER_DSN_FAILED || (ret != NULL && strcasecmp(ret, "HDRS") == 0) ||
                        (unsigned long long)original->message_length > d->config->dsn_return_limit;
    struct deliver_dsn dsn = {
        .action = action,
        .hostname = d->config->hostname ? d->config->hostname : "localhost",
        .queue_id = original->queue_id,
        .dsn_id = dsn_id,
        .sender = original->mail_from,
        .envid = envid,
        .remote_mta = d->config->relay_host,
        .arrival = original->created,
        .now = (long long)time(NULL),
        .retry_until = original->created + (long long)d->config->max_queue_lifetime,
        .recipients = recipients,
        .recipient_count = count,
        .headers_only = headers_only,
    };
    struct deliver_dsn_source source = {.fd = job->fd, .offset = original->message_offset};
    char *head = deliver_dsn_head(&dsn, &source.head_length);
    char *tail = deliver_dsn_tail(&dsn, &source.tail_length);
    source.head = head;
    source.tail = tail;
    source.length = headers_only ? deliver_header_length(job->fd, original->message_offset,
                                                         original->message_length)
                                 : original->message_length;
    struct spool_recipient recipient = {.address = original->mail_from, .params = (char *)"",
                                        .state = SPOOL_RCPT_PENDING};
    struct spool_envelope e = {
        .queue_id = dsn_id,
        .created = dsn.now,
        .mail_from = (char *)"",
        .mail_params = (char *)"",
        .protocol = (char *)"ESMTP",
        .recipients = &recipient,
        .recipient_count = 1,
    };
    int rc = spool_write(d->queue_dir, SPOOL_ACTIVE, &e, deliver_dsn_writer, &source);
    int saved = errno;
    if (rc == 0)
        log_message(PORTER_LOG_INFO, NULL, "event=dsn_queued queue_id=%s dsn_id=%s action=%s to=<%s> "
                    "nrcpt=%zu", original->queue_id, dsn_id, deliver_dsn_action_name(action),
                    original->mail_from, count);
    else
        log_message(PORTER_LOG_ERR, NULL, "event=dsn_failed queue_id=%s error=\"%s\"",
                    original->queue_id, strerror(saved));
    free(head);
    free(tail);
    free(dsn_id);
    return rc;
}

/* ---------------------------------------------------------------- one attempt */

static void deliver_job_free(struct deliver_job *job)
{
    struct deliver *d = job->d;
    if (job->previous != NULL)
        job->previous->next = job->next;
    else if (d->jobs == job)
        d->jobs = job->next;
    if (job->next != NULL)
        job->next->previous = job->previous;
    if (job->fd >= 0)
        close(job->fd);
    spool_envelope_clear(&job->envelope);
    free(job->pending);
    free(job->addresses);
    free(job->params);
    free(job);
}

/* deliver_job_end - the attempt is over: free it and start what is due */
static void deliver_job_end(struct deliver_job *job)
{
    struct deliver *d = job->d;
    if (job->entry != NULL)
        job->entry->in_flight = false;
    if (job->client != NULL) {
        smtp_pool_put(d->pool, job->client);
        job->client = NULL;
    }
    deliver_job_free(job);
    d->in_flight--;
    if (d->stopping && d->in_flight == 0)
        event_base_loopexit(d->base, NULL);
    else
        deliver_schedule(d);
}

/* deliver_status_of - "5.1.1" from a reply (or the class default) */
static void deliver_status_of(const struct smtp_reply *r, char *out, size_t size, bool permanent)
{
    if (r->enhanced[0] != '\0')
        snprintf(out, size, "%s", r->enhanced);
    else
        snprintf(out, size, "%s", permanent ? "5.0.0" : "4.0.0");
}

/* deliver_finish - apply the outcome to the file: delivered marks, notifications, failed
 * marks, then removal or the next attempt. outcome[i] per pending recipient: 2 delivered,
 * 5 failed for good, 4 deferred; replies gives the diagnostic. */
static void deliver_finish(struct deliver_job *job, const int *outcome,
                           const struct smtp_reply *const *replies, const char *deferral,
                           bool downstream_dsn)
{
    struct deliver *d = job->d;
    struct spool_envelope *e = &job->envelope;
    size_t n = job->pending_count;
    size_t *delivered = xcalloc(n + 1, sizeof *delivered);
    size_t *failed = xcalloc(n + 1, sizeof *failed);
    struct deliver_dsn_recipient *failures = xcalloc(n + 1, sizeof *failures);
    struct deliver_dsn_recipient *relayed = xcalloc(n + 1, sizeof *relayed);
    char (*statuses)[16] = xcalloc(n + 1, sizeof *statuses);
    char (*diagnostics)[600] = xcalloc(n + 1, sizeof *diagnostics);
    size_t delivered_count = 0, failed_count = 0, failure_notices = 0, relayed_count = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = job->pending[k];
        const struct smtp_reply *r = replies[k];
        char formatted[512];
        smtp_reply_format(r, formatted, sizeof formatted);
        if (r->code != 0)
            snprintf(diagnostics[k], sizeof diagnostics[k], "smtp; %s", formatted);
        else
            snprintf(diagnostics[k], sizeof diagnostics[k], "x-porter; %s", r->text);
        if (outcome[k] == 2) {
            delivered[delivered_count++] = i;
            log_message(PORTER_LOG_INFO, NULL, "event=delivered queue_id=%s to=<%s> relay=%s "
                        "reply=\"%s\"", e->queue_id, e->recipients[i].address,
                        d->config->relay_host, formatted);
            if (!downstream_dsn && deliver_notify_wants(e->recipients[i].params, DELIVER_DSN_RELAYED)) {
                snprintf(statuses[k], sizeof statuses[k], "2.0.0");
                relayed[relayed_count].address = e->recipients[i].address;
                relayed[relayed_count].status = statuses[k];
                relayed[relayed_count].diagnostic = diagnostics[k];
                relayed_count++;
            }
        } else if (outcome[k] == 5) {
            failed[failed_count++] = i;
            deliver_status_of(r, statuses[k], sizeof statuses[k], true);
            if (r->code == 0) /* expiry: "x-porter; ..." with 4.4.7 */
                snprintf(statuses[k], sizeof statuses[k], "4.4.7");
            log_message(PORTER_LOG_NOTICE, NULL, "event=bounced queue_id=%s to=<%s> reply=\"%s\"",
                        e->queue_id, e->recipients[i].address, diagnostics[k]);
            if (deliver_notify_wants(e->recipients[i].params, DELIVER_DSN_FAILED)) {
                struct deliver_dsn_recipient *f = &failures[failure_notices++];
                f->address = e->recipients[i].address;
                f->status = statuses[k];
                f->diagnostic = diagnostics[k];
                const char *orcpt = strstr(e->recipients[i].params, "ORCPT=");
                if (orcpt != NULL)
                    f->original = xstrndup(orcpt + 6, strcspn(orcpt + 6, " "));
            }
        } else {
            log_message(PORTER_LOG_INFO, NULL, "event=deferred queue_id=%s to=<%s> reply=\"%s\"",
                        e->queue_id, e->recipients[i].address, diagnostics[k]);
            if (job->entry != NULL) {
                free(job->entry->last_error);
                job->entry->last_error = xstrdup(diagnostics[k]);
            }
        }
    }
    bool file_ok = true;
    /* 1. delivered: durable before anything else, so they are never sent again */
    if (delivered_count > 0 && spool_mark_recipients(job->fd, e, delivered, delivered_count,
                                                     SPOOL_RCPT_DELIVERED) != 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=queue_update_failed queue_id=%s error=\"%s\" "
                    "warning=\"these recipients may get the message twice\"", e->queue_id,
                    strerror(errno));
        file_ok = false;
    }
    /* 2. notifications, then the failed marks (a crash between repeats the notice) */
    if (file_ok && failed_count > 0) {
        if (deliver_notify(job, DELIVER_DSN_FAILED, failures, failure_notices) == 0) {
            if (spool_mark_recipients(job->fd, e, failed, failed_count, SPOOL_RCPT_FAILED) != 0)
                file_ok = false;
        }
    }
    if (file_ok && relayed_count > 0)
        deliver_notify(job, DELIVER_DSN_RELAYED, relayed, relayed_count);
    for (size_t k = 0; k < failure_notices; k++)
        free((char *)failures[k].original);
    /* 3. done, or the next attempt */
    long long now = (long long)time(NULL);
    if (file_ok && spool_pending_count(e) == 0) {
        char *path = spool_path(d->queue_dir, SPOOL_ACTIVE, e->queue_id);
        unlink(path);
        free(path);
        log_message(PORTER_LOG_INFO, NULL, "event=removed queue_id=%s", e->queue_id);
        if (job->entry != NULL) {
            deliver_remove(d, job->entry);
            job->entry = NULL;
        }
    } else {
        e->attempts++;
        long long next = now + (long long)deliver_retry_delay(d->steps, d->step_count, e->attempts);
        long long expiry = e->created + (long long)d->config->max_queue_lifetime;
        if (next > expiry)
            next = expiry > now ? expiry : now + 1;
        e->next_attempt = next;
        if (spool_update_status(job->fd, e) != 0)
            log_message(PORTER_LOG_ERR, NULL, "event=queue_update_failed queue_id=%s error=\"%s\"",
                        e->queue_id, strerror(errno));
        if (job->entry != NULL)
            job->entry->next_attempt = next;
        log_message(PORTER_LOG_INFO, NULL, "event=retry_scheduled queue_id=%s attempts=%u "
                    "pending=%zu delay=%llds%s%s", e->queue_id, e->attempts, spool_pending_count(e),
                    next - now, deferral ? " reason=" : "", deferral ? "deferred" : "");
    }
    free(delivered);
    free(failed);
    free(failures);
    free(relayed);
    free(statuses);
    free(diagnostics);
}

/* deliver_finish_all - every pending recipient gets the same outcome and reply */
static void deliver_finish_all(struct deliver_job *job, int outcome, const struct smtp_reply *r)
{
    size_t n = job->pending_count;
    int *outcomes = xcalloc(n + 1, sizeof *outcomes);
    const struct smtp_reply **replies = xcalloc(n + 1, sizeof *replies);
    for (size_t k = 0; k < n; k++) {
        outcomes[k] = outcome;
        replies[k] = r;
    }
    deliver_finish(job, outcomes, replies, outcome == 4 ? "deferred" : NULL, true);
    free(outcomes);
    free(replies);
}

static int deliver_class_outcome(int code)
{
    int class = code / 100;
    return class == 2 ? 2 : class == 5 ? 5 : 4;
}

/* deliver_finish_recipients - each pending recipient's outcome from the client's replies (a
 * refused RCPT, else its final LMTP reply, else the transaction's reply), then end the job */
static void deliver_finish_recipients(struct deliver_job *job, struct smtp_client *c,
                                      const struct smtp_reply *reply, bool dsn)
{
    size_t count = 0;
    const struct smtp_client_recipient *list = smtp_client_recipients(c, &count);
    size_t n = job->pending_count;
    int *outcomes = xcalloc(n + 1, sizeof *outcomes);
    const struct smtp_reply **replies = xcalloc(n + 1, sizeof *replies);
    for (size_t k = 0; k < n; k++) {
        const struct smtp_client_recipient *r = k < count ? &list[k] : NULL;
        if (r == NULL) {
            outcomes[k] = 4;
            replies[k] = reply;
        } else if (r->rcpt.code / 100 != 2) {
            outcomes[k] = deliver_class_outcome(r->rcpt.code);
            replies[k] = &r->rcpt;
        } else if (r->final.code != 0) {
            outcomes[k] = deliver_class_outcome(r->final.code);
            replies[k] = &r->final;
        } else {
            /* no final reply: DATA refused, or the connection failed (maybe after the dot) */
            outcomes[k] = reply->code != 0 ? deliver_class_outcome(reply->code) : 4;
            if (outcomes[k] == 2)
                outcomes[k] = 4;
            replies[k] = reply;
        }
    }
    deliver_finish(job, outcomes, replies, NULL, dsn);
    free(outcomes);
    free(replies);
    deliver_job_end(job);
}

static void deliver_data_done(struct smtp_client *c, void *arg, const struct smtp_reply *reply)
{
    deliver_finish_recipients(arg, c, reply, smtp_client_has_extension(c, "DSN"));
}

static void deliver_connected(struct smtp_pool *pool, struct smtp_client *c, void *arg,
                              const struct smtp_reply *reply);

static void deliver_began(struct smtp_client *c, void *arg, const struct smtp_reply *reply)
{
    struct deliver_job *job = arg;
    if (reply->code == 0 && job->reused && !job->retried && smtp_client_closed_by_server(c)) {
        /* a pooled connection the server closed meanwhile: once more on a fresh one (never
         * after a timeout: a hung server would hold the slot twice) */
        job->retried = true;
        smtp_pool_put(job->d->pool, job->client);
        job->client = NULL;
        job->waiter = smtp_pool_get(job->d->pool, deliver_connected, job);
        return;
    }
    if (reply->code / 100 != 2) {
        deliver_finish_all(job, deliver_class_outcome(reply->code), reply);
        deliver_job_end(job);
        return;
    }
    if (smtp_client_accepted_count(c) == 0) {
        /* every recipient was refused: their RCPT replies decide */
        deliver_finish_recipients(job, c, reply, true);
        return;
    }
    struct smtp_client_message message = {
        .fd = job->fd,
        .offset = job->envelope.message_offset,
        .length = job->envelope.message_length,
    };
    smtp_client_data(c, &message, deliver_data_done, job);
}

static void deliver_connected(struct smtp_pool *pool, struct smtp_client *c, void *arg,
                              const struct smtp_reply *reply)
{
    struct deliver_job *job = arg;
    job->waiter = NULL;
    if (c == NULL) {
        deliver_finish_all(job, 4, reply);
        deliver_job_end(job);
        return;
    }
    job->client = c;
    job->reused = smtp_client_reused(c);
    const struct spool_envelope *e = &job->envelope;
    job->identity.address = e->client_ip;
    job->identity.port = e->client_port;
    job->identity.name = e->client_name;
    job->identity.helo = e->helo;
    job->identity.protocol = e->protocol;
    job->identity.login = e->auth_user;
    job->identity.queue_id = e->queue_id;
    struct smtp_client_envelope envelope = {
        .mail_from = e->mail_from,
        .mail_params = e->mail_params,
        .recipients = job->addresses,
        .recipient_params = job->params,
        .recipient_count = job->pending_count,
        .identity = e->client_ip != NULL ? &job->identity : NULL,
        .size = (unsigned long long)e->message_length,
    };
    smtp_client_begin(c, &envelope, deliver_began, job);
}

/* deliver_delay_notice - once, when the message waited delay_warning_time */
static void deliver_delay_notice(struct deliver_job *job)
{
    struct deliver *d = job->d;
    struct spool_envelope *e = &job->envelope;
    long long now = (long long)time(NULL);
    if (d->config->delay_warning_time <= 0 || e->delay_warned ||
        now - e->created < (long long)d->config->delay_warning_time)
        return;
    struct deliver_dsn_recipient *list = xcalloc(e->recipient_count + 1, sizeof *list);
    size_t count = 0;
    const char *last = job->entry && job->entry->last_error ? job->entry->last_error : NULL;
    for (size_t i = 0; i < e->recipient_count; i++) {
        if (e->recipients[i].state != SPOOL_RCPT_PENDING ||
            !deliver_notify_wants(e->recipients[i].params, DELIVER_DSN_DELAYED))
            continue;
        list[count].address = e->recipients[i].address;
        list[count].status = "4.4.7";
        list[count].diagnostic = last;
        count++;
    }
    if (deliver_notify(job, DELIVER_DSN_DELAYED, list, count) == 0) {
        e->delay_warned = true;
        spool_update_status(job->fd, e);
    }
    free(list);
}

/* deliver_start - one attempt at entry */
static void deliver_start(struct deliver *d, struct deliver_entry *entry)
{
    char *path = spool_path(d->queue_dir, SPOOL_ACTIVE, entry->id);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    free(path);
    if (fd < 0) {
        if (errno != ENOENT)
            log_message(PORTER_LOG_ERR, NULL, "event=queue_open_failed queue_id=%s error=\"%s\"",
                        entry->id, strerror(errno));
        deliver_remove(d, entry); /* gone (delivered, deleted, held); a rescan finds it again */
        return;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        entry->next_attempt = (long long)time(NULL) + DELIVER_LOCKED_RETRY;
        return;
    }
    struct deliver_job *job = xcalloc(1, sizeof *job);
    job->d = d;
    job->entry = entry;
    job->fd = fd;
    char error[256];
    if (spool_read(fd, &job->envelope, error, sizeof error) != 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=queue_file_bad queue_id=%s error=\"%s\" "
                    "action=\"moved to hold/\"", entry->id, error);
        spool_move(d->queue_dir, entry->id, SPOOL_ACTIVE, SPOOL_HOLD);
        deliver_remove(d, entry);
        job->entry = NULL;
        deliver_job_free(job);
        return;
    }
    struct spool_envelope *e = &job->envelope;
    entry->in_flight = true;
    d->in_flight++;
    job->next = d->jobs;
    if (d->jobs != NULL)
        d->jobs->previous = job;
    d->jobs = job;
    job->pending = xcalloc(e->recipient_count + 1, sizeof *job->pending);
    job->addresses = xcalloc(e->recipient_count + 1, sizeof *job->addresses);
    job->params = xcalloc(e->recipient_count + 1, sizeof *job->params);
    for (size_t i = 0; i < e->recipient_count; i++) {
        if (e->recipients[i].state != SPOOL_RCPT_PENDING)
            continue;
        job->pending[job->pending_count] = i;
        job->addresses[job->pending_count] = e->recipients[i].address;
        job->params[job->pending_count] = e->recipients[i].params;
        job->pending_count++;
    }
    long long now = (long long)time(NULL);
    if (job->pending_count > 0 && now >= e->created + (long long)d->config->max_queue_lifetime) {
        char text[700];
        snprintf(text, sizeof text, "delivery time expired (max_queue_lifetime)%s%s",
                 entry->last_error ? "; last error: " : "", entry->last_error ? entry->last_error : "");
        struct smtp_reply expired = {.code = 0, .text = text};
        log_message(PORTER_LOG_NOTICE, NULL, "event=expired queue_id=%s pending=%zu", e->queue_id,
                    job->pending_count);
        deliver_finish_all(job, 5, &expired);
        deliver_job_end(job);
        return;
    }
    if (job->pending_count == 0) {
        deliver_finish_all(job, 2, NULL);
        deliver_job_end(job);
        return;
    }
    deliver_delay_notice(job);
    job->waiter = smtp_pool_get(d->pool, deliver_connected, job);
}

/* deliver_schedule - start every due message while there is room */
static void deliver_schedule(struct deliver *d)
{
    if (d->stopping)
        return;
    long long now = (long long)time(NULL);
    size_t limit = (size_t)d->config->delivery_concurrency;
    for (size_t b = 0; b < DELIVER_BUCKETS && d->in_flight < limit; b++) {
        struct deliver_entry *e = d->buckets[b];
        while (e != NULL && d->in_flight < limit) {
            struct deliver_entry *next = e->next;
            if (!e->in_flight && e->next_attempt <= now)
                deliver_start(d, e);
            e = next;
        }
    }
}

/* ---------------------------------------------------------------- events */

static void deliver_flush(struct deliver *d)
{
    d->flush_requested = true;
    deliver_rescan(d);
    d->flush_requested = false;
    for (size_t b = 0; b < DELIVER_BUCKETS; b++)
        for (struct deliver_entry *e = d->buckets[b]; e; e = e->next)
            e->next_attempt = 0;
    log_message(PORTER_LOG_NOTICE, NULL, "event=queue_flush messages=%zu", d->entry_count);
    deliver_schedule(d);
}

static void deliver_tick(evutil_socket_t fd, short what, void *arg)
{
    struct deliver *d = arg;
    char *flag = xasprintf("%s/flush", d->queue_dir);
    bool flush = unlink(flag) == 0;
    free(flag);
    if (flush)
        deliver_flush(d);
    else if (time(NULL) - d->last_rescan >= DELIVER_RESCAN_INTERVAL)
        deliver_rescan(d);
    deliver_schedule(d);
}

static void deliver_inotify(evutil_socket_t fd, short what, void *arg)
{
    struct deliver *d = arg;
    char buffer[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(fd, buffer, sizeof buffer)) > 0) {
        for (char *p = buffer; p < buffer + n;) {
            struct inotify_event *event = (struct inotify_event *)(void *)p;
            if (event->len > 0 && spool_id_valid(event->name)) {
                /* new, or released from hold/: due now */
                struct deliver_entry *e = deliver_add(d, event->name, 0);
                if (!e->in_flight)
                    e->next_attempt = 0;
            }
            if (event->mask & IN_Q_OVERFLOW)
                deliver_rescan(d);
            p += sizeof *event + event->len;
        }
    }
    deliver_schedule(d);
}

static void deliver_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct deliver *d = arg;
    log_message(PORTER_LOG_WARNING, NULL, "event=delivery_stop_forced in_flight=%zu", d->in_flight);
    event_base_loopexit(d->base, NULL);
}

static void deliver_signal(evutil_socket_t signal_number, short what, void *arg)
{
    struct deliver *d = arg;
    if (signal_number == SIGUSR1) {
        deliver_flush(d);
        return;
    }
    if (signal_number == SIGHUP)
        return;
    if (d->stopping)
        return;
    d->stopping = true;
    log_message(PORTER_LOG_NOTICE, NULL, "event=delivery_stopping in_flight=%zu", d->in_flight);
    if (d->in_flight == 0) {
        event_base_loopexit(d->base, NULL);
        return;
    }
    double seconds = d->config->shutdown_timeout > 0 ? d->config->shutdown_timeout : 1;
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6)};
    evtimer_add(d->stop_deadline, &tv);
}

/* deliver_read_password - first line of the password file; NULL on failure */
static char *deliver_read_password(const char *path)
{
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return NULL;
    char line[1024];
    char *result = NULL;
    if (fgets(line, sizeof line, file) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        result = xstrdup(line);
    }
    explicit_bzero(line, sizeof line);
    fclose(file);
    return result;
}

int deliver_run(const struct porter_config *config)
{
    struct deliver *d = xcalloc(1, sizeof *d);
    d->config = config;
    d->queue_dir = config_path(config, config->queue_dir);
    d->active_dir = xasprintf("%s/active", d->queue_dir);
    d->inotify_fd = -1;
    int status = 1;
    int lock_fd = -1;
    if (config->relay_host == NULL) {
        log_message(PORTER_LOG_ERR, NULL, "event=delivery_error error=\"relay_host is not set\"");
        goto out;
    }
    if (spool_prepare(d->queue_dir) != 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=delivery_error dir=%s error=\"%s\"", d->queue_dir,
                    strerror(errno));
        goto out;
    }
    char *lock_path = xasprintf("%s/deliver.lock", d->queue_dir);
    lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lock_path);
    if (lock_fd < 0 || flock(lock_fd, LOCK_EX) != 0) {
        log_message(PORTER_LOG_ERR, NULL, "event=delivery_error error=\"cannot lock the queue: %s\"",
                    strerror(errno));
        goto out;
    }
    char *pid_path = xasprintf("%s/deliver.pid", d->queue_dir);
    FILE *pid_file = fopen(pid_path, "w");
    if (pid_file != NULL) {
        fprintf(pid_file, "%ld\n", (long)getpid());
        fclose(pid_file);
    }
    free(pid_path);
    size_t steps = 0;
    if (config_retry_schedule_parse(config->retry_schedule ? config->retry_schedule : "5m", d->steps,
                                    CONFIG_RETRY_STEPS_MAX, &steps) != NULL)
        steps = 0;
    d->step_count = steps;
    d->settings.address = config->relay_host;
    d->settings.lmtp = config->relay_protocol == CONFIG_RELAY_LMTP;
    d->settings.helo_name = config->hostname;
    d->settings.tls = config->relay_tls;
    d->settings.tls_server_name = config->relay_tls_server_name;
    d->settings.identity = config->relay_identity;
    d->settings.connect_timeout = config->relay_connect_timeout;
    d->settings.greeting_timeout = config->relay_command_timeout;
    d->settings.command_timeout = config->relay_command_timeout;
    d->settings.data_timeout = config->relay_command_timeout;
    d->settings.data_done_timeout = config->relay_data_timeout;
    if (config->relay_tls != SMTP_CLIENT_TLS_NONE) {
        const char *error = NULL;
        char *ca = config->relay_tls_ca_file ? config_path(config, config->relay_tls_ca_file) : NULL;
        d->tls_context = smtp_client_tls_context(ca, &error);
        free(ca);
        if (d->tls_context == NULL) {
            log_message(PORTER_LOG_ERR, NULL, "event=delivery_error error=\"relay_tls: %s\"", error);
            goto out;
        }
        d->settings.tls_context = d->tls_context;
    }
    if (config->relay_auth_user != NULL) {
        char *path = config->relay_auth_password_file
                         ? config_path(config, config->relay_auth_password_file) : NULL;
        d->auth_password = path ? deliver_read_password(path) : NULL;
        free(path);
        if (d->auth_password == NULL) {
            log_message(PORTER_LOG_ERR, NULL, "event=delivery_error error=\"relay_auth_user needs a "
                        "readable relay_auth_password_file\"");
            goto out;
        }
        d->settings.auth_user = config->relay_auth_user;
        d->settings.auth_password = d->auth_password;
    }
    d->base = event_base_new();
    if (d->base == NULL)
        goto out;
    size_t concurrency = (size_t)config->delivery_concurrency;
    d->pool = smtp_pool_new(d->base, &d->settings, concurrency, concurrency, 30);
    signal(SIGPIPE, SIG_IGN);
    static const int numbers[4] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP};
    for (size_t i = 0; i < 4; i++) {
        d->signals[i] = evsignal_new(d->base, numbers[i], deliver_signal, d);
        evsignal_add(d->signals[i], NULL);
    }
    d->stop_deadline = evtimer_new(d->base, deliver_stop_deadline, d);
    d->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (d->inotify_fd >= 0 && inotify_add_watch(d->inotify_fd, d->active_dir, IN_CREATE | IN_MOVED_TO) >= 0) {
        d->inotify_event = event_new(d->base, d->inotify_fd, EV_READ | EV_PERSIST, deliver_inotify, d);
        event_add(d->inotify_event, NULL);
    }
    d->tick = event_new(d->base, -1, EV_PERSIST, deliver_tick, d);
    struct timeval second = {1, 0};
    event_add(d->tick, &second);
    deliver_clean_tmp(d);
    deliver_rescan(d);
    log_message(PORTER_LOG_NOTICE, NULL, "event=delivery_started pid=%ld queue=%s relay=%s "
                "messages=%zu concurrency=%zu", (long)getpid(), d->queue_dir, config->relay_host,
                d->entry_count, concurrency);
    deliver_schedule(d);
    event_base_dispatch(d->base);
    status = 0;
    log_message(PORTER_LOG_NOTICE, NULL, "event=delivery_stopped in_flight=%zu", d->in_flight);
out:
    while (d->jobs != NULL) {
        /* attempts cut short: their recipients stay pending and are tried again */
        struct deliver_job *job = d->jobs;
        if (job->waiter != NULL)
            smtp_pool_cancel(d->pool, job->waiter);
        smtp_client_free(job->client);
        deliver_job_free(job);
    }
    if (d->pool != NULL)
        smtp_pool_free(d->pool); /* in-flight attempts end here: their recipients stay pending */
    for (size_t b = 0; b < DELIVER_BUCKETS; b++) {
        while (d->buckets[b] != NULL)
            deliver_remove(d, d->buckets[b]);
    }
    for (size_t i = 0; i < 4; i++)
        if (d->signals[i] != NULL)
            event_free(d->signals[i]);
    if (d->stop_deadline)
        event_free(d->stop_deadline);
    if (d->tick)
        event_free(d->tick);
    if (d->inotify_event)
        event_free(d->inotify_event);
    if (d->inotify_fd >= 0)
        close(d->inotify_fd);
    if (d->base)
        event_base_free(d->base);
    if (d->tls_context)
        SSL_CTX_free(d->tls_context);
    if (d->auth_password) {
        explicit_bzero(d->auth_password, strlen(d->auth_password));
        free(d->auth_password);
    }
    if (lock_fd >= 0)
        close(lock_fd);
    free(d->queue_dir);
    free(d->active_dir);
    free(d);
    return status;
}
