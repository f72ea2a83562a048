/*
 * queue_sql - store each accepted message in a database table: SQLite (embedded, the default)
 * or PostgreSQL (libpq).
 *
 * Hook: queue, through porter_deliver: the row is written on a pool thread, never on the event
 * loop; the client gets "250 2.0.0 Queued! QUEUEID" only after the INSERT has committed (each
 * INSERT is its own transaction: SQLite in WAL mode with synchronous=FULL, PostgreSQL in
 * autocommit). Any error (cannot connect, cannot write, database locked for longer than 5
 * seconds) is logged (event=queue_failed plugin=queue_sql error="...") and answers 451 4.3.0,
 * so the client keeps the message and retries: nothing is lost. When the hook's deadline
 * passes first the core answers 451 too; a row committed after that is a duplicate when the
 * client retries, never a loss.
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
 * user), used by one delivery at a time (porter_deliver runs them one after the other, so no
 * lock), reopened after a PostgreSQL connection breaks, closed by fini. The message and its
 * copies belong to the core.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    sqlite3 *sqlite;
    PGconn *pg;
};

static void *sql_init(porter_args *a)
{
    struct queue_sql *q = calloc(1, sizeof *q);
    const char *db = porter_arg_string(a, "db", "sqlite:queue.sqlite");
    q->postgresql = strncmp(db, "postgresql:", 11) == 0;
    if (q->postgresql)
        snprintf(q->target, sizeof q->target, "%s", db + 11);
    else if (strncmp(db, "sqlite:", 7) == 0 && db[7] != '\0')
        snprintf(q->target, sizeof q->target, "%s", porter_arg_resolve(a, db + 7));
    else
        porter_arg_error(a, "db: '%s' is neither sqlite:PATH nor postgresql:CONNINFO", db);
    return q;
}

static void sql_fini(void *state)
{
    struct queue_sql *q = state;
    sqlite3_close(q->sqlite);
    PQfinish(q->pg);
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
            snprintf(error, size, "postgresql: %s", PQerrorMessage(q->pg));
        PQclear(result);
        return rc;
    }
    if (q->sqlite != NULL)
        return 0;
    if (sqlite3_open(q->target, &q->sqlite) != SQLITE_OK || sqlite3_busy_timeout(q->sqlite, 5000) ||
        sqlite3_exec(q->sqlite, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", NULL, NULL, NULL) ||
        sqlite3_exec(q->sqlite, sql_create, NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(error, size, "sqlite: %s", sqlite3_errmsg(q->sqlite));
        sqlite3_close(q->sqlite);
        q->sqlite = NULL;
        return -1;
    }
    return 0;
}

/* sql_deliver - on a pool thread, one at a time: the INSERT (it commits before it returns) */
static int sql_deliver(void *state, struct porter_delivery *d)
{
    struct queue_sql *q = state;
    char received[24];
    snprintf(received, sizeof received, "%lld", (long long)d->received);
    const char *values[7] = {d->queue_id, d->message_id, d->mail_from, d->recipient_list,
                             d->message.headers, d->body, received};
    const int lengths[7] = {0, 0, 0, 0, (int)d->message.headers_length, (int)d->body_length, 0};
    if (d->body_length >= INT_MAX || d->message.headers_length >= INT_MAX) {
        snprintf(d->error, sizeof d->error, "the message is too large for one row");
        return -1;
    }
    if (sql_connect(q, d->error, sizeof d->error) != 0)
        return -1;
    if (q->postgresql) {
        PGresult *result = PQexecParams(q->pg, sql_insert, 7, NULL, values, lengths, sql_binary, 0);
        int rc = PQresultStatus(result) == PGRES_COMMAND_OK ? 0 : -1;
        if (rc != 0)
            snprintf(d->error, sizeof d->error, "postgresql: %s", PQerrorMessage(q->pg));
        PQclear(result);
        return rc;
    }
    sqlite3_stmt *insert = NULL;
    int rc = sqlite3_prepare_v2(q->sqlite, sql_insert, -1, &insert, NULL);
    for (int i = 0; i < 7 && rc == SQLITE_OK; i++)
        rc = sql_binary[i] ? sqlite3_bind_blob(insert, i + 1, values[i], lengths[i], SQLITE_STATIC)
                           : sqlite3_bind_text(insert, i + 1, values[i], -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && sqlite3_step(insert) != SQLITE_DONE)
        rc = SQLITE_ERROR;
    if (rc != SQLITE_OK)
        snprintf(d->error, sizeof d->error, "sqlite: %s", sqlite3_errmsg(q->sqlite));
    sqlite3_finalize(insert);
    return rc == SQLITE_OK ? 0 : -1;
}

static int sql_queue(porter_session *s, void *state)
{
    return porter_deliver(s, sql_deliver, state, "Queued!");
}

PORTER_PLUGIN(.name = "queue_sql",
              .description = "Stores each accepted message as a row of an SQLite or PostgreSQL "
                             "table. The table is mails (queue_id, message_id, sender, "
                             "recipients, header, body, received), created if missing; rows are "
                             "written on the thread pool. The client gets 250 2.0.0 Queued! "
                             "QUEUEID only after the row is committed, and 451 4.3.0 on any "
                             "database error, so it keeps the message.",
              .arguments = PORTER_ARGUMENTS(
                  {"db", "sqlite:queue.sqlite",
                   "sqlite:PATH (relative to the configuration directory; created by the worker "
                   "on the first message) or postgresql:CONNINFO, in quotes when it has blanks: "
                   "db=\"postgresql:host=/run/postgresql dbname=mail\"."}),
              .init = sql_init, .fini = sql_fini,
              .hooks[PORTER_HOOK_QUEUE] = sql_queue);
