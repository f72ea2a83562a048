/*
 * queue_maildir - deliver accepted mail into a Maildir: the embedded default, so Porter is
 * useful with nothing else installed.
 *
 * Hook: queue. The message (Porter's Received header, the headers with every edit, the body,
 * byte for byte as received, CRLF line ends) is written to tmp/, fsynced, renamed into new/,
 * and the directory fsynced, all on a pool thread; only then does the client get 250. Any
 * failure answers 451 4.3.0 and leaves nothing in new/. A quarantined message goes to the
 * quarantine Maildir instead, never to the inbox.
 *
 * Arguments: path=DIR (default "maildir" in the configuration directory; created if missing),
 *            quarantine=DIR (default PATH/.Quarantine).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <porter/plugin.h>

struct maildir {
    char *path;
    char *quarantine;
};

/* One delivery, handed to the pool thread. */
struct maildir_job {
    const char *directory;
    struct porter_message message;
    char name[256];
    int error;
};

/* maildir_create - DIR (and its parents) with tmp/, new/ and cur/ */
static int maildir_create(const char *directory)
{
    static const char *const parts[] = {"", "/tmp", "/new", "/cur"};
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", directory);
    for (char *p = parent + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(parent, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    for (size_t i = 0; i < 4; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s%s", directory, parts[i]);
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

static void *maildir_init(porter_args *a)
{
    struct maildir *m = calloc(1, sizeof *m);
    m->path = strdup(porter_arg_path(a, "path", "maildir"));
    char fallback[4096];
    snprintf(fallback, sizeof fallback, "%s/.Quarantine", m->path);
    m->quarantine = strdup(porter_arg_path(a, "quarantine", fallback));
    if (maildir_create(m->path) != 0 || maildir_create(m->quarantine) != 0)
        porter_arg_error(a, "cannot create Maildir %s: %s", m->path, strerror(errno));
    return m;
}

static void maildir_fini(void *state)
{
    struct maildir *m = state;
    if (m != NULL) {
        free(m->path);
        free(m->quarantine);
        free(m);
    }
}

/* maildir_fsync_directory - make a rename durable */
static int maildir_fsync_directory(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* maildir_deliver - on a pool thread: tmp/NAME, fsync, rename to new/NAME, fsync new/ */
static int maildir_deliver(void *arg)
{
    struct maildir_job *job = arg;
    char temporary[4096], final[4096], new_directory[4096];
    snprintf(temporary, sizeof temporary, "%s/tmp/%s", job->directory, job->name);
    snprintf(final, sizeof final, "%s/new/%s", job->directory, job->name);
    snprintf(new_directory, sizeof new_directory, "%s/new", job->directory);
    int fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return job->error = errno, -1;
    if (porter_message_write(&job->message, fd) != 0 || fsync(fd) != 0) {
        job->error = errno;
        close(fd);
        unlink(temporary);
        return -1;
    }
    if (close(fd) != 0 || rename(temporary, final) != 0 || maildir_fsync_directory(new_directory) != 0) {
        job->error = errno;
        unlink(temporary);
        return -1;
    }
    return 0;
}

/* maildir_done - back on the loop: the verdict */
static int maildir_done(porter_session *s, void *arg, int result)
{
    struct maildir_job *job = arg;
    int error = job->error;
    free(job);
    if (s == NULL)
        return PORTER_DECLINED;
    if (result != 0) {
        porter_log(s, PORTER_LOG_ERR, "event=delivery_failed error=\"%s\"", strerror(error));
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Local error in delivery, try again later");
    }
    return porter_reply(s, PORTER_OK, 250, "2.0.0", "Ok: queued as %s", porter_queue_id(s));
}

static int maildir_queue(porter_session *s, void *state)
{
    static atomic_uint counter;
    struct maildir *m = state;
    struct maildir_job *job = calloc(1, sizeof *job);
    if (job == NULL || porter_message(s, &job->message) != 0) {
        free(job);
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Local error in delivery, try again later");
    }
    struct timeval now;
    gettimeofday(&now, NULL);
    job->directory = porter_quarantined(s) ? m->quarantine : m->path;
    snprintf(job->name, sizeof job->name, "%ld.M%06ldP%ldQ%u.%s.%s", (long)now.tv_sec,
             (long)now.tv_usec, (long)getpid(), atomic_fetch_add(&counter, 1) + 1,
             porter_queue_id(s), porter_hostname(s));
    return porter_run_blocking(s, maildir_deliver, maildir_done, job);
}

PORTER_PLUGIN(.name = "queue_maildir",
              .description = "Delivers accepted mail into a Maildir. The message is written to "
                             "tmp/, fsynced, renamed into new/ and the folder fsynced, on the "
                             "thread pool; only then does the client get 250, and any failure "
                             "answers 451 4.3.0. A quarantined message goes to the quarantine "
                             "Maildir, never to the inbox. The embedded default: useful with "
                             "nothing else installed.",
              .arguments = PORTER_ARGUMENTS(
                  {"path", "maildir",
                   "The Maildir, relative to the configuration directory; created if missing."},
                  {"quarantine", NULL,
                   "The Maildir for quarantined messages (default: .Quarantine inside path=)."}),
              .init = maildir_init, .fini = maildir_fini,
              .hooks[PORTER_HOOK_QUEUE] = maildir_queue);
