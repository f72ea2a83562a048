/*
 * queue_sql - store each accepted message in a database table: SQLite (embedded, the default)
 * or PostgreSQL (libpq).
 *
 * Hook: queue. The row is written on a pool thread, never on the event loop; the client gets
 * "250 2.0.0 Queued! QUEUEID" only after the INSERT has committed (each INSERT is its own
 * transaction: SQLite in WAL mode with synchronous=FULL, PostgreSQL in autocommit). Any error
 * (cannot connect, cannot write, database locked for longer than 5 seconds) answers
 * 451 4.3.0, so the client keeps the message and retries: nothing is lost. When the hook's
 * deadline passes first the core answers 451 too; a row committed after that is a duplicate
 * when the client retries, never a loss.
 *
 * The table, created if missing (same statement on both backends):
 *   mails (queue_id TEXT PRIMARY KEY, message_id TEXT, sender TEXT NOT NULL,
 *          recipients TEXT NOT NULL, header BYTEA NOT NULL, body BYTEA NOT NULL,
 *          received BIGINT NOT NULL)
 * message_id is the first Message-Id header (NULL without one), sender the envelope sender
 * ("" for the null sender), recipients the envelope recipients separated by ",", header the
 * header block as delivered (Porter's Received header and every edit; CRLF line ends), body
 * the body byte for byte, received the arrival time in seconds since the epoch.
 *
 * Arguments: db=sqlite:PATH (default sqlite:queue.sqlite; a relative PATH is relative to the
 *            configuration directory; the file is created by the worker on the first message,
 *            so it belongs to the user the workers run as) or
 *            db=postgresql:CONNINFO, a libpq connection string in quotes when it has spaces
 *            (db="postgresql:host=/run/postgresql dbname=mail connect_timeout=5") or a URI
 *            (db=postgresql:postgresql://porter@db.example/mail).
 *
 * Threads and memory: one connection per plugin line in each worker process, opened on first use
 * on a pool thread (never in init, so nothing crosses fork and files belong to the workers'
 * user), shared by the pool threads under a mutex, reopened after a PostgreSQL connection
 * breaks, closed by fini. One job per message, freed by sql_done.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include <porter/plugin.h>

static const char sql_create[] =
    "CREATE TABLE IF NOT EXISTS mails (queue_id TEXT PRIMARY KEY, message_id TEXT, "
    "sender TEXT NOT NULL, recipients TEXT NOT NULL, header BYTEA NOT NULL, body BYTEA NOT NULL, "
    "received BIGINT NOT NULL)";
static const char sql_insert[] = "INSERT INTO mails (queue_id, message_id, sender, recipients, "
                                 "header, body, received) VALUES ($1, $2, $3, $4, $5, $6, $7)";
static const int sql_binary[7] = {0, 0, 0, 0, 1, 1, 0}; /* 1: bytes, bound as a blob */

struct queue_sql {
    bool postgresql;
    char target[4096]; /* the SQLite file or the libpq connection string */
    pthread_mutex_t lock;
    sqlite3 *sqlite;
    PGconn *pg;
};

/* One message on its way to the database. */
struct sql_job {
    struct queue_sql *q;
    struct porter_message m;
    const char *values[7]; /* the INSERT's parameters, in sql_insert's order */
    int lengths[7];        /* of the binary ones */
    char *recipients, *body, received[24], error[512];
};

static void *sql_init(porter_args *a)
{
    struct queue_sql *q = calloc(1, sizeof *q);
    const char *db = porter_arg_string(a, "db", "sqlite:queue.sqlite");
    const char *resolved = porter_arg_path(a, "db", "sqlite:queue.sqlite"); /* DIR/sqlite:PATH */
    size_t directory = strlen(resolved) - strlen(db);
    pthread_mutex_init(&q->lock, NULL);
    q->postgresql = strncmp(db, "postgresql:", 11) == 0;
    if (q->postgresql)
        snprintf(q->target, sizeof q->target, "%s", db + 11);
    else if (strncmp(db, "sqlite:", 7) == 0 && db[7] != '\0')
        snprintf(q->target, sizeof q->target, "%.*s%s", db[7] == '/' ? 0 : (int)directory, resolved, db + 7);
    else
        porter_arg_error(a, "db: '%s' is neither sqlite:PATH nor postgresql:CONNINFO", db);
    return q;
}

static void sql_fini(void *state)
{
    struct queue_sql *q = state;
    sqlite3_close(q->sqlite);
    PQfinish(q->pg);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

/* sql_connect - open the database unless open, and create the table; 0, or -1 with error */
static int sql_connect(struct queue_sql *q, char *error, size_t size)
{
    if (q->postgresql) {
        if (q->pg != NULL && PQstatus(q->pg) == CONNECTION_OK)
            return 0;
        PQfinish(q->pg);
        q->pg = PQconnectdb(q->target);
        PGresult *result = PQstatus(q->pg) == CONNECTION_OK ? PQexec(q->pg, sql_create) : NULL;
        int rc = PQresultStatus(result) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc != 0)
            snprintf(error, size, "%s", PQerrorMessage(q->pg));
        PQclear(result);
        return rc;
    }
    if (q->sqlite != NULL)
        return 0;
    if (sqlite3_open(q->target, &q->sqlite) != SQLITE_OK || sqlite3_busy_timeout(q->sqlite, 5000) ||
        sqlite3_exec(q->sqlite, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", NULL, NULL, NULL) ||
        sqlite3_exec(q->sqlite, sql_create, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(error, size, "%s", sqlite3_errmsg(q->sqlite));
        sqlite3_close(q->sqlite);
        q->sqlite = NULL;
        return -1;
    }
    return 0;
}

/* sql_insert_row - the INSERT; it commits before it returns (autocommit); 0, or -1 with error */
static int sql_insert_row(struct queue_sql *q, struct sql_job *job)
{
    if (q->postgresql) {
        PGresult *result = PQexecParams(q->pg, sql_insert, 7, NULL, job->values, job->lengths, sql_binary, 0);
        int rc = PQresultStatus(result) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc != 0)
            snprintf(job->error, sizeof job->error, "%s", PQerrorMessage(q->pg));
        PQclear(result);
        return rc;
    }
    sqlite3_stmt *insert = NULL;
    int rc = sqlite3_prepare_v2(q->sqlite, sql_insert, -1, &insert, NULL);
    for (int i = 0; i < 7 && rc == SQLITE_OK; i++)
        rc = sql_binary[i] ? sqlite3_bind_blob(insert, i + 1, job->values[i], job->lengths[i], SQLITE_STATIC)
                           : sqlite3_bind_text(insert, i + 1, job->values[i], -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && sqlite3_step(insert) != SQLITE_DONE)
        rc = SQLITE_ERROR;
    if (rc != SQLITE_OK)
        snprintf(job->error, sizeof job->error, "%s", sqlite3_errmsg(q->sqlite));
    sqlite3_finalize(insert);
    return rc == SQLITE_OK ? 0 : -1;
}

/* sql_work - on a pool thread: read the body from the spool, then connect and insert */
static int sql_work(void *arg)
{
    struct sql_job *job = arg;
    const struct porter_message *m = &job->m;
    for (ssize_t done = 0, n; done < m->body_length; done += n) {
        n = pread(m->body_fd, job->body + done, (size_t)(m->body_length - done), m->body_offset + done);
        if (n <= 0) {
            snprintf(job->error, sizeof job->error, "spool: %s", n < 0 ? strerror(errno) : "short read");
            return -1;
        }
    }
    pthread_mutex_lock(&job->q->lock);
    int rc = sql_connect(job->q, job->error, sizeof job->error);
    if (rc == 0)
        rc = sql_insert_row(job->q, job);
    pthread_mutex_unlock(&job->q->lock);
    return rc;
}

/* sql_done - back on the loop: 250 after the commit, 451 after any error */
static int sql_done(porter_session *s, void *arg, int result)
{
    struct sql_job *job = arg;
    int rc = PORTER_DECLINED;
    job->error[strcspn(job->error, "\r\n")] = '\0';
    if (s != NULL && result != 0) {
        porter_log(s, PORTER_LOG_ERR, "event=queue_failed db=%s error=\"%s\"",
                   job->q->postgresql ? "postgresql" : "sqlite", job->error);
        rc = porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Database error, try again later");
    } else if (s != NULL) {
        rc = porter_reply(s, PORTER_OK, 250, "2.0.0", "Queued! %s", porter_queue_id(s));
    }
    free(job->recipients);
    free(job->body);
    free(job);
    return rc;
}

static int sql_queue(porter_session *s, void *state)
{
    struct sql_job *job = calloc(1, sizeof *job);
    if (porter_message(s, &job->m) != 0 || job->m.body_length >= INT_MAX || job->m.headers_length > INT_MAX) {
        free(job);
        return porter_reply(s, PORTER_DENYSOFT, 451, "4.3.0", "Cannot read the message, try again later");
    }
    size_t size = 0;
    FILE *recipients = open_memstream(&job->recipients, &size);
    for (size_t i = 0; i < porter_rcpt_count(s); i++)
        fprintf(recipients, "%s%s", i > 0 ? "," : "", porter_rcpt(s, i));
    fclose(recipients);
    const char *message_id = porter_header_get(s, "Message-Id", 0);
    snprintf(job->received, sizeof job->received, "%lld", (long long)time(NULL));
    job->q = state;
    job->body = malloc((size_t)job->m.body_length + 1);
    const char *values[7] = {porter_queue_id(s), message_id ? message_id + strspn(message_id, " \t") : NULL,
                             porter_mail_from(s), job->recipients, job->m.headers, job->body, job->received};
    memcpy(job->values, values, sizeof values);
    job->lengths[4] = (int)job->m.headers_length;
    job->lengths[5] = (int)job->m.body_length;
    return porter_run_blocking(s, sql_work, sql_done, job);
}

PORTER_PLUGIN(.name = "queue_sql", .init = sql_init, .fini = sql_fini,
              .hooks[PORTER_HOOK_QUEUE] = sql_queue);
