/*
 * plugin_info.c - `porter plugins [NAME]` (see plugin_info.h): the plugins of plugin_dir, read
 * from their descriptors (dlopen without init, so nothing runs but the plugins' constructors).
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "memory.h"
#include "plugin_dir.h"
#include "plugin_info.h"

/* Columns of the wrapped text, as docs/plugins.md is written. */
#define PLUGIN_INFO_WIDTH 100

/* A growing text. */
struct plugin_info_text {
    char *data;
    size_t length;
};

/* plugin_info_add - append length bytes */
static void plugin_info_add(struct plugin_info_text *t, const char *text, size_t length)
{
    t->data = xrealloc(t->data, t->length + length + 1);
    memcpy(t->data + t->length, text, length);
    t->length += length;
    t->data[t->length] = '\0';
}

/* plugin_info_wrap - append text after first (the line's start), words wrapped at the width,
 * later lines starting with indent; one line break at the end. Newlines in text start a new
 * paragraph (an empty line in between). */
static void plugin_info_wrap(struct plugin_info_text *t, const char *first, const char *indent,
                             const char *text)
{
    size_t column = strlen(first);
    plugin_info_add(t, first, column);
    bool line_empty = column == 0;
    const char *p = text;
    while (*p != '\0') {
        if (*p == '\n') {
            plugin_info_add(t, "\n\n", 2);
            column = 0;
            line_empty = true;
            p++;
            continue;
        }
        if (*p == ' ') {
            p++;
            continue;
        }
        size_t word = strcspn(p, " \n");
        if (!line_empty && column + 1 + word > PLUGIN_INFO_WIDTH) {
            plugin_info_add(t, "\n", 1);
            plugin_info_add(t, indent, strlen(indent));
            column = strlen(indent);
            line_empty = true;
        }
        if (!line_empty) {
            plugin_info_add(t, " ", 1);
            column++;
        }
        plugin_info_add(t, p, word);
        column += word;
        line_empty = false;
        p += word;
    }
    plugin_info_add(t, "\n", 1);
}

char *plugin_info_section(const struct porter_plugin *descriptor)
{
    struct plugin_info_text t = {0};
    char *heading = xasprintf("### %s\n\n", descriptor->name != NULL ? descriptor->name : "?");
    plugin_info_add(&t, heading, strlen(heading));
    free(heading);
    plugin_info_wrap(&t, "", "", descriptor->description != NULL
                                     ? descriptor->description
                                     : "(The plugin does not describe itself.)");
    const struct porter_argument *arguments = descriptor->arguments;
    if (arguments != NULL && arguments[0].name != NULL)
        plugin_info_add(&t, "\n", 1);
    for (size_t i = 0; arguments != NULL && arguments[i].name != NULL; i++) {
        char *first = arguments[i].fallback != NULL
                          ? xasprintf("- `%s=%s`:", arguments[i].name, arguments[i].fallback)
                          : xasprintf("- `%s`:", arguments[i].name);
        plugin_info_wrap(&t, first, "  ", arguments[i].help != NULL ? arguments[i].help : "");
        free(first);
    }
    return t.data;
}

/* plugin_info_summary - the first sentence of a description (up to ". " or a newline), cut
 * at a word with "..." when it is longer than fits on a line of the list */
static char *plugin_info_summary(const char *description)
{
    const size_t room = PLUGIN_INFO_WIDTH - 21;
    if (description == NULL)
        return xstrdup("(no description)");
    size_t length = strlen(description);
    const char *end = strstr(description, ". ");
    if (end != NULL)
        length = (size_t)(end - description) + 1;
    const char *newline = memchr(description, '\n', length);
    if (newline != NULL)
        length = (size_t)(newline - description);
    if (length <= room)
        return xstrndup(description, length);
    size_t cut = room - 3;
    while (cut > 0 && description[cut] != ' ')
        cut--;
    char *head = xstrndup(description, cut > 0 ? cut : room - 3);
    char *summary = xasprintf("%s...", head);
    free(head);
    return summary;
}

/* plugin_info_config - the configuration whose plugin_dir is searched: DIRECTORY's, or the
 * built-in defaults (with a note) when it cannot be read */
static struct porter_config *plugin_info_config(const char *directory)
{
    struct config_error_list errors = {0};
    struct porter_config *config = config_load(directory, &errors);
    if (config == NULL) {
        fprintf(stderr, "porter plugins: %s; listing the built-in plugin_dir %s\n",
                errors.count > 0 ? errors.messages[0] : "configuration has errors",
                PORTER_PKGLIBDIR);
        config_errors_clear(&errors);
        config = config_parse(NULL, "(defaults)", "", 0, &errors);
    }
    config_errors_clear(&errors);
    return config;
}

/* plugin_info_shadowed - to stderr: the files of this name that plugin_dir hides */
static void plugin_info_shadowed(char **paths, size_t count)
{
    for (size_t i = 1; i < count; i++)
        fprintf(stderr, "porter plugins: %s is shadowed by %s (earlier in plugin_dir)\n",
                paths[i], paths[0]);
}

/* plugin_info_one - print one plugin's section; 0 or 1 */
static int plugin_info_one(const struct porter_config *config, const char *name)
{
    size_t count;
    char **paths = plugin_dir_find(config, name, &count);
    if (count == 0) {
        fprintf(stderr, "porter plugins: no %s.so in plugin_dir %s\n", name, config->plugin_dir);
        return 1;
    }
    void *handle;
    char *error = NULL;
    const struct porter_plugin *descriptor = plugin_dir_open(paths[0], &handle, &error);
    int rc = 0;
    if (descriptor == NULL) {
        fprintf(stderr, "porter plugins: %s\n", error);
        free(error);
        rc = 1;
    } else {
        char *section = plugin_info_section(descriptor);
        fputs(section, stdout);
        free(section);
        dlclose(handle);
    }
    plugin_info_shadowed(paths, count);
    plugin_dir_list_free(paths, count);
    return rc;
}

/* plugin_info_list - one line per plugin: its name and the first sentence it says */
static int plugin_info_list(const struct porter_config *config)
{
    size_t count;
    char **names = plugin_dir_names(config, &count);
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        size_t path_count;
        char **paths = plugin_dir_find(config, names[i], &path_count);
        void *handle = NULL;
        char *error = NULL;
        const struct porter_plugin *descriptor =
            path_count > 0 ? plugin_dir_open(paths[0], &handle, &error) : NULL;
        if (descriptor == NULL) {
            printf("%-20s (does not load: %s)\n", names[i], error != NULL ? error : "?");
            free(error);
            rc = 1;
        } else {
            char *summary = plugin_info_summary(descriptor->description);
            printf("%-20s %s\n", names[i], summary);
            free(summary);
            dlclose(handle);
        }
        plugin_info_shadowed(paths, path_count);
        plugin_dir_list_free(paths, path_count);
    }
    if (count == 0)
        fprintf(stderr, "porter plugins: no plugins in plugin_dir %s\n", config->plugin_dir);
    plugin_dir_list_free(names, count);
    return rc;
}

int plugin_info_main(const char *directory, const char *name)
{
    struct porter_config *config = plugin_info_config(directory);
    if (config == NULL)
        return 1;
    int rc = name != NULL ? plugin_info_one(config, name) : plugin_info_list(config);
    config_free(config);
    return rc;
}
