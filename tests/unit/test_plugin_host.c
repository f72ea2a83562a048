/*
 * test_plugin_host.c - unit tests of plugin_host.c: loading a registry (errors with file and
 * line, unknown arguments, missing plugins), chain order and DECLINED fall-through, PENDING
 * answered by timer, by blocking job and by handle (a second answer is refused), a plugin
 * that never answers (DENYSOFT after its deadline), a deadline moved with
 * hook_chain_wait_extend, and late answers after cancellation.
 * Real plugins from native-plugins/ are loaded; the session is a bare struct on a real event
 * loop, without a socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config.h"
#include "memory.h"
#include "plugin_host.h"
#include "session.h"
#include "worker.h"

static char directory[256];
static int chain_rc = -1;
static int chain_calls;

/* write_file - a configuration file in the test directory */
static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* load - porter.conf plus the given plugins file; the registry or NULL (errors kept) */
static struct plugin_registry *load(const char *plugins, struct porter_config **config,
                                    struct config_error_list *errors)
{
    const char *top = getenv("top_builddir");
    char conf[1024];
    snprintf(conf, sizeof conf, "hostname = unit.test\nplugin_dir = %s/native-plugins\n"
             "spool_dir = %s\nplugin_timeout = 0.3\n", top ? top : ".", directory);
    write_file("porter.conf", conf);
    write_file("plugins", plugins);
    write_file("rcpthosts", "example.com\n");
    *config = config_load(directory, errors);
    assert_non_null(*config);
    return plugin_registry_load(*config, errors);
}

/* fake_session - a session without a socket, registered with the worker */
static struct porter_session *fake_session(struct worker *w, const struct porter_config *config,
                                           struct plugin_registry *registry)
{
    struct porter_session *s = xcalloc(1, sizeof *s);
    s->worker = w;
    s->id = worker_next_session_id(w);
    snprintf(s->id_string, sizeof s->id_string, "%llX", (unsigned long long)s->id);
    s->base = worker_event_base(w);
    s->config = config;
    s->plugins = registry;
    plugin_registry_retain(registry);
    s->plugin_data = xcalloc(registry->count + 1, sizeof *s->plugin_data);
    s->helo = xstrdup("unit.example");
    s->client_name = xstrdup("unknown");
    snprintf(s->client_ip, sizeof s->client_ip, "192.0.2.1");
    s->state = SESSION_STATE_MAIL;
    worker_add_session(w, s);
    return s;
}

static void chain_done(struct porter_session *s, int rc)
{
    chain_rc = rc;
    chain_calls++;
    event_base_loopbreak(s->base);
}

static void guard_tick(evutil_socket_t fd, short what, void *arg)
{
}

/* run_until_done - dispatch the loop until the chain answers (bounded: 5 s) */
static void run_until_done(struct porter_session *s)
{
    /* A timer that fires every 100 ms keeps EVLOOP_ONCE from sleeping forever. */
    struct event *guard = event_new(s->base, -1, EV_PERSIST, guard_tick, NULL);
    struct timeval tick = {0, 100000};
    evtimer_add(guard, &tick);
    struct timeval start, now;
    gettimeofday(&start, NULL);
    while (chain_calls == 0) {
        event_base_loop(s->base, EVLOOP_ONCE);
        gettimeofday(&now, NULL);
        if (now.tv_sec - start.tv_sec > 5)
            fail_msg("the chain did not answer within 5 s");
    }
    event_free(guard);
}

static int setup(void **state)
{
    snprintf(directory, sizeof directory, "/tmp/porter-unit-XXXXXX");
    assert_non_null(mkdtemp(directory));
    return 0;
}

static int teardown(void **state)
{
    char command[600];
    snprintf(command, sizeof command, "rm -rf '%s'", directory);
    return system(command) == 0 ? 0 : -1;
}

static void test_load_errors(void **state)
{
    struct porter_config *config;
    struct config_error_list errors = {0};
    struct plugin_registry *registry =
        load("rcpt_ok rcpthosts=rcpthosts bogus=1\nno_such_plugin\ntest_pending mode=sometimes\n",
             &config, &errors);
    assert_null(registry);
    const char *wanted[] = {"plugins:1: rcpt_ok", "bogus", "plugins:2: no_such_plugin", "plugins:3",
                            "mode"};
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        bool found = false;
        for (size_t e = 0; e < errors.count; e++)
            found |= strstr(errors.messages[e], wanted[i]) != NULL;
        if (!found)
            fail_msg("no error mentions \"%s\" (got %zu errors, first: %s)", wanted[i], errors.count,
                     errors.count ? errors.messages[0] : "none");
    }
    config_errors_clear(&errors);
    config_free(config);
}

static void test_chain_order_and_declined(void **state)
{
    struct porter_config *config;
    struct config_error_list errors = {0};
    struct plugin_registry *registry =
        load("test_pending hook=mail\nrcpt_ok rcpthosts=rcpthosts\nqueue_discard\n", &config, &errors);
    assert_non_null(registry);
    assert_int_equal(registry->count, 3);
    assert_int_equal(registry->by_hook_count[PORTER_HOOK_RCPT], 2);
    assert_int_equal(registry->by_hook_count[PORTER_HOOK_QUEUE], 2);
    assert_int_equal(registry->by_hook_count[PORTER_HOOK_VRFY], 0);
    struct worker *w = worker_create(config, registry, true);
    struct porter_session *s = fake_session(w, config, registry);
    /* No plugin listens to vrfy: the chain answers DECLINED at once. */
    chain_calls = 0;
    hook_chain_run(s, PORTER_HOOK_VRFY, chain_done);
    assert_int_equal(chain_calls, 1);
    assert_int_equal(chain_rc, PORTER_DECLINED);
    /* queue: test_pending declines (its hook is mail), queue_discard says OK with its text. */
    chain_calls = 0;
    hook_chain_run(s, PORTER_HOOK_QUEUE, chain_done);
    assert_int_equal(chain_rc, PORTER_OK);
    assert_string_equal(s->run.decider, "queue_discard");
    session_close(s, "test");
    worker_destroy(w);
    plugin_registry_release(registry);
    config_free(config);
}

/* pending_case - one test_pending mode on the rcpt hook: the verdict and how long it took */
static void pending_case(const char *plugins, int want_rc, double minimum, double maximum)
{
    struct porter_config *config;
    struct config_error_list errors = {0};
    struct plugin_registry *registry = load(plugins, &config, &errors);
    if (registry == NULL)
        fail_msg("load failed: %s", errors.count ? errors.messages[0] : "?");
    struct worker *w = worker_create(config, registry, true);
    struct porter_session *s = fake_session(w, config, registry);
    chain_calls = 0;
    struct timeval start, end, elapsed;
    gettimeofday(&start, NULL);
    hook_chain_run(s, PORTER_HOOK_RCPT, chain_done);
    assert_int_equal(chain_calls, 0); /* it went PENDING */
    assert_true(s->run.waiting);
    run_until_done(s);
    gettimeofday(&end, NULL);
    timersub(&end, &start, &elapsed);
    double seconds = (double)elapsed.tv_sec + (double)elapsed.tv_usec / 1e6;
    if (chain_rc != want_rc || seconds < minimum || seconds > maximum)
        fail_msg("%s: got %s after %.2fs, want %s within [%.2f, %.2f]", plugins,
                 porter_rc_name(chain_rc), seconds, porter_rc_name(want_rc), minimum, maximum);
    assert_int_equal(chain_calls, 1);
    /* A handle taken now is stale: the chain is over. */
    porter_handle stale = {s->id, s->run.generation - 1};
    assert_int_equal(hook_chain_resume(stale, PORTER_OK, 0, NULL, NULL), -1);
    session_close(s, "test");
    worker_destroy(w);
    plugin_registry_release(registry);
    config_free(config);
}

static void test_pending_timer(void **state)
{
    pending_case("test_pending mode=timer delay=0.1 verdict=ok\n", PORTER_OK, 0.09, 2);
}

static void test_pending_blocking(void **state)
{
    pending_case("test_pending mode=blocking delay=0.1 verdict=deny\n", PORTER_DENY, 0.09, 2);
}

static void test_pending_resume_twice(void **state)
{
    /* test_pending aborts the process if the core accepts its second answer. */
    pending_case("test_pending mode=resume delay=0.1 verdict=denysoft\n", PORTER_DENYSOFT, 0.09, 2);
}

static void test_pending_never(void **state)
{
    pending_case("test_pending mode=never hook_timeout=0.2\n", PORTER_DENYSOFT, 0.19, 2);
}

static void test_pending_declined_continues(void **state)
{
    /* A PENDING plugin that finally declines hands over to the next one: rcpt_ok refuses a
     * recipient without a domain from a client that is not a relay client. */
    pending_case("test_pending mode=timer delay=0.05 verdict=declined\nrcpt_ok rcpthosts=rcpthosts "
                 "relayclients=192.0.2.0/24\n", PORTER_DENY, 0.04, 2);
}

static void test_cancel_drops_late_answer(void **state)
{
    struct porter_config *config;
    struct config_error_list errors = {0};
    struct plugin_registry *registry = load("test_pending mode=never\n", &config, &errors);
    assert_non_null(registry);
    struct worker *w = worker_create(config, registry, true);
    struct porter_session *s = fake_session(w, config, registry);
    chain_calls = 0;
    hook_chain_run(s, PORTER_HOOK_RCPT, chain_done);
    porter_handle handle = hook_chain_handle(s);
    hook_chain_cancel(s);
    assert_int_equal(hook_chain_resume(handle, PORTER_OK, 0, NULL, NULL), -1);
    assert_int_equal(chain_calls, 0);
    session_close(s, "test");
    worker_destroy(w);
    plugin_registry_release(registry);
    config_free(config);
}

/* elapsed_since - seconds since start */
static double elapsed_since(const struct timeval *start)
{
    struct timeval now, elapsed;
    gettimeofday(&now, NULL);
    timersub(&now, start, &elapsed);
    return (double)elapsed.tv_sec + (double)elapsed.tv_usec / 1e6;
}

static void test_wait_extend(void **state)
{
    /* plugin_timeout is 0.3 s; porter_wait_extend moves the deadline of a plugin that never
     * answers to 0.8 s from now, and refuses stale handles, bad durations and dead waits. */
    struct porter_config *config;
    struct config_error_list errors = {0};
    struct plugin_registry *registry = load("test_pending mode=never\n", &config, &errors);
    assert_non_null(registry);
    struct worker *w = worker_create(config, registry, true);
    struct porter_session *s = fake_session(w, config, registry);
    chain_calls = 0;
    struct timeval start;
    gettimeofday(&start, NULL);
    hook_chain_run(s, PORTER_HOOK_RCPT, chain_done);
    assert_true(s->run.waiting);
    porter_handle handle = hook_chain_handle(s);
    porter_handle stale = {handle.session_id, handle.generation + 1};
    porter_handle nobody = {handle.session_id + 1000, handle.generation};
    const struct {
        porter_handle handle;
        double seconds;
        int want;
    } cases[] = {
        {stale, 1, -1}, {nobody, 1, -1}, {handle, 0, -1}, {handle, -1, -1}, {handle, 0.8, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = hook_chain_wait_extend(cases[i].handle, cases[i].seconds);
        if (got != cases[i].want)
            fail_msg("case %zu (%.1f s): got %d, want %d", i, cases[i].seconds, got,
                     cases[i].want);
    }
    run_until_done(s);
    double seconds = elapsed_since(&start);
    if (chain_rc != PORTER_DENYSOFT || seconds < 0.75 || seconds > 3)
        fail_msg("extended wait: got %s after %.2fs, want DENYSOFT after 0.8 s",
                 porter_rc_name(chain_rc), seconds);
    /* The wait is over: the handle no longer extends anything. */
    assert_int_equal(hook_chain_wait_extend(handle, 1), -1);
    session_close(s, "test");
    worker_destroy(w);
    plugin_registry_release(registry);
    config_free(config);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_chain_order_and_declined),
        cmocka_unit_test(test_pending_timer),
        cmocka_unit_test(test_pending_blocking),
        cmocka_unit_test(test_pending_resume_twice),
        cmocka_unit_test(test_pending_never),
        cmocka_unit_test(test_pending_declined_continues),
        cmocka_unit_test(test_cancel_drops_late_answer),
        cmocka_unit_test(test_wait_extend),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
