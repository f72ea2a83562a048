/*
 * plugin_args.c - a plugin's arguments and the porter_arg_* getters (see plugin_args.h).
 *
 * Each getter looks its key up (the first word with that key wins; a repeated key is an error
 * already), remembers that the key is known and the word used, parses the value with the
 * shared parsers of config.c, and records an error instead of failing: init goes on, so one
 * load reports every bad argument at once. plugin_args_finish then reports the words nobody
 * asked for.
 *
 * Fatal: out of memory. Memory: the args own copies of the line's words; getters return
 * borrowed strings, except plugin_args_cidr whose list the caller owns.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cidr.h"
#include "list_file.h"
#include "memory.h"
#include "plugin_args.h"

/* plugin_args_report - record "FILE:LINE: PLUGIN: message" */
static void plugin_args_report(struct porter_args *a, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void plugin_args_report(struct porter_args *a, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    plugin_args_verror(a, format, ap);
    va_end(ap);
}

/* plugin_args_bad_value - record "KEY: 'VALUE' is not EXPECTED" */
static void plugin_args_bad_value(struct porter_args *a, const char *key, const char *value,
                                  const char *expected)
{
    char *quoted = config_quote(value);
    plugin_args_report(a, "%s: %s is not %s", key, quoted, expected);
    free(quoted);
}

void plugin_args_verror(porter_args *a, const char *format, va_list ap)
{
    if (a == NULL)
        return;
    char message[1024];
    if (vsnprintf(message, sizeof message, format, ap) < 0)
        snprintf(message, sizeof message, "(bad error format from the plugin)");
    config_error_add(&a->errors, "%s:%d: %s: %s", a->file, a->line, a->plugin, message);
}

/* plugin_args_key_valid - whether the part of a word before '=' is a key */
static bool plugin_args_key_valid(const char *word, size_t length)
{
    if (length == 0)
        return false;
    for (size_t i = 0; i < length; i++) {
        char c = word[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

struct porter_args *plugin_args_new(const struct plugin_line *line, const char *config_directory)
{
    struct porter_args *a = xcalloc(1, sizeof *a);
    a->file = xstrdup(line->file != NULL ? line->file : "?");
    a->line = line->line;
    a->plugin = xstrdup(line->name != NULL ? line->name : "?");
    a->directory = config_directory != NULL ? xstrdup(config_directory) : NULL;
    size_t count = line->argc > 0 ? (size_t)line->argc : 0;
    a->named = xcalloc(count, sizeof *a->named);
    a->positional = xcalloc(count, sizeof *a->positional);
    for (size_t i = 0; i < count; i++) {
        const char *word = line->argv[i];
        const char *equals = strchr(word, '=');
        if (equals == NULL || !plugin_args_key_valid(word, (size_t)(equals - word))) {
            a->positional[a->positional_count++] = xstrdup(word);
            continue;
        }
        struct plugin_argument *argument = &a->named[a->named_count++];
        argument->key = xstrndup(word, (size_t)(equals - word));
        argument->value = xstrdup(equals + 1);
        for (size_t j = 0; j + 1 < a->named_count; j++) {
            if (strcmp(a->named[j].key, argument->key) == 0) {
                argument->duplicate = true;
                break;
            }
        }
        if (argument->duplicate) {
            char *quoted = config_quote(argument->key);
            plugin_args_report(a, "argument %s is given twice", quoted);
            free(quoted);
        }
    }
    return a;
}

void plugin_args_free(struct porter_args *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->named_count; i++) {
        free(a->named[i].key);
        free(a->named[i].value);
    }
    free(a->named);
    for (size_t i = 0; i < a->positional_count; i++)
        free(a->positional[i]);
    free(a->positional);
    for (size_t i = 0; i < a->path_count; i++)
        free(a->paths[i]);
    free(a->paths);
    for (size_t i = 0; i < a->relative_count; i++)
        free(a->relative[i]);
    free(a->relative);
    for (size_t i = 0; i < a->known_count; i++)
        free(a->known[i]);
    free(a->known);
    config_errors_clear(&a->errors);
    free(a->file);
    free(a->plugin);
    free(a->directory);
    free(a);
}

/* plugin_args_lookup - the value of key (NULL if absent); key becomes known, its words used */
static const char *plugin_args_lookup(struct porter_args *a, const char *key)
{
    if (a == NULL || key == NULL)
        return NULL;
    bool known = false;
    for (size_t i = 0; i < a->known_count && !known; i++)
        known = strcmp(a->known[i], key) == 0;
    if (!known) {
        a->known = xrealloc(a->known, (a->known_count + 1) * sizeof *a->known);
        a->known[a->known_count++] = xstrdup(key);
    }
    const char *value = NULL;
    for (size_t i = 0; i < a->named_count; i++) {
        if (strcmp(a->named[i].key, key) == 0) {
            a->named[i].asked = true;
            if (value == NULL)
                value = a->named[i].value;
        }
    }
    return value;
}

const char *plugin_args_string(porter_args *a, const char *key, const char *fallback)
{
    const char *value = plugin_args_lookup(a, key);
    return value != NULL ? value : fallback;
}

const char *plugin_args_keep_path(porter_args *a, const char *key, const char *path)
{
    if (a == NULL || path == NULL)
        return path;
    a->paths = xrealloc(a->paths, (a->path_count + 1) * sizeof *a->paths);
    a->paths[a->path_count] = plugin_args_resolve_path(a, path);
    if (path[0] != '/' && a->directory != NULL) {
        a->relative = xrealloc(a->relative, (a->relative_count + 1) * sizeof *a->relative);
        a->relative[a->relative_count++] = xasprintf("%s%s%s is %s", key ? key : "",
                                                      key ? "=" : "", path,
                                                      a->paths[a->path_count]);
    }
    return a->paths[a->path_count++];
}

const char *plugin_args_path(porter_args *a, const char *key, const char *fallback)
{
    const char *value = plugin_args_lookup(a, key);
    return plugin_args_keep_path(a, key, value != NULL ? value : fallback);
}

long plugin_args_integer(porter_args *a, const char *key, long fallback, long minimum,
                         long maximum)
{
    const char *value = plugin_args_lookup(a, key);
    if (value == NULL)
        return fallback;
    long long number;
    if (config_parse_integer(value, &number) == 0 && number >= minimum && number <= maximum)
        return (long)number;
    char expected[96];
    snprintf(expected, sizeof expected, "an integer between %ld and %ld", minimum, maximum);
    plugin_args_bad_value(a, key, value, expected);
    return fallback;
}

double plugin_args_seconds(porter_args *a, const char *key, double fallback)
{
    const char *value = plugin_args_lookup(a, key);
    if (value == NULL)
        return fallback;
    double seconds;
    if (config_parse_seconds(value, &seconds) == 0)
        return seconds;
    plugin_args_bad_value(a, key, value, config_type_syntax(CONFIG_SECONDS));
    return fallback;
}

bool plugin_args_bool(porter_args *a, const char *key, bool fallback)
{
    const char *value = plugin_args_lookup(a, key);
    if (value == NULL)
        return fallback;
    bool flag;
    if (config_parse_bool(value, &flag) == 0)
        return flag;
    plugin_args_bad_value(a, key, value, config_type_syntax(CONFIG_BOOL));
    return fallback;
}

int plugin_args_choice(porter_args *a, const char *key, const char *choices)
{
    const char *value = plugin_args_lookup(a, key);
    if (value == NULL)
        return 0;
    int index;
    if (config_parse_choice(value, choices, &index) == 0)
        return index;
    char *list = config_choices_list(choices);
    char *expected = xasprintf("one of %s", list);
    plugin_args_bad_value(a, key, value, expected);
    free(expected);
    free(list);
    return 0;
}

porter_cidr_list *plugin_args_cidr(porter_args *a, const char *key)
{
    const char *value = plugin_args_lookup(a, key);
    if (value == NULL)
        return NULL;
    bool file_like = value[0] == '/' || strncmp(value, "./", 2) == 0 ||
                     strncmp(value, "../", 3) == 0;
    char *path = plugin_args_resolve_path(a, value);
    struct stat st;
    char *error = NULL;
    porter_cidr_list *list;
    if (file_like || (stat(path, &st) == 0 && S_ISREG(st.st_mode)))
        list = cidr_load_file(path, &error);
    else
        list = cidr_parse(value, &error);
    if (list == NULL) {
        plugin_args_report(a, "%s: %s", key, error);
        free(error);
    }
    free(path);
    return list;
}

/* plugin_args_list_load - the list file at path; NULL after reporting "KEY: why" (key NULL:
 * "why" alone) */
static porter_list *plugin_args_list_load(porter_args *a, const char *key, const char *path)
{
    char *resolved = plugin_args_resolve_path(a, path);
    char *error = NULL;
    porter_list *list = list_load_file(resolved, &error);
    if (list == NULL) {
        plugin_args_report(a, "%s%s%s", key != NULL ? key : "", key != NULL ? ": " : "", error);
        free(error);
    }
    free(resolved);
    return list;
}

porter_list *plugin_args_list_file(porter_args *a, const char *path)
{
    return path != NULL ? plugin_args_list_load(a, NULL, path) : NULL;
}

porter_list *plugin_args_list(porter_args *a, const char *key, const char *fallback)
{
    const char *value = plugin_args_lookup(a, key);
    if (value == NULL)
        value = fallback;
    if (value == NULL)
        return NULL;
    bool file_like = value[0] == '/' || strncmp(value, "./", 2) == 0 ||
                     strncmp(value, "../", 3) == 0;
    char *path = plugin_args_resolve_path(a, value);
    struct stat st;
    bool file = file_like || (stat(path, &st) == 0 && S_ISREG(st.st_mode));
    free(path);
    return file ? plugin_args_list_load(a, key, value) : list_parse(value);
}

const char *plugin_args_positional(porter_args *a, size_t index)
{
    if (a == NULL)
        return NULL;
    if (index >= a->positional_asked)
        a->positional_asked = index + 1;
    return index < a->positional_count ? a->positional[index] : NULL;
}

size_t plugin_args_finish(struct porter_args *a)
{
    if (a == NULL)
        return 0;
    if (a->finished)
        return a->errors.count;
    a->finished = true;
    char *known = xjoin(a->known, a->known_count, ", ");
    for (size_t i = 0; i < a->named_count; i++) {
        if (a->named[i].asked || a->named[i].duplicate)
            continue;
        char *quoted = config_quote(a->named[i].key);
        if (a->known_count > 0)
            plugin_args_report(a, "unknown argument %s (known: %s)", quoted, known);
        else
            plugin_args_report(a, "unknown argument %s (this plugin takes no named arguments)",
                               quoted);
        free(quoted);
    }
    free(known);
    for (size_t i = a->positional_asked; i < a->positional_count; i++) {
        char *quoted = config_quote(a->positional[i]);
        plugin_args_report(a, "unexpected argument %s", quoted);
        free(quoted);
    }
    if (a->errors.count > 0 && a->relative_count > 0) {
        /* a configuration copied elsewhere fails on relative paths: say what they became */
        char *list = xjoin(a->relative, a->relative_count, "; ");
        plugin_args_report(a, "note: relative paths are relative to the configuration directory "
                           "%s: %s", a->directory, list);
        free(list);
    }
    return a->errors.count;
}

size_t plugin_args_check_declared(struct porter_args *a, const struct porter_argument *declared)
{
    if (a == NULL)
        return 0;
    for (size_t i = 0; i < a->known_count; i++) {
        const char *key = a->known[i];
        bool found = strcmp(key, "hook_timeout") == 0;
        for (size_t j = 0; declared != NULL && declared[j].name != NULL && !found; j++)
            found = strcmp(declared[j].name, key) == 0;
        if (!found) {
            char *quoted = config_quote(key);
            plugin_args_report(a, "reads argument %s that its descriptor does not declare "
                               "(a plugin bug: add it to .arguments = PORTER_ARGUMENTS(...))",
                               quoted);
            free(quoted);
        }
    }
    return a->errors.count;
}

size_t plugin_args_error_count(const struct porter_args *a)
{
    return a != NULL ? a->errors.count : 0;
}

const char *plugin_args_error(const struct porter_args *a, size_t index)
{
    return a != NULL && index < a->errors.count ? a->errors.messages[index] : NULL;
}

char *plugin_args_resolve_path(const struct porter_args *a, const char *path)
{
    return config_path_resolve(a != NULL ? a->directory : NULL, path);
}
