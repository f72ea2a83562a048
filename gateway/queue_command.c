/*
 * queue_command.c - `porter queue ...` (see queue_command.h).
 *
 * list prints one line per queue file (active/ then hold/): id, folder, size, age, attempts,
 * next attempt, sender and pending/total recipients. show prints the envelope with each
 * recipient's state, then the message headers (--body: the whole message). Commands that
 * change the queue only rename (link + unlink, never replacing) or unlink files, which the
 * delivery process tolerates at any moment.
 *
 * Interface: queue_command.h. Fatal: out of memory. Memory: everything is freed before return.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "memory.h"
#include "queue_command.h"
#include "spool.h"

static void queue_usage(FILE *out)
{
    fprintf(out, "usage: porter queue [-c CONFDIR] list\n"
                 "       porter queue [-c CONFDIR] show [--body] ID\n"
                 "       porter queue [-c CONFDIR] flush\n"
                 "       porter queue [-c CONFDIR] delete|hold|release ID\n");
}

/* queue_open - the file of id in active/ or hold/; its fd, and *folder set, or -1 */
static int queue_open(const char *queue_dir, const char *id, int *folder)
{
    for (int q = 0; q < SPOOL_QUEUE_COUNT; q++) {
        char *path = spool_path(queue_dir, q, id);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        free(path);
        if (fd >= 0) {
            *folder = q;
            return fd;
        }
    }
    return -1;
}

static void queue_age(long long seconds, char *out, size_t size)
{
    if (seconds < 0)
        seconds = 0;
    if (seconds < 120)
        snprintf(out, size, "%llds", seconds);
    else if (seconds < 7200)
        snprintf(out, size, "%lldm", seconds / 60);
    else if (seconds < 172800)
        snprintf(out, size, "%lldh", seconds / 3600);
    else
        snprintf(out, size, "%lldd", seconds / 86400);
}

/* queue_list - one line per message */
static int queue_list(const char *queue_dir)
{
    long long now = (long long)time(NULL);
    size_t total = 0;
    printf("%-20s %-6s %10s %5s %8s %8s %-8s %s\n", "ID", "QUEUE", "SIZE", "AGE", "ATTEMPTS",
           "NEXT", "RCPTS", "SENDER");
    for (int q = 0; q < SPOOL_QUEUE_COUNT; q++) {
        char *folder = xasprintf("%s/%s", queue_dir, spool_queue_name(q));
        DIR *dir = opendir(folder);
        if (dir == NULL) {
            fprintf(stderr, "porter queue: %s: %s\n", folder, strerror(errno));
            free(folder);
            return 1;
        }
        struct dirent *item;
        while ((item = readdir(dir)) != NULL) {
            if (!spool_id_valid(item->d_name))
                continue;
            char *path = spool_path(queue_dir, q, item->d_name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            free(path);
            if (fd < 0)
                continue;
            struct spool_envelope e;
            char error[256];
            if (spool_read(fd, &e, error, sizeof error) != 0) {
                printf("%-20s %-6s (unreadable: %s)\n", item->d_name, spool_queue_name(q), error);
                close(fd);
                continue;
            }
            close(fd);
            char age[32], next[32];
            queue_age(now - e.created, age, sizeof age);
            if (q == SPOOL_HOLD)
                snprintf(next, sizeof next, "held");
            else if (e.next_attempt <= now)
                snprintf(next, sizeof next, "now");
            else
                queue_age(e.next_attempt - now, next, sizeof next);
            char recipients[32];
            snprintf(recipients, sizeof recipients, "%zu/%zu", spool_pending_count(&e),
                     e.recipient_count);
            printf("%-20s %-6s %10lld %5s %8u %8s %-8s <%s>%s%s\n", e.queue_id, spool_queue_name(q),
                   (long long)e.message_length, age, e.attempts, next, recipients, e.mail_from,
                   e.quarantine ? " quarantined: " : "", e.quarantine ? e.quarantine : "");
            spool_envelope_clear(&e);
            total++;
        }
        closedir(dir);
        free(folder);
    }
    printf("%zu message%s\n", total, total == 1 ? "" : "s");
    return 0;
}

/* queue_show - the envelope and the message (headers, or all with body) */
static int queue_show(const char *queue_dir, const char *id, int body)
{
    int folder = 0;
    int fd = queue_open(queue_dir, id, &folder);
    if (fd < 0) {
        fprintf(stderr, "porter queue: no message %s\n", id);
        return 1;
    }
    struct spool_envelope e;
    char error[256];
    if (spool_read(fd, &e, error, sizeof error) != 0) {
        fprintf(stderr, "porter queue: %s: %s\n", id, error);
        close(fd);
        return 1;
    }
    char created[64], next[64];
    time_t when = (time_t)e.created;
    strftime(created, sizeof created, "%Y-%m-%d %H:%M:%S %z", localtime(&when));
    when = (time_t)e.next_attempt;
    strftime(next, sizeof next, "%Y-%m-%d %H:%M:%S %z", localtime(&when));
    printf("id: %s\nqueue: %s\ncreated: %s\nsender: <%s>\n", e.queue_id, spool_queue_name(folder),
           created, e.mail_from);
    if (e.mail_params && *e.mail_params)
        printf("sender parameters: %s\n", e.mail_params);
    if (e.client_ip)
        printf("client: %s [%s]:%d helo=%s protocol=%s%s%s\n",
               e.client_name ? e.client_name : "unknown", e.client_ip, e.client_port,
               e.helo ? e.helo : "", e.protocol ? e.protocol : "",
               e.auth_user ? " user=" : "", e.auth_user ? e.auth_user : "");
    if (e.quarantine)
        printf("quarantined: %s\n", e.quarantine);
    for (size_t i = 0; i < e.note_count; i++)
        printf("note: %s=%s\n", e.notes[i].key, e.notes[i].value);
    printf("attempts: %u\nnext attempt: %s\ndelay notice sent: %s\nsize: %lld\n", e.attempts,
           e.next_attempt ? next : "now", e.delay_warned ? "yes" : "no", (long long)e.message_length);
    for (size_t i = 0; i < e.recipient_count; i++)
        printf("recipient: <%s> %s%s%s\n", e.recipients[i].address,
               spool_rcpt_state_name(e.recipients[i].state), *e.recipients[i].params ? " " : "",
               e.recipients[i].params);
    printf("\n");
    char buffer[65536];
    off_t done = 0;
    bool in_headers = true;
    char last[4] = {0};
    while (done < e.message_length) {
        ssize_t n = pread(fd, buffer, sizeof buffer, e.message_offset + done);
        if (n <= 0)
            break;
        size_t keep = (size_t)n;
        if (!body) {
            for (ssize_t i = 0; i < n && in_headers; i++) {
                memmove(last, last + 1, 3);
                last[3] = buffer[i];
                if (memcmp(last, "\r\n\r\n", 4) == 0) {
                    keep = (size_t)i + 1;
                    in_headers = false;
                }
            }
        }
        fwrite(buffer, 1, keep, stdout);
        done += n;
        if (!body && !in_headers)
            break;
    }
    spool_envelope_clear(&e);
    close(fd);
    return 0;
}

/* queue_flush - ask the delivery process to try everything now */
static int queue_flush(const char *queue_dir)
{
    char *flag = xasprintf("%s/flush", queue_dir);
    int fd = open(flag, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    free(flag);
    if (fd < 0) {
        fprintf(stderr, "porter queue: cannot request a flush in %s: %s\n", queue_dir, strerror(errno));
        return 1;
    }
    close(fd);
    char *pid_path = xasprintf("%s/deliver.pid", queue_dir);
    FILE *file = fopen(pid_path, "r");
    free(pid_path);
    long pid = 0;
    if (file != NULL) {
        if (fscanf(file, "%ld", &pid) != 1)
            pid = 0;
        fclose(file);
    }
    if (pid > 1 && kill((pid_t)pid, SIGUSR1) == 0)
        printf("porter queue: flush requested (delivery process %ld)\n", pid);
    else
        printf("porter queue: flush requested (the delivery process will see it when it runs)\n");
    return 0;
}

static int queue_change(const char *queue_dir, const char *verb, const char *id)
{
    int folder = 0;
    int fd = queue_open(queue_dir, id, &folder);
    if (fd < 0) {
        fprintf(stderr, "porter queue: no message %s\n", id);
        return 1;
    }
    close(fd);
    if (strcmp(verb, "delete") == 0) {
        char *path = spool_path(queue_dir, folder, id);
        int rc = unlink(path);
        free(path);
        if (rc != 0) {
            fprintf(stderr, "porter queue: delete %s: %s\n", id, strerror(errno));
            return 1;
        }
        printf("porter queue: %s deleted\n", id);
        return 0;
    }
    int to = strcmp(verb, "hold") == 0 ? SPOOL_HOLD : SPOOL_ACTIVE;
    if (folder == to) {
        printf("porter queue: %s is already %s\n", id, to == SPOOL_HOLD ? "held" : "active");
        return 0;
    }
    if (spool_move(queue_dir, id, folder, to) != 0) {
        fprintf(stderr, "porter queue: %s %s: %s\n", verb, id, strerror(errno));
        return 1;
    }
    printf("porter queue: %s %s\n", id, to == SPOOL_HOLD ? "held" : "released");
    return 0;
}

int queue_command_main(int argc, char **argv, const char *default_directory)
{
    const char *directory = default_directory;
    int body = 0;
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"body", no_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int option;
    while ((option = getopt_long(argc, argv, "+c:bh", options, NULL)) != -1) {
        switch (option) {
        case 'c': directory = optarg; break;
        case 'b': body = 1; break;
        case 'h': queue_usage(stdout); return 0;
        default: queue_usage(stderr); return 2;
        }
    }
    /* options may also follow the verb ("show --body ID") */
    int rest = argc - optind;
    char **words = argv + optind;
    if (rest < 1) {
        queue_usage(stderr);
        return 2;
    }
    const char *verb = words[0];
    const char *id = NULL;
    for (int i = 1; i < rest; i++) {
        if (strcmp(words[i], "--body") == 0 || strcmp(words[i], "-b") == 0)
            body = 1;
        else if (id == NULL)
            id = words[i];
        else {
            queue_usage(stderr);
            return 2;
        }
    }
    bool needs_id = strcmp(verb, "show") == 0 || strcmp(verb, "delete") == 0 ||
                    strcmp(verb, "hold") == 0 || strcmp(verb, "release") == 0;
    bool known = needs_id || strcmp(verb, "list") == 0 || strcmp(verb, "flush") == 0;
    if (!known || needs_id != (id != NULL)) {
        queue_usage(stderr);
        return 2;
    }
    if (id != NULL && !spool_id_valid(id)) {
        fprintf(stderr, "porter queue: '%s' is not a queue id\n", id);
        return 2;
    }
    struct config_error_list errors = {0};
    struct porter_config *config = config_read_settings(directory, NULL, &errors);
    for (size_t i = 0; i < errors.count; i++)
        fprintf(stderr, "porter queue: %s\n", errors.messages[i]);
    config_errors_clear(&errors);
    if (config == NULL)
        return 1;
    char *queue_dir = config_path(config, config->queue_dir);
    int rc;
    if (strcmp(verb, "list") == 0)
        rc = queue_list(queue_dir);
    else if (strcmp(verb, "show") == 0)
        rc = queue_show(queue_dir, id, body);
    else if (strcmp(verb, "flush") == 0)
        rc = queue_flush(queue_dir);
    else
        rc = queue_change(queue_dir, verb, id);
    free(queue_dir);
    config_free(config);
    return rc;
}
