/*
 * status.h - the text of `porter status` and `porter top` (the control socket's "status"
 * and "sessions" answers, and the metrics listener's /top page).
 *
 * Interface: the master gives what only it knows (struct status_facts); the rest comes from
 * the workers' metrics slots (metrics.h). Fatal: out of memory. Memory: caller frees the text.
 */
#ifndef PORTER_STATUS_H
#define PORTER_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "metrics.h"

struct status_worker {
    pid_t pid;
    unsigned generation;
    bool retiring; /* replaced by a reload: finishing its sessions */
};

struct status_facts {
    pid_t pid;
    time_t started;
    const char *directory;
    const struct status_worker *workers;
    size_t worker_count;
    pid_t delivery_pid;                      /* 0: none */
    bool stopping;
    const struct metrics_master_facts *metrics; /* generation, restarts, queue */
};

/* status_text - one line per fact: master, worker, listener, plugin, queue, delivery */
char *status_text(const struct status_facts *facts);
/* status_sessions_text - every session the workers show (longest waiting hook first), then
 * the latest decisive verdicts, newest first */
char *status_sessions_text(void);

#endif
