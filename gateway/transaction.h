/*
 * transaction.h - one mail transaction: envelope, ESMTP/DSN parameters, notes, the spooled
 * message (a temporary file) and its header list with edits.
 *
 * Interface: created at MAIL by transaction_new, freed at RSET/end of message by
 * transaction_free (accepts NULL). The transaction owns every string in it, the spool file
 * descriptor and the header list. Parameters are kept as parsed ESMTP keyword/value pairs so
 * that a queue plugin can pass DSN parameters (NOTIFY, ORCPT, RET, ENVID) through.
 * Fatal: out of memory. Spool errors return -1 with errno set.
 */
#ifndef PORTER_TRANSACTION_H
#define PORTER_TRANSACTION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "headers.h"

/* One ESMTP parameter: keyword upper-case; value NULL when given without "=value". */
struct transaction_param {
    char *keyword;
    char *value;
};

struct param_list {
    struct transaction_param *items;
    size_t count;
};

struct recipient {
    char *address;
    struct param_list params;
};

/* A string note (notes are small: a linear list is the right structure). */
struct note {
    char *key;
    char *value;
};

struct note_list {
    struct note *items;
    size_t count;
};

/* A recipient the transaction did not take, for its log line: the address as given, the
 * reply's code and who decided (a plugin's name, "core" for a limit, "-" for nobody). */
struct recipient_refusal {
    char *address;
    int code;
    char *decider;
};

/* The refusals a transaction keeps for its log line; more are only counted. */
#define TRANSACTION_REFUSALS_KEPT 20

struct transaction {
    char *queue_id;
    char *mail_from;             /* "" is the null sender */
    struct param_list mail_params;
    struct recipient *recipients;
    size_t recipient_count;
    struct note_list notes;
    char *quarantine_reason;     /* NULL unless quarantined */
    char *discard_reason;        /* NULL unless porter_discard: answered 250, never queued */
    /* the message */
    int spool_fd;                /* -1 until DATA/BDAT */
    struct header_list headers;  /* parsed header block plus edits */
    bool headers_parsed;
    off_t body_offset;           /* where the body starts in the spool file */
    off_t body_length;
    unsigned long long data_size;/* bytes received */
    char *rendered_headers;      /* cache for porter_message(); freed on any header edit */
    struct transaction *parked_next; /* the session's list of ended transactions still in use */
    struct recipient_refusal refusals[TRANSACTION_REFUSALS_KEPT]; /* the first ones */
    size_t refusal_count;        /* every refused or deferred RCPT, also those not kept */
    size_t rendered_length;
};

struct transaction *transaction_new(const char *queue_id);
void transaction_free(struct transaction *t);

void param_list_clear(struct param_list *list);
void param_list_add(struct param_list *list, const char *keyword, const char *value);
/* param_list_parse - "KEY=VALUE KEY2" words into list (replacing it); returns 0 or -1 */
int param_list_parse(struct param_list *list, const char *text);
/* param_list_get - value; "" for a parameter without value; NULL when absent */
const char *param_list_get(const struct param_list *list, const char *keyword);

void transaction_add_recipient(struct transaction *t, const char *address,
                               const struct param_list *params);
/* transaction_add_refusal - remember a refused or deferred RCPT (the first
 * TRANSACTION_REFUSALS_KEPT in full; every one is counted); strings are copied, NULL is "-" */
void transaction_add_refusal(struct transaction *t, const char *address, int code,
                             const char *decider);
/* transaction_remove_recipient - remove every recipient equal (case-insensitively) to address;
 * returns how many were removed */
size_t transaction_remove_recipient(struct transaction *t, const char *address);

void note_list_clear(struct note_list *list);
void note_list_set(struct note_list *list, const char *key, const char *value);
const char *note_list_get(const struct note_list *list, const char *key);

/* transaction_spool_open - use spare_fd (an empty spool file, or -1) or create an anonymous
 * spool file in directory; the transaction owns it from now on; 0 or -1 */
int transaction_spool_open(struct transaction *t, const char *directory, int spare_fd);
/* transaction_spool_take - hand the spool file back to the caller (-1 if none) */
int transaction_spool_take(struct transaction *t);
/* transaction_headers_changed - drop the rendering cache after an edit */
void transaction_headers_changed(struct transaction *t);
/* transaction_render_headers - the current header block (cached until the next edit) */
const char *transaction_render_headers(struct transaction *t, size_t *length);
/* transaction_replace_body - write a new body to a fresh spool file; 0 or -1 */
int transaction_replace_body(struct transaction *t, const char *directory, const char *body,
                             size_t length);

/* queue_id_new - a fresh queue id: time-based and unique per process, [0-9A-Z]+ */
char *queue_id_new(void);

#endif
