/*
 * deliver.h - the spool's delivery process: relays the mail queue_spool queued to relay_host,
 * with bounded concurrency, a retry schedule, a maximum queue lifetime, per-recipient state
 * and RFC 3464 delivery status notifications.
 *
 * Interface: deliver_run is the process's whole life (the master forks it, drops privileges
 * and calls it); it returns the exit code. The small pure pieces below are exported for the
 * unit tests. Fatal: out of memory; a queue directory that cannot be opened or locked at start
 * (exit 1, the master restarts it). A downstream that misbehaves defers mail, never loses it.
 * Memory: everything deliver_run makes is freed before it returns.
 */
#ifndef PORTER_DELIVER_H
#define PORTER_DELIVER_H

#include <stdbool.h>
#include <stddef.h>

struct porter_config;

/* The three kinds of notification. */
enum deliver_dsn_action {
    DELIVER_DSN_FAILED = 0, /* permanent failure or expiry */
    DELIVER_DSN_DELAYED,    /* still trying (delay_warning_time) */
    DELIVER_DSN_RELAYED,    /* NOTIFY=SUCCESS to a downstream without DSN */
    DELIVER_DSN_ACTION_COUNT
};
const char *deliver_dsn_action_name(int action);

/* deliver_run - the delivery process; returns the exit code */
int deliver_run(const struct porter_config *config);

/* deliver_retry_delay - seconds to wait after attempt number attempts (1 = the first) */
double deliver_retry_delay(const double *steps, size_t count, unsigned attempts);

/* deliver_notify_wants - whether a recipient's parameters ("NOTIFY=FAILURE,DELAY ...") ask
 * for a notification of action; absent NOTIFY means FAILURE and DELAY (RFC 3461 4.1). Pure. */
bool deliver_notify_wants(const char *params, int action);

/* One recipient in a notification. */
struct deliver_dsn_recipient {
    const char *address;
    const char *original;     /* ORCPT value ("rfc822;x@y", xtext) or NULL */
    const char *status;       /* "5.1.1" */
    const char *diagnostic;   /* "smtp; 550 5.1.1 ..." or NULL */
};

/* What a notification says. */
struct deliver_dsn {
    int action;               /* enum deliver_dsn_action */
    const char *hostname;     /* Reporting-MTA */
    const char *queue_id;     /* of the original */
    const char *dsn_id;       /* of the notification (Message-ID, boundary) */
    const char *sender;       /* the original's envelope sender: To: */
    const char *envid;        /* ENVID (xtext) or NULL */
    const char *remote_mta;   /* relay_host or NULL */
    long long arrival;        /* when the original was queued */
    long long now;
    long long retry_until;    /* delayed: when it gives up */
    const struct deliver_dsn_recipient *recipients;
    size_t recipient_count;
    bool headers_only;        /* the returned part is text/rfc822-headers */
};

/* deliver_dsn_head - the notification up to the returned message's first byte (CRLF lines;
 * the caller appends the original and then deliver_dsn_tail). Pure. Caller frees. */
char *deliver_dsn_head(const struct deliver_dsn *dsn, size_t *length);
/* deliver_dsn_tail - the closing boundary. Pure. Caller frees. */
char *deliver_dsn_tail(const struct deliver_dsn *dsn, size_t *length);

#endif
