/*
 * fuzz_config.c - libFuzzer target for the configuration readers: config_parse (porter.conf),
 * plugin_lines_parse (conf/plugins), the argument getters over every parsed plugin line, and
 * cidr_parse/cidr_match, all on the same input. Checks the invariants the core relies on: a
 * config has at least one listener, a plugin line has a valid name and a NULL-terminated argv,
 * a failed parse leaves no lines, every error message is non-empty.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -Iinclude -Igateway \
 *   -o fuzz_config tests/fuzz/fuzz_config.c gateway/config.c gateway/plugin_args.c \
 *   gateway/cidr.c gateway/memory.c
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/cidr.h"
#include "gateway/config.h"
#include "gateway/plugin_args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check - abort (a finding) when an invariant does not hold */
static void check(bool condition)
{
    if (!condition)
        abort();
}

/* errors_check_and_clear - every message is non-empty; then free them */
static void errors_check_and_clear(struct config_error_list *errors)
{
    for (size_t i = 0; i < errors->count; i++)
        check(errors->messages[i] != NULL && errors->messages[i][0] != '\0');
    config_errors_clear(errors);
}

/* fuzz_args - run every getter over the named and positional words of one line */
static void fuzz_args(const struct plugin_line *line)
{
    struct porter_args *a = plugin_args_new(line, NULL);
    for (size_t i = 0; i < a->named_count; i++) {
        const char *key = a->named[i].key;
        plugin_args_string(a, key, NULL);
        plugin_args_integer(a, key, 0, -1000, 1000000);
        plugin_args_seconds(a, key, 1);
        plugin_args_bool(a, key, false);
        plugin_args_choice(a, key, "denysoft|deny|log");
        char *error = NULL;
        porter_cidr_list *list = cidr_parse(a->named[i].value, &error);
        check((list == NULL) == (error != NULL));
        free(error);
        cidr_free(list);
    }
    for (size_t i = 0; i < a->positional_count / 2; i++)
        check(plugin_args_positional(a, i) != NULL);
    size_t errors = plugin_args_finish(a);
    check(errors == plugin_args_error_count(a));
    for (size_t i = 0; i < errors; i++)
        check(plugin_args_error(a, i) != NULL);
    plugin_args_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct config_error_list errors = {0};

    struct porter_config *c = config_parse("/etc/porter", "porter.conf", text, size, &errors);
    check((c == NULL) == (errors.count > 0));
    if (c != NULL) {
        check(c->listen_count >= 1);
        for (size_t i = 0; i < c->listen_count; i++)
            check(c->listen[i].address != NULL && c->listen[i].role != NULL);
        check(c->bare_lf >= 0 && c->bare_lf < CONFIG_BARE_LF_COUNT);
        check(c->log_level >= 3 && c->log_level <= 7);
        config_free(c);
    }
    errors_check_and_clear(&errors);

    struct plugin_line_list lines = {0};
    int result = plugin_lines_parse("plugins", text, size, &lines, &errors);
    check((result == 0) == (errors.count == 0));
    if (result != 0)
        check(lines.count == 0 && lines.items == NULL);
    for (size_t i = 0; i < lines.count; i++) {
        const struct plugin_line *line = &lines.items[i];
        size_t valid = strspn(line->name, "abcdefghijklmnopqrstuvwxyz0123456789_");
        check(line->name[0] != '\0' && valid == strlen(line->name));
        check(line->argc >= 0 && line->argv[line->argc] == NULL);
        fuzz_args(line);
    }
    plugin_lines_clear(&lines);
    errors_check_and_clear(&errors);

    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *error = NULL;
    porter_cidr_list *list = cidr_parse(copy, &error);
    check((list == NULL) == (error != NULL));
    if (list != NULL) {
        cidr_match(list, copy);
        cidr_match(list, "192.0.2.1");
        cidr_match(list, "::ffff:192.0.2.1");
        cidr_match(list, "2001:db8::1");
    }
    cidr_free(list);
    free(error);
    free(copy);
    return 0;
}
