/*
 * test_store - a plugin for Porter's own tests of the store API. Not for production.
 *
 * It answers one made-up command (through the unrecognized_command hook), so that a test can
 * drive the store over SMTP and read each outcome in the reply:
 *   XSTORE GET KEY                 XSTORE SET KEY VALUE [TTL]
 *   XSTORE INCR KEY BY [TTL]       XSTORE DEL KEY
 *   XSTORE BGSET KEY VALUE [TTL]   (in the background: answered at once)
 *   XSTORE INCRS KEY1 [KEY2 [KEY3 [KEY4]]]   (each by 1, ttl 60, in one porter_store_increments)
 *   XSTORE BGINCRS KEY1 [KEY2 [KEY3 [KEY4]]] (the same with porter_store_increments_background:
 *                                  answered "queued" at once; one at a time per connection)
 *   XSTORE BGWAIT                  (the last BGINCRS's outcome, waiting for it if need be)
 * Reply: "250 status=ok|not_found|error value=V count=N ttl=T error=..." (TTL: seconds, -1
 * none); INCRS and BGWAIT add "counts=N1,N2,..." (-1 for a counter that failed). A BGINCRS
 * outcome is also logged (event=test_store_counted keys=KEY1,... counts=...) when it comes.
 * Other commands are declined. A BGINCRS's memory is the connection's porter_data, freed by
 * the callback or, when the client left first, by the disconnect hook.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <porter/plugin.h>

/* test_store_answer - the outcome as one reply line */
static int test_store_answer(porter_session *s, void *arg, const struct porter_store_result *r)
{
    if (s == NULL)
        return PORTER_DECLINED;
    return porter_reply(s, PORTER_DONE, 250, "2.0.0", "status=%s value=%s count=%lld ttl=%.3f "
                        "error=%s", porter_store_status_name(r->status),
                        r->value != NULL ? r->value : "-", r->count, r->ttl,
                        r->error != NULL ? r->error : "-");
}

/* XSTORE INCRS in flight: its counters and their keys (freed by the callback) */
struct test_store_counts {
    struct porter_store_count counts[4];
    char keys[4][128];
    size_t count;
};

/* XSTORE BGINCRS in flight, then its outcome (the connection's porter_data) */
struct test_store_background {
    struct test_store_counts t;
    bool answered;
    bool waiting;                   /* a BGWAIT is suspended on handle */
    porter_handle handle;
    char outcome[256];
};

/* test_store_outcome - the reply text of an increments call: status, count, counts, error */
static void test_store_outcome(const struct test_store_counts *t,
                               const struct porter_store_result *r, char *out, size_t size)
{
    char counts[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < t->count; i++)
        used += (size_t)snprintf(counts + used, sizeof counts - used, "%s%lld", i ? "," : "",
                                 t->counts[i].status == PORTER_STORE_OK ? t->counts[i].count : -1);
    snprintf(out, size, "status=%s count=%lld counts=%s error=%s",
             porter_store_status_name(r->status), r->count, counts,
             r->error != NULL ? r->error : "-");
}

static int test_store_counted(porter_session *s, void *arg, const struct porter_store_result *r)
{
    struct test_store_counts *t = arg;
    char outcome[256];
    if (s != NULL)
        test_store_outcome(t, r, outcome, sizeof outcome);
    free(t);
    if (s == NULL)
        return PORTER_DECLINED;
    return porter_reply(s, PORTER_DONE, 250, "2.0.0", "%s", outcome);
}

/* test_store_counted_later - a BGINCRS's outcome: logged, kept for BGWAIT, or given to the
 * BGWAIT that waits */
static void test_store_counted_later(porter_session *s, void *arg,
                                     const struct porter_store_result *r)
{
    struct test_store_background *b = arg;
    test_store_outcome(&b->t, r, b->outcome, sizeof b->outcome);
    char keys[160] = "";
    size_t used = 0;
    for (size_t i = 0; i < b->t.count; i++)
        used += (size_t)snprintf(keys + used, sizeof keys - used, "%s%s", i ? "," : "",
                                 b->t.keys[i]);
    porter_log(s, PORTER_LOG_INFO, "event=test_store_counted keys=%s %s", keys, b->outcome);
    b->answered = true;
    if (b->waiting) {
        b->waiting = false;
        porter_resume(b->handle, PORTER_DONE, 250, "2.0.0", "%s", b->outcome);
    }
}

/* test_store_background - XSTORE BGINCRS KEYS... and XSTORE BGWAIT */
static int test_store_background(porter_session *s, char **words, size_t count)
{
    struct test_store_background *b = porter_data_get(s);
    if (count == 2) { /* BGWAIT */
        if (b == NULL)
            return porter_reply(s, PORTER_DONE, 503, "5.5.1", "no BGINCRS");
        if (b->answered)
            return porter_reply(s, PORTER_DONE, 250, "2.0.0", "%s", b->outcome);
        b->handle = porter_suspend(s);
        b->waiting = true;
        return PORTER_PENDING;
    }
    if (b != NULL && !b->answered)
        return porter_reply(s, PORTER_DONE, 451, "4.5.0", "a BGINCRS is still counting");
    free(b);
    b = calloc(1, sizeof *b);
    porter_data_set(s, b);
    if (b == NULL)
        return porter_reply(s, PORTER_DONE, 451, "4.3.0", "out of memory");
    for (size_t i = 2; i < count && b->t.count < 4; i++, b->t.count++) {
        snprintf(b->t.keys[b->t.count], sizeof b->t.keys[b->t.count], "%s", words[i]);
        b->t.counts[b->t.count] = (struct porter_store_count){.key = b->t.keys[b->t.count],
                                                             .by = 1, .ttl = 60};
    }
    if (porter_store_increments_background(s, b->t.counts, b->t.count, test_store_counted_later,
                                           b) != 0)
        return porter_reply(s, PORTER_DONE, 451, "4.3.0", "not started");
    return porter_reply(s, PORTER_DONE, 250, "2.0.0", "queued");
}

static int test_store_disconnect(porter_session *s, void *state)
{
    free(porter_data_get(s));
    porter_data_set(s, NULL);
    return PORTER_DECLINED;
}

static int test_store_command(porter_session *s, void *state)
{
    char line[512];
    snprintf(line, sizeof line, "%s", porter_hook_argument(s));
    char *words[6] = {0};
    size_t count = 0;
    char *saveptr = NULL;
    for (char *w = strtok_r(line, " \r\n", &saveptr); w != NULL && count < 6;
         w = strtok_r(NULL, " \r\n", &saveptr))
        words[count++] = w;
    if (count == 2 && strcasecmp(words[0], "XSTORE") == 0 && strcasecmp(words[1], "BGWAIT") == 0)
        return test_store_background(s, words, count);
    if (count < 3 || strcasecmp(words[0], "XSTORE") != 0)
        return PORTER_DECLINED;
    const char *op = words[1], *key = words[2];
    if (strcasecmp(op, "BGINCRS") == 0)
        return test_store_background(s, words, count);
    if (strcasecmp(op, "GET") == 0)
        return porter_store_get(s, key, test_store_answer, NULL);
    if (strcasecmp(op, "DEL") == 0)
        return porter_store_delete(s, key, test_store_answer, NULL);
    if (strcasecmp(op, "SET") == 0 && count >= 4)
        return porter_store_set(s, key, words[3], count > 4 ? atof(words[4]) : 0,
                                test_store_answer, NULL);
    if (strcasecmp(op, "INCR") == 0 && count >= 4)
        return porter_store_increment(s, key, atoll(words[3]), count > 4 ? atof(words[4]) : 0,
                                      test_store_answer, NULL);
    if (strcasecmp(op, "INCRS") == 0) {
        struct test_store_counts *t = calloc(1, sizeof *t);
        if (t == NULL)
            return porter_reply(s, PORTER_DONE, 451, "4.3.0", "out of memory");
        for (size_t i = 2; i < count && t->count < 4; i++, t->count++) {
            snprintf(t->keys[t->count], sizeof t->keys[t->count], "%s", words[i]);
            t->counts[t->count] = (struct porter_store_count){.key = t->keys[t->count], .by = 1,
                                                             .ttl = 60};
        }
        return porter_store_increments(s, t->counts, t->count, test_store_counted, t);
    }
    if (strcasecmp(op, "BGSET") == 0 && count >= 4) {
        porter_store_set(s, key, words[3], count > 4 ? atof(words[4]) : 0, NULL, NULL);
        return porter_reply(s, PORTER_DONE, 250, "2.0.0", "queued");
    }
    return porter_reply(s, PORTER_DONE, 501, "5.5.4", "XSTORE GET|SET|INCR|INCRS|BGINCRS|DEL|BGSET KEY ..., "
                        "XSTORE BGWAIT");
}

PORTER_PLUGIN(.name = "test_store",
              .description = "Test only: drives the store API with an XSTORE command.",
              .hooks[PORTER_HOOK_UNRECOGNIZED_COMMAND] = test_store_command,
              .hooks[PORTER_HOOK_DISCONNECT] = test_store_disconnect);
