/*
 * config_command.c - `porter config [-c CONFDIR] [-n]`: the effective configuration, like
 * postconf -n.
 *
 * Every setting of the table, in its order, as "name = value" with the value written back in
 * the syntax porter.conf reads (durations and sizes in the largest exact unit); with -n only
 * the settings whose value differs from the default. A setting that is unset and has no
 * default is shown as a comment. Then, as comments, the plugin chain: each line of the plugins
 * file with every argument its plugin declares, given or defaulted (the resolved arguments).
 * The output round-trips: used as porter.conf it gives the same effective configuration.
 *
 * Exit status: 0, 1 (the configuration has errors: they are printed), 2 (usage).
 * Memory: everything is freed before return.
 */
#include <dlfcn.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_command.h"
#include "memory.h"
#include "plugin_dir.h"

/* config_command_word - a plugin argument as the plugins file reads it: quoted when it holds
 * a blank, a quote, a backslash or a '#' */
static void config_command_word(FILE *out, const char *word)
{
    if (word[0] != '\0' && strpbrk(word, " \t\"\\#") == NULL) {
        fputs(word, out);
        return;
    }
    fputc('"', out);
    for (const char *p = word; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fputc('\\', out);
        fputc(*p, out);
    }
    fputc('"', out);
}

/* config_command_given - the value of key=... on a plugin line (the last one), or NULL */
static const char *config_command_given(const struct plugin_line *line, const char *key)
{
    const char *value = NULL;
    size_t length = strlen(key);
    for (int i = 0; i < line->argc; i++)
        if (strncmp(line->argv[i], key, length) == 0 && line->argv[i][length] == '=')
            value = line->argv[i] + length + 1;
    return value;
}

/* config_command_declared - whether word is key=... for a key the plugin declares */
static bool config_command_declared(const struct porter_plugin *descriptor, const char *word)
{
    for (const struct porter_argument *a = descriptor != NULL ? descriptor->arguments : NULL;
         a != NULL && a->name != NULL; a++)
        if (strncmp(word, a->name, strlen(a->name)) == 0 && word[strlen(a->name)] == '=')
            return true;
    return false;
}

/* config_command_plugins - the chain as comments, each line with its resolved arguments */
static int config_command_plugins(FILE *out, const struct porter_config *config)
{
    char *path = config_path(config, config->plugins_file);
    struct plugin_line_list lines = {0};
    struct config_error_list errors = {0};
    int rc = 0;
    if (plugin_lines_load(path, &lines, &errors) != 0) {
        for (size_t i = 0; i < errors.count; i++)
            fprintf(stderr, "%s\n", errors.messages[i]);
        rc = 1;
    }
    fprintf(out, "\n# The plugin chain (%s), each line with its resolved arguments:\n", path);
    for (size_t i = 0; i < lines.count; i++) {
        const struct plugin_line *line = &lines.items[i];
        size_t count = 0;
        char **files = plugin_dir_find(config, line->name, &count);
        void *handle = NULL;
        char *error = NULL;
        const struct porter_plugin *descriptor =
            files != NULL ? plugin_dir_open(files[0], &handle, &error) : NULL;
        fprintf(out, "#   %s", line->name);
        for (const struct porter_argument *a = descriptor != NULL ? descriptor->arguments : NULL;
             a != NULL && a->name != NULL; a++) {
            const char *value = config_command_given(line, a->name);
            if (value == NULL)
                value = a->fallback;
            if (value == NULL)
                continue;
            fprintf(out, " %s=", a->name);
            config_command_word(out, value);
        }
        for (int k = 0; k < line->argc; k++) { /* what the plugin does not declare, as given */
            if (config_command_declared(descriptor, line->argv[k]))
                continue;
            fputc(' ', out);
            config_command_word(out, line->argv[k]);
        }
        if (descriptor == NULL)
            fprintf(out, "   (not loaded: %s)", error != NULL ? error : "no such plugin in plugin_dir");
        fputc('\n', out);
        free(error);
        if (handle != NULL)
            dlclose(handle);
        plugin_dir_list_free(files, count);
    }
    plugin_lines_clear(&lines);
    config_errors_clear(&errors);
    free(path);
    return rc;
}

/* config_command_print - the settings (all, or those not at their default) */
static void config_command_print(FILE *out, const struct porter_config *config,
                                 const struct porter_config *defaults, bool changed_only)
{
    size_t count;
    const struct config_setting *settings = config_settings(&count);
    for (size_t i = 0; i < count; i++) {
        const struct config_setting *s = &settings[i];
        char *value = config_value_text(config, s);
        char *fallback = config_value_text(defaults, s);
        bool at_default = (value == NULL && fallback == NULL) ||
                          (value != NULL && fallback != NULL && strcmp(value, fallback) == 0);
        if (!changed_only || !at_default) {
            if (value == NULL) {
                fprintf(out, "#%s =\n", s->name);
            } else {
                /* a listen list is one line per listener */
                for (char *line = value, *end; line != NULL; line = end) {
                    end = strchr(line, '\n');
                    if (end != NULL)
                        *end++ = '\0';
                    fprintf(out, "%s = %s\n", s->name, line);
                }
            }
        }
        free(value);
        free(fallback);
    }
}

static void config_command_usage(FILE *out)
{
    fprintf(out, "usage: porter config [-c CONFDIR] [-n]\n"
                 "  every setting with its effective value (-n: only those not at their default),\n"
                 "  then the plugin chain with each plugin's resolved arguments (as comments)\n");
}

int config_command_main(int argc, char **argv, const char *default_directory)
{
    const char *directory = default_directory;
    bool changed_only = false;
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"non-default", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int option;
    while ((option = getopt_long(argc, argv, "c:nh", options, NULL)) != -1) {
        switch (option) {
        case 'c': directory = optarg; break;
        case 'n': changed_only = true; break;
        case 'h': config_command_usage(stdout); return 0;
        default: config_command_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        config_command_usage(stderr);
        return 2;
    }
    struct config_error_list errors = {0};
    struct porter_config *config = config_read_settings(directory, NULL, &errors);
    struct porter_config *defaults = config_parse(NULL, "(defaults)", "", 0, &errors);
    if (config == NULL || defaults == NULL) {
        for (size_t i = 0; i < errors.count; i++)
            fprintf(stderr, "%s\n", errors.messages[i]);
        config_errors_clear(&errors);
        config_free(config);
        config_free(defaults);
        return 1;
    }
    config_errors_clear(&errors);
    printf("# porter config%s: %s/porter.conf%s\n", changed_only ? " -n" : "", config->directory,
           changed_only ? " (settings not at their default)" : "");
    config_command_print(stdout, config, defaults, changed_only);
    int rc = config_command_plugins(stdout, config);
    config_free(config);
    config_free(defaults);
    return rc;
}
