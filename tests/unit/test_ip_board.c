/*
 * test_ip_board.c - unit tests of gateway/ip_board.c: the per-IP limit summed over records,
 * release and reuse, a released record no longer counting (a dead worker), IPv4 and its
 * IPv4-mapped IPv6 form counted as one address, compaction after many addresses, and the
 * sharing itself: a forked child's connections are seen by the parent, and wiping the
 * child's record when it is gone forgets them.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/ip_board.h"

static void expect_count(const struct ip_board *b, const char *ip, unsigned want)
{
    unsigned got = ip_board_count(b, ip);
    if (got != want)
        fail_msg("count of %s: got %u, want %u", ip, got, want);
}

static void test_limit_across_records(void **state)
{
    struct ip_board *b = ip_board_create(3, 100, false);
    int one = ip_board_record_claim(b), two = ip_board_record_claim(b);
    assert_int_equal(one, 0);
    assert_int_equal(two, 1);
    assert_true(ip_board_acquire(b, one, "192.0.2.1", 3));
    assert_true(ip_board_acquire(b, two, "192.0.2.1", 3));
    assert_true(ip_board_acquire(b, one, "192.0.2.1", 3));
    if (ip_board_acquire(b, two, "192.0.2.1", 3))
        fail_msg("fourth connection over two records: got accepted, want refused (limit 3)");
    assert_true(ip_board_acquire(b, two, "192.0.2.2", 3)); /* another address is not limited */
    expect_count(b, "192.0.2.1", 3);
    ip_board_release(b, two, "192.0.2.1");
    expect_count(b, "192.0.2.1", 2);
    assert_true(ip_board_acquire(b, two, "192.0.2.1", 3));
    /* the record of a process that is gone no longer counts */
    ip_board_record_release(b, one);
    expect_count(b, "192.0.2.1", 1);
    assert_int_equal(ip_board_record_claim(b), one); /* and is handed out again, empty */
    expect_count(b, "192.0.2.1", 1);
    ip_board_release(b, two, "192.0.2.9"); /* never acquired: nothing happens */
    expect_count(b, "192.0.2.9", 0);
    ip_board_free(b);
}

static void test_mapped_and_v6(void **state)
{
    struct ip_board *b = ip_board_create(1, 100, false);
    int r = ip_board_record_claim(b);
    assert_true(ip_board_acquire(b, r, "198.51.100.7", 2));
    assert_true(ip_board_acquire(b, r, "::ffff:198.51.100.7", 2));
    if (ip_board_acquire(b, r, "198.51.100.7", 2))
        fail_msg("198.51.100.7 and ::ffff:198.51.100.7: got two addresses, want one");
    assert_true(ip_board_acquire(b, r, "2001:db8::7", 1));
    assert_false(ip_board_acquire(b, r, "2001:db8:0:0::7", 1)); /* same address, other spelling */
    ip_board_free(b);
}

static void test_compaction(void **state)
{
    /* 1024 entries per record: 5000 short connections from different addresses need
     * compaction to keep counting, and the addresses still open survive it */
    struct ip_board *b = ip_board_create(1, 10, false);
    int r = ip_board_record_claim(b);
    assert_true(ip_board_acquire(b, r, "203.0.113.1", 5));
    char ip[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(ip, sizeof ip, "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
        if (!ip_board_acquire(b, r, ip, 1))
            fail_msg("%s (new address %d): got refused, want accepted", ip, i);
        ip_board_release(b, r, ip);
    }
    expect_count(b, "203.0.113.1", 1);
    expect_count(b, "10.0.0.1", 0);
    ip_board_free(b);
}

static void test_shared_with_child(void **state)
{
    struct ip_board *b = ip_board_create(4, 100, true);
    int parent = ip_board_record_claim(b), child = ip_board_record_claim(b);
    int ready[2], done[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(done), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char byte = ip_board_acquire(b, child, "192.0.2.50", 10) &&
                    ip_board_acquire(b, child, "192.0.2.50", 10) ? 'y' : 'n';
        if (write(ready[1], &byte, 1) != 1)
            _exit(2);
        if (read(done[0], &byte, 1) != 1)
            _exit(2);
        _exit(0); /* "dies" holding two connections */
    }
    char byte = 0;
    assert_int_equal(read(ready[0], &byte, 1), 1);
    assert_int_equal(byte, 'y');
    expect_count(b, "192.0.2.50", 2);
    assert_true(ip_board_acquire(b, parent, "192.0.2.50", 3));
    if (ip_board_acquire(b, parent, "192.0.2.50", 3))
        fail_msg("parent after the child's two: got a fourth, want refused (limit 3)");
    assert_int_equal(write(done[1], "x", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    ip_board_record_release(b, child); /* what the master does when it reaps a worker */
    expect_count(b, "192.0.2.50", 1);
    assert_true(ip_board_acquire(b, parent, "192.0.2.50", 3));
    close(ready[0]);
    close(ready[1]);
    close(done[0]);
    close(done[1]);
    ip_board_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_across_records),
        cmocka_unit_test(test_mapped_and_v6),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_shared_with_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
