/*
 * spool.h - queue files: the format shared by the queue_spool plugin (writer), the delivery
 * process (reader and per-recipient updates) and `porter queue` (reader, mover).
 *
 * A queue directory has three folders: tmp/ (files being written), active/ (waiting for
 * delivery) and hold/ (quarantined or held: never delivered until released). A queue file is
 * named after its queue id and holds a text envelope, then the line "message", then the
 * message (headers, empty line, body; CRLF lines, not dot-stuffed) up to the end of the file:
 *
 *     PORTER-QUEUE 1
 *     id 4QX...                     created 1732571234        from a@example.org
 *     mail-param RET=HDRS           client-ip / client-port / client-name / helo / protocol
 *     auth-user bob                 quarantine REASON         note KEY VALUE
 *     status 0000000003 00000000001732575000 N     (attempts, next attempt, delay warned)
 *     rcpt P bob@example.com NOTIFY=FAILURE%20...  (P pending, D delivered, F failed)
 *     message
 *     <message bytes>
 * (one record per line; values are %XX-escaped: bytes <= 0x20, >= 0x7f and '%').
 * The status record and each recipient's state letter have fixed widths, so the delivery
 * process updates them in place (pwrite + fdatasync) without rewriting the message.
 *
 * Durability: spool_write writes tmp/NAME, fsyncs it, links it into active/ or hold/ (never
 * replacing a file), removes the tmp name and fsyncs the target folder: a file is in active/
 * only when it is complete and durable. Any failure leaves nothing in active/ or hold/.
 *
 * Interface: below. Nothing is fatal except out of memory (memory.h); I/O failures return -1
 * with errno. spool_envelope_format and spool_envelope_parse are pure (fuzzed). Memory: a
 * struct spool_envelope owns its strings (spool_envelope_clear frees them); callers own what
 * they pass in.
 */
#ifndef PORTER_SPOOL_H
#define PORTER_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SPOOL_MAGIC "PORTER-QUEUE 1"
#define SPOOL_ID_MAX 64            /* bytes in a queue id ([A-Za-z0-9], at least 1) */
#define SPOOL_ENVELOPE_MAX (64 * 1024 * 1024) /* bytes of envelope spool_read accepts */
#define SPOOL_NOTES_MAX 64         /* note records in one file */

/* The folders of a queue directory. */
enum spool_queue { SPOOL_ACTIVE = 0, SPOOL_HOLD, SPOOL_QUEUE_COUNT };
const char *spool_queue_name(int queue);

/* A recipient's delivery state. */
enum spool_rcpt_state {
    SPOOL_RCPT_PENDING = 0, /* 'P': not delivered yet */
    SPOOL_RCPT_DELIVERED,   /* 'D': the downstream took it: never sent again */
    SPOOL_RCPT_FAILED,      /* 'F': failed for good (and the DSN, if any, is queued) */
    SPOOL_RCPT_COUNT
};
const char *spool_rcpt_state_name(int state);

struct spool_note {
    char *key;
    char *value;
};

struct spool_recipient {
    char *address;
    char *params;        /* "NOTIFY=... ORCPT=..." or "" */
    int state;           /* enum spool_rcpt_state */
    off_t state_offset;  /* where the state letter is (spool_envelope_parse fills it) */
};

struct spool_envelope {
    char *queue_id;
    long long created;           /* time(NULL) when it was accepted */
    char *mail_from;             /* "" is the null sender */
    char *mail_params;           /* "RET=HDRS ENVID=... BODY=8BITMIME SMTPUTF8" or "" */
    char *client_ip, *client_name, *helo, *protocol, *auth_user; /* NULL: unknown */
    int client_port;
    char *quarantine;            /* NULL: not quarantined */
    struct spool_note *notes;
    size_t note_count;
    struct spool_recipient *recipients;
    size_t recipient_count;
    unsigned attempts;
    long long next_attempt;      /* 0: now */
    bool delay_warned;
    off_t status_offset;         /* where the status record starts */
    off_t message_offset;        /* the first message byte */
    off_t message_length;        /* spool_read: file size - message_offset */
};

/* spool_id_valid - [A-Za-z0-9] only, 1 to SPOOL_ID_MAX bytes (no path tricks) */
bool spool_id_valid(const char *id);

/* spool_path - QUEUE_DIR/FOLDER/ID; caller frees */
char *spool_path(const char *queue_dir, int queue, const char *id);

/* spool_count - how many queue files one folder holds and the creation time of the oldest
 * message (its created record; 0 when empty), reading at most limit names; -1 with errno when it cannot be read */
int spool_count(const char *queue_dir, int queue, size_t limit, long *count, time_t *oldest);

/* spool_prepare - create QUEUE_DIR and its folders (mode 0700); -1 with errno */
int spool_prepare(const char *queue_dir);

/* spool_envelope_format - the text up to and including "message\n"; caller frees *text.
 * Pure. Fills in the offsets (status, recipients, message) of e as written. */
void spool_envelope_format(struct spool_envelope *e, char **text, size_t *length);

/*
 * spool_envelope_parse - read the envelope from the first length bytes of text (which must
 * contain the "message" line). 0 with *out filled (caller clears), or -1 with a reason in
 * error. Pure. message_length is left 0.
 */
int spool_envelope_parse(const char *text, size_t length, struct spool_envelope *out, char *error,
                         size_t error_size);

void spool_envelope_clear(struct spool_envelope *e);

/* Writes the message into fd; 0, or -1 with errno set. */
typedef int (*spool_message_writer)(int fd, void *arg);

/*
 * spool_write - a complete queue file in QUEUE_DIR/FOLDER (durable when it returns 0); -1 with
 * errno (ENOSPC/EDQUOT: disk full; EEXIST: the id is taken) and nothing left behind.
 * Thread-safe.
 */
int spool_write(const char *queue_dir, int queue, struct spool_envelope *e,
                spool_message_writer writer, void *arg);

/* spool_read - parse the queue file open on fd; 0, or -1 with a reason in error */
int spool_read(int fd, struct spool_envelope *out, char *error, size_t error_size);

/* spool_mark_recipient - set recipient i's state in the file and make it durable */
int spool_mark_recipient(int fd, struct spool_envelope *e, size_t i, int state);

/* spool_mark_recipients - set the state of several recipients (indexes) with one fdatasync */
int spool_mark_recipients(int fd, struct spool_envelope *e, const size_t *indexes, size_t count,
                          int state);

/* spool_update_status - write e's attempts, next_attempt and delay_warned; durable */
int spool_update_status(int fd, const struct spool_envelope *e);

/* spool_move - rename QUEUE_DIR/FROM/ID to QUEUE_DIR/TO/ID without replacing; fsyncs */
int spool_move(const char *queue_dir, const char *id, int from, int to);

/* spool_fsync_directory - make renames in path durable */
int spool_fsync_directory(const char *path);

/* spool_pending_count - recipients still pending */
size_t spool_pending_count(const struct spool_envelope *e);

#endif
