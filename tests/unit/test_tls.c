/*
 * test_tls.c - unit tests of tls.c's pure parts and of the TLS settings: tls_protocols
 * (check and range), fingerprint normalisation, the facts table behind porter_tls_info, the
 * Received header comment, and the configuration checks that need no certificate file.
 * Loading real certificates is covered by tests/integration/tls.test. Failures print got/want.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "config.h"
#include "tls.h"

static void test_protocols(void **state)
{
    static const struct {
        const char *value;
        int ok;
        int minimum, maximum;
    } cases[] = {
        {"TLSv1.2 TLSv1.3", 1, TLS1_2_VERSION, TLS1_3_VERSION},
        {"TLSv1.3", 1, TLS1_3_VERSION, TLS1_3_VERSION},
        {"tlsv1.2,TLSV1.3", 1, TLS1_2_VERSION, TLS1_3_VERSION},
        {"TLSv1.3 TLSv1.2", 1, TLS1_2_VERSION, TLS1_3_VERSION},
        {"TLSv1 TLSv1.1 TLSv1.2", 1, TLS1_VERSION, TLS1_2_VERSION},
        {"  TLSv1.2  ", 1, TLS1_2_VERSION, TLS1_2_VERSION},
        {"TLSv1 TLSv1.3", 0, 0, 0},
        {"SSLv3 TLSv1.2", 0, 0, 0},
        {"TLSv1.4", 0, 0, 0},
        {"TLSv1.2x", 0, 0, 0},
        {"", 0, 0, 0},
        {" , ", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = tls_protocols_check(cases[i].value);
        if ((why == NULL) != cases[i].ok)
            fail_msg("tls_protocols '%s': got %s, want %s", cases[i].value, why ? why : "valid",
                     cases[i].ok ? "valid" : "an error");
        int minimum = -7, maximum = -7;
        int got = tls_protocols_range(cases[i].value, &minimum, &maximum);
        if (got != (cases[i].ok ? 0 : -1))
            fail_msg("range '%s': got %d, want %d", cases[i].value, got, cases[i].ok ? 0 : -1);
        if (cases[i].ok && (minimum != cases[i].minimum || maximum != cases[i].maximum))
            fail_msg("range '%s': got %x-%x, want %x-%x", cases[i].value, minimum, maximum,
                     cases[i].minimum, cases[i].maximum);
        if (!cases[i].ok && (minimum != -7 || maximum != -7))
            fail_msg("range '%s': got outputs changed on failure, want them alone", cases[i].value);
    }
}

static void test_fingerprints(void **state)
{
    static const char canonical[] =
        "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    static const struct {
        const char *text;
        const char *want; /* NULL: malformed */
    } cases[] = {
        {canonical, canonical},
        {"00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF", canonical},
        {"00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff",
         canonical},
        {"00:11", NULL},
        {"", NULL},
        {"00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFG", NULL},
        {"00-11-22-33-44-55-66-77-88-99-AA-BB-CC-DD-EE-FF-00-11-22-33-44-55-66-77-88-99-AA-BB-CC-DD-EE-FF",
         NULL},
        {"0011223344556677:8899aabbccddeeff00112233445566778899AABBCCDDEEF", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[96];
        int got = tls_fingerprint_normalize(cases[i].text, out, sizeof out);
        if (got != (cases[i].want ? 0 : -1))
            fail_msg("fingerprint '%s': got %d, want %d", cases[i].text, got, cases[i].want ? 0 : -1);
        if (cases[i].want && strcmp(out, cases[i].want) != 0)
            fail_msg("fingerprint '%s': got %s, want %s", cases[i].text, out, cases[i].want);
    }
    char small[95];
    if (tls_fingerprint_normalize(canonical, small, sizeof small) != -1)
        fail_msg("fingerprint into 95 bytes: got 0, want -1 (no room for the NUL)");
}

static void test_facts(void **state)
{
    struct tls_facts f = {
        .version = "TLSv1.3", .cipher = "TLS_AES_256_GCM_SHA384", .bits = "256",
        .alg_bits = "256", .sni = "mail.example", .resumed = "no",
        .subject = "/O=Test/CN=client", .issuer = "/CN=CA", .subject_cn = "client",
        .issuer_cn = "CA", .fingerprint = "AB", .verified = "yes", .requested = true,
    };
    static const struct {
        const char *key;
        const char *want;
    } keys[] = {
        {"version", "TLSv1.3"}, {"cipher", "TLS_AES_256_GCM_SHA384"}, {"bits", "256"},
        {"alg_bits", "256"}, {"sni", "mail.example"}, {"resumed", "no"},
        {"subject", "/O=Test/CN=client"}, {"issuer", "/CN=CA"}, {"subject_cn", "client"},
        {"issuer_cn", "CA"}, {"fingerprint", "AB"}, {"verified", "yes"}, {"verify_error", NULL},
        {"nonsense", NULL}, {"", NULL},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *got = tls_facts_get(&f, keys[i].key);
        if ((got == NULL) != (keys[i].want == NULL) || (got && strcmp(got, keys[i].want) != 0))
            fail_msg("fact %s: got %s, want %s", keys[i].key, got ? got : "NULL",
                     keys[i].want ? keys[i].want : "NULL");
    }
    assert_null(tls_facts_get(NULL, "version"));
    assert_null(tls_facts_get(&f, NULL));
    char *comment = tls_received_comment(&f);
    assert_string_equal(comment, "\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 "
                                 "(256/256 bits))\r\n\t(Client CN \"client\", Issuer \"CA\" "
                                 "(verified OK))");
    free(comment);
    f.verified = "no";
    comment = tls_received_comment(&f);
    if (strstr(comment, "(not verified))") == NULL)
        fail_msg("comment for an unverified certificate: got %s, want (not verified)", comment);
    free(comment);
    f.fingerprint = NULL;
    comment = tls_received_comment(&f);
    if (strstr(comment, "(Client did not present a certificate)") == NULL)
        fail_msg("comment without a certificate: got %s", comment);
    free(comment);
    f.requested = false;
    comment = tls_received_comment(&f);
    if (strstr(comment, "(No client certificate requested)") == NULL)
        fail_msg("comment when none was asked for: got %s", comment);
    free(comment);
    tls_facts_free(NULL);
    tls_server_free(NULL);
    assert_string_equal(tls_verify_name(TLS_VERIFY_ASK), "ask");
    assert_string_equal(tls_verify_name(TLS_VERIFY_COUNT), "invalid");
    assert_int_equal(tls_server_verify(NULL), TLS_VERIFY_NO);
}

/* parse - porter.conf text into a config (NULL on errors, which land in errors) */
static struct porter_config *parse(const char *text, struct config_error_list *errors)
{
    return config_parse("/etc/porter", "porter.conf", text, strlen(text), errors);
}

static void test_settings(void **state)
{
    struct config_error_list errors = {0};
    struct porter_config *c = parse("", &errors);
    assert_non_null(c);
    assert_null(c->tls_cert);
    assert_string_equal(c->tls_protocols, "TLSv1.2 TLSv1.3");
    assert_int_equal(c->tls_verify_client, TLS_VERIFY_NO);
    assert_false(c->auth_over_plaintext);
    assert_true(c->submission_requires_tls);
    assert_int_equal(c->auth_max_failures, 3);
    assert_true(c->tls_session_tickets);
    /* Without a certificate TLS is off and the shipped listener needs none. */
    assert_int_equal(tls_config_load(c, "porter.conf", &errors), 0);
    assert_null(c->tls);
    config_free(c);

    static const struct {
        const char *text;
        const char *want; /* a part of the first error; NULL: loads */
    } cases[] = {
        {"tls_protocols = SSLv3\n", "porter.conf:1: tls_protocols: 'SSLv3' names an SSL version"},
        {"tls_verify_client = maybe\n", "porter.conf:1: tls_verify_client: 'maybe' is not one of"},
        {"listen = 127.0.0.1:465 submissions\n", "submissions is implicit TLS and needs a certificate"},
        {"listen = 127.0.0.1:587 submission\n", "submission needs STARTTLS before AUTH"},
        {"listen = 127.0.0.1:587 submission\nsubmission_requires_tls = no\n", NULL},
        {"tls_key = key.pem\n", "tls_key is set but tls_cert is not"},
        {"tls_ca_file = ca.pem\n", "tls_ca_file is set but tls_cert is not"},
        {"tls_verify_client = ask\n", "tls_verify_client is ask but tls_cert is not set"},
        {"auth_max_failures = 0\n", "auth_max_failures: '0' is out of range"},
        {"auth_failure_delay = 61\n", "auth_failure_delay: '61' is out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        config_errors_clear(&errors);
        c = parse(cases[i].text, &errors);
        if (c != NULL && tls_config_load(c, "porter.conf", &errors) != 0) {
            config_free(c);
            c = NULL;
        }
        if (cases[i].want == NULL) {
            if (c == NULL)
                fail_msg("'%s': got error %s, want it to load", cases[i].text,
                         errors.count ? errors.messages[0] : "?");
        } else if (c != NULL || errors.count == 0 || strstr(errors.messages[0], cases[i].want) == NULL) {
            fail_msg("'%s': got %s, want an error with '%s'", cases[i].text,
                     errors.count ? errors.messages[0] : "no error", cases[i].want);
        }
        config_free(c);
    }
    config_errors_clear(&errors);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocols),
        cmocka_unit_test(test_fingerprints),
        cmocka_unit_test(test_facts),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
