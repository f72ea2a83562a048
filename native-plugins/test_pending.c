/*
 * test_pending - a plugin for Porter's own tests of asynchronous verdicts. Not for production.
 *
 * At the chosen hook it answers PENDING and then, depending on mode:
 *   timer     porter_timer(delay), then the verdict
 *   blocking  porter_run_blocking(sleep delay), then the verdict
 *   resume    porter_suspend and a libevent timer of its own that calls porter_resume twice
 *             (the second answer must be refused by the core)
 *   never     nothing: the core's plugin deadline must answer 451
 *   message   (queue hook) porter_run_blocking that sleeps delay, then reads the whole message
 *             from its pool thread: with hook_timeout < delay the core must keep the message
 *             alive until the job ends (a sanitizer build catches it if not)
 * Arguments: hook=NAME (rcpt, mail, helo, data_post, queue, connect; default rcpt),
 *            mode=timer|blocking|resume|never, delay=SECONDS (default 0.1),
 *            verdict=declined|ok|deny|denysoft (default ok).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <porter/plugin.h>

static const int test_verdicts[] = {PORTER_OK, PORTER_DECLINED, PORTER_DENY, PORTER_DENYSOFT};
enum test_hook { TEST_RCPT, TEST_MAIL, TEST_HELO, TEST_DATA_POST, TEST_QUEUE, TEST_CONNECT };

struct test_pending {
    int hook;
    int mode;
    double delay;
    int verdict;
};

/* A self-made wait for mode=resume. */
struct test_resume {
    porter_handle handle;
    int verdict;
    struct event *timer;
};

static void *test_init(porter_args *a)
{
    struct test_pending *t = calloc(1, sizeof *t);
    t->hook = porter_arg_choice(a, "hook", "rcpt|mail|helo|data_post|queue|connect");
    t->mode = porter_arg_choice(a, "mode", "timer|blocking|resume|never|message");
    t->delay = porter_arg_seconds(a, "delay", 0.1);
    t->verdict = test_verdicts[porter_arg_choice(a, "verdict", "ok|declined|deny|denysoft")];
    return t;
}

static void test_fini(void *state)
{
    free(state);
}

static int test_done(porter_session *s, void *arg, int result)
{
    struct test_pending *t = arg;
    if (s == NULL)
        return PORTER_DECLINED;
    porter_log(s, PORTER_LOG_INFO, "event=test_pending_answer result=%d", result);
    return porter_reply(s, t->verdict, 0, NULL, "test_pending answered");
}

static int test_sleep(void *arg)
{
    const struct test_pending *t = arg;
    struct timespec ts = {(time_t)t->delay, (long)((t->delay - (double)(time_t)t->delay) * 1e9)};
    nanosleep(&ts, NULL);
    return 7;
}

/* One read of the message on a pool thread (mode=message). */
struct test_message_job {
    const struct test_pending *t;
    struct porter_message message;
};

static int test_read_message(void *arg)
{
    struct test_message_job *job = arg;
    test_sleep((void *)job->t);
    int fd = open("/dev/null", O_WRONLY);
    int rc = porter_message_write(&job->message, fd);
    close(fd);
    return rc;
}

static int test_message_done(porter_session *s, void *arg, int result)
{
    struct test_message_job *job = arg;
    const struct test_pending *t = job->t;
    free(job);
    if (s == NULL)
        return PORTER_DECLINED;
    return porter_reply(s, result == 0 ? t->verdict : PORTER_DENYSOFT, 0, NULL, "message read: %d", result);
}

/* test_resume_fire - answer twice; the second answer must be refused */
static void test_resume_fire(evutil_socket_t fd, short what, void *arg)
{
    struct test_resume *r = arg;
    int first = porter_resume(r->handle, r->verdict, 0, NULL, "resumed");
    int second = porter_resume(r->handle, PORTER_DENY, 0, NULL, "second answer");
    if (first == 0 && second != -1)
        abort(); /* the core accepted a second answer: make the test fail loudly */
    event_free(r->timer);
    free(r);
}

static int test_hook(porter_session *s, struct test_pending *t, enum test_hook hook)
{
    if (t->hook != (int)hook)
        return PORTER_DECLINED;
    switch (t->mode) {
    case 0:
        return porter_timer(s, t->delay, test_done, t);
    case 1:
        return porter_run_blocking(s, test_sleep, test_done, t);
    case 2: {
        struct test_resume *r = calloc(1, sizeof *r);
        r->handle = porter_suspend(s);
        r->verdict = t->verdict;
        r->timer = evtimer_new(porter_event_base(s), test_resume_fire, r);
        struct timeval tv = {(time_t)t->delay, (suseconds_t)((t->delay - (double)(time_t)t->delay) * 1e6)};
        evtimer_add(r->timer, &tv);
        return PORTER_PENDING;
    }
    case 4: {
        struct test_message_job *job = calloc(1, sizeof *job);
        job->t = t;
        if (porter_message(s, &job->message) != 0) {
            free(job);
            return porter_reply(s, PORTER_DENYSOFT, 0, NULL, "no message at this hook");
        }
        return porter_run_blocking(s, test_read_message, test_message_done, job);
    }
    default:
        return PORTER_PENDING;
    }
}

static int test_rcpt(porter_session *s, void *t) { return test_hook(s, t, TEST_RCPT); }
static int test_mail(porter_session *s, void *t) { return test_hook(s, t, TEST_MAIL); }
static int test_helo(porter_session *s, void *t) { return test_hook(s, t, TEST_HELO); }
static int test_data_post(porter_session *s, void *t) { return test_hook(s, t, TEST_DATA_POST); }
static int test_queue(porter_session *s, void *t) { return test_hook(s, t, TEST_QUEUE); }
static int test_connect(porter_session *s, void *t) { return test_hook(s, t, TEST_CONNECT); }

PORTER_PLUGIN(.name = "test_pending",
              .description = "Porter's own tests of asynchronous verdicts. Not for production, "
                             "and not installed.",
              .arguments = PORTER_ARGUMENTS(
                  {"hook", "rcpt", "The hook: rcpt, mail, helo, data_post, queue or connect."},
                  {"mode", "timer", "timer, blocking, resume, never or message."},
                  {"delay", "0.1", "Seconds before the verdict."},
                  {"verdict", "ok", "ok, declined, deny or denysoft."}),
              .init = test_init, .fini = test_fini,
              .hooks[PORTER_HOOK_RCPT] = test_rcpt, .hooks[PORTER_HOOK_MAIL] = test_mail,
              .hooks[PORTER_HOOK_HELO] = test_helo, .hooks[PORTER_HOOK_EHLO] = test_helo,
              .hooks[PORTER_HOOK_DATA_POST] = test_data_post, .hooks[PORTER_HOOK_QUEUE] = test_queue,
              .hooks[PORTER_HOOK_CONNECT] = test_connect);
