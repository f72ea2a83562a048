/*
 * store_lmdb.c - the store's embedded backend: one LMDB environment in SPOOL_DIR/store,
 * shared by the worker processes of one daemon (each opens it after the fork, as LMDB wants).
 *
 * Records are an 8-byte expiry and the value (store_record_encode); a counter is its decimal
 * text, so a get of a counter reads the same on LMDB and Redis. Requests run on the loop
 * thread and finish at once: a read is a lock-free look into the map, and a write changes a
 * few pages of the shared map under LMDB's writer lock, without a system call or an fsync
 * (MDB_WRITEMAP | MDB_NOSYNC: a system crash may lose the last writes; greylisting and
 * counters can afford that, mail never goes through here). The sweep (expired keys removed in batches, then one sync)
 * runs on the worker's thread pool every store_sweep_interval seconds.
 * Fatal: out of memory. A store that cannot be opened, or is full, fails requests.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <lmdb.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "memory.h"
#include "store.h"
#include "thread_pool.h"

#define STORE_LMDB_SWEEP_BATCH 1000  /* records looked at per write transaction */
/* Writes go straight into the shared map and are never synced by a commit (the sweep syncs);
 * readers are not tied to threads (the loop and the pool both read). */
#define STORE_LMDB_FLAGS (MDB_NOSYNC | MDB_WRITEMAP | MDB_MAPASYNC | MDB_NOTLS)

struct store_lmdb {
    struct store *store;
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *reader;                 /* a reset read transaction, renewed per get */
    struct thread_pool *pool;
    struct event *sweep_timer;
    double sweep_interval;           /* store_sweep_interval */
    bool sweeping;                   /* a sweep job is on the pool */
    unsigned long long swept;        /* records the last sweep removed (loop reads after it) */
    int sweep_error;
};

void store_record_encode(unsigned char *out, uint64_t expires_ms, const char *value,
                         size_t length)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (unsigned char)(expires_ms & 0xff);
        expires_ms >>= 8;
    }
    if (length > 0)
        memcpy(out + STORE_RECORD_HEADER, value, length);
}

int store_record_decode(const unsigned char *data, size_t length, uint64_t *expires_ms,
                        const char **value, size_t *value_length)
{
    if (length < STORE_RECORD_HEADER)
        return -1;
    uint64_t expires = 0;
    for (int i = 0; i < 8; i++)
        expires = expires << 8 | data[i];
    *expires_ms = expires;
    *value = (const char *)data + STORE_RECORD_HEADER;
    *value_length = length - STORE_RECORD_HEADER;
    return 0;
}

int store_counter_parse(const char *text, size_t length, long long *out)
{
    if (length == 0 || length > 20)
        return -1;
    char digits[24];
    memcpy(digits, text, length);
    digits[length] = '\0';
    char *end = NULL;
    errno = 0;
    long long value = strtoll(digits, &end, 10);
    if (errno != 0 || end != digits + length || !(digits[0] == '-' || (digits[0] >= '0' &&
                                                                       digits[0] <= '9')))
        return -1;
    *out = value;
    return 0;
}

/* lmdb_expires - the expiry for ttl seconds from now (0: never) */
static uint64_t lmdb_expires(double ttl, uint64_t now)
{
    return ttl > 0 ? now + (uint64_t)(ttl * 1000.0 + 0.5) : 0;
}

/* lmdb_write's refusals of an increment, beside LMDB's own (positive) error codes */
#define LMDB_NOT_A_COUNTER (-1)
#define LMDB_OVERFLOW (-2)

/* lmdb_put - write one record in txn; 0 or an LMDB error */
static int lmdb_put(struct store_lmdb *l, MDB_txn *txn, const struct store_request *r,
                    uint64_t expires, const char *value, size_t length)
{
    MDB_val key = {r->key_length, r->key};
    MDB_val data = {STORE_RECORD_HEADER + length, NULL};
    int rc = mdb_put(txn, l->dbi, &key, &data, MDB_RESERVE);
    if (rc == 0)
        store_record_encode(data.mv_data, expires, value, length);
    return rc;
}

/* lmdb_get - a read: the value and its ttl, NOT_FOUND when absent or expired */
static int lmdb_get(struct store_lmdb *l, struct store_request *r)
{
    int rc = l->reader != NULL ? mdb_txn_renew(l->reader)
                               : mdb_txn_begin(l->env, NULL, MDB_RDONLY, &l->reader);
    if (rc != 0)
        return rc;
    MDB_val key = {r->key_length, r->key}, data;
    uint64_t expires, now = store_now_ms();
    const char *value;
    size_t length;
    rc = mdb_get(l->reader, l->dbi, &key, &data);
    if (rc == 0 && store_record_decode(data.mv_data, data.mv_size, &expires, &value, &length) == 0 &&
        (expires == 0 || expires > now)) {
        r->result.status = PORTER_STORE_OK;
        store_request_set_value(r, value, length);
        r->result.ttl = store_ttl_seconds(expires, now);
    } else {
        r->result.status = PORTER_STORE_NOT_FOUND;
        rc = rc == MDB_NOTFOUND ? 0 : rc;
    }
    mdb_txn_reset(l->reader);
    return rc;
}

/* lmdb_write - a set, increment or delete in one write transaction */
static int lmdb_write(struct store_lmdb *l, struct store_request *r)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    MDB_val key = {r->key_length, r->key}, data;
    uint64_t now = store_now_ms();
    switch (r->operation) {
    case STORE_SET:
        rc = lmdb_put(l, txn, r, lmdb_expires(r->ttl, now), r->value, r->value_length);
        r->result.ttl = r->ttl > 0 ? r->ttl : -1;
        break;
    case STORE_INCREMENT: {
        long long count = 0;
        uint64_t expires = 0;
        const char *value;
        size_t length;
        rc = mdb_get(txn, l->dbi, &key, &data);
        bool live = rc == 0 &&
                    store_record_decode(data.mv_data, data.mv_size, &expires, &value, &length) == 0 &&
                    (expires == 0 || expires > now);
        if (rc != 0 && rc != MDB_NOTFOUND)
            break;
        rc = 0;
        if (live && store_counter_parse(value, length, &count) != 0) {
            rc = LMDB_NOT_A_COUNTER;
            break;
        }
        if (!live)
            expires = lmdb_expires(r->ttl, now);
        if ((r->by > 0 && count > LLONG_MAX - r->by) || (r->by < 0 && count < LLONG_MIN - r->by)) {
            rc = LMDB_OVERFLOW;
            break;
        }
        count += r->by;
        char text[24];
        int written = snprintf(text, sizeof text, "%lld", count);
        rc = lmdb_put(l, txn, r, expires, text, (size_t)written);
        r->result.count = count;
        r->result.ttl = store_ttl_seconds(expires, now);
        break;
    }
    case STORE_DELETE:
        rc = mdb_del(txn, l->dbi, &key, NULL);
        r->result.count = rc == 0;
        rc = rc == MDB_NOTFOUND ? 0 : rc;
        break;
    default:
        rc = EINVAL;
        break;
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    r->result.status = PORTER_STORE_OK;
    return mdb_txn_commit(txn);
}

static void lmdb_submit(void *backend, struct store_request *r)
{
    struct store_lmdb *l = backend;
    int rc = r->operation == STORE_GET ? lmdb_get(l, r) : lmdb_write(l, r);
    if (rc == LMDB_NOT_A_COUNTER)
        store_request_fail(r, "the value is not a counter");
    else if (rc == LMDB_OVERFLOW)
        store_request_fail(r, "the counter would overflow");
    else if (rc != 0)
        store_request_fail(r, "LMDB: %s%s", mdb_strerror(rc),
                           rc == MDB_MAP_FULL ? " (raise store_size)" : "");
    else
        store_request_finish(r);
}

/* ---------------------------------------------------------------- the sweep */

/* lmdb_sweep_batch - in one write transaction: look at up to a batch of records from resume
 * (the key after the last batch's last one; length 0: the start), remove the expired ones, and
 * leave in resume the key to go on from (length 0: the end); 0 or an LMDB error */
static int lmdb_sweep_batch(struct store_lmdb *l, unsigned char *resume, size_t *resume_length)
{
    MDB_txn *txn;
    MDB_cursor *cursor;
    int rc = mdb_txn_begin(l->env, NULL, 0, &txn);
    if (rc != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, l->dbi, &cursor)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    MDB_val key = {*resume_length, resume}, data;
    int step = mdb_cursor_get(cursor, &key, &data, *resume_length > 0 ? MDB_SET_RANGE : MDB_FIRST);
    uint64_t now = store_now_ms();
    MDB_val *expired = xcalloc(STORE_LMDB_SWEEP_BATCH, sizeof *expired);
    size_t expired_count = 0;
    for (int seen = 0; step == 0 && seen < STORE_LMDB_SWEEP_BATCH; seen++) {
        uint64_t expires;
        const char *value;
        size_t length;
        if (store_record_decode(data.mv_data, data.mv_size, &expires, &value, &length) != 0 ||
            (expires != 0 && expires <= now)) {
            expired[expired_count].mv_size = key.mv_size;
            expired[expired_count].mv_data = xmalloc(key.mv_size + 1);
            memcpy(expired[expired_count++].mv_data, key.mv_data, key.mv_size);
        }
        step = mdb_cursor_get(cursor, &key, &data, MDB_NEXT);
    }
    if (step == 0 && key.mv_size <= STORE_KEY_MAX + 32) {
        memcpy(resume, key.mv_data, key.mv_size);
        *resume_length = key.mv_size;
    } else {
        *resume_length = 0;
    }
    mdb_cursor_close(cursor);
    for (size_t i = 0; i < expired_count; i++) {
        if (rc == 0 && (rc = mdb_del(txn, l->dbi, &expired[i], NULL)) == MDB_NOTFOUND)
            rc = 0;
        free(expired[i].mv_data);
    }
    free(expired);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    l->swept += expired_count;
    return mdb_txn_commit(txn);
}

/* lmdb_sweep_work - on a pool thread: free the reader slots of processes that died (a killed
 * worker's slot would keep old pages from reuse), remove expired records, a batch per
 * transaction (the loop's writes wait at most one batch), then write the map to disk
 * (MDB_NOSYNC leaves that to us); 0 or an LMDB error */
static int lmdb_sweep_work(void *arg)
{
    struct store_lmdb *l = arg;
    unsigned char resume[STORE_KEY_MAX + 32];
    size_t resume_length = 0;
    int rc, dead = 0;
    l->swept = 0;
    mdb_reader_check(l->env, &dead);
    do
        rc = lmdb_sweep_batch(l, resume, &resume_length);
    while (rc == 0 && resume_length > 0);
    if (rc == 0)
        rc = mdb_env_sync(l->env, 1);
    return rc;
}

static void lmdb_sweep_schedule(struct store_lmdb *l);

/* lmdb_sweep_done - back on the loop: log, and sweep again later */
static void lmdb_sweep_done(void *arg, int result)
{
    struct store_lmdb *l = arg;
    l->sweeping = false;
    if (result != 0)
        log_message(PORTER_LOG_WARNING, NULL, "event=store_error store=lmdb operation=sweep "
                    "error=\"%s\"", mdb_strerror(result));
    else if (l->swept > 0)
        log_message(PORTER_LOG_DEBUG, NULL, "event=store_sweep store=lmdb removed=%llu", l->swept);
    lmdb_sweep_schedule(l);
}

static void lmdb_sweep_start(evutil_socket_t fd, short what, void *arg)
{
    struct store_lmdb *l = arg;
    if (l->sweeping)
        return;
    l->sweeping = true;
    thread_pool_submit(l->pool, lmdb_sweep_work, l, lmdb_sweep_done, l);
}

static void lmdb_sweep_schedule(struct store_lmdb *l)
{
    struct timeval tv = clock_timeval(l->sweep_interval);
    evtimer_add(l->sweep_timer, &tv);
}

/* ---------------------------------------------------------------- open and close */

static void lmdb_close(void *backend)
{
    struct store_lmdb *l = backend;
    if (l == NULL)
        return;
    if (l->sweep_timer != NULL)
        event_free(l->sweep_timer);
    if (l->reader != NULL)
        mdb_txn_abort(l->reader);
    if (l->env != NULL) {
        mdb_env_sync(l->env, 1);
        mdb_env_close(l->env);
    }
    free(l);
}

static void *lmdb_open(struct store *store, const struct store_address *address,
                       const struct porter_config *config, struct event_base *base,
                       struct thread_pool *pool)
{
    struct store_lmdb *l = xcalloc(1, sizeof *l);
    l->store = store;
    l->pool = pool;
    l->sweep_interval = config->store_sweep_interval;
    char *spool = config_path(config, config->spool_dir);
    char *directory = xasprintf("%s/store", spool);
    free(spool);
    MDB_txn *txn;
    int rc = 0;
    const char *step = "mkdir";
    if (mkdir(directory, 0700) != 0 && errno != EEXIST) {
        rc = errno;
        goto failed;
    }
    step = "mdb_env_create";
    if ((rc = mdb_env_create(&l->env)) != 0)
        goto failed;
    step = "mdb_env_set_mapsize";
    if ((rc = mdb_env_set_mapsize(l->env, (size_t)config->store_size)) != 0)
        goto failed;
    step = "mdb_env_open";
    if ((rc = mdb_env_open(l->env, directory, STORE_LMDB_FLAGS, 0600)) != 0)
        goto failed;
    step = "mdb_dbi_open";
    if ((rc = mdb_txn_begin(l->env, NULL, 0, &txn)) != 0)
        goto failed;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &l->dbi)) != 0) {
        mdb_txn_abort(txn);
        goto failed;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto failed;
    l->sweep_timer = evtimer_new(base, lmdb_sweep_start, l);
    if (l->sweep_timer == NULL)
        abort();
    lmdb_sweep_schedule(l);
    log_message(PORTER_LOG_DEBUG, NULL, "event=store_open store=lmdb path=%s", directory);
    free(directory);
    return l;
failed:
    log_message(PORTER_LOG_ERR, NULL, "event=store_error store=lmdb path=%s step=%s error=\"%s\"",
                directory, step, rc > 0 ? strerror(rc) : mdb_strerror(rc));
    free(directory);
    lmdb_close(l);
    return NULL;
}

const struct store_backend store_lmdb_backend = {
    .name = "lmdb",
    .remote = false,
    .open = lmdb_open,
    .submit = lmdb_submit,
    .close = lmdb_close,
};
